// many_kernels.cu - many different kernels, thousands of launches.
//
// int/float/double arithmetic, structs passed by value (one of 1 KiB),
// a kernel with 24 parameters of mixed sizes, 3D grids and blocks, dynamic
// shared memory, atomics, a C++ (mangled) kernel name, and long chains of
// dependent launches whose results are checked exactly.
#include <vector>

#include "test_common.h"

struct Small {
	int a;
	float b;
	double c;
};
static_assert(sizeof(Small) == 16, "Small layout");

// 1 KiB, 8-byte aligned.
struct Big {
	long long seed;
	int vals[254];
};
static_assert(sizeof(Big) == 1024, "Big layout");

extern "C" __global__ void mk_saxpy(float a, const float *x, float *y, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		y[i] = a * x[i] + y[i];
}

extern "C" __global__ void mk_daxpy(double a, const double *x, double *y,
				    long long n)
{
	long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
	if (i < n)
		y[i] = a * x[i] + y[i];
}

extern "C" __global__ void mk_iaffine(int *out, const int *in, int mul,
				      int add, unsigned int n)
{
	unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		out[i] = in[i] * mul + add;
}

extern "C" __global__ void mk_small_struct(Small s, double *out, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		out[i] = s.a * i + s.b + s.c;
}

extern "C" __global__ void mk_big_struct(Big b, long long *out)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < 254)
		out[i] = b.vals[i] * b.seed + i;
}

extern "C" __global__ void mk_many_params(
	char c0, short s1, int i2, long long l3, float f4, double d5,
	unsigned char c6, unsigned short s7, unsigned int u8,
	unsigned long long u9, float f10, double d11, char c12, int i13,
	short s14, double d15, int i16, char c17, long long l18, float f19,
	int i20, double d21, char c22, double *out)
{
	if (threadIdx.x != 0 || blockIdx.x != 0)
		return;
	out[0] = c0 + s1 + i2 + (double)l3 + f4 + d5;
	out[1] = c6 + s7 + (double)u8 + (double)u9 + f10 + d11;
	out[2] = c12 + i13 + s14 + d15 + i16 + c17;
	out[3] = (double)l18 + f19 + i20 + d21 + c22;
}

// Each thread of a 3D grid of 3D blocks writes its global linear id at its
// 3D position in a dense (gx*bx) x (gy*by) x (gz*bz) array.
extern "C" __global__ void mk_grid3d(unsigned int *out, unsigned int salt)
{
	unsigned int x = blockIdx.x * blockDim.x + threadIdx.x;
	unsigned int y = blockIdx.y * blockDim.y + threadIdx.y;
	unsigned int z = blockIdx.z * blockDim.z + threadIdx.z;
	unsigned int nx = gridDim.x * blockDim.x, ny = gridDim.y * blockDim.y;
	unsigned int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
	unsigned int thread =
		threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
	out[x + nx * (y + ny * z)] =
		(block * blockDim.x * blockDim.y * blockDim.z + thread) ^ salt;
}

// Per-block sums through dynamic shared memory.
extern "C" __global__ void mk_block_sum(const int *in, long long *out, int n)
{
	extern __shared__ long long buf[];
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	buf[threadIdx.x] = i < n ? in[i] : 0;
	__syncthreads();
	for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
		if (threadIdx.x < s)
			buf[threadIdx.x] += buf[threadIdx.x + s];
		__syncthreads();
	}
	if (threadIdx.x == 0)
		out[blockIdx.x] = buf[0];
}

extern "C" __global__ void mk_count(unsigned long long *counter,
				    unsigned long long step)
{
	atomicAdd(counter, step);
}

// Not extern "C": its symbol is the mangled _Z11mk_cxx_namePii.
__global__ void mk_cxx_name(int *p, int v)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < 64)
		p[i] = v - i;
}

static void check_saxpy_chain()
{
	const int n = 5000, iters = 1500;
	std::vector<float> x(n), y(n), want(n);
	Rng r(1);
	for (int i = 0; i < n; i++) {
		x[i] = (float)r.range(-8, 9);
		y[i] = (float)r.range(-1000, 1000);
	}
	float *dx, *dy;
	CHECK(cudaMalloc(&dx, n * sizeof(float)));
	CHECK(cudaMalloc(&dy, n * sizeof(float)));
	CHECK(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
	CHECK(cudaMemcpy(dy, y.data(), n * sizeof(float), cudaMemcpyHostToDevice));
	// a alternates 1, 2, -1, ...: exact in float for these magnitudes.
	const float as[3] = { 1.0f, 2.0f, -1.0f };
	want = y;
	for (int it = 0; it < iters; it++) {
		float a = as[it % 3];
		mk_saxpy<<<(n + 127) / 128, 128>>>(a, dx, dy, n);
		for (int i = 0; i < n; i++)
			want[i] = a * x[i] + want[i];
	}
	CHECK(cudaGetLastError());
	CHECK(cudaMemcpy(y.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost));
	for (int i = 0; i < n; i++)
		REQUIRE(y[i] == want[i], "saxpy y[%d] = %g, want %g", i, y[i], want[i]);
	CHECK(cudaFree(dx));
	CHECK(cudaFree(dy));
}

static void check_daxpy()
{
	const long long n = 3001;
	std::vector<double> x(n), y(n), want(n);
	Rng r(2);
	for (long long i = 0; i < n; i++) {
		x[i] = r.unit() * 4 - 2;
		y[i] = r.unit() * 100;
	}
	double *dx, *dy;
	CHECK(cudaMalloc(&dx, n * sizeof(double)));
	CHECK(cudaMalloc(&dy, n * sizeof(double)));
	CHECK(cudaMemcpy(dx, x.data(), n * sizeof(double), cudaMemcpyHostToDevice));
	CHECK(cudaMemcpy(dy, y.data(), n * sizeof(double), cudaMemcpyHostToDevice));
	want = y;
	for (int it = 0; it < 200; it++) {
		double a = 0.5 + it * 0.25;
		mk_daxpy<<<(unsigned)((n + 255) / 256), 256>>>(a, dx, dy, n);
		for (long long i = 0; i < n; i++)
			want[i] = a * x[i] + want[i];
	}
	CHECK(cudaGetLastError());
	CHECK(cudaMemcpy(y.data(), dy, n * sizeof(double), cudaMemcpyDeviceToHost));
	for (long long i = 0; i < n; i++) {
		double err = y[i] - want[i];
		if (err < 0)
			err = -err;
		// The device may fuse a*x+y; allow a few ulps of the magnitude.
		REQUIRE(err <= 1e-9 * (1 + (want[i] < 0 ? -want[i] : want[i])),
			"daxpy y[%lld] = %.17g, want %.17g", i, y[i], want[i]);
	}
	CHECK(cudaFree(dx));
	CHECK(cudaFree(dy));
}

static void check_ints_and_structs()
{
	const unsigned int n = 4099;
	std::vector<int> in(n), out(n);
	Rng r(3);
	for (unsigned int i = 0; i < n; i++)
		in[i] = r.range(-100000, 100000);
	int *din, *dout;
	CHECK(cudaMalloc(&din, n * sizeof(int)));
	CHECK(cudaMalloc(&dout, n * sizeof(int)));
	CHECK(cudaMemcpy(din, in.data(), n * sizeof(int), cudaMemcpyHostToDevice));
	for (int it = 0; it < 300; it++) {
		int mul = r.range(-9, 10), add = r.range(-5000, 5000);
		mk_iaffine<<<(n + 63) / 64, 64>>>(dout, din, mul, add, n);
		CHECK(cudaGetLastError());
		if (it % 50 == 49) {
			CHECK(cudaMemcpy(out.data(), dout, n * sizeof(int),
					 cudaMemcpyDeviceToHost));
			for (unsigned int i = 0; i < n; i++)
				REQUIRE(out[i] == in[i] * mul + add,
					"iaffine out[%u] = %d, want %d", i, out[i],
					in[i] * mul + add);
		}
	}

	// Small struct by value.
	double *dd;
	const int m = 777;
	std::vector<double> dres(m);
	CHECK(cudaMalloc(&dd, m * sizeof(double)));
	for (int it = 0; it < 200; it++) {
		Small s = { r.range(-50, 50), (float)r.range(-1000, 1000) / 8.0f,
			    r.range(0, 1 << 20) / 1024.0 };
		mk_small_struct<<<(m + 31) / 32, 32>>>(s, dd, m);
		CHECK(cudaGetLastError());
		if (it % 40 == 39) {
			CHECK(cudaMemcpy(dres.data(), dd, m * sizeof(double),
					 cudaMemcpyDeviceToHost));
			for (int i = 0; i < m; i++) {
				double want = s.a * i + s.b + s.c;
				REQUIRE(dres[i] == want, "small struct out[%d] = %.17g, want %.17g",
					i, dres[i], want);
			}
		}
	}

	// 1 KiB struct by value.
	long long *dl;
	std::vector<long long> lres(254);
	CHECK(cudaMalloc(&dl, 254 * sizeof(long long)));
	for (int it = 0; it < 200; it++) {
		Big b;
		b.seed = r.range(-1000000, 1000000);
		for (int i = 0; i < 254; i++)
			b.vals[i] = r.range(-100000, 100000);
		mk_big_struct<<<4, 64>>>(b, dl);
		CHECK(cudaGetLastError());
		if (it % 25 == 24) {
			CHECK(cudaMemcpy(lres.data(), dl, 254 * sizeof(long long),
					 cudaMemcpyDeviceToHost));
			for (int i = 0; i < 254; i++)
				REQUIRE(lres[i] == b.vals[i] * b.seed + i,
					"big struct out[%d] = %lld, want %lld", i, lres[i],
					b.vals[i] * b.seed + i);
		}
	}
	CHECK(cudaFree(din));
	CHECK(cudaFree(dout));
	CHECK(cudaFree(dd));
	CHECK(cudaFree(dl));
}

static void check_many_params()
{
	double *d;
	double h[4];
	CHECK(cudaMalloc(&d, sizeof(h)));
	Rng r(4);
	for (int it = 0; it < 300; it++) {
		char c0 = (char)r.range(-100, 100);
		short s1 = (short)r.range(-30000, 30000);
		int i2 = r.range(-1 << 30, 1 << 30);
		long long l3 = (long long)r.next() >> 20;
		float f4 = r.range(-4096, 4096) / 16.0f;
		double d5 = r.range(-1 << 20, 1 << 20) / 64.0;
		unsigned char c6 = (unsigned char)r.u32();
		unsigned short s7 = (unsigned short)r.u32();
		unsigned int u8 = r.u32();
		unsigned long long u9 = r.next() >> 16;
		float f10 = r.range(0, 1000) / 4.0f;
		double d11 = r.range(-999, 999) / 8.0;
		char c12 = (char)r.range(-100, 100);
		int i13 = r.range(-1000000, 1000000);
		short s14 = (short)r.range(-3000, 3000);
		double d15 = r.range(-1000, 1000) / 2.0;
		int i16 = r.range(-1000000, 1000000);
		char c17 = (char)r.range(0, 120);
		long long l18 = (long long)r.next() >> 24;
		float f19 = r.range(-100, 100) / 2.0f;
		int i20 = r.range(-1000000, 1000000);
		double d21 = r.range(-1 << 20, 1 << 20) / 128.0;
		char c22 = (char)r.range(-100, 100);
		mk_many_params<<<1, 32>>>(c0, s1, i2, l3, f4, d5, c6, s7, u8, u9,
					  f10, d11, c12, i13, s14, d15, i16, c17,
					  l18, f19, i20, d21, c22, d);
		CHECK(cudaGetLastError());
		CHECK(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
		double w0 = c0 + s1 + i2 + (double)l3 + f4 + d5;
		double w1 = c6 + s7 + (double)u8 + (double)u9 + f10 + d11;
		double w2 = c12 + i13 + s14 + d15 + i16 + c17;
		double w3 = (double)l18 + f19 + i20 + d21 + c22;
		REQUIRE(h[0] == w0 && h[1] == w1 && h[2] == w2 && h[3] == w3,
			"many params iteration %d: %.17g %.17g %.17g %.17g, want %.17g %.17g %.17g %.17g",
			it, h[0], h[1], h[2], h[3], w0, w1, w2, w3);
	}
	CHECK(cudaFree(d));
}

static void check_grid3d()
{
	const dim3 grids[] = { dim3(3, 2, 2), dim3(1, 5, 3), dim3(4, 1, 1),
			       dim3(2, 3, 4) };
	const dim3 blocks[] = { dim3(8, 4, 2), dim3(4, 4, 4), dim3(32, 1, 8),
				dim3(1, 16, 2) };
	for (int c = 0; c < 4; c++) {
		dim3 g = grids[c], b = blocks[c];
		unsigned int nx = g.x * b.x, ny = g.y * b.y, nz = g.z * b.z;
		size_t n = (size_t)nx * ny * nz;
		unsigned int *d;
		std::vector<unsigned int> h(n);
		CHECK(cudaMalloc(&d, n * sizeof(unsigned int)));
		CHECK(cudaMemset(d, 0xff, n * sizeof(unsigned int)));
		unsigned int salt = 0x9e3779b9u * (c + 1);
		mk_grid3d<<<g, b>>>(d, salt);
		CHECK(cudaGetLastError());
		CHECK(cudaMemcpy(h.data(), d, n * sizeof(unsigned int),
				 cudaMemcpyDeviceToHost));
		for (unsigned int z = 0; z < nz; z++)
			for (unsigned int y = 0; y < ny; y++)
				for (unsigned int x = 0; x < nx; x++) {
					unsigned int bx = x / b.x, by = y / b.y, bz = z / b.z;
					unsigned int tx = x % b.x, ty = y % b.y, tz = z % b.z;
					unsigned int blk = bx + g.x * (by + g.y * bz);
					unsigned int th = tx + b.x * (ty + b.y * tz);
					unsigned int want = (blk * b.x * b.y * b.z + th) ^ salt;
					unsigned int got = h[x + nx * (y + (size_t)ny * z)];
					REQUIRE(got == want,
						"grid3d case %d at (%u,%u,%u): %#x, want %#x", c,
						x, y, z, got, want);
				}
		CHECK(cudaFree(d));
	}
}

static void check_block_sum_and_count()
{
	const int n = 10000, bs = 256, nb = (n + bs - 1) / bs;
	std::vector<int> in(n);
	std::vector<long long> out(nb);
	Rng r(5);
	for (int i = 0; i < n; i++)
		in[i] = r.range(-1 << 20, 1 << 20);
	int *din;
	long long *dout;
	CHECK(cudaMalloc(&din, n * sizeof(int)));
	CHECK(cudaMalloc(&dout, nb * sizeof(long long)));
	CHECK(cudaMemcpy(din, in.data(), n * sizeof(int), cudaMemcpyHostToDevice));
	mk_block_sum<<<nb, bs, bs * sizeof(long long)>>>(din, dout, n);
	CHECK(cudaGetLastError());
	CHECK(cudaMemcpy(out.data(), dout, nb * sizeof(long long),
			 cudaMemcpyDeviceToHost));
	for (int b = 0; b < nb; b++) {
		long long want = 0;
		for (int i = b * bs; i < n && i < (b + 1) * bs; i++)
			want += in[i];
		REQUIRE(out[b] == want, "block sum %d = %lld, want %lld", b, out[b],
			want);
	}
	CHECK(cudaFree(din));
	CHECK(cudaFree(dout));

	// Thousands of tiny launches on one counter.
	unsigned long long *dc, hc = 0, want = 0;
	CHECK(cudaMalloc(&dc, sizeof(*dc)));
	CHECK(cudaMemset(dc, 0, sizeof(*dc)));
	for (int it = 0; it < 4000; it++) {
		unsigned int g = 1 + it % 3, b = 32 * (1 + it % 4);
		unsigned long long step = 1 + (it % 7);
		mk_count<<<g, b>>>(dc, step);
		want += (unsigned long long)g * b * step;
	}
	CHECK(cudaGetLastError());
	CHECK(cudaMemcpy(&hc, dc, sizeof(hc), cudaMemcpyDeviceToHost));
	REQUIRE(hc == want, "counter %llu, want %llu", hc, want);
	CHECK(cudaFree(dc));
}

static void check_cxx_name()
{
	int *d;
	int h[64];
	CHECK(cudaMalloc(&d, sizeof(h)));
	for (int v = 100; v < 110; v++) {
		mk_cxx_name<<<2, 32>>>(d, v);
		CHECK(cudaGetLastError());
		CHECK(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
		for (int i = 0; i < 64; i++)
			REQUIRE(h[i] == v - i, "cxx name p[%d] = %d", i, h[i]);
	}
	CHECK(cudaFree(d));
}

int main()
{
	check_saxpy_chain();
	check_daxpy();
	check_ints_and_structs();
	check_many_params();
	check_grid3d();
	check_block_sum_and_count();
	check_cxx_name();
	CHECK(cudaDeviceSynchronize());
	printf("OK\n");
	return 0;
}

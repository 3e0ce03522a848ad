// memcpy_matrix.cu - every copy direction x host memory kind x size x
// sync/async, copies at offsets inside pinned buffers, memsets, 2D and 3D
// copies with pitched device memory, and copies to and from __device__
// symbols.  A kernel checksums device memory after uploads so a copy that
// only echoes data back without placing it on the device is caught.
#include <dlfcn.h>

#include <vector>

#include "test_common.h"

extern "C" __global__ void mc_weighted_sum(const unsigned char *p,
					   unsigned long long n,
					   unsigned long long *out)
{
	unsigned long long acc = 0;
	for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x +
				    threadIdx.x;
	     i < n; i += (unsigned long long)gridDim.x * blockDim.x)
		acc += (unsigned long long)p[i] * ((i % 251) + 1);
	atomicAdd(out, acc);
}

__device__ unsigned int mc_sym[4096];
__device__ int mc_sym_init[8] = { 3, 1, 4, 1, 5, 9, 2, 6 };

static unsigned long long cpu_weighted_sum(const void *p, size_t n)
{
	const unsigned char *b = (const unsigned char *)p;
	unsigned long long acc = 0;
	for (size_t i = 0; i < n; i++)
		acc += (unsigned long long)b[i] * ((i % 251) + 1);
	return acc;
}

// --- host memory kinds ------------------------------------------------------

enum Kind { PAGEABLE, MALLOC_HOST, HOST_ALLOC, MIGNIFICENT, NKINDS };
static const char *kind_name[NKINDS] = { "pageable", "cudaMallocHost",
					 "cudaHostAlloc", "mignificent_malloc" };
static void *(*mig_malloc)(size_t);
static void (*mig_free)(void *);

static void resolve_mignificent()
{
	mig_malloc = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "mignificent_malloc");
	mig_free = (void (*)(void *))dlsym(RTLD_DEFAULT, "mignificent_free");
	if (!mig_malloc) {
		// The static runtime dlopens libcuda.so.1 privately: ask it.
		void *h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
		if (h) {
			mig_malloc = (void *(*)(size_t))dlsym(h, "mignificent_malloc");
			mig_free = (void (*)(void *))dlsym(h, "mignificent_free");
		}
	}
	if (!mig_malloc || !mig_free)
		mig_malloc = nullptr;
	printf("mignificent_malloc: %s\n", mig_malloc ? "found" : "absent (native)");
	REQUIRE(mig_malloc || !under_mig(),
		"running under mig run but the shim exports no mignificent_malloc");
}

static bool kind_available(int k)
{
	return k != MIGNIFICENT || mig_malloc;
}

static void *host_alloc(int k, size_t n)
{
	void *p = nullptr;
	switch (k) {
	case PAGEABLE:
		p = malloc(n);
		break;
	case MALLOC_HOST:
		CHECK(cudaMallocHost(&p, n));
		break;
	case HOST_ALLOC: {
		CHECK(cudaHostAlloc(&p, n, cudaHostAllocPortable));
		unsigned int fl = 99;
		CHECK(cudaHostGetFlags(&fl, p));
		REQUIRE((fl & cudaHostAllocPortable) != 0, "flags %#x", fl);
		break;
	}
	case MIGNIFICENT:
		p = mig_malloc(n);
		break;
	}
	REQUIRE(p != nullptr, "allocating %zu bytes of %s", n, kind_name[k]);
	return p;
}

static void host_free(int k, void *p)
{
	switch (k) {
	case PAGEABLE:
		free(p);
		break;
	case MALLOC_HOST:
	case HOST_ALLOC:
		CHECK(cudaFreeHost(p));
		break;
	case MIGNIFICENT:
		mig_free(p);
		break;
	}
}

// --- shared state -------------------------------------------------------------

static cudaStream_t stream;
static unsigned long long *d_sum;

static void copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind,
		 bool async)
{
	if (async)
		CHECK(cudaMemcpyAsync(dst, src, n, kind, stream));
	else
		CHECK(cudaMemcpy(dst, src, n, kind));
}

static void device_checksum(const void *d, size_t n, bool async,
			    const char *what)
{
	unsigned long long got = 0, want = 0;
	std::vector<unsigned char> h(n);

	// Read it back first (a plain sync copy) for the CPU's reference.
	CHECK(cudaMemcpy(h.data(), d, n, cudaMemcpyDeviceToHost));
	want = cpu_weighted_sum(h.data(), n);
	if (async) {
		CHECK(cudaMemsetAsync(d_sum, 0, sizeof(*d_sum), stream));
		mc_weighted_sum<<<64, 256, 0, stream>>>((const unsigned char *)d, n,
							d_sum);
		CHECK(cudaGetLastError());
		CHECK(cudaMemcpyAsync(&got, d_sum, sizeof(got),
				      cudaMemcpyDeviceToHost, stream));
		CHECK(cudaStreamSynchronize(stream));
	} else {
		CHECK(cudaMemset(d_sum, 0, sizeof(*d_sum)));
		mc_weighted_sum<<<64, 256>>>((const unsigned char *)d, n, d_sum);
		CHECK(cudaGetLastError());
		CHECK(cudaMemcpy(&got, d_sum, sizeof(got), cudaMemcpyDeviceToHost));
	}
	REQUIRE(got == want, "%s: device checksum %llu, host %llu", what, got,
		want);
}

// --- the matrix -----------------------------------------------------------------

// Small ones on both sides of what the GPU server sends to a copy engine
// as two rows (even, under 32 KiB) and of 32 KiB; pageable ones that the
// shim splits between its copy helpers (256 KiB and more) into 2, 4 or 8
// parts whose size n / parts, rounded down, is a multiple of 64 bytes.
static const size_t sizes[] = { 1, 2, 6, 4094, 4096, 32766, 32767, 65536, 65537,
				(256u << 10) + 1, 300033, (3u << 20) + 17, 20u << 20 };
static const size_t MAXSZ = 20u << 20;
static const size_t GUARD = 64;

static void matrix(void *d1, void *d2)
{
	void *src[NKINDS] = {}, *dst[NKINDS] = {};
	std::vector<unsigned char> guard(GUARD);

	for (int k = 0; k < NKINDS; k++) {
		if (!kind_available(k))
			continue;
		src[k] = host_alloc(k, MAXSZ + GUARD);
		dst[k] = host_alloc(k, MAXSZ + GUARD);
	}
	int cases = 0;
	for (int k = 0; k < NKINDS; k++) {
		if (!kind_available(k))
			continue;
		for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
			for (int async = 0; async < 2; async++) {
				size_t n = sizes[si];
				uint64_t seed = (uint64_t)k * 1000 + si * 10 + async + 1;
				unsigned char *s = (unsigned char *)src[k];
				unsigned char *t = (unsigned char *)dst[k];
				char what[128];
				snprintf(what, sizeof(what), "%s %zu B %s", kind_name[k],
					 n, async ? "async" : "sync");

				fill_bytes(s, n, seed);
				fill_bytes(t, n + GUARD, seed ^ 0xffff);
				memcpy(guard.data(), t + n, GUARD);
				CHECK(cudaMemset(d2, 0x3c, n));

				// H2D, D2D, D2H, queued back to back when async.
				copy(d1, s, n, cudaMemcpyHostToDevice, async);
				copy(d2, d1, n, cudaMemcpyDeviceToDevice, async);
				copy(t, d2, n, cudaMemcpyDeviceToHost, async);
				if (async)
					CHECK(cudaStreamSynchronize(stream));
				REQUIRE_SAME(t, s, n, "%s: H2D/D2D/D2H", what);
				REQUIRE_SAME(t + n, guard.data(), GUARD,
					     "%s: D2H wrote past the end", what);
				device_checksum(d2, n, async, what);

				// H2H.
				fill_bytes(t, n, seed ^ 0xabcdef);
				copy(t, s, n, cudaMemcpyHostToHost, async);
				if (async)
					CHECK(cudaStreamSynchronize(stream));
				REQUIRE_SAME(t, s, n, "%s: H2H", what);

				// cudaMemcpyDefault in every direction.
				fill_bytes(s, n, seed ^ 0x5555);
				fill_bytes(t, n, seed ^ 0x7777);
				copy(d1, s, n, cudaMemcpyDefault, async);
				copy(d2, d1, n, cudaMemcpyDefault, async);
				copy(t, d2, n, cudaMemcpyDefault, async);
				if (async)
					CHECK(cudaStreamSynchronize(stream));
				REQUIRE_SAME(t, s, n, "%s: cudaMemcpyDefault", what);
				fill_bytes(t, n, seed ^ 0x9999);
				copy(t, s, n, cudaMemcpyDefault, async);
				if (async)
					CHECK(cudaStreamSynchronize(stream));
				REQUIRE_SAME(t, s, n, "%s: cudaMemcpyDefault H2H", what);
				cases++;
			}
		}
	}

	// Across kinds: upload from one kind, download into another.
	const size_t n = 65537;
	for (int a = 0; a < NKINDS; a++) {
		for (int b = 0; b < NKINDS; b++) {
			if (!kind_available(a) || !kind_available(b))
				continue;
			fill_bytes(src[a], n, 77 + a * 7 + b);
			fill_bytes(dst[b], n, 99 + a * 7 + b);
			CHECK(cudaMemcpyAsync(d1, src[a], n, cudaMemcpyHostToDevice,
					      stream));
			CHECK(cudaMemcpyAsync(dst[b], d1, n, cudaMemcpyDeviceToHost,
					      stream));
			CHECK(cudaStreamSynchronize(stream));
			REQUIRE_SAME(dst[b], src[a], n, "%s -> %s", kind_name[a],
				     kind_name[b]);
			cases++;
		}
	}
	for (int k = 0; k < NKINDS; k++) {
		if (!kind_available(k))
			continue;
		host_free(k, src[k]);
		host_free(k, dst[k]);
	}
	printf("matrix: %d cases\n", cases);
}

// Copies from and to the inside of pinned buffers, not their start.
static void offsets(void *d1)
{
	struct {
		size_t src_off, dst_off, len;
	} cases[] = {
		{ 1, 3, 1 },	       { 13, 4096, 4096 },
		{ 4095, 1, 65537 },    { 100003, 7, 300001 },
		{ 777, 65536, 1 << 20 }, { 4096, 4096, (2 << 20) + 5 },
		{ 5, 9, 4094 },	       { 3, 2, 32766 },
		{ 8, 8, 2 },
	};
	const size_t around = 16; // device bytes either side that must stay
	std::vector<unsigned char> window;
	const size_t bufsz = (3u << 20) + 8192;
	std::vector<unsigned char> before(bufsz);

	for (int k = 0; k < NKINDS; k++) {
		if (!kind_available(k))
			continue;
		unsigned char *p = (unsigned char *)host_alloc(k, bufsz);
		unsigned char *q = (unsigned char *)host_alloc(k, bufsz);
		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
			for (int async = 0; async < 2; async++) {
				size_t so = cases[c].src_off, dof = cases[c].dst_off,
				       len = cases[c].len;
				fill_bytes(p, bufsz, 500 + c * 2 + async);
				fill_bytes(q, bufsz, 900 + c * 2 + async);
				memcpy(before.data(), q, bufsz);
				// Place the data at an odd device offset too.
				unsigned char *d = (unsigned char *)d1 + around + 3 + c;
				CHECK(cudaMemset(d - around, 0x5a, len + 2 * around));
				copy(d, p + so, len, cudaMemcpyHostToDevice, async);
				copy(q + dof, d, len, cudaMemcpyDeviceToHost, async);
				if (async)
					CHECK(cudaStreamSynchronize(stream));
				// The upload wrote its bytes and none beside them.
				window.assign(len + 2 * around, 0);
				CHECK(cudaMemcpy(window.data(), d - around, window.size(),
						 cudaMemcpyDeviceToHost));
				for (size_t i = 0; i < around; i++)
					REQUIRE(window[i] == 0x5a && window[around + len + i] == 0x5a,
						"%s offset case %zu %s: the upload wrote beside its bytes"
						" (%zu: %02x %02x)", kind_name[k], c,
						async ? "async" : "sync", i, window[i],
						window[around + len + i]);
				REQUIRE_SAME(q + dof, p + so, len,
					     "%s offset case %zu %s", kind_name[k], c,
					     async ? "async" : "sync");
				REQUIRE_SAME(q, before.data(), dof,
					     "%s offset case %zu: bytes before the destination changed",
					     kind_name[k], c);
				REQUIRE_SAME(q + dof + len, before.data() + dof + len,
					     bufsz - dof - len,
					     "%s offset case %zu: bytes after the destination changed",
					     kind_name[k], c);
			}
		}
		host_free(k, p);
		host_free(k, q);
	}
	printf("offsets: done\n");
}

static void memsets(unsigned char *d)
{
	const size_t n = (3u << 20) + 17 + 64;
	std::vector<unsigned char> h(n), want(n);
	struct {
		size_t off, len;
		int value;
		bool async;
	} cases[] = {
		{ 5, 1, 0xa5, false },	     { 0, 4097, 0x11, false },
		{ 33, (3u << 20) + 17, 0x5c, false }, { 7, 1, 0xee, true },
		{ 4096, 65537, 0x3c, true },  { 1, (3u << 20) + 17, 0x81, true },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		fill_bytes(want.data(), n, 4242 + c);
		CHECK(cudaMemcpy(d, want.data(), n, cudaMemcpyHostToDevice));
		memset(want.data() + cases[c].off, cases[c].value, cases[c].len);
		if (cases[c].async) {
			CHECK(cudaMemsetAsync(d + cases[c].off, cases[c].value,
					      cases[c].len, stream));
			CHECK(cudaStreamSynchronize(stream));
		} else {
			CHECK(cudaMemset(d + cases[c].off, cases[c].value,
					 cases[c].len));
		}
		CHECK(cudaMemcpy(h.data(), d, n, cudaMemcpyDeviceToHost));
		REQUIRE_SAME(h.data(), want.data(), n, "memset case %zu", c);
	}

	// 2D memset on pitched memory.
	size_t pitch = 0;
	void *dp = nullptr;
	const size_t w = 333, rows = 9;
	CHECK(cudaMallocPitch(&dp, &pitch, w, rows));
	std::vector<unsigned char> img(pitch * rows), got(pitch * rows);
	fill_bytes(img.data(), img.size(), 31337);
	CHECK(cudaMemcpy(dp, img.data(), img.size(), cudaMemcpyHostToDevice));
	CHECK(cudaMemset2D((unsigned char *)dp + 3, pitch, 0x77, w - 10, rows - 1));
	for (size_t r = 0; r < rows - 1; r++)
		memset(img.data() + r * pitch + 3, 0x77, w - 10);
	CHECK(cudaMemcpy(got.data(), dp, got.size(), cudaMemcpyDeviceToHost));
	REQUIRE_SAME(got.data(), img.data(), img.size(), "cudaMemset2D");
	CHECK(cudaFree(dp));
	printf("memsets: done\n");
}

static void copies_2d()
{
	const size_t w = 999, h = 37, spitch = w + 24, dpitch = w + 100;
	size_t pitch = 0, pitch2 = 0;
	void *dp = nullptr, *dp2 = nullptr;

	CHECK(cudaMallocPitch(&dp, &pitch, w, h));
	CHECK(cudaMallocPitch(&dp2, &pitch2, w + 1, h));
	printf("2D: pitches %zu and %zu for widths %zu and %zu\n", pitch, pitch2,
	       w, w + 1);
	REQUIRE(pitch >= w && pitch2 >= w + 1, "pitch too small");

	const int kinds[] = { PAGEABLE, MALLOC_HOST, MIGNIFICENT };
	for (int ki = 0; ki < 3; ki++) {
		int k = kinds[ki];
		if (!kind_available(k))
			continue;
		for (int async = 0; async < 2; async++) {
			unsigned char *s = (unsigned char *)host_alloc(k, spitch * h);
			unsigned char *t = (unsigned char *)host_alloc(k, dpitch * h);
			std::vector<unsigned char> tb(dpitch * h), lin(pitch * h);
			fill_bytes(s, spitch * h, 600 + k * 2 + async);
			fill_bytes(t, dpitch * h, 700 + k * 2 + async);
			memcpy(tb.data(), t, tb.size());
			CHECK(cudaMemset(dp, 0, pitch * h));
			if (async) {
				CHECK(cudaMemcpy2DAsync(dp, pitch, s, spitch, w, h,
							cudaMemcpyHostToDevice, stream));
				CHECK(cudaMemcpy2DAsync(dp2, pitch2, dp, pitch, w, h,
							cudaMemcpyDeviceToDevice, stream));
				CHECK(cudaMemcpy2DAsync(t, dpitch, dp2, pitch2, w, h,
							cudaMemcpyDeviceToHost, stream));
				CHECK(cudaStreamSynchronize(stream));
			} else {
				CHECK(cudaMemcpy2D(dp, pitch, s, spitch, w, h,
						   cudaMemcpyHostToDevice));
				CHECK(cudaMemcpy2D(dp2, pitch2, dp, pitch, w, h,
						   cudaMemcpyDeviceToDevice));
				CHECK(cudaMemcpy2D(t, dpitch, dp2, pitch2, w, h,
						   cudaMemcpyDeviceToHost));
			}
			// The device rows are where the pitch says.
			CHECK(cudaMemcpy(lin.data(), dp, lin.size(),
					 cudaMemcpyDeviceToHost));
			for (size_t r = 0; r < h; r++) {
				REQUIRE_SAME(lin.data() + r * pitch, s + r * spitch, w,
					     "2D %s: device row %zu", kind_name[k], r);
				for (size_t x = w; x < pitch; x++)
					REQUIRE(lin[r * pitch + x] == 0,
						"2D %s: device pad of row %zu written",
						kind_name[k], r);
				REQUIRE_SAME(t + r * dpitch, s + r * spitch, w,
					     "2D %s %s: row %zu", kind_name[k],
					     async ? "async" : "sync", r);
				REQUIRE_SAME(t + r * dpitch + w, tb.data() + r * dpitch + w,
					     dpitch - w, "2D %s: host pad of row %zu written",
					     kind_name[k], r);
			}
			host_free(k, s);
			host_free(k, t);
		}
	}
	CHECK(cudaFree(dp));
	CHECK(cudaFree(dp2));

	// 3D: a pitched volume, host slices of a different height.
	const size_t W = 200, H = 13, D = 7, hp = W + 8, hh = H, tp = W + 40,
		     th = H + 2;
	cudaPitchedPtr vol;
	cudaExtent ext = make_cudaExtent(W, H, D);
	CHECK(cudaMalloc3D(&vol, ext));
	REQUIRE(vol.pitch >= W && vol.xsize == W && vol.ysize == H,
		"cudaMalloc3D pitch %zu xsize %zu ysize %zu", vol.pitch, vol.xsize,
		vol.ysize);
	for (int async = 0; async < 2; async++) {
		std::vector<unsigned char> s(hp * hh * D), t(tp * th * D), tb;
		fill_bytes(s.data(), s.size(), 8080 + async);
		fill_bytes(t.data(), t.size(), 9090 + async);
		tb = t;
		cudaMemcpy3DParms up = {};
		up.srcPtr = make_cudaPitchedPtr(s.data(), hp, W, hh);
		up.dstPtr = vol;
		up.extent = ext;
		up.kind = cudaMemcpyHostToDevice;
		cudaMemcpy3DParms down = {};
		down.srcPtr = vol;
		down.dstPtr = make_cudaPitchedPtr(t.data(), tp, W, th);
		down.extent = ext;
		down.kind = cudaMemcpyDeviceToHost;
		if (async) {
			CHECK(cudaMemcpy3DAsync(&up, stream));
			CHECK(cudaMemcpy3DAsync(&down, stream));
			CHECK(cudaStreamSynchronize(stream));
		} else {
			CHECK(cudaMemcpy3D(&up));
			CHECK(cudaMemcpy3D(&down));
		}
		for (size_t z = 0; z < D; z++) {
			for (size_t y = 0; y < th; y++) {
				const unsigned char *row = &t[(z * th + y) * tp];
				if (y < H) {
					REQUIRE_SAME(row, &s[(z * hh + y) * hp], W,
						     "3D %s z %zu y %zu",
						     async ? "async" : "sync", z, y);
					REQUIRE_SAME(row + W, &tb[(z * th + y) * tp + W],
						     tp - W, "3D: pad of z %zu y %zu written",
						     z, y);
				} else {
					REQUIRE_SAME(row, &tb[(z * th + y) * tp], tp,
						     "3D: row z %zu y %zu outside the extent written",
						     z, y);
				}
			}
		}
	}
	CHECK(cudaFree(vol.ptr));
	printf("2D/3D: done\n");
}

static void symbols()
{
	int init[8] = {};
	cudaError_t e = cudaMemcpyFromSymbol(init, mc_sym_init, sizeof(init));
	if (on_host_backend() &&
	    (e == cudaErrorInvalidSymbol || e == cudaErrorSymbolNotFound)) {
		printf("symbols: skipped (%s: the host backend cannot find globals "
		       "in this fatbin)\n",
		       cudaGetErrorName(e));
		cudaGetLastError();
		return;
	}
	CHECK(e);
	static const int want_init[8] = { 3, 1, 4, 1, 5, 9, 2, 6 };
	REQUIRE(!memcmp(init, want_init, sizeof(init)),
		"initialized __device__ array reads %d %d %d ...", init[0], init[1],
		init[2]);

	size_t size = 0;
	void *addr = nullptr;
	CHECK(cudaGetSymbolSize(&size, mc_sym));
	CHECK(cudaGetSymbolAddress(&addr, mc_sym));
	REQUIRE(size == sizeof(unsigned int) * 4096, "symbol size %zu", size);
	REQUIRE(addr != nullptr, "symbol address");

	std::vector<unsigned int> a(4096), b(4096), want;
	fill_bytes(a.data(), size, 123);
	CHECK(cudaMemcpyToSymbol(mc_sym, a.data(), size));
	CHECK(cudaMemcpyFromSymbol(b.data(), mc_sym, size));
	REQUIRE_SAME(b.data(), a.data(), size, "ToSymbol/FromSymbol");
	device_checksum(addr, size, false, "symbol");

	// At an offset, then read through the symbol's address.
	want = a;
	std::vector<unsigned char> part(1000);
	fill_bytes(part.data(), part.size(), 456);
	memcpy((unsigned char *)want.data() + 333, part.data(), part.size());
	CHECK(cudaMemcpyToSymbol(mc_sym, part.data(), part.size(), 333));
	CHECK(cudaMemcpy(b.data(), addr, size, cudaMemcpyDeviceToHost));
	REQUIRE_SAME(b.data(), want.data(), size, "ToSymbol at offset 333");

	// Async, on a stream, at an offset both ways.
	fill_bytes(a.data(), size, 789);
	CHECK(cudaMemcpyToSymbolAsync(mc_sym, a.data(), size, 0,
				      cudaMemcpyHostToDevice, stream));
	std::vector<unsigned char> tail(size - 100);
	CHECK(cudaMemcpyFromSymbolAsync(tail.data(), mc_sym, tail.size(), 100,
					cudaMemcpyDeviceToHost, stream));
	CHECK(cudaStreamSynchronize(stream));
	REQUIRE_SAME(tail.data(), (unsigned char *)a.data() + 100, tail.size(),
		     "FromSymbolAsync at offset 100");
	device_checksum(addr, size, true, "symbol async");
	printf("symbols: done\n");
}

int main()
{
	CHECK(cudaFree(0)); // initialize the runtime (and load libcuda)
	resolve_mignificent();
	CHECK(cudaStreamCreate(&stream));
	CHECK(cudaMalloc(&d_sum, sizeof(*d_sum)));

	void *d1 = nullptr, *d2 = nullptr;
	CHECK(cudaMalloc(&d1, MAXSZ + 4096));
	CHECK(cudaMalloc(&d2, MAXSZ + 4096));

	matrix(d1, d2);
	offsets(d1);
	memsets((unsigned char *)d1);
	copies_2d();
	symbols();

	CHECK(cudaFree(d1));
	CHECK(cudaFree(d2));
	CHECK(cudaFree(d_sum));
	CHECK(cudaStreamDestroy(stream));
	CHECK(cudaDeviceSynchronize());
	printf("OK\n");
	return 0;
}

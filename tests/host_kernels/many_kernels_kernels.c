/* many_kernels_kernels.c - host kernels of tests/cuda/many_kernels.cu. */
#include "test_kernels.h"

struct small {
	int a;
	float b;
	double c;
};

struct big {
	long long seed;
	int vals[254];
};

static int mk_saxpy(const struct mig_host_launch *l, void **params)
{
	float a = ARG(float, 0);
	const float *x = ARG(const float *, 1);
	float *y = ARG(float *, 2);
	int n = ARG(int, 3);

	FOR_EACH_X(l, i)
		if ((long long)i < n)
			y[i] = a * x[i] + y[i];
	return 0;
}

static int mk_daxpy(const struct mig_host_launch *l, void **params)
{
	double a = ARG(double, 0);
	const double *x = ARG(const double *, 1);
	double *y = ARG(double *, 2);
	long long n = ARG(long long, 3);

	FOR_EACH_X(l, i)
		if ((long long)i < n)
			y[i] = a * x[i] + y[i];
	return 0;
}

static int mk_iaffine(const struct mig_host_launch *l, void **params)
{
	int *out = ARG(int *, 0);
	const int *in = ARG(const int *, 1);
	int mul = ARG(int, 2), add = ARG(int, 3);
	unsigned int n = ARG(unsigned int, 4);

	FOR_EACH_X(l, i)
		if (i < n)
			out[i] = in[i] * mul + add;
	return 0;
}

static int mk_small_struct(const struct mig_host_launch *l, void **params)
{
	struct small s = ARG(struct small, 0);
	double *out = ARG(double *, 1);
	int n = ARG(int, 2);

	FOR_EACH_X(l, i)
		if ((long long)i < n)
			out[i] = (float)(s.a * (int)i) + s.b + s.c;
	return 0;
}

static int mk_big_struct(const struct mig_host_launch *l, void **params)
{
	const struct big *b = &ARG(struct big, 0);
	long long *out = ARG(long long *, 1);

	FOR_EACH_X(l, i)
		if (i < 254)
			out[i] = b->vals[i] * b->seed + (long long)i;
	return 0;
}

static int mk_many_params(const struct mig_host_launch *l, void **params)
{
	signed char c0 = ARG(signed char, 0), c12 = ARG(signed char, 12),
		    c17 = ARG(signed char, 17), c22 = ARG(signed char, 22);
	short s1 = ARG(short, 1), s14 = ARG(short, 14);
	int i2 = ARG(int, 2), i13 = ARG(int, 13), i16 = ARG(int, 16),
	    i20 = ARG(int, 20);
	long long l3 = ARG(long long, 3), l18 = ARG(long long, 18);
	float f4 = ARG(float, 4), f10 = ARG(float, 10), f19 = ARG(float, 19);
	double d5 = ARG(double, 5), d11 = ARG(double, 11), d15 = ARG(double, 15),
	       d21 = ARG(double, 21);
	unsigned char c6 = ARG(unsigned char, 6);
	unsigned short s7 = ARG(unsigned short, 7);
	unsigned int u8 = ARG(unsigned int, 8);
	unsigned long long u9 = ARG(unsigned long long, 9);
	double *out = ARG(double *, 23);

	(void)l;
	out[0] = c0 + s1 + i2 + (double)l3 + f4 + d5;
	out[1] = c6 + s7 + (double)u8 + (double)u9 + f10 + d11;
	out[2] = c12 + i13 + s14 + d15 + i16 + c17;
	out[3] = (double)l18 + f19 + i20 + d21 + c22;
	return 0;
}

static int mk_grid3d(const struct mig_host_launch *l, void **params)
{
	unsigned int *out = ARG(unsigned int *, 0);
	unsigned int salt = ARG(unsigned int, 1);
	const unsigned int *g = l->grid, *b = l->block;
	unsigned int nx = g[0] * b[0], ny = g[1] * b[1];

	for (unsigned int bz = 0; bz < g[2]; bz++)
	for (unsigned int by = 0; by < g[1]; by++)
	for (unsigned int bx = 0; bx < g[0]; bx++)
	for (unsigned int tz = 0; tz < b[2]; tz++)
	for (unsigned int ty = 0; ty < b[1]; ty++)
	for (unsigned int tx = 0; tx < b[0]; tx++) {
		unsigned int x = bx * b[0] + tx, y = by * b[1] + ty,
			     z = bz * b[2] + tz;
		unsigned int blk = bx + g[0] * (by + g[1] * bz);
		unsigned int th = tx + b[0] * (ty + b[1] * tz);

		out[x + nx * (y + ny * z)] = (blk * b[0] * b[1] * b[2] + th) ^ salt;
	}
	return 0;
}

static int mk_block_sum(const struct mig_host_launch *l, void **params)
{
	const int *in = ARG(const int *, 0);
	long long *out = ARG(long long *, 1);
	int n = ARG(int, 2);

	if (l->shared_mem < l->block[0] * sizeof(long long))
		return 700; /* the kernel would run past its shared memory */
	for (unsigned int bx = 0; bx < l->grid[0]; bx++) {
		long long s = 0;

		for (unsigned int t = 0; t < l->block[0]; t++) {
			long long i = (long long)bx * l->block[0] + t;

			if (i < n)
				s += in[i];
		}
		out[bx] = s;
	}
	return 0;
}

static int mk_count(const struct mig_host_launch *l, void **params)
{
	*ARG(unsigned long long *, 0) += NTHREADS(l) * ARG(unsigned long long, 1);
	return 0;
}

static int mk_cxx_name(const struct mig_host_launch *l, void **params)
{
	int *p = ARG(int *, 0), v = ARG(int, 1);

	FOR_EACH_X(l, i)
		if (i < 64)
			p[i] = v - (int)i;
	return 0;
}

HOST_KERNEL_TABLE(many_kernels) = {
	{ "mk_saxpy", 4, { 4, 8, 8, 4 }, mk_saxpy, 0 },
	{ "mk_daxpy", 4, { 8, 8, 8, 8 }, mk_daxpy, 0 },
	{ "mk_iaffine", 5, { 8, 8, 4, 4, 4 }, mk_iaffine, 0 },
	{ "mk_small_struct", 3, { 16, 8, 4 }, mk_small_struct, 0 },
	{ "mk_big_struct", 2, { 1024, 8 }, mk_big_struct, 0 },
	{ "mk_many_params", 24,
	  { 1, 2, 4, 8, 4, 8, 1, 2, 4, 8, 4, 8, 1, 4, 2, 8, 4, 1, 8, 4, 4, 8, 1, 8 },
	  mk_many_params, 0 },
	{ "mk_grid3d", 2, { 8, 4 }, mk_grid3d, 0 },
	{ "mk_block_sum", 3, { 8, 8, 4 }, mk_block_sum, 0 },
	{ "mk_count", 2, { 8, 8 }, mk_count, 0 },
	{ "_Z11mk_cxx_namePii", 2, { 8, 4 }, mk_cxx_name, 0 },
	{ 0 },
};

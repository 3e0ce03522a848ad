// test_common.h - helpers shared by the CUDA test programs in tests/cuda.
//
// Every program prints "OK" and exits 0 when every check passed, and
// prints what went wrong (file:line, the call, the error name) and exits 1
// otherwise.  MIG_TEST_BACKEND (host|cuda) tells a program which server
// backend it runs against, for the few checks the host test double cannot
// honour; unset means native or the real GPU.
#ifndef MIG_TEST_COMMON_H
#define MIG_TEST_COMMON_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda.h>
#include <cuda_runtime.h>

#define CHECK(x)                                                              \
	do {                                                                  \
		cudaError_t e_ = (x);                                         \
		if (e_ != cudaSuccess) {                                      \
			fprintf(stderr, "FAIL %s:%d: %s: %s (%s)\n", __FILE__, \
				__LINE__, #x, cudaGetErrorName(e_),           \
				cudaGetErrorString(e_));                      \
			exit(1);                                              \
		}                                                             \
	} while (0)

// The same for a driver API call (programs that use cuXxx directly).
#define CU(x)                                                                 \
	do {                                                                  \
		CUresult r_ = (x);                                            \
		if (r_ != CUDA_SUCCESS) {                                     \
			const char *n_ = nullptr;                             \
			cuGetErrorName(r_, &n_);                              \
			fprintf(stderr, "FAIL %s:%d: %s: %s (%d)\n", __FILE__, \
				__LINE__, #x, n_ ? n_ : "?", (int)r_);        \
			exit(1);                                              \
		}                                                             \
	} while (0)

// A driver error's name, for messages.
static inline const char *cu_name(CUresult r)
{
	const char *n = nullptr;
	cuGetErrorName(r, &n);
	return n ? n : "?";
}

// A call that must fail with exactly @want.
#define EXPECT_ERR(x, want)                                                   \
	do {                                                                  \
		cudaError_t e_ = (x);                                         \
		if (e_ != (want)) {                                           \
			fprintf(stderr, "FAIL %s:%d: %s returned %s, want %s\n", \
				__FILE__, __LINE__, #x, cudaGetErrorName(e_), \
				cudaGetErrorName(want));                      \
			exit(1);                                              \
		}                                                             \
	} while (0)

#define REQUIRE(cond, ...)                                                    \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, \
				#cond);                                       \
			fprintf(stderr, __VA_ARGS__);                         \
			fprintf(stderr, "\n");                                \
			exit(1);                                              \
		}                                                             \
	} while (0)

// Which backend the test runs against: "host", "cuda" or "" (native).
static inline const char *test_backend(void)
{
	const char *b = getenv("MIG_TEST_BACKEND");
	return b ? b : "";
}

static inline bool on_host_backend(void)
{
	return !strcmp(test_backend(), "host");
}

// Are we running through `mig run` (the shim), as opposed to natively?
// `mig run` passes MIG_SEGMENT_FD, which the shim removes from the
// environment when it attaches, so look before main() too; the test suite
// also says so through MIG_TEST_BACKEND (empty when native).
static const bool mig_segment_fd_at_start = getenv("MIG_SEGMENT_FD") != NULL;

static inline bool under_mig(void)
{
	return mig_segment_fd_at_start || getenv("MIG_SEGMENT_FD") != NULL ||
	       !strcmp(test_backend(), "host") || !strcmp(test_backend(), "cuda");
}

// Deterministic, non-trivial data: xorshift64*.
struct Rng {
	uint64_t s;
	explicit Rng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 0x1234567ull) {}
	uint64_t next()
	{
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		return s * 0x2545f4914f6cdd1dull;
	}
	uint32_t u32() { return (uint32_t)(next() >> 32); }
	// Uniform in [lo, hi).
	int range(int lo, int hi) { return lo + (int)(u32() % (uint32_t)(hi - lo)); }
	float unit() { return (float)(u32() >> 8) / 16777216.0f; }
};

// Fill @n bytes with a pattern that depends on @seed and never repeats
// with a small period (so an offset or length bug shows).
static inline void fill_bytes(void *p, size_t n, uint64_t seed)
{
	Rng r(seed);
	uint8_t *b = (uint8_t *)p;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t v = r.next();
		memcpy(b + i, &v, 8);
	}
	for (; i < n; i++)
		b[i] = (uint8_t)r.next();
}

// First differing byte, or -1.
static inline long long first_diff(const void *a, const void *b, size_t n)
{
	const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;

	if (!memcmp(x, y, n))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return (long long)i;
	return -1;
}

#define REQUIRE_SAME(a, b, n, ...)                                            \
	do {                                                                  \
		long long d_ = first_diff((a), (b), (n));                     \
		if (d_ >= 0) {                                                \
			fprintf(stderr, "FAIL %s:%d: bytes differ at %lld of %zu: ", \
				__FILE__, __LINE__, d_, (size_t)(n));         \
			fprintf(stderr, __VA_ARGS__);                         \
			fprintf(stderr, "\n");                                \
			exit(1);                                              \
		}                                                             \
	} while (0)

#endif // MIG_TEST_COMMON_H

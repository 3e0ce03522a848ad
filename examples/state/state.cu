// state.cu - a function that is mostly GPU state, for the lukewarm
// benchmark (bench/lukewarm): what a swap-out and swap-in must move, and
// a check that they moved it intact.
//
// At instance start (mignificent_init) it allocates STATE_BYTES of device
// memory (default 1 GiB; bytes, or a number with K, M, G or T: powers of
// 1024, "GiB", "GB" and "G" alike; a multiple of 8 bytes) with cudaMalloc,
// in chunks of at most 256 MiB as a framework's allocator would, fills it
// with a pattern by a kernel and checks the fill against the checksum it
// expects (a closed form: nothing to compute over the state on the CPU).
//
// An invocation (any request body) runs one checksum pass over all of the
// state (a bandwidth-bound kernel per chunk, partial sums per block added
// into one 64-bit total, then an 8-byte read-back) and answers JSON:
//
//   {"bytes": 1073741824, "allocations": 4, "checksum": "0x...", "ok": true}
//
// "ok" says the checksum is the expected one; when it is not, the handler
// fails (status 1, the same JSON as its message), so that a swap that lost
// or moved data shows.  Word i of the state holds i * K + C (mod 2^64) and
// the checksum is the sum of word_i * (i + 1): a lost, zeroed or misplaced
// chunk changes it.
//
// examples/CMakeLists.txt builds it with nvcc into build/examples/libstate.so
// (handler "state"); state_kernels.c holds its kernels for the host test
// double (MIG_HOST_KERNELS=<build>/examples/libstate_kernels.so).
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>

#include "mignificent.h"

#define STATE_DEFAULT (1ull << 30)
#define CHUNK_MAX (256ull << 20)
#define THREADS 256
// The pattern: word i is i * PAT_MUL + PAT_ADD (state_kernels.c too).
#define PAT_MUL 0x9e3779b97f4a7c15ull
#define PAT_ADD 0x2545f4914f6cdd1dull

// Fill @n words at @p, the state's words @first.. of the pattern.
extern "C" __global__ void state_fill(unsigned long long *p,
				      unsigned long long n,
				      unsigned long long first)
{
	unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;

	for (unsigned long long j =
		     (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
	     j < n; j += stride)
		p[j] = (first + j) * PAT_MUL + PAT_ADD;
}

// Add sum(p[j] * (first + j + 1)) over @n words to *@total (mod 2^64).
extern "C" __global__ void state_sum(const unsigned long long *p,
				     unsigned long long n,
				     unsigned long long first,
				     unsigned long long *total)
{
	__shared__ unsigned long long part[THREADS / 32];
	unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
	unsigned long long acc = 0;

	for (unsigned long long j =
		     (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
	     j < n; j += stride)
		acc += p[j] * (first + j + 1);
	for (int o = 16; o; o >>= 1)
		acc += __shfl_down_sync(0xffffffffu, acc, o);
	if ((threadIdx.x & 31) == 0)
		part[threadIdx.x >> 5] = acc;
	__syncthreads();
	if (threadIdx.x == 0) {
		unsigned long long s = 0;

		for (unsigned int w = 0; w < blockDim.x / 32; w++)
			s += part[w];
		atomicAdd(total, s);
	}
}

struct chunk {
	unsigned long long *p;
	uint64_t words;
};

static struct chunk *chunks;
static int nchunks, blocks;
static uint64_t state_bytes, expected;
static unsigned long long *d_total;

// @s as a size: bytes, or a number with K, M, G, T (+ "iB" or "B"), powers
// of 1024 as the daemon reads sizes.  0 and *@out, or -EINVAL.
static int parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	int shift = 0;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		char c = (char)(end[0] & ~0x20); // upper case
		const char *u = c ? strchr(units, c) : NULL;

		if (!u)
			return -EINVAL;
		shift = 10 * (int)(u - units + 1);
		end++;
		if (!strcmp(end, "iB") || !strcmp(end, "B"))
			end += strlen(end);
		if (*end)
			return -EINVAL;
	}
	if (v > (~0ull >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

// sum over i < @n of (i * PAT_MUL + PAT_ADD) * (i + 1), mod 2^64, by the
// closed form PAT_MUL * (n-1)n(n+1)/3 + PAT_ADD * n(n+1)/2: the divisions
// are exact on the factor they divide, the rest wraps like the kernel.
static uint64_t expected_sum(uint64_t n)
{
	uint64_t a = n - 1, b = n, c = n + 1, tri, half;

	if (n == 0)
		return 0;
	if (a % 3 == 0)
		a /= 3;
	else if (b % 3 == 0)
		b /= 3;
	else
		c /= 3;
	tri = a * b * c;
	half = n % 2 ? n * ((n + 1) / 2) : n / 2 * (n + 1);
	return PAT_MUL * tri + PAT_ADD * half;
}

// The checksum of the whole state on the GPU, into *@sum.
static cudaError_t checksum(uint64_t *sum)
{
	unsigned long long first = 0, total = 0;
	cudaError_t e;

	if ((e = cudaMemset(d_total, 0, sizeof(*d_total))))
		return e;
	for (int i = 0; i < nchunks; i++) {
		state_sum<<<blocks, THREADS>>>(chunks[i].p, chunks[i].words,
					       first, d_total);
		if ((e = cudaGetLastError()))
			return e;
		first += chunks[i].words;
	}
	if ((e = cudaMemcpy(&total, d_total, sizeof(total),
			    cudaMemcpyDeviceToHost)))
		return e;
	*sum = total;
	return cudaSuccess;
}

static int init_failed(const char *what, cudaError_t e)
{
	fprintf(stderr, "state: %s: %s (%s)\n", what, cudaGetErrorString(e),
		cudaGetErrorName(e));
	return 4;
}

extern "C" int mignificent_init(void)
{
	const char *env = getenv("STATE_BYTES");
	unsigned long long first = 0;
	uint64_t left, sum = 0;
	int sms = 0;
	cudaError_t e;

	state_bytes = STATE_DEFAULT;
	if (env && *env &&
	    (parse_size(env, &state_bytes) || !state_bytes ||
	     state_bytes % 8)) {
		fprintf(stderr,
			"state: STATE_BYTES=\"%s\" is not a size of the state: "
			"give a positive multiple of 8 bytes, as bytes or with "
			"K, M, G or T (powers of 1024), e.g. 1GiB or 64MiB\n",
			env);
		return 2;
	}
	nchunks = (int)((state_bytes + CHUNK_MAX - 1) / CHUNK_MAX);
	chunks = (struct chunk *)calloc((size_t)nchunks, sizeof(*chunks));
	if (!chunks) {
		fprintf(stderr, "state: out of host memory for %d chunks\n",
			nchunks);
		return 3;
	}
	if ((e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount,
					0)))
		return init_failed("cudaDeviceGetAttribute", e);
	blocks = (sms > 0 ? sms : 1) * 8;
	if ((e = cudaMalloc(&d_total, sizeof(*d_total))))
		return init_failed("cudaMalloc of the checksum's total", e);
	left = state_bytes;
	for (int i = 0; i < nchunks; i++) {
		uint64_t b = left < CHUNK_MAX ? left : CHUNK_MAX;

		chunks[i].words = b / 8;
		if ((e = cudaMalloc(&chunks[i].p, b))) {
			fprintf(stderr,
				"state: cudaMalloc of chunk %d of %d (%llu "
				"bytes) failed: %s; deploy with gpu_memory "
				"above STATE_BYTES (%llu bytes)\n",
				i + 1, nchunks, (unsigned long long)b,
				cudaGetErrorName(e),
				(unsigned long long)state_bytes);
			return 4;
		}
		state_fill<<<blocks, THREADS>>>(chunks[i].p, chunks[i].words,
						first);
		if ((e = cudaGetLastError()))
			return init_failed("launching state_fill", e);
		first += chunks[i].words;
		left -= b;
	}
	expected = expected_sum(state_bytes / 8);
	if ((e = checksum(&sum)))
		return init_failed("the first checksum", e);
	if (sum != expected) {
		fprintf(stderr,
			"state: the state's checksum after the fill is "
			"0x%016llx, not 0x%016llx: the fill or checksum "
			"kernel is wrong\n",
			(unsigned long long)sum, (unsigned long long)expected);
		return 5;
	}
	return 0;
}

static int reply(struct mig_payload *o, const char *text, const char *type,
		 int status)
{
	o->data = strdup(text);
	o->len = o->data ? strlen(text) : 0;
	snprintf(o->content_type, sizeof(o->content_type), "%s", type);
	return status;
}

extern "C" int state(const struct mig_payload *in, struct mig_payload *o)
{
	char buf[256];
	uint64_t sum = 0;
	cudaError_t e;
	int n;

	(void)in;
	if ((e = checksum(&sum))) {
		snprintf(buf, sizeof(buf),
			 "state: the checksum pass failed: %s (%s)",
			 cudaGetErrorString(e), cudaGetErrorName(e));
		return reply(o, buf, "text/plain", 2);
	}
	n = snprintf(buf, sizeof(buf),
		     "{\"bytes\": %llu, \"allocations\": %d, "
		     "\"checksum\": \"0x%016llx\", \"ok\": %s",
		     (unsigned long long)state_bytes, nchunks,
		     (unsigned long long)sum,
		     sum == expected ? "true" : "false");
	if (sum != expected) {
		// Fail, with the JSON as the message: both sums show.
		snprintf(buf + n, sizeof(buf) - (size_t)n,
			 ", \"expected\": \"0x%016llx\"}",
			 (unsigned long long)expected);
		return reply(o, buf, "application/json", 1);
	}
	snprintf(buf + n, sizeof(buf) - (size_t)n, "}");
	return reply(o, buf, "application/json", 0);
}

/*
 * copy.c - memcpy in every direction.
 *
 * How bytes travel depends on where the host side lives:
 *   - inside the segment (mignificent_malloc, cuMemAllocHost): the server
 *     DMAs straight from/to it, zero-copy, at pinned bandwidth;
 *   - small pageable buffers (<= MIG_INLINE_MAX): host-to-device data rides
 *     inside the request; device-to-host data comes back in the reply slot;
 *   - large pageable buffers: pipelined through the staging chunks, so
 *     our memcpy into chunk k+1 overlaps the DMA of chunk k.
 * Synchronous copies keep the driver's semantics: a device-to-host copy
 * returns when the data is in the program's buffer; a host-to-device copy
 * from pinned memory returns when it completed, from pageable memory once
 * the data is safely ours.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seqword.h"
#include "shim.h"

enum kind { K_HOST, K_PINNED, K_DEVICE };

/*
 * Copying between pageable memory and the staging chunks is the one part of
 * a pageable copy the DMA cannot do for us, and a single core's memcpy
 * (~10 GB/s) is slower than the link.  Large pieces are therefore split
 * across a few helper threads, started on first use: up to three, one
 * fewer than the CPUs the program may run on (its affinity, e.g. an
 * instance placed on CPUs of its own, not the machine's count: on one CPU
 * a helper only competes with the thread that waits for it).
 * MIG_COPY_THREADS sets their number (0 turns this off).
 *
 * After a piece a helper spins COPY_LINGER_NS for the next one, then
 * sleeps.  That covers the gap between the chunks of one staged copy and
 * between copies issued back to back; a copy now and then (a service's
 * input per request) costs each helper that much spinning.  A spin
 * counted in pauses instead lasted 1-3 ms, depending on the CPU, per
 * helper and per copy: CPU time taken from whatever else runs, the
 * instance's own threads included, and on a busy machine from the thread
 * the helpers wait for.  A helper says when it sleeps (@sleeping): only
 * then does posting it a part cost the caller a futex call (on a virtual
 * machine, the wake-up's interrupt to another CPU).
 *
 * The caller never waits for a helper that has not started its part: on a
 * node whose CPUs are all busy (four functions' CPU pools on its cores) a
 * woken helper can sit in a run queue for a scheduler tick or more, and a
 * caller that spun for its part waited that long for ~150 KB of memcpy.
 * After its own part the caller takes back every part not yet started
 * (PART_POSTED -> PART_IDLE, the same compare-and-swap a helper uses to
 * start one) and copies it itself; it waits only for parts a helper is
 * copying right now.  MIG_COPY_HELPER_DELAY_US (for the tests) makes every
 * helper that late: the copies must still be right, and not slower than
 * the caller's own memcpy.
 */
#define COPY_WORKERS_MAX 7
#define COPY_SPLIT_MIN (256u << 10)
#define COPY_LINGER_NS 100000ull

enum part_state {
	PART_IDLE = 0, /* nothing posted, or done */
	PART_POSTED,   /* dst, src, n set: for whoever takes it first */
	PART_COPYING,  /* taken by the helper, which sets PART_IDLE when done */
};

struct copy_worker {
	pthread_t thread;
	uint32_t state; /* enum part_state; the helper's futex word */
	uint32_t sleeping; /* 1 while the helper sleeps on @state: posting
			      a part must wake it (else it spins for one) */
	void *dst;
	const void *src;
	size_t n;
};

static struct copy_worker workers[COPY_WORKERS_MAX];
static int nworkers = -1;
static unsigned int helper_delay_us;
static pthread_once_t workers_once = PTHREAD_ONCE_INIT;

/* Take @w's posted part: true if it was still posted (the taker copies it). */
static bool part_take(struct copy_worker *w, uint32_t to)
{
	uint32_t posted = PART_POSTED;

	return __atomic_compare_exchange_n(&w->state, &posted, to, false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void *copy_worker_main(void *arg)
{
	struct copy_worker *w = arg;

	for (;;) {
		uint64_t since = mig_now_ns();
		unsigned int spins = 0;
		uint32_t st;

		while ((st = mig_load_acquire(&w->state)) != PART_POSTED) {
			if ((++spins & 63) || mig_now_ns() - since < COPY_LINGER_NS) {
				mig_cpu_relax();
			} else {
				/* Pairs with the fence between the caller's
				 * post and its look at @sleeping. */
				__atomic_store_n(&w->sleeping, 1, __ATOMIC_RELAXED);
				mig_smp_mb();
				if (mig_load_acquire(&w->state) == st)
					mig_futex_wait(&w->state, st, NULL);
				__atomic_store_n(&w->sleeping, 0, __ATOMIC_RELAXED);
				since = mig_now_ns();
			}
		}
		if (helper_delay_us)
			usleep(helper_delay_us);
		if (!part_take(w, PART_COPYING))
			continue; /* the caller took it back */
		memcpy(w->dst, w->src, w->n);
		mig_store_release(&w->state, PART_IDLE);
	}
	return NULL;
}

static void workers_start(void)
{
	const char *env = getenv("MIG_COPY_THREADS");
	cpu_set_t mine;
	long cpus = sched_getaffinity(0, sizeof(mine), &mine) ?
			    sysconf(_SC_NPROCESSORS_ONLN) : CPU_COUNT(&mine);
	int i, n = env ? atoi(env) : (int)(cpus > 1 ? cpus - 1 : 0);

	if (n > 3 && !env)
		n = 3;
	if ((env = getenv("MIG_COPY_HELPER_DELAY_US")))
		helper_delay_us = (unsigned int)strtoul(env, NULL, 10);
	if (n > COPY_WORKERS_MAX)
		n = COPY_WORKERS_MAX;
	for (i = 0; i < n; i++) {
		if (pthread_create(&workers[i].thread, NULL, copy_worker_main,
				   &workers[i]))
			break;
		pthread_setname_np(workers[i].thread, "mig-copy");
	}
	nworkers = i;
	shim_log(1, "copy helpers: %d (%ld CPUs to run on)", nworkers, cpus);
}

/* memcpy, split across the helper threads when large.  Called with the
 * staging lock held, so one split copy runs at a time: every part is
 * PART_IDLE on entry and again on return. */
static void staged_memcpy(void *dst, const void *src, size_t n)
{
	size_t part, off;
	int i, k, posted = 0;

	if (n < COPY_SPLIT_MIN) {
		memcpy(dst, src, n);
		return;
	}
	pthread_once(&workers_once, workers_start);
	if (nworkers <= 0) {
		memcpy(dst, src, n);
		return;
	}
	/* k parts of a multiple of 64 bytes each, at least n / k rounded up:
	 * rounded down, 2^18 + 1 bytes in two made parts of 2^17, and the
	 * last byte was never copied. */
	k = nworkers + 1;
	part = ((n + (size_t)k - 1) / (size_t)k + 63) & ~(size_t)63;
	off = part;
	for (i = 0; i < nworkers && off < n; i++) {
		struct copy_worker *w = &workers[i];

		w->dst = (uint8_t *)dst + off;
		w->src = (const uint8_t *)src + off;
		w->n = n - off < part ? n - off : part;
		off += w->n;
		mig_store_release(&w->state, PART_POSTED);
		mig_smp_mb();
		if (mig_load_relaxed(&w->sleeping)) /* else it spins: no syscall */
			mig_futex_wake(&w->state, 1);
		posted++;
	}
	memcpy(dst, src, part < n ? part : n);
	for (i = 0; i < posted; i++) {
		struct copy_worker *w = &workers[i];
		unsigned int spins = 0;

		if (part_take(w, PART_IDLE)) {
			memcpy(w->dst, w->src, w->n);
			continue;
		}
		/* A helper copies it now: a few microseconds, unless it was
		 * preempted, and then perhaps by a thread on this CPU. */
		while (mig_load_acquire(&w->state) != PART_IDLE) {
			mig_cpu_relax();
			if ((++spins & 1023) == 0)
				sched_yield();
		}
	}
}

static enum kind classify(uint64_t p, size_t n)
{
	if (shim_is_device_ptr(p))
		return K_DEVICE;
	if (shim_in_segment((const void *)(uintptr_t)p, n ? n : 1))
		return K_PINNED;
	return K_HOST;
}

/* Wait until chunk @c finished its last DMA; return that DMA's result. */
static CUresult chunk_wait(uint32_t c)
{
	uint32_t want = shim.staging_ticket[c];

	if (!shim_wait_server(&shim.hdr->staging_done[c], shim_word_is, &want))
		return CUDA_ERROR_DEVICE_UNAVAILABLE;
	return (CUresult)shim.hdr->staging_result[c];
}

/* --- host to device ------------------------------------------------------ */

static CUresult htod_staged(CUdeviceptr dst, const uint8_t *src, size_t n,
			    uint64_t stream, uint32_t flags, bool wait)
{
	CUresult r = CUDA_SUCCESS, r2;
	size_t done = 0;
	uint32_t c = 0, i;

	/* A server asleep (the client's CPU phase before this copy) wakes
	 * while we fill the first chunk, not after. */
	shim_ring_doorbell();
	pthread_mutex_lock(&shim.staging_lock);
	while (done < n && r == CUDA_SUCCESS) {
		size_t piece = n - done < MIG_STAGING_CHUNK ? n - done :
							       MIG_STAGING_CHUNK;
		struct mig_memcpy_staged a;

		/* The chunk may still feed an earlier DMA. */
		r = chunk_wait(c);
		if (r != CUDA_SUCCESS)
			break;
		staged_memcpy(shim.staging + (uint64_t)c * MIG_STAGING_CHUNK,
			      src + done, piece);
		a.dev = dst + done;
		a.size = piece;
		a.stream = stream;
		a.chunk = c;
		a.ticket = ++shim.staging_ticket[c];
		r = shim_call(MIG_OP_MEMCPY_STAGED_HTOD, &a, sizeof(a), flags,
			      NULL, 0);
		done += piece;
		c = (c + 1) % MIG_STAGING_CHUNKS;
	}
	if (wait) {
		for (i = 0; i < MIG_STAGING_CHUNKS; i++) {
			r2 = chunk_wait(i);
			if (r == CUDA_SUCCESS)
				r = r2;
		}
	}
	pthread_mutex_unlock(&shim.staging_lock);
	return r;
}

CUresult shim_copy_htod(CUdeviceptr dst, const void *src, size_t n,
			CUstream stream, bool async, bool per_thread)
{
	struct mig_memcpy_htod a = { .dst = dst, .size = n };
	struct shim_tx tx;
	uint32_t flags = 0;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (n == 0)
		return CUDA_SUCCESS;
	if (!src || !shim_device_range_ok(dst, n))
		return CUDA_ERROR_INVALID_VALUE;
	r = shim_stream_id(stream, per_thread, &a.stream, &flags);
	if (r != CUDA_SUCCESS)
		return r;
	shim_stats_bytes(0, n);
	if (shim_in_segment(src, n)) {
		a.src = (uint64_t)(uintptr_t)src;
		if (!async)
			flags |= MIG_MSGF_REPLY | MIG_MSGF_COMPLETE;
		return shim_call(MIG_OP_MEMCPY_HTOD, &a, sizeof(a), flags, NULL, 0);
	}
	if (n <= MIG_INLINE_MAX) {
		/* The data travels in the request: the caller may reuse its
		 * buffer as soon as we return, as with the driver. */
		if (!async)
			flags |= MIG_MSGF_REPLY;
		r = shim_begin(&tx, MIG_OP_MEMCPY_HTOD, (uint32_t)(sizeof(a) + n),
			       flags);
		if (r != CUDA_SUCCESS)
			return r;
		memcpy(tx.body, &a, sizeof(a));
		memcpy(tx.body + sizeof(a), src, n);
		return shim_commit(&tx);
	}
	return htod_staged(dst, src, n, a.stream, flags, !async);
}

/* --- device to host ------------------------------------------------------ */

static CUresult dtoh_staged(uint8_t *dst, CUdeviceptr src, size_t n,
			    uint64_t stream, uint32_t flags)
{
	size_t issued = 0, copied = 0;
	size_t len[MIG_STAGING_CHUNKS] = { 0 };
	CUresult r = CUDA_SUCCESS;
	uint32_t c_issue = 0, c_copy = 0;

	pthread_mutex_lock(&shim.staging_lock);
	while (copied < n && r == CUDA_SUCCESS) {
		/* Keep every chunk busy, then drain in order. */
		while (issued < n && issued - copied <
				     (size_t)MIG_STAGING_CHUNKS * MIG_STAGING_CHUNK) {
			struct mig_memcpy_staged a;
			size_t piece = n - issued < MIG_STAGING_CHUNK ?
					       n - issued : MIG_STAGING_CHUNK;

			r = chunk_wait(c_issue);
			if (r != CUDA_SUCCESS)
				goto out;
			a.dev = src + issued;
			a.size = piece;
			a.stream = stream;
			a.chunk = c_issue;
			a.ticket = ++shim.staging_ticket[c_issue];
			r = shim_call(MIG_OP_MEMCPY_STAGED_DTOH, &a, sizeof(a),
				      flags, NULL, 0);
			if (r != CUDA_SUCCESS)
				goto out;
			len[c_issue] = piece;
			issued += piece;
			c_issue = (c_issue + 1) % MIG_STAGING_CHUNKS;
		}
		r = chunk_wait(c_copy);
		if (r != CUDA_SUCCESS)
			break;
		staged_memcpy(dst + copied,
			      shim.staging + (uint64_t)c_copy * MIG_STAGING_CHUNK,
			      len[c_copy]);
		copied += len[c_copy];
		c_copy = (c_copy + 1) % MIG_STAGING_CHUNKS;
	}
out:
	/* Leave no DMA in flight into chunks we no longer watch. */
	for (c_copy = 0; c_copy < MIG_STAGING_CHUNKS; c_copy++)
		chunk_wait(c_copy);
	pthread_mutex_unlock(&shim.staging_lock);
	return r;
}

CUresult shim_copy_dtoh(void *dst, CUdeviceptr src, size_t n, CUstream stream,
			bool async, bool per_thread)
{
	struct mig_memcpy_dtoh a = { .src = src, .size = n };
	struct shim_tx tx;
	uint32_t flags = 0;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (n == 0)
		return CUDA_SUCCESS;
	if (!dst || !shim_device_range_ok(src, n))
		return CUDA_ERROR_INVALID_VALUE;
	r = shim_stream_id(stream, per_thread, &a.stream, &flags);
	if (r != CUDA_SUCCESS)
		return r;
	shim_stats_bytes(1, n);
	if (shim_in_segment(dst, n)) {
		a.dst = (uint64_t)(uintptr_t)dst;
		if (!async)
			flags |= MIG_MSGF_REPLY | MIG_MSGF_COMPLETE;
		return shim_call(MIG_OP_MEMCPY_DTOH, &a, sizeof(a), flags, NULL, 0);
	}
	/* Pageable destination: synchronous, even for the Async call, as in
	 * the driver. */
	if (n <= MIG_REPLY_DATA) {
		r = shim_begin(&tx, MIG_OP_MEMCPY_DTOH, sizeof(a),
			       flags | MIG_MSGF_REPLY | MIG_MSGF_COMPLETE);
		if (r != CUDA_SUCCESS)
			return r;
		memcpy(tx.body, &a, sizeof(a));
		r = shim_commit(&tx);
		if (r == CUDA_SUCCESS)
			memcpy(dst, shim.slots[tx.slot].data, n);
		return r;
	}
	return dtoh_staged(dst, src, n, a.stream, flags);
}

/* --- device to device ---------------------------------------------------- */

CUresult shim_copy_dtod(CUdeviceptr dst, CUdeviceptr src, size_t n,
			CUstream stream, bool async, bool per_thread)
{
	struct mig_memcpy_dtod a = { .dst = dst, .src = src, .size = n };
	uint32_t flags = 0;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (n == 0)
		return CUDA_SUCCESS;
	r = shim_stream_id(stream, per_thread, &a.stream, &flags);
	if (r != CUDA_SUCCESS)
		return r;
	shim_stats_bytes(2, n);
	if (!async)
		flags |= MIG_MSGF_REPLY;
	return shim_call(MIG_OP_MEMCPY_DTOD, &a, sizeof(a), flags, NULL, 0);
}

/* cuMemcpy / cudaMemcpyDefault: the direction follows from the addresses. */
static CUresult copy_any(CUdeviceptr dst, CUdeviceptr src, size_t n,
			 CUstream stream, bool async, bool per_thread)
{
	enum kind kd = classify(dst, n), ks = classify(src, n);
	CUresult r;

	if (kd == K_DEVICE && ks == K_DEVICE)
		return shim_copy_dtod(dst, src, n, stream, async, per_thread);
	if (kd == K_DEVICE)
		return shim_copy_htod(dst, (const void *)(uintptr_t)src, n,
				      stream, async, per_thread);
	if (ks == K_DEVICE)
		return shim_copy_dtoh((void *)(uintptr_t)dst, src, n, stream,
				      async, per_thread);
	/* Host to host: order it after the stream's work, like the driver. */
	r = shim_check_ctx();
	if (r != CUDA_SUCCESS)
		return r;
	if (!async) {
		r = cuCtxSynchronize();
		if (r != CUDA_SUCCESS)
			return r;
	} else {
		r = cuStreamSynchronize(stream);
		if (r != CUDA_SUCCESS)
			return r;
	}
	memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
	return CUDA_SUCCESS;
}

/* --- 2D ------------------------------------------------------------------ */

static bool is_host_type(CUmemorytype t, const void *host, CUdeviceptr dev)
{
	if (t == CU_MEMORYTYPE_HOST)
		return true;
	if (t == CU_MEMORYTYPE_UNIFIED)
		return !shim_is_device_ptr(dev);
	(void)host;
	return false;
}

/*
 * A 2D copy.  Device and segment operands go to the server as they are;
 * a pageable host operand is packed into (or unpacked from) a temporary
 * segment buffer first, so the server never sees a pointer it cannot
 * check.
 */
static CUresult copy_2d(const CUDA_MEMCPY2D *c, CUstream stream, bool async,
			bool per_thread)
{
	struct mig_memcpy_2d a = { 0 };
	uint64_t src, dst;
	bool src_host, dst_host;
	uint8_t *tmp = NULL;
	uint32_t flags = 0;
	size_t y;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!c)
		return CUDA_ERROR_INVALID_VALUE;
	if (c->srcMemoryType == CU_MEMORYTYPE_ARRAY ||
	    c->dstMemoryType == CU_MEMORYTYPE_ARRAY)
		return shim_unsupported("cuMemcpy2D with CUDA arrays");
	if (c->WidthInBytes == 0 || c->Height == 0)
		return CUDA_SUCCESS;
	src_host = is_host_type(c->srcMemoryType, c->srcHost, c->srcDevice);
	dst_host = is_host_type(c->dstMemoryType, c->dstHost, c->dstDevice);
	src = c->srcMemoryType == CU_MEMORYTYPE_HOST ?
		      (uint64_t)(uintptr_t)c->srcHost : c->srcDevice;
	dst = c->dstMemoryType == CU_MEMORYTYPE_HOST ?
		      (uint64_t)(uintptr_t)c->dstHost : c->dstDevice;
	src += c->srcXInBytes + c->srcY * c->srcPitch;
	dst += c->dstXInBytes + c->dstY * c->dstPitch;
	a.width = c->WidthInBytes;
	a.height = c->Height;
	a.src = src;
	a.dst = dst;
	a.src_pitch = c->srcPitch ? c->srcPitch : c->WidthInBytes;
	a.dst_pitch = c->dstPitch ? c->dstPitch : c->WidthInBytes;
	a.src_is_host = src_host;
	a.dst_is_host = dst_host;

	if (src_host && dst_host) {
		r = async ? cuStreamSynchronize(stream) : cuCtxSynchronize();
		for (y = 0; r == CUDA_SUCCESS && y < c->Height; y++)
			memmove((uint8_t *)(uintptr_t)dst + y * a.dst_pitch,
				(const uint8_t *)(uintptr_t)src + y * a.src_pitch,
				c->WidthInBytes);
		return r;
	}
	r = shim_stream_id(stream, per_thread, &a.stream, &flags);
	if (r != CUDA_SUCCESS)
		return r;
	if (src_host && !shim_in_segment((void *)(uintptr_t)src,
					 a.src_pitch * (a.height - 1) + a.width)) {
		tmp = shim_heap_alloc(a.width * a.height);
		if (!tmp)
			return CUDA_ERROR_OUT_OF_MEMORY;
		for (y = 0; y < a.height; y++)
			memcpy(tmp + y * a.width,
			       (const uint8_t *)(uintptr_t)src + y * a.src_pitch,
			       a.width);
		a.src = (uint64_t)(uintptr_t)tmp;
		a.src_pitch = a.width;
		async = false; /* tmp must outlive the DMA */
	} else if (dst_host && !shim_in_segment((void *)(uintptr_t)dst,
						a.dst_pitch * (a.height - 1) + a.width)) {
		tmp = shim_heap_alloc(a.width * a.height);
		if (!tmp)
			return CUDA_ERROR_OUT_OF_MEMORY;
		a.dst = (uint64_t)(uintptr_t)tmp;
		a.dst_pitch = a.width;
		async = false;
	}
	if (!async || dst_host)
		flags |= MIG_MSGF_REPLY | MIG_MSGF_COMPLETE;
	if (async && dst_host && !tmp)
		flags &= ~(MIG_MSGF_REPLY | MIG_MSGF_COMPLETE);
	r = shim_call(MIG_OP_MEMCPY_2D, &a, sizeof(a), flags, NULL, 0);
	if (r == CUDA_SUCCESS && tmp && dst_host) {
		for (y = 0; y < c->Height; y++)
			memcpy((uint8_t *)(uintptr_t)dst + y * (c->dstPitch ? c->dstPitch : c->WidthInBytes),
			       tmp + y * a.width, a.width);
	}
	shim_heap_free(tmp);
	return r;
}

/* 3D copies without arrays: one 2D copy per slice. */
static CUresult copy_3d(const CUDA_MEMCPY3D *c, CUstream stream, bool async,
			bool per_thread)
{
	CUDA_MEMCPY2D d = { 0 };
	size_t z;
	CUresult r = CUDA_SUCCESS;

	if (!c)
		return CUDA_ERROR_INVALID_VALUE;
	if (c->srcMemoryType == CU_MEMORYTYPE_ARRAY ||
	    c->dstMemoryType == CU_MEMORYTYPE_ARRAY)
		return shim_unsupported("cuMemcpy3D with CUDA arrays");
	for (z = 0; z < c->Depth && r == CUDA_SUCCESS; z++) {
		size_t ss = c->srcPitch * (c->srcHeight ? c->srcHeight : c->Height);
		size_t ds = c->dstPitch * (c->dstHeight ? c->dstHeight : c->Height);

		d.srcXInBytes = c->srcXInBytes;
		d.srcY = c->srcY;
		d.srcMemoryType = c->srcMemoryType;
		d.srcHost = c->srcHost ?
			(const uint8_t *)c->srcHost + (c->srcZ + z) * ss : NULL;
		d.srcDevice = c->srcDevice ? c->srcDevice + (c->srcZ + z) * ss : 0;
		d.srcPitch = c->srcPitch;
		d.dstXInBytes = c->dstXInBytes;
		d.dstY = c->dstY;
		d.dstMemoryType = c->dstMemoryType;
		d.dstHost = c->dstHost ?
			(uint8_t *)c->dstHost + (c->dstZ + z) * ds : NULL;
		d.dstDevice = c->dstDevice ? c->dstDevice + (c->dstZ + z) * ds : 0;
		d.dstPitch = c->dstPitch;
		d.WidthInBytes = c->WidthInBytes;
		d.Height = c->Height;
		r = copy_2d(&d, stream, async, per_thread);
	}
	return r;
}

/* --- entry points ---------------------------------------------------------- */

#define COPY_VARIANTS(suffix, pt)                                              \
	SHIM_API CUresult cuMemcpyHtoD_v2##suffix(CUdeviceptr d, const void *s, \
						  size_t n)                     \
	{                                                                      \
		return shim_copy_htod(d, s, n, NULL, false, pt);               \
	}                                                                      \
	SHIM_API CUresult cuMemcpyDtoH_v2##suffix(void *d, CUdeviceptr s,      \
						  size_t n)                     \
	{                                                                      \
		return shim_copy_dtoh(d, s, n, NULL, false, pt);               \
	}                                                                      \
	SHIM_API CUresult cuMemcpyDtoD_v2##suffix(CUdeviceptr d, CUdeviceptr s, \
						  size_t n)                     \
	{                                                                      \
		return shim_copy_dtod(d, s, n, NULL, false, pt);               \
	}                                                                      \
	SHIM_API CUresult cuMemcpy##suffix(CUdeviceptr d, CUdeviceptr s,       \
					   size_t n)                           \
	{                                                                      \
		return copy_any(d, s, n, NULL, false, pt);                     \
	}                                                                      \
	SHIM_API CUresult cuMemcpy2D_v2##suffix(const CUDA_MEMCPY2D *c)        \
	{                                                                      \
		return copy_2d(c, NULL, false, pt);                            \
	}                                                                      \
	SHIM_API CUresult cuMemcpy2DUnaligned_v2##suffix(const CUDA_MEMCPY2D *c) \
	{                                                                      \
		return copy_2d(c, NULL, false, pt);                            \
	}                                                                      \
	SHIM_API CUresult cuMemcpy3D_v2##suffix(const CUDA_MEMCPY3D *c)        \
	{                                                                      \
		return copy_3d(c, NULL, false, pt);                            \
	}

#define COPY_ASYNC_VARIANTS(suffix, pt)                                        \
	SHIM_API CUresult cuMemcpyHtoDAsync_v2##suffix(                        \
		CUdeviceptr d, const void *s, size_t n, CUstream st)           \
	{                                                                      \
		return shim_copy_htod(d, s, n, st, true, pt);                  \
	}                                                                      \
	SHIM_API CUresult cuMemcpyDtoHAsync_v2##suffix(                        \
		void *d, CUdeviceptr s, size_t n, CUstream st)                 \
	{                                                                      \
		return shim_copy_dtoh(d, s, n, st, true, pt);                  \
	}                                                                      \
	SHIM_API CUresult cuMemcpyDtoDAsync_v2##suffix(                        \
		CUdeviceptr d, CUdeviceptr s, size_t n, CUstream st)           \
	{                                                                      \
		return shim_copy_dtod(d, s, n, st, true, pt);                  \
	}                                                                      \
	SHIM_API CUresult cuMemcpyAsync##suffix(CUdeviceptr d, CUdeviceptr s,  \
						size_t n, CUstream st)         \
	{                                                                      \
		return copy_any(d, s, n, st, true, pt);                        \
	}                                                                      \
	SHIM_API CUresult cuMemcpy2DAsync_v2##suffix(const CUDA_MEMCPY2D *c,   \
						     CUstream st)              \
	{                                                                      \
		return copy_2d(c, st, true, pt);                               \
	}                                                                      \
	SHIM_API CUresult cuMemcpy3DAsync_v2##suffix(const CUDA_MEMCPY3D *c,   \
						     CUstream st)              \
	{                                                                      \
		return copy_3d(c, st, true, pt);                               \
	}

COPY_VARIANTS(, false)
COPY_VARIANTS(_ptds, true)
COPY_ASYNC_VARIANTS(, false)
COPY_ASYNC_VARIANTS(_ptsz, true)

/* One device: a peer copy is a device-to-device copy. */
SHIM_API CUresult cuMemcpyPeer(CUdeviceptr d, CUcontext dc, CUdeviceptr s,
			       CUcontext sc, size_t n)
{
	(void)dc;
	(void)sc;
	return shim_copy_dtod(d, s, n, NULL, false, false);
}

SHIM_API CUresult cuMemcpyPeerAsync(CUdeviceptr d, CUcontext dc, CUdeviceptr s,
				    CUcontext sc, size_t n, CUstream st)
{
	(void)dc;
	(void)sc;
	return shim_copy_dtod(d, s, n, st, true, false);
}

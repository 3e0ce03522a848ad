/*
 * channel.c - the client end of the call channel.
 *
 * cuInit maps the instance's segment (MIG_SEGMENT_FD) at the address the
 * server chose, reserves the server's device address range so that no
 * host mapping can ever alias a device pointer, and attaches.  Threads
 * serialize onto the request ring under one mutex; each thread owns a
 * reply slot for its synchronous calls.  A forked child gets no channel:
 * its calls fail cleanly instead of corrupting the parent's ring.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "segment.h"
#include "seqword.h"
#include "shim.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define REPLY_SPIN_NS 2000000ull   /* spin this long for an answer */
#define REPLY_SLICE_NS 100000000ull /* then sleep, checking the server */

struct shim_state shim = {
	.init_result = CUDA_ERROR_NOT_INITIALIZED,
	.lifeline_fd = -1,
	.ring_lock = PTHREAD_MUTEX_INITIALIZER,
	.staging_lock = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_key_t slot_key;
static uint64_t slot_bitmap[(MIG_REPLY_SLOTS + 63) / 64];
static __thread int my_slot = -1;
static __thread uint32_t my_seq;

/* --- statistics ---------------------------------------------------------- */

static uint64_t stat_calls[MIG_OP_COUNT][2]; /* [op][async, sync] */
static uint64_t stat_bytes[3];
static uint64_t stat_wait_ns;
static unsigned long stat_oom;

SHIM_API unsigned long mignificent_gpu_oom_count(void)
{
	return __atomic_load_n(&stat_oom, __ATOMIC_RELAXED);
}

void shim_stats_bytes(int dir, uint64_t n)
{
	__atomic_fetch_add(&stat_bytes[dir], n, __ATOMIC_RELAXED);
}

/* Written at exit to MIG_SUMMARY_FD, for `mig run`. */
static void write_summary(void)
{
	const char *s = getenv("MIG_SUMMARY_FD");
	uint64_t sync = 0, async = 0;
	FILE *f;
	int fd, i;

	if (!s || shim.forked || shim.init_result != CUDA_SUCCESS)
		return;
	fd = dup(atoi(s));
	if (fd < 0)
		return;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return;
	}
	for (i = 1; i < MIG_OP_COUNT; i++) {
		sync += stat_calls[i][1];
		async += stat_calls[i][0];
	}
	fprintf(f, "calls %llu (%llu waited for an answer, %llu fire-and-forget)\n",
		(unsigned long long)(sync + async), (unsigned long long)sync,
		(unsigned long long)async);
	for (i = 1; i < MIG_OP_COUNT; i++) {
		if (!stat_calls[i][0] && !stat_calls[i][1])
			continue;
		fprintf(f, "  %-22s %10llu sync %10llu async\n", mig_op_name(i),
			(unsigned long long)stat_calls[i][1],
			(unsigned long long)stat_calls[i][0]);
	}
	fprintf(f, "bytes host->device %llu, device->host %llu, device->device %llu\n",
		(unsigned long long)stat_bytes[0],
		(unsigned long long)stat_bytes[1],
		(unsigned long long)stat_bytes[2]);
	fprintf(f, "time waiting on the server %.3f ms\n", stat_wait_ns / 1e6);
	fclose(f);
}

/* --- init ---------------------------------------------------------------- */

static void release_slot(void *arg)
{
	int s = (int)(intptr_t)arg - 1;

	if (s >= 0)
		__atomic_fetch_and(&slot_bitmap[s / 64], ~(1ull << (s % 64)),
				   __ATOMIC_RELEASE);
}

static void on_fork_child(void)
{
	/* The ring belongs to the parent.  A child's CUDA calls fail. */
	shim.forked = 1;
	shim.init_result = CUDA_ERROR_NOT_INITIALIZED;
	pthread_mutex_init(&shim.ring_lock, NULL);
	pthread_mutex_init(&shim.staging_lock, NULL);
	my_slot = -1;
}

static CUresult init_fail(CUresult r, const char *fmt, const char *arg)
{
	fprintf(stderr, "mignificent shim: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return r;
}

static CUresult do_init(void)
{
	const char *fdstr = getenv("MIG_SEGMENT_FD");
	struct mig_seg_header h;
	void *va;
	int fd;

	if (!fdstr || !*fdstr)
		return init_fail(CUDA_ERROR_NO_DEVICE,
				 "MIG_SEGMENT_FD is not set: this process was not started by mignificent (%s)",
				 "use `mig run -- PROGRAM`");
	fd = atoi(fdstr);
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    h.magic != MIG_WIRE_MAGIC)
		return init_fail(CUDA_ERROR_NO_DEVICE,
				 "MIG_SEGMENT_FD=%s is not a mignificent segment", fdstr);
	if (h.version != MIG_WIRE_VERSION)
		return init_fail(CUDA_ERROR_SYSTEM_DRIVER_MISMATCH,
				 "the GPU server speaks another protocol version (%s)",
				 "rebuild the shim and the server together");
	if (h.server_state.value != MIG_SERVER_READY)
		return init_fail(CUDA_ERROR_NO_DEVICE, "the GPU server is %s",
				 "not ready");
	shim.seg = mig_segment_map_at(fd, h.base, h.size);
	if (!shim.seg)
		return init_fail(CUDA_ERROR_OPERATING_SYSTEM,
				 "cannot map the shared segment at its address: %s",
				 strerror(errno));
	shim.seg_size = h.size;
	shim.hdr = (struct mig_seg_header *)shim.seg;
	shim.ring = shim.seg + h.req_off;
	shim.ring_size = (uint32_t)h.req_size;
	shim.tail = mig_load_acquire(&shim.hdr->req_tail.value);
	shim.slots = (struct mig_reply_slot *)(shim.seg + h.reply_off);
	shim.staging = shim.seg + h.staging_off;
	shim.heap_off = h.heap_off;
	shim.heap_size = h.heap_size;
	shim.dev = h.dev;
	shim.dev_va_base = h.dev_va_base;
	shim.dev_va_size = h.dev_va_size;

	/* Device addresses must never be host addresses here. */
	va = mmap((void *)(uintptr_t)h.dev_va_base, h.dev_va_size, PROT_NONE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
		  -1, 0);
	if (va == MAP_FAILED || (uint64_t)(uintptr_t)va != h.dev_va_base)
		return init_fail(CUDA_ERROR_OPERATING_SYSTEM,
				 "cannot reserve the device address range: %s",
				 strerror(errno));

	/* Children must not share our ring. */
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	close(fd);
	unsetenv("MIG_SEGMENT_FD");
	if (getenv("MIG_LIFELINE_FD")) {
		shim.lifeline_fd = atoi(getenv("MIG_LIFELINE_FD"));
		fcntl(shim.lifeline_fd, F_SETFD, FD_CLOEXEC);
		unsetenv("MIG_LIFELINE_FD");
	}
	pthread_key_create(&slot_key, release_slot);
	pthread_atfork(NULL, NULL, on_fork_child);
	atexit(write_summary);
	return CUDA_SUCCESS;
}

static void init_once_fn(void)
{
	struct mig_hello hello = { .pid = (uint32_t)getpid() };
	CUresult r;

	if (getenv("MIG_SHIM_LOG"))
		shim_log_level = atoi(getenv("MIG_SHIM_LOG"));
	r = do_init();
	if (r == CUDA_SUCCESS) {
		shim.init_result = CUDA_SUCCESS;
		r = shim_call(MIG_OP_HELLO, &hello, sizeof(hello),
			      MIG_MSGF_REPLY, NULL, 0);
	}
	shim.init_result = r;
}

CUresult shim_ensure_init(void)
{
	if (shim.forked)
		return CUDA_ERROR_NOT_INITIALIZED;
	pthread_once(&init_once, init_once_fn);
	return shim.init_result;
}

/* --- slots --------------------------------------------------------------- */

static int acquire_slot(void)
{
	unsigned int i;

	for (i = 0; i < MIG_REPLY_SLOTS; i++) {
		uint64_t bit = 1ull << (i % 64);
		uint64_t old = __atomic_fetch_or(&slot_bitmap[i / 64], bit,
						 __ATOMIC_ACQUIRE);

		if (!(old & bit)) {
			my_slot = (int)i;
			my_seq = mig_load_acquire(&shim.slots[i].seq.value);
			pthread_setspecific(slot_key, (void *)(intptr_t)(i + 1));
			return (int)i;
		}
	}
	return -1;
}

struct mig_reply_slot *shim_my_slot(void)
{
	return my_slot >= 0 ? &shim.slots[my_slot] : NULL;
}

static bool server_alive(void *arg)
{
	struct pollfd pfd = { .fd = shim.lifeline_fd, .events = POLLIN };

	(void)arg;
	if (mig_load_acquire(&shim.hdr->server_state.value) != MIG_SERVER_READY)
		return false;
	if (shim.lifeline_fd >= 0 && poll(&pfd, 1, 0) > 0 && pfd.revents)
		return false;
	return true;
}

bool shim_word_is(uint32_t v, const void *arg)
{
	return v == *(const uint32_t *)arg;
}

static bool turn_waiting(void)
{
	return mig_load_acquire(&shim.hdr->turn_wait.value) != 0;
}

enum spin_end { SPIN_DONE, SPIN_HELD, SPIN_SPENT };

static enum spin_end spin_for(struct mig_seqword *w,
			      bool (*done)(uint32_t, const void *), const void *arg)
{
	uint64_t start = mig_now_ns();
	unsigned int i = 0;

	for (;;) {
		if (done(mig_load_acquire(&w->value), arg))
			return SPIN_DONE;
		if (turn_waiting())
			return SPIN_HELD;
		mig_cpu_relax();
		if ((++i & 63) == 0 && mig_now_ns() - start > REPLY_SPIN_NS)
			return SPIN_SPENT;
	}
}

/*
 * Spin REPLY_SPIN_NS for the answer (the server's usual answer comes within
 * microseconds), then sleep in slices of REPLY_SLICE_NS, checking between
 * them that the server lives.  While the server holds our calls back for
 * the partition's GPU turn (hdr->turn_wait, a sharing model), no answer
 * can come before the turn: the thread sleeps at once, leaving the CPU to
 * other work, and the server wakes it when the turn comes, to spin again.
 * (An answer to an earlier call, already on the GPU, still wakes it.)
 */
bool shim_wait_server(struct mig_seqword *w,
		      bool (*done)(uint32_t v, const void *arg), const void *arg)
{
	struct timespec slice = { .tv_sec = (time_t)(REPLY_SLICE_NS / 1000000000ull),
				  .tv_nsec = (long)(REPLY_SLICE_NS % 1000000000ull) };
	bool spin = true;

	for (;;) {
		enum spin_end why = SPIN_SPENT;
		bool woken = true;
		uint32_t v;

		if (spin && (why = spin_for(w, done, arg)) == SPIN_DONE)
			return true;
		__atomic_fetch_add(&w->waiters, 1, __ATOMIC_RELAXED);
		/* Pairs with the server's fence between clearing turn_wait
		 * (or publishing @w) and reading the waiters. */
		mig_smp_mb();
		v = mig_load_acquire(&w->value);
		if (!done(v, arg) && (why != SPIN_HELD || turn_waiting()))
			woken = mig_futex_wait(&w->value, v, &slice) == 0;
		__atomic_fetch_sub(&w->waiters, 1, __ATOMIC_RELAXED);
		if (done(mig_load_acquire(&w->value), arg))
			return true;
		if (!server_alive(NULL))
			return false;
		/* Woken early (the turn came) rather than at the slice's end. */
		spin = woken && !turn_waiting();
	}
}

static bool ring_has_room(uint32_t head, const void *arg)
{
	const uint32_t *need = arg; /* need[0] bytes, need[1] = tail */

	return shim.ring_size - (need[1] - head) >= need[0];
}

/* --- calls --------------------------------------------------------------- */

CUresult shim_begin(struct shim_tx *tx, uint16_t op, uint32_t body_len,
		    uint32_t flags)
{
	uint32_t size, pos, pad;
	uint32_t need[2];

	if (shim.forked)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (shim.init_result != CUDA_SUCCESS)
		return shim.init_result;
	if (my_slot < 0 && acquire_slot() < 0) {
		shim_log(0, "more than %u threads use CUDA at once", MIG_REPLY_SLOTS);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	size = (uint32_t)((sizeof(struct mig_msg_hdr) + body_len + MIG_MSG_ALIGN - 1) &
			  ~(MIG_MSG_ALIGN - 1));
	if (size > MIG_MSG_MAX)
		return CUDA_ERROR_INVALID_VALUE;

	pthread_mutex_lock(&shim.ring_lock);
	pos = shim.tail & (shim.ring_size - 1);
	pad = pos + size > shim.ring_size ? shim.ring_size - pos : 0;
	need[0] = pad + size;
	need[1] = shim.tail;
	if (!ring_has_room(mig_load_acquire(&shim.hdr->req_head.value), need) &&
	    !shim_wait_server(&shim.hdr->req_head, ring_has_room, need)) {
		pthread_mutex_unlock(&shim.ring_lock);
		return CUDA_ERROR_DEVICE_UNAVAILABLE;
	}
	if (pad) {
		struct mig_msg_hdr *ph = (struct mig_msg_hdr *)(shim.ring + pos);

		ph->size = pad;
		ph->op = MIG_OP_PAD;
		ph->slot = (uint16_t)my_slot;
		ph->seq = 0;
		ph->flags = 0;
		shim.tail += pad;
		pos = 0;
	}
	tx->hdr = (struct mig_msg_hdr *)(shim.ring + pos);
	tx->hdr->size = size;
	tx->hdr->op = op;
	tx->hdr->slot = (uint16_t)my_slot;
	tx->hdr->flags = flags;
	tx->hdr->seq = (flags & MIG_MSGF_REPLY) ? ++my_seq : 0;
	tx->body = (uint8_t *)(tx->hdr + 1);
	tx->slot = (uint32_t)my_slot;
	tx->flags = flags;
	tx->op = op;
	return CUDA_SUCCESS;
}

/* Wake the server if it sleeps on its doorbell. */
void shim_ring_doorbell(void)
{
	if (mig_load_relaxed(&shim.hdr->doorbell.waiters)) {
		__atomic_fetch_add(&shim.hdr->doorbell.value, 1, __ATOMIC_RELEASE);
		mig_futex_wake(&shim.hdr->doorbell.value, 1);
	}
}

CUresult shim_commit(struct shim_tx *tx)
{
	struct mig_reply_slot *s;
	uint32_t seq = tx->hdr->seq;
	uint64_t t0;

	shim.tail += tx->hdr->size;
	/* Publish the message; pairs with the server's acquire of tail. */
	mig_store_release(&shim.hdr->req_tail.value, shim.tail);
	mig_smp_mb();
	shim_ring_doorbell();
	pthread_mutex_unlock(&shim.ring_lock);
	__atomic_fetch_add(&stat_calls[tx->op][!!(tx->flags & MIG_MSGF_REPLY)], 1,
			   __ATOMIC_RELAXED);
	if (!(tx->flags & MIG_MSGF_REPLY))
		return CUDA_SUCCESS;

	s = &shim.slots[tx->slot];
	t0 = mig_now_ns();
	if (!shim_wait_server(&s->seq, shim_word_is, &seq)) {
		shim_log(0, "the GPU server is gone");
		return CUDA_ERROR_DEVICE_UNAVAILABLE;
	}
	__atomic_fetch_add(&stat_wait_ns, mig_now_ns() - t0, __ATOMIC_RELAXED);
	if (s->result == CUDA_ERROR_OUT_OF_MEMORY)
		__atomic_fetch_add(&stat_oom, 1, __ATOMIC_RELAXED);
	return (CUresult)s->result;
}

CUresult shim_call(uint16_t op, const void *args, uint32_t args_len,
		   uint32_t flags, void *out, uint32_t out_len)
{
	struct shim_tx tx;
	CUresult r = shim_begin(&tx, op, args_len, flags);

	if (r != CUDA_SUCCESS)
		return r;
	if (args_len)
		memcpy(tx.body, args, args_len);
	r = shim_commit(&tx);
	if (r == CUDA_SUCCESS && out && (flags & MIG_MSGF_REPLY)) {
		struct mig_reply_slot *s = &shim.slots[tx.slot];

		if (s->len < out_len)
			return CUDA_ERROR_UNKNOWN;
		memcpy(out, s->data, out_len);
	}
	return r;
}

/*
 * gputrace.c - what the GPU did, and when: a CUPTI injection library that
 * writes every kernel, copy and memset a process ran on the GPU to a file.
 *
 * The CUDA driver loads the library named by CUDA_INJECTION64_PATH at
 * cuInit and calls its InitializeInjection().  Set it, with
 * MIG_GPUTRACE_DIR, in the environment of a native process or of
 * mignificentd (whose GPU servers inherit it), and each process that
 * initializes the real driver writes MIG_GPUTRACE_DIR/gputrace-PID.txt:
 *
 *   # gputrace pid PID cmd COMMAND
 *   # clock cupti NS monotonic NS       (read together: CUPTI's timestamps
 *                                        minus the first plus the second
 *                                        are CLOCK_MONOTONIC)
 *   K start end submitted ctx stream name
 *                                       one kernel (ns, CUPTI's clock;
 *                                       submitted 0 where unknown; name:
 *                                       a 32-bit hash of its name, so that
 *                                       runs of one kernel can be compared)
 *   C start end bytes kind ctx stream   one copy (kind: CUPTI's copy kind)
 *   S start end bytes ctx stream        one memset
 *   # dropped N                         records CUPTI could not keep
 *
 * bench/gputrace/analyze.py reads these files against a bench/sharing run's
 * JSON: how busy the GPU was per request in each cell, and where it idled.
 *
 * For measuring only: tracing every kernel costs each launch some
 * microseconds, natively and through mignificent alike.  Records are
 * written as CUPTI hands its buffers back (at least every 100 ms), so a
 * process killed at the end loses at most the last moments.
 */
#include <cupti.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GPUTRACE_BUFFER (1u << 20)
#define GPUTRACE_FLUSH_MS 100

static int trace_fd = -1;
/* CUPTI may hand buffers back from its own thread and, at exit, from ours. */
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;

/* Writes all of @len bytes of @s to the trace; a trace that cannot be
 * written is given up (the process it measures carries on). */
static void trace_write(const char *s, size_t len)
{
	while (len && trace_fd >= 0) {
		ssize_t n = write(trace_fd, s, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(trace_fd);
			trace_fd = -1;
			return;
		}
		s += n;
		len -= (size_t)n;
	}
}

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size,
				      size_t *max_records)
{
	*buffer = aligned_alloc(8, GPUTRACE_BUFFER);
	*size = *buffer ? GPUTRACE_BUFFER : 0;
	*max_records = 0;
}

/* FNV-1a over a kernel's (mangled) name; 0 for none. */
static uint32_t name_hash(const char *name)
{
	uint32_t h = 2166136261u;

	if (!name)
		return 0;
	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 16777619u;
	return h;
}

/* One record as one line into @out (at most @cap bytes); its length, 0 for
 * a kind we do not trace. */
static int format_record(const CUpti_Activity *rec, char *out, size_t cap)
{
	switch (rec->kind) {
	case CUPTI_ACTIVITY_KIND_KERNEL:
	case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
		const CUpti_ActivityKernel10 *k = (const void *)rec;
		return snprintf(out, cap,
				"K %" PRIu64 " %" PRIu64 " %" PRIu64 " %u %u %08x\n",
				k->start, k->end, k->submitted, k->contextId,
				k->streamId, name_hash(k->name));
	}
	case CUPTI_ACTIVITY_KIND_MEMCPY: {
		const CUpti_ActivityMemcpy6 *c = (const void *)rec;
		return snprintf(out, cap,
				"C %" PRIu64 " %" PRIu64 " %" PRIu64
				" %u %u %u\n",
				c->start, c->end, c->bytes, c->copyKind,
				c->contextId, c->streamId);
	}
	case CUPTI_ACTIVITY_KIND_MEMSET: {
		const CUpti_ActivityMemset4 *m = (const void *)rec;
		return snprintf(out, cap,
				"S %" PRIu64 " %" PRIu64 " %" PRIu64 " %u %u\n",
				m->start, m->end, m->bytes, m->contextId,
				m->streamId);
	}
	default:
		return 0;
	}
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream,
				      uint8_t *buffer, size_t size,
				      size_t valid)
{
	static char out[1 << 16];
	size_t used = 0;
	CUpti_Activity *rec = NULL;
	size_t dropped = 0;
	pthread_mutex_lock(&trace_lock);
	while (cuptiActivityGetNextRecord(buffer, valid, &rec) ==
	       CUPTI_SUCCESS) {
		if (sizeof(out) - used < 256) {
			trace_write(out, used);
			used = 0;
		}
		int n = format_record(rec, out + used, sizeof(out) - used);
		if (n > 0 && (size_t)n < sizeof(out) - used)
			used += (size_t)n;
	}
	if (cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) ==
		    CUPTI_SUCCESS &&
	    dropped)
		used += (size_t)snprintf(out + used, sizeof(out) - used,
					 "# dropped %zu\n", dropped);
	trace_write(out, used);
	pthread_mutex_unlock(&trace_lock);
	(void)size;
	free(buffer);
}

/* The header: who we are, and CUPTI's clock read beside CLOCK_MONOTONIC. */
static void write_header(void)
{
	char cmd[256] = "?", line[512];
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
		cmd[n > 0 ? n : 0] = 0;
		for (ssize_t i = 0; i < n - 1; i++)
			if (!cmd[i])
				cmd[i] = ' ';
		close(fd);
	}
	uint64_t cupti = 0;
	struct timespec mono;
	cuptiGetTimestamp(&cupti);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	int len = snprintf(line, sizeof(line),
			   "# gputrace pid %d cmd %s\n# clock cupti %" PRIu64
			   " monotonic %" PRIu64 "\n",
			   (int)getpid(), cmd, cupti,
			   (uint64_t)mono.tv_sec * 1000000000u +
				   (uint64_t)mono.tv_nsec);
	trace_write(line, (size_t)len < sizeof(line) ? (size_t)len
						     : sizeof(line) - 1);
}

static void flush_at_exit(void)
{
	cuptiActivityFlushAll(1);
}

/* Called by the driver at cuInit.  Returns 1 when tracing, 0 when not (the
 * driver carries on either way). */
int InitializeInjection(void)
{
	const char *dir = getenv("MIG_GPUTRACE_DIR");
	char path[PATH_MAX];

	if (!dir || !*dir)
		return 0;
	snprintf(path, sizeof(path), "%s/gputrace-%d.txt", dir, (int)getpid());
	trace_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (trace_fd < 0) {
		fprintf(stderr, "gputrace: cannot write %s: %s\n", path,
			strerror(errno));
		return 0;
	}
	write_header();
	if (cuptiActivityEnableLatencyTimestamps(1) != CUPTI_SUCCESS ||
	    cuptiActivityRegisterCallbacks(buffer_requested,
					   buffer_completed) != CUPTI_SUCCESS ||
	    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) !=
		    CUPTI_SUCCESS ||
	    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY) != CUPTI_SUCCESS ||
	    cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET) != CUPTI_SUCCESS) {
		fprintf(stderr,
			"gputrace: CUPTI refused the activity trace; %s stays "
			"empty\n",
			path);
		return 0;
	}
	cuptiActivityFlushPeriod(GPUTRACE_FLUSH_MS);
	atexit(flush_at_exit);
	return 1;
}

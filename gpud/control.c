/*
 * control.c - frames from the node daemon on the server's control pipe
 * (ipc/control.h).  The daemon is trusted, but a frame is still checked
 * before use: magic, type, length, a terminated path.  A bad frame or the
 * daemon's end closing ends the pipe, never the server: the client's
 * lifeline, not this pipe, says when to stop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"
#include "gpud.h"
#include "seqword.h"

#define FRAME_MAX (sizeof(struct mig_ctl_hdr) + PATH_MAX)

static void control_close(struct gpud *g, const char *why)
{
	gpud_log(g, why ? 1 : 2, "control pipe closed%s%s", why ? ": " : "",
		 why ? why : "");
	close(g->control_fd);
	g->control_fd = -1;
}

/* Answer the daemon; a failure ends the pipe, not the server. */
static void send_frame(struct gpud *g, uint16_t type, uint64_t id, int32_t status,
		       const void *body, uint32_t len)
{
	struct {
		struct mig_ctl_hdr h;
		uint8_t body[64];
	} f;

	memset(&f.h, 0, sizeof(f.h));
	f.h.magic = MIG_CTL_MAGIC;
	f.h.type = type;
	f.h.id = id;
	f.h.status = status;
	f.h.len = len <= sizeof(f.body) ? len : 0;
	memcpy(f.body, body, f.h.len);
	if (write(g->control_fd, &f, sizeof(f.h) + f.h.len) < 0)
		control_close(g, strerror(errno));
}

static void on_frame(struct gpud *g, const struct mig_ctl_hdr *h,
		     const char *body)
{
	struct mig_swap_report rep;
	CUresult r;

	switch (h->type) {
	case MIG_CTL_SWAP_OUT:
	case MIG_CTL_SWAP_IN:
		r = h->type == MIG_CTL_SWAP_OUT ? gpud_swap_out(g, &rep) :
						  gpud_swap_in(g, &rep);
		send_frame(g, MIG_CTL_SWAPPED, h->id, (int32_t)r, &rep, sizeof(rep));
		break;
	case MIG_CTL_SWAP_POOL_FREE:
		gpud_swap_pool_free(g);
		break;
	case MIG_CTL_MEMORY_LIMIT:
		g->mem_limit = h->id;
		gpud_log(g, 2, "memory limit %llu MiB", (unsigned long long)(h->id >> 20));
		break;
	case MIG_CTL_MODULE_CACHE:
		if (!h->len || body[h->len - 1] || strlen(body) + 1 != h->len) {
			control_close(g, "module cache path not terminated");
			return;
		}
		modcache_open(g, body, h->id);
		break;
	default:
		gpud_log(g, 1, "control frame of type %u ignored", h->type);
	}
}

bool gpud_control_poll(struct gpud *g)
{
	/* A SOCK_SEQPACKET socket: one read, one whole frame (a longer one
	 * than we take is cut, and then its length does not add up). */
	static char buf[FRAME_MAX];
	struct mig_ctl_hdr h;
	ssize_t n;

	if (g->control_fd < 0)
		return false;
	n = read(g->control_fd, buf, sizeof(buf));
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			control_close(g, strerror(errno));
		return false;
	}
	/* Something was read: the watcher may wait for the next frame. */
	__atomic_fetch_add(&g->control_reads, 1, __ATOMIC_RELEASE);
	mig_futex_wake(&g->control_reads, 1);
	if (n == 0) {
		control_close(g, NULL);
		return false;
	}
	if ((size_t)n < sizeof(h)) {
		control_close(g, "short frame");
		return false;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.magic != MIG_CTL_MAGIC || h.len != (size_t)n - sizeof(h)) {
		control_close(g, "bad frame");
		return false;
	}
	on_frame(g, &h, buf + sizeof(h));
	return true;
}

/*
 * An idle server sleeps on its client's doorbell for up to 50 ms at a time
 * and reads the control socket when it wakes; a swap request must not wait
 * for that.  This thread sleeps in poll() on its own copy of the socket and
 * rings the doorbell when a frame arrives, then waits until the loop has
 * read it (or 50 ms, in case it was read before we looked).  It ends when
 * the daemon's end closes, or when the server stops
 * (gpud_control_unwatch(), before the segment with the doorbell goes).
 */
static void *control_watch_main(void *arg)
{
	struct gpud *g = arg;
	struct pollfd p = { .fd = g->control_watch_fd, .events = POLLIN };

	for (;;) {
		uint32_t seen = __atomic_load_n(&g->control_reads, __ATOMIC_ACQUIRE);
		struct timespec slice = { 0, 50000000 };
		int n = poll(&p, 1, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || __atomic_load_n(&g->control_unwatch, __ATOMIC_ACQUIRE))
			break;
		__atomic_fetch_add(&g->hdr->doorbell.value, 1, __ATOMIC_RELEASE);
		mig_futex_wake(&g->hdr->doorbell.value, 1);
		if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
			break;
		mig_futex_wait(&g->control_reads, seen, &slice);
		if (__atomic_load_n(&g->control_unwatch, __ATOMIC_ACQUIRE))
			break;
	}
	return NULL;
}

int gpud_control_watch(struct gpud *g)
{
	int fd;

	if (g->control_fd < 0 || !g->hdr)
		return 0;
	fd = fcntl(g->control_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -1;
	g->control_watch_fd = fd;
	if (pthread_create(&g->control_watcher, NULL, control_watch_main, g)) {
		close(fd);
		return -1;
	}
	g->control_watching = true;
	pthread_setname_np(g->control_watcher, "mig-gpud-ctl");
	return 0;
}

void gpud_control_unwatch(struct gpud *g)
{
	if (!g->control_watching)
		return;
	__atomic_store_n(&g->control_unwatch, 1, __ATOMIC_RELEASE);
	shutdown(g->control_watch_fd, SHUT_RD); /* ends its poll() */
	__atomic_fetch_add(&g->control_reads, 1, __ATOMIC_RELEASE);
	mig_futex_wake(&g->control_reads, 1); /* ends its wait */
	pthread_join(g->control_watcher, NULL);
	close(g->control_watch_fd);
	g->control_watching = false;
}

/*
 * fuzz_gpud_ring.c - libFuzzer target for mig-gpud's message decoder.
 *
 * The input is written into the request ring exactly as a hostile client
 * could write it, and the server decodes it against the host test-double
 * backend.  Whatever the bytes, the server must neither crash nor touch
 * memory outside the segment and its own allocations (ASan/UBSan watch).
 * After a framing error the server would end the session; here we reset
 * and continue, so one process covers many sessions.  The server is on a
 * partition shared under overlap-cpu-copy (an arbiter page of its own), so
 * that the classing of every call for the arbiter reads the input too.
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arbiter.h"
#include "gpud.h"
#include "segment.h"
#include "seqword.h"

volatile int gpud_stop_requested;

static struct gpud g;
static struct gpud_backend b;

static void setup(void)
{
	char err[512];
	int fd = mig_segment_create(MIG_SEGMENT_SIZE_MIN);

	if (fd < 0 || gpud_backend_open("host", &b, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz setup: %s\n", fd < 0 ? "memfd" : err);
		abort();
	}
	g.b = &b;
	g.client_lifeline = -1;
	g.verbose = -1; /* every input is malformed: no line per input */
	snprintf(g.instance, sizeof(g.instance), "fuzz");
	if (gpud_setup(&g, fd, MIG_SEGMENT_BASE_DEFAULT, MIG_DEV_VA_BASE_DEFAULT,
		       1ull << 30, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz setup: %s\n", err);
		abort();
	}
	/* The partition's arbiter page, as the daemon makes it. */
	int afd = memfd_create("fuzz-arbiter", MFD_CLOEXEC);
	struct mig_arbiter *a;

	if (afd < 0 || ftruncate(afd, sizeof(*a)) < 0 ||
	    (a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE, MAP_SHARED, afd, 0)) == MAP_FAILED) {
		fprintf(stderr, "fuzz setup: the arbiter page\n");
		abort();
	}
	mig_arb_init(a, MIG_SHARING_OVERLAP_CPU_COPY);
	if (gpud_arbiter_attach(&g, afd, 1, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz setup: %s\n", err);
		abort();
	}
	munmap(a, sizeof(*a));
	close(afd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t ring = g.ring_mask + 1, head, off, first;

	if (!g.b)
		setup();
	if (size > ring)
		size = ring;
	head = (uint32_t)g.head;
	off = head & g.ring_mask;
	first = size < ring - off ? (uint32_t)size : ring - off;
	memcpy(g.ring + off, data, first);
	memcpy(g.ring, data + first, size - first);
	/* Fill staging and reply areas with the input too: hostile state. */
	mig_store_release(&g.hdr->req_tail.value, head + (uint32_t)size);
	gpud_drain(&g);
	/* Let pending work finish, as the serve loop would. */
	gpud_poll(&g);
	if (g.broken) {
		/* A real session would end here; start a fresh one. */
		g.broken = 0;
	}
	g.head = head + (uint32_t)size;
	mig_store_release(&g.hdr->req_head.value, (uint32_t)g.head);
	return 0;
}

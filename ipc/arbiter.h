/*
 * arbiter.h - who may use a partition's GPU now: a ticket lock in a page
 * shared by the daemon and the GPU servers of one partition.
 *
 * The daemon creates one page per partition (a memfd) and sets its sharing
 * model; every mig-gpud of the partition maps it (--arbiter-fd).  A server
 * that meets, at the head of its ring, a call of a class the model makes
 * exclusive (copy and compute for overlap-cpu, compute for
 * overlap-cpu-copy) takes a ticket and holds the call back, without
 * reordering anything behind it, until its ticket is served (a copy the
 * GPU runs on its compute engine, under overlap-cpu-copy, waits out the
 * turn in progress instead, without a ticket).  It releases
 * the grant once its GPU work has completed and it is idle or has held long
 * enough while others wait (gpud/server.c says when).  For "sequential" the
 * daemon itself takes a ticket around each invocation.
 *
 * Tickets are served in the order they were taken, with one exception: a
 * resume ticket.  A server that gave a young turn to a waiter (its client
 * synchronized early in its GPU phase and went on after a short CPU gap)
 * and asks again while the turn it gave way to is still served takes a
 * resume ticket, served before the others when that turn ends: the cut
 * costs it one other turn, not one of every waiter.  A turn granted on a
 * resume ticket gives no right to another (gpud/server.c keeps to that),
 * so with any number of servers none starves, and none waits for more
 * than two turns of each other.  (Serving the least served first, so that
 * a server whose turn was cut would go next, was measured on the H200 and
 * left: see docs/benchmarks.md, "Cut turns".)
 *
 * A release wakes the servers that wait for the GPU, and a sleeping
 * thread's wake-up takes tens to hundreds of microseconds on a virtual
 * machine (bench/machine/cpu_probe wake), the GPU idle all along.  So a
 * holder whose client has gone quiet with the GPU idle, and which will
 * therefore give the turn back within a known time unless the client
 * calls again, announces that (mig_arb_announce()): the waiter next in
 * line is woken then and spins for the release instead of sleeping,
 * until the announced time, or until the holder withdraws the
 * announcement (its client called again: the turn stays).
 *
 * A server that dies with a ticket (held or waiting) would stall the rest:
 * the daemon, which sees every server's exit, abandons its tickets
 * (mig_arb_abandon()).  The page is written only by the daemon and our GPU
 * servers, never by a client.
 *
 * Memory ordering: @serving is the futex word; a release stores it with
 * release semantics after the holder's GPU work completed, a waiter loads
 * it with acquire semantics.  Every change of @serving and of the tickets
 * happens under @lock, a spinlock whose owner's pid is stored so that a
 * lock left by a killed process is taken over.
 */
#ifndef MIG_IPC_ARBITER_H
#define MIG_IPC_ARBITER_H

#include <stdbool.h>
#include <stdint.h>

#define MIG_ARB_MAGIC 0x4252414du /* "MARB" */
#define MIG_ARB_VERSION 6
#define MIG_ARB_SLOTS 1024u       /* tickets outstanding at once, at most */
#define MIG_ARB_ANNOUNCE_PER_TURN 8u /* mig_arb_announce(), at most a turn */

enum mig_sharing {
	MIG_SHARING_TIME = 0,         /* everything concurrent (native) */
	MIG_SHARING_SEQUENTIAL = 1,   /* one invocation owns the partition */
	MIG_SHARING_OVERLAP_CPU = 2,  /* copy and compute exclusive */
	MIG_SHARING_OVERLAP_CPU_COPY = 3, /* compute exclusive */
};

/* Call classes (gpud/server.c classifies every op). */
enum mig_call_class {
	MIG_CLASS_CONTROL = 0,
	MIG_CLASS_COPY = 1u << 0,
	MIG_CLASS_COMPUTE = 1u << 1,
	/* With COPY: a copy the GPU runs on its compute engine (a memset, a
	 * small copy from the host): where copies are not exclusive it waits
	 * out another's turn, without a ticket (gpud/server.c). */
	MIG_CLASS_ON_COMPUTE_ENGINE = 1u << 2,
};

struct mig_arbiter {
	uint32_t magic, version;
	uint32_t model;          /* enum mig_sharing; set by the daemon */
	uint32_t lock;           /* 0 free, else the owner's pid */
	uint32_t next;           /* next ticket to hand out */
	uint32_t serving;        /* futex word: the ticket granted now, @next
				    when none is */
	uint32_t oldest;         /* the oldest outstanding ticket, or @next */
	uint32_t waiting;        /* tickets outstanding besides the granted */
	uint32_t holder;         /* id of the holder once it noticed, 0 none */
	uint32_t resuming;       /* resume tickets outstanding, not granted */
	uint64_t grant_ns;       /* CLOCK_MONOTONIC of the current grant */
	uint64_t passed_ns;      /* statistics: when the last release passed
				    the GPU to a waiting ticket (its server
				    notices later: a wake-up) */
	uint32_t soon;           /* the ticket whose holder announced that it
				    gives the GPU back by @soon_until_ns */
	uint32_t soon_count;     /* announcements made in @soon's turn */
	uint64_t soon_until_ns;  /* CLOCK_MONOTONIC; 0: no announcement */
	uint64_t grants;         /* statistics: grants handed out */
	uint64_t held_ns;        /* statistics: grants' time, from when each
				    holder noticed it to its release */
	struct {
		uint32_t num;    /* the ticket in the slot */
		uint32_t live;   /* 1 while it is outstanding */
		uint32_t owner;  /* the id that took it */
		uint32_t resume; /* 1: a resume ticket, waiting */
	} ticket[MIG_ARB_SLOTS]; /* ticket t at t % MIG_ARB_SLOTS */
};

/* Parse "time-sharing", "sequential", "overlap-cpu", "overlap-cpu-copy";
 * -1 for anything else. */
int mig_sharing_parse(const char *s);
const char *mig_sharing_name(int model);
/* The classes @model makes exclusive (for the GPU servers). */
unsigned int mig_sharing_exclusive(int model);

/* Initialize a zeroed page. */
void mig_arb_init(struct mig_arbiter *a, int model);
/* A ticket for @id (nonzero); ~0u when MIG_ARB_SLOTS are outstanding.
 * @gave_way: NULL, or the ticket that @id's last turn, cut young, was
 * given to: while that one is still served, ours is a resume ticket, and
 * *@resumed (if not NULL) says whether it is. */
uint32_t mig_arb_take(struct mig_arbiter *a, uint32_t id, const uint32_t *gave_way,
		      bool *resumed);
/* Is ticket @t served?  If so, the caller holds the GPU: it records
 * itself as holder (once). */
bool mig_arb_granted(struct mig_arbiter *a, uint32_t t, uint32_t id);
/* Wait until @t is served or @timeout_ns passed (0: no wait).  true if
 * granted; false at the timeout, or at once when @t is no longer
 * outstanding (mig_arb_abandon() gave it back: its server is gone). */
bool mig_arb_wait(struct mig_arbiter *a, uint32_t t, uint32_t id,
		  uint64_t timeout_ns);
/* The same; *@spun_ns (if not NULL) adds the time spent spinning for an
 * announced release (mig_arb_announce()) rather than sleeping. */
bool mig_arb_wait_spin(struct mig_arbiter *a, uint32_t t, uint32_t id,
		       uint64_t timeout_ns, uint64_t *spun_ns);
/* @t's holder expects to give the GPU back within @within_ns: the waiter
 * next in line is woken to spin for it.  @within_ns 0 withdraws the
 * announcement (the holder keeps the turn after all).  false (and no
 * effect) unless @t is the ticket served and has made fewer than
 * MIG_ARB_ANNOUNCE_PER_TURN announcements: each wakes every waiting
 * server, and a holder's client decides how often its server would make
 * one.  A withdrawal always succeeds. */
bool mig_arb_announce(struct mig_arbiter *a, uint32_t t, uint64_t within_ns);
/* Is ticket @t still waiting or held (not given back)? */
bool mig_arb_outstanding(struct mig_arbiter *a, uint32_t t);
/* Tickets taken and not yet served, besides the holder's. */
uint32_t mig_arb_waiting(const struct mig_arbiter *a);
/* Give back ticket @t (held or still waiting).  true if that granted a
 * waiting ticket; it is stored in @granted (may be NULL). */
bool mig_arb_release(struct mig_arbiter *a, uint32_t t, uint32_t *granted);
/* Everything @id holds or waits for is given back (its process is gone). */
void mig_arb_abandon(struct mig_arbiter *a, uint32_t id);

#endif /* MIG_IPC_ARBITER_H */

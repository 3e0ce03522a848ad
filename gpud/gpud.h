/*
 * gpud.h - private state of mig-gpud, the GPU server of one function
 * instance.  One dispatch thread decodes the request ring in order and
 * issues driver calls; calls whose completion the client waits for become
 * "pending waits" on driver events that the dispatch thread polls (and
 * hands to a waiter thread before it sleeps), so one client thread blocked
 * in a synchronize never holds up the others.
 */
#ifndef MIG_GPUD_H
#define MIG_GPUD_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "control.h"
#include "wire.h"

/* --- handle table (handles.c) ------------------------------------------ */

enum gpud_htype {
	H_FREE = 0,
	H_STREAM,
	H_EVENT,
	H_MODULE,
	H_LIBRARY,
	H_FUNC,   /* CUfunction from a module */
	H_KERNEL, /* CUkernel from a library (plus its CUfunction) */
	H_MEM,    /* client cuMemCreate: ptr is the driver's handle,
		     owner its size, flags the requested handle types */
};

struct gpud_handle {
	uint32_t type;
	uint32_t gen;
	void *ptr;     /* the driver's handle */
	void *ptr2;    /* H_KERNEL: its CUfunction in our context */
	uint64_t owner; /* H_FUNC/H_KERNEL: module/library id */
	uint32_t flags; /* H_STREAM: creation flags; H_EVENT: flags */
};

struct gpud_handles {
	struct gpud_handle *v;
	uint32_t n, cap;
	uint32_t free_head; /* index+1 of a free entry, 0 if none */
	uint32_t live;
};

uint64_t handles_add(struct gpud_handles *t, uint32_t type, void *ptr);
struct gpud_handle *handles_get(struct gpud_handles *t, uint64_t id,
				uint32_t type);
void handles_del(struct gpud_handles *t, uint64_t id);
void handles_free_all(struct gpud_handles *t);

/* --- device virtual address space (vaspace.c) -------------------------- */

enum gpud_va_kind {
	VA_ALLOC = 0,    /* a cuMemAlloc: created, mapped and accessible */
	VA_RESERVED = 1, /* a client cuMemAddressReserve: maps live in maps[] */
};

struct gpud_alloc {
	uint64_t addr, size;
	unsigned long long mem; /* VA_ALLOC: CUmemGenericAllocationHandle */
	uint32_t kind;          /* enum gpud_va_kind */
	uint32_t nmaps;         /* VA_RESERVED: mappings inside it */
};

/* A client cuMemMap inside one of its reservations. */
struct gpud_map {
	uint64_t addr, size, offset;
	unsigned long long mem; /* the driver's handle (outlives a release) */
	uint64_t handle;        /* the client's id (stale after cuMemRelease) */
	uint32_t access;        /* CUmemAccess_flags last set */
	uint32_t pad;
};

/* A client physical allocation a swap released (swap.c). */
struct gpud_swap_phys {
	unsigned long long mem; /* the driver's handle: before, then after */
	uint64_t size;
	uint32_t handle_idx;    /* 1 + index of the client's H_MEM entry in
				   g->h.v; 0: the client released it */
	bool ok;                /* it can go: see swap.c */
};

/*
 * A mapping's part in a swap: where its bytes wait, and its allocation by
 * index, never by the driver's handle, whose value a new allocation may
 * take once the old one is gone (swap-in makes new ones while old values
 * are still being matched).
 */
struct gpud_swap_map {
	uint64_t at;   /* 1 + its place in the pool if it went, else 0 */
	uint32_t phys; /* its allocation in swap.phys */
};

struct gpud_vaspace {
	uint64_t base, size;
	struct gpud_alloc *v; /* sorted by addr, disjoint */
	uint32_t n, cap;
	uint64_t mapped;      /* bytes of VA_ALLOC entries */
	struct gpud_map *maps; /* sorted by addr, disjoint, each inside a
				  VA_RESERVED entry of v */
	uint32_t nmaps, cap_maps;
};

/* Find a free range of @size bytes aligned to @align (a power of 2);
 * returns 0 if none. */
uint64_t vaspace_find(const struct gpud_vaspace *vs, uint64_t size,
		      uint64_t align);
/* Is [addr, addr + size) inside the range and free? */
bool vaspace_is_free(const struct gpud_vaspace *vs, uint64_t addr,
		     uint64_t size);
int vaspace_insert(struct gpud_vaspace *vs, const struct gpud_alloc *a);
/* Index of the allocation starting exactly at @addr, or -1. */
int vaspace_lookup(const struct gpud_vaspace *vs, uint64_t addr);
/* Index of the entry that contains all of [addr, addr + size), or -1. */
int vaspace_containing(const struct gpud_vaspace *vs, uint64_t addr,
		       uint64_t size);
void vaspace_remove(struct gpud_vaspace *vs, int idx);

/* Mappings: insert (kept sorted), remove, and the first mapping that ends
 * after @addr (nmaps if none). */
int vaspace_map_insert(struct gpud_vaspace *vs, const struct gpud_map *m);
void vaspace_map_remove(struct gpud_vaspace *vs, uint32_t idx);
uint32_t vaspace_map_after(const struct gpud_vaspace *vs, uint64_t addr);
/*
 * The mappings that tile [addr, addr + size) exactly, back to back: the
 * first index in *@first and the count, or 0 if the range is not a run of
 * whole mappings.
 */
uint32_t vaspace_map_tiling(const struct gpud_vaspace *vs, uint64_t addr,
			    uint64_t size, uint32_t *first);

/* --- pending waits (server.c) ------------------------------------------ */

enum gpud_action {
	ACT_REPLY,         /* reply with result (and reply data, if any) */
	ACT_STAGING_DONE,  /* publish staging_done[chunk] = ticket */
	ACT_FREE,          /* unmap and release an allocation, then reply */
};

#define GPUD_PENDING_EVENTS 16

struct gpud_pending {
	uint16_t slot;
	uint32_t seq;
	uint32_t action;
	uint32_t reply_len;
	uint64_t arg0, arg1;
	uint32_t nev;
	CUevent ev[GPUD_PENDING_EVENTS];
	/* Streams still to be queried instead of events (fast path of a
	 * synchronize on idle streams). */
	uint32_t nstream;
	CUstream stream[GPUD_PENDING_EVENTS];
	uint64_t user_event; /* a client event id to poll (never recycled) */
	uint32_t sync_point; /* also return an earlier async call's error */
	uint32_t ctx_rescan; /* more busy streams than events: look again */
};

/* --- the server --------------------------------------------------------- */

/* One image in the module cache (modcache.c). */
struct gpud_modcache_entry {
	uint64_t key;           /* content hash: names the file */
	uint64_t size;
	bool library;           /* loaded as a library (else a module) */
	bool on_disk;
	bool tried;             /* loaded ahead, or asked for by the client */
	bool names_dirty;       /* names to write back at the end */
	void *bytes;            /* the image, until a handle takes it */
	void *obj;              /* CUlibrary/CUmodule loaded ahead, unclaimed */
	char **names;           /* kernels/functions asked of it */
	uint32_t nnames, names_cap;
};

#define MIG_MODCACHE_MAX_DEFAULT (1ull << 30) /* bytes of images per function */
#define MIG_MAX_IMAGE (1ull << 30)            /* largest image we load */

struct gpud_modcache {
	char dir[PATH_MAX];     /* "" while there is none */
	uint64_t max_bytes, disk_bytes;
	struct gpud_modcache_entry *v;
	uint32_t n, cap;
	uint32_t next;          /* next entry to load ahead */
	uint32_t preloaded, hits, misses, written;
};

struct gpud {
	const struct gpud_backend *b;
	int verbose;
	char instance[64]; /* for log lines */

	/* Our private copy of the layout: never re-read from the segment. */
	uint8_t *seg;
	uint64_t seg_size;
	struct mig_seg_header *hdr;
	uint8_t *ring;
	uint32_t ring_mask;
	uint64_t head;
	struct mig_reply_slot *slots;
	uint8_t *staging;
	uint64_t heap_off, heap_size;
	uint8_t pinned_granule[4096]; /* heap granules pinned so far */
	uint64_t pinned_fixed;

	CUdevice dev;
	CUcontext ctx;
	struct gpud_vaspace vs;
	uint64_t granularity;
	struct gpud_handles h;
	uint64_t mem_handle_bytes; /* sizes of the client's live H_MEM handles */
	struct gpud_map_mem {      /* client_bytes()'s scratch: an allocation */
		unsigned long long mem;  /* held only by its mappings */
		uint64_t size;
	} *map_mems;
	uint32_t cap_map_mems;

	/* Streams per client thread (reply slot) for CU_STREAM_PER_THREAD. */
	CUstream ptds[MIG_REPLY_SLOTS];

	/* Error of a fire-and-forget call, returned at the next sync call. */
	CUresult deferred_error;
	/* A context-corrupting error (illegal address, ...): from then on,
	 * like the driver, every call that needs the context fails with it.
	 * Kept here because the VMM calls do not report it. */
	CUresult sticky_error;

	/* Pending waits. */
	struct gpud_pending *pend;
	uint32_t npend, pend_cap;

	/* Pool of timing-disabled events. */
	CUevent *evpool;
	uint32_t nevpool, evpool_cap;

	/* Bounce buffer for inline host-to-device data (pinned, private). */
	uint8_t *bounce;
	uint64_t bounce_size, bounce_head, bounce_tail;
	struct {
		CUevent ev;
		uint64_t end;
	} bounce_q[1024];
	uint32_t bq_head, bq_tail;

	/* Waiter thread: blocks in cuEventSynchronize when we sleep. */
	pthread_t waiter;
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	CUevent wait_ev;    /* event handed to the waiter, or NULL */
	int wait_done;      /* set by the waiter when wait_ev completed */
	int stopping;
	int waiter_started;

	/* Private copy of the message being decoded. */
	uint8_t msgbuf[MIG_MSG_MAX];

	int client_lifeline; /* read end: EOF when the client is gone */
	int control_fd;      /* the daemon's frames (control.h), or -1 */
	uint32_t control_reads; /* bumped when a frame (or EOF) was read: the
				   watcher thread's futex (control.c) */
	int control_watch_fd;   /* the watcher's copy of control_fd */
	uint64_t mem_limit;     /* device memory the client may allocate (the
				   daemon's MEMORY_LIMIT; 0: no limit) */
	bool mem_limit_read;    /* the daemon's frames read before the first
				   allocation */
	pthread_t control_watcher;
	bool control_watching;  /* the thread runs (joinable) */
	uint32_t control_unwatch; /* set: the thread ends */
	/* The client's last call: when it came, and whether it queued GPU
	 * work without waiting for it (a launch, an async copy or memset:
	 * the client is most likely in the middle of its GPU phase). */
	uint64_t last_call_ns;
	bool last_call_queued;
	/* How long the loop spins for the next call after one that queued
	 * GPU work (MIG_GPUD_PHASE_SPIN_US, ipc/units.h; after others,
	 * SPIN_IDLE_NS). */
	uint64_t phase_spin_ns;
	/* The partition's arbiter (ipc/arbiter.h), or NULL: time-sharing. */
	struct mig_arbiter *arb;
	uint32_t arb_id;       /* ours, as the daemon knows us */
	unsigned int arb_excl; /* classes we may issue only holding the GPU */
	bool arb_ticket_taken, arb_held;
	bool arb_told_waiting; /* hdr->turn_wait is 1 (as we last wrote it) */
	uint32_t arb_ticket;
	uint64_t arb_held_since;
	bool arb_cut;          /* our last turn, young, went to a waiter: */
	uint32_t arb_gave_way; /* ... to this ticket */
	bool arb_resumed;      /* our ticket or turn is a resume one */
	bool arb_no_resume;    /* MIG_GPUD_RESUME=0: never take one */
	uint64_t arb_waits, arb_wait_ns, arb_grants; /* statistics */
	uint64_t arb_ticket_ns; /* profile: when our ticket was taken */
	uint64_t arb_resumes;  /* statistics: resume tickets taken */
	bool arb_announced;    /* we announced our release (arbiter.h) */
	bool arb_announce_refused; /* ... as often as a turn may */
	uint64_t arb_announcements, arb_release_spin_ns; /* statistics */
	bool arb_copy_waits;   /* a copy for the compute engine waits out */
	uint32_t arb_copy_behind; /* ... the turn of this ticket (another's) */
	uint64_t arb_copy_since;  /* ... since */
	uint64_t arb_copy_waited, arb_copy_wait_ns; /* statistics */
	/* Swapped out to host memory (swap.c). */
	struct {
		bool out;
		void *pool;            /* pinned, reused between swaps */
		uint64_t pool_size;
		CUstream streams[4];
		CUevent events[4];
		/* The client's own physical allocations (cuMemCreate) that
		 * went, and which of vs.maps were theirs. */
		struct gpud_swap_phys *phys;
		uint32_t nphys, cap_phys;
		struct gpud_swap_map *map_out; /* per vs.maps entry */
		uint32_t cap_map_out;
	} swap;
	struct gpud_modcache mc;
	int broken;          /* protocol violation seen */
	struct mig_stats stats;
	/* MIG_GPUD_PROFILE=1: where the server's time goes, written to
	 * stderr when it ends (gpud_profile_report()). */
	bool profile;
	/* Test hook (MIG_GPUD_PROFILE_LINE_DELAY_US): a pause after each line
	 * of the profile as it is written, to show it still leaves in one
	 * piece. */
	unsigned profile_line_delay_us;
	struct {
		uint64_t n, ns;
	} prof_op[MIG_OP_COUNT];
	uint64_t prof_sleeps, prof_sleep_ns, prof_handoffs;
	/* Sleeps after a call that queued GPU work, ended by the client's
	 * next call: a wake-up on its GPU phase's path. */
	uint64_t prof_phase_wakes, prof_phase_wake_ns;
	/* Turns passed to us by a release while we waited, and how long
	 * after the release we noticed each: a wake-up, the GPU idle. */
	uint64_t prof_handovers, prof_handover_ns;
	uint64_t prof_images, prof_image_bytes;
	uint64_t htod_rows; /* small host-to-device copies issued as two rows */
	/* Turns given back, by the turn's length (< 0.5 ms, < 2 ms, more)
	 * and by how soon the client asked again (< 100 us, < 250 us,
	 * < 1 ms, later or never): a turn given back and asked for again
	 * at once was cut in the middle of a GPU phase. */
	uint64_t prof_turn_back[3][4];
	uint64_t prof_turn_back_ns;  /* when the last one was given back */
	int prof_turn_back_len;      /* and its length's row, -1: none */
	/* The turn kept through its client's gaps (launch grace, GPU idle)
	 * while others waited: what exclusivity costs a launch-bound client
	 * (prof_gap_since: when the current such gap began, 0: none). */
	uint64_t prof_gaps, prof_gap_ns, prof_gap_since;
	/* Inside the turns: how long they were held, and the calls issued
	 * in them with the time the server spent issuing them (the rest the
	 * server waited on its client or on the GPU). */
	uint64_t prof_held_ns, prof_held_calls, prof_held_call_ns;
};

int gpud_setup(struct gpud *g, int seg_fd, uint64_t seg_base,
	       uint64_t dev_va_base, uint64_t dev_va_size, const char *uuid,
	       char *err, size_t errlen);
/* Serve until the client is gone or breaks the protocol. Returns 0 or 1. */
int gpud_serve(struct gpud *g);
void gpud_profile_report(const struct gpud *g);
void gpud_teardown(struct gpud *g);

void *gpud_waiter_main(void *arg);
/* Decode every message the client published; false if none. */
bool gpud_drain(struct gpud *g);
/* Poll pending waits and the bounce buffer once. */
void gpud_poll(struct gpud *g);
bool gpud_dispatch(struct gpud *g, struct mig_msg_hdr *hdr,
		   const uint8_t *body, uint32_t len);

extern volatile int gpud_stop_requested;

/* Load a library image we keep alive for as long as it is loaded. */
CUresult gpud_library_load(struct gpud *g, void **lib, const void *img);

/* --- the module cache (modcache.c) ------------------------------------- */

/* Use @dir (absolute, existing) as this function's cache, keeping at most
 * @max_bytes (0: the default) of images; read what is there to load ahead. */
int modcache_open(struct gpud *g, const char *dir, uint64_t max_bytes);
/* Load one cached image ahead; false when there is nothing left to do. */
bool modcache_idle(struct gpud *g);
/* The client loads @img: the cache entry with the same bytes (index + 1,
 * 0 if none; @key gets the content hash), and, if it was loaded ahead, the
 * loaded object in @obj and its bytes in @bytes, both now the caller's. */
uint32_t modcache_claim(struct gpud *g, const uint8_t *img, uint64_t size,
			bool library, void **obj, void **bytes, uint64_t *key);
/* Keep @img, which the driver just loaded, for the next instances. */
uint32_t modcache_keep(struct gpud *g, const uint8_t *img, uint64_t size,
		       bool library, uint64_t key);
/* Remember that kernel/function @name of cache entry @entry was asked for. */
void modcache_note_name(struct gpud_modcache *mc, uint32_t entry,
			const char *name);
/* Write back the names, unload what was never claimed, free everything. */
void modcache_close(struct gpud *g);

/* --- the partition's arbiter (server.c) -------------------------------- */

/* Map the arbiter page @fd as server @id; 0 or -1 with @err set. */
int gpud_arbiter_attach(struct gpud *g, int fd, uint32_t id, char *err,
			size_t errlen);

/* All GPU work the client asked for has completed (server.c). */
bool gpud_streams_idle(struct gpud *g);
/* Wait for the arbiter's turn for calls of class @cls (server.c). */
void gpud_arbiter_hold(struct gpud *g, unsigned int cls);

/* --- swapping an idle instance's memory (swap.c) ------------------------- */

/* Swap out or in; the report (ipc/control.h) says what was moved.  A
 * failed swap-in loses the instance's memory: the context becomes sticky-
 * failed. */
CUresult gpud_swap_out(struct gpud *g, struct mig_swap_report *rep);
CUresult gpud_swap_in(struct gpud *g, struct mig_swap_report *rep);
void gpud_swap_free(struct gpud *g);
/* The pinned pool of past swaps freed, unless swapped out now. */
void gpud_swap_pool_free(struct gpud *g);

/* --- the daemon's control pipe (control.c) ----------------------------- */

/* Read and act on the daemon's next frame, if there is one; never blocks.
 * true if a frame was read. */
bool gpud_control_poll(struct gpud *g);
/* Wake the loop when the daemon writes (a thread); 0 or -1. */
int gpud_control_watch(struct gpud *g);
/* Stop that thread (before the segment goes). */
void gpud_control_unwatch(struct gpud *g);

void gpud_log(const struct gpud *g, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* MIG_GPUD_H */

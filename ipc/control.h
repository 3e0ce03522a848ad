/*
 * control.h - the control channel between the node daemon and an executor
 * (mig-exec, or the Python executor through libmig_exec).
 *
 * A SOCK_STREAM socketpair carries frames: a fixed header, then @len bytes.
 * Both sides treat the other's frames as untrusted: magic, type and length
 * are checked before anything is read, and a frame larger than the
 * receiver's limit ends the connection.
 *
 *   exec -> daemon  READY   once, after the function initialized
 *   daemon -> exec  INVOKE  @id, body = payload (content type in @aux)
 *   exec -> daemon  RESULT  @id, @status = handler's return, body = result
 *   exec -> daemon  ERROR   @id, @status = enum mig_ctl_fault, body = message:
 *                           the invocation failed (a Python exception), the
 *                           executor stays usable
 *   exec -> daemon  FAILED  @status = enum mig_ctl_fault, body = message;
 *                           the executor exits after it
 *   daemon -> exec  SHUTDOWN
 *
 * The daemon also holds one end of a SOCK_SEQPACKET socketpair to each
 * GPU server (mig-gpud --control-fd), a frame per packet:
 *
 *   daemon -> gpud  MODULE_CACHE  body = the function's module cache
 *                           directory (absolute, NUL-terminated), @id = its
 *                           size limit in bytes (0: the server's default);
 *                           sent once, when the server is given to an
 *                           instance, before its client exists
 *   daemon -> gpud  SWAP_OUT, SWAP_IN  @id = the request's number
 *   gpud -> daemon  SWAPPED  @id echoed, @status = CUresult, body = struct
 *                           mig_swap_report
 *   daemon -> gpud  SWAP_POOL_FREE  free the pinned host memory kept from
 *                           past swaps (ignored while swapped out); no answer
 *   daemon -> gpud  MEMORY_LIMIT  @id = the device memory the client may
 *                           allocate, in bytes (its instance's reservation;
 *                           0: none); sent once, like MODULE_CACHE, before
 *                           its client exists
 */
#ifndef MIG_IPC_CONTROL_H
#define MIG_IPC_CONTROL_H

#include <stdint.h>

#define MIG_CTL_MAGIC 0x4d43544cu /* "MCTL" */
#define MIG_CTL_MAX_BODY (256u << 20)
/* The longest an executor polls for its next invocation before it sleeps
 * (MIG_EXEC_POLL_US, the node's executor_poll_us), in microseconds. */
#define MIG_EXEC_POLL_US_MAX 100000

enum mig_ctl_type {
	MIG_CTL_READY = 1,
	MIG_CTL_INVOKE = 2,
	MIG_CTL_RESULT = 3,
	MIG_CTL_FAILED = 4,
	MIG_CTL_SHUTDOWN = 5,
	MIG_CTL_ERROR = 6,
	MIG_CTL_MODULE_CACHE = 7,
	MIG_CTL_SWAP_OUT = 8,
	MIG_CTL_SWAP_IN = 9,
	MIG_CTL_SWAPPED = 10,
	MIG_CTL_SWAP_POOL_FREE = 11,
	MIG_CTL_MEMORY_LIMIT = 12,
};

/* Body of a SWAPPED frame. */
struct mig_swap_report {
	uint64_t bytes;        /* moved */
	uint64_t ns;           /* taken */
	uint32_t allocations;
	uint32_t pad;
};

/* Why an ERROR or FAILED frame was sent: the daemon's HTTP error follows. */
enum mig_ctl_fault {
	MIG_CTL_FAULT_INTERNAL = 0,  /* the executor itself failed */
	MIG_CTL_FAULT_ARTIFACT = 1,  /* the function's code cannot be loaded */
	MIG_CTL_FAULT_HANDLER = 2,   /* the handler is not in the code */
	MIG_CTL_FAULT_INIT = 3,      /* mignificent_init() or the import failed */
	MIG_CTL_FAULT_EXCEPTION = 4, /* the handler raised (Python) */
	MIG_CTL_FAULT_RESULT = 5,    /* the handler's result cannot be sent */
	MIG_CTL_FAULT_GPU = 6,       /* a sticky GPU error: the context is lost */
	MIG_CTL_FAULT_GPU_GONE = 7,  /* the GPU server went away */
	MIG_CTL_FAULT_GPU_OOM = 8,   /* the handler failed after the GPU ran out
				      * of memory (executor stays usable) */
	MIG_CTL_FAULT_SANDBOX = 9,   /* the sandbox could not be set up, or the
				      * executor cannot run inside it
				      * (sent by mig-sandbox) */
};

struct mig_ctl_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t pad;
	uint64_t id;
	int32_t status;
	uint32_t len;
	char aux[64]; /* content type of the body, NUL-terminated */
};

#endif /* MIG_IPC_CONTROL_H */

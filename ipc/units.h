/*
 * units.h - sizes as people write them ("512MiB", "1.5G", "4096"), parsed
 * the same way by the daemon's configuration, its deploy API and `mig`.
 */
#ifndef MIG_IPC_UNITS_H
#define MIG_IPC_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Bytes in @s (K, M, G, T are powers of 1024; "iB"/"B" optional).
 * 0, or -1 when @s is not such a size or does not fit in 64 bits. */
int mig_parse_size(const char *s, uint64_t *out);

/* How long a GPU server spins for its client's next call after one that
 * queued GPU work (gpud/server.c), set by MIG_GPUD_PHASE_SPIN_US in
 * microseconds: @s, its value (NULL or empty: the default).  0 with *@ns
 * set, or -1 with @err set.  mig-gpud reads it when it starts; the daemon,
 * whose environment its GPU servers inherit, checks it at its own start. */
#define MIG_PHASE_SPIN_DEFAULT_US 250ull
#define MIG_PHASE_SPIN_MAX_US 100000ull
int mig_parse_phase_spin(const char *s, uint64_t *ns, char *err, size_t errlen);

#endif /* MIG_IPC_UNITS_H */

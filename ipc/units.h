/*
 * units.h - sizes as people write them ("512MiB", "1.5G", "4096"), parsed
 * the same way by the daemon's configuration, its deploy API and `mig`.
 */
#ifndef MIG_IPC_UNITS_H
#define MIG_IPC_UNITS_H

#include <stdint.h>

/* Bytes in @s (K, M, G, T are powers of 1024; "iB"/"B" optional).
 * 0, or -1 when @s is not such a size or does not fit in 64 bits. */
int mig_parse_size(const char *s, uint64_t *out);

#endif /* MIG_IPC_UNITS_H */

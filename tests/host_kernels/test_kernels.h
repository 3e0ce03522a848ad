/*
 * test_kernels.h - helpers for the host implementations of the kernels in
 * tests/cuda (see gpud/host_kernels.h and README.md here).
 *
 * Every tests/host_kernels/NAME_kernels.c defines
 *
 *     const struct mig_host_kernel mig_test_kernels_NAME[] = { ..., { 0 } };
 *
 * and the build generates the one `mig_host_kernels` table of
 * libmig_test_kernels.so from all of them (tests/CMakeLists.txt).  Kernel
 * names are unique across files: give each program's kernels a prefix.
 */
#ifndef MIG_TEST_KERNELS_H
#define MIG_TEST_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "host_kernels.h"

/* Parameter i of the launch as a value of type T. */
#define ARG(T, i) (*(T *)params[(i)])

/* Threads in the launch, along one axis and in all. */
#define NX(l) ((uint64_t)(l)->grid[0] * (l)->block[0])
#define NY(l) ((uint64_t)(l)->grid[1] * (l)->block[1])
#define NZ(l) ((uint64_t)(l)->grid[2] * (l)->block[2])
#define NTHREADS(l) (NX(l) * NY(l) * NZ(l))

/* One x-dimension thread index per iteration, as blockIdx.x * blockDim.x +
 * threadIdx.x takes its values. */
#define FOR_EACH_X(l, i) for (uint64_t i = 0; i < NX(l); i++)

/* Keep the table's type in one place. */
#define HOST_KERNEL_TABLE(name) const struct mig_host_kernel mig_test_kernels_##name[]

#define CUDA_ERROR_ILLEGAL_ADDRESS_ 700

#endif /* MIG_TEST_KERNELS_H */

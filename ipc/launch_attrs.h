/*
 * launch_attrs.h - which cuLaunchKernelEx attributes may cross the channel.
 *
 * Only attributes that carry plain values: one that carries an event or
 * another handle would need translating, and the server refuses what it
 * cannot translate.  Shared by the shim (to fail early, synchronously) and
 * the server (which must not trust the shim).
 */
#ifndef MIG_IPC_LAUNCH_ATTRS_H
#define MIG_IPC_LAUNCH_ATTRS_H

#include <cuda.h>
#include <stdbool.h>

static inline bool mig_launch_attr_allowed(CUlaunchAttributeID id)
{
	switch (id) {
	case CU_LAUNCH_ATTRIBUTE_IGNORE:
	case CU_LAUNCH_ATTRIBUTE_ACCESS_POLICY_WINDOW:
	case CU_LAUNCH_ATTRIBUTE_COOPERATIVE:
	case CU_LAUNCH_ATTRIBUTE_SYNCHRONIZATION_POLICY:
	case CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION:
	case CU_LAUNCH_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
	case CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION:
	case CU_LAUNCH_ATTRIBUTE_PRIORITY:
	case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN_MAP:
	case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN:
	case CU_LAUNCH_ATTRIBUTE_PREFERRED_CLUSTER_DIMENSION:
	case CU_LAUNCH_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
	case CU_LAUNCH_ATTRIBUTE_NVLINK_UTIL_CENTRIC_SCHEDULING:
		return true;
	default:
		return false;
	}
}

#endif /* MIG_IPC_LAUNCH_ATTRS_H */

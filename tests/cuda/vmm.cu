// vmm.cu - the virtual memory management API, as PyTorch's expandable
// segments use it (driver API only, no kernels).
//
// Reserves three granules, creates two physical allocations, maps them at
// granules 1 and 2, sets access on both with one call, writes them with
// cuMemsetD32 and host-to-device copies, copies device to device across
// the boundary between the two mappings, reads back and checks.  Then the
// hostile cases: unaligned sizes, maps outside the reservation or over a
// mapping, bad and released handles, double release, freeing a
// reservation that still has mappings.  The exact error codes are checked
// through mignificent; natively only the cases the real driver is
// documented to refuse run, and only failure is required.  One mapping
// is left behind at exit on purpose: the server must clean it up.
// Links -lcuda against the toolkit's stub, as modules.cu does.
#include <cuda.h>

#include <vector>

#include "test_common.h"

// Must fail: with exactly @want through mignificent, with anything natively.
#define CU_FAILS(x, want)                                                     \
	do {                                                                  \
		CUresult r_ = (x);                                            \
		REQUIRE(under_mig() ? r_ == (want) : r_ != CUDA_SUCCESS,      \
			"%s returned %s, want %s", #x, cu_name(r_),           \
			cu_name(want));                                       \
	} while (0)

static CUmemAllocationProp device_prop(void)
{
	CUmemAllocationProp p;
	memset(&p, 0, sizeof(p));
	p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	p.location.id = 0;
	return p;
}

static CUmemAccessDesc rw_access(void)
{
	CUmemAccessDesc d;
	memset(&d, 0, sizeof(d));
	d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	d.location.id = 0;
	d.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	return d;
}

int main()
{
	CUdevice dev;
	CUcontext ctx;
	CU(cuInit(0));
	CU(cuDeviceGet(&dev, 0));
	CU(cuDevicePrimaryCtxRetain(&ctx, dev));
	CU(cuCtxSetCurrent(ctx));

	CUmemAllocationProp prop = device_prop();
	size_t gran = 0, rec = 0;
	CU(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
	CU(cuMemGetAllocationGranularity(&rec, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
	REQUIRE(gran && !(gran & (gran - 1)) && rec >= gran && rec % gran == 0,
		"granularity %zu, recommended %zu", gran, rec);

	// --- the good path -------------------------------------------------
	CUdeviceptr base = 0;
	CU(cuMemAddressReserve(&base, 3 * gran, 0, 0, 0));
	REQUIRE(base && base % gran == 0, "reservation at 0x%llx", (unsigned long long)base);

	CUmemGenericAllocationHandle h0 = 0, h1 = 0;
	CU(cuMemCreate(&h0, gran, &prop, 0));
	CU(cuMemCreate(&h1, gran, &prop, 0));
	CUmemAllocationProp got;
	CU(cuMemGetAllocationPropertiesFromHandle(&got, h1));
	REQUIRE(got.type == CU_MEM_ALLOCATION_TYPE_PINNED &&
			got.location.type == CU_MEM_LOCATION_TYPE_DEVICE &&
			got.location.id == 0,
		"properties %d %d %d", (int)got.type, (int)got.location.type,
		got.location.id);

	CUdeviceptr m0 = base + gran, m1 = base + 2 * gran;
	CU(cuMemMap(m0, gran, 0, h0, 0));
	CU(cuMemMap(m1, gran, 0, h1, 0));
	CUmemAccessDesc rw = rw_access();
	CU(cuMemSetAccess(m0, 2 * gran, &rw, 1)); // both mappings at once

	// cuMemAlloc never lands inside a reservation.
	CUdeviceptr plain = 0;
	CU(cuMemAlloc(&plain, gran));
	REQUIRE(plain + gran <= base || plain >= base + 3 * gran,
		"cuMemAlloc 0x%llx inside the reservation 0x%llx",
		(unsigned long long)plain, (unsigned long long)base);

	size_t words = 2 * gran / 4;
	CU(cuMemsetD32(m0, 0x5a5a5a5au, words));
	// A block straddling the boundary between the two mappings.
	size_t blk = 64 << 10;
	std::vector<uint8_t> src(blk), back(2 * gran);
	fill_bytes(src.data(), blk, 7);
	CUdeviceptr straddle = m1 - blk / 2;
	CU(cuMemcpyHtoD(straddle, src.data(), blk));
	// Device to device: the straddling block to the start of m0, and to
	// the end of m1; then the whole of m0 + m1 through a cuMemAlloc.
	CU(cuMemcpyDtoD(m0, straddle, blk));
	CU(cuMemcpyDtoD(m1 + gran - blk, straddle, blk));
	CU(cuMemcpyDtoD(plain, m0, gran));
	CU(cuCtxSynchronize());
	CU(cuMemcpyDtoH(back.data(), m0, 2 * gran));

	std::vector<uint8_t> want(2 * gran);
	for (size_t i = 0; i < words; i++)
		memcpy(&want[i * 4], "\x5a\x5a\x5a\x5a", 4);
	memcpy(&want[gran - blk / 2], src.data(), blk);
	memcpy(&want[0], src.data(), blk);
	memcpy(&want[2 * gran - blk], src.data(), blk);
	REQUIRE_SAME(back.data(), want.data(), 2 * gran, "m0 + m1 after writes");
	std::vector<uint8_t> viaplain(gran);
	CU(cuMemcpyDtoH(viaplain.data(), plain, gran));
	REQUIRE_SAME(viaplain.data(), want.data(), gran, "m0 copied to cuMemAlloc memory");

	// Aligned reservations honour the alignment.
	CUdeviceptr aligned = 0;
	CU(cuMemAddressReserve(&aligned, gran, 8 * gran, 0, 0));
	REQUIRE(aligned % (8 * gran) == 0, "aligned reservation 0x%llx",
		(unsigned long long)aligned);

	// --- hostile arguments ---------------------------------------------
	CUdeviceptr bad = 0;
	CUmemGenericAllocationHandle hb = 0;
	CU_FAILS(cuMemAddressReserve(&bad, gran + 1, 0, 0, 0), CUDA_ERROR_INVALID_VALUE);
	CU_FAILS(cuMemCreate(&hb, gran + 4096, &prop, 0), CUDA_ERROR_INVALID_VALUE);
	CU_FAILS(cuMemCreate(&hb, gran / 2, &prop, 0), CUDA_ERROR_INVALID_VALUE);
	// Over an existing mapping, partly or wholly.
	CUmemGenericAllocationHandle h2 = 0;
	CU(cuMemCreate(&h2, 2 * gran, &prop, 0));
	CU_FAILS(cuMemMap(m0, gran, 0, h2, 0), CUDA_ERROR_INVALID_VALUE);
	CU_FAILS(cuMemMap(base, 2 * gran, 0, h2, 0), CUDA_ERROR_INVALID_VALUE);
	// Unaligned address, beyond the handle's size.
	CU_FAILS(cuMemMap(base + 4096, gran, 0, h2, 0), CUDA_ERROR_INVALID_VALUE);
	CU_FAILS(cuMemMap(base, 3 * gran, 0, h2, 0), CUDA_ERROR_INVALID_VALUE);
	if (under_mig()) {
		// Outside the reservation, or straddling its end.
		CU_FAILS(cuMemMap(base + 3 * gran, gran, 0, h2, 0), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemMap(m1, 2 * gran, 0, h2, 0), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemMap(plain, gran, 0, h2, 0), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemMap(~0ull - gran + 1, 2 * gran, 0, h2, 0),
			 CUDA_ERROR_INVALID_VALUE);
		// offset + size beyond the allocation; flags.
		CU_FAILS(cuMemMap(base, gran, 2 * gran, h2, 0), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemMap(base, gran, 0, h2, 1), CUDA_ERROR_INVALID_VALUE);
		// Handles we never issued.
		CU_FAILS(cuMemMap(base, gran, 0, 0x12345, 0), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemMap(base, gran, 0, (CUmemGenericAllocationHandle)ctx, 0),
			 CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemRelease(0x12345), CUDA_ERROR_INVALID_VALUE);
		// Access: unmapped range, half a mapping, another device, bad flags.
		CU_FAILS(cuMemSetAccess(base, gran, &rw, 1), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemSetAccess(m0, gran / 2, &rw, 1), CUDA_ERROR_INVALID_VALUE);
		CUmemAccessDesc other = rw;
		other.location.id = 1;
		CU_FAILS(cuMemSetAccess(m0, gran, &other, 1), CUDA_ERROR_INVALID_DEVICE);
		CUmemAccessDesc odd = rw;
		odd.flags = (CUmemAccess_flags)2;
		CU_FAILS(cuMemSetAccess(m0, gran, &odd, 1), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemSetAccess(m0, gran, &rw, 0), CUDA_ERROR_INVALID_VALUE);
		// Properties the server does not offer.
		CUmemAllocationProp fab = prop;
		fab.requestedHandleTypes = CU_MEM_HANDLE_TYPE_FABRIC;
		CU_FAILS(cuMemCreate(&hb, gran, &fab, 0), CUDA_ERROR_NOT_SUPPORTED);
		CUmemAllocationProp dev1 = prop;
		dev1.location.id = 1;
		CU_FAILS(cuMemCreate(&hb, gran, &dev1, 0), CUDA_ERROR_INVALID_DEVICE);
		// More than the device has.
		size_t free_b = 0, total_b = 0;
		CU(cuMemGetInfo(&free_b, &total_b));
		size_t huge = (total_b / gran + 1) * gran;
		CU_FAILS(cuMemCreate(&hb, huge, &prop, 0), CUDA_ERROR_OUT_OF_MEMORY);
		// cuMemFree is not for mappings; partial unmaps are refused.
		CU_FAILS(cuMemFree(m0), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemUnmap(m0, gran / 2), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemUnmap(base, gran), CUDA_ERROR_INVALID_VALUE);
		// A reservation with mappings left, or of the wrong size.
		CU_FAILS(cuMemAddressFree(base, 3 * gran), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemAddressFree(base, 2 * gran), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemAddressFree(plain, gran), CUDA_ERROR_INVALID_VALUE);
	}

	// --- tear down -------------------------------------------------------
	// Release before unmap: the mapping keeps the memory alive.
	CU(cuMemRelease(h0));
	std::vector<uint8_t> again(gran);
	CU(cuMemcpyDtoH(again.data(), m0, gran));
	REQUIRE_SAME(again.data(), want.data(), gran, "m0 after its handle was released");
	CU(cuMemUnmap(m0, gran));
	CU(cuMemUnmap(m1, gran));
	if (under_mig()) {
		CU_FAILS(cuMemRelease(h0), CUDA_ERROR_INVALID_VALUE); // double release
		CU_FAILS(cuMemMap(m0, gran, 0, h0, 0), CUDA_ERROR_INVALID_VALUE);
		CU_FAILS(cuMemcpyHtoD(m0, src.data(), 16), CUDA_ERROR_INVALID_VALUE);
	}
	// The granules can be mapped again; one allocation mapped twice.
	CU(cuMemMap(m0, gran, 0, h1, 0));
	CU(cuMemMap(m1, gran, 0, h1, 0));
	CU(cuMemSetAccess(m0, 2 * gran, &rw, 1));
	CU(cuMemcpyDtoH(again.data(), m0, gran));
	REQUIRE_SAME(again.data(), want.data() + gran, gran, "h1 mapped again at m0");
	CU(cuMemsetD32(m1, 0x01020304u, 1));
	uint32_t w = 0;
	CU(cuMemcpyDtoH(&w, m0, 4));
	REQUIRE(w == 0x01020304u, "a write through m1 reads back through m0 as %08x", w);
	if (under_mig()) {
		CU(cuMemUnmap(m0, 2 * gran)); // two whole mappings at once
	} else {
		CU(cuMemUnmap(m0, gran));
		CU(cuMemUnmap(m1, gran));
	}
	CU(cuMemRelease(h1));
	CU(cuMemAddressFree(base, 3 * gran));
	if (under_mig())
		CU_FAILS(cuMemAddressFree(base, 3 * gran), CUDA_ERROR_INVALID_VALUE);
	CU(cuMemAddressFree(aligned, gran));
	CU(cuMemFree(plain));

	// Left behind on purpose: a reservation, a mapping and two handles.
	CUdeviceptr left = 0;
	CU(cuMemAddressReserve(&left, 2 * gran, 0, 0, 0));
	CU(cuMemMap(left, 2 * gran, 0, h2, 0));
	CU(cuMemSetAccess(left, 2 * gran, &rw, 1));
	CU(cuMemsetD32(left, 1, 2 * gran / 4));
	CUmemGenericAllocationHandle h3 = 0;
	CU(cuMemCreate(&h3, gran, &prop, 0));
	CU(cuCtxSynchronize());
	printf("OK\n");
	return 0;
}

// device_query.cu - everything a program can ask about the device without
// running work: count, every field of cudaDeviceProp, many attributes
// (cross-checked against the properties), memory info, versions, PCI bus
// id round trip, and an invalid device ordinal.
#include "test_common.h"

// Launch one kernel so the program also has device code (and a fatbin the
// runtime registers, as real programs do).
extern "C" __global__ void dq_touch(int *p, int v)
{
	if (threadIdx.x == 0 && blockIdx.x == 0)
		*p = v * 3 + 1;
}

static void print_props(const cudaDeviceProp &p)
{
#define PI(f) printf("  %-42s %d\n", #f, (int)p.f)
#define PU(f) printf("  %-42s %u\n", #f, (unsigned)p.f)
#define PZ(f) printf("  %-42s %zu\n", #f, (size_t)p.f)
#define PA2(f) printf("  %-42s %d %d\n", #f, p.f[0], p.f[1])
#define PA3(f) printf("  %-42s %d %d %d\n", #f, p.f[0], p.f[1], p.f[2])
	printf("  %-42s %s\n", "name", p.name);
	printf("  %-42s ", "uuid");
	for (int i = 0; i < 16; i++)
		printf("%02x", (unsigned char)p.uuid.bytes[i]);
	printf("\n  %-42s ", "luid");
	for (int i = 0; i < 8; i++)
		printf("%02x", (unsigned char)p.luid[i]);
	printf("\n");
	PU(luidDeviceNodeMask);
	PZ(totalGlobalMem);
	PZ(sharedMemPerBlock);
	PI(regsPerBlock);
	PI(warpSize);
	PZ(memPitch);
	PI(maxThreadsPerBlock);
	PA3(maxThreadsDim);
	PA3(maxGridSize);
	PZ(totalConstMem);
	PI(major);
	PI(minor);
	PZ(textureAlignment);
	PZ(texturePitchAlignment);
	PI(multiProcessorCount);
	PI(integrated);
	PI(canMapHostMemory);
	PI(maxTexture1D);
	PI(maxTexture1DMipmap);
	PA2(maxTexture2D);
	PA2(maxTexture2DMipmap);
	PA3(maxTexture2DLinear);
	PA2(maxTexture2DGather);
	PA3(maxTexture3D);
	PA3(maxTexture3DAlt);
	PI(maxTextureCubemap);
	PA2(maxTexture1DLayered);
	PA3(maxTexture2DLayered);
	PA2(maxTextureCubemapLayered);
	PI(maxSurface1D);
	PA2(maxSurface2D);
	PA3(maxSurface3D);
	PA2(maxSurface1DLayered);
	PA3(maxSurface2DLayered);
	PI(maxSurfaceCubemap);
	PA2(maxSurfaceCubemapLayered);
	PZ(surfaceAlignment);
	PI(concurrentKernels);
	PI(ECCEnabled);
	PI(pciBusID);
	PI(pciDeviceID);
	PI(pciDomainID);
	PI(tccDriver);
	PI(asyncEngineCount);
	PI(unifiedAddressing);
	PI(memoryBusWidth);
	PI(l2CacheSize);
	PI(persistingL2CacheMaxSize);
	PI(maxThreadsPerMultiProcessor);
	PI(streamPrioritiesSupported);
	PI(globalL1CacheSupported);
	PI(localL1CacheSupported);
	PZ(sharedMemPerMultiprocessor);
	PI(regsPerMultiprocessor);
	PI(managedMemory);
	PI(isMultiGpuBoard);
	PI(multiGpuBoardGroupID);
	PI(hostNativeAtomicSupported);
	PI(pageableMemoryAccess);
	PI(concurrentManagedAccess);
	PI(computePreemptionSupported);
	PI(canUseHostPointerForRegisteredMem);
	PI(cooperativeLaunch);
	PZ(sharedMemPerBlockOptin);
	PI(pageableMemoryAccessUsesHostPageTables);
	PI(directManagedMemAccessFromHost);
	PI(maxBlocksPerMultiProcessor);
	PI(accessPolicyMaxWindowSize);
	PZ(reservedSharedMemPerBlock);
	PI(hostRegisterSupported);
	PI(sparseCudaArraySupported);
	PI(hostRegisterReadOnlySupported);
	PI(timelineSemaphoreInteropSupported);
	PI(memoryPoolsSupported);
	PI(gpuDirectRDMASupported);
	PU(gpuDirectRDMAFlushWritesOptions);
	PI(gpuDirectRDMAWritesOrdering);
	PU(memoryPoolSupportedHandleTypes);
	PI(deferredMappingCudaArraySupported);
	PI(ipcEventSupported);
	PI(clusterLaunch);
	PI(unifiedFunctionPointers);
	PI(deviceNumaConfig);
	PI(deviceNumaId);
	PI(mpsEnabled);
	PI(hostNumaId);
	PU(gpuPciDeviceID);
	PU(gpuPciSubsystemID);
	PI(hostNumaMultinodeIpcSupported);
#undef PI
#undef PU
#undef PZ
#undef PA2
#undef PA3
}

// Attributes every CUDA 13 driver answers, with the property each must
// equal (or NULL where cudaDeviceProp has no such field).
struct AttrCheck {
	cudaDeviceAttr attr;
	const char *name;
	long long prop; // -1: no property to compare with
};

int main()
{
	int count = -1;
	CHECK(cudaGetDeviceCount(&count));
	printf("device count: %d\n", count);
	REQUIRE(count >= 1, "count = %d", count);

	int drv = 0, rt = 0;
	CHECK(cudaDriverGetVersion(&drv));
	CHECK(cudaRuntimeGetVersion(&rt));
	printf("driver version %d, runtime version %d\n", drv, rt);
	REQUIRE(drv >= 12000 && drv % 10 == 0, "driver version %d", drv);
	REQUIRE(rt >= 12000, "runtime version %d", rt);
	REQUIRE(drv >= rt, "driver %d older than runtime %d", drv, rt);

	int dev = -1;
	CHECK(cudaSetDevice(0));
	CHECK(cudaGetDevice(&dev));
	REQUIRE(dev == 0, "cudaGetDevice = %d", dev);

	cudaDeviceProp p;
	memset(&p, 0x5a, sizeof(p));
	CHECK(cudaGetDeviceProperties(&p, 0));
	printf("cudaDeviceProp of device 0:\n");
	print_props(p);

	// Sanity of the properties themselves.
	REQUIRE(strnlen(p.name, sizeof(p.name)) > 0 &&
			strnlen(p.name, sizeof(p.name)) < sizeof(p.name),
		"name not a string");
	REQUIRE(p.major >= 7 && p.major < 20 && p.minor >= 0 && p.minor < 10,
		"cc %d.%d", p.major, p.minor);
	REQUIRE(p.warpSize == 32, "warpSize %d", p.warpSize);
	REQUIRE(p.maxThreadsPerBlock == 1024, "maxThreadsPerBlock %d",
		p.maxThreadsPerBlock);
	REQUIRE(p.maxThreadsDim[0] == 1024 && p.maxThreadsDim[1] == 1024 &&
			p.maxThreadsDim[2] == 64,
		"maxThreadsDim");
	REQUIRE(p.maxGridSize[0] == 2147483647 && p.maxGridSize[1] == 65535 &&
			p.maxGridSize[2] == 65535,
		"maxGridSize");
	REQUIRE(p.multiProcessorCount > 0, "no SMs");
	REQUIRE(p.totalGlobalMem >= (256u << 20), "totalGlobalMem %zu",
		p.totalGlobalMem);
	REQUIRE(p.sharedMemPerBlock >= 48 * 1024, "sharedMemPerBlock %zu",
		p.sharedMemPerBlock);
	REQUIRE(p.sharedMemPerBlockOptin >= p.sharedMemPerBlock,
		"sharedMemPerBlockOptin");
	REQUIRE(p.totalConstMem == 65536, "totalConstMem %zu", p.totalConstMem);
	REQUIRE(p.unifiedAddressing == 1, "unifiedAddressing");
	REQUIRE(p.l2CacheSize > 0, "l2CacheSize");
	bool uuid_zero = true;
	for (int i = 0; i < 16; i++)
		uuid_zero &= p.uuid.bytes[i] == 0;
	REQUIRE(!uuid_zero, "uuid is all zeros");

	const AttrCheck attrs[] = {
#define AC(a, prop) { cudaDevAttr##a, #a, (long long)(prop) }
		AC(MaxThreadsPerBlock, p.maxThreadsPerBlock),
		AC(MaxBlockDimX, p.maxThreadsDim[0]),
		AC(MaxBlockDimY, p.maxThreadsDim[1]),
		AC(MaxBlockDimZ, p.maxThreadsDim[2]),
		AC(MaxGridDimX, p.maxGridSize[0]),
		AC(MaxGridDimY, p.maxGridSize[1]),
		AC(MaxGridDimZ, p.maxGridSize[2]),
		AC(MaxSharedMemoryPerBlock, p.sharedMemPerBlock),
		AC(TotalConstantMemory, p.totalConstMem),
		AC(WarpSize, p.warpSize),
		AC(MaxPitch, p.memPitch),
		AC(MaxRegistersPerBlock, p.regsPerBlock),
		AC(ClockRate, -1),
		AC(TextureAlignment, p.textureAlignment),
		AC(MultiProcessorCount, p.multiProcessorCount),
		AC(KernelExecTimeout, -1),
		AC(Integrated, p.integrated),
		AC(CanMapHostMemory, p.canMapHostMemory),
		AC(ComputeMode, -1),
		AC(MaxTexture1DWidth, p.maxTexture1D),
		AC(MaxTexture2DWidth, p.maxTexture2D[0]),
		AC(MaxTexture2DHeight, p.maxTexture2D[1]),
		AC(MaxTexture3DWidth, p.maxTexture3D[0]),
		AC(SurfaceAlignment, p.surfaceAlignment),
		AC(ConcurrentKernels, p.concurrentKernels),
		AC(EccEnabled, p.ECCEnabled),
		AC(PciBusId, p.pciBusID),
		AC(PciDeviceId, p.pciDeviceID),
		AC(PciDomainId, p.pciDomainID),
		AC(TccDriver, p.tccDriver),
		AC(MemoryClockRate, -1),
		AC(GlobalMemoryBusWidth, p.memoryBusWidth),
		AC(L2CacheSize, p.l2CacheSize),
		AC(MaxThreadsPerMultiProcessor, p.maxThreadsPerMultiProcessor),
		AC(AsyncEngineCount, p.asyncEngineCount),
		AC(UnifiedAddressing, p.unifiedAddressing),
		AC(TexturePitchAlignment, p.texturePitchAlignment),
		AC(ComputeCapabilityMajor, p.major),
		AC(ComputeCapabilityMinor, p.minor),
		AC(StreamPrioritiesSupported, p.streamPrioritiesSupported),
		AC(GlobalL1CacheSupported, p.globalL1CacheSupported),
		AC(LocalL1CacheSupported, p.localL1CacheSupported),
		AC(MaxSharedMemoryPerMultiprocessor, p.sharedMemPerMultiprocessor),
		AC(MaxRegistersPerMultiprocessor, p.regsPerMultiprocessor),
		AC(ManagedMemory, p.managedMemory),
		AC(IsMultiGpuBoard, p.isMultiGpuBoard),
		AC(MultiGpuBoardGroupID, p.multiGpuBoardGroupID),
		AC(HostNativeAtomicSupported, p.hostNativeAtomicSupported),
		AC(PageableMemoryAccess, p.pageableMemoryAccess),
		AC(ConcurrentManagedAccess, p.concurrentManagedAccess),
		AC(ComputePreemptionSupported, p.computePreemptionSupported),
		AC(CanUseHostPointerForRegisteredMem,
		   p.canUseHostPointerForRegisteredMem),
		AC(CooperativeLaunch, p.cooperativeLaunch),
		AC(MaxSharedMemoryPerBlockOptin, p.sharedMemPerBlockOptin),
		AC(DirectManagedMemAccessFromHost, p.directManagedMemAccessFromHost),
		AC(MaxBlocksPerMultiprocessor, p.maxBlocksPerMultiProcessor),
		AC(MaxPersistingL2CacheSize, p.persistingL2CacheMaxSize),
		AC(MaxAccessPolicyWindowSize, p.accessPolicyMaxWindowSize),
		AC(ReservedSharedMemoryPerBlock, p.reservedSharedMemPerBlock),
		AC(HostRegisterSupported, p.hostRegisterSupported),
		AC(MemoryPoolsSupported, p.memoryPoolsSupported),
		AC(GPUDirectRDMASupported, p.gpuDirectRDMASupported),
		AC(ClusterLaunch, p.clusterLaunch),
		AC(IpcEventSupport, p.ipcEventSupported),
#undef AC
	};
	const int nattrs = (int)(sizeof(attrs) / sizeof(attrs[0]));
	printf("attributes:\n");
	for (int i = 0; i < nattrs; i++) {
		int v = -12345;
		CHECK(cudaDeviceGetAttribute(&v, attrs[i].attr, 0));
		printf("  %-42s %d\n", attrs[i].name, v);
		REQUIRE(v != -12345, "%s not written", attrs[i].name);
		if (attrs[i].prop != -1)
			REQUIRE((long long)v == attrs[i].prop,
				"attribute %s = %d but cudaDeviceProp says %lld",
				attrs[i].name, v, attrs[i].prop);
	}
	int v = 0;
	CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrClockRate, 0));
	REQUIRE(v > 0, "clock rate %d", v);
	CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMemoryClockRate, 0));
	REQUIRE(v > 0, "memory clock rate %d", v);

	int least = 1, greatest = 1;
	CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
	printf("stream priorities: least %d greatest %d\n", least, greatest);
	REQUIRE(greatest <= least, "priority range %d..%d", least, greatest);

	size_t free_b = 0, total_b = 0;
	CHECK(cudaMemGetInfo(&free_b, &total_b));
	printf("memory: %zu free of %zu\n", free_b, total_b);
	REQUIRE(total_b > 0 && free_b > 0 && free_b <= total_b, "mem info");
	REQUIRE(total_b == p.totalGlobalMem,
		"cudaMemGetInfo total %zu != totalGlobalMem %zu", total_b,
		p.totalGlobalMem);

	// An allocation shows in the free count (allow for other tenants'
	// noise on a real GPU: only require that free did not grow by more
	// than the allocation could explain).
	void *big = nullptr;
	const size_t big_size = 64u << 20;
	CHECK(cudaMalloc(&big, big_size));
	size_t free2 = 0, total2 = 0;
	CHECK(cudaMemGetInfo(&free2, &total2));
	REQUIRE(total2 == total_b, "total changed %zu -> %zu", total_b, total2);
	REQUIRE(free2 < free_b, "free did not drop after a 64 MiB allocation (%zu -> %zu)",
		free_b, free2);
	CHECK(cudaFree(big));

	char bus[64] = { 0 };
	CHECK(cudaDeviceGetPCIBusId(bus, sizeof(bus), 0));
	printf("pci bus id: %s\n", bus);
	int back = -1;
	CHECK(cudaDeviceGetByPCIBusId(&back, bus));
	REQUIRE(back == 0, "bus id %s -> device %d", bus, back);

	// The device does work.
	int *d = nullptr, h = 0;
	CHECK(cudaMalloc(&d, sizeof(int)));
	dq_touch<<<1, 32>>>(d, 41);
	CHECK(cudaGetLastError());
	CHECK(cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost));
	REQUIRE(h == 124, "dq_touch wrote %d", h);
	CHECK(cudaFree(d));

	// An ordinal past the last device.
	cudaError_t e = cudaSetDevice(count);
	printf("cudaSetDevice(%d): %s\n", count, cudaGetErrorName(e));
	REQUIRE(e == cudaErrorInvalidDevice, "cudaSetDevice(%d) = %s", count,
		cudaGetErrorName(e));
	cudaGetLastError();
	EXPECT_ERR(cudaGetDeviceProperties(&p, count), cudaErrorInvalidDevice);
	EXPECT_ERR(cudaDeviceGetAttribute(&v, cudaDevAttrWarpSize, count),
		   cudaErrorInvalidDevice);
	cudaGetLastError();
	// The failed switch left device 0 current and usable.
	CHECK(cudaGetDevice(&dev));
	REQUIRE(dev == 0, "current device %d after a failed cudaSetDevice", dev);
	CHECK(cudaDeviceSynchronize());

	printf("OK\n");
	return 0;
}

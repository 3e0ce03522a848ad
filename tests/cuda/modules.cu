// modules.cu - the driver API used directly, as JITs and frameworks do.
//
// Loads a cubin, PTX and a fatbin built from module_src/modules_module.cu
// (embedded at build time, see tests/CMakeLists.txt) and a cubin from a
// file; gets functions and globals; launches with kernelParams and with
// the `extra` CU_LAUNCH_PARAM_BUFFER_POINTER form; asks function
// attributes and occupancy; uses the library API; and unloads and reloads
// a module 100 times.  Links -lcuda against the toolkit's stub: at run time
// the loader finds the shim (or the real driver) first.
#include <cuda.h>
#include <unistd.h>

#include <cstddef>

#include <vector>

#include "modules_images.h"
#include "test_common.h"

struct Mod {
	const char *what;
	CUmodule m;
	CUfunction fill, sum, mix;
};

static void get_functions(Mod &md)
{
	CU(cuModuleGetFunction(&md.fill, md.m, "mod_fill"));
	CU(cuModuleGetFunction(&md.sum, md.m, "mod_sum"));
	CU(cuModuleGetFunction(&md.mix, md.m, "mod_mix"));
	CUfunction none;
	CUresult r = cuModuleGetFunction(&none, md.m, "mod_no_such_kernel");
	REQUIRE(r == CUDA_ERROR_NOT_FOUND, "%s: missing kernel gave %s", md.what,
		cu_name(r));
}

// mod_fill through kernelParams, then through a parameter buffer.
static void run_fill(const Mod &md, CUdeviceptr d, int v, int n, CUstream s)
{
	std::vector<int> h(n);
	void *params[] = { &d, &v, &n };
	CU(cuMemsetD32Async(d, 0xdeadbeef, n, s));
	CU(cuLaunchKernel(md.fill, (n + 127) / 128, 1, 1, 128, 1, 1, 0, s, params,
			  nullptr));
	CU(cuMemcpyDtoHAsync(h.data(), d, n * sizeof(int), s));
	CU(cuStreamSynchronize(s));
	for (int i = 0; i < n; i++)
		REQUIRE(h[i] == v + i * 3, "%s: fill[%d] = %d, want %d", md.what, i,
			h[i], v + i * 3);

	// CUDA ABI layout: out @0, v @8, n @12.
	struct {
		CUdeviceptr out;
		int v, n;
	} buf = { d, v + 1000, n };
	static_assert(sizeof(buf) == 16, "fill buffer");
	size_t size = sizeof(buf);
	void *extra[] = { CU_LAUNCH_PARAM_BUFFER_POINTER, &buf,
			  CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END };
	CU(cuLaunchKernel(md.fill, (n + 63) / 64, 1, 1, 64, 1, 1, 0, s, nullptr,
			  extra));
	CU(cuMemcpyDtoH(h.data(), d, n * sizeof(int)));
	for (int i = 0; i < n; i++)
		REQUIRE(h[i] == v + 1000 + i * 3, "%s: extra fill[%d] = %d", md.what, i,
			h[i]);
}

static void run_mix(const Mod &md, CUdeviceptr d, int n)
{
	int a = -7;
	double b = 1234.5;
	std::vector<float> h(n);
	// CUDA ABI layout: a @0, b @8, out @16, n @24: 28 bytes.  The size
	// must be exact: the driver answers LAUNCH_OUT_OF_RESOURCES to 32.
	struct {
		int a;
		int pad;
		double b;
		CUdeviceptr out;
		int n;
		int pad2;
	} buf = { a, 0x5a5a5a5a, b, d, n, 0 };
	size_t size = offsetof(decltype(buf), pad2);
	static_assert(offsetof(decltype(buf), pad2) == 28, "mix buffer");
	void *extra[] = { CU_LAUNCH_PARAM_BUFFER_POINTER, &buf,
			  CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END };
	CU(cuLaunchKernel(md.mix, (n + 31) / 32, 1, 1, 32, 1, 1, 0, nullptr, nullptr,
			  extra));
	CU(cuCtxSynchronize());
	CU(cuMemcpyDtoH(h.data(), d, n * sizeof(float)));
	for (int i = 0; i < n; i++) {
		float want = (float)(a * i) + (float)b;
		REQUIRE(h[i] == want, "%s: mix[%d] = %g, want %g", md.what, i, h[i],
			want);
	}
	// And the same through kernelParams.
	a = 5;
	b = -0.25;
	void *params[] = { &a, &b, &d, &n };
	CU(cuLaunchKernel(md.mix, 1, 1, 1, 256, 1, 1, 0, nullptr, params, nullptr));
	CU(cuMemcpyDtoH(h.data(), d, n * sizeof(float)));
	for (int i = 0; i < n && i < 256; i++) {
		float want = (float)(a * i) + (float)b;
		REQUIRE(h[i] == want, "%s: mix params[%d] = %g, want %g", md.what, i,
			h[i], want);
	}
}

// Globals: initial values, and a kernel reading a global we wrote.
static void run_globals(const Mod &md, CUdeviceptr dsum)
{
	CUdeviceptr g = 0;
	size_t bytes = 0;
	CUresult r = cuModuleGetGlobal(&g, &bytes, md.m, "mod_init");
	if (r == CUDA_ERROR_NOT_FOUND && on_host_backend()) {
		printf("%s: globals skipped (the host backend finds globals only "
		       "in uncompressed cubins)\n",
		       md.what);
		return;
	}
	CU(r);
	REQUIRE(bytes == 16, "%s: mod_init is %zu bytes", md.what, bytes);
	int init[4] = {};
	CU(cuMemcpyDtoH(init, g, sizeof(init)));
	REQUIRE(init[0] == 11 && init[1] == 22 && init[2] == 33 && init[3] == 44,
		"%s: mod_init = %d %d %d %d", md.what, init[0], init[1], init[2],
		init[3]);

	CU(cuModuleGetGlobal(&g, &bytes, md.m, "mod_const"));
	float cst[4] = {};
	REQUIRE(bytes == 16, "%s: mod_const is %zu bytes", md.what, bytes);
	CU(cuMemcpyDtoH(cst, g, sizeof(cst)));
	REQUIRE(cst[0] == 1.5f && cst[3] == 4.5f, "%s: mod_const = %g .. %g",
		md.what, cst[0], cst[3]);

	CU(cuModuleGetGlobal(&g, &bytes, md.m, "mod_table"));
	REQUIRE(bytes == 256 * sizeof(int), "%s: mod_table is %zu bytes", md.what,
		bytes);
	std::vector<int> t(256);
	Rng rng((uint64_t)md.m);
	long long want = 0;
	for (int i = 0; i < 256; i++) {
		t[i] = rng.range(-1 << 24, 1 << 24);
		want += t[i];
	}
	CU(cuMemcpyHtoD(g, t.data(), 256 * sizeof(int)));
	int n = 256;
	void *params[] = { &g, &n, &dsum };
	CU(cuLaunchKernel(md.sum, 1, 1, 1, 128, 1, 1, 0, nullptr, params, nullptr));
	long long got = 0;
	CU(cuMemcpyDtoH(&got, dsum, sizeof(got)));
	REQUIRE(got == want, "%s: sum of mod_table %lld, want %lld", md.what, got,
		want);

	CUdeviceptr none;
	r = cuModuleGetGlobal(&none, &bytes, md.m, "mod_no_such_global");
	REQUIRE(r == CUDA_ERROR_NOT_FOUND, "%s: missing global gave %s", md.what,
		cu_name(r));
}

static void run_attributes(const Mod &md)
{
	struct {
		CUfunction_attribute a;
		const char *name;
	} attrs[] = {
		{ CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, "MAX_THREADS_PER_BLOCK" },
		{ CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, "SHARED_SIZE_BYTES" },
		{ CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES, "CONST_SIZE_BYTES" },
		{ CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, "LOCAL_SIZE_BYTES" },
		{ CU_FUNC_ATTRIBUTE_NUM_REGS, "NUM_REGS" },
		{ CU_FUNC_ATTRIBUTE_PTX_VERSION, "PTX_VERSION" },
		{ CU_FUNC_ATTRIBUTE_BINARY_VERSION, "BINARY_VERSION" },
		{ CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
		  "MAX_DYNAMIC_SHARED_SIZE_BYTES" },
	};
	int v[8];
	for (int i = 0; i < 8; i++) {
		v[i] = -1;
		CU(cuFuncGetAttribute(&v[i], attrs[i].a, md.sum));
		printf("%s: mod_sum %s = %d\n", md.what, attrs[i].name, v[i]);
	}
	REQUIRE(v[0] >= 128 && v[0] <= 1024, "%s: max threads %d", md.what, v[0]);
	REQUIRE(v[4] >= 0 && v[4] <= 255, "%s: regs %d", md.what, v[4]);
	REQUIRE(v[6] == 90, "%s: binary version %d", md.what, v[6]);
	if (!on_host_backend())
		REQUIRE(v[1] >= 2048, "%s: static shared %d < 2048", md.what, v[1]);

	int blocks = -1;
	CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, md.fill, 256, 0));
	printf("%s: occupancy of mod_fill at 256 threads: %d blocks/SM\n", md.what,
	       blocks);
	REQUIRE(blocks >= 1 && blocks <= 32, "%s: occupancy %d", md.what, blocks);
	CU(cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, md.sum, 128, 0));
	REQUIRE(blocks >= 1, "%s: occupancy of mod_sum %d", md.what, blocks);
}

static void exercise(Mod &md, CUdeviceptr d, CUdeviceptr dsum, CUstream s)
{
	get_functions(md);
	run_fill(md, d, 17, 1000, s);
	run_mix(md, d, 333);
	run_globals(md, dsum);
	run_attributes(md);
	printf("%s: done\n", md.what);
}

int main()
{
	CU(cuInit(0));
	int count = 0, drv = 0;
	CU(cuDeviceGetCount(&count));
	CU(cuDriverGetVersion(&drv));
	REQUIRE(count >= 1, "no device");
	CUdevice dev;
	CU(cuDeviceGet(&dev, 0));
	char name[256];
	CU(cuDeviceGetName(name, sizeof(name), dev));
	printf("device 0: %s, driver %d\n", name, drv);
	CUcontext ctx;
	CU(cuDevicePrimaryCtxRetain(&ctx, dev));
	CU(cuCtxSetCurrent(ctx));

	CUstream s;
	CU(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CUdeviceptr d, dsum;
	CU(cuMemAlloc(&d, 1 << 20));
	CU(cuMemAlloc(&dsum, sizeof(long long)));

	printf("images: cubin %zu B, ptx %zu B, fatbin %zu B\n", modules_cubin_size,
	       modules_ptx_size, modules_fatbin_size);

	Mod cubin = { "cubin", nullptr, nullptr, nullptr, nullptr };
	CU(cuModuleLoadData(&cubin.m, modules_cubin));
	exercise(cubin, d, dsum, s);

	Mod ptx = { "ptx", nullptr, nullptr, nullptr, nullptr };
	char log[8192] = { 0 };
	CUjit_option opts[] = { CU_JIT_ERROR_LOG_BUFFER,
				CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES };
	void *optv[] = { log, (void *)(uintptr_t)sizeof(log) };
	CUresult r = cuModuleLoadDataEx(&ptx.m, modules_ptx, 2, opts, optv);
	if (r != CUDA_SUCCESS)
		fprintf(stderr, "PTX JIT log: %s\n", log);
	CU(r);
	exercise(ptx, d, dsum, s);

	Mod fat = { "fatbin", nullptr, nullptr, nullptr, nullptr };
	CU(cuModuleLoadFatBinary(&fat.m, modules_fatbin));
	exercise(fat, d, dsum, s);

	// From a file.
	char path[] = "/tmp/mig-test-module-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0, "mkstemp");
	REQUIRE(write(fd, modules_cubin, modules_cubin_size) ==
			(ssize_t)modules_cubin_size,
		"write %s", path);
	close(fd);
	Mod file = { "cubin file", nullptr, nullptr, nullptr, nullptr };
	r = cuModuleLoad(&file.m, path);
	unlink(path);
	CU(r);
	exercise(file, d, dsum, s);

	// Two modules of the same code have separate globals.
	CUdeviceptr g1, g2;
	size_t b1, b2;
	if (cuModuleGetGlobal(&g1, &b1, cubin.m, "mod_table") == CUDA_SUCCESS &&
	    cuModuleGetGlobal(&g2, &b2, file.m, "mod_table") == CUDA_SUCCESS)
		REQUIRE(g1 != g2, "two modules share mod_table at %#llx",
			(unsigned long long)g1);

	CU(cuModuleUnload(cubin.m));
	CU(cuModuleUnload(ptx.m));
	CU(cuModuleUnload(fat.m));
	CU(cuModuleUnload(file.m));

	// The library API (what the runtime uses under the hood).
	CUlibrary lib;
	CU(cuLibraryLoadData(&lib, modules_cubin, nullptr, nullptr, 0, nullptr,
			     nullptr, 0));
	CUkernel k;
	CU(cuLibraryGetKernel(&k, lib, "mod_fill"));
	CUfunction kf;
	CU(cuKernelGetFunction(&kf, k));
	{
		int v = -500, n = 4096;
		void *params[] = { &d, &v, &n };
		CU(cuLaunchKernel((CUfunction)k, n / 256, 1, 1, 256, 1, 1, 0, s, params,
				  nullptr));
		std::vector<int> h(n);
		CU(cuMemcpyDtoHAsync(h.data(), d, n * sizeof(int), s));
		CU(cuStreamSynchronize(s));
		for (int i = 0; i < n; i++)
			REQUIRE(h[i] == v + i * 3, "library kernel[%d] = %d", i, h[i]);
		v = 9;
		CU(cuLaunchKernel(kf, n / 256, 1, 1, 256, 1, 1, 0, s, params, nullptr));
		CU(cuMemcpyDtoHAsync(h.data(), d, n * sizeof(int), s));
		CU(cuStreamSynchronize(s));
		for (int i = 0; i < n; i++)
			REQUIRE(h[i] == v + i * 3, "library function[%d] = %d", i, h[i]);
	}
	CU(cuLibraryUnload(lib));

	// Unload and reload 100 times; every 10th load is the PTX.
	for (int it = 0; it < 100; it++) {
		CUmodule m;
		CUfunction f;
		bool use_ptx = it % 10 == 9;
		CU(cuModuleLoadData(&m, use_ptx ? (const void *)modules_ptx
						: (const void *)modules_cubin));
		CU(cuModuleGetFunction(&f, m, "mod_fill"));
		int v = it * 1000, n = 512;
		void *params[] = { &d, &v, &n };
		CU(cuLaunchKernel(f, 4, 1, 1, 128, 1, 1, 0, s, params, nullptr));
		int h[512];
		CU(cuMemcpyDtoHAsync(h, d, sizeof(h), s));
		CU(cuStreamSynchronize(s));
		for (int i = 0; i < n; i++)
			REQUIRE(h[i] == v + i * 3, "reload %d: fill[%d] = %d", it, i,
				h[i]);
		CU(cuModuleUnload(m));
	}
	printf("reload x100: done\n");

	CU(cuMemFree(d));
	CU(cuMemFree(dsum));
	CU(cuStreamDestroy(s));
	CU(cuDevicePrimaryCtxRelease(dev));
	printf("OK\n");
	return 0;
}

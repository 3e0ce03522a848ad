/*
 * test_nvml.c - our libnvidia-ml.so.1 (nvml/nvml.c), as built, against
 * fake_libcuda.c: what `mig run` with the host backend cannot show
 * (tests/cuda/nvml_client.cu covers that path): a MIG device's UUID,
 * NVML's PCI texts, no device, a failing cuInit, no libcuda.so.1 at all,
 * the process entry without the shim's counter, the caller's context
 * kept, the entry points PyTorch insists on, many threads.
 *
 * The library keeps its state for the life of the process, so each case
 * runs in a fresh one: the cmocka test runs this program again with the
 * case's name and environment (the fake's directory on the library path)
 * and wants exit status 0 (77: skipped).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "nvml_abi.h"

#define SKIPPED 77

#define EXPECT(cond, ...)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__,     \
				#cond);                                        \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			exit(1);                                               \
		}                                                              \
	} while (0)

static void *lib;

static struct {
	nvmlReturn_t (*init)(void), (*init_flags)(unsigned int),
		(*shutdown)(void);
	nvmlReturn_t (*count)(unsigned int *);
	nvmlReturn_t (*by_index)(unsigned int, nvmlDevice_t *);
	nvmlReturn_t (*by_uuid)(const char *, nvmlDevice_t *);
	nvmlReturn_t (*by_pci)(const char *, nvmlDevice_t *);
	nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*uuid)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*mem)(nvmlDevice_t, nvmlMemory_t *);
	nvmlReturn_t (*mem2)(nvmlDevice_t, nvmlMemory_v2_t *);
	nvmlReturn_t (*pci)(nvmlDevice_t, nvmlPciInfo_t *);
	nvmlReturn_t (*pci1)(nvmlDevice_t, nvmlPciInfo_v1_t *);
	nvmlReturn_t (*cc)(nvmlDevice_t, int *, int *);
	nvmlReturn_t (*cuda_version)(int *);
	nvmlReturn_t (*procs)(nvmlDevice_t, unsigned int *,
			      nvmlProcessInfo_t *);
	nvmlReturn_t (*procs1)(nvmlDevice_t, unsigned int *,
			       nvmlProcessInfo_v1_t *);
	nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int *);
	const char *(*error_string)(nvmlReturn_t);
} nv;

/* The fake's own entry points (fake_libcuda.c). */
static struct {
	int (*ctx_balance)(void);
	void *(*current)(void);
	void (*push_other)(void);
} fake;

static void *need(void *h, const char *name)
{
	void *p = dlsym(h, name);

	EXPECT(p, "%s is not exported", name);
	return p;
}

static void load(void)
{
	lib = dlopen(NVML_LIB, RTLD_NOW | RTLD_LOCAL);
	EXPECT(lib, "%s", dlerror());
#define L(field, name) (*(void **)&nv.field = need(lib, name))
	L(init, "nvmlInit_v2");
	L(init_flags, "nvmlInitWithFlags");
	L(shutdown, "nvmlShutdown");
	L(count, "nvmlDeviceGetCount_v2");
	L(by_index, "nvmlDeviceGetHandleByIndex_v2");
	L(by_uuid, "nvmlDeviceGetHandleByUUID");
	L(by_pci, "nvmlDeviceGetHandleByPciBusId_v2");
	L(name, "nvmlDeviceGetName");
	L(uuid, "nvmlDeviceGetUUID");
	L(mem, "nvmlDeviceGetMemoryInfo");
	L(mem2, "nvmlDeviceGetMemoryInfo_v2");
	L(pci, "nvmlDeviceGetPciInfo_v3");
	L(pci1, "nvmlDeviceGetPciInfo");
	L(cc, "nvmlDeviceGetCudaComputeCapability");
	L(cuda_version, "nvmlSystemGetCudaDriverVersion_v2");
	L(procs, "nvmlDeviceGetComputeRunningProcesses_v3");
	L(procs1, "nvmlDeviceGetComputeRunningProcesses");
	L(temperature, "nvmlDeviceGetTemperature");
	L(error_string, "nvmlErrorString");
#undef L
}

/* After a successful nvmlInit: the fake nvml.c loaded. */
static void load_fake(void)
{
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);

	EXPECT(h, "libcuda.so.1 is not loaded: %s", dlerror());
	*(void **)&fake.ctx_balance = need(h, "fake_cuda_ctx_balance");
	*(void **)&fake.current = need(h, "fake_cuda_current");
	*(void **)&fake.push_other = need(h, "fake_cuda_push_other");
}

#define GPU_UUID "GPU-00112233-4455-6677-8899-aabbccddeeff"
#define TOTAL (141ull << 30)
#define FREE (100ull << 30)

/* --- the cases, each in its own process -------------------------------- */

static void case_gpu(void)
{
	static const char *const exported[] = {
		/* what PyTorch's c10 asserts */
		"nvmlInit_v2",
		"nvmlShutdown",
		"nvmlDeviceGetHandleByPciBusId_v2",
		"nvmlDeviceGetNvLinkRemoteDeviceType",
		"nvmlDeviceGetNvLinkRemotePciInfo_v2",
		"nvmlDeviceGetComputeRunningProcesses",
		"nvmlSystemGetCudaDriverVersion_v2",
		"nvmlDeviceGetCount_v2",
		"nvmlDeviceGetHandleByIndex_v2",
		"nvmlDeviceGetUUID",
		"nvmlDeviceGetMemoryInfo",
		"nvmlDeviceGetGpuFabricInfoV",
		/* and the rest of the answers */
		"nvmlInit",
		"nvmlInitWithFlags",
		"nvmlErrorString",
		"nvmlDeviceGetCount",
		"nvmlDeviceGetHandleByIndex",
		"nvmlDeviceGetHandleByPciBusId",
		"nvmlDeviceGetIndex",
		"nvmlDeviceGetPciInfo_v2",
		"nvmlSystemGetCudaDriverVersion",
		"nvmlSystemGetNVMLVersion",
		"nvmlSystemGetDriverVersion",
		"nvmlDeviceGetComputeRunningProcesses_v2",
		"nvmlDeviceGetGraphicsRunningProcesses_v3",
		"nvmlDeviceGetMPSComputeRunningProcesses_v3",
		NULL,
	};
	nvmlDevice_t h, h2;
	nvmlPciInfo_t p;
	nvmlPciInfo_v1_t p1;
	nvmlMemory_t m;
	nvmlMemory_v2_t m2 = {0};
	nvmlProcessInfo_t pr[2];
	nvmlProcessInfo_v1_t pr1[2];
	unsigned int n = 9, t;
	char buf[96];
	int ma = -1, mi = -1, v = 0;

	for (int i = 0; exported[i]; i++)
		need(lib, exported[i]);

	EXPECT(nv.count(&n) == NVML_ERROR_UNINITIALIZED, "count before init");
	EXPECT(nv.shutdown() == NVML_ERROR_UNINITIALIZED,
	       "shutdown before init");
	EXPECT(nv.init() == NVML_SUCCESS, "init");
	load_fake();
	EXPECT(nv.count(&n) == NVML_SUCCESS && n == 1, "%u devices", n);
	EXPECT(nv.by_index(0, &h) == NVML_SUCCESS, "handle 0");
	EXPECT(nv.by_index(1, &h2) == NVML_ERROR_INVALID_ARGUMENT, "handle 1");
	EXPECT(nv.name(h, buf, sizeof(buf)) == NVML_SUCCESS &&
		       !strcmp(buf, "NVIDIA H200"),
	       "name %s", buf);
	EXPECT(nv.uuid(h, buf, sizeof(buf)) == NVML_SUCCESS &&
		       !strcmp(buf, GPU_UUID),
	       "uuid %s", buf);
	EXPECT(nv.uuid(h, buf, strlen(GPU_UUID)) ==
		       NVML_ERROR_INSUFFICIENT_SIZE,
	       "no room for the NUL");
	EXPECT(nv.by_uuid("gpu-00112233-4455-6677-8899-AABBCCDDEEFF", &h2) ==
			       NVML_SUCCESS &&
		       h2 == h,
	       "by UUID, other case");
	EXPECT(nv.by_uuid("MIG-00112233-4455-6677-8899-aabbccddeeff", &h2) ==
		       NVML_ERROR_NOT_FOUND,
	       "a MIG UUID for a GPU");

	/* PCI: NVML's texts, from CUDA's "0000:1b:00.0". */
	EXPECT(nv.pci(h, &p) == NVML_SUCCESS, "PCI info");
	EXPECT(!strcmp(p.busId, "00000000:1B:00.0") &&
		       !strcmp(p.busIdLegacy, "0000:1B:00.0"),
	       "busId %s, legacy %s", p.busId, p.busIdLegacy);
	EXPECT(p.domain == 0 && p.bus == 0x1b && p.device == 0 &&
		       !p.pciDeviceId && !p.pciSubSystemId,
	       "%x:%x:%x", p.domain, p.bus, p.device);
	EXPECT(nv.pci1(h, &p1) == NVML_SUCCESS &&
		       !strcmp(p1.busId, "0000:1B:00.0") && p1.bus == 0x1b,
	       "v1 PCI info %s", p1.busId);
	for (const char *const *id =
		     (const char *const[]){"0000:1b:00.0", "00000000:1B:00.0",
					   "1b:00.0", "1B:00", NULL};
	     *id; id++)
		EXPECT(nv.by_pci(*id, &h2) == NVML_SUCCESS && h2 == h,
		       "by PCI %s", *id);
	EXPECT(nv.by_pci("0000:1c:00.0", &h2) == NVML_ERROR_NOT_FOUND,
	       "another bus");
	EXPECT(nv.by_pci("0001:1b:00.0", &h2) == NVML_ERROR_NOT_FOUND,
	       "another domain");
	EXPECT(nv.by_pci("", &h2) == NVML_ERROR_INVALID_ARGUMENT,
	       "empty PCI id");

	EXPECT(nv.cc(h, &ma, &mi) == NVML_SUCCESS && ma == 9 && mi == 0,
	       "cc %d.%d", ma, mi);
	EXPECT(nv.cuda_version(&v) == NVML_SUCCESS && v == 13000, "CUDA %d", v);

	/* Memory in the primary context, the caller's context untouched. */
	fake.push_other();
	void *other = fake.current();
	EXPECT(nv.mem(h, &m) == NVML_SUCCESS && m.total == TOTAL &&
		       m.free == FREE && m.used == TOTAL - FREE,
	       "memory %llu/%llu/%llu", m.total, m.free, m.used);
	EXPECT(fake.current() == other, "the caller's context changed");
	EXPECT(fake.ctx_balance() == 0, "%d primary retains left",
	       fake.ctx_balance());
	EXPECT(nv.mem2(h, &m2) == NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
	       "v2, no version");
	m2.version = nvmlMemory_v2;
	EXPECT(nv.mem2(h, &m2) == NVML_SUCCESS && m2.total == TOTAL &&
		       m2.free == FREE && m2.used == TOTAL - FREE &&
		       m2.reserved == 0,
	       "v2 memory");

	/* The process list: this one, with what the instance holds. */
	n = 0;
	EXPECT(nv.procs(h, &n, NULL) == NVML_ERROR_INSUFFICIENT_SIZE && n == 1,
	       "how many: %u", n);
	n = 2;
	EXPECT(nv.procs(h, &n, pr) == NVML_SUCCESS && n == 1 &&
		       pr[0].pid == (unsigned int)getpid() &&
		       pr[0].usedGpuMemory == 12345678 &&
		       pr[0].gpuInstanceId == ~0u &&
		       pr[0].computeInstanceId == ~0u,
	       "%u processes, pid %u, %llu bytes", n, pr[0].pid,
	       pr[0].usedGpuMemory);
	n = 2;
	EXPECT(nv.procs1(h, &n, pr1) == NVML_SUCCESS && n == 1 &&
		       pr1[0].pid == (unsigned int)getpid() &&
		       pr1[0].usedGpuMemory == 12345678,
	       "v1 process list");

	EXPECT(nv.temperature(h, 0, &t) == NVML_ERROR_NOT_SUPPORTED,
	       "temperature");
	EXPECT(nv.temperature((nvmlDevice_t)&n, 0, &t) ==
		       NVML_ERROR_INVALID_ARGUMENT,
	       "temperature of a foreign handle");
	EXPECT(!strcmp(nv.error_string(NVML_ERROR_ARGUMENT_VERSION_MISMATCH),
		       "Argument Version Mismatch"),
	       "%s", nv.error_string(NVML_ERROR_ARGUMENT_VERSION_MISMATCH));

	/* Counted init and shutdown; the same device after a new init. */
	EXPECT(nv.init() == NVML_SUCCESS, "init twice");
	EXPECT(nv.shutdown() == NVML_SUCCESS && nv.shutdown() == NVML_SUCCESS,
	       "shutdowns");
	EXPECT(nv.shutdown() == NVML_ERROR_UNINITIALIZED, "a third shutdown");
	EXPECT(nv.name(h, buf, sizeof(buf)) == NVML_ERROR_UNINITIALIZED,
	       "after shutdown");
	EXPECT(nv.init_flags(0) == NVML_SUCCESS &&
		       nv.by_index(0, &h2) == NVML_SUCCESS && h2 == h,
	       "again");
	EXPECT(nv.shutdown() == NVML_SUCCESS, "shutdown");
}

static void case_mig(void)
{
	nvmlDevice_t h, h2;
	char buf[96];

	EXPECT(nv.init() == NVML_SUCCESS, "init");
	EXPECT(nv.by_index(0, &h) == NVML_SUCCESS, "handle");
	EXPECT(nv.uuid(h, buf, sizeof(buf)) == NVML_SUCCESS &&
		       !strcmp(buf, "MIG-00112233-4455-6677-8899-aabbccddeeff"),
	       "uuid %s", buf);
	EXPECT(nv.by_uuid(buf, &h2) == NVML_SUCCESS && h2 == h, "by UUID");
	EXPECT(nv.by_uuid(GPU_UUID, &h2) == NVML_ERROR_NOT_FOUND,
	       "the GPU's UUID");
	EXPECT(nv.shutdown() == NVML_SUCCESS, "shutdown");
}

static void case_no_device(void)
{
	nvmlDevice_t h;
	unsigned int n = 9;
	char buf[96];

	EXPECT(nv.init() == NVML_SUCCESS, "init");
	EXPECT(nv.count(&n) == NVML_SUCCESS && n == 0, "%u devices", n);
	EXPECT(nv.by_index(0, &h) == NVML_ERROR_INVALID_ARGUMENT, "handle 0");
	EXPECT(nv.by_uuid(GPU_UUID, &h) == NVML_ERROR_NOT_FOUND, "by UUID");
	EXPECT(nv.by_pci("0000:1b:00.0", &h) == NVML_ERROR_NOT_FOUND, "by PCI");
	EXPECT(nv.name((nvmlDevice_t)&n, buf, sizeof(buf)) ==
		       NVML_ERROR_INVALID_ARGUMENT,
	       "name of no device");
	EXPECT(nv.shutdown() == NVML_SUCCESS, "shutdown");
}

static void case_init_fails(void)
{
	unsigned int n;

	EXPECT(nv.init() == NVML_ERROR_DRIVER_NOT_LOADED,
	       "init with cuInit failing");
	EXPECT(nv.count(&n) == NVML_ERROR_UNINITIALIZED, "count");
	EXPECT(nv.shutdown() == NVML_ERROR_UNINITIALIZED, "shutdown");
	EXPECT(strcmp(nv.error_string(NVML_ERROR_DRIVER_NOT_LOADED),
		      "Unknown Error"),
	       "no text");
	/* The driver comes back: the next init works. */
	unsetenv("FAKE_CUDA_INIT");
	EXPECT(nv.init() == NVML_SUCCESS, "init once cuInit works");
	EXPECT(nv.count(&n) == NVML_SUCCESS && n == 1, "count");
	EXPECT(nv.shutdown() == NVML_SUCCESS, "shutdown");
}

static void case_no_libcuda(void)
{
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	unsigned int n;

	if (h) {
		printf("a libcuda.so.1 is installed: cannot test its "
		       "absence\n");
		exit(SKIPPED);
	}
	EXPECT(nv.init() == NVML_ERROR_LIBRARY_NOT_FOUND,
	       "init without libcuda.so.1");
	EXPECT(nv.count(&n) == NVML_ERROR_UNINITIALIZED, "count");
	EXPECT(strcmp(nv.error_string(NVML_ERROR_LIBRARY_NOT_FOUND),
		      "Unknown Error"),
	       "no text");
}

static void case_no_client_used(void)
{
	nvmlProcessInfo_t pr;
	nvmlDevice_t h;
	unsigned int n = 1;

	EXPECT(nv.init() == NVML_SUCCESS, "init");
	EXPECT(nv.by_index(0, &h) == NVML_SUCCESS, "handle");
	EXPECT(nv.procs(h, &n, &pr) == NVML_SUCCESS && n == 1 &&
		       pr.usedGpuMemory == TOTAL - FREE,
	       "without the shim's counter: %llu bytes, want cuMemGetInfo's "
	       "used",
	       pr.usedGpuMemory);
	EXPECT(nv.shutdown() == NVML_SUCCESS, "shutdown");
}

static void *hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 300; i++) {
		nvmlProcessInfo_t pr;
		nvmlDevice_t h;
		nvmlMemory_t m;
		unsigned int n = 1;
		char buf[96];

		EXPECT(nv.init() == NVML_SUCCESS, "init");
		EXPECT(nv.by_index(0, &h) == NVML_SUCCESS, "handle");
		EXPECT(nv.uuid(h, buf, sizeof(buf)) == NVML_SUCCESS &&
			       !strcmp(buf, GPU_UUID),
		       "uuid %s", buf);
		EXPECT(nv.mem(h, &m) == NVML_SUCCESS && m.total == TOTAL,
		       "memory");
		EXPECT(nv.procs(h, &n, &pr) == NVML_SUCCESS && n == 1,
		       "processes");
		EXPECT(nv.shutdown() == NVML_SUCCESS, "shutdown");
	}
	return NULL;
}

static void case_threads(void)
{
	pthread_t th[8];

	for (int i = 0; i < 8; i++)
		EXPECT(!pthread_create(&th[i], NULL, hammer, NULL),
		       "pthread_create");
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	EXPECT(nv.shutdown() == NVML_ERROR_UNINITIALIZED,
	       "every init was shut down");
	load_fake();
	EXPECT(fake.ctx_balance() == 0, "%d primary retains left",
	       fake.ctx_balance());
	EXPECT(fake.current() == NULL, "a context left current");
}

static const struct {
	const char *name;
	void (*run)(void);
} cases[] = {
	{"gpu", case_gpu},
	{"mig", case_mig},
	{"no_device", case_no_device},
	{"init_fails", case_init_fails},
	{"no_libcuda", case_no_libcuda},
	{"no_client_used", case_no_client_used},
	{"threads", case_threads},
	{NULL, NULL},
};

/* --- the cmocka side: each case in a fresh process ---------------------- */

static void run_case(const char *name, bool with_fake, const char *const *env)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (; env && *env; env++)
			putenv((char *)*env);
		setenv("LD_LIBRARY_PATH",
		       with_fake ? FAKE_CUDA_DIR : "/nonexistent", 1);
		execl("/proc/self/exe", "test_nvml", name, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == SKIPPED)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_gpu(void **state)
{
	(void)state;
	run_case("gpu", true, NULL);
}

static void test_mig_uuid(void **state)
{
	static const char *const env[] = {
		"FAKE_CUDA_NAME=NVIDIA H200 MIG 1g.18gb", NULL};
	(void)state;
	run_case("mig", true, env);
}

static void test_no_device(void **state)
{
	static const char *const env[] = {"FAKE_CUDA_COUNT=0", NULL};
	(void)state;
	run_case("no_device", true, env);
}

static void test_init_fails(void **state)
{
	static const char *const env[] = {"FAKE_CUDA_INIT=100", NULL};
	(void)state;
	run_case("init_fails", true, env);
}

static void test_no_libcuda(void **state)
{
	(void)state;
	run_case("no_libcuda", false, NULL);
}

static void test_no_client_used(void **state)
{
	static const char *const env[] = {"FAKE_CUDA_NO_CLIENT_USED=1", NULL};
	(void)state;
	run_case("no_client_used", true, env);
}

static void test_threads(void **state)
{
	(void)state;
	run_case("threads", true, NULL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gpu),
		cmocka_unit_test(test_mig_uuid),
		cmocka_unit_test(test_no_device),
		cmocka_unit_test(test_init_fails),
		cmocka_unit_test(test_no_libcuda),
		cmocka_unit_test(test_no_client_used),
		cmocka_unit_test(test_threads),
	};

	if (argc > 1) {
		for (int i = 0; cases[i].name; i++)
			if (!strcmp(argv[1], cases[i].name)) {
				load();
				cases[i].run();
				return 0;
			}
		fprintf(stderr, "test_nvml: no case %s\n", argv[1]);
		return 2;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * fake_libcuda.c - a libcuda.so.1 with the few driver entry points our
 * libnvidia-ml.so.1 uses (nvml/nvml.c), for test_nvml.c: one device whose
 * name, PCI address and failures each case sets through the environment,
 * read at every cuInit:
 *
 *   FAKE_CUDA_INIT=N            cuInit returns CUresult N
 *   FAKE_CUDA_COUNT=N           N devices (default 1)
 *   FAKE_CUDA_NAME=TEXT         the device's name (default "NVIDIA H200")
 *   FAKE_CUDA_BUS=ID            its PCI bus id (default "0000:1b:00.0")
 *   FAKE_CUDA_NO_CLIENT_USED=1  mignificent_gpu_memory_used fails
 *
 * The contexts are counted (fake_cuda_ctx_balance) and cuMemGetInfo needs
 * a current one, as the real driver's does.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda.h>

#define FAKE_API __attribute__((visibility("default")))

#define FAKE_TOTAL (141ull << 30)
#define FAKE_FREE (100ull << 30)
#define FAKE_CLIENT_USED 12345678ull

static int primary; /* its address is the primary context */
static int retained;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static __thread CUcontext stack[16];
static __thread int depth;

static int env_int(const char *name, int dflt)
{
	const char *v = getenv(name);

	return v && *v ? atoi(v) : dflt;
}

static const char *env_str(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

static CUresult check_dev(CUdevice d)
{
	return d >= 0 && d < env_int("FAKE_CUDA_COUNT", 1)
		       ? CUDA_SUCCESS
		       : CUDA_ERROR_INVALID_DEVICE;
}

FAKE_API CUresult cuInit(unsigned int flags)
{
	return flags ? CUDA_ERROR_INVALID_VALUE
		     : (CUresult)env_int("FAKE_CUDA_INIT", 0);
}

FAKE_API CUresult cuDriverGetVersion(int *v)
{
	*v = 13000;
	return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGetCount(int *n)
{
	*n = env_int("FAKE_CUDA_COUNT", 1);
	return CUDA_SUCCESS;
}

FAKE_API CUresult cuDeviceGet(CUdevice *d, int ordinal)
{
	*d = ordinal;
	return check_dev(ordinal);
}

FAKE_API CUresult cuDeviceGetName(char *name, int len, CUdevice d)
{
	snprintf(name, (size_t)len, "%s",
		 env_str("FAKE_CUDA_NAME", "NVIDIA H200"));
	return check_dev(d);
}

FAKE_API CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice d)
{
	for (int i = 0; i < 16; i++)
		u->bytes[i] = (char)(0x11 * i);
	return check_dev(d);
}

FAKE_API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d)
{
	*bytes = FAKE_TOTAL;
	return check_dev(d);
}

FAKE_API CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice d)
{
	*v = a == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR ? 9 : 0;
	return check_dev(d);
}

FAKE_API CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice d)
{
	snprintf(id, (size_t)len, "%s",
		 env_str("FAKE_CUDA_BUS", "0000:1b:00.0"));
	return check_dev(d);
}

FAKE_API CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d)
{
	pthread_mutex_lock(&lock);
	retained++;
	pthread_mutex_unlock(&lock);
	*c = (CUcontext)&primary;
	return check_dev(d);
}

FAKE_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d)
{
	pthread_mutex_lock(&lock);
	retained--;
	pthread_mutex_unlock(&lock);
	return check_dev(d);
}

FAKE_API CUresult cuCtxPushCurrent_v2(CUcontext c)
{
	if (!c || depth == 16)
		return CUDA_ERROR_INVALID_CONTEXT;
	stack[depth++] = c;
	return CUDA_SUCCESS;
}

FAKE_API CUresult cuCtxPopCurrent_v2(CUcontext *c)
{
	if (!depth)
		return CUDA_ERROR_INVALID_CONTEXT;
	depth--;
	if (c)
		*c = stack[depth];
	return CUDA_SUCCESS;
}

FAKE_API CUresult cuMemGetInfo_v2(size_t *free_, size_t *total)
{
	if (!depth || stack[depth - 1] != (CUcontext)&primary)
		return CUDA_ERROR_INVALID_CONTEXT;
	*free_ = FAKE_FREE;
	*total = FAKE_TOTAL;
	return CUDA_SUCCESS;
}

FAKE_API int mignificent_gpu_memory_used(unsigned long long *bytes)
{
	if (env_int("FAKE_CUDA_NO_CLIENT_USED", 0))
		return CUDA_ERROR_NOT_SUPPORTED;
	*bytes = FAKE_CLIENT_USED;
	return CUDA_SUCCESS;
}

/* For the test: primary context retains not released (all threads), and
 * this thread's current context. */
FAKE_API int fake_cuda_ctx_balance(void)
{
	int n;

	pthread_mutex_lock(&lock);
	n = retained;
	pthread_mutex_unlock(&lock);
	return n;
}

FAKE_API CUcontext fake_cuda_current(void)
{
	return depth ? stack[depth - 1] : NULL;
}

FAKE_API void fake_cuda_push_other(void)
{
	static int other;

	cuCtxPushCurrent_v2((CUcontext)&other);
}

/*
 * fake_nvml.c - a stand-in libnvidia-ml.so.1 for tests on machines without
 * a GPU.  It answers the NVML calls daemon/devices.c makes from a JSON
 * recording of a node, named by the environment variable MIG_FAKE_NVML
 * (tests/nvml/recordings/ holds ours; README.md there gives the format).
 *
 * The recording is read by nvmlInit_v2, so a test can switch recordings
 * between two discoveries to play a MIG re-layout.  Handles are pointers
 * into arrays built from the recording, each with a tag checked on every
 * call, so a caller mixing up a GPU, a MIG device and a GPU instance gets
 * NVML_ERROR_INVALID_ARGUMENT as it would from the real library.
 *
 * MIG_FAKE_NVML_UNPRIVILEGED=1 makes nvmlDeviceGetGpuInstanceById fail with
 * NVML_ERROR_NO_PERMISSION, as it does for a non-root caller.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define EXPORT __attribute__((visibility("default")))

enum {
	NVML_SUCCESS = 0,
	NVML_ERROR_UNINITIALIZED = 1,
	NVML_ERROR_INVALID_ARGUMENT = 2,
	NVML_ERROR_NOT_SUPPORTED = 3,
	NVML_ERROR_NO_PERMISSION = 4,
	NVML_ERROR_NOT_FOUND = 6,
	NVML_ERROR_INSUFFICIENT_SIZE = 7,
	NVML_ERROR_DRIVER_NOT_LOADED = 9,
	NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
	NVML_ERROR_UNKNOWN = 999,
};

struct nvml_memory {
	unsigned long long total, free, used;
};

struct nvml_device_attributes {
	unsigned int multiprocessorCount;
	unsigned int sharedCopyEngineCount;
	unsigned int sharedDecoderCount;
	unsigned int sharedEncoderCount;
	unsigned int sharedJpegCount;
	unsigned int sharedOfaCount;
	unsigned int gpuInstanceSliceCount;
	unsigned int computeInstanceSliceCount;
	unsigned long long memorySizeMB;
};

struct nvml_gi_placement {
	unsigned int start, size;
};

struct nvml_gpu_instance_info {
	void *device;
	unsigned int id;
	unsigned int profileId;
	struct nvml_gi_placement placement;
};

struct nvml_gi_profile_info_v2 {
	unsigned int version;
	unsigned int id;
	unsigned int isP2pSupported;
	unsigned int sliceCount;
	unsigned int instanceCount;
	unsigned int multiprocessorCount;
	unsigned int copyEngineCount;
	unsigned int decoderCount;
	unsigned int encoderCount;
	unsigned int jpegCount;
	unsigned int ofaCount;
	unsigned long long memorySizeMB;
	char name[96];
};

#define GI_PROFILE_INFO_V2 \
	((unsigned int)sizeof(struct nvml_gi_profile_info_v2) | (2u << 24))

enum tag { TAG_GPU = 0x47505521, TAG_MIG = 0x4d494721, TAG_GI = 0x47492121 };

struct gpu;

/* A GPU instance, reached from the MIG device that lives in it. */
struct gi {
	enum tag tag;
	struct gpu *gpu;
	json_t *j;
};

struct mig {
	enum tag tag;
	struct gpu *gpu;
	json_t *j;
	struct gi gi;
};

struct gpu {
	enum tag tag;
	unsigned int index;
	json_t *j;
	struct mig *migs;
	size_t nmigs;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int refs;          /* nvmlInit_v2 calls not yet shut down */
static json_t *rec;       /* the recording */
static struct gpu *gpus;
static size_t ngpus;

/* --- the recording --------------------------------------------------------- */

static unsigned long long num(json_t *o, const char *key,
			      unsigned long long dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (unsigned long long)json_integer_value(v) :
				    dflt;
}

static const char *str(json_t *o, const char *key, const char *dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : dflt;
}

static void unload(void)
{
	size_t i;

	for (i = 0; i < ngpus; i++)
		free(gpus[i].migs);
	free(gpus);
	gpus = NULL;
	ngpus = 0;
	json_decref(rec);
	rec = NULL;
}

static int load(void)
{
	const char *path = getenv("MIG_FAKE_NVML");
	json_error_t jerr;
	json_t *ga;
	size_t i, k;

	if (!path || !*path) {
		fprintf(stderr, "fake libnvidia-ml: set MIG_FAKE_NVML to a "
				"recording (tests/nvml/recordings/*.json)\n");
		return NVML_ERROR_DRIVER_NOT_LOADED;
	}
	rec = json_load_file(path, 0, &jerr);
	if (!rec || !json_is_object(rec)) {
		fprintf(stderr, "fake libnvidia-ml: %s:%d: %s\n", path,
			jerr.line, rec ? "not a JSON object" : jerr.text);
		json_decref(rec);
		rec = NULL;
		return NVML_ERROR_UNKNOWN;
	}
	if (num(rec, "init_error", 0)) {
		int r = (int)num(rec, "init_error", 0);

		unload();
		return r;
	}
	ga = json_object_get(rec, "gpus");
	ngpus = json_array_size(ga);
	gpus = calloc(ngpus ? ngpus : 1, sizeof(*gpus));
	if (!gpus)
		goto oom;
	for (i = 0; i < ngpus; i++) {
		struct gpu *g = &gpus[i];
		json_t *ma;

		g->tag = TAG_GPU;
		g->index = (unsigned int)i;
		g->j = json_array_get(ga, i);
		ma = json_object_get(g->j, "mig_devices");
		g->nmigs = json_array_size(ma);
		g->migs = calloc(g->nmigs ? g->nmigs : 1, sizeof(*g->migs));
		if (!g->migs)
			goto oom;
		for (k = 0; k < g->nmigs; k++) {
			struct mig *m = &g->migs[k];

			m->tag = TAG_MIG;
			m->gpu = g;
			m->j = json_array_get(ma, k);
			m->gi.tag = TAG_GI;
			m->gi.gpu = g;
			m->gi.j = m->j;
		}
	}
	return NVML_SUCCESS;
oom:
	unload();
	return NVML_ERROR_UNKNOWN;
}

/* Handle checks: the object, or NULL if the handle is not one of ours. */
static struct gpu *as_gpu(void *h)
{
	struct gpu *g = h;

	return rec && g && g->tag == TAG_GPU ? g : NULL;
}

static struct mig *as_mig(void *h)
{
	struct mig *m = h;

	return rec && m && m->tag == TAG_MIG ? m : NULL;
}

static struct gi *as_gi(void *h)
{
	struct gi *g = h;

	return rec && g && g->tag == TAG_GI ? g : NULL;
}

/* The JSON object of a GPU or MIG device handle. */
static json_t *dev_json(void *h)
{
	struct gpu *g = as_gpu(h);
	struct mig *m = as_mig(h);

	return g ? g->j : m ? m->j : NULL;
}

static int copy_str(const char *s, char *buf, unsigned int len)
{
	if (!buf)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (strlen(s) + 1 > len)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(buf, s, strlen(s) + 1);
	return NVML_SUCCESS;
}

/* --- initialization ------------------------------------------------------- */

EXPORT int nvmlInit_v2(void)
{
	int r = NVML_SUCCESS;

	pthread_mutex_lock(&lock);
	if (!refs)
		r = load();
	if (r == NVML_SUCCESS)
		refs++;
	pthread_mutex_unlock(&lock);
	return r;
}

/* What other NVML clients (nvidia-ml-py, tools) start with. */
EXPORT int nvmlInitWithFlags(unsigned int flags)
{
	(void)flags;
	return nvmlInit_v2();
}

EXPORT int nvmlShutdown(void)
{
	int r = NVML_SUCCESS;

	pthread_mutex_lock(&lock);
	if (!refs)
		r = NVML_ERROR_UNINITIALIZED;
	else if (!--refs)
		unload();
	pthread_mutex_unlock(&lock);
	return r;
}

EXPORT const char *nvmlErrorString(int r)
{
	switch (r) {
	case NVML_SUCCESS:
		return "Success";
	case NVML_ERROR_UNINITIALIZED:
		return "Uninitialized";
	case NVML_ERROR_INVALID_ARGUMENT:
		return "Invalid Argument";
	case NVML_ERROR_NOT_SUPPORTED:
		return "Not Supported";
	case NVML_ERROR_NO_PERMISSION:
		return "Insufficient Permissions";
	case NVML_ERROR_NOT_FOUND:
		return "Not Found";
	case NVML_ERROR_INSUFFICIENT_SIZE:
		return "Insufficient Size";
	case NVML_ERROR_DRIVER_NOT_LOADED:
		return "Driver Not Loaded";
	case NVML_ERROR_ARGUMENT_VERSION_MISMATCH:
		return "Argument version mismatch";
	default:
		return "Unknown Error";
	}
}

EXPORT int nvmlSystemGetDriverVersion(char *buf, unsigned int len)
{
	if (!rec)
		return NVML_ERROR_UNINITIALIZED;
	return copy_str(str(rec, "driver_version", "580.00.00"), buf, len);
}

/* --- GPUs ------------------------------------------------------------------ */

EXPORT int nvmlDeviceGetCount_v2(unsigned int *count)
{
	if (!rec)
		return NVML_ERROR_UNINITIALIZED;
	if (!count)
		return NVML_ERROR_INVALID_ARGUMENT;
	*count = (unsigned int)ngpus;
	return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **dev)
{
	if (!rec)
		return NVML_ERROR_UNINITIALIZED;
	if (!dev || i >= ngpus)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (num(gpus[i].j, "handle_error", 0))
		return (int)num(gpus[i].j, "handle_error", 0);
	*dev = &gpus[i];
	return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetUUID(void *dev, char *buf, unsigned int len)
{
	json_t *j = dev_json(dev);

	if (!j)
		return NVML_ERROR_INVALID_ARGUMENT;
	return copy_str(str(j, "uuid", ""), buf, len);
}

EXPORT int nvmlDeviceGetName(void *dev, char *buf, unsigned int len)
{
	struct mig *m = as_mig(dev);
	json_t *j = dev_json(dev);

	if (!j)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (m && !json_object_get(j, "name"))
		j = m->gpu->j;
	return copy_str(str(j, "name", "NVIDIA GPU"), buf, len);
}

EXPORT int nvmlDeviceGetMemoryInfo(void *dev, struct nvml_memory *mem)
{
	json_t *j = dev_json(dev);

	if (!j || !mem)
		return NVML_ERROR_INVALID_ARGUMENT;
	mem->total = num(j, "memory_total", 0);
	mem->used = num(j, "memory_used", 0);
	mem->free = mem->total - mem->used;
	return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetNumGpuCores(void *dev, unsigned int *cores)
{
	struct gpu *g = as_gpu(dev);

	if (!g || !cores)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (!json_object_get(g->j, "num_gpu_cores"))
		return NVML_ERROR_NOT_SUPPORTED;
	*cores = (unsigned int)num(g->j, "num_gpu_cores", 0);
	return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetCudaComputeCapability(void *dev, int *major,
					      int *minor)
{
	struct gpu *g = as_gpu(dev);
	json_t *cc;

	if (!g || !major || !minor)
		return NVML_ERROR_INVALID_ARGUMENT;
	cc = json_object_get(g->j, "cuda_compute_capability");
	if (json_array_size(cc) != 2)
		return NVML_ERROR_NOT_SUPPORTED;
	*major = (int)json_integer_value(json_array_get(cc, 0));
	*minor = (int)json_integer_value(json_array_get(cc, 1));
	return NVML_SUCCESS;
}

/* --- MIG ------------------------------------------------------------------- */

/*
 * "mig_mode": {"current": 0|1, "pending": 0|1}; absent means a GPU
 * without MIG support, which NVML answers with NOT_SUPPORTED.
 */
EXPORT int nvmlDeviceGetMigMode(void *dev, unsigned int *cur,
				unsigned int *pend)
{
	struct gpu *g = as_gpu(dev);
	json_t *mm;

	if (!g || !cur || !pend)
		return NVML_ERROR_INVALID_ARGUMENT;
	mm = json_object_get(g->j, "mig_mode");
	if (!json_is_object(mm))
		return NVML_ERROR_NOT_SUPPORTED;
	*cur = (unsigned int)num(mm, "current", 0);
	*pend = (unsigned int)num(mm, "pending", *cur);
	return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetMaxMigDeviceCount(void *dev, unsigned int *count)
{
	struct gpu *g = as_gpu(dev);

	if (!g || !count)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (!json_object_get(g->j, "mig_mode"))
		return NVML_ERROR_NOT_SUPPORTED;
	*count = (unsigned int)num(g->j, "max_mig_device_count", 0);
	return NVML_SUCCESS;
}

/* MIG devices are looked up by their recorded "index", which may skip. */
EXPORT int nvmlDeviceGetMigDeviceHandleByIndex(void *dev, unsigned int i,
					       void **mig)
{
	struct gpu *g = as_gpu(dev);
	size_t k;

	if (!g || !mig)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (i >= num(g->j, "max_mig_device_count", 0))
		return NVML_ERROR_INVALID_ARGUMENT;
	if (!num(json_object_get(g->j, "mig_mode"), "current", 0))
		return NVML_ERROR_NOT_FOUND;
	for (k = 0; k < g->nmigs; k++) {
		if (num(g->migs[k].j, "index", k) == i) {
			*mig = &g->migs[k];
			return NVML_SUCCESS;
		}
	}
	return NVML_ERROR_NOT_FOUND;
}

EXPORT int nvmlDeviceGetDeviceHandleFromMigDeviceHandle(void *mig,
							void **dev)
{
	struct mig *m = as_mig(mig);

	if (!m || !dev)
		return NVML_ERROR_INVALID_ARGUMENT;
	*dev = m->gpu;
	return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetGpuInstanceId(void *dev, unsigned int *id)
{
	struct mig *m = as_mig(dev);

	if (!m || !id)
		return NVML_ERROR_INVALID_ARGUMENT;
	*id = (unsigned int)num(m->j, "gpu_instance_id", 0);
	return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetComputeInstanceId(void *dev, unsigned int *id)
{
	struct mig *m = as_mig(dev);

	if (!m || !id)
		return NVML_ERROR_INVALID_ARGUMENT;
	*id = (unsigned int)num(m->j, "compute_instance_id", 0);
	return NVML_SUCCESS;
}

/* Only MIG device handles have attributes, as with the real library. */
EXPORT int nvmlDeviceGetAttributes_v2(void *dev,
				      struct nvml_device_attributes *a)
{
	struct mig *m = as_mig(dev);
	json_t *j;

	if (as_gpu(dev))
		return NVML_ERROR_NOT_SUPPORTED;
	if (!m || !a)
		return NVML_ERROR_INVALID_ARGUMENT;
	j = json_object_get(m->j, "attributes");
	memset(a, 0, sizeof(*a));
	a->multiprocessorCount = (unsigned int)num(j, "multiprocessor_count", 0);
	a->sharedCopyEngineCount =
		(unsigned int)num(j, "shared_copy_engine_count", 0);
	a->sharedDecoderCount = (unsigned int)num(j, "shared_decoder_count", 0);
	a->sharedEncoderCount = (unsigned int)num(j, "shared_encoder_count", 0);
	a->sharedJpegCount = (unsigned int)num(j, "shared_jpeg_count", 0);
	a->sharedOfaCount = (unsigned int)num(j, "shared_ofa_count", 0);
	a->gpuInstanceSliceCount =
		(unsigned int)num(j, "gpu_instance_slice_count", 0);
	a->computeInstanceSliceCount =
		(unsigned int)num(j, "compute_instance_slice_count", 0);
	a->memorySizeMB = num(j, "memory_size_mb", 0);
	return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetGpuInstanceById(void *dev, unsigned int id,
					void **gi)
{
	const char *unpriv = getenv("MIG_FAKE_NVML_UNPRIVILEGED");
	struct gpu *g = as_gpu(dev);
	size_t k;

	if (!g || !gi)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (unpriv && *unpriv && strcmp(unpriv, "0"))
		return NVML_ERROR_NO_PERMISSION;
	for (k = 0; k < g->nmigs; k++) {
		if (num(g->migs[k].j, "gpu_instance_id", 0) == id) {
			*gi = &g->migs[k].gi;
			return NVML_SUCCESS;
		}
	}
	return NVML_ERROR_NOT_FOUND;
}

EXPORT int nvmlGpuInstanceGetInfo(void *h, struct nvml_gpu_instance_info *info)
{
	struct gi *gi = as_gi(h);
	json_t *pl;

	if (!gi || !info)
		return NVML_ERROR_INVALID_ARGUMENT;
	pl = json_object_get(gi->j, "placement");
	info->device = gi->gpu;
	info->id = (unsigned int)num(gi->j, "gpu_instance_id", 0);
	info->profileId = (unsigned int)num(gi->j, "gpu_instance_profile_id", 0);
	info->placement.start = (unsigned int)num(pl, "start", 0);
	info->placement.size = (unsigned int)num(pl, "size", 0);
	return NVML_SUCCESS;
}

/*
 * @profile is NVML_GPU_INSTANCE_PROFILE_* (an enum index), not the
 * profile id; the recording lists, per GPU, what each index answers.
 */
EXPORT int nvmlDeviceGetGpuInstanceProfileInfoV(void *dev, unsigned int profile,
						struct nvml_gi_profile_info_v2 *pi)
{
	struct gpu *g = as_gpu(dev);
	json_t *pa, *p;
	size_t k;

	if (!g || !pi)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (pi->version != GI_PROFILE_INFO_V2)
		return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	pa = json_object_get(g->j, "gpu_instance_profiles");
	json_array_foreach(pa, k, p) {
		if (num(p, "profile", ~0ull) != profile)
			continue;
		memset(pi, 0, sizeof(*pi));
		pi->version = GI_PROFILE_INFO_V2;
		pi->id = (unsigned int)num(p, "id", 0);
		pi->sliceCount = (unsigned int)num(p, "slice_count", 0);
		pi->instanceCount = (unsigned int)num(p, "instance_count", 0);
		pi->multiprocessorCount =
			(unsigned int)num(p, "multiprocessor_count", 0);
		pi->copyEngineCount = (unsigned int)num(p, "copy_engine_count", 0);
		pi->decoderCount = (unsigned int)num(p, "decoder_count", 0);
		pi->jpegCount = (unsigned int)num(p, "jpeg_count", 0);
		pi->ofaCount = (unsigned int)num(p, "ofa_count", 0);
		pi->memorySizeMB = num(p, "memory_size_mb", 0);
		snprintf(pi->name, sizeof(pi->name), "%s", str(p, "name", ""));
		return NVML_SUCCESS;
	}
	return NVML_ERROR_NOT_SUPPORTED;
}

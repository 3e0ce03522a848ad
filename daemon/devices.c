/*
 * devices.c - the node's GPUs and MIG instances, found through NVML, as
 * the partitions the daemon places function instances on.
 *
 * A partition is what one mig-gpud binds to by UUID: a whole GPU when its
 * MIG mode is off, or one MIG device ("MIG-...") when it is on; a GPU in
 * MIG mode is never a partition itself.
 *
 * NVML (libnvidia-ml.so.1) is dlopen'ed, never linked: the daemon must
 * start, and say why it has no GPU, on a node without the driver, and the
 * tests substitute a fake library answering from recordings
 * (tests/nvml/).  We declare the handful of NVML types we use ourselves
 * because the CUDA toolkit does not ship nvml.h everywhere; their layouts
 * are NVML's stable ABI.
 *
 * Discovery queries NVML without the devices lock (it can take a while on
 * a big node), then merges the result into d->p under the lock: entries are
 * matched by UUID, never removed and never reordered, so an index into d->p
 * stays valid across reloads (a pointer does not: the array may grow).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

/* --- the part of NVML's ABI we use --------------------------------------- */

typedef int nvmlReturn_t;
typedef struct nvml_device *nvmlDevice_t;
typedef struct nvml_gpu_instance *nvmlGpuInstance_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_NOT_FOUND 6
#define NVML_DEVICE_MIG_ENABLE 1
#define NVML_GPU_INSTANCE_PROFILE_COUNT 0x12 /* profile enum values */
#define NVML_BUF 96 /* NVML_DEVICE_{UUID_V2,NAME_V2}_BUFFER_SIZE */
#define NVML_DRIVER_BUF 80 /* NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE */

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

struct nvml_gpu_instance_info {
	nvmlDevice_t device;
	unsigned int id;
	unsigned int profileId;
	unsigned int placement_start, placement_size;
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
	char name[NVML_BUF];
};

/* nvmlGpuInstanceProfileInfo_v2: NVML_STRUCT_VERSION(..., 2) */
#define NVML_GI_PROFILE_INFO_V2 \
	((unsigned int)sizeof(struct nvml_gi_profile_info_v2) | (2u << 24))

_Static_assert(sizeof(struct nvml_device_attributes) == 40,
	       "nvmlDeviceAttributes_t layout");
_Static_assert(sizeof(struct nvml_gi_profile_info_v2) == 0x98,
	       "nvmlGpuInstanceProfileInfo_v2_t layout");

/*
 * Entry points.  The first group every driver since R450 has; without one
 * of them we cannot enumerate at all.  The rest are optional: a driver
 * without MIG support simply has no MIG devices, and a missing SM or
 * profile query leaves that field at its fallback.
 */
struct nvml {
	nvmlReturn_t (*init)(void);
	nvmlReturn_t (*shutdown)(void);
	nvmlReturn_t (*driver_version)(char *, unsigned int);
	nvmlReturn_t (*count)(unsigned int *);
	nvmlReturn_t (*by_index)(unsigned int, nvmlDevice_t *);
	nvmlReturn_t (*uuid)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*memory)(nvmlDevice_t, struct nvml_memory *);

	const char *(*error_string)(nvmlReturn_t);
	nvmlReturn_t (*mig_mode)(nvmlDevice_t, unsigned int *, unsigned int *);
	nvmlReturn_t (*max_mig)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*mig_by_index)(nvmlDevice_t, unsigned int,
				     nvmlDevice_t *);
	nvmlReturn_t (*gi_id)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*ci_id)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*attributes)(nvmlDevice_t,
				   struct nvml_device_attributes *);
	nvmlReturn_t (*gi_by_id)(nvmlDevice_t, unsigned int,
				 nvmlGpuInstance_t *);
	nvmlReturn_t (*gi_info)(nvmlGpuInstance_t,
				struct nvml_gpu_instance_info *);
	nvmlReturn_t (*gi_profile_info)(nvmlDevice_t, unsigned int,
					struct nvml_gi_profile_info_v2 *);
	nvmlReturn_t (*cores)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*cc)(nvmlDevice_t, int *, int *);
};

static const struct {
	const char *sym;
	size_t off;
	int required;
} nvml_syms[] = {
#define S(f, s, r) { s, offsetof(struct nvml, f), r }
	S(init, "nvmlInit_v2", 1),
	S(shutdown, "nvmlShutdown", 1),
	S(driver_version, "nvmlSystemGetDriverVersion", 1),
	S(count, "nvmlDeviceGetCount_v2", 1),
	S(by_index, "nvmlDeviceGetHandleByIndex_v2", 1),
	S(uuid, "nvmlDeviceGetUUID", 1),
	S(name, "nvmlDeviceGetName", 1),
	S(memory, "nvmlDeviceGetMemoryInfo", 1),
	S(error_string, "nvmlErrorString", 0),
	S(mig_mode, "nvmlDeviceGetMigMode", 0),
	S(max_mig, "nvmlDeviceGetMaxMigDeviceCount", 0),
	S(mig_by_index, "nvmlDeviceGetMigDeviceHandleByIndex", 0),
	S(gi_id, "nvmlDeviceGetGpuInstanceId", 0),
	S(ci_id, "nvmlDeviceGetComputeInstanceId", 0),
	S(attributes, "nvmlDeviceGetAttributes_v2", 0),
	S(gi_by_id, "nvmlDeviceGetGpuInstanceById", 0),
	S(gi_info, "nvmlGpuInstanceGetInfo", 0),
	S(gi_profile_info, "nvmlDeviceGetGpuInstanceProfileInfoV", 0),
	S(cores, "nvmlDeviceGetNumGpuCores", 0),
	S(cc, "nvmlDeviceGetCudaComputeCapability", 0),
#undef S
};

/* The host backend's test double (gpud/backend_host.c answers the same). */
#define HOST_UUID "GPU-6d69676e-6966-6963-656e-74686f737421"
#define HOST_NAME "mignificent host test double"
#define HOST_MEM (16ull << 30)
#define HOST_SMS 132

/* A discovery in progress: partitions found, and why some were not. */
struct found {
	struct mig_partition *p;
	int n, cap;
	char note[256]; /* first reason a GPU gave no partition */
};

static const char *nvml_err(const struct nvml *l, nvmlReturn_t r)
{
	static __thread char buf[32];
	const char *s = l->error_string ? l->error_string(r) : NULL;

	if (s && *s)
		return s;
	snprintf(buf, sizeof(buf), "NVML error %d", r);
	return buf;
}

static void note(struct found *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note(struct found *f, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	daemon_log(0, "devices: %s", line);
	if (!f->note[0])
		snprintf(f->note, sizeof(f->note), "%s", line);
}

static struct mig_partition *add(struct found *f)
{
	if (f->n == f->cap) {
		int cap = f->cap ? 2 * f->cap : 16;
		struct mig_partition *np = realloc(f->p, cap * sizeof(*np));

		if (!np)
			return NULL;
		f->p = np;
		f->cap = cap;
	}
	memset(&f->p[f->n], 0, sizeof(f->p[0]));
	f->p[f->n].present = 1;
	return &f->p[f->n++];
}

/*
 * The library stays loaded once opened: a driver library may have started
 * threads or registered handlers, and unloading it under them is asking
 * for trouble.  dlopen() of the same path again returns the same handle.
 */
static int nvml_open(struct nvml *l, const char *path, char *err,
		     size_t errlen)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	size_t i;

	memset(l, 0, sizeof(*l));
	if (!h) {
		const char *why = dlerror();

		/* There but unloadable is a broken install, not "no GPU". */
		if (why && !strstr(why, "No such file"))
			snprintf(err, errlen,
				 "cannot load NVML (%s): reinstall the NVIDIA "
				 "driver, or use --backend host for the test "
				 "double", why);
		else
			snprintf(err, errlen,
				 "no NVIDIA driver found (%s): this node has no "
				 "GPU; use --backend host for the test double",
				 path);
		return -1;
	}
	for (i = 0; i < sizeof(nvml_syms) / sizeof(nvml_syms[0]); i++) {
		void *fn = dlsym(h, nvml_syms[i].sym);

		if (!fn && nvml_syms[i].required) {
			snprintf(err, errlen,
				 "%s has no %s: the NVIDIA driver is too old or "
				 "the library is not NVML; install a driver "
				 "of R470 or later",
				 path, nvml_syms[i].sym);
			return -1;
		}
		memcpy((char *)l + nvml_syms[i].off, &fn, sizeof(fn));
	}
	return 0;
}

/* FP32 cores per SM by compute capability, to turn a core count into SMs. */
static int cores_per_sm(int major, int minor)
{
	switch (major) {
	case 6:
		return minor == 0 ? 64 : 128;
	case 7:
		return 64;
	case 8:
		return minor == 0 ? 64 : 128;
	default:
		return major >= 9 ? 128 : 0;
	}
}

static int whole_gpu_sms(const struct nvml *l, nvmlDevice_t dev)
{
	unsigned int cores;
	int major, minor, per;

	if (!l->cores || !l->cc || l->cores(dev, &cores) != NVML_SUCCESS ||
	    l->cc(dev, &major, &minor) != NVML_SUCCESS)
		return 0;
	per = cores_per_sm(major, minor);
	return per ? (int)(cores / per) : 0;
}

/*
 * The name nvidia-smi gives a MIG device's profile.  Best: the GPU
 * instance's own profile, whose name NVML keeps ("MIG 1g.18gb+me") -
 * looking the GPU instance up needs root, which the daemon normally is.
 * Otherwise we build it from the device's attributes the way NVML names
 * profiles: GPU-instance slices, "g.", memory in GiB rounded up (an H100
 * 1g.10gb has 9.75 GiB, its 7g.80gb 79.25 GiB).  A compute instance
 * smaller than its GPU instance is prefixed "Nc." as nvidia-smi does.
 */
static void mig_profile(const struct nvml *l, nvmlDevice_t gpu,
			nvmlDevice_t mig, const struct nvml_device_attributes *a,
			int have_attr, char *out, size_t outlen)
{
	unsigned int gi_id, p;
	nvmlGpuInstance_t gi;
	struct nvml_gpu_instance_info info;
	char ci[16] = "";

	if (have_attr && a->computeInstanceSliceCount &&
	    a->computeInstanceSliceCount < a->gpuInstanceSliceCount)
		snprintf(ci, sizeof(ci), "%uc.", a->computeInstanceSliceCount);

	if (l->gi_id && l->gi_by_id && l->gi_info && l->gi_profile_info &&
	    l->gi_id(mig, &gi_id) == NVML_SUCCESS &&
	    l->gi_by_id(gpu, gi_id, &gi) == NVML_SUCCESS &&
	    l->gi_info(gi, &info) == NVML_SUCCESS) {
		for (p = 0; p < NVML_GPU_INSTANCE_PROFILE_COUNT; p++) {
			struct nvml_gi_profile_info_v2 pi;
			const char *name;

			memset(&pi, 0, sizeof(pi));
			pi.version = NVML_GI_PROFILE_INFO_V2;
			if (l->gi_profile_info(gpu, p, &pi) != NVML_SUCCESS ||
			    pi.id != info.profileId)
				continue;
			pi.name[sizeof(pi.name) - 1] = 0;
			name = pi.name;
			if (!strncmp(name, "MIG ", 4))
				name += 4;
			if (*name) {
				/* ci + name, cut to fit (no format: a long NVML
				 * name is not a reason to fail). */
				size_t a = strlen(ci), b = strlen(name);

				if (a > outlen - 1)
					a = outlen - 1;
				if (b > outlen - 1 - a)
					b = outlen - 1 - a;

				memcpy(out, ci, a);
				memcpy(out + a, name, b);
				out[a + b] = 0;
				return;
			}
			break;
		}
	}
	if (have_attr && a->gpuInstanceSliceCount)
		snprintf(out, outlen, "%s%ug.%llugb", ci,
			 a->gpuInstanceSliceCount,
			 (a->memorySizeMB + 1023) / 1024);
	else
		snprintf(out, outlen, "mig");
}

static int add_mig_devices(const struct nvml *l, struct found *f,
			   nvmlDevice_t gpu, const struct mig_partition *parent)
{
	unsigned int max = 0, i;
	int added = 0;
	nvmlReturn_t r;

	if (!l->max_mig || !l->mig_by_index) {
		note(f, "GPU %d (%s) is in MIG mode but this NVML cannot list "
		     "MIG devices: update the NVIDIA driver",
		     parent->gpu_index, parent->gpu_uuid);
		return 0;
	}
	r = l->max_mig(gpu, &max);
	if (r != NVML_SUCCESS) {
		note(f, "GPU %d (%s): cannot count its MIG devices: %s",
		     parent->gpu_index, parent->gpu_uuid, nvml_err(l, r));
		return 0;
	}
	for (i = 0; i < max; i++) {
		struct nvml_device_attributes a;
		struct nvml_memory mem;
		struct mig_partition *p;
		nvmlDevice_t mig;
		int have_attr;

		r = l->mig_by_index(gpu, i, &mig);
		if (r == NVML_ERROR_NOT_FOUND)
			continue; /* no MIG device at this index */
		if (r != NVML_SUCCESS) {
			note(f, "GPU %d (%s): MIG device %u: %s",
			     parent->gpu_index, parent->gpu_uuid, i,
			     nvml_err(l, r));
			continue;
		}
		p = add(f);
		if (!p)
			return -1;
		*p = *parent;
		p->mig = 1;
		r = l->uuid(mig, p->uuid, sizeof(p->uuid));
		if (r != NVML_SUCCESS || !p->uuid[0]) {
			note(f, "GPU %d (%s): MIG device %u has no UUID: %s",
			     parent->gpu_index, parent->gpu_uuid, i,
			     nvml_err(l, r));
			f->n--;
			continue;
		}
		memset(&a, 0, sizeof(a));
		have_attr = l->attributes &&
			    l->attributes(mig, &a) == NVML_SUCCESS;
		p->sms = have_attr ? (int)a.multiprocessorCount : 0;
		if (l->memory(mig, &mem) == NVML_SUCCESS)
			p->mem_total = mem.total;
		else
			p->mem_total = have_attr ? a.memorySizeMB << 20 : 0;
		mig_profile(l, gpu, mig, &a, have_attr, p->profile,
			    sizeof(p->profile));
		added++;
	}
	if (!added)
		note(f, "GPU %d (%s, %s) is in MIG mode but has no MIG "
		     "instances: create some (nvidia-smi mig -cgi PROFILES -C) "
		     "or turn MIG off (nvidia-smi -i %d -mig 0)",
		     parent->gpu_index, parent->gpu_name, parent->gpu_uuid,
		     parent->gpu_index);
	return 0;
}

/* Everything NVML shows, into @f.  0, or -1 with @err set. */
static int nvml_discover(const char *path, struct found *f, char *drv,
			 size_t drvlen, char *err, size_t errlen)
{
	struct nvml l;
	unsigned int count, i;
	char dv[NVML_DRIVER_BUF] = "";
	nvmlReturn_t r;
	int ret = -1;

	if (nvml_open(&l, path, err, errlen))
		return -1;
	r = l.init();
	if (r != NVML_SUCCESS) {
		snprintf(err, errlen,
			 "NVML did not start (%s): check that the NVIDIA kernel "
			 "driver is loaded and nvidia-smi works, or use "
			 "--backend host for the test double",
			 nvml_err(&l, r));
		return -1;
	}
	if (l.driver_version(dv, sizeof(dv)) == NVML_SUCCESS)
		snprintf(drv, drvlen, "%s", dv);
	r = l.count(&count);
	if (r != NVML_SUCCESS) {
		snprintf(err, errlen, "NVML cannot count the GPUs (%s): check "
			 "nvidia-smi", nvml_err(&l, r));
		goto out;
	}
	for (i = 0; i < count; i++) {
		struct mig_partition gpu, *p;
		unsigned int cur = 0, pend = 0;
		struct nvml_memory mem;
		nvmlDevice_t dev;

		r = l.by_index(i, &dev);
		if (r != NVML_SUCCESS) {
			note(f, "GPU %u skipped: %s", i, nvml_err(&l, r));
			continue;
		}
		memset(&gpu, 0, sizeof(gpu));
		gpu.present = 1;
		gpu.gpu_index = (int)i;
		r = l.uuid(dev, gpu.gpu_uuid, sizeof(gpu.gpu_uuid));
		if (r != NVML_SUCCESS || !gpu.gpu_uuid[0]) {
			note(f, "GPU %u skipped: no UUID (%s)", i,
			     nvml_err(&l, r));
			continue;
		}
		if (l.name(dev, gpu.gpu_name, sizeof(gpu.gpu_name)) !=
		    NVML_SUCCESS)
			snprintf(gpu.gpu_name, sizeof(gpu.gpu_name), "NVIDIA GPU");

		/* NOT_SUPPORTED: a GPU without MIG, i.e. MIG off. */
		if (l.mig_mode && l.mig_mode(dev, &cur, &pend) != NVML_SUCCESS)
			cur = pend = 0;
		if (cur == NVML_DEVICE_MIG_ENABLE) {
			if (add_mig_devices(&l, f, dev, &gpu))
				goto oom;
			continue;
		}
		if (pend == NVML_DEVICE_MIG_ENABLE)
			daemon_log(0, "devices: GPU %u (%s) has MIG mode pending: "
				   "used whole until the GPU is reset",
				   i, gpu.gpu_uuid);
		p = add(f);
		if (!p)
			goto oom;
		*p = gpu;
		snprintf(p->uuid, sizeof(p->uuid), "%s", gpu.gpu_uuid);
		snprintf(p->profile, sizeof(p->profile), "whole");
		r = l.memory(dev, &mem);
		p->mem_total = r == NVML_SUCCESS ? mem.total : 0;
		p->sms = whole_gpu_sms(&l, dev);
	}
	ret = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory while listing the GPUs");
out:
	l.shutdown();
	return ret;
}

static int host_discover(struct found *f, char *drv, size_t drvlen)
{
	struct mig_partition *p = add(f);

	if (!p)
		return -1;
	snprintf(p->uuid, sizeof(p->uuid), "%s", HOST_UUID);
	snprintf(p->gpu_uuid, sizeof(p->gpu_uuid), "%s", HOST_UUID);
	snprintf(p->gpu_name, sizeof(p->gpu_name), "%s", HOST_NAME);
	snprintf(p->profile, sizeof(p->profile), "whole");
	p->mem_total = HOST_MEM;
	p->sms = HOST_SMS;
	snprintf(drv, drvlen, "host");
	return 0;
}

static int find_uuid(const struct mig_partition *p, int n, const char *uuid)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(p[i].uuid, uuid))
			return i;
	return -1;
}

/*
 * Merge @f into @d under its lock: known UUIDs are updated in place with
 * their book-keeping kept, new ones appended, the rest marked !present.
 * Returns how many partitions are present, or -1 if out of memory (@d is
 * then unchanged).
 */
static int merge(struct mig_devices *d, const struct found *f,
		 const char *drv)
{
	int i, j, extra = 0, present = 0;
	struct mig_partition *np;

	pthread_mutex_lock(&d->lock);
	for (i = 0; i < f->n; i++)
		if (find_uuid(d->p, d->n, f->p[i].uuid) < 0 &&
		    find_uuid(f->p, i, f->p[i].uuid) < 0)
			extra++;
	if (extra) {
		np = realloc(d->p, (d->n + extra) * sizeof(*np));
		if (!np) {
			pthread_mutex_unlock(&d->lock);
			return -1;
		}
		d->p = np;
	}
	for (i = 0; i < d->n; i++)
		d->p[i].present = 0;
	for (i = 0; i < f->n; i++) {
		struct mig_partition *p;
		uint64_t reserved;
		int instances;

		j = find_uuid(d->p, d->n, f->p[i].uuid);
		if (j < 0) {
			p = &d->p[d->n++];
			*p = f->p[i];
			p->mem_reserved = 0;
			p->instances = 0;
		} else {
			p = &d->p[j];
			if (p->present)
				continue; /* NVML listed it twice */
			/* What NVML says, but instances.c's counts stay. */
			reserved = p->mem_reserved;
			instances = p->instances;
			*p = f->p[i];
			p->mem_reserved = reserved;
			p->instances = instances;
		}
		p->present = 1;
		present++;
	}
	snprintf(d->driver_version, sizeof(d->driver_version), "%s", drv);
	pthread_mutex_unlock(&d->lock);
	return present;
}

static void set_error(struct mig_devices *d, const char *msg)
{
	pthread_mutex_lock(&d->lock);
	snprintf(d->error, sizeof(d->error), "%s", msg);
	pthread_mutex_unlock(&d->lock);
}

/**
 * devices_discover() - find the node's partitions, or find them again.
 * @d:         the devices; d->lock must be initialized (a zeroed struct
 *             is, with glibc), d->p NULL and d->n 0 the first time
 * @nvml_path: NVML library to dlopen (default "libnvidia-ml.so.1")
 * @backend:   "cuda" (NVML) or "host" (one partition, the test double)
 *
 * Partitions still present keep their book-keeping (mem_reserved,
 * instances); new ones are appended; those NVML no longer lists are
 * marked !present and kept, so running instances keep their entry.  If
 * NVML cannot be used at all, @d keeps what it had: that says nothing
 * about the partitions being gone.
 *
 * Return: 0 when at least one partition is present; -1 otherwise, with
 * d->error saying why and what to do.
 */
int devices_discover(struct mig_devices *d, const char *nvml_path,
		     const char *backend)
{
	struct found f = { 0 };
	char drv[sizeof(d->driver_version)] = "";
	char err[sizeof(d->error)] = "";
	int present, i;

	if (!nvml_path || !*nvml_path)
		nvml_path = "libnvidia-ml.so.1";
	if (backend && !strcmp(backend, "host")) {
		if (host_discover(&f, drv, sizeof(drv)))
			snprintf(err, sizeof(err), "out of memory");
	} else if (!backend || !*backend || !strcmp(backend, "cuda")) {
		nvml_discover(nvml_path, &f, drv, sizeof(drv), err,
			      sizeof(err));
	} else {
		snprintf(err, sizeof(err),
			 "unknown backend \"%s\": use cuda or host", backend);
	}
	if (err[0]) {
		set_error(d, err);
		free(f.p);
		return -1;
	}

	present = merge(d, &f, drv);
	if (present < 0)
		snprintf(err, sizeof(err), "out of memory while listing the GPUs");
	else if (present == 0 && f.note[0])
		snprintf(err, sizeof(err), "%s", f.note);
	else if (present == 0)
		snprintf(err, sizeof(err),
			 "NVML lists no GPU: check nvidia-smi (are the GPUs "
			 "visible to this user and container?), or use "
			 "--backend host for the test double");
	set_error(d, err);
	for (i = 0; i < f.n; i++)
		daemon_log(1, "devices: %s %s %s %d SMs %llu MiB (GPU %d %s)",
			   f.p[i].uuid, f.p[i].profile, f.p[i].gpu_name,
			   f.p[i].sms,
			   (unsigned long long)(f.p[i].mem_total >> 20),
			   f.p[i].gpu_index, f.p[i].gpu_uuid);
	free(f.p);
	return present > 0 ? 0 : -1;
}

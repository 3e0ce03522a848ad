/*
 * test_devices.c - daemon/devices.c against recorded NVML answers.
 *
 * Each test points the fake libnvidia-ml.so.1 (fake_nvml.c) at a recording
 * of tests/nvml/recordings/ and checks the partitions devices_discover()
 * makes of it: counts, UUIDs, MIG profiles, memory, SMs, and what a reload
 * keeps of the book-keeping instances.c holds in them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

#define G0 "GPU-3f1c9a42-7b0e-5d21-8c6a-e4b9d0f27a13"
#define G1 "GPU-a85e0d17-2c94-4f6b-b3e1-09d7c5a8f462"
#define MIG_A "MIG-5b2e8f10-c3d4-5a6b-9e7f-1a2b3c4d5e6f" /* 3g.71gb */
#define MIG_B "MIG-71c0de4a-9b38-5f2e-a6d1-3e8f0b7c2d95" /* 2g.35gb */
#define MIG_C "MIG-c2a9f6e3-0d14-5b87-8e2a-6f4d1c9b0a37" /* 1g.18gb */
#define MIG_D "MIG-e8d3b7a1-4f52-5c09-b1e6-d2a0f8c3e914" /* 1g.18gb */
#define MIG_E "MIG-0a4f9c2b-6e13-5d78-9c40-8b1e7d2f6a05" /* 1c.2g.35gb */
#define MIG_F "MIG-9d6e1b85-a207-5f3c-8d94-c5e0a3b7f128" /* 1g.18gb+me */

/* devices.c logs through the daemon's logger; the tests keep quiet. */
void daemon_log(int level, const char *fmt, ...)
{
	(void)level;
	(void)fmt;
}

static void use_recording(const char *name)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", RECORDINGS, name);
	assert_int_equal(access(path, R_OK), 0);
	setenv("MIG_FAKE_NVML", path, 1);
}

/* A recording made on the spot, for layouts not worth a file. */
static char tmp_rec[64];

static void use_json(const char *json)
{
	int fd;

	snprintf(tmp_rec, sizeof(tmp_rec), "/tmp/mig-fake-nvml-XXXXXX");
	fd = mkstemp(tmp_rec);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	close(fd);
	setenv("MIG_FAKE_NVML", tmp_rec, 1);
}

static int setup(void **state)
{
	struct mig_devices *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	pthread_mutex_init(&d->lock, NULL);
	unsetenv("MIG_FAKE_NVML_UNPRIVILEGED");
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	struct mig_devices *d = *state;

	if (tmp_rec[0]) {
		unlink(tmp_rec);
		tmp_rec[0] = 0;
	}
	pthread_mutex_destroy(&d->lock);
	free(d->p);
	free(d);
	return 0;
}

static int discover(struct mig_devices *d)
{
	return devices_discover(d, FAKE_NVML, "cuda");
}

static const struct mig_partition *by_uuid(const struct mig_devices *d,
					   const char *uuid)
{
	int i;

	for (i = 0; i < d->n; i++)
		if (!strcmp(d->p[i].uuid, uuid))
			return &d->p[i];
	fail_msg("no partition %s", uuid);
	return NULL;
}

static int present(const struct mig_devices *d)
{
	int i, n = 0;

	for (i = 0; i < d->n; i++)
		n += d->p[i].present;
	return n;
}

static void check_mig(const struct mig_partition *p, const char *uuid,
		      const char *profile, int sms, uint64_t mem_mib)
{
	assert_string_equal(p->uuid, uuid);
	assert_string_equal(p->profile, profile);
	assert_int_equal(p->sms, sms);
	assert_int_equal(p->mem_total, mem_mib * MiB);
	assert_int_equal(p->mig, 1);
	assert_string_equal(p->gpu_uuid, G0);
	assert_string_equal(p->gpu_name, "NVIDIA H200");
	assert_int_equal(p->gpu_index, 0);
}

static void test_mig_off(void **state)
{
	struct mig_devices *d = *state;
	const struct mig_partition *p;

	use_recording("h200-mig-off.json");
	assert_int_equal(discover(d), 0);
	assert_int_equal(d->n, 1);
	p = &d->p[0];
	assert_string_equal(p->uuid, G0);
	assert_string_equal(p->gpu_uuid, G0);
	assert_string_equal(p->gpu_name, "NVIDIA H200");
	assert_string_equal(p->profile, "whole");
	assert_int_equal(p->mig, 0);
	assert_int_equal(p->gpu_index, 0);
	assert_int_equal(p->mem_total, 143771 * MiB);
	assert_int_equal(p->sms, 132);
	assert_int_equal(p->present, 1);
	assert_int_equal(p->instances, 0);
	assert_int_equal(p->mem_reserved, 0);
	assert_string_equal(d->driver_version, "580.159.04");
	assert_string_equal(d->error, "");
}

static void test_two_gpus(void **state)
{
	struct mig_devices *d = *state;

	use_recording("two-h200.json");
	assert_int_equal(discover(d), 0);
	assert_int_equal(d->n, 2);
	assert_string_equal(d->p[0].uuid, G0);
	assert_string_equal(d->p[1].uuid, G1);
	assert_int_equal(d->p[0].gpu_index, 0);
	assert_int_equal(d->p[1].gpu_index, 1);
	assert_string_equal(d->p[1].profile, "whole");
	assert_int_equal(d->p[1].sms, 132);
	assert_int_equal(d->p[1].mem_total, 143771 * MiB);
}

static void check_mixed(const struct mig_devices *d)
{
	assert_int_equal(d->n, 4);
	check_mig(&d->p[0], MIG_A, "3g.71gb", 60, 72192);
	check_mig(&d->p[1], MIG_B, "2g.35gb", 32, 35584);
	check_mig(&d->p[2], MIG_C, "1g.18gb", 16, 17920);
	check_mig(&d->p[3], MIG_D, "1g.18gb", 16, 17920);
}

/* MIG on: the MIG devices are the partitions, the GPU itself is not. */
static void test_mig_mixed(void **state)
{
	struct mig_devices *d = *state;

	use_recording("h200-mig-mixed.json");
	assert_int_equal(discover(d), 0);
	check_mixed(d);
	assert_int_equal(present(d), 4);
	assert_string_equal(d->error, "");
}

/* Without root the profile is named from the device's attributes. */
static void test_mig_mixed_unprivileged(void **state)
{
	struct mig_devices *d = *state;

	setenv("MIG_FAKE_NVML_UNPRIVILEGED", "1", 1);
	use_recording("h200-mig-mixed.json");
	assert_int_equal(discover(d), 0);
	check_mixed(d);
}

static void test_relayout_profiles(void **state)
{
	struct mig_devices *d = *state;

	use_recording("h200-mig-relayout.json");
	assert_int_equal(discover(d), 0);
	assert_int_equal(d->n, 4);
	check_mig(&d->p[1], MIG_E, "1c.2g.35gb", 16, 35584);
	check_mig(&d->p[3], MIG_F, "1g.18gb+me", 16, 17920);

	/* The attribute fallback cannot tell +me apart; the rest it can. */
	setenv("MIG_FAKE_NVML_UNPRIVILEGED", "1", 1);
	assert_int_equal(discover(d), 0);
	assert_int_equal(d->n, 4);
	assert_string_equal(d->p[1].profile, "1c.2g.35gb");
	assert_string_equal(d->p[3].profile, "1g.18gb");
}

/*
 * A reload keeps the book-keeping of the partitions that survive and of
 * those that vanished (their instances keep running), keeps every index,
 * and appends the new partitions.
 */
static void test_reload(void **state)
{
	struct mig_devices *d = *state;

	use_recording("h200-mig-mixed.json");
	assert_int_equal(discover(d), 0);
	d->p[0].mem_reserved = 10 * GiB; /* A */
	d->p[0].instances = 2;
	d->p[1].mem_reserved = 1 * GiB; /* B: about to vanish */
	d->p[1].instances = 1;
	d->p[2].instances = 3; /* C */

	use_recording("h200-mig-relayout.json");
	assert_int_equal(discover(d), 0);
	assert_int_equal(d->n, 6);
	assert_int_equal(present(d), 4);
	assert_string_equal(d->p[0].uuid, MIG_A);
	assert_true(d->p[0].present);
	assert_int_equal(d->p[0].mem_reserved, 10 * GiB);
	assert_int_equal(d->p[0].instances, 2);
	assert_string_equal(d->p[1].uuid, MIG_B);
	assert_false(d->p[1].present);
	assert_int_equal(d->p[1].mem_reserved, 1 * GiB);
	assert_int_equal(d->p[1].instances, 1);
	assert_string_equal(d->p[2].uuid, MIG_C);
	assert_true(d->p[2].present);
	assert_int_equal(d->p[2].instances, 3);
	assert_string_equal(d->p[3].uuid, MIG_D);
	assert_false(d->p[3].present);
	check_mig(&d->p[4], MIG_E, "1c.2g.35gb", 16, 35584);
	assert_true(d->p[4].present);
	assert_int_equal(d->p[4].instances, 0);
	assert_int_equal(d->p[4].mem_reserved, 0);
	check_mig(&d->p[5], MIG_F, "1g.18gb+me", 16, 17920);
	assert_true(d->p[5].present);

	/* Back to the first layout: B and D return with their counts. */
	d->p[4].instances = 1;
	use_recording("h200-mig-mixed.json");
	assert_int_equal(discover(d), 0);
	assert_int_equal(d->n, 6);
	assert_int_equal(present(d), 4);
	assert_true(by_uuid(d, MIG_B)->present);
	assert_int_equal(by_uuid(d, MIG_B)->instances, 1);
	assert_int_equal(by_uuid(d, MIG_B)->mem_reserved, 1 * GiB);
	assert_true(by_uuid(d, MIG_D)->present);
	assert_false(by_uuid(d, MIG_E)->present);
	assert_int_equal(by_uuid(d, MIG_E)->instances, 1);
	assert_false(by_uuid(d, MIG_F)->present);
	check_mixed(&(struct mig_devices){ .p = d->p, .n = 4 });
}

/* Turning MIG on: the whole GPU goes, its MIG devices come. */
static void test_reload_mig_on(void **state)
{
	struct mig_devices *d = *state;

	use_recording("h200-mig-off.json");
	assert_int_equal(discover(d), 0);
	d->p[0].instances = 1;
	use_recording("h200-mig-mixed.json");
	assert_int_equal(discover(d), 0);
	assert_int_equal(d->n, 5);
	assert_string_equal(d->p[0].uuid, G0);
	assert_false(d->p[0].present);
	assert_int_equal(d->p[0].instances, 1);
	assert_string_equal(d->p[1].uuid, MIG_A);
	assert_int_equal(present(d), 4);
}

static void test_no_nvml(void **state)
{
	struct mig_devices *d = *state;

	assert_int_equal(devices_discover(d, "/nonexistent/libnvidia-ml.so.1",
					  "cuda"),
			 -1);
	assert_int_equal(d->n, 0);
	assert_string_equal(d->error,
			    "no NVIDIA driver found (/nonexistent/libnvidia-ml.so.1): "
			    "this node has no GPU; use --backend host for the "
			    "test double");
}

/* A file that is there but is no library: a broken install, said so. */
static void test_nvml_unloadable(void **state)
{
	struct mig_devices *d = *state;

	assert_int_equal(devices_discover(d, RECORDINGS "/h200-mig-off.json",
					  "cuda"),
			 -1);
	assert_non_null(strstr(d->error, "cannot load NVML"));
	assert_non_null(strstr(d->error, "reinstall the NVIDIA driver"));
}

/* NVML failing on a reload says nothing about the partitions: keep them. */
static void test_reload_nvml_gone(void **state)
{
	struct mig_devices *d = *state;

	use_recording("h200-mig-off.json");
	assert_int_equal(discover(d), 0);
	d->p[0].instances = 2;
	assert_int_equal(devices_discover(d, "/nonexistent/libnvidia-ml.so.1",
					  "cuda"),
			 -1);
	assert_non_null(strstr(d->error, "no NVIDIA driver found"));
	assert_int_equal(d->n, 1);
	assert_true(d->p[0].present);
	assert_int_equal(d->p[0].instances, 2);

	use_json("{\"init_error\": 9}");
	assert_int_equal(discover(d), -1);
	assert_non_null(strstr(d->error, "Driver Not Loaded"));
	assert_true(d->p[0].present);

	/* A good discovery clears the error. */
	use_recording("h200-mig-off.json");
	assert_int_equal(discover(d), 0);
	assert_string_equal(d->error, "");
}

static void test_mig_on_without_instances(void **state)
{
	struct mig_devices *d = *state;

	use_json("{\"driver_version\": \"580.159.04\", \"gpus\": [{"
		 "\"uuid\": \"" G0 "\", \"name\": \"NVIDIA H200\","
		 "\"memory_total\": 150754820096,"
		 "\"mig_mode\": {\"current\": 1}, \"max_mig_device_count\": 7}]}");
	assert_int_equal(discover(d), -1);
	assert_int_equal(d->n, 0);
	assert_non_null(strstr(d->error, "MIG mode but has no MIG instances"));
	assert_non_null(strstr(d->error, "nvidia-smi mig -cgi"));
}

static void test_no_gpus(void **state)
{
	struct mig_devices *d = *state;

	use_json("{\"driver_version\": \"580.159.04\", \"gpus\": []}");
	assert_int_equal(discover(d), -1);
	assert_non_null(strstr(d->error, "NVML lists no GPU"));
}

/* A GPU NVML cannot open is skipped; the others are still found. */
static void test_gpu_skipped(void **state)
{
	struct mig_devices *d = *state;

	use_json("{\"gpus\": [{\"handle_error\": 4}, {"
		 "\"uuid\": \"" G1 "\", \"name\": \"NVIDIA H200\","
		 "\"memory_total\": 150754820096, \"num_gpu_cores\": 16896,"
		 "\"cuda_compute_capability\": [9, 0]}]}");
	assert_int_equal(discover(d), 0);
	assert_int_equal(d->n, 1);
	assert_string_equal(d->p[0].uuid, G1);
	assert_int_equal(d->p[0].gpu_index, 1);
	assert_int_equal(d->p[0].sms, 132);
}

static void test_host_backend(void **state)
{
	struct mig_devices *d = *state;
	const struct mig_partition *p;

	/* The host backend never looks for NVML. */
	assert_int_equal(devices_discover(d, "/nonexistent/libnvidia-ml.so.1",
					  "host"),
			 0);
	assert_int_equal(d->n, 1);
	p = &d->p[0];
	assert_string_equal(p->uuid, "GPU-6d69676e-6966-6963-656e-74686f737421");
	assert_string_equal(p->gpu_uuid, p->uuid);
	assert_string_equal(p->gpu_name, "mignificent host test double");
	assert_string_equal(p->profile, "whole");
	assert_int_equal(p->mem_total, 16 * GiB);
	assert_int_equal(p->sms, 132);
	assert_int_equal(p->mig, 0);
	assert_true(p->present);
	assert_string_equal(d->error, "");

	/* Discovered again: still one, book-keeping kept. */
	d->p[0].instances = 4;
	assert_int_equal(devices_discover(d, NULL, "host"), 0);
	assert_int_equal(d->n, 1);
	assert_int_equal(d->p[0].instances, 4);
}

static void test_unknown_backend(void **state)
{
	struct mig_devices *d = *state;

	assert_int_equal(devices_discover(d, FAKE_NVML, "rocm"), -1);
	assert_non_null(strstr(d->error, "unknown backend \"rocm\""));
}

/*
 * test_devices --print [NVML_PATH]: what devices_discover() finds on this
 * node with the real NVML (default libnvidia-ml.so.1), for checking a GPU
 * machine against the recordings.
 */
static int print_node(const char *path)
{
	struct mig_devices d = { .lock = PTHREAD_MUTEX_INITIALIZER };
	int i, ret = devices_discover(&d, path, "cuda");

	printf("driver %s: %d partition(s)%s%s\n", d.driver_version, d.n,
	       d.error[0] ? "; " : "", d.error);
	for (i = 0; i < d.n; i++)
		printf("%-44s %-12s %3d SMs %8llu MiB  GPU %d %s %s\n",
		       d.p[i].uuid, d.p[i].profile, d.p[i].sms,
		       (unsigned long long)(d.p[i].mem_total >> 20),
		       d.p[i].gpu_index, d.p[i].gpu_name, d.p[i].gpu_uuid);
	free(d.p);
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_mig_off),
		T(test_two_gpus),
		T(test_mig_mixed),
		T(test_mig_mixed_unprivileged),
		T(test_relayout_profiles),
		T(test_reload),
		T(test_reload_mig_on),
		T(test_no_nvml),
		T(test_nvml_unloadable),
		T(test_reload_nvml_gone),
		T(test_mig_on_without_instances),
		T(test_no_gpus),
		T(test_gpu_skipped),
		T(test_host_backend),
		T(test_unknown_backend),
#undef T
	};

	if (argc > 1 && !strcmp(argv[1], "--print"))
		return print_node(argc > 2 ? argv[2] : "libnvidia-ml.so.1");
	return cmocka_run_group_tests_name("devices", tests, NULL, NULL);
}

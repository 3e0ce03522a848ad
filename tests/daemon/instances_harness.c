/*
 * instances_harness.c - a test driver for daemon/instances.c.
 *
 * Links instances.c alone, without the HTTP server, the registry or NVML:
 * the harness itself plays the daemon around it.  It fills the config and
 * the devices table (host-test-double partitions of a chosen size), keeps
 * functions in memory instead of the registry, logs to stderr, and drives
 * instances_init/invoke/list/kill/retire/shutdown against real mig-gpud
 * and mig-exec processes.  tests/daemon/test_instances.py builds and runs
 * it.
 *
 * Commands on stdin, one per line; each answers one JSON line on stdout:
 *
 *   set KEY VALUE          before init: backend bin_dir shim_dir lib_dir
 *                          pool segment_mib verbose partitions mem_mib
 *                          profile uuid
 *   init
 *   fn KEY ATTR=VALUE...   a function: name tenant language artifact
 *                          handler python gpu_mib profile timeout_ms
 *                          keep_alive_ms max_instances version env=K=V...
 *   invoke KEY [PAYLOAD]   one invocation (PAYLOAD: the rest of the line)
 *   go TAG KEY [PAYLOAD]   the same, in the background; `wait TAG` answers
 *                          (with done_ms: when it finished, since start)
 *   echo KEY BYTES         send BYTES bytes of a pattern, check the answer
 *   list [TENANT] | kill TENANT ID | retire TENANT NAME
 *   swap ID out|in         instances_swap(); goswap TAG ID out|in: the
 *                          same in the background (`wait TAG` answers)
 *   delay_swap_answers MS  the daemon takes each swap's answer MS late
 *                          (instances_swap_answer_delay_ms)
 *   turns [PARTITION]      its arbiter's model, grants, held_ms, waiting
 *                          (default: the first partition)
 *   fds                    this process's open file descriptors
 *   children               this process's child processes and their states
 *   bench KEY THREADS COUNT [PAYLOAD]   latency percentiles, throughput
 *   shutdown | quit
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arbiter.h"
#include "control.h"
#include "daemon.h"

#define MAX_FNS 64
#define MAX_GO 256

static struct mig_daemon daemon_;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

struct fn_entry {
	char key[64];
	struct mig_function f;
	char *envbuf[33];
};

static struct fn_entry fns[MAX_FNS];
static int nfns;

struct go {
	char tag[64];
	pthread_t thread;
	const struct mig_function *f; /* an invocation, or */
	char *payload;
	char *swap_id;                /* a swap (goswap) */
	bool swap_out;
	json_t *swap_answer;
	struct mig_invoke_result r;
	uint64_t done_ns;
	bool used;
};

static struct go gos[MAX_GO];

/* The daemon's logger, as main.c provides it: to stderr, by level. */
void daemon_log(int level, const char *fmt, ...)
{
	va_list ap;

	if (level > daemon_.cfg.verbose)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "harness[%d]: ", level);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void answer(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	pthread_mutex_lock(&out_lock);
	printf("%s\n", s ? s : "{\"error\":\"json\"}");
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	free(s);
	json_decref(j);
}

static json_t *text(const void *p, size_t n)
{
	json_t *s = json_stringn(p, n);
	char *copy;

	if (s)
		return s;
	copy = malloc(n + 1);
	for (size_t i = 0; copy && i < n; i++)
		copy[i] = ((const unsigned char *)p)[i] < 0x80 ? ((const char *)p)[i] : '?';
	if (copy)
		copy[n] = 0;
	s = json_string(copy ? copy : "");
	free(copy);
	return s;
}

static json_t *result_json(struct mig_invoke_result *r)
{
	json_t *j = json_pack("{s:i,s:i,s:s,s:s,s:i,s:I,s:I,s:I}",
			      "status", r->http_status, "fn_status", r->fn_status,
			      "content_type", r->content_type, "instance", r->instance,
			      "cold", r->cold, "queued_us", (json_int_t)r->queued_us,
			      "cold_start_us", (json_int_t)r->cold_start_us,
			      "run_us", (json_int_t)r->run_us);

	json_object_set_new(j, "swap_in_us", json_integer((json_int_t)r->swap_in_us));
	json_object_set_new(j, "body", text(r->body ? r->body : "", r->len));
	free(r->body);
	r->body = NULL;
	return j;
}

static struct fn_entry *fn_lookup(const char *key)
{
	for (int i = 0; i < nfns; i++)
		if (!strcmp(fns[i].key, key))
			return &fns[i];
	return NULL;
}

/* Returns 0, or -1 for an unknown setting. */
static int set(const char *key, const char *val)
{
	struct mig_config *c = &daemon_.cfg;
	static int nparts = 1;
	static uint64_t mem = 4096ull << 20;
	static char profile[32] = "whole", uuid[96] = "";

	if (!strcmp(key, "backend"))
		snprintf(c->backend, sizeof(c->backend), "%s", val);
	else if (!strcmp(key, "bin_dir"))
		snprintf(c->bin_dir, sizeof(c->bin_dir), "%s", val);
	else if (!strcmp(key, "shim_dir"))
		snprintf(c->shim_dir, sizeof(c->shim_dir), "%s", val);
	else if (!strcmp(key, "lib_dir"))
		snprintf(c->lib_dir, sizeof(c->lib_dir), "%s", val);
	else if (!strcmp(key, "pool"))
		c->pool_per_partition = atoi(val);
	else if (!strcmp(key, "segment_mib"))
		c->segment_size = strtoull(val, NULL, 0) << 20;
	else if (!strcmp(key, "verbose"))
		c->verbose = atoi(val);
	else if (!strcmp(key, "module_cache"))
		c->module_cache = strtoull(val, NULL, 0);
	else if (!strcmp(key, "lukewarm_after_ms"))
		c->lukewarm_after_ms = (unsigned int)strtoul(val, NULL, 0);
	else if (!strcmp(key, "lukewarm_on_pressure"))
		c->lukewarm_on_pressure = atoi(val) != 0;
	else if (!strcmp(key, "lukewarm_host_memory"))
		c->lukewarm_host_memory = strtoull(val, NULL, 0);
	else if (!strcmp(key, "sharing_max_hold_ms"))
		c->sharing_max_hold_ms = (unsigned int)strtoul(val, NULL, 0);
	else if (!strcmp(key, "executor_poll_us"))
		c->executor_poll_us = (unsigned int)strtoul(val, NULL, 0);
	else if (!strcmp(key, "sharing"))
		c->sharing = mig_sharing_parse(val) < 0 ? 0 : mig_sharing_parse(val);
	else if (!strcmp(key, "partitions"))
		nparts = atoi(val);
	else if (!strcmp(key, "mem_mib"))
		mem = strtoull(val, NULL, 0) << 20;
	else if (!strcmp(key, "profile"))
		snprintf(profile, sizeof(profile), "%s", val);
	else if (!strcmp(key, "uuid"))
		snprintf(uuid, sizeof(uuid), "%s", val);
	else
		return -1;
	/* The devices table as devices.c would fill it for the test double. */
	free(daemon_.devices.p);
	daemon_.devices.p = calloc((size_t)nparts, sizeof(struct mig_partition));
	daemon_.devices.n = nparts;
	for (int i = 0; i < nparts; i++) {
		struct mig_partition *p = &daemon_.devices.p[i];

		/* On a GPU every partition is the real device: placement
		 * logic is what is tested, not isolation. */
		if (*uuid)
			snprintf(p->uuid, sizeof(p->uuid), "%s", uuid);
		else
			snprintf(p->uuid, sizeof(p->uuid), "host-%d", i);
		snprintf(p->profile, sizeof(p->profile), "%s", profile);
		snprintf(p->gpu_name, sizeof(p->gpu_name), "test double");
		p->mem_total = mem;
		p->present = 1;
	}
	return 0;
}

/* swap ID out|in: instances_swap(). */
static json_t *swap_json(const char *id, bool out)
{
	struct mig_swap_report rep = { 0 };
	char err[300] = "";
	int rc = instances_swap(&daemon_, NULL, id, out, &rep, err, sizeof(err));

	return json_pack("{s:i,s:I,s:i,s:f,s:s}", "rc", rc, "bytes",
			 (json_int_t)rep.bytes, "allocations", (int)rep.allocations,
			 "ms", rep.ns / 1e6, "error", err);
}

static void cmd_swap(const char *id, const char *dir)
{
	answer(swap_json(id, !strcmp(dir, "out")));
}

static void cmd_set(const char *key, const char *val)
{
	if (set(key, val))
		answer(json_pack("{s:b,s:s}", "ok", 0, "error", "unknown setting"));
	else
		answer(json_pack("{s:b}", "ok", 1));
}

static void cmd_fn(char *key, char *attrs)
{
	struct fn_entry *e = fn_lookup(key);
	struct mig_function *f;
	char *save = NULL, *a;
	int nenv = 0;

	if (!e) {
		if (nfns == MAX_FNS) {
			answer(json_pack("{s:b}", "ok", 0));
			return;
		}
		e = &fns[nfns++];
		snprintf(e->key, sizeof(e->key), "%s", key);
	}
	for (int i = 0; e->envbuf[i]; i++) {
		free(e->envbuf[i]);
		e->envbuf[i] = NULL;
	}
	f = &e->f;
	memset(f, 0, sizeof(*f));
	snprintf(f->tenant, sizeof(f->tenant), "t1");
	snprintf(f->name, sizeof(f->name), "%s", key);
	snprintf(f->language, sizeof(f->language), "c");
	f->version = 1;
	for (a = strtok_r(attrs, " ", &save); a; a = strtok_r(NULL, " ", &save)) {
		char *v = strchr(a, '=');

		if (!v)
			continue;
		*v++ = 0;
		if (!strcmp(a, "name"))
			snprintf(f->name, sizeof(f->name), "%s", v);
		else if (!strcmp(a, "tenant"))
			snprintf(f->tenant, sizeof(f->tenant), "%s", v);
		else if (!strcmp(a, "language"))
			snprintf(f->language, sizeof(f->language), "%s", v);
		else if (!strcmp(a, "artifact"))
			snprintf(f->artifact, sizeof(f->artifact), "%s", v);
		else if (!strcmp(a, "handler"))
			snprintf(f->handler, sizeof(f->handler), "%s", v);
		else if (!strcmp(a, "python"))
			snprintf(f->python, sizeof(f->python), "%s", v);
		else if (!strcmp(a, "profile"))
			snprintf(f->profile, sizeof(f->profile), "%s", v);
		else if (!strcmp(a, "gpu_mib"))
			f->gpu_memory = strtoull(v, NULL, 0) << 20;
		else if (!strcmp(a, "timeout_ms"))
			f->timeout_ms = (unsigned int)atoi(v);
		else if (!strcmp(a, "keep_alive_ms"))
			f->keep_alive_ms = (unsigned int)atoi(v);
		else if (!strcmp(a, "max_instances"))
			f->max_instances = (unsigned int)atoi(v);
		else if (!strcmp(a, "version"))
			f->version = (unsigned int)atoi(v);
		else if (!strcmp(a, "env") && nenv < 32)
			e->envbuf[nenv++] = strdup(v);
	}
	e->envbuf[nenv] = NULL;
	f->env = e->envbuf;
	answer(json_pack("{s:b}", "ok", 1));
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t start_ns;

static void *go_thread(void *arg)
{
	struct go *g = arg;

	if (g->swap_id)
		g->swap_answer = swap_json(g->swap_id, g->swap_out);
	else
		instances_invoke(&daemon_, g->f, g->payload, strlen(g->payload),
				 "text/plain", &g->r);
	g->done_ns = now_ns();
	return NULL;
}

/* A free background slot named @tag, or NULL (answered). */
static struct go *go_slot(const char *tag)
{
	for (int i = 0; i < MAX_GO; i++)
		if (!gos[i].used) {
			struct go *g = &gos[i];

			memset(g, 0, sizeof(*g));
			g->used = true;
			snprintf(g->tag, sizeof(g->tag), "%s", tag);
			return g;
		}
	answer(json_pack("{s:s}", "error", "too many background invocations"));
	return NULL;
}

static void cmd_invoke(char *key, char *payload, const char *tag)
{
	struct fn_entry *e = fn_lookup(key);
	struct mig_invoke_result r;
	struct go *g;

	if (!e) {
		answer(json_pack("{s:s}", "error", "no such function"));
		return;
	}
	if (!tag) {
		instances_invoke(&daemon_, &e->f, payload, strlen(payload),
				 "text/plain", &r);
		answer(result_json(&r));
		return;
	}
	if (!(g = go_slot(tag)))
		return;
	g->f = &e->f;
	g->payload = strdup(payload);
	pthread_create(&g->thread, NULL, go_thread, g);
	answer(json_pack("{s:b}", "ok", 1));
}

/* goswap TAG ID out|in: a swap in the background; `wait TAG` answers it. */
static void cmd_goswap(const char *tag, const char *id, const char *dir)
{
	struct go *g = go_slot(tag);

	if (!g)
		return;
	g->swap_id = strdup(id);
	g->swap_out = !strcmp(dir, "out");
	pthread_create(&g->thread, NULL, go_thread, g);
	answer(json_pack("{s:b}", "ok", 1));
}

static void cmd_wait(const char *tag)
{
	for (int i = 0; i < MAX_GO; i++) {
		struct go *g = &gos[i];

		if (g->used && !strcmp(g->tag, tag)) {
			json_t *j;

			pthread_join(g->thread, NULL);
			j = g->swap_id ? g->swap_answer : result_json(&g->r);
			free(g->payload);
			free(g->swap_id);
			g->used = false;
			json_object_set_new(j, "done_ms",
					    json_real((g->done_ns - start_ns) / 1e6));
			answer(j);
			return;
		}
	}
	answer(json_pack("{s:s}", "error", "no such tag"));
}

static void cmd_fds(void)
{
	json_t *list = json_array();
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	while (dir && (de = readdir(dir))) {
		char path[300], target[512];
		ssize_t len;

		if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(dir))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		target[len > 0 ? len : 0] = 0;
		json_array_append_new(list, json_pack("{s:i,s:s}", "fd",
						      atoi(de->d_name), "target", target));
		n++;
	}
	if (dir)
		closedir(dir);
	answer(json_pack("{s:i,s:o}", "fds", n, "list", list));
}

/* Children from /proc: pid, state (Z: a zombie nobody reaped), command. */
static void cmd_children(void)
{
	json_t *list = json_array();
	DIR *dir = opendir("/proc");
	struct dirent *de;

	while (dir && (de = readdir(dir))) {
		char path[300], buf[1024], *rp, state;
		int ppid = 0;
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(buf, sizeof(buf), f)) {
			fclose(f);
			continue;
		}
		fclose(f);
		rp = strrchr(buf, ')');
		if (!rp || sscanf(rp + 2, "%c %d", &state, &ppid) != 2 ||
		    ppid != getpid())
			continue;
		*rp = 0;
		json_array_append_new(list, json_pack("{s:i,s:s#,s:s}", "pid",
						      atoi(de->d_name), "state", &state, 1,
						      "comm", strchr(buf, '(') + 1));
	}
	if (dir)
		closedir(dir);
	answer(json_pack("{s:o}", "children", list));
}

/* A large payload through an echoing function comes back intact. */
static void cmd_echo(const char *key, size_t n)
{
	struct fn_entry *e = fn_lookup(key);
	struct mig_invoke_result r;
	char *p = malloc(n + 1);
	bool same;

	if (!e || !p) {
		free(p);
		answer(json_pack("{s:s}", "error", "no such function"));
		return;
	}
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + (i * 7 + i / 251) % 26);
	instances_invoke(&daemon_, &e->f, p, n, "application/x-test", &r);
	same = r.http_status == 200 && r.len == n && r.body && !memcmp(r.body, p, n);
	answer(json_pack("{s:i,s:b,s:I,s:s}", "status", r.http_status, "same", same,
			 "len", (json_int_t)r.len, "content_type", r.content_type));
	free(r.body);
	free(p);
}

struct bench {
	const struct mig_function *f;
	const char *payload;
	int count;
	uint64_t *lat_ns;
	int errors;
};

static void *bench_thread(void *arg)
{
	struct bench *b = arg;

	for (int i = 0; i < b->count; i++) {
		struct mig_invoke_result r;
		uint64_t t0 = now_ns();

		instances_invoke(&daemon_, b->f, b->payload, strlen(b->payload),
				 "text/plain", &r);
		b->lat_ns[i] = now_ns() - t0;
		b->errors += r.http_status != 200;
		free(r.body);
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void cmd_bench(char *key, int threads, int count, const char *payload)
{
	struct fn_entry *e = fn_lookup(key);
	struct bench b[64];
	pthread_t t[64];
	uint64_t *all, t0, wall;
	int per, n = 0, errors = 0;

	if (!e || threads < 1 || threads > 64 || count < threads) {
		answer(json_pack("{s:s}", "error", "bad bench arguments"));
		return;
	}
	per = count / threads;
	all = calloc((size_t)per * threads, sizeof(*all));
	t0 = now_ns();
	for (int i = 0; i < threads; i++) {
		b[i] = (struct bench){ &e->f, payload, per, all + (size_t)i * per, 0 };
		pthread_create(&t[i], NULL, bench_thread, &b[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		errors += b[i].errors;
	}
	wall = now_ns() - t0;
	n = per * threads;
	qsort(all, (size_t)n, sizeof(*all), cmp_u64);
	answer(json_pack("{s:i,s:i,s:f,s:f,s:f,s:f}", "count", n, "errors", errors,
			 "p50_us", all[n / 2] / 1e3, "p99_us", all[(n * 99) / 100] / 1e3,
			 "max_us", all[n - 1] / 1e3, "per_s", n / (wall / 1e9)));
	free(all);
}

int main(void)
{
	char line[8192];

	start_ns = now_ns();
	pthread_mutex_init(&daemon_.devices.lock, NULL);
	snprintf(daemon_.cfg.backend, sizeof(daemon_.cfg.backend), "host");
	daemon_.cfg.pool_per_partition = 0;
	daemon_.cfg.segment_size = 256ull << 20;
	daemon_.cfg.lukewarm_on_pressure = true; /* the daemon's default */
	/* The instance logic, as plain processes: isolation has its own
	 * tests against the real daemon (tests/daemon/test_sandbox.py). */
	snprintf(daemon_.cfg.isolation, sizeof(daemon_.cfg.isolation), "bare");
	set("partitions", "1"); /* the default devices table */

	while (fgets(line, sizeof(line), stdin)) {
		char *cmd, *a1 = NULL, *a2 = NULL, *rest = NULL, *save = NULL;

		line[strcspn(line, "\n")] = 0;
		cmd = strtok_r(line, " ", &save);
		if (!cmd)
			continue;
		a1 = strtok_r(NULL, " ", &save);
		rest = save && *save ? save : (char *)"";
		if (!strcmp(cmd, "set") && a1) {
			cmd_set(a1, rest);
		} else if (!strcmp(cmd, "init")) {
			answer(json_pack("{s:b}", "ok", instances_init(&daemon_) == 0));
		} else if (!strcmp(cmd, "fn") && a1) {
			cmd_fn(a1, rest);
		} else if (!strcmp(cmd, "invoke") && a1) {
			cmd_invoke(a1, rest, NULL);
		} else if (!strcmp(cmd, "go") && a1) {
			a2 = strtok_r(NULL, " ", &save);
			rest = save && *save ? save : (char *)"";
			if (a2)
				cmd_invoke(a2, rest, a1);
		} else if (!strcmp(cmd, "echo") && a1) {
			cmd_echo(a1, strtoull(rest, NULL, 0));
		} else if (!strcmp(cmd, "wait") && a1) {
			cmd_wait(a1);
		} else if (!strcmp(cmd, "list")) {
			answer(json_pack("{s:o}", "instances",
					 instances_list(&daemon_, a1)));
		} else if (!strcmp(cmd, "kill") && a1) {
			a2 = strtok_r(NULL, " ", &save);
			answer(json_pack("{s:i}", "rc",
					 instances_kill(&daemon_, a1, a2 ? a2 : "")));
		} else if (!strcmp(cmd, "retire") && a1) {
			a2 = strtok_r(NULL, " ", &save);
			instances_retire(&daemon_, a1, a2 ? a2 : "");
			answer(json_pack("{s:b}", "ok", 1));
		} else if (!strcmp(cmd, "swap") && a1) {
			a2 = strtok_r(NULL, " ", &save);
			cmd_swap(a1, a2 ? a2 : "");
		} else if (!strcmp(cmd, "goswap") && a1) {
			char *id = strtok_r(NULL, " ", &save);

			a2 = strtok_r(NULL, " ", &save);
			if (id)
				cmd_goswap(a1, id, a2 ? a2 : "");
			else
				answer(json_pack("{s:s}", "error", "goswap TAG ID out|in"));
		} else if (!strcmp(cmd, "delay_swap_answers") && a1) {
			instances_swap_answer_delay_ms = (unsigned int)strtoul(a1, NULL, 10);
			answer(json_pack("{s:b}", "ok", 1));
		} else if (!strcmp(cmd, "turns")) {
			struct mig_gpu_turns t;

			if (!a1 && daemon_.devices.n)
				a1 = daemon_.devices.p[0].uuid;
			if (!a1 || instances_gpu_turns(&daemon_, a1, &t))
				answer(json_pack("{s:s}", "error", "no such partition"));
			else
				answer(json_pack("{s:s,s:I,s:f,s:i}", "model",
						 mig_sharing_name(t.model), "grants",
						 (json_int_t)t.grants, "held_ms", t.held_ns / 1e6,
						 "waiting", (int)t.waiting));
		} else if (!strcmp(cmd, "fds")) {
			cmd_fds();
		} else if (!strcmp(cmd, "children")) {
			cmd_children();
		} else if (!strcmp(cmd, "bench") && a1) {
			int threads = atoi(strtok_r(NULL, " ", &save) ?: "1");
			int count = atoi(strtok_r(NULL, " ", &save) ?: "1");

			cmd_bench(a1, threads, count, save && *save ? save : "");
		} else if (!strcmp(cmd, "shutdown")) {
			instances_shutdown(&daemon_);
			answer(json_pack("{s:b}", "ok", 1));
		} else if (!strcmp(cmd, "quit")) {
			break;
		} else {
			answer(json_pack("{s:s,s:s}", "error", "unknown command",
					 "command", cmd));
		}
	}
	for (int i = 0; i < nfns; i++)
		for (int j = 0; fns[i].envbuf[j]; j++)
			free(fns[i].envbuf[j]);
	free(daemon_.devices.p);
	return 0;
}

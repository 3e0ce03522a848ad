/*
 * metrics.c - what the daemon counts, rendered in the Prometheus text
 * format (version 0.0.4) for GET /metrics.
 *
 * Per function (labels tenant, function):
 *   mignificent_invocations_total{status}      by HTTP status of the answer
 *   mignificent_cold_starts_total              invocations that started
 *   mignificent_warm_starts_total              ... or reused an instance
 *   mignificent_lukewarm_starts_total          ... a swapped-out one (also
 *                                              counted as warm)
 *   mignificent_invocation_duration_seconds    histogram: at the gateway
 *   mignificent_invocation_queued_seconds      histogram: waiting for one
 *   mignificent_cold_start_seconds             histogram: cold ones only
 *   mignificent_invocation_run_seconds         histogram: in the function
 *   mignificent_swap_in_seconds                histogram: lukewarm ones only
 * Per partition (labels partition, gpu, profile), from d->devices:
 *   mignificent_partition_memory_bytes, _memory_reserved_bytes,
 *   mignificent_partition_instances, mignificent_partition_present,
 *   from the partition's arbiter: mignificent_partition_sharing_model
 *   (label model), _gpu_turns_total, _gpu_turn_waiters,
 *   _gpu_held_seconds_total; from its pool of pre-initialized GPU
 *   servers: mignificent_partition_preinitialized_servers (ready),
 *   _preinitialized_servers_starting, _preinitialized_server_failures_total
 * Per node, from the instances (lukewarm functions):
 *   mignificent_swaps_total{direction}, mignificent_swap_bytes_total and
 *   mignificent_swap_seconds_total{direction}, mignificent_swap_failures_total,
 *   mignificent_lukewarm_instances, mignificent_lukewarm_bytes (host memory
 *   they hold), mignificent_lukewarm_stopped_total (over the host limit),
 *   mignificent_swap_pool_bytes, mignificent_swap_pools_freed_total
 *
 * metrics_invocation() runs once per invocation on the hot path: a series
 * is found under a read lock (a write lock only the first time a function
 * is seen) and updated under its own mutex, so invocations of different
 * functions never contend.  Series are never removed (Prometheus counters
 * must not go backwards); their number is capped so that a tenant cannot
 * grow the daemon's memory without bound by deploying names: past the cap,
 * new functions share their tenant's function="_other" series.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arbiter.h"
#include "daemon.h"

#define NBUCKETS 18
#define TABLE 1024u
#define MAX_SERIES 8192
#define MAX_STATUSES 16
#define OTHER "_other"

/* Upper bounds in microseconds: 100 us .. 60 s. */
static const uint64_t bounds_us[NBUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
	500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

struct hist {
	uint64_t b[NBUCKETS + 1];       /* per bucket, not cumulative; +Inf */
	uint64_t count, sum_us;
};

enum { H_TOTAL, H_QUEUED, H_COLD, H_RUN, H_SWAP_IN, NHIST };

static const struct {
	const char *name, *help;
} hist_info[NHIST] = {
	[H_TOTAL] = { "mignificent_invocation_duration_seconds",
		      "Time from the request to the answer, at the gateway." },
	[H_QUEUED] = { "mignificent_invocation_queued_seconds",
		       "Time an invocation waited for an instance." },
	[H_COLD] = { "mignificent_cold_start_seconds",
		     "Time to start an instance, for cold invocations." },
	[H_RUN] = { "mignificent_invocation_run_seconds",
		    "Time in the function, for invocations an instance ran." },
	[H_SWAP_IN] = { "mignificent_swap_in_seconds",
			"Time to bring a lukewarm instance's GPU memory back, for "
			"invocations that found it swapped out." },
};

struct series {
	struct series *next;
	uint32_t hash;
	char tenant[64];
	char function[128];
	pthread_mutex_t lock;
	struct {
		int status;
		uint64_t n;
	} st[MAX_STATUSES];
	int nst;
	uint64_t cold, warm, lukewarm;
	struct hist h[NHIST];
};

static struct {
	pthread_rwlock_t lock;
	struct series *t[TABLE];
	int n;
} m = { .lock = PTHREAD_RWLOCK_INITIALIZER };

static uint32_t hash_of(const char *tenant, const char *fn)
{
	uint32_t h = 2166136261u;

	for (; *tenant; tenant++)
		h = (h ^ (unsigned char)*tenant) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (; *fn; fn++)
		h = (h ^ (unsigned char)*fn) * 16777619u;
	return h;
}

static struct series *find(const char *tenant, const char *fn, uint32_t h)
{
	struct series *s;

	for (s = m.t[h % TABLE]; s; s = s->next)
		if (s->hash == h && !strcmp(s->function, fn) &&
		    !strcmp(s->tenant, tenant))
			return s;
	return NULL;
}

/* The series of @tenant's @fn, made if need be; NULL if out of memory. */
static struct series *series_get(const char *tenant, const char *fn)
{
	uint32_t h = hash_of(tenant, fn);
	struct series *s;

	pthread_rwlock_rdlock(&m.lock);
	s = find(tenant, fn, h);
	pthread_rwlock_unlock(&m.lock);
	if (s)
		return s;

	pthread_rwlock_wrlock(&m.lock);
	s = find(tenant, fn, h);
	if (!s && m.n >= MAX_SERIES && strcmp(fn, OTHER)) {
		fn = OTHER;
		h = hash_of(tenant, fn);
		s = find(tenant, fn, h);
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (s) {
			s->hash = h;
			snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
			snprintf(s->function, sizeof(s->function), "%s", fn);
			pthread_mutex_init(&s->lock, NULL);
			s->next = m.t[h % TABLE];
			m.t[h % TABLE] = s;
			m.n++;
		}
	}
	pthread_rwlock_unlock(&m.lock);
	return s;
}

static void observe(struct hist *h, uint64_t us)
{
	int i = 0;

	while (i < NBUCKETS && us > bounds_us[i])
		i++;
	h->b[i]++;
	h->count++;
	h->sum_us += us;
}

void metrics_invocation(const char *tenant, const char *function,
			int http_status, int cold, uint64_t total_us,
			uint64_t queued_us, uint64_t cold_us, uint64_t run_us,
			uint64_t swap_in_us)
{
	struct series *s = series_get(tenant, function);
	int i;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nst && s->st[i].status != http_status; i++)
		;
	if (i == s->nst && i < MAX_STATUSES) {
		s->st[i].status = http_status;
		s->nst++;
	}
	if (i == MAX_STATUSES) /* odd statuses: fold into the last slot */
		i--;
	s->st[i].n++;
	observe(&s->h[H_TOTAL], total_us);
	if (cold >= 0) { /* an instance took it */
		observe(&s->h[H_QUEUED], queued_us);
		observe(&s->h[H_RUN], run_us);
		if (cold) {
			s->cold++;
			observe(&s->h[H_COLD], cold_us);
		} else {
			s->warm++;
		}
		if (swap_in_us) {
			s->lukewarm++;
			observe(&s->h[H_SWAP_IN], swap_in_us);
		}
	}
	pthread_mutex_unlock(&s->lock);
}

/* --- rendering ---------------------------------------------------------- */

/* A label value, escaped as the text format wants. */
static void label(FILE *o, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(o, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", o);
		else
			fputc(*v, o);
	}
}

static void fn_labels(FILE *o, const struct series *s)
{
	fputs("tenant=\"", o);
	label(o, s->tenant);
	fputs("\",function=\"", o);
	label(o, s->function);
	fputc('"', o);
}

static void seconds(FILE *o, uint64_t us)
{
	fprintf(o, "%llu.%06llu", (unsigned long long)(us / 1000000),
		(unsigned long long)(us % 1000000));
}

static void render_hist(FILE *o, const char *name, const struct series *s,
			const struct hist *h)
{
	uint64_t cum = 0;
	int i;

	for (i = 0; i < NBUCKETS; i++) {
		cum += h->b[i];
		fprintf(o, "%s_bucket{", name);
		fn_labels(o, s);
		fputs(",le=\"", o);
		seconds(o, bounds_us[i]);
		fprintf(o, "\"} %llu\n", (unsigned long long)cum);
	}
	fprintf(o, "%s_bucket{", name);
	fn_labels(o, s);
	fprintf(o, ",le=\"+Inf\"} %llu\n", (unsigned long long)h->count);
	fprintf(o, "%s_sum{", name);
	fn_labels(o, s);
	fputs("} ", o);
	seconds(o, h->sum_us);
	fprintf(o, "\n%s_count{", name);
	fn_labels(o, s);
	fprintf(o, "} %llu\n", (unsigned long long)h->count);
}

/* A consistent copy of every series of @tenant (all if NULL). */
static struct series *snapshot(const char *tenant, int *n)
{
	struct series *out, *s;
	unsigned int b;
	int k = 0;

	pthread_rwlock_rdlock(&m.lock);
	out = calloc(m.n ? (size_t)m.n : 1, sizeof(*out));
	for (b = 0; out && b < TABLE; b++) {
		for (s = m.t[b]; s; s = s->next) {
			if (tenant && strcmp(tenant, s->tenant))
				continue;
			pthread_mutex_lock(&s->lock);
			out[k] = *s;
			pthread_mutex_unlock(&s->lock);
			k++;
		}
	}
	pthread_rwlock_unlock(&m.lock);
	*n = k;
	return out;
}

static int by_name(const void *a, const void *b)
{
	const struct series *x = a, *y = b;
	int c = strcmp(x->tenant, y->tenant);

	return c ? c : strcmp(x->function, y->function);
}

/* A per-function counter: the uint64_t at @field of each series. */
static void render_starts(FILE *o, const struct series *v, int n, const char *name,
			  const char *help, size_t field)
{
	fprintf(o, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (int i = 0; i < n; i++) {
		uint64_t c;

		memcpy(&c, (const char *)&v[i] + field, sizeof(c));
		fprintf(o, "%s{", name);
		fn_labels(o, &v[i]);
		fprintf(o, "} %llu\n", (unsigned long long)c);
	}
}

static void render_functions(FILE *o, const char *tenant)
{
	struct series *v;
	int n, i, j, h;

	v = snapshot(tenant, &n);
	if (!v)
		return;
	qsort(v, (size_t)n, sizeof(*v), by_name);

	fputs("# HELP mignificent_invocations_total Invocations, by the HTTP "
	      "status of their answer.\n"
	      "# TYPE mignificent_invocations_total counter\n", o);
	for (i = 0; i < n; i++)
		for (j = 0; j < v[i].nst; j++) {
			fputs("mignificent_invocations_total{", o);
			fn_labels(o, &v[i]);
			fprintf(o, ",status=\"%d\"} %llu\n", v[i].st[j].status,
				(unsigned long long)v[i].st[j].n);
		}
	render_starts(o, v, n, "mignificent_cold_starts_total",
		      "Invocations that started an instance.", offsetof(struct series, cold));
	render_starts(o, v, n, "mignificent_warm_starts_total",
		      "Invocations served by an instance already running.",
		      offsetof(struct series, warm));
	render_starts(o, v, n, "mignificent_lukewarm_starts_total",
		      "Invocations served by an instance whose GPU memory was swapped out (also warm starts).",
		      offsetof(struct series, lukewarm));
	for (h = 0; h < NHIST; h++) {
		fprintf(o, "# HELP %s %s\n# TYPE %s histogram\n",
			hist_info[h].name, hist_info[h].help, hist_info[h].name);
		for (i = 0; i < n; i++)
			render_hist(o, hist_info[h].name, &v[i], &v[i].h[h]);
	}
	free(v);
}

/* {partition, gpu, profile[, model]} of @p; @model NULL for none. */
static void part_labels(FILE *o, const struct mig_partition *p, const char *model)
{
	fputs("{partition=\"", o);
	label(o, p->uuid);
	fprintf(o, "\",gpu=\"%d\",profile=\"", p->gpu_index);
	label(o, p->profile);
	if (model) {
		fputs("\",model=\"", o);
		label(o, model);
	}
	fputs("\"}", o);
}

static void render_partitions(FILE *o, struct mig_devices *d)
{
	static const char *const names[] = {
		"mignificent_partition_memory_bytes",
		"mignificent_partition_memory_reserved_bytes",
		"mignificent_partition_instances",
		"mignificent_partition_present",
	};
	static const char *const help[] = {
		"GPU memory of the partition.",
		"GPU memory reserved by the instances on the partition.",
		"Instances on the partition.",
		"1 if the last discovery found the partition.",
	};
	int k, i;

	pthread_mutex_lock(&d->lock);
	for (k = 0; k < 4; k++) {
		fprintf(o, "# HELP %s %s\n# TYPE %s gauge\n", names[k], help[k],
			names[k]);
		for (i = 0; i < d->n; i++) {
			const struct mig_partition *p = &d->p[i];
			unsigned long long v = k == 0 ? p->mem_total :
					       k == 1 ? p->mem_reserved :
					       k == 2 ? (unsigned long long)p->instances :
							(unsigned long long)p->present;

			fputs(names[k], o);
			part_labels(o, p, NULL);
			fprintf(o, " %llu\n", v);
		}
	}
	pthread_mutex_unlock(&d->lock);
}

/* A copy of the partitions, so that the devices lock is not held while
 * the instances lock is taken (instances.c takes them the other way
 * round).  NULL when out of memory. */
static struct mig_partition *partitions_copy(struct mig_devices *d, int *n)
{
	struct mig_partition *copy;

	pthread_mutex_lock(&d->lock);
	*n = d->n;
	copy = calloc((size_t)(*n ? *n : 1), sizeof(*copy));
	if (copy)
		memcpy(copy, d->p, (size_t)*n * sizeof(*copy));
	pthread_mutex_unlock(&d->lock);
	return copy;
}

/* What instances.c knows of each partition: its arbiter
 * (instances_gpu_turns) and its pre-initialized GPU servers
 * (instances_server_pool), read once per partition. */
struct part_state {
	bool turns_known, pool_known;
	struct mig_gpu_turns turns;
	struct mig_server_pool pool;
};

static void render_partition_state(FILE *o, struct mig_daemon *md)
{
	static const struct {
		const char *name, *type, *help;
	} series[] = {
		{ "mignificent_partition_sharing_model", "gauge",
		  "1, labelled with the partition's sharing model." },
		{ "mignificent_partition_gpu_turns_total", "counter",
		  "Turns on the GPU given to instances (exclusive sharing models)." },
		{ "mignificent_partition_gpu_turn_waiters", "gauge",
		  "Instances waiting for their turn on the GPU now." },
		{ "mignificent_partition_gpu_held_seconds_total", "counter",
		  "Time instances held their turns on the GPU (ended turns)." },
		{ "mignificent_partition_preinitialized_servers", "gauge",
		  "GPU servers started and initialized ahead of cold starts, not taken." },
		{ "mignificent_partition_preinitialized_servers_starting", "gauge",
		  "GPU servers being started ahead of cold starts." },
		{ "mignificent_partition_preinitialized_server_failures_total", "counter",
		  "GPU servers started ahead of cold starts that failed (the daemon "
		  "retries with a growing delay; GET /v1/devices says why)." },
	};
	enum { MODEL, TURNS, WAITERS, HELD, READY, STARTING, FAILURES, NSERIES };
	_Static_assert(sizeof(series) / sizeof(series[0]) == NSERIES, "one entry each");
	struct mig_partition *copy;
	struct part_state *st;
	int n;

	copy = partitions_copy(&md->devices, &n);
	st = copy ? calloc((size_t)(n ? n : 1), sizeof(*st)) : NULL;
	if (!st) {
		free(copy);
		return;
	}
	for (int i = 0; i < n; i++) {
		st[i].turns_known = !instances_gpu_turns(md, copy[i].uuid, &st[i].turns);
		st[i].pool_known = !instances_server_pool(md, copy[i].uuid, &st[i].pool);
	}
	for (int k = 0; k < NSERIES; k++) {
		fprintf(o, "# HELP %s %s\n# TYPE %s %s\n", series[k].name, series[k].help,
			series[k].name, series[k].type);
		for (int i = 0; i < n; i++) {
			const struct mig_gpu_turns *t = &st[i].turns;
			const struct mig_server_pool *sp = &st[i].pool;

			if (!(k < READY ? st[i].turns_known : st[i].pool_known))
				continue;
			fputs(series[k].name, o);
			part_labels(o, &copy[i], k == MODEL ? mig_sharing_name(t->model) : NULL);
			if (k == HELD)
				fprintf(o, " %.6f\n", t->held_ns / 1e9);
			else
				fprintf(o, " %llu\n",
					k == MODEL ? 1ull :
					k == TURNS ? t->grants :
					k == WAITERS ? (unsigned long long)t->waiting :
					k == READY ? (unsigned long long)sp->ready :
					k == STARTING ? (unsigned long long)sp->starting :
							sp->failures);
		}
	}
	free(st);
	free(copy);
}

/* Lukewarm functions, node-wide (instances_swap_stats). */
static void render_swaps(FILE *o, struct mig_daemon *md)
{
	struct mig_swap_stats st;

	instances_swap_stats(md, &st);
	fputs("# HELP mignificent_swaps_total Swaps of an instance's GPU memory "
	      "to host memory (out) and back (in).\n"
	      "# TYPE mignificent_swaps_total counter\n", o);
	fprintf(o, "mignificent_swaps_total{direction=\"out\"} %llu\n"
		   "mignificent_swaps_total{direction=\"in\"} %llu\n",
		(unsigned long long)st.outs, (unsigned long long)st.ins);
	fputs("# HELP mignificent_swap_bytes_total GPU memory moved by swaps.\n"
	      "# TYPE mignificent_swap_bytes_total counter\n", o);
	fprintf(o, "mignificent_swap_bytes_total{direction=\"out\"} %llu\n"
		   "mignificent_swap_bytes_total{direction=\"in\"} %llu\n",
		(unsigned long long)st.bytes_out, (unsigned long long)st.bytes_in);
	fputs("# HELP mignificent_swap_seconds_total Time the GPU servers spent "
	      "copying swapped memory.\n"
	      "# TYPE mignificent_swap_seconds_total counter\n", o);
	fprintf(o, "mignificent_swap_seconds_total{direction=\"out\"} %.6f\n"
		   "mignificent_swap_seconds_total{direction=\"in\"} %.6f\n",
		st.ns_out / 1e9, st.ns_in / 1e9);
	fprintf(o, "# HELP mignificent_swap_failures_total Swaps a GPU server "
		   "could not do or did not answer.\n"
		   "# TYPE mignificent_swap_failures_total counter\n"
		   "mignificent_swap_failures_total %llu\n"
		   "# HELP mignificent_lukewarm_instances Instances whose GPU memory "
		   "is in host memory now.\n"
		   "# TYPE mignificent_lukewarm_instances gauge\n"
		   "mignificent_lukewarm_instances %u\n"
		   "# HELP mignificent_lukewarm_bytes Host memory holding lukewarm "
		   "instances' GPU memory.\n"
		   "# TYPE mignificent_lukewarm_bytes gauge\n"
		   "mignificent_lukewarm_bytes %llu\n"
		   "# HELP mignificent_lukewarm_stopped_total Lukewarm instances "
		   "stopped to keep under the node's host memory limit.\n"
		   "# TYPE mignificent_lukewarm_stopped_total counter\n"
		   "mignificent_lukewarm_stopped_total %llu\n"
		   "# HELP mignificent_swap_pool_bytes Pinned host memory the GPU "
		   "servers keep for swaps (lukewarm instances' memory included).\n"
		   "# TYPE mignificent_swap_pool_bytes gauge\n"
		   "mignificent_swap_pool_bytes %llu\n"
		   "# HELP mignificent_swap_pools_freed_total Swap pools of instances "
		   "not swapped out freed to keep under the limit.\n"
		   "# TYPE mignificent_swap_pools_freed_total counter\n"
		   "mignificent_swap_pools_freed_total %llu\n",
		(unsigned long long)st.failures, st.lukewarm,
		(unsigned long long)st.lukewarm_bytes, (unsigned long long)st.stopped,
		(unsigned long long)st.pool_bytes, (unsigned long long)st.pools_freed);
}

char *metrics_render_for(struct mig_daemon *d, const char *tenant)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&buf, &len);

	if (!o)
		return NULL;
	render_functions(o, tenant);
	if (d) {
		render_partitions(o, &d->devices);
		render_partition_state(o, d);
		render_swaps(o, d);
	}
	if (fclose(o)) {
		free(buf);
		return NULL;
	}
	return buf;
}

char *metrics_render(struct mig_daemon *d)
{
	return metrics_render_for(d, NULL);
}

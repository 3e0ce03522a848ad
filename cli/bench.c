/*
 * bench.c - `mig bench`: concurrent clients invoking one or more functions,
 * per-request latencies to CSV, and a summary table.
 *
 * Each client is a thread with its own keep-alive connection; client i
 * invokes function i mod F, so "a,b -c 4" puts two clients on each.  Every
 * client first sends its warm-up requests (not measured), then all wait
 * at a start gate and start measuring together, so the measured phase sees
 * warm instances and full concurrency from its first request.  Latency is
 * taken around the whole HTTP exchange on the client's monotonic clock.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "http_client.h"

/* Timing headers of the daemon's invoke answers (see docs/openapi.yaml). */
#define H_COLD "X-Mig-Cold"
#define H_INSTANCE "X-Mig-Instance"
#define H_QUEUED "X-Mig-Queued-Us"
#define H_COLD_START "X-Mig-Cold-Start-Us"
#define H_RUN "X-Mig-Run-Us"
#define H_SWAP_IN "X-Mig-Swap-In-Us"

#define MAX_FUNCS 16

struct sample {
	uint64_t start_ns;      /* since the measured phase began */
	uint64_t lat_ns;
	int status;             /* HTTP status, 0: no answer */
	int cold;               /* -1: not reported */
	int64_t queued_us, cold_us, run_us, swap_us; /* -1: not reported */
	char instance[40];
};

struct client {
	pthread_t tid;
	int id;
	int fn;                 /* index into bench.funcs */
	struct sample *s;
	int done;               /* measured requests completed */
	int warm_errors;
	char first_error[600];
};

static struct {
	struct mig_client_opts co;
	char *funcs[MAX_FUNCS];
	char *paths[MAX_FUNCS];
	int nfuncs;
	int clients, requests, warmup;
	const void *data;
	size_t len;
	const char *ctype;
	/* The start gate: clients count in when warm, wait for "go". */
	pthread_mutex_t gate;
	pthread_cond_t gate_cv;
	int warm, go;
	uint64_t t0;            /* start of the measured phase */
	atomic_int completed, errors, finished;
	volatile sig_atomic_t stop;
} bench;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void on_sigint(int sig)
{
	(void)sig;
	bench.stop = 1;
}

static int64_t header_num(const struct mig_http_response *r, const char *name)
{
	char v[64];

	if (mig_http_header(r, name, v, sizeof(v)) || !*v)
		return -1;
	return strtoll(v, NULL, 10);
}

static void record(struct sample *s, const struct mig_http_response *r)
{
	char v[64];

	s->status = (int)r->status;
	s->cold = -1;
	if (!mig_http_header(r, H_COLD, v, sizeof(v)) && *v)
		s->cold = !strcmp(v, "1") || !strcasecmp(v, "true");
	s->queued_us = header_num(r, H_QUEUED);
	s->cold_us = header_num(r, H_COLD_START);
	s->run_us = header_num(r, H_RUN);
	s->swap_us = header_num(r, H_SWAP_IN);
	mig_http_header(r, H_INSTANCE, s->instance, sizeof(s->instance));
}

static void note_error(struct client *c, const struct mig_http_response *r)
{
	if (c->first_error[0])
		return;
	if (!r->status)
		snprintf(c->first_error, sizeof(c->first_error), "%s", r->error);
	else
		snprintf(c->first_error, sizeof(c->first_error), "HTTP %ld: %.*s",
			 r->status, (int)strcspn(r->body, "\n"), r->body);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct mig_http *h = mig_http_new(&bench.co);
	const char *path = bench.paths[c->fn];
	struct mig_http_response r;
	uint64_t t0, t;
	int i;

	for (i = 0; h && i < bench.warmup && !bench.stop; i++) {
		if (mig_http_request(h, "POST", path, bench.ctype, bench.data,
				     bench.len, &r) ||
		    r.status < 200 || r.status > 299) {
			c->warm_errors++;
			note_error(c, &r);
		}
		mig_http_response_free(&r);
	}
	pthread_mutex_lock(&bench.gate);
	bench.warm++;
	pthread_cond_broadcast(&bench.gate_cv);
	while (!bench.go)
		pthread_cond_wait(&bench.gate_cv, &bench.gate);
	t0 = bench.t0;
	pthread_mutex_unlock(&bench.gate);
	for (i = 0; h && i < bench.requests && !bench.stop; i++) {
		struct sample *s = &c->s[i];
		int err;

		t = now_ns();
		err = mig_http_request(h, "POST", path, bench.ctype, bench.data,
				       bench.len, &r);
		s->lat_ns = now_ns() - t;
		s->start_ns = t - t0;
		record(s, &r);
		if (err || r.status < 200 || r.status > 299) {
			atomic_fetch_add(&bench.errors, 1);
			note_error(c, &r);
		}
		mig_http_response_free(&r);
		c->done = i + 1;
		atomic_fetch_add(&bench.completed, 1);
	}
	if (!h)
		snprintf(c->first_error, sizeof(c->first_error),
			 "cannot start an HTTP client");
	mig_http_free(h);
	atomic_fetch_add(&bench.finished, 1);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted @v. */
static double pct(const uint64_t *v, size_t n, double q)
{
	size_t k = (size_t)ceil(q * (double)n);

	return (double)v[k ? k - 1 : 0];
}

/* One row of the summary: function @fn, or all when @fn is -1. */
static void summary_row(struct client *cl, int fn, const char *label)
{
	uint64_t *v, first = UINT64_MAX, last = 0;
	size_t n = 0, cap = 0, errors = 0, cold = 0;
	int i, k, nclients = 0, cold_known = 0;
	double sum = 0, sq = 0, mean, sd, span;

	for (i = 0; i < bench.clients; i++)
		if (fn < 0 || cl[i].fn == fn) {
			cap += (size_t)cl[i].done;
			nclients++;
		}
	v = malloc((cap ? cap : 1) * sizeof(*v));
	if (!v)
		return;
	for (i = 0; i < bench.clients; i++) {
		if (fn >= 0 && cl[i].fn != fn)
			continue;
		for (k = 0; k < cl[i].done; k++) {
			const struct sample *s = &cl[i].s[k];

			if (s->status < 200 || s->status > 299) {
				errors++;
				continue;
			}
			v[n++] = s->lat_ns;
			if (s->start_ns < first)
				first = s->start_ns;
			if (s->start_ns + s->lat_ns > last)
				last = s->start_ns + s->lat_ns;
			if (s->cold >= 0) {
				cold_known = 1;
				cold += (size_t)s->cold;
			}
		}
	}
	printf("%-24s %7d %9zu %6zu", label, nclients, n + errors, errors);
	if (!n) {
		printf(" %9s %9s %9s %9s %9s %10s %5s\n", "-", "-", "-", "-",
		       "-", "-", "-");
		free(v);
		return;
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	for (k = 0; k < (int)n; k++)
		sum += (double)v[k];
	mean = sum / (double)n;
	for (k = 0; k < (int)n; k++)
		sq += ((double)v[k] - mean) * ((double)v[k] - mean);
	sd = n > 1 ? sqrt(sq / (double)(n - 1)) : 0;
	span = (double)(last - first) / 1e9;
	printf(" %9.3f %9.3f %9.3f %9.3f %9.3f %10.1f", mean / 1e6, sd / 1e6,
	       pct(v, n, 0.50) / 1e6, pct(v, n, 0.99) / 1e6,
	       (double)v[n - 1] / 1e6, span > 0 ? (double)n / span : 0.0);
	if (cold_known)
		printf(" %5zu\n", cold);
	else
		printf(" %5s\n", "-");
	free(v);
}

static int write_csv(const char *path, struct client *cl)
{
	FILE *f = fopen(path, "w");
	int i, k;

	if (!f) {
		fprintf(stderr, "mig bench: cannot write %s: %m\n", path);
		return -1;
	}
	fprintf(f, "function,client,request,start_us,latency_us,status,cold,"
		   "instance,queued_us,cold_start_us,run_us,swap_in_us\n");
	for (i = 0; i < bench.clients; i++)
		for (k = 0; k < cl[i].done; k++) {
			const struct sample *s = &cl[i].s[k];

			fprintf(f, "%s,%d,%d,%.3f,%.3f,%d,", bench.funcs[cl[i].fn],
				i, k, s->start_ns / 1e3, s->lat_ns / 1e3,
				s->status);
			if (s->cold >= 0)
				fprintf(f, "%d", s->cold);
			/* Instance ids are ours: no commas or quotes to escape. */
			fprintf(f, ",%s,", strpbrk(s->instance, ",\"\n") ?
				"" : s->instance);
#define OPT(x, sep) \
	do { if ((x) >= 0) fprintf(f, "%lld", (long long)(x)); fputs(sep, f); } while (0)
			OPT(s->queued_us, ",");
			OPT(s->cold_us, ",");
			OPT(s->run_us, ",");
			OPT(s->swap_us, "\n");
#undef OPT
		}
	if (fclose(f)) {
		fprintf(stderr, "mig bench: cannot write %s: %m\n", path);
		return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mig bench FUNCTION[,FUNCTION2...] -c CLIENTS -n REQUESTS\n"
		"                 [--warmup N] [--csv FILE] [--data STRING | --file FILE]\n"
		"                 [--content-type T] [--timeout-ms N] [--server URL] [--token T]\n"
		"  CLIENTS concurrent clients (client i invokes function i mod F), each\n"
		"  sending N warm-up requests, then REQUESTS measured ones, one at a time\n"
		"  on one keep-alive connection.  Latencies in ms; throughput in\n"
		"  successful requests per second.\n");
}

int mig_cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "clients", required_argument, NULL, 'c' },
		{ "requests", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "csv", required_argument, NULL, 'o' },
		{ "data", required_argument, NULL, 'd' },
		{ "file", required_argument, NULL, 'f' },
		{ "content-type", required_argument, NULL, 't' },
		{ "timeout-ms", required_argument, NULL, 'T' + 256 },
		{ "server", required_argument, NULL, 'S' },
		{ "token", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *csv = NULL, *file = NULL, *data = NULL;
	struct sigaction sa = { .sa_handler = on_sigint }, old;
	struct client *cl = NULL;
	char *list = NULL, *tok, *save, *fdata = NULL;
	uint64_t last_print = 0, t_begin = 0, t_end;
	int c, i, ret = 2, tty = isatty(STDERR_FILENO), total, started;

	memset(&bench, 0, sizeof(bench));
	bench.co.timeout_ms = 300000;
	bench.clients = 1;
	bench.requests = 100;
	bench.ctype = "application/octet-stream";
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:n:d:f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			bench.clients = atoi(optarg);
			break;
		case 'n':
			bench.requests = atoi(optarg);
			break;
		case 'w':
			bench.warmup = atoi(optarg);
			break;
		case 'o':
			csv = optarg;
			break;
		case 'd':
			data = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 't':
			bench.ctype = optarg;
			break;
		case 'T' + 256:
			bench.co.timeout_ms = atol(optarg);
			break;
		case 'S':
			bench.co.server = optarg;
			break;
		case 'T':
			bench.co.token = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "mig bench: name the function(s) to invoke\n");
		usage(stderr);
		return 2;
	}
	if (bench.clients < 1 || bench.clients > 4096 || bench.requests < 1 ||
	    bench.warmup < 0 || (data && file)) {
		fprintf(stderr, "mig bench: %s\n", data && file ?
			"--data or --file, not both" :
			"-c is 1 to 4096 clients, -n 1 or more requests, "
			"--warmup 0 or more");
		return 2;
	}
	list = strdup(argv[optind]);
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *esc;

		if (bench.nfuncs == MAX_FUNCS) {
			fprintf(stderr, "mig bench: at most %d functions\n",
				MAX_FUNCS);
			goto out;
		}
		esc = mig_http_escape(tok);
		bench.funcs[bench.nfuncs] = tok;
		if (!esc || asprintf(&bench.paths[bench.nfuncs],
				     "/v1/functions/%s/invoke", esc) < 0) {
			free(esc);
			goto out;
		}
		free(esc);
		bench.nfuncs++;
	}
	if (!bench.nfuncs) {
		fprintf(stderr, "mig bench: name the function(s) to invoke\n");
		goto out;
	}
	ret = 1;
	if (file) {
		fdata = mig_read_file("bench", file, &bench.len);
		if (!fdata)
			goto out;
		bench.data = fdata;
	} else if (data) {
		bench.data = data;
		bench.len = strlen(data);
	}
	if (mig_http_global_init())
		goto out;
	cl = calloc((size_t)bench.clients, sizeof(*cl));
	if (!cl)
		goto oom;
	for (i = 0; i < bench.clients; i++) {
		cl[i].id = i;
		cl[i].fn = i % bench.nfuncs;
		cl[i].s = calloc((size_t)bench.requests, sizeof(struct sample));
		if (!cl[i].s)
			goto oom;
	}
	total = bench.clients * bench.requests;
	pthread_mutex_init(&bench.gate, NULL);
	pthread_cond_init(&bench.gate_cv, NULL);
	sigaction(SIGINT, &sa, &old);
	for (started = 0; started < bench.clients; started++)
		if (pthread_create(&cl[started].tid, NULL, client_main,
				   &cl[started])) {
			fprintf(stderr, "mig bench: cannot start client thread "
				"%d: lower -c\n", started);
			bench.stop = 1; /* the started ones skip to the end */
			break;
		}
	if (bench.warmup && tty && !bench.stop)
		fprintf(stderr, "bench: warming up (%d requests per client)...",
			bench.warmup);
	/* Go when every client is warm: the measured phase starts at once. */
	pthread_mutex_lock(&bench.gate);
	while (bench.warm < started)
		pthread_cond_wait(&bench.gate_cv, &bench.gate);
	bench.t0 = t_begin = last_print = now_ns();
	bench.go = 1;
	pthread_cond_broadcast(&bench.gate_cv);
	pthread_mutex_unlock(&bench.gate);
	if (bench.warmup && tty)
		fprintf(stderr, "\r\033[K");
	while (atomic_load(&bench.finished) < started) {
		uint64_t t = now_ns();

		if (t - last_print >= (tty ? 200000000ull : 5000000000ull)) {
			int done = atomic_load(&bench.completed);
			double el = (double)(t - t_begin) / 1e9;

			fprintf(stderr, "%sbench: %d/%d requests  %d errors  "
				"%.0f req/s  %.1f s%s", tty ? "\r\033[K" : "",
				done, total, atomic_load(&bench.errors),
				el > 0 ? done / el : 0.0, el, tty ? "" : "\n");
			last_print = t;
		}
		usleep(20000);
	}
	for (i = 0; i < started; i++)
		pthread_join(cl[i].tid, NULL);
	t_end = now_ns();
	sigaction(SIGINT, &old, NULL);
	if (tty)
		fprintf(stderr, "\r\033[K");
	fprintf(stderr, "bench: %d requests by %d clients in %.3f s%s\n",
		atomic_load(&bench.completed), started,
		(double)(t_end - t_begin) / 1e9,
		bench.stop ? " (interrupted)" : "");
	for (i = 0; i < bench.clients; i++)
		if (cl[i].first_error[0] || cl[i].warm_errors) {
			fprintf(stderr, "bench: client %d (%s): %d warm-up "
				"errors; first error: %s\n", i,
				bench.funcs[cl[i].fn], cl[i].warm_errors,
				cl[i].first_error[0] ? cl[i].first_error : "-");
			break; /* one is enough to see what is wrong */
		}

	printf("%-24s %7s %9s %6s %9s %9s %9s %9s %9s %10s %5s\n", "FUNCTION",
	       "CLIENTS", "REQUESTS", "ERRORS", "MEAN ms", "STD ms", "P50 ms",
	       "P99 ms", "MAX ms", "REQ/S", "COLD");
	for (i = 0; i < bench.nfuncs; i++)
		summary_row(cl, i, bench.funcs[i]);
	if (bench.nfuncs > 1)
		summary_row(cl, -1, "(all)");
	ret = atomic_load(&bench.errors) || bench.stop ? 1 : 0;
	if (csv && write_csv(csv, cl))
		ret = 1;
	else if (csv)
		fprintf(stderr, "bench: per-request latencies in %s\n", csv);
	pthread_cond_destroy(&bench.gate_cv);
	pthread_mutex_destroy(&bench.gate);
	goto out;
oom:
	fprintf(stderr, "mig bench: out of memory for %d x %d samples\n",
		bench.clients, bench.requests);
out:
	if (cl)
		for (i = 0; i < bench.clients; i++)
			free(cl[i].s);
	free(cl);
	for (i = 0; i < bench.nfuncs; i++)
		free(bench.paths[i]);
	free(list);
	free(fdata);
	return ret;
}

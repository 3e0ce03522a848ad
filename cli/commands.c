/*
 * commands.c - the `mig` commands that talk to the node daemon over HTTP:
 * deploy, invoke, ls, logs, devices, kill, reload (bench is in bench.c).
 *
 * Every route the CLI uses is in the table below, so a change of the API
 * (docs/openapi.yaml) is a change of one place.  Answers are JSON; tables
 * are printed from whatever fields an answer has, so a daemon that adds a
 * field does not break `mig ls`, and one that lacks a field prints "-".
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "units.h"
#include "http_client.h"

/* The daemon's API, as the CLI uses it (docs/openapi.yaml). */
#define API_FUNCTIONS "/v1/functions"          /* GET: list */
#define API_FUNCTION "/v1/functions/%s"        /* PUT: deploy */
#define API_INVOKE "/v1/functions/%s/invoke"   /* POST: payload */
#define API_LOGS "/v1/functions/%s/logs"       /* GET */
#define API_INSTANCES "/v1/instances"          /* GET: list */
#define API_INSTANCE "/v1/instances/%s"        /* DELETE: kill */
#define API_DEVICES "/v1/devices"              /* GET: partitions */
#define API_RELOAD "/v1/devices/reload"        /* POST */

/* Options every daemon command takes (also before the command name). */
#define CLIENT_OPTIONS                                          \
	{ "server", required_argument, NULL, 'S' },             \
	{ "token", required_argument, NULL, 'T' },              \
	{ "help", no_argument, NULL, 'h' }

static int client_option(int c, struct mig_client_opts *o)
{
	switch (c) {
	case 'S':
		o->server = optarg;
		return 1;
	case 'T':
		o->token = optarg;
		return 1;
	default:
		return 0;
	}
}

static struct mig_http *connect_daemon(struct mig_client_opts *o)
{
	if (mig_http_global_init())
		return NULL;
	return mig_http_new(o);
}

/* --- answers and errors ------------------------------------------------- */

/*
 * Why the daemon said no: its JSON {"error": "..."} (or {"error":
 * {"message": ...}}, or {"message": ...}), else the body as text.
 */
static void print_http_error(const char *cmd, const struct mig_http *h,
				 const struct mig_http_response *r)
{
	const char *msg = NULL;
	json_t *j, *e;

	if (!r->status) {
		fprintf(stderr, "mig %s: %s\n", cmd, r->error);
		return;
	}
	j = json_loadb(r->body, r->len, 0, NULL);
	e = json_object_get(j, "error");
	if (json_is_string(e))
		msg = json_string_value(e);
	else if (json_is_string(json_object_get(e, "message")))
		msg = json_string_value(json_object_get(e, "message"));
	else if (json_is_string(json_object_get(j, "message")))
		msg = json_string_value(json_object_get(j, "message"));
	if (msg)
		fprintf(stderr, "mig %s: %s (HTTP %ld)\n", cmd, msg, r->status);
	else if (r->len)
		fprintf(stderr, "mig %s: HTTP %ld: %.*s%s", cmd, r->status,
			(int)(r->len > 2000 ? 2000 : r->len), r->body,
			r->body[r->len - 1] == '\n' ? "" : "\n");
	else
		fprintf(stderr, "mig %s: HTTP %ld from %s\n", cmd, r->status,
			mig_http_server(h));
	if (r->status == 401 || r->status == 403)
		fprintf(stderr, "mig %s: the daemon did not accept our token: "
			"pass --token, set MIG_TOKEN, or check %s/token "
			"(MIG_DATA_DIR)\n", cmd,
			getenv("MIG_DATA_DIR") ? getenv("MIG_DATA_DIR") :
						 MIG_DEFAULT_DATA_DIR);
	json_decref(j);
}

/*
 * @method @path with an optional body; on a 2xx answer returns 0 with @r
 * filled (caller frees), else prints why and returns 1.
 */
static int call(const char *cmd, struct mig_http *h, const char *method,
		const char *path, const char *ctype, const void *body,
		size_t len, struct mig_http_response *r)
{
	if (mig_http_request(h, method, path, ctype, body, len, r) ||
	    r->status < 200 || r->status > 299) {
		print_http_error(cmd, h, r);
		mig_http_response_free(r);
		return 1;
	}
	return 0;
}

/* Path with one escaped name in it; malloc'ed. */
static char *route(const char *fmt, const char *name)
{
	char *esc = mig_http_escape(name), *p = NULL;

	if (esc && asprintf(&p, fmt, esc) < 0)
		p = NULL;
	free(esc);
	if (!p) {
		fprintf(stderr, "mig: out of memory\n");
		exit(1);
	}
	return p;
}

/* --- tables ------------------------------------------------------------- */

enum fmt { F_STR, F_BYTES, F_BOOL, F_MS, F_POOL };

struct column {
	const char *title;
	const char *keys[4];    /* the first present one is shown */
	enum fmt fmt;
};

static void fmt_bytes(char *out, size_t n, double b)
{
	if (b >= 1024.0 * 1024 * 1024)
		snprintf(out, n, "%.1f GiB", b / (1024.0 * 1024 * 1024));
	else if (b >= 1024.0 * 1024)
		snprintf(out, n, "%.0f MiB", b / (1024.0 * 1024));
	else
		snprintf(out, n, "%.0f B", b);
}

static void cell(json_t *row, const struct column *c, char *out, size_t n)
{
	json_t *v = NULL;
	char *dump;
	int k;

	for (k = 0; k < 4 && c->keys[k] && !v; k++)
		v = json_object_get(row, c->keys[k]);
	if (!v || json_is_null(v)) {
		snprintf(out, n, "-");
		return;
	}
	if (c->fmt == F_POOL && json_is_object(v)) {
		/* server_pool (/v1/devices): its ready servers, or what is wrong */
		long long ready = json_integer_value(json_object_get(v, "ready"));

		if (json_is_string(json_object_get(v, "error")))
			snprintf(out, n, "failing (%lld tries)",
				 json_integer_value(json_object_get(v, "failures")));
		else if (!ready && json_integer_value(json_object_get(v, "starting")))
			snprintf(out, n, "starting");
		else
			snprintf(out, n, "%lld ready", ready);
	} else if (json_is_string(v)) {
		snprintf(out, n, "%s", *json_string_value(v) ?
				 json_string_value(v) : "-");
	} else if (json_is_boolean(v)) {
		snprintf(out, n, "%s", json_is_true(v) ? "yes" : "no");
	} else if (json_is_number(v) && c->fmt == F_BYTES) {
		fmt_bytes(out, n, json_number_value(v));
	} else if (json_is_number(v) && c->fmt == F_BOOL) {
		snprintf(out, n, "%s", json_number_value(v) ? "yes" : "no");
	} else if (json_is_number(v) && c->fmt == F_MS) {
		snprintf(out, n, "%g ms", json_number_value(v));
	} else if (json_is_integer(v)) {
		snprintf(out, n, "%lld", (long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		snprintf(out, n, "%g", json_real_value(v));
	} else {
		dump = json_dumps(v, JSON_COMPACT);
		snprintf(out, n, "%s", dump ? dump : "?");
		free(dump);
	}
}

/* The rows of an answer: an array, or the first array inside an object. */
static json_t *rows_of(json_t *j, const char *key)
{
	const char *k;
	json_t *v;

	if (json_is_array(j))
		return j;
	if (key && json_is_array(json_object_get(j, key)))
		return json_object_get(j, key);
	json_object_foreach(j, k, v)
		if (json_is_array(v))
			return v;
	return NULL;
}

#define MAX_COLS 12
#define CELL 128

static void print_table(json_t *rows, const struct column *cols, int ncols)
{
	int w[MAX_COLS], c;
	size_t i;
	char buf[CELL];
	json_t *row;

	for (c = 0; c < ncols; c++)
		w[c] = (int)strlen(cols[c].title);
	json_array_foreach(rows, i, row)
		for (c = 0; c < ncols; c++) {
			cell(row, &cols[c], buf, sizeof(buf));
			if ((int)strlen(buf) > w[c])
				w[c] = (int)strlen(buf);
		}
	for (c = 0; c < ncols; c++)
		printf("%-*s%s", c + 1 < ncols ? w[c] : 0, cols[c].title,
		       c + 1 < ncols ? "  " : "\n");
	json_array_foreach(rows, i, row)
		for (c = 0; c < ncols; c++) {
			cell(row, &cols[c], buf, sizeof(buf));
			printf("%-*s%s", c + 1 < ncols ? w[c] : 0, buf,
			       c + 1 < ncols ? "  " : "\n");
		}
}

/* GET @path and print its rows, then @notes(rows) if given; 0, or 1
 * after saying why. */
static int get_table(const char *cmd, struct mig_http *h, const char *path,
		     const char *key, const char *what,
		     const struct column *cols, int ncols,
		     void (*notes)(json_t *rows))
{
	struct mig_http_response r;
	json_error_t jerr;
	json_t *j, *rows;

	if (call(cmd, h, "GET", path, NULL, NULL, 0, &r))
		return 1;
	j = json_loadb(r.body, r.len, 0, &jerr);
	rows = rows_of(j, key);
	if (!rows) {
		fprintf(stderr, "mig %s: the daemon's answer to GET %s is not "
			"a list (%s); is %s a mignificentd of this version?\n",
			cmd, path, j ? "no array in it" : jerr.text,
			mig_http_server(h));
		json_decref(j);
		mig_http_response_free(&r);
		return 1;
	}
	if (!json_array_size(rows))
		printf("no %s\n", what);
	else
		print_table(rows, cols, ncols);
	if (notes)
		notes(rows);
	json_decref(j);
	mig_http_response_free(&r);
	return 0;
}

/* --- mig deploy ---------------------------------------------------------- */


/* The whole of @path, malloc'ed; NULL after saying why. */
void *mig_read_file(const char *cmd, const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t cap = 0, n = 0, got;

	if (!f) {
		fprintf(stderr, "mig %s: cannot open %s: %s\n", cmd, path,
			strerror(errno));
		return NULL;
	}
	do {
		if (n == cap) {
			char *np = realloc(p, cap ? 2 * cap : 65536);

			if (!np) {
				fprintf(stderr, "mig %s: %s is too large to "
					"read into memory\n", cmd, path);
				free(p);
				fclose(f);
				return NULL;
			}
			p = np;
			cap = cap ? 2 * cap : 65536;
		}
		got = fread(p + n, 1, cap - n, f);
		n += got;
	} while (got);
	if (ferror(f)) {
		fprintf(stderr, "mig %s: cannot read %s: %s\n", cmd, path,
			strerror(errno));
		free(p);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = n;
	return p;
}

static char *base64(const unsigned char *in, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		*o++ = tab[in[i] >> 2];
		*o++ = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = tab[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*o++ = tab[in[i + 2] & 63];
	}
	if (i < n) {
		*o++ = tab[in[i] >> 2];
		if (i + 1 < n) {
			*o++ = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*o++ = tab[(in[i + 1] & 15) << 2];
		} else {
			*o++ = tab[(in[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = 0;
	return out;
}

static void deploy_usage(FILE *f)
{
	fprintf(f,
		"usage: mig deploy NAME --language c|python --artifact FILE --handler H\n"
		"                  [--gpu-memory SIZE] [--profile P] [--timeout-ms N]\n"
		"                  [--keep-alive-ms N] [--max-instances N] [--env K=V]...\n"
		"                  [--python PATH] [--server URL] [--token T]\n"
		"  C: FILE is a shared object, H its handler symbol.\n"
		"  Python: FILE is a .py file or a .zip/.tar.gz package, H is module:function.\n"
		"  SIZE: 1GiB, 512M, 2G ... (powers of 1024).\n");
}

static int parse_uint(const char *cmd, const char *opt, const char *s,
		      json_int_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > 0xffffffffull) {
		fprintf(stderr, "mig %s: %s wants a number, not \"%s\"\n", cmd,
			opt, s);
		return -1;
	}
	*out = (json_int_t)v;
	return 0;
}

int mig_cmd_deploy(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "language", required_argument, NULL, 'l' },
		{ "artifact", required_argument, NULL, 'a' },
		{ "handler", required_argument, NULL, 'H' },
		{ "gpu-memory", required_argument, NULL, 'm' },
		{ "profile", required_argument, NULL, 'p' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "keep-alive-ms", required_argument, NULL, 'k' },
		{ "max-instances", required_argument, NULL, 'n' },
		{ "env", required_argument, NULL, 'e' },
		{ "python", required_argument, NULL, 'P' },
		CLIENT_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct mig_client_opts co = { .timeout_ms = 300000 };
	const char *lang = NULL, *artifact = NULL, *handler = NULL;
	json_t *req = json_object(), *env = json_array();
	struct mig_http_response r;
	struct mig_http *h = NULL;
	char *body = NULL, *b64 = NULL, *path = NULL, *data = NULL;
	const char *name;
	json_int_t num;
	uint64_t size;
	size_t len;
	int c, ret = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (client_option(c, &co))
			continue;
		switch (c) {
		case 'l':
			lang = optarg;
			break;
		case 'a':
			artifact = optarg;
			break;
		case 'H':
			handler = optarg;
			break;
		case 'm':
			if (mig_parse_size(optarg, &size)) {
				fprintf(stderr, "mig deploy: --gpu-memory \"%s\" is "
					"not a size: write e.g. 1GiB or 512MiB\n",
					optarg);
				goto out;
			}
			json_object_set_new(req, "gpu_memory",
					    json_integer((json_int_t)size));
			break;
		case 'p':
			json_object_set_new(req, "profile", json_string(optarg));
			break;
		case 't':
		case 'k':
		case 'n':
			if (parse_uint("deploy", c == 't' ? "--timeout-ms" :
					   c == 'k' ? "--keep-alive-ms" :
						      "--max-instances",
				       optarg, &num))
				goto out;
			json_object_set_new(req,
					    c == 't' ? "timeout_ms" :
					    c == 'k' ? "keep_alive_ms" :
						       "max_instances",
					    json_integer(num));
			break;
		case 'e':
			if (!strchr(optarg, '=') || *optarg == '=') {
				fprintf(stderr, "mig deploy: --env wants "
					"NAME=VALUE, not \"%s\"\n", optarg);
				goto out;
			}
			json_array_append_new(env, json_string(optarg));
			break;
		case 'P':
			json_object_set_new(req, "python", json_string(optarg));
			break;
		case 'h':
			deploy_usage(stdout);
			ret = 0;
			goto out;
		default:
			deploy_usage(stderr);
			goto out;
		}
	}
	if (optind + 1 != argc || !lang || !artifact || !handler) {
		if (optind + 1 != argc)
			fprintf(stderr, "mig deploy: name one function\n");
		else
			fprintf(stderr, "mig deploy: --language, --artifact and "
				"--handler are required\n");
		deploy_usage(stderr);
		goto out;
	}
	name = argv[optind];
	if (strcmp(lang, "c") && strcmp(lang, "python")) {
		fprintf(stderr, "mig deploy: --language is c or python, not "
			"\"%s\"\n", lang);
		goto out;
	}
	if (!strcmp(lang, "python") && !strchr(handler, ':')) {
		fprintf(stderr, "mig deploy: a Python handler is "
			"module:function, not \"%s\"\n", handler);
		goto out;
	}
	ret = 1;
	data = mig_read_file("deploy", artifact, &len);
	if (!data)
		goto out;
	b64 = base64((unsigned char *)data, len);
	if (!b64) {
		fprintf(stderr, "mig deploy: out of memory\n");
		goto out;
	}
	json_object_set_new(req, "name", json_string(name));
	json_object_set_new(req, "language", json_string(lang));
	json_object_set_new(req, "handler", json_string(handler));
	json_object_set_new(req, "artifact_name",
			    json_string(strrchr(artifact, '/') ?
					strrchr(artifact, '/') + 1 : artifact));
	json_object_set_new(req, "artifact", json_string(b64));
	if (json_array_size(env))
		json_object_set(req, "env", env);
	body = json_dumps(req, JSON_COMPACT);
	h = connect_daemon(&co);
	if (!body || !h)
		goto out;
	path = route(API_FUNCTION, name);
	if (call("deploy", h, "PUT", path, "application/json", body,
		 strlen(body), &r))
		goto out;
	{
		json_t *j = json_loadb(r.body, r.len, 0, NULL);
		json_t *v = json_object_get(j, "version");

		if (json_is_integer(v))
			printf("deployed %s (version %lld)\n", name,
			       (long long)json_integer_value(v));
		else
			printf("deployed %s\n", name);
		json_decref(j);
	}
	mig_http_response_free(&r);
	ret = 0;
out:
	mig_http_free(h);
	json_decref(req);
	json_decref(env);
	free(body);
	free(b64);
	free(data);
	free(path);
	return ret;
}

/* --- mig invoke ---------------------------------------------------------- */

static void invoke_usage(FILE *f)
{
	fprintf(f,
		"usage: mig invoke NAME [--data STRING | --file FILE] [--content-type T]\n"
		"                  [-v] [--server URL] [--token T]\n"
		"  Prints the function's result on stdout; -v prints the status and\n"
		"  the daemon's timing headers (X-Mig-*) on stderr.\n");
}

int mig_cmd_invoke(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "file", required_argument, NULL, 'f' },
		{ "content-type", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		CLIENT_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct mig_client_opts co = { .timeout_ms = 0 };
	const char *data = NULL, *file = NULL;
	const char *ctype = "application/octet-stream";
	struct mig_http_response r;
	struct mig_http *h = NULL;
	char *path = NULL, *fdata = NULL;
	size_t len = 0;
	int c, verbose = 0, ret = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:f:vh", opts, NULL)) != -1) {
		if (client_option(c, &co))
			continue;
		switch (c) {
		case 'd':
			data = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'c':
			ctype = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			invoke_usage(stdout);
			return 0;
		default:
			invoke_usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc || (data && file)) {
		fprintf(stderr, "mig invoke: %s\n", optind + 1 != argc ?
			"name one function" : "--data or --file, not both");
		invoke_usage(stderr);
		return 2;
	}
	ret = 1;
	if (file) {
		fdata = mig_read_file("invoke", file, &len);
		if (!fdata)
			return 1;
	} else if (data) {
		len = strlen(data);
	}
	h = connect_daemon(&co);
	if (!h)
		goto out;
	path = route(API_INVOKE, argv[optind]);
	if (mig_http_request(h, "POST", path, ctype, fdata ? fdata : data,
			     len, &r)) {
		print_http_error("invoke", h, &r);
		goto out;
	}
	if (verbose) {
		const char *l = r.headers;

		fprintf(stderr, "HTTP %ld, %.3f ms\n", r.status,
			r.total_us / 1000.0);
		while (l && *l) {
			size_t ll = strcspn(l, "\r\n");

			if (!strncasecmp(l, "X-Mig-", 6) ||
			    !strncasecmp(l, "Content-Type:", 13))
				fprintf(stderr, "%.*s\n", (int)ll, l);
			l += ll;
			l += strspn(l, "\r\n");
		}
	}
	if (r.status >= 200 && r.status <= 299) {
		fwrite(r.body, 1, r.len, stdout);
		if (r.len && r.body[r.len - 1] != '\n' && isatty(STDOUT_FILENO))
			putchar('\n');
		ret = 0;
	} else {
		print_http_error("invoke", h, &r);
	}
	mig_http_response_free(&r);
out:
	mig_http_free(h);
	free(path);
	free(fdata);
	return ret;
}

/* --- mig ls, logs, devices, kill, reload -------------------------------- */

/* Simple commands: [NAME] plus the client options. */
static int simple_args(const char *cmd, int argc, char **argv, int nargs,
		       const char *usage, struct mig_client_opts *co)
{
	static const struct option opts[] = {
		CLIENT_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (client_option(c, co))
			continue;
		if (c == 'h') {
			printf("usage: mig %s\n", usage);
			exit(0);
		}
		fprintf(stderr, "usage: mig %s\n", usage);
		return -1;
	}
	if (argc - optind != nargs) {
		fprintf(stderr, "usage: mig %s\n", usage);
		return -1;
	}
	(void)cmd;
	return 0;
}

static const struct column function_cols[] = {
	{ "NAME", { "name" }, F_STR },
	{ "LANG", { "language" }, F_STR },
	{ "HANDLER", { "handler" }, F_STR },
	{ "GPU MEMORY", { "gpu_memory" }, F_BYTES },
	{ "PROFILE", { "profile" }, F_STR },
	{ "TIMEOUT", { "timeout_ms" }, F_MS },
	{ "KEEP-ALIVE", { "keep_alive_ms" }, F_MS },
	{ "MAX", { "max_instances" }, F_STR },
	{ "VERSION", { "version" }, F_STR },
};

static const struct column instance_cols[] = {
	{ "INSTANCE", { "id", "instance" }, F_STR },
	{ "FUNCTION", { "function", "name" }, F_STR },
	{ "STATE", { "state", "status" }, F_STR },
	{ "PARTITION", { "partition", "device", "uuid" }, F_STR },
	{ "GPU MEMORY", { "gpu_memory", "mem_reserved" }, F_BYTES },
	{ "INVOCATIONS", { "invocations", "requests" }, F_STR },
	{ "PID", { "pid" }, F_STR },
	{ "AGE", { "age_ms", "uptime_ms" }, F_MS },
};

static const struct column device_cols[] = {
	{ "UUID", { "uuid" }, F_STR },
	{ "GPU", { "gpu_index", "gpu" }, F_STR },
	{ "NAME", { "gpu_name", "name" }, F_STR },
	{ "PROFILE", { "profile" }, F_STR },
	{ "MEMORY", { "mem_total", "memory" }, F_BYTES },
	{ "SMS", { "sms" }, F_STR },
	{ "RESERVED", { "mem_reserved" }, F_BYTES },
	{ "INSTANCES", { "instances" }, F_STR },
	{ "PRESENT", { "present" }, F_BOOL },
	{ "SERVERS", { "server_pool" }, F_POOL },
};

/* Why a partition's pre-initialized GPU servers fail, under the table. */
static void device_notes(json_t *rows)
{
	size_t i;
	json_t *row;

	json_array_foreach(rows, i, row) {
		json_t *err = json_object_get(json_object_get(row, "server_pool"), "error");

		if (json_is_string(err))
			printf("\n%s: its pre-initialized GPU servers fail: %s\n",
			       json_string_value(json_object_get(row, "uuid")) ?
			       json_string_value(json_object_get(row, "uuid")) : "?",
			       json_string_value(err));
	}
}

#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

int mig_cmd_ls(int argc, char **argv)
{
	struct mig_client_opts co = { .timeout_ms = 30000 };
	struct mig_http *h;
	int ret;

	if (simple_args("ls", argc, argv, 0, "ls [--server URL] [--token T]",
			&co))
		return 2;
	h = connect_daemon(&co);
	if (!h)
		return 1;
	ret = get_table("ls", h, API_FUNCTIONS, "functions", "functions",
			function_cols, NCOLS(function_cols), NULL);
	if (!ret) {
		printf("\n");
		ret = get_table("ls", h, API_INSTANCES, "instances",
				"instances", instance_cols,
				NCOLS(instance_cols), NULL);
	}
	mig_http_free(h);
	return ret;
}

int mig_cmd_devices(int argc, char **argv)
{
	struct mig_client_opts co = { .timeout_ms = 30000 };
	struct mig_http *h;
	int ret;

	if (simple_args("devices", argc, argv, 0,
			"devices [--server URL] [--token T]", &co))
		return 2;
	h = connect_daemon(&co);
	if (!h)
		return 1;
	ret = get_table("devices", h, API_DEVICES, "partitions",
			"GPU partitions", device_cols, NCOLS(device_cols),
			device_notes);
	mig_http_free(h);
	return ret;
}

int mig_cmd_reload(int argc, char **argv)
{
	struct mig_client_opts co = { .timeout_ms = 60000 };
	struct mig_http_response r;
	struct mig_http *h;
	int ret = 1;

	if (simple_args("reload", argc, argv, 0,
			"reload [--server URL] [--token T]", &co))
		return 2;
	h = connect_daemon(&co);
	if (!h)
		return 1;
	if (!call("reload", h, "POST", API_RELOAD, NULL, NULL, 0, &r)) {
		mig_http_response_free(&r);
		ret = get_table("reload", h, API_DEVICES, "partitions",
				"GPU partitions", device_cols,
				NCOLS(device_cols), device_notes);
	}
	mig_http_free(h);
	return ret;
}

int mig_cmd_kill(int argc, char **argv)
{
	struct mig_client_opts co = { .timeout_ms = 60000 };
	struct mig_http_response r;
	struct mig_http *h;
	char *path;
	int ret = 1;

	if (simple_args("kill", argc, argv, 1,
			"kill INSTANCE [--server URL] [--token T]", &co))
		return 2;
	h = connect_daemon(&co);
	if (!h)
		return 1;
	path = route(API_INSTANCE, argv[optind]);
	if (!call("kill", h, "DELETE", path, NULL, NULL, 0, &r)) {
		printf("killed %s\n", argv[optind]);
		mig_http_response_free(&r);
		ret = 0;
	}
	free(path);
	mig_http_free(h);
	return ret;
}

/* mig swap-out|swap-in INSTANCE: an idle instance's GPU memory to host
 * memory and back (the daemon's lukewarm instances). */
static int swap_cmd(const char *name, bool out, int argc, char **argv)
{
	struct mig_client_opts co = { .timeout_ms = 180000 };
	struct mig_http_response r;
	struct mig_http *h;
	char *base, *path = NULL, usage[96];
	int ret = 1;

	snprintf(usage, sizeof(usage), "%s INSTANCE [--server URL] [--token T]", name);
	if (simple_args(name, argc, argv, 1, usage, &co))
		return 2;
	h = connect_daemon(&co);
	if (!h)
		return 1;
	base = route(API_INSTANCE, argv[optind]);
	if (base && asprintf(&path, "%s/%s", base, name) < 0)
		path = NULL;
	if (path && !call(name, h, "POST", path, NULL, NULL, 0, &r)) {
		json_t *j = json_loadb(r.body, r.len, 0, NULL);

		printf("%s %s: %.1f MiB in %.2f ms\n", out ? "swapped out" : "swapped in",
		       argv[optind],
		       json_integer_value(json_object_get(j, "bytes")) / 1048576.0,
		       json_number_value(json_object_get(j, "ms")));
		json_decref(j);
		mig_http_response_free(&r);
		ret = 0;
	}
	free(path);
	free(base);
	mig_http_free(h);
	return ret;
}

int mig_cmd_swap_out(int argc, char **argv)
{
	return swap_cmd("swap-out", true, argc, argv);
}

int mig_cmd_swap_in(int argc, char **argv)
{
	return swap_cmd("swap-in", false, argc, argv);
}

int mig_cmd_logs(int argc, char **argv)
{
	struct mig_client_opts co = { .timeout_ms = 30000 };
	struct mig_http_response r;
	struct mig_http *h;
	char *path;
	int ret = 1;

	if (simple_args("logs", argc, argv, 1,
			"logs NAME [--server URL] [--token T]", &co))
		return 2;
	h = connect_daemon(&co);
	if (!h)
		return 1;
	path = route(API_LOGS, argv[optind]);
	if (mig_http_request(h, "GET", path, NULL, NULL, 0, &r)) {
		print_http_error("logs", h, &r);
	} else if (r.status >= 200 && r.status <= 299) {
		fwrite(r.body, 1, r.len, stdout);
		ret = 0;
	} else if (r.status == 405 || r.status == 501 ||
		   (r.status == 404 && !strstr(r.body, argv[optind]))) {
		/* A 404 that does not name the function: no such route. */
		fprintf(stderr, "mig logs: not available: the daemon at %s has "
			"no logs endpoint (GET %s answered %ld); a function's "
			"output is in the daemon's log\n",
			mig_http_server(h), path, r.status);
	} else {
		print_http_error("logs", h, &r);
	}
	if (r.status)
		mig_http_response_free(&r);
	free(path);
	mig_http_free(h);
	return ret;
}

/*
 * http.c - mignificentd's HTTP API (docs/openapi.yaml), on libmicrohttpd,
 * with JSON through jansson: routing, tenant tokens, request bodies,
 * and the errors every route answers with, {"error": {"code", "message"}}.
 *
 * Threads.  An invocation blocks its handler in instances_invoke() until
 * the function answers.  By default every connection has its own thread
 * (http_threads 0): a blocked handler then holds up only its own client,
 * and a client on a keep-alive connection never waits behind another
 * client's slow function.  With a pool (http_threads N), each pool thread
 * serves many connections, which is cheaper in threads but lets one slow
 * invocation stall the other connections of its thread.
 *
 * A request is seen by on_request() at least twice: once when its headers
 * are in (begin: route, token, size limits, the function's existence, all
 * before any body is read), then per piece of body, then once more when it
 * is complete (finish: the work and the answer).  Errors found in begin()
 * are answered at once, which makes libmicrohttpd close the connection
 * instead of reading a body nobody wants (an oversized payload gets its
 * 413 before it is uploaded).  Answers to complete requests keep the
 * connection alive.
 *
 * Allocation.  A connection's state and its body buffer live as long as
 * the connection and are reused by each of its requests; a warm invocation
 * allocates only the function's copy (registry_get), the answer
 * (instances_invoke) and libmicrohttpd's response.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "control.h"
#include "daemon.h"

#define MAX_SMALL_BODY (64u << 10)      /* routes that take no real body */
#define KEEP_BUF_MAX (1u << 20)         /* larger buffers are not kept */
#define CONNECTION_LIMIT 4096
#define CONNECTION_TIMEOUT_S 300        /* an idle keep-alive connection */
#define CONNECTION_MEMORY (128u << 10)  /* libmicrohttpd's, per connection */
#define LISTEN_BACKLOG 1024

#ifndef MHD_HTTP_CONTENT_TOO_LARGE /* libmicrohttpd before 0.9.74 */
#define MHD_HTTP_CONTENT_TOO_LARGE 413
#endif

enum route {
	R_NONE, R_HEALTH, R_METRICS, R_FUNCTIONS, R_FUNCTION, R_INVOKE,
	R_LOGS, R_INSTANCES, R_INSTANCE, R_DEVICES, R_RELOAD, R_SWAP_OUT,
	R_SWAP_IN,
};

enum method { M_OTHER, M_GET, M_PUT, M_POST, M_DELETE };

/* Methods each route takes (bit per enum method). */
static const unsigned int allowed[] = {
	[R_HEALTH] = 1u << M_GET, [R_METRICS] = 1u << M_GET,
	[R_FUNCTIONS] = 1u << M_GET,
	[R_FUNCTION] = 1u << M_GET | 1u << M_PUT | 1u << M_DELETE,
	[R_INVOKE] = 1u << M_POST, [R_LOGS] = 1u << M_GET,
	[R_INSTANCES] = 1u << M_GET, [R_INSTANCE] = 1u << M_DELETE,
	[R_DEVICES] = 1u << M_GET, [R_RELOAD] = 1u << M_POST,
	[R_SWAP_OUT] = 1u << M_POST, [R_SWAP_IN] = 1u << M_POST,
};

static const char *const allow_header[] = {
	[R_HEALTH] = "GET, HEAD", [R_METRICS] = "GET, HEAD",
	[R_FUNCTIONS] = "GET, HEAD", [R_FUNCTION] = "GET, HEAD, PUT, DELETE",
	[R_INVOKE] = "POST", [R_LOGS] = "GET, HEAD",
	[R_INSTANCES] = "GET, HEAD", [R_INSTANCE] = "DELETE",
	[R_DEVICES] = "GET, HEAD", [R_RELOAD] = "POST",
	[R_SWAP_OUT] = "POST", [R_SWAP_IN] = "POST",
};

/* One request: lives inside its connection, reused by the next one. */
struct req {
	enum route route;
	enum method method;
	const struct mig_tenant *tenant;
	struct mig_function *fn;        /* R_INVOKE: found from the headers */
	char name[128];                 /* the function's name or instance id */
	uint64_t t0;                    /* headers in, microseconds */
	uint64_t limit;                 /* body bytes we take */
	size_t len;                     /* body bytes so far */
	bool too_large, oom;
	int status;                     /* of the answer, for the log */
	char path[160];                 /* for the log (-vv only) */
};

struct conn {
	struct req req;
	char *buf;                      /* the body */
	size_t cap;
};

static struct {
	struct mig_daemon *d;
	struct MHD_Daemon *mhd;
	int listen_fd;
	int inflight;                   /* requests begun, not completed */
	char last_error[256];           /* libmicrohttpd's latest complaint */
	time_t started;
} H = { .listen_fd = -1 };

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* --- answers ------------------------------------------------------------ */

/* Queue @body (malloc'ed, ours to free) as the answer. */
static enum MHD_Result reply(struct MHD_Connection *c, struct req *q,
			     int status, const char *ctype, char *body,
			     size_t len, bool close)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (body)
		r = MHD_create_response_from_buffer(len, body,
						    MHD_RESPMEM_MUST_FREE);
	else
		r = MHD_create_response_from_buffer(0, (void *)"",
						    MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return MHD_NO; /* out of memory: libmicrohttpd drops it */
	}
	if (ctype)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (close)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"mignificent\"");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED && q->route != R_NONE)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
					allow_header[q->route]);
	if (status == MHD_HTTP_CREATED) {
		char loc[sizeof(q->name) + 16];

		snprintf(loc, sizeof(loc), "/v1/functions/%s", q->name);
		MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
	}
	q->status = status;
	ret = MHD_queue_response(c, (unsigned int)status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Queue @j (a reference we take) as a JSON answer. */
static enum MHD_Result reply_json(struct MHD_Connection *c, struct req *q,
				  int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!s) {
		static const char oom[] = "{\"error\":{\"code\":\"out_of_memory\","
			"\"message\":\"the daemon is out of memory; retry later\"}}";

		s = strdup(oom);
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	return reply(c, q, status, "application/json", s, s ? strlen(s) : 0,
		     false);
}

static enum MHD_Result reply_error(struct MHD_Connection *c, struct req *q,
				   int status, const char *code,
				   const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static enum MHD_Result reply_error(struct MHD_Connection *c, struct req *q,
				   int status, const char *code,
				   const char *fmt, ...)
{
	char msg[1024];
	json_t *m;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	m = json_string(msg);
	if (!m) { /* a client's bytes in it are not UTF-8: keep ASCII */
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
				*p = '?';
		m = json_string(msg);
	}
	return reply_json(c, q, status,
			  json_pack("{s:{s:s,s:o}}", "error", "code", code,
				    "message", m));
}

/* --- requests: the headers ---------------------------------------------- */

static enum method method_of(const char *m)
{
	if (!strcmp(m, "GET") || !strcmp(m, "HEAD"))
		return M_GET; /* libmicrohttpd leaves out HEAD's body */
	if (!strcmp(m, "POST"))
		return M_POST;
	if (!strcmp(m, "PUT"))
		return M_PUT;
	if (!strcmp(m, "DELETE"))
		return M_DELETE;
	return M_OTHER;
}

/* After @prefix: one path segment into q->name, then what follows. */
static const char *segment(struct req *q, const char *rest, bool *ok)
{
	size_t n = strcspn(rest, "/");

	*ok = n > 0 && n < sizeof(q->name);
	snprintf(q->name, sizeof(q->name), "%.*s",
		 (int)(n < sizeof(q->name) ? n : sizeof(q->name) - 1), rest);
	if (*ok)
		*ok = function_name_ok(q->name);
	return rest + n;
}

static enum route route_of(struct req *q, const char *url, bool *name_ok)
{
	const char *tail;

	*name_ok = true;
	if (!strncmp(url, "/v1/functions/", 14)) {
		tail = segment(q, url + 14, name_ok);
		if (!*tail)
			return R_FUNCTION;
		if (!strcmp(tail, "/invoke"))
			return R_INVOKE;
		if (!strcmp(tail, "/logs"))
			return R_LOGS;
		return R_NONE;
	}
	if (!strncmp(url, "/v1/instances/", 14)) {
		tail = segment(q, url + 14, name_ok);
		if (!strcmp(tail, "/swap-out"))
			return R_SWAP_OUT;
		if (!strcmp(tail, "/swap-in"))
			return R_SWAP_IN;
		return *tail ? R_NONE : R_INSTANCE;
	}
	if (!strcmp(url, "/v1/functions"))
		return R_FUNCTIONS;
	if (!strcmp(url, "/v1/instances"))
		return R_INSTANCES;
	if (!strcmp(url, "/v1/health"))
		return R_HEALTH;
	if (!strcmp(url, "/metrics"))
		return R_METRICS;
	if (!strcmp(url, "/v1/devices"))
		return R_DEVICES;
	if (!strcmp(url, "/v1/devices/reload"))
		return R_RELOAD;
	return R_NONE;
}

/* Equal, in a time that does not depend on where they differ. */
static bool same_token(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b), i;
	unsigned char diff = alen != blen;

	for (i = 0; i < alen; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (blen ? blen : 1)];
	return !diff;
}

/* The tenant whose token the request bears, or NULL. */
static const struct mig_tenant *tenant_of(struct MHD_Connection *c)
{
	const struct mig_config *cfg = &H.d->cfg;
	const struct mig_tenant *t = NULL;
	const char *a;
	size_t n;
	int i;

	a = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_AUTHORIZATION);
	if (!a || strncasecmp(a, "Bearer ", 7))
		return NULL;
	a += 7;
	while (*a == ' ')
		a++;
	n = strlen(a);
	while (n && a[n - 1] == ' ')
		n--;
	if (!n)
		return NULL;
	for (i = 0; i < cfg->ntenants; i++) /* all of them: no early out */
		if (same_token(a, n, cfg->tenants[i].token))
			t = &cfg->tenants[i];
	return t;
}

static uint64_t body_limit(const struct req *q)
{
	const struct mig_config *cfg = &H.d->cfg;

	if (q->route == R_INVOKE)
		return cfg->max_payload;
	if (q->route == R_FUNCTION && q->method == M_PUT) /* base64 + JSON */
		return cfg->max_artifact / 3 * 4 + 4 + (1u << 20);
	return MAX_SMALL_BODY;
}

static enum MHD_Result too_large(struct MHD_Connection *c, struct req *q)
{
	if (q->route == R_INVOKE)
		return reply_error(c, q, MHD_HTTP_CONTENT_TOO_LARGE,
				   "payload_too_large", "the payload is larger "
				   "than this daemon's limit of %llu bytes "
				   "(max_payload in its config); send less",
				   (unsigned long long)q->limit);
	if (q->route == R_FUNCTION && q->method == M_PUT)
		return reply_error(c, q, MHD_HTTP_CONTENT_TOO_LARGE,
				   "artifact_too_large", "the deploy request is "
				   "larger than this daemon accepts (max_artifact "
				   "%llu bytes, base64-encoded in JSON); make the "
				   "artifact smaller or raise max_artifact",
				   (unsigned long long)H.d->cfg.max_artifact);
	return reply_error(c, q, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
			   "this route takes no body larger than %u bytes",
			   MAX_SMALL_BODY);
}

/* The first call of a request: everything that needs no body. */
static enum MHD_Result begin(struct MHD_Connection *c, struct conn *cn,
			     const char *url, const char *method,
			     void **con_cls)
{
	struct req *q = &cn->req;
	const char *cl;
	bool name_ok;

	memset(q, 0, offsetof(struct req, path));
	q->t0 = now_us();
	__atomic_add_fetch(&H.inflight, 1, __ATOMIC_RELAXED);
	*con_cls = q;
	if (H.d->cfg.verbose >= 2)
		snprintf(q->path, sizeof(q->path), "%s %s", method, url);
	q->method = method_of(method);
	q->route = route_of(q, url, &name_ok);

	if (H.d->stopping && q->route != R_HEALTH)
		return reply_error(c, q, MHD_HTTP_SERVICE_UNAVAILABLE,
				   "shutting_down", "the daemon is shutting down; "
				   "retry on another node or later");
	if (q->route != R_HEALTH &&
	    !(q->route == R_METRICS && H.d->cfg.metrics_public)) {
		q->tenant = tenant_of(c);
		if (!q->tenant)
			return reply_error(c, q, MHD_HTTP_UNAUTHORIZED,
					   "unauthorized", "%s", MHD_lookup_connection_value(
						   c, MHD_HEADER_KIND,
						   MHD_HTTP_HEADER_AUTHORIZATION) ?
					   "the token is not valid here: send "
					   "\"Authorization: Bearer <token>\" with "
					   "your tenant's token" :
					   "no token: send \"Authorization: Bearer "
					   "<token>\"; the default tenant's token is "
					   "in the file token in the daemon's data "
					   "directory");
	}
	if (q->route == R_NONE)
		return reply_error(c, q, MHD_HTTP_NOT_FOUND, "no_such_route",
				   "%s %.100s is not part of the API; the routes "
				   "are in docs/openapi.yaml", method, url);
	if (!(allowed[q->route] & (1u << q->method)))
		return reply_error(c, q, MHD_HTTP_METHOD_NOT_ALLOWED,
				   "method_not_allowed", "%s does not take %s; it "
				   "takes %s", url, method,
				   allow_header[q->route]);
	if (!name_ok)
		return reply_error(c, q, MHD_HTTP_BAD_REQUEST, "invalid_name",
				   "\"%s\" is not a valid %s: use 1 to 100 of "
				   "A-Z a-z 0-9 _ . - (and not . or ..)", q->name,
				   q->route == R_INSTANCE ? "instance id" :
							   "function name");

	q->limit = body_limit(q);
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > q->limit)
		return too_large(c, q);
	if (q->route == R_INVOKE) {
		q->fn = registry_get(H.d->registry, q->tenant->name, q->name);
		if (!q->fn)
			return reply_error(c, q, MHD_HTTP_NOT_FOUND,
					   "function_not_found", "there is no "
					   "function \"%s\": deploy it first "
					   "(PUT /v1/functions/%s)", q->name,
					   q->name);
	}
	return MHD_YES;
}

/* A piece of the body: kept while under the limit, counted after. */
static void take_body(struct conn *cn, const char *data, size_t n)
{
	struct req *q = &cn->req;
	size_t want;
	char *nb;

	if (q->too_large || q->oom || q->len + n > q->limit) {
		q->too_large = q->too_large || q->len + n > q->limit;
		q->len += n;
		return;
	}
	if (q->len + n + 1 > cn->cap) {
		want = cn->cap ? cn->cap : 16384;
		while (want < q->len + n + 1)
			want *= 2;
		nb = realloc(cn->buf, want);
		if (!nb) {
			q->oom = true;
			return;
		}
		cn->buf = nb;
		cn->cap = want;
	}
	memcpy(cn->buf + q->len, data, n);
	q->len += n;
	cn->buf[q->len] = 0; /* JSON bodies are then strings too */
}

/* --- the routes --------------------------------------------------------- */

static enum MHD_Result do_health(struct MHD_Connection *c, struct req *q)
{
	struct mig_devices *dv = &H.d->devices;
	int present = 0, i;

	pthread_mutex_lock(&dv->lock);
	for (i = 0; i < dv->n; i++)
		present += dv->p[i].present != 0;
	pthread_mutex_unlock(&dv->lock);
	return reply_json(c, q, H.d->stopping ? MHD_HTTP_SERVICE_UNAVAILABLE :
						MHD_HTTP_OK,
			  json_pack("{s:s,s:i,s:I}", "status",
				    H.d->stopping ? "stopping" : "ok",
				    "partitions", present, "uptime_s",
				    (json_int_t)(time(NULL) - H.started)));
}

static enum MHD_Result do_metrics(struct MHD_Connection *c, struct req *q)
{
	char *text = metrics_render_for(H.d, q->tenant ? q->tenant->name : NULL);

	if (!text)
		return reply_error(c, q, MHD_HTTP_SERVICE_UNAVAILABLE,
				   "out_of_memory", "the daemon is out of "
				   "memory; retry later");
	return reply(c, q, MHD_HTTP_OK,
		     "text/plain; version=0.0.4; charset=utf-8", text,
		     strlen(text), false);
}

/* The partition @p's pre-initialized GPU servers, as "server_pool". */
static void server_pool_json(json_t *p)
{
	const char *uuid = json_string_value(json_object_get(p, "uuid"));
	struct mig_server_pool sp;
	json_t *o;

	if (!uuid || instances_server_pool(H.d, uuid, &sp))
		return;
	o = json_pack("{s:I,s:I,s:I}", "ready", (json_int_t)sp.ready,
		      "starting", (json_int_t)sp.starting,
		      "failures", (json_int_t)sp.failures);
	if (o && *sp.error)
		json_object_set_new(o, "error", json_string(sp.error));
	if (o)
		json_object_set_new(p, "server_pool", o);
}

static json_t *devices_json(struct mig_devices *d)
{
	json_t *a = json_array(), *j;
	int i;

	pthread_mutex_lock(&d->lock);
	for (i = 0; a && i < d->n; i++) {
		const struct mig_partition *p = &d->p[i];

		json_array_append_new(a, json_pack(
			"{s:s,s:s,s:i,s:s,s:s,s:b,s:I,s:i,s:I,s:i,s:b}",
			"uuid", p->uuid, "gpu_uuid", p->gpu_uuid,
			"gpu_index", p->gpu_index, "gpu_name", p->gpu_name,
			"profile", p->profile, "mig", p->mig,
			"mem_total", (json_int_t)p->mem_total, "sms", p->sms,
			"mem_reserved", (json_int_t)p->mem_reserved,
			"instances", p->instances, "present", p->present));
	}
	j = json_pack("{s:s,s:o}", "driver_version", d->driver_version,
		      "partitions", a);
	if (j && *d->error)
		json_object_set_new(j, "error", json_string(d->error));
	pthread_mutex_unlock(&d->lock);
	/* Outside the devices lock: instances.c takes its own lock first. */
	for (size_t k = 0; j && k < json_array_size(a); k++)
		server_pool_json(json_array_get(a, k));
	return j;
}

static enum MHD_Result do_reload(struct MHD_Connection *c, struct req *q)
{
	char why[sizeof(H.d->devices.error)];

	if (daemon_reload(H.d) == 0)
		return reply_json(c, q, MHD_HTTP_OK, devices_json(&H.d->devices));
	pthread_mutex_lock(&H.d->devices.lock);
	snprintf(why, sizeof(why), "%s", H.d->devices.error);
	pthread_mutex_unlock(&H.d->devices.lock);
	return reply_error(c, q, MHD_HTTP_SERVICE_UNAVAILABLE, "no_gpu",
			   "no GPU partition found: %s",
			   *why ? why : "see the daemon's log");
}

static enum MHD_Result do_put(struct MHD_Connection *c, struct req *q,
			      struct conn *cn)
{
	const char *tenant = q->tenant->name;
	unsigned int version = 0;
	bool created = false;
	json_error_t jerr;
	char err[1024];
	json_t *spec, *j;
	int rc, status;

	if (!q->len)
		return reply_error(c, q, MHD_HTTP_BAD_REQUEST, "empty_body",
				   "a deploy needs a JSON body: {\"language\", "
				   "\"artifact\" (base64), \"handler\", ...}");
	spec = json_loadb(cn->buf, q->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!spec)
		return reply_error(c, q, MHD_HTTP_BAD_REQUEST, "malformed_json",
				   "the body is not valid JSON: line %d, column "
				   "%d: %s", jerr.line, jerr.column, jerr.text);
	/* A tenant may not turn its own isolation off: "bare" only where the
	 * node runs bare anyway or allows it. */
	if (json_is_object(spec) &&
	    !strcmp(json_string_value(json_object_get(spec, "isolation")) ?
		    json_string_value(json_object_get(spec, "isolation")) : "", "bare") &&
	    strcmp(H.d->cfg.isolation, "bare") && !H.d->cfg.allow_bare) {
		json_decref(spec);
		return reply_error(c, q, MHD_HTTP_BAD_REQUEST, "invalid_function",
				   "\"isolation\": \"bare\" (no isolation) is not allowed on "
				   "this node; leave \"isolation\" out or ask for \"sandbox\" "
				   "or \"oci\"");
	}
	rc = registry_put(H.d->registry, tenant, q->name, spec,
			  H.d->cfg.max_artifact, &version, &created, err,
			  sizeof(err));
	json_decref(spec);
	if (rc) {
		const char *code = "storage_error";

		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		if (rc == -EINVAL) {
			status = MHD_HTTP_BAD_REQUEST;
			code = "invalid_function";
		} else if (rc == -EFBIG) {
			status = MHD_HTTP_CONTENT_TOO_LARGE;
			code = "artifact_too_large";
		} else if (rc == -ENOSPC || rc == -EDQUOT) {
			status = MHD_HTTP_INSUFFICIENT_STORAGE;
			code = "insufficient_storage";
		} else if (rc == -ENOMEM) {
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
			code = "out_of_memory";
		}
		return reply_error(c, q, status, code, "function \"%s\": %s",
				   q->name, err);
	}
	if (!created) /* instances of the old version must not serve more */
		instances_retire(H.d, tenant, q->name);
	j = registry_describe(H.d->registry, tenant, q->name);
	if (!j) /* deleted meanwhile */
		j = json_pack("{s:s,s:i}", "name", q->name, "version", version);
	return reply_json(c, q, created ? MHD_HTTP_CREATED : MHD_HTTP_OK, j);
}

static enum MHD_Result not_found(struct MHD_Connection *c, struct req *q)
{
	return reply_error(c, q, MHD_HTTP_NOT_FOUND, "function_not_found",
			   "there is no function \"%s\"", q->name);
}

static enum MHD_Result do_function(struct MHD_Connection *c, struct req *q,
				   struct conn *cn)
{
	const char *tenant = q->tenant->name;
	json_t *j;

	if (q->method == M_PUT)
		return do_put(c, q, cn);
	if (q->method == M_DELETE) {
		if (registry_delete(H.d->registry, tenant, q->name))
			return not_found(c, q);
		instances_retire(H.d, tenant, q->name);
		return reply_json(c, q, MHD_HTTP_OK,
				  json_pack("{s:s}", "deleted", q->name));
	}
	j = registry_describe(H.d->registry, tenant, q->name);
	return j ? reply_json(c, q, MHD_HTTP_OK, j) : not_found(c, q);
}

/* The last @max bytes of @path, malloc'ed, in *@len; NULL if none. */
static char *file_tail(const char *path, size_t max, size_t *len)
{
	struct stat st;
	char *buf;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*len = 0;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return NULL;
	}
	if ((uint64_t)st.st_size < max)
		max = (size_t)st.st_size;
	buf = malloc(max ? max : 1);
	n = buf ? pread(fd, buf, max, st.st_size - (off_t)max) : -1;
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	*len = (size_t)n;
	return buf;
}

/*
 * GET /v1/functions/{name}/logs: the end of what the function's executors
 * wrote to stdout and stderr (?bytes=N, default 64 KiB, at most 8 MiB).
 */
static enum MHD_Result do_logs(struct MHD_Connection *c, struct req *q)
{
	struct mig_function *f = registry_get(H.d->registry, q->tenant->name,
					      q->name);
	const char *arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
						      "bytes");
	size_t max = 64u << 10, len;
	char *body;

	if (!f)
		return not_found(c, q);
	if (arg) {
		char *end;
		unsigned long long v = strtoull(arg, &end, 10);

		if (*end || !*arg || v == 0 || v > MIG_FUNCTION_LOG_MAX) {
			function_free(f);
			return reply_error(c, q, MHD_HTTP_BAD_REQUEST, "bad_request",
					   "bytes must be a number from 1 to %u",
					   MIG_FUNCTION_LOG_MAX);
		}
		max = (size_t)v;
	}
	body = file_tail(f->log_path, max, &len);
	function_free(f);
	return reply(c, q, MHD_HTTP_OK, "text/plain; charset=utf-8", body, len,
		     false);
}

static void add_us(struct MHD_Response *r, const char *name, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	MHD_add_response_header(r, name, buf);
}

static enum MHD_Result do_invoke(struct MHD_Connection *c, struct req *q,
				 struct conn *cn)
{
	const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						MHD_HTTP_HEADER_CONTENT_TYPE);
	struct mig_invoke_result r;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	uint64_t total;
	char buf[24];

	instances_invoke(H.d, q->fn, cn->buf, q->len, ctype, &r);
	total = now_us() - q->t0;
	metrics_invocation(q->tenant->name, q->name, r.http_status,
			   r.cold ? 1 : *r.instance ? 0 : -1, total, r.queued_us,
			   r.cold_start_us, r.run_us, r.swap_in_us);
	if (!r.http_status) { /* cannot happen; never answer 0 */
		free(r.body);
		return reply_error(c, q, MHD_HTTP_INTERNAL_SERVER_ERROR,
				   "internal_error", "the invocation ended "
				   "without a status; see the daemon's log");
	}
	if (r.body && r.len)
		resp = MHD_create_response_from_buffer(r.len, r.body,
						       MHD_RESPMEM_MUST_FREE);
	else
		resp = MHD_create_response_from_buffer(0, (void *)"",
						       MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(r.body);
		return MHD_NO;
	}
	if (!r.len)
		free(r.body);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				*r.content_type ? r.content_type :
						  "application/octet-stream");
	if (*r.instance)
		MHD_add_response_header(resp, "X-Mig-Instance", r.instance);
	add_us(resp, "X-Mig-Queued-Us", r.queued_us);
	add_us(resp, "X-Mig-Cold-Start-Us", r.cold_start_us);
	add_us(resp, "X-Mig-Run-Us", r.run_us);
	add_us(resp, "X-Mig-Swap-In-Us", r.swap_in_us);
	MHD_add_response_header(resp, "X-Mig-Cold", r.cold ? "1" : "0");
	add_us(resp, "X-Mig-Version", q->fn->version);
	if (r.fn_status) {
		snprintf(buf, sizeof(buf), "%d", r.fn_status);
		MHD_add_response_header(resp, "X-Mig-Function-Status", buf);
	}
	q->status = r.http_status;
	ret = MHD_queue_response(c, (unsigned int)r.http_status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result do_instances(struct MHD_Connection *c, struct req *q)
{
	json_t *a = instances_list(H.d, q->tenant->name);

	if (!a)
		return reply_error(c, q, MHD_HTTP_SERVICE_UNAVAILABLE,
				   "out_of_memory", "the daemon is out of "
				   "memory; retry later");
	return reply_json(c, q, MHD_HTTP_OK,
			  json_pack("{s:o}", "instances", a));
}

static enum MHD_Result do_kill(struct MHD_Connection *c, struct req *q)
{
	if (instances_kill(H.d, q->tenant->name, q->name))
		return reply_error(c, q, MHD_HTTP_NOT_FOUND,
				   "instance_not_found", "there is no instance "
				   "\"%s\" (it may have stopped already)",
				   q->name);
	return reply_json(c, q, MHD_HTTP_OK,
			  json_pack("{s:s}", "killed", q->name));
}

/* POST /v1/instances/ID/swap-out, /swap-in: an idle instance's GPU memory
 * to host memory and back (operators and tests; the daemon's policy does
 * it by itself). */
static enum MHD_Result do_swap(struct MHD_Connection *c, struct req *q, bool out)
{
	struct mig_swap_report rep;
	char err[300] = "";
	int rc = instances_swap(H.d, q->tenant->name, q->name, out, &rep, err,
				sizeof(err));

	if (rc == -ENOENT)
		return reply_error(c, q, MHD_HTTP_NOT_FOUND, "instance_not_found",
				   "there is no instance \"%s\"", q->name);
	if (rc == -EBUSY)
		return reply_error(c, q, MHD_HTTP_CONFLICT, "instance_busy",
				   "%s; only an idle instance is swapped", err);
	if (rc == -ETIMEDOUT)
		return reply_error(c, q, MHD_HTTP_CONFLICT, "partition_busy", "%s", err);
	if (rc == -ENOSPC)
		return reply_error(c, q, MHD_HTTP_CONFLICT, "insufficient_gpu_memory",
				   "%s; it comes back at its next invocation, or starts anew when there is still no room",
				   err);
	if (rc)
		return reply_error(c, q, MHD_HTTP_INTERNAL_SERVER_ERROR, "swap_failed",
				   "%s", err);
	return reply_json(c, q, MHD_HTTP_OK,
			  json_pack("{s:s,s:s,s:I,s:i,s:f}", "instance", q->name,
				    "swapped", out ? "out" : "in",
				    "bytes", (json_int_t)rep.bytes,
				    "allocations", (int)rep.allocations,
				    "ms", rep.ns / 1e6));
}

/* The last call of a request: the body is in; do the work, answer. */
static enum MHD_Result finish(struct MHD_Connection *c, struct conn *cn)
{
	struct req *q = &cn->req;

	if (q->too_large)
		return too_large(c, q);
	if (q->oom)
		return reply_error(c, q, MHD_HTTP_SERVICE_UNAVAILABLE,
				   "out_of_memory", "the daemon has no memory "
				   "for a %zu-byte body; retry later", q->len);
	switch (q->route) {
	case R_HEALTH:
		return do_health(c, q);
	case R_METRICS:
		return do_metrics(c, q);
	case R_FUNCTIONS:
		return reply_json(c, q, MHD_HTTP_OK,
				  json_pack("{s:o*}", "functions",
					    registry_list(H.d->registry,
							  q->tenant->name)));
	case R_FUNCTION:
		return do_function(c, q, cn);
	case R_INVOKE:
		return do_invoke(c, q, cn);
	case R_LOGS:
		return do_logs(c, q);
	case R_INSTANCES:
		return do_instances(c, q);
	case R_INSTANCE:
		return do_kill(c, q);
	case R_SWAP_OUT:
	case R_SWAP_IN:
		return do_swap(c, q, q->route == R_SWAP_OUT);
	case R_DEVICES:
		return reply_json(c, q, MHD_HTTP_OK, devices_json(&H.d->devices));
	case R_RELOAD:
		return do_reload(c, q);
	default:
		return reply_error(c, q, MHD_HTTP_NOT_FOUND, "no_such_route",
				   "no such route");
	}
}

/* --- libmicrohttpd's callbacks ------------------------------------------ */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	const union MHD_ConnectionInfo *ci;
	struct conn *cn;

	(void)cls;
	(void)version;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	cn = ci ? ci->socket_context : NULL;
	if (!cn) { /* its state could not be allocated */
		static struct req none;

		return reply_error(c, &none, MHD_HTTP_SERVICE_UNAVAILABLE,
				   "out_of_memory", "the daemon is out of "
				   "memory; retry later");
	}
	if (!*con_cls)
		return begin(c, cn, url, method, con_cls);
	if (*upload_size) {
		take_body(cn, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	return finish(c, cn);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;
	struct conn *cn;

	(void)cls;
	(void)c;
	if (!q)
		return;
	cn = (struct conn *)((char *)q - offsetof(struct conn, req));
	if (H.d->cfg.verbose >= 2)
		daemon_log(2, "%s %s -> %d in %llu us%s", q->tenant ?
			   q->tenant->name : "-", q->path, q->status,
			   (unsigned long long)(now_us() - q->t0),
			   toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" :
			   " (connection ended early)");
	function_free(q->fn);
	q->fn = NULL;
	if (cn->cap > KEEP_BUF_MAX) {
		free(cn->buf);
		cn->buf = NULL;
		cn->cap = 0;
	}
	*con_cls = NULL;
	__atomic_sub_fetch(&H.inflight, 1, __ATOMIC_RELEASE);
}

static void on_connection(void *cls, struct MHD_Connection *c,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct conn *cn = *socket_context;

	(void)cls;
	(void)c;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		*socket_context = calloc(1, sizeof(struct conn));
		return;
	}
	if (cn) {
		free(cn->buf);
		free(cn);
	}
	*socket_context = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[sizeof(H.last_error)];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	snprintf(H.last_error, sizeof(H.last_error), "%s", msg);
	/* Mostly clients that misbehave: not for the default log. */
	daemon_log(1, "http: %s", msg);
}

/* --- start and stop ----------------------------------------------------- */

/* A bound, listening socket for @cfg's address, and what it is bound to. */
static int listen_on(const struct mig_config *cfg, char *where, size_t n,
		     bool *v6, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct addrinfo *res, *ai;
	char port[8], host[INET6_ADDRSTRLEN];
	int fd = -1, rc, one = 1, e = 0;

	snprintf(port, sizeof(port), "%d", cfg->listen_port);
	rc = getaddrinfo(cfg->listen_addr, port, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s: give an IP "
			 "address or a host name this node resolves (--listen)",
			 cfg->listen_addr, cfg->listen_port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
				SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, ai->ai_addr, ai->ai_addrlen) &&
		    !listen(fd, LISTEN_BACKLOG))
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s%s",
			 cfg->listen_addr, cfg->listen_port, strerror(e),
			 e == EADDRINUSE ? ": another process (another "
			 "mignificentd?) has that port; stop it or choose "
			 "another with --listen" : e == EACCES ? ": ports "
			 "below 1024 need root; choose another with --listen" :
			 e == EADDRNOTAVAIL ? ": this node has no such "
			 "address; choose another with --listen" : "");
		return -1;
	}
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*v6 = ss.ss_family == AF_INET6;
	if (*v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(where, n, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(where, n, "%s:%u", host, ntohs(s4->sin_port));
	}
	return fd;
}

int http_start(struct mig_daemon *d, char *err, size_t errlen)
{
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
			     MHD_USE_ERROR_LOG | MHD_USE_TURBO;
	unsigned int pool = d->cfg.http_threads > 1 ?
			    (unsigned int)d->cfg.http_threads : 0;
	char where[96];
	bool v6 = false;

	H.d = d;
	H.started = time(NULL);
	H.listen_fd = listen_on(&d->cfg, where, sizeof(where), &v6, err, errlen);
	if (H.listen_fd < 0)
		return -1;
	if (v6)
		flags |= MHD_USE_IPv6;
	if (d->cfg.http_threads > 0)
		flags |= MHD_USE_EPOLL;
	else
		flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
	H.mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, H.listen_fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
		MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1,
		pool ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, pool,
		MHD_OPTION_END);
	if (!H.mhd) {
		snprintf(err, errlen, "cannot start the HTTP server on %s: %s",
			 where, *H.last_error ? H.last_error :
			 "libmicrohttpd refused (out of memory or threads?)");
		close(H.listen_fd);
		H.listen_fd = -1;
		return -1;
	}
	daemon_log(0, "listening on http://%s (backend %s, %s, data in %s)",
		   where, d->cfg.backend, pool ? "a pool of HTTP threads" :
		   "a thread per connection", d->cfg.data_dir);
	return 0;
}

void http_quiesce(void)
{
	if (!H.mhd || H.listen_fd < 0)
		return;
	MHD_quiesce_daemon(H.mhd);
	close(H.listen_fd);
	H.listen_fd = -1;
}

void http_drain(unsigned int timeout_ms)
{
	uint64_t end = now_us() + (uint64_t)timeout_ms * 1000;
	struct timespec ts = { 0, 5000000 };

	while (__atomic_load_n(&H.inflight, __ATOMIC_ACQUIRE) > 0 &&
	       now_us() < end)
		nanosleep(&ts, NULL);
}

void http_stop(void)
{
	if (!H.mhd)
		return;
	/* Unless http_quiesce() took it back, the listening socket is
	 * libmicrohttpd's now: it closes it. */
	MHD_stop_daemon(H.mhd);
	H.mhd = NULL;
	H.listen_fd = -1;
}

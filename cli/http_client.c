/*
 * http_client.c - HTTP/1.1 to the node daemon, over libcurl.
 *
 * Each struct mig_http owns one curl easy handle, so consecutive requests
 * reuse its TCP connection (keep-alive): `mig bench` measures the daemon,
 * not connection set-up.  Bodies and headers are gathered into growing
 * buffers; "Expect: 100-continue" is switched off because waiting a round
 * trip before sending a body would add to every invocation's latency.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "http_client.h"

struct mig_http {
	CURL *curl;
	char *server;
	char auth[512];          /* "Authorization: Bearer ..." or "" */
	char errbuf[CURL_ERROR_SIZE];
};

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	return buf_add(arg, data, size * n) ? 0 : size * n;
}

/* A new status line starts a new header block (after a redirect or 1xx). */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	if (size * n >= 5 && !strncmp(data, "HTTP/", 5))
		b->len = 0;
	return buf_add(b, data, size * n) ? 0 : size * n;
}

int mig_http_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "mig: libcurl did not initialize\n");
		return -1;
	}
	return 0;
}

/* The token: flag, MIG_TOKEN, or <data dir>/token (first line). */
static void find_token(const struct mig_client_opts *o, char *out,
		       size_t outlen)
{
	const char *t = o->token, *dir;
	char path[4096];
	FILE *f;

	*out = 0;
	if (!t || !*t)
		t = getenv("MIG_TOKEN");
	if (t && *t) {
		snprintf(out, outlen, "%s", t);
		return;
	}
	dir = getenv("MIG_DATA_DIR");
	snprintf(path, sizeof(path), "%s/token",
		 dir && *dir ? dir : MIG_DEFAULT_DATA_DIR);
	f = fopen(path, "r");
	if (!f)
		return; /* no token: the daemon says if it wants one */
	if (fgets(out, (int)outlen, f))
		out[strcspn(out, "\r\n")] = 0;
	else
		*out = 0;
	fclose(f);
}

struct mig_http *mig_http_new(const struct mig_client_opts *o)
{
	struct mig_http *h = calloc(1, sizeof(*h));
	const char *s = o->server;
	char token[400];
	size_t n;

	if (!h)
		return NULL;
	if (!s || !*s)
		s = getenv("MIG_SERVER");
	if (!s || !*s)
		s = MIG_DEFAULT_SERVER;
	h->server = strdup(s);
	h->curl = curl_easy_init();
	if (!h->server || !h->curl) {
		fprintf(stderr, "mig: cannot start an HTTP client (libcurl)\n");
		mig_http_free(h);
		return NULL;
	}
	n = strlen(h->server);
	while (n && h->server[n - 1] == '/')
		h->server[--n] = 0;
	find_token(o, token, sizeof(token));
	if (*token)
		snprintf(h->auth, sizeof(h->auth), "Authorization: Bearer %s",
			 token);

	curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "mig");
	/* The daemon is a local service: never through a proxy. */
	curl_easy_setopt(h->curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, on_header);
	return h;
}

void mig_http_free(struct mig_http *h)
{
	if (!h)
		return;
	if (h->curl)
		curl_easy_cleanup(h->curl);
	free(h->server);
	free(h);
}

const char *mig_http_server(const struct mig_http *h)
{
	return h->server;
}

int mig_http_request(struct mig_http *h, const char *method, const char *path,
		     const char *ctype, const void *body, size_t len,
		     struct mig_http_response *r)
{
	struct buf b = { 0 }, hb = { 0 };
	struct curl_slist *hdrs = NULL;
	char ct[160], *url = NULL;
	curl_off_t t = 0;
	CURLcode rc;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	if (asprintf(&url, "%s%s", h->server, path) < 0) {
		url = NULL;
		snprintf(r->error, sizeof(r->error), "out of memory");
		goto out;
	}
	if (*h->auth)
		hdrs = curl_slist_append(hdrs, h->auth);
	if (ctype) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
		hdrs = curl_slist_append(hdrs, ct);
	}
	hdrs = curl_slist_append(hdrs, "Expect:");

	h->errbuf[0] = 0;
	curl_easy_setopt(h->curl, CURLOPT_URL, url);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, &hb);
	/* The handle remembers the last request's kind: reset it each time. */
	curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(h->curl, CURLOPT_CUSTOMREQUEST, NULL);
	if (strcmp(method, "GET")) {
		if (body || !strcmp(method, "POST") || !strcmp(method, "PUT")) {
			curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)len);
			curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS,
					 body ? body : "");
		}
		if (strcmp(method, "POST"))
			curl_easy_setopt(h->curl, CURLOPT_CUSTOMREQUEST, method);
	}

	rc = curl_easy_perform(h->curl);
	if (rc != CURLE_OK) {
		snprintf(r->error, sizeof(r->error),
			 "cannot reach the daemon at %s (%s): is mignificentd "
			 "running there? Set --server or MIG_SERVER",
			 h->server, *h->errbuf ? h->errbuf : curl_easy_strerror(rc));
		if (rc == CURLE_OPERATION_TIMEDOUT)
			snprintf(r->error, sizeof(r->error),
				 "no answer from %s%s in time (%s)", h->server,
				 path, *h->errbuf ? h->errbuf : "timeout");
		goto out;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(h->curl, CURLINFO_TOTAL_TIME_T, &t);
	r->total_us = (uint64_t)t;
	if (!b.p && buf_add(&b, "", 0))
		goto oom;
	if (!hb.p && buf_add(&hb, "", 0))
		goto oom;
	r->body = b.p;
	r->len = b.len;
	r->headers = hb.p;
	b.p = hb.p = NULL;
	ret = 0;
	goto out;
oom:
	snprintf(r->error, sizeof(r->error), "out of memory");
out:
	free(b.p);
	free(hb.p);
	free(url);
	curl_slist_free_all(hdrs);
	/* The lists and buffers above die here: make the handle forget them. */
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, NULL);
	return ret;
}

void mig_http_response_free(struct mig_http_response *r)
{
	free(r->body);
	free(r->headers);
	r->body = r->headers = NULL;
	r->len = 0;
}

int mig_http_header(const struct mig_http_response *r, const char *name,
		    char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *l = r->headers;

	while (l && *l) {
		const char *end = strchr(l, '\n');
		size_t ll = end ? (size_t)(end - l) : strlen(l);

		if (ll > nl && l[nl] == ':' && !strncasecmp(l, name, nl)) {
			const char *v = l + nl + 1;
			size_t vl;

			while (v < l + ll && (*v == ' ' || *v == '\t'))
				v++;
			vl = (size_t)(l + ll - v);
			while (vl && isspace((unsigned char)v[vl - 1]))
				vl--;
			snprintf(out, outlen, "%.*s", (int)vl, v);
			return 0;
		}
		l = end ? end + 1 : NULL;
	}
	if (outlen)
		*out = 0;
	return -1;
}

char *mig_http_escape(const char *s)
{
	static const char ok[] = "-._~";
	char *out = malloc(3 * strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr(ok, c))
			*o++ = (char)c;
		else
			o += sprintf(o, "%%%02X", c);
	}
	*o = 0;
	return out;
}

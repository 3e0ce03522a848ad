/*
 * http_client.h - the `mig` commands' HTTP/1.1 client for the node daemon
 * (libcurl underneath).  One struct mig_http is one connection kept alive
 * across requests; it is not shared between threads.
 */
#ifndef MIG_CLI_HTTP_CLIENT_H
#define MIG_CLI_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct mig_http;

struct mig_http_response {
	long status;            /* HTTP status, 0 if no answer */
	char *body;             /* malloc'ed, NUL-terminated; may hold NULs */
	size_t len;
	char *headers;          /* malloc'ed raw header lines of the answer */
	uint64_t total_us;      /* request sent to answer complete (curl) */
	char error[512];        /* why there was no answer, if status is 0 */
};

/* Where the daemon is and who we are: flags, then environment, then files. */
struct mig_client_opts {
	const char *server;     /* --server, else MIG_SERVER, else default */
	const char *token;      /* --token, else MIG_TOKEN, else token file */
	long timeout_ms;        /* per request; 0: none */
};

#define MIG_DEFAULT_SERVER "http://127.0.0.1:10000"
#define MIG_DEFAULT_DATA_DIR "/var/lib/mignificent"

/* Once per process, before any thread makes a client. */
int mig_http_global_init(void);

/* NULL with a message on stderr if libcurl cannot start. */
struct mig_http *mig_http_new(const struct mig_client_opts *o);
void mig_http_free(struct mig_http *h);
/* The base URL requests go to, without a trailing slash. */
const char *mig_http_server(const struct mig_http *h);

/*
 * One request: @method "GET", "POST", "PUT" or "DELETE", @path from the
 * root ("/v1/functions"), @ctype and @body optional.  Returns 0 when an
 * answer came (whatever its status), -1 with r->error set otherwise.
 * Free @r's buffers with mig_http_response_free().
 */
int mig_http_request(struct mig_http *h, const char *method, const char *path,
		     const char *ctype, const void *body, size_t len,
		     struct mig_http_response *r);
void mig_http_response_free(struct mig_http_response *r);

/* The value of header @name in @r (case-insensitive), copied into @out. */
int mig_http_header(const struct mig_http_response *r, const char *name,
		    char *out, size_t outlen);

/* @s escaped for a URL path segment; malloc'ed. */
char *mig_http_escape(const char *s);

#endif /* MIG_CLI_HTTP_CLIENT_H */

/*
 * registry.c - the deployed functions of every tenant, in memory for the
 * invocation path and on disk so that a restarted daemon still has them.
 *
 * On disk, under the data directory:
 *
 *   functions/<tenant>/<name>/function.json   the settings (the commit point)
 *   functions/<tenant>/<name>/v<N>/<file>      version N's artifact
 *   functions/<tenant>/<name>/v<N>/pkg/        ... or its unpacked .tar.gz
 *   trash/                                     deleted functions, emptied
 *
 * Each version gets its own directory because a running instance may still
 * have the previous version's shared object mapped (overwriting it in place
 * would crash that instance) or be about to start on it (an invocation that
 * was queued before the update).  An update therefore keeps the previous
 * version's directory and removes older ones.  function.json is replaced
 * atomically (write, fsync, rename), so a crash leaves the old or the new
 * version, never half of one; a version directory without a function.json
 * that names it is garbage and is overwritten by the next deploy.
 *
 * Locks: the table is read on every invocation (registry_get), so it sits
 * under a read-write lock held only for lookups and pointer swaps.  Deploys
 * and deletes, which write files, are serialized by a separate mutex and
 * take the table's write lock only to swap an entry in or out.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "daemon.h"
#include "units.h"

#define NBUCKETS 4096u
#define NAME_MAX_LEN 100
#define FILENAME_MAX_LEN 100
#define MAX_ENV 128
#define MAX_ENV_VALUE (32u << 10)
#define MAX_ENV_TOTAL (256u << 10)
#define MIN_GPU_MEMORY (1ull << 20)
#define MAX_GPU_MEMORY (16ull << 40)
#define DEFAULT_GPU_MEMORY (1ull << 30)
#define DEFAULT_TIMEOUT_MS 60000u
#define DEFAULT_KEEP_ALIVE_MS 600000u
#define MAX_TIMEOUT_MS 86400000u        /* a day */
#define MAX_INSTANCES 1024u
#define META "function.json"

extern char **environ;

enum kind { K_SO, K_PY, K_ZIP, K_TGZ };

static const char *const kind_names[] = {
	[K_SO] = "shared-object", [K_PY] = "python-file",
	[K_ZIP] = "zip", [K_TGZ] = "tar.gz",
};

struct entry {
	struct entry *next;             /* hash chain */
	uint32_t hash;
	struct mig_function *f;         /* packed: pack() */
	size_t fsize;
	char artifact_name[FILENAME_MAX_LEN + 1];
	char artifact_rel[FILENAME_MAX_LEN + 16]; /* "v3/x.so", "v3/pkg" */
	enum kind kind;
	uint64_t artifact_size;
	int64_t created, updated;       /* Unix seconds */
	json_t *env;                    /* {"K": "V"} as deployed */
};

struct mig_registry {
	pthread_rwlock_t lock;          /* the table */
	pthread_mutex_t write_lock;     /* one deploy or delete at a time */
	struct entry *b[NBUCKETS];
	unsigned int trash_seq;
	char dir[PATH_MAX];             /* <data>/functions */
	char trash[PATH_MAX];           /* <data>/trash */
};

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

/*
 * A path, formatted.  registry_open() refuses a data directory so long
 * that our paths (its length plus at most ~400 bytes) could not fit, so a
 * truncation here is a bug; it is still caught rather than acted on.
 */
static int pathf(char *out, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int pathf(char *out, size_t n, const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(out, n, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= n) {
		daemon_log(0, "registry: path too long: %.200s...", out);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* --- names -------------------------------------------------------------- */

static bool charset_ok(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s), i;

	if (!n || n > max || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i]))
			return false;
	return true;
}

bool function_name_ok(const char *name)
{
	return charset_ok(name, NAME_MAX_LEN, "_.-");
}

static bool ident_ok(const char *s, size_t n)
{
	size_t i;

	if (!n || (!isalpha((unsigned char)*s) && *s != '_'))
		return false;
	for (i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* "pkg.module:function": dotted identifiers, a colon, an identifier. */
static bool python_handler_ok(const char *h)
{
	const char *colon = strchr(h, ':'), *p = h, *dot;

	if (!colon || !ident_ok(colon + 1, strlen(colon + 1)))
		return false;
	while (p < colon) {
		dot = memchr(p, '.', (size_t)(colon - p));
		if (!dot)
			dot = colon;
		if (!ident_ok(p, (size_t)(dot - p)))
			return false;
		p = dot + 1;
		if (dot == colon)
			break;
		if (p == colon)
			return false; /* "a.:f" */
	}
	return true;
}

static uint32_t hash_of(const char *tenant, const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *tenant; tenant++)
		h = (h ^ (unsigned char)*tenant) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

/* --- a function in one block -------------------------------------------- */

/*
 * @f with @env ("K=V" strings) in one malloc'ed block: registry_get() is
 * on every invocation, and one allocation plus a copy is all it then costs.
 */
static struct mig_function *pack(const struct mig_function *f, char **env,
				 size_t *size)
{
	size_t n = 0, bytes = 0, i;
	struct mig_function *p;
	char *s;

	for (; env && env[n]; n++)
		bytes += strlen(env[n]) + 1;
	*size = sizeof(*p) + (n + 1) * sizeof(char *) + bytes;
	p = malloc(*size);
	if (!p)
		return NULL;
	*p = *f;
	p->env = (char **)(p + 1);
	s = (char *)(p->env + n + 1);
	for (i = 0; i < n; i++) {
		size_t l = strlen(env[i]) + 1;

		memcpy(s, env[i], l);
		p->env[i] = s;
		s += l;
	}
	p->env[n] = NULL;
	return p;
}

static struct mig_function *copy_packed(const struct mig_function *f,
					size_t size)
{
	struct mig_function *c = malloc(size);
	ptrdiff_t delta;
	char **e;

	if (!c)
		return NULL;
	memcpy(c, f, size);
	delta = (char *)c - (char *)f;
	c->env = (char **)((char *)f->env + delta);
	for (e = c->env; *e; e++)
		*e += delta;
	return c;
}

void function_free(struct mig_function *f)
{
	free(f); /* packed: one block */
}

static void entry_free(struct entry *e)
{
	if (!e)
		return;
	free(e->f);
	json_decref(e->env);
	free(e);
}

/* --- the table (under r->lock) ------------------------------------------ */

static struct entry **slot(struct mig_registry *r, const char *tenant,
			   const char *name)
{
	uint32_t h = hash_of(tenant, name);
	struct entry **pp = &r->b[h % NBUCKETS];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && !strcmp((*pp)->f->name, name) &&
		    !strcmp((*pp)->f->tenant, tenant))
			break;
	return pp;
}

/* Put @e in the table; returns the entry it replaces (or NULL). */
static struct entry *table_swap(struct mig_registry *r, struct entry *e)
{
	struct entry **pp, *old;

	pthread_rwlock_wrlock(&r->lock);
	pp = slot(r, e->f->tenant, e->f->name);
	old = *pp;
	e->next = old ? old->next : NULL;
	*pp = e;
	pthread_rwlock_unlock(&r->lock);
	return old;
}

static struct entry *table_remove(struct mig_registry *r, const char *tenant,
				  const char *name)
{
	struct entry **pp, *old;

	pthread_rwlock_wrlock(&r->lock);
	pp = slot(r, tenant, name);
	old = *pp;
	if (old)
		*pp = old->next;
	pthread_rwlock_unlock(&r->lock);
	return old;
}

struct mig_function *registry_get(struct mig_registry *r, const char *tenant,
				  const char *name)
{
	struct mig_function *f = NULL;
	struct entry *e;

	pthread_rwlock_rdlock(&r->lock);
	e = *slot(r, tenant, name);
	if (e)
		f = copy_packed(e->f, e->fsize);
	pthread_rwlock_unlock(&r->lock);
	return f;
}

/* --- files -------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) && errno != ENOENT)
		daemon_log(0, "registry: cannot remove %s: %s", path,
			   strerror(errno));
	return 0;
}

/* rm -rf @path; never follows symbolic links (an unpacked package's). */
static void rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st))
		return;
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	ssize_t n;

	while (len) {
		n = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static const char *storage_hint(int e)
{
	if (e == ENOSPC || e == EDQUOT)
		return ": the disk of the data directory is full; free space";
	if (e == EACCES || e == EPERM || e == EROFS)
		return ": the daemon cannot write its data directory; check its "
		       "owner and permissions";
	return "";
}

/* Write @len bytes to @path (new file), fsync'ed.  0 or -errno. */
static int write_file(const char *path, const void *data, size_t len,
		      mode_t mode)
{
	int fd, rc;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, data, len);
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (rc)
		unlink(path);
	return rc;
}

static void fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* --- base64 ------------------------------------------------------------- */

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Standard base64 (line breaks allowed, padding optional) into a malloc'ed
 * buffer.  0, or -EINVAL naming the offending character, -EFBIG, -ENOMEM.
 */
static int b64_decode(const char *in, size_t n, uint64_t max,
		      unsigned char **out, size_t *outlen, char *err,
		      size_t errlen)
{
	unsigned char *o;
	uint32_t acc = 0;
	size_t i, len = 0;
	int bits = 0, pad = 0, v;

	if ((uint64_t)n / 4 * 3 > max + 3)
		return fail(err, errlen, -EFBIG, "the artifact is larger than "
			    "the daemon's limit of %llu bytes (max_artifact)",
			    (unsigned long long)max);
	o = malloc(n / 4 * 3 + 3);
	if (!o)
		return fail(err, errlen, -ENOMEM, "out of memory decoding the "
			    "artifact");
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '\n' || c == '\r')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		v = b64_value(c);
		if (v < 0 || pad) {
			free(o);
			return fail(err, errlen, -EINVAL, "\"artifact\" is not "
				    "base64: character %zu is %s; send the file "
				    "base64-encoded (standard alphabet)", i,
				    v < 0 ? "not in the base64 alphabet" :
					    "after the padding");
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[len++] = (unsigned char)(acc >> bits);
		}
	}
	if (pad > 2 || bits >= 6) {
		free(o);
		return fail(err, errlen, -EINVAL, "\"artifact\" is not base64: "
			    "its length is wrong (truncated?); send the whole "
			    "file base64-encoded");
	}
	if (len > max) {
		free(o);
		return fail(err, errlen, -EFBIG, "the artifact has %zu bytes; "
			    "the daemon accepts at most %llu (max_artifact)",
			    len, (unsigned long long)max);
	}
	*out = o;
	*outlen = len;
	return 0;
}

/* --- the settings, from JSON (a PUT body or function.json) ---------------- */

struct spec {
	struct mig_function f;          /* env not set: see env below */
	json_t *env;                    /* {"K": "V"}, a new reference */
	char **envv;                    /* "K=V" strings, malloc'ed */
	const char *b64;                /* the artifact, base64 (PUT) */
	size_t b64len;
	char filename[FILENAME_MAX_LEN + 1];
	char artifact_rel[FILENAME_MAX_LEN + 16]; /* stored */
	enum kind kind;
	uint64_t artifact_size;
	int64_t created, updated;
};

static void spec_free(struct spec *s)
{
	char **e;

	json_decref(s->env);
	for (e = s->envv; e && *e; e++)
		free(*e);
	free(s->envv);
	memset(s, 0, sizeof(*s));
}

/* Fields a client may send; function.json has a few more. */
static const char *const put_keys[] = {
	"name", "language", "artifact", "filename", "artifact_name", "handler",
	"gpu_memory", "profile", "timeout_ms", "keep_alive_ms",
	"max_instances", "env", "python", "network", "limits", "isolation",
	"rootfs", NULL,
};

static const char *const stored_keys[] = {
	"tenant", "artifact_path", "artifact_kind", "artifact_size", "version",
	"created", "updated", NULL,
};

static bool in_list(const char *const *l, const char *k)
{
	for (; *l; l++)
		if (!strcmp(*l, k))
			return true;
	return false;
}

/* "512MiB", "1.5G", 1073741824: bytes (K, M, G, T: powers of 1024). */
static int parse_size(json_t *v, uint64_t *out)
{
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -1;
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	return mig_parse_size(json_string_value(v), out);
}

static int get_uint(json_t *j, const char *key, unsigned int lo,
		    unsigned int hi, unsigned int def, unsigned int *out,
		    char *err, size_t errlen)
{
	json_t *v = json_object_get(j, key);

	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return fail(err, errlen, -EINVAL, "\"%s\" must be an integer "
			    "from %u to %u", key, lo, hi);
	*out = (unsigned int)json_integer_value(v);
	return 0;
}

/* Copy string @key (optional: "" when absent) into @out of @n bytes. */
static int get_str(json_t *j, const char *key, char *out, size_t n,
		   bool required, char *err, size_t errlen)
{
	json_t *v = json_object_get(j, key);

	*out = 0;
	if (!v || json_is_null(v)) {
		if (required)
			return fail(err, errlen, -EINVAL, "\"%s\" is required",
				    key);
		return 0;
	}
	if (!json_is_string(v))
		return fail(err, errlen, -EINVAL, "\"%s\" must be a string", key);
	if (json_string_length(v) >= n)
		return fail(err, errlen, -EINVAL, "\"%s\" is longer than %zu "
			    "bytes", key, n - 1);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

/* Variables the daemon sets for the executor itself. */
static bool reserved_env(const char *k)
{
	static const char *const names[] = {
		"MIG_CONTROL_FD", "MIG_SEGMENT_FD", "MIG_LIFELINE_FD",
		"MIG_SUMMARY_FD", "MIG_EXEC_LIB", "MIG_HANDLER",
		"MIG_ARTIFACT", "MIG_INSTANCE", "MIG_FUNCTION", NULL,
	};

	return in_list(names, k);
}

static int env_add(json_t *env, const char *k, json_t *v, size_t *total,
		   char *err, size_t errlen)
{
	if (!ident_ok(k, strlen(k)) || strlen(k) > 128)
		return fail(err, errlen, -EINVAL, "environment variable name "
			    "\"%.130s\" must be a letter or _ then letters, "
			    "digits or _ (at most 128)", k);
	if (reserved_env(k))
		return fail(err, errlen, -EINVAL, "environment variable %s is "
			    "set by the daemon for the executor; remove it", k);
	if (!json_is_string(v))
		return fail(err, errlen, -EINVAL, "environment variable %s: the "
			    "value must be a string", k);
	if (json_string_length(v) > MAX_ENV_VALUE)
		return fail(err, errlen, -EINVAL, "environment variable %s is "
			    "longer than %u bytes", k, MAX_ENV_VALUE);
	if (json_object_get(env, k))
		return fail(err, errlen, -EINVAL, "environment variable %s is "
			    "given twice", k);
	if (json_object_size(env) >= MAX_ENV)
		return fail(err, errlen, -EINVAL, "more than %d environment "
			    "variables", MAX_ENV);
	*total += strlen(k) + json_string_length(v) + 2;
	if (*total > MAX_ENV_TOTAL)
		return fail(err, errlen, -EINVAL, "the environment is larger than "
			    "%u bytes in all", MAX_ENV_TOTAL);
	json_object_set(env, k, v);
	return 0;
}

/* "env": {"K": "V"} or ["K=V", ...] into s->env and s->envv. */
static int parse_env(json_t *j, struct spec *s, char *err, size_t errlen)
{
	json_t *v = json_object_get(j, "env"), *val;
	size_t total = 0, i = 0;
	const char *k;
	int rc = 0;

	s->env = json_object();
	if (!s->env)
		return -ENOMEM;
	if (!v || json_is_null(v)) {
		/* none */
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, val)
			if ((rc = env_add(s->env, k, val, &total, err, errlen)))
				return rc;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, val) {
			const char *kv = json_string_value(val), *eq;
			char key[130];
			json_t *sv;

			eq = kv ? strchr(kv, '=') : NULL;
			if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key))
				return fail(err, errlen, -EINVAL, "env[%zu] must "
					    "be a \"NAME=VALUE\" string", i);
			snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
			sv = json_string(eq + 1);
			rc = sv ? env_add(s->env, key, sv, &total, err, errlen) :
				  -ENOMEM;
			json_decref(sv);
			if (rc)
				return rc;
		}
	} else {
		return fail(err, errlen, -EINVAL, "\"env\" must be an object "
			    "{\"NAME\": \"VALUE\"} or an array of \"NAME=VALUE\"");
	}
	s->envv = calloc(json_object_size(s->env) + 1, sizeof(char *));
	if (!s->envv)
		return -ENOMEM;
	i = 0;
	json_object_foreach(s->env, k, val)
		if (asprintf(&s->envv[i++], "%s=%s", k,
			     json_string_value(val)) < 0)
			return -ENOMEM;
	return 0;
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && !strcasecmp(s + n - m, suf);
}

static int kind_of_name(const char *lang, const char *name, enum kind *k)
{
	if (!strcmp(lang, "c"))
		*k = K_SO;
	else if (has_suffix(name, ".py"))
		*k = K_PY;
	else if (has_suffix(name, ".zip"))
		*k = K_ZIP;
	else if (has_suffix(name, ".tar.gz") || has_suffix(name, ".tgz"))
		*k = K_TGZ;
	else
		return -1;
	return 0;
}

/* "limits": {"memory", "cpus", "pids", "tmp"}: host resources of one
 * instance; absent ones take the node's defaults. */
static int parse_limits(json_t *j, struct mig_function *f, char *err,
			size_t errlen)
{
	json_t *l = json_object_get(j, "limits"), *v;
	const char *k;

	if (!l || json_is_null(l))
		return 0;
	if (!json_is_object(l))
		return fail(err, errlen, -EINVAL, "\"limits\" must be an object "
			    "such as {\"memory\": \"2GiB\", \"cpus\": 1.5, "
			    "\"pids\": 256, \"tmp\": \"64MiB\"}");
	json_object_foreach(l, k, v) {
		if (!strcmp(k, "memory")) {
			if (parse_size(v, &f->mem_limit) || f->mem_limit < (16ull << 20))
				return fail(err, errlen, -EINVAL, "\"limits.memory\" "
					    "must be a size of at least 16MiB, "
					    "such as \"2GiB\"");
		} else if (!strcmp(k, "tmp")) {
			if (parse_size(v, &f->tmp) || f->tmp < (1ull << 20) ||
			    f->tmp > (1ull << 40))
				return fail(err, errlen, -EINVAL, "\"limits.tmp\" "
					    "must be a size from 1MiB to 1TiB");
		} else if (!strcmp(k, "cpus")) {
			if (!json_is_number(v) || json_number_value(v) < 0.01 ||
			    json_number_value(v) > 4096)
				return fail(err, errlen, -EINVAL, "\"limits.cpus\" "
					    "must be a number of CPUs from 0.01 "
					    "to 4096");
			f->cpus = json_number_value(v);
		} else if (!strcmp(k, "pids")) {
			if (!json_is_integer(v) || json_integer_value(v) < 8 ||
			    json_integer_value(v) > (1 << 22))
				return fail(err, errlen, -EINVAL, "\"limits.pids\" "
					    "must be an integer from 8 to 4194304");
			f->pids = (unsigned int)json_integer_value(v);
		} else {
			return fail(err, errlen, -EINVAL, "unknown field "
				    "\"limits.%.64s\"; the limits are memory, "
				    "cpus, pids, tmp", k);
		}
	}
	return 0;
}

/* "isolation", "rootfs", "network" and "limits". */
static int parse_isolation(json_t *j, struct mig_function *f, char *err,
			   size_t errlen)
{
	json_t *v = json_object_get(j, "network");
	int rc;

	if (v && !json_is_null(v) && !json_is_boolean(v))
		return fail(err, errlen, -EINVAL, "\"network\" must be true or "
			    "false");
	f->network = json_is_true(v);
	if ((rc = get_str(j, "isolation", f->isolation, sizeof(f->isolation),
			  false, err, errlen)))
		return rc;
	if (*f->isolation && strcmp(f->isolation, "sandbox") &&
	    strcmp(f->isolation, "oci") && strcmp(f->isolation, "bare"))
		return fail(err, errlen, -EINVAL, "\"isolation\" is \"%s\": use "
			    "\"sandbox\" or \"oci\" (or leave it out for the "
			    "node's)", f->isolation);
	if ((rc = get_str(j, "rootfs", f->rootfs, sizeof(f->rootfs), false,
			  err, errlen)))
		return rc;
	if (*f->rootfs && (*f->rootfs != '/' || strstr(f->rootfs, "/../") ||
			   strcmp(f->isolation, "oci")))
		return fail(err, errlen, -EINVAL, "\"rootfs\" is the absolute "
			    "path of a root file system on the node, for "
			    "\"isolation\": \"oci\" only");
	return parse_limits(j, f, err, errlen);
}

static int parse_common(json_t *j, struct spec *s, char *err, size_t errlen)
{
	struct mig_function *f = &s->f;
	json_t *v;
	int rc;

	if ((rc = get_str(j, "language", f->language, sizeof(f->language),
			  true, err, errlen)))
		return rc;
	if (strcmp(f->language, "c") && strcmp(f->language, "python"))
		return fail(err, errlen, -EINVAL, "\"language\" is \"%s\": use "
			    "\"c\" or \"python\"", f->language);
	if ((rc = get_str(j, "handler", f->handler, sizeof(f->handler), true,
			  err, errlen)))
		return rc;
	if (!strcmp(f->language, "c") &&
	    !ident_ok(f->handler, strlen(f->handler)))
		return fail(err, errlen, -EINVAL, "\"handler\" \"%s\" is not a C "
			    "symbol: give the name of the function the shared "
			    "object exports", f->handler);
	if (!strcmp(f->language, "python") && !python_handler_ok(f->handler))
		return fail(err, errlen, -EINVAL, "\"handler\" \"%s\" is not "
			    "\"module:function\" (e.g. \"hello:handler\")",
			    f->handler);
	v = json_object_get(j, "gpu_memory");
	if (!v || json_is_null(v)) {
		f->gpu_memory = DEFAULT_GPU_MEMORY;
	} else if (parse_size(v, &f->gpu_memory)) {
		return fail(err, errlen, -EINVAL, "\"gpu_memory\" must be a "
			    "number of bytes or a size such as \"512MiB\" or "
			    "\"2GiB\"");
	}
	if (f->gpu_memory < MIN_GPU_MEMORY || f->gpu_memory > MAX_GPU_MEMORY)
		return fail(err, errlen, -EINVAL, "\"gpu_memory\" of %llu bytes "
			    "is out of range: give 1MiB to 16TiB",
			    (unsigned long long)f->gpu_memory);
	if ((rc = get_str(j, "profile", f->profile, sizeof(f->profile), false,
			  err, errlen)))
		return rc;
	if (*f->profile && !charset_ok(f->profile, sizeof(f->profile) - 1,
				       "_.+-"))
		return fail(err, errlen, -EINVAL, "\"profile\" \"%s\" is not a "
			    "MIG profile name such as \"1g.18gb\" or \"whole\"",
			    f->profile);
	if ((rc = get_uint(j, "timeout_ms", 1, MAX_TIMEOUT_MS,
			   DEFAULT_TIMEOUT_MS, &f->timeout_ms, err, errlen)) ||
	    (rc = get_uint(j, "keep_alive_ms", 1, MAX_TIMEOUT_MS,
			   DEFAULT_KEEP_ALIVE_MS, &f->keep_alive_ms, err,
			   errlen)) ||
	    (rc = get_uint(j, "max_instances", 0, MAX_INSTANCES, 0,
			   &f->max_instances, err, errlen)))
		return rc;
	if ((rc = get_str(j, "python", f->python, sizeof(f->python), false,
			  err, errlen)))
		return rc;
	if (*f->python && strcmp(f->language, "python"))
		return fail(err, errlen, -EINVAL, "\"python\" applies to Python "
			    "functions only; leave it out for a C function");
	for (const char *p = f->python; *p; p++)
		if ((unsigned char)*p < 0x20)
			return fail(err, errlen, -EINVAL, "\"python\" has a "
				    "control character; give the interpreter's "
				    "path");
	if ((rc = parse_isolation(j, f, err, errlen)))
		return rc;
	return parse_env(j, s, err, errlen);
}

/* A PUT body: settings plus the artifact (still base64). */
static int parse_put(json_t *j, const char *name, struct spec *s, char *err,
		     size_t errlen)
{
	const char *k, *fname = NULL;
	json_t *v;
	int rc;

	if (!json_is_object(j))
		return fail(err, errlen, -EINVAL, "the body must be a JSON object "
			    "with the function's settings");
	json_object_foreach(j, k, v)
		if (!in_list(put_keys, k))
			return fail(err, errlen, -EINVAL, "unknown field \"%.100s\"; "
				    "the fields are language, artifact, "
				    "filename, handler, gpu_memory, profile, "
				    "timeout_ms, keep_alive_ms, max_instances, "
				    "env, python, network, limits, isolation, "
				    "rootfs", k);
	v = json_object_get(j, "name");
	if (v && (!json_is_string(v) || strcmp(json_string_value(v), name)))
		return fail(err, errlen, -EINVAL, "\"name\" in the body is not "
			    "the name in the URL (\"%s\"); leave it out or make "
			    "them the same", name);
	if ((rc = parse_common(j, s, err, errlen)))
		return rc;
	v = json_object_get(j, "artifact");
	if (!json_is_string(v) || !json_string_length(v))
		return fail(err, errlen, -EINVAL, "\"artifact\" is required: the "
			    "content of the %s, base64-encoded",
			    !strcmp(s->f.language, "c") ? "shared object" :
			    ".py file, .zip or .tar.gz");
	s->b64 = json_string_value(v);
	s->b64len = json_string_length(v);
	v = json_object_get(j, "filename");
	if (!v || json_is_null(v))
		v = json_object_get(j, "artifact_name");
	if (v && !json_is_null(v)) {
		fname = json_string_value(v);
		if (!fname || !charset_ok(fname, FILENAME_MAX_LEN, "_.+-"))
			return fail(err, errlen, -EINVAL, "\"filename\" must be "
				    "a file name (no directory) of 1 to %d of "
				    "A-Z a-z 0-9 _ . + -", FILENAME_MAX_LEN);
		snprintf(s->filename, sizeof(s->filename), "%s", fname);
		if (kind_of_name(s->f.language, fname, &s->kind))
			return fail(err, errlen, -EINVAL, "\"filename\" \"%s\": "
				    "a Python function is a .py file, a .zip or "
				    "a .tar.gz (or .tgz)", fname);
	}
	return 0;
}

/* "v<N>/<file>": the only shape a stored artifact's path has. */
static bool rel_ok(const char *rel)
{
	const char *p = rel + 1;

	if (*rel != 'v' || !isdigit((unsigned char)*p))
		return false;
	while (isdigit((unsigned char)*p))
		p++;
	return *p == '/' && charset_ok(p + 1, FILENAME_MAX_LEN, "_.+-");
}

/* function.json: settings plus where the stored artifact is. */
static int parse_stored(json_t *j, struct spec *s, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	int rc;

	if (!json_is_object(j))
		return fail(err, errlen, -EINVAL, "not a JSON object");
	json_object_foreach(j, k, v)
		if (!in_list(put_keys, k) && !in_list(stored_keys, k))
			return fail(err, errlen, -EINVAL, "unknown field \"%s\"",
				    k);
	if ((rc = parse_common(j, s, err, errlen)) ||
	    (rc = get_str(j, "artifact_name", s->filename, sizeof(s->filename),
			  true, err, errlen)) ||
	    (rc = get_str(j, "artifact_path", s->artifact_rel,
			  sizeof(s->artifact_rel), true, err, errlen)) ||
	    (rc = get_uint(j, "version", 1, UINT32_MAX, 1, &s->f.version, err,
			   errlen)))
		return rc;
	if (!rel_ok(s->artifact_rel))
		return fail(err, errlen, -EINVAL, "\"artifact_path\" must be "
			    "v<N>/<file> inside the function's directory");
	if (kind_of_name(s->f.language, s->artifact_rel, &s->kind) &&
	    kind_of_name(s->f.language, s->filename, &s->kind))
		return fail(err, errlen, -EINVAL, "unknown artifact kind");
	v = json_object_get(j, "artifact_kind");
	for (int i = 0; json_is_string(v) && i <= K_TGZ; i++)
		if (!strcmp(json_string_value(v), kind_names[i]))
			s->kind = (enum kind)i;
	v = json_object_get(j, "artifact_size");
	s->artifact_size = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
	v = json_object_get(j, "created");
	s->created = json_is_integer(v) ? json_integer_value(v) : 0;
	v = json_object_get(j, "updated");
	s->updated = json_is_integer(v) ? json_integer_value(v) : s->created;
	return 0;
}

/* --- entries ------------------------------------------------------------ */

static void fn_dir(const struct mig_registry *r, const char *tenant,
		   const char *name, char *out, size_t n)
{
	pathf(out, n, "%s/%s/%s", r->dir, tenant, name);
}

static struct entry *entry_new(struct mig_registry *r, struct spec *s)
{
	struct entry *e = calloc(1, sizeof(*e));
	char dir[PATH_MAX];

	if (!e)
		return NULL;
	fn_dir(r, s->f.tenant, s->f.name, dir, sizeof(dir));
	pathf(s->f.artifact, sizeof(s->f.artifact), "%s/%s", dir,
		 s->artifact_rel);
	/* One log per function, across its versions and instances. */
	pathf(s->f.log_path, sizeof(s->f.log_path), "%s/log", dir);
	e->f = pack(&s->f, s->envv, &e->fsize);
	if (!e->f) {
		free(e);
		return NULL;
	}
	e->hash = hash_of(s->f.tenant, s->f.name);
	snprintf(e->artifact_name, sizeof(e->artifact_name), "%s", s->filename);
	snprintf(e->artifact_rel, sizeof(e->artifact_rel), "%s",
		 s->artifact_rel);
	e->kind = s->kind;
	e->artifact_size = s->artifact_size;
	e->created = s->created;
	e->updated = s->updated;
	e->env = json_incref(s->env);
	return e;
}

static json_t *iso_time(int64_t t)
{
	char buf[32];
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

/* What GET answers (@stored: what function.json holds). */
static json_t *entry_json(const struct entry *e, bool stored)
{
	const struct mig_function *f = e->f;
	json_t *j;

	j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:I,s:I,s:O,s:s,s:I,s:s}",
		      "name", f->name, "language", f->language,
		      "handler", f->handler, "artifact_name", e->artifact_name,
		      "artifact_size", (json_int_t)e->artifact_size,
		      "artifact_kind", kind_names[e->kind],
		      "gpu_memory", (json_int_t)f->gpu_memory,
		      "timeout_ms", (json_int_t)f->timeout_ms,
		      "keep_alive_ms", (json_int_t)f->keep_alive_ms,
		      "env", e->env, "profile", f->profile,
		      "max_instances", (json_int_t)f->max_instances,
		      "python", f->python);
	if (!j)
		return NULL;
	json_object_set_new(j, "version", json_integer(f->version));
	json_object_set_new(j, "network", json_boolean(f->network));
	if (*f->isolation)
		json_object_set_new(j, "isolation", json_string(f->isolation));
	if (*f->rootfs)
		json_object_set_new(j, "rootfs", json_string(f->rootfs));
	if (f->mem_limit || f->cpus > 0 || f->pids || f->tmp) {
		json_t *l = json_object();

		if (f->mem_limit)
			json_object_set_new(l, "memory", json_integer((json_int_t)f->mem_limit));
		if (f->cpus > 0)
			json_object_set_new(l, "cpus", json_real(f->cpus));
		if (f->pids)
			json_object_set_new(l, "pids", json_integer(f->pids));
		if (f->tmp)
			json_object_set_new(l, "tmp", json_integer((json_int_t)f->tmp));
		json_object_set_new(j, "limits", l);
	}
	if (stored) {
		json_object_set_new(j, "tenant", json_string(f->tenant));
		json_object_set_new(j, "artifact_path",
				    json_string(e->artifact_rel));
		json_object_set_new(j, "created", json_integer(e->created));
		json_object_set_new(j, "updated", json_integer(e->updated));
	} else {
		json_object_set_new(j, "created", iso_time(e->created));
		json_object_set_new(j, "updated", iso_time(e->updated));
	}
	return j;
}

void *registry_describe(struct mig_registry *r, const char *tenant,
			const char *name)
{
	json_t *j = NULL;
	struct entry *e;

	pthread_rwlock_rdlock(&r->lock);
	e = *slot(r, tenant, name);
	if (e)
		j = entry_json(e, false);
	pthread_rwlock_unlock(&r->lock);
	return j;
}

static int by_name(const void *a, const void *b)
{
	const char *x = json_string_value(json_object_get(*(json_t *const *)a,
							  "name"));
	const char *y = json_string_value(json_object_get(*(json_t *const *)b,
							  "name"));

	return strcmp(x ? x : "", y ? y : "");
}

void *registry_list(struct mig_registry *r, const char *tenant)
{
	json_t **v = NULL, *a = json_array();
	size_t n = 0, cap = 0, i;
	struct entry *e;
	bool oom = false;

	if (!a)
		return NULL;
	pthread_rwlock_rdlock(&r->lock);
	for (i = 0; i < NBUCKETS && !oom; i++) {
		for (e = r->b[i]; e && !oom; e = e->next) {
			if (strcmp(e->f->tenant, tenant))
				continue;
			if (n == cap) {
				json_t **nv = realloc(v, (cap ? 2 * cap : 16) *
							 sizeof(*v));

				if (!nv) {
					oom = true;
					break;
				}
				v = nv;
				cap = cap ? 2 * cap : 16;
			}
			v[n] = entry_json(e, false);
			oom = !v[n];
			n += !oom;
		}
	}
	pthread_rwlock_unlock(&r->lock);
	if (n)
		qsort(v, n, sizeof(*v), by_name);
	for (i = 0; i < n; i++)
		json_array_append_new(a, v[i]);
	free(v);
	if (oom) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* --- storing a version -------------------------------------------------- */

static bool magic(const unsigned char *d, size_t n, const char *m, size_t mlen)
{
	return n >= mlen && !memcmp(d, m, mlen);
}

/* The artifact's kind and stored file name; checks its first bytes. */
static int artifact_check(struct spec *s, const unsigned char *d, size_t n,
			  char *err, size_t errlen)
{
	bool gz = magic(d, n, "\x1f\x8b", 2), zip = magic(d, n, "PK\x03\x04", 4) ||
		  magic(d, n, "PK\x05\x06", 4);
	const char *mod;

	if (!strcmp(s->f.language, "c")) {
		if (!magic(d, n, "\x7f" "ELF", 4))
			return fail(err, errlen, -EINVAL, "the artifact is not a "
				    "shared object (no ELF header): build it with "
				    "cc -shared -fPIC (or nvcc -shared) and send "
				    "the .so");
		s->kind = K_SO;
		if (!*s->filename)
			snprintf(s->filename, sizeof(s->filename), "function.so");
		return 0;
	}
	if (!*s->filename) {
		mod = s->f.handler; /* the module, up to the colon */
		s->kind = gz ? K_TGZ : zip ? K_ZIP : K_PY;
		if (s->kind == K_PY)
			snprintf(s->filename, sizeof(s->filename), "%.*s.py",
				 (int)strcspn(mod, ":"), mod);
		else
			snprintf(s->filename, sizeof(s->filename), "package.%s",
				 gz ? "tar.gz" : "zip");
	}
	if (s->kind == K_TGZ && !gz)
		return fail(err, errlen, -EINVAL, "\"%s\" is not gzip-compressed: "
			    "send a .tar.gz made with tar -czf", s->filename);
	if (s->kind == K_ZIP && !zip)
		return fail(err, errlen, -EINVAL, "\"%s\" is not a zip archive",
			    s->filename);
	if (s->kind == K_PY && (gz || zip || memchr(d, 0, n)))
		return fail(err, errlen, -EINVAL, "\"%s\" is not Python source "
			    "(it is binary); a package is a .zip or .tar.gz",
			    s->filename);
	return 0;
}

/* tar -xzf @tarball -C @dir, its complaints in @err. */
/* nftw: a package's files readable (and directories searchable) by the
 * sandboxed function, whatever modes the archive had. */
static int make_readable(const char *path, const struct stat *st, int type,
			 struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_D || type == FTW_DP)
		chmod(path, 0755);
	else if (type == FTW_F)
		chmod(path, (st->st_mode & 0111) ? 0755 : 0644);
	return 0;
}

/*
 * nftw over functions/ at start: make_readable(), except each version's
 * module-cache/ (gpud/modcache.c), which stays the daemon's own.  Levels:
 * 1 tenant, 2 name, 3 v<N>, 4 module-cache, 5 its files.
 */
static int make_readable_but_caches(const char *path, const struct stat *st,
				    int type, struct FTW *ftw)
{
	const char *parent_end = path + ftw->base - 1;

	if (ftw->level == 4 && type == FTW_D &&
	    !strcmp(path + ftw->base, "module-cache"))
		return chmod(path, 0700), 0;
	if (ftw->level == 5 && ftw->base >= 14 &&
	    !strncmp(parent_end - 12, "module-cache", 12))
		return chmod(path, 0600), 0;
	return make_readable(path, st, type, ftw);
}

static int untar(const char *tarball, const char *dir, char *err,
		 size_t errlen)
{
	char *argv[] = { "tar", "-x", "-z", "--no-same-owner",
			 "--no-same-permissions", "-f", (char *)tarball, "-C",
			 (char *)dir, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char msg[1024];
	sigset_t none;
	size_t got = 0;
	ssize_t n;
	int p[2], st = 0, rc;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return fail(err, errlen, -errno, "cannot unpack the package: "
			    "pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	posix_spawnattr_init(&at);
	/* Our threads block the stop signals and we ignore SIGPIPE: tar
	 * must not inherit either. */
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	sigemptyset(&none);
	sigaddset(&none, SIGPIPE);
	posix_spawnattr_setsigdefault(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
				      POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(&pid, "tar", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(p[1]);
	if (rc) {
		close(p[0]);
		return fail(err, errlen, -rc, "cannot run tar to unpack the "
			    "package: %s; install tar or send a .zip",
			    strerror(rc));
	}
	while ((n = read(p[0], msg + got, sizeof(msg) - 1 - got)) > 0 ||
	       (n < 0 && errno == EINTR))
		got += n > 0 ? (size_t)n : 0;
	msg[got] = 0;
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	msg[strcspn(msg, "\n")] = 0;
	return fail(err, errlen, -EINVAL, "the package could not be unpacked "
		    "(tar: %s); send a valid .tar.gz", *msg ? msg : "failed");
}

/* Version @s->f.version's directory, artifact and function.json. */
static int store(struct mig_registry *r, struct spec *s,
		 const unsigned char *data, size_t len, char *err,
		 size_t errlen)
{
	char dir[PATH_MAX], vdir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX];
	struct entry fake = { 0 };
	char *text = NULL;
	json_t *j;
	int rc;

	fn_dir(r, s->f.tenant, s->f.name, dir, sizeof(dir));
	pathf(vdir, sizeof(vdir), "%s/v%u", dir, s->f.version);
	rm_rf(vdir); /* left over from a deploy that did not commit */
	/* The version directory is what a sandboxed instance sees of the node
	 * (read-only, as its own unprivileged uid): readable by all, while
	 * the data directory above it keeps everyone else out. */
	if ((rc = daemon_mkdir_p(vdir, 0755)))
		return fail(err, errlen, rc, "cannot create %s: %s%s", vdir,
			    strerror(-rc), storage_hint(-rc));
	pathf(path, sizeof(path), "%s/%s", vdir, s->filename);
	if ((rc = write_file(path, data, len, 0644)))
		return fail(err, errlen, rc, "cannot store the artifact in %s: "
			    "%s%s", path, strerror(-rc), storage_hint(-rc));
	snprintf(s->artifact_rel, sizeof(s->artifact_rel), "v%u/%s",
		 s->f.version, s->filename);
	if (s->kind == K_TGZ) {
		pathf(tmp, sizeof(tmp), "%s/pkg", vdir);
		if ((rc = daemon_mkdir_p(tmp, 0755)))
			return fail(err, errlen, rc, "cannot create %s: %s%s",
				    tmp, strerror(-rc), storage_hint(-rc));
		if ((rc = untar(path, tmp, err, errlen)))
			return rc;
		nftw(tmp, make_readable, 32, FTW_PHYS);
		unlink(path); /* the unpacked tree is what runs */
		snprintf(s->artifact_rel, sizeof(s->artifact_rel), "v%u/pkg",
			 s->f.version);
	}

	/* function.json: the commit point. */
	fake.f = pack(&s->f, s->envv, &fake.fsize);
	if (!fake.f)
		return fail(err, errlen, -ENOMEM, "out of memory");
	snprintf(fake.artifact_name, sizeof(fake.artifact_name), "%s",
		 s->filename);
	snprintf(fake.artifact_rel, sizeof(fake.artifact_rel), "%s",
		 s->artifact_rel);
	fake.kind = s->kind;
	fake.artifact_size = s->artifact_size;
	fake.created = s->created;
	fake.updated = s->updated;
	fake.env = s->env;
	j = entry_json(&fake, true);
	text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	free(fake.f);
	if (!text)
		return fail(err, errlen, -ENOMEM, "out of memory");
	pathf(tmp, sizeof(tmp), "%s/%s.tmp", dir, META);
	pathf(path, sizeof(path), "%s/%s", dir, META);
	rc = write_file(tmp, text, strlen(text), 0600);
	free(text);
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return fail(err, errlen, rc, "cannot write %s: %s%s", path,
			    strerror(-rc), storage_hint(-rc));
	}
	fsync_dir(dir);
	return 0;
}

/* Remove version directories older than @keep (the previous one stays). */
static void prune(struct mig_registry *r, const char *tenant,
		  const char *name, unsigned int keep)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct dirent *de;
	unsigned int v;
	char extra;
	DIR *d;

	fn_dir(r, tenant, name, dir, sizeof(dir));
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (sscanf(de->d_name, "v%u%c", &v, &extra) != 1 || v >= keep)
			continue;
		pathf(path, sizeof(path), "%s/%s", dir, de->d_name);
		rm_rf(path);
	}
	closedir(d);
}

int registry_put(struct mig_registry *r, const char *tenant, const char *name,
		 void *spec, uint64_t max_artifact, unsigned int *version,
		 bool *created, char *err, size_t errlen)
{
	struct spec s = { 0 };
	unsigned char *data = NULL;
	struct entry *old, *e;
	size_t len = 0;
	int rc;

	if (!function_name_ok(name))
		return fail(err, errlen, -EINVAL, "function name \"%.120s\" must "
			    "be 1 to %d of A-Z a-z 0-9 _ . - (and not . or ..)",
			    name, NAME_MAX_LEN);
	rc = parse_put(spec, name, &s, err, errlen);
	if (!rc)
		rc = b64_decode(s.b64, s.b64len, max_artifact, &data, &len, err,
				errlen);
	if (!rc && !len)
		rc = fail(err, errlen, -EINVAL, "\"artifact\" is empty: send "
			  "the file's content, base64-encoded");
	if (!rc)
		rc = artifact_check(&s, data, len, err, errlen);
	if (rc)
		goto out;
	snprintf(s.f.tenant, sizeof(s.f.tenant), "%s", tenant);
	snprintf(s.f.name, sizeof(s.f.name), "%s", name);
	s.artifact_size = len;
	s.updated = (int64_t)time(NULL);

	pthread_mutex_lock(&r->write_lock);
	pthread_rwlock_rdlock(&r->lock);
	old = *slot(r, tenant, name);
	s.f.version = old ? old->f->version + 1 : 1;
	s.created = old ? old->created : s.updated;
	pthread_rwlock_unlock(&r->lock);
	rc = store(r, &s, data, len, err, errlen);
	e = rc ? NULL : entry_new(r, &s);
	if (!rc && !e)
		rc = fail(err, errlen, -ENOMEM, "out of memory");
	if (!rc) {
		/* Only this thread changes the table now: @old is still it. */
		entry_free(table_swap(r, e));
		prune(r, tenant, name, s.f.version - 1);
		*version = s.f.version;
		*created = !old;
	}
	pthread_mutex_unlock(&r->write_lock);
	if (!rc)
		daemon_log(1, "registry: %s/%s version %u deployed (%s, %zu bytes)",
			   tenant, name, s.f.version, kind_names[s.kind], len);
out:
	free(data);
	spec_free(&s);
	return rc;
}

int registry_delete(struct mig_registry *r, const char *tenant,
		    const char *name)
{
	char dir[PATH_MAX], to[PATH_MAX];
	struct entry *e;

	pthread_mutex_lock(&r->write_lock);
	e = table_remove(r, tenant, name);
	if (!e) {
		pthread_mutex_unlock(&r->write_lock);
		return -ENOENT;
	}
	/* Out of functions/ first (one rename), so a crash in the middle of
	 * removing the files cannot bring back half a function. */
	fn_dir(r, tenant, name, dir, sizeof(dir));
	pathf(to, sizeof(to), "%s/%s.%s.%ld.%u", r->trash, tenant, name,
		 (long)getpid(), r->trash_seq++);
	if (rename(dir, to)) {
		daemon_log(0, "registry: cannot move %s to %s: %s; removing it "
			   "in place", dir, to, strerror(errno));
		rm_rf(dir);
	} else {
		rm_rf(to);
	}
	pthread_mutex_unlock(&r->write_lock);
	daemon_log(1, "registry: %s/%s deleted", tenant, name);
	entry_free(e);
	return 0;
}

/* --- loading ------------------------------------------------------------ */

static int load_one(struct mig_registry *r, const char *tenant,
		    const char *name, char *err, size_t errlen)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct spec s = { 0 };
	json_error_t jerr;
	struct stat st;
	struct entry *e;
	json_t *j;
	int rc;

	fn_dir(r, tenant, name, dir, sizeof(dir));
	pathf(path, sizeof(path), "%s/%s", dir, META);
	j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return fail(err, errlen, -EINVAL, "%s: line %d: %s", path,
			    jerr.line, jerr.text);
	rc = parse_stored(j, &s, err, errlen);
	json_decref(j);
	if (rc)
		goto out;
	/* The function's name was checked (function_name_ok); the tenant's is
	 * any directory in the data dir: one too long was not made by us, and
	 * cut short it could name another tenant. */
	if (snprintf(s.f.tenant, sizeof(s.f.tenant), "%s", tenant) >= (int)sizeof(s.f.tenant) ||
	    snprintf(s.f.name, sizeof(s.f.name), "%s", name) >= (int)sizeof(s.f.name)) {
		rc = fail(err, errlen, -EINVAL, "its tenant or function name is too long");
		goto out;
	}
	pathf(path, sizeof(path), "%s/%s", dir, s.artifact_rel);
	if (stat(path, &st)) {
		rc = fail(err, errlen, -ENOENT, "its artifact %s is missing: "
			  "deploy the function again", path);
		goto out;
	}
	e = entry_new(r, &s);
	if (!e) {
		rc = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	entry_free(table_swap(r, e));
	prune(r, tenant, name, s.f.version - 1);
out:
	spec_free(&s);
	return rc;
}

static int subdirs(const char *path, int (*fn)(void *, const char *),
		   void *arg)
{
	struct dirent *de;
	DIR *d = opendir(path);
	int n = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' &&
		    (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		n += fn(arg, de->d_name);
	}
	closedir(d);
	return n;
}

struct load_ctx {
	struct mig_registry *r;
	const char *tenant;
};

static int load_fn(void *arg, const char *name)
{
	struct load_ctx *x = arg;
	char err[512];

	if (!function_name_ok(name))
		return 0;
	if (load_one(x->r, x->tenant, name, err, sizeof(err))) {
		daemon_log(0, "registry: function %s/%s is not loaded: %s",
			   x->tenant, name, err);
		return 0;
	}
	return 1;
}

static int load_tenant(void *arg, const char *tenant)
{
	struct load_ctx x = { .r = arg, .tenant = tenant };
	char path[PATH_MAX];
	int n;

	pathf(path, sizeof(path), "%s/%s", x.r->dir, tenant);
	n = subdirs(path, load_fn, &x);
	return n > 0 ? n : 0;
}

struct mig_registry *registry_open(const char *data_dir, char *err,
				   size_t errlen)
{
	struct mig_registry *r = calloc(1, sizeof(*r));
	int rc, n;

	if (!r) {
		fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	pthread_rwlock_init(&r->lock, NULL);
	pthread_mutex_init(&r->write_lock, NULL);
	if (strlen(data_dir) > PATH_MAX - 600) {
		fail(err, errlen, -ENAMETOOLONG, "the data directory's name is "
		     "longer than %d bytes: choose a shorter one", PATH_MAX - 600);
		registry_close(r);
		return NULL;
	}
	pathf(r->dir, sizeof(r->dir), "%s/functions", data_dir);
	pathf(r->trash, sizeof(r->trash), "%s/trash", data_dir);
	rm_rf(r->trash); /* deletes a crash interrupted */
	if ((rc = daemon_mkdir_p(r->dir, 0700)) || (rc = daemon_mkdir_p(r->trash, 0700))) {
		fail(err, errlen, rc, "cannot create %s: %s%s", r->dir,
		     strerror(-rc), storage_hint(-rc));
		registry_close(r);
		return NULL;
	}
	/* Code deployed before functions ran sandboxed was stored 0600: make
	 * it readable by the sandboxed uid (the data directory above keeps
	 * everyone else out). */
	nftw(r->dir, make_readable_but_caches, 32, FTW_PHYS);
	n = subdirs(r->dir, load_tenant, r);
	if (n < 0) {
		fail(err, errlen, n, "cannot read %s: %s%s", r->dir,
		     strerror(-n), storage_hint(-n));
		registry_close(r);
		return NULL;
	}
	daemon_log(n ? 0 : 1, "registry: %d function%s loaded from %s", n,
		   n == 1 ? "" : "s", r->dir);
	return r;
}

void registry_close(struct mig_registry *r)
{
	struct entry *e, *next;
	unsigned int i;

	if (!r)
		return;
	for (i = 0; i < NBUCKETS; i++)
		for (e = r->b[i]; e; e = next) {
			next = e->next;
			entry_free(e);
		}
	pthread_rwlock_destroy(&r->lock);
	pthread_mutex_destroy(&r->write_lock);
	free(r);
}

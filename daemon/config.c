/*
 * config.c - mignificentd's configuration: embedded defaults, then the
 * JSON file of --config (if any), then the command-line flags.
 *
 * The daemon must start with no configuration at all, so every setting has
 * a default; the file and the flags only override.  The file is strict: an
 * unknown key or a value of the wrong type is an error that names the key,
 * because a misspelt setting silently ignored is worse than a refusal to
 * start.  Paths end up absolute: the daemon starts its children in other
 * directories, where a relative path would mean something else.
 *
 * The format is described in docs/operations.md.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "arbiter.h"
#include "control.h"
#include "cpulist.h"
#include "daemon.h"
#include "units.h"
#include "segment.h"

#define DEFAULT_ADDR "127.0.0.1"
#define DEFAULT_PORT 10000
#define DEFAULT_MAX_PAYLOAD (64ull << 20)
#define DEFAULT_MAX_ARTIFACT (256ull << 20)
#define DEFAULT_MODULE_CACHE (1ull << 30) /* per deployed version */
#define PAYLOAD_LIMIT (256ull << 20)   /* MIG_CTL_MAX_BODY */
#define ARTIFACT_LIMIT (4ull << 30)
#define TOKEN_MIN 16
/* Host uids of sandboxed functions: far above any login or subordinate
 * (/etc/subuid) range a distribution hands out. */
#define DEFAULT_UID_BASE 1700000000u
#define DEFAULT_UID_COUNT 65536u
#define DEFAULT_SANDBOX_MEMORY (8ull << 30)
#define DEFAULT_SANDBOX_PIDS 1024u
#define DEFAULT_SANDBOX_TMP (256ull << 20)
#define DEFAULT_SANDBOX_POOL 2

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mignificentd [--config FILE] [--listen ADDR:PORT] [--data-dir DIR]\n"
		"                    [--backend cuda|host] [--nvml PATH]\n"
		"                    [--devices LIST] [--isolation MODE] [-v]...\n"
		"\n"
		"  --config FILE      settings in JSON (docs/operations.md); flags win\n"
		"  --listen ADDR:PORT where the HTTP API listens (default 127.0.0.1:10000;\n"
		"                     [::1]:PORT for IPv6, :PORT for every interface, port 0\n"
		"                     for any free one)\n"
		"  --data-dir DIR     functions and the token (default /var/lib/mignificent\n"
		"                     as root, else $XDG_STATE_HOME/mignificent)\n"
		"  --backend B        cuda (the GPUs, found through NVML) or host (the test\n"
		"                     double, no GPU needed)\n"
		"  --nvml PATH        the NVML library (default libnvidia-ml.so.1)\n"
		"  --devices LIST     use only these GPUs/MIG instances: UUIDs or GPU\n"
		"                     indices, comma-separated (default: all)\n"
		"  --isolation MODE   how functions are walled off: sandbox (default; needs\n"
		"                     root), oci (an OCI runtime) or bare (development only:\n"
		"                     NO isolation)\n"
		"  -v, --verbose      more log; twice for every request\n"
		"\n"
		"SIGHUP finds the GPU partitions again; SIGTERM drains and stops.\n");
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* --- values ------------------------------------------------------------- */


/*
 * "ADDR:PORT", "[V6]:PORT" or ":PORT" (every interface) into @c.  The
 * address is resolved later, by http.c, which can then say why it failed.
 */
static int parse_listen(const char *s, struct mig_config *c, char *err,
			size_t errlen)
{
	const char *colon, *host = s;
	size_t hlen;
	char *end;
	long port;

	colon = strrchr(s, ':');
	if (!colon)
		goto bad;
	hlen = (size_t)(colon - s);
	if (*s == '[') {
		if (hlen < 3 || s[hlen - 1] != ']')
			goto bad;
		host = s + 1;
		hlen -= 2;
	} else if (memchr(s, ':', hlen)) {
		goto bad; /* an IPv6 address wants brackets */
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
		goto bad;
	if (hlen >= sizeof(c->listen_addr))
		goto bad;
	if (hlen)
		snprintf(c->listen_addr, sizeof(c->listen_addr), "%.*s",
			 (int)hlen, host);
	else
		snprintf(c->listen_addr, sizeof(c->listen_addr), "0.0.0.0");
	c->listen_port = (int)port;
	return 0;
bad:
	return fail(err, errlen, "listen address \"%s\" is not ADDR:PORT: write "
		    "e.g. 127.0.0.1:10000, [::1]:10000 or :10000", s);
}

/* @path made absolute against @base (a directory, or NULL for the cwd). */
static int absolute(char *out, size_t outlen, const char *path,
		    const char *base, const char *what, char *err,
		    size_t errlen)
{
	char cwd[PATH_MAX];
	int k;

	if (!*path)
		return fail(err, errlen, "%s is empty: give a directory or leave "
			    "it out", what);
	if (*path == '/') {
		if (strlen(path) >= outlen)
			goto long_;
		snprintf(out, outlen, "%s", path);
		return 0;
	}
	if (!base) {
		if (!getcwd(cwd, sizeof(cwd)))
			return fail(err, errlen, "cannot make %s \"%s\" absolute: "
				    "getcwd: %s; give an absolute path", what,
				    path, strerror(errno));
		base = cwd;
	}
	k = snprintf(out, outlen, "%s/%s", base, path);
	if (k < 0 || (size_t)k >= outlen)
		goto long_;
	return 0;
long_:
	return fail(err, errlen, "%s \"%s\" is too long (at most %zu bytes)",
		    what, path, outlen - 1);
}

static bool tenant_name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (!n || n >= sizeof(((struct mig_tenant *)0)->name) ||
	    !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return false;
	return true;
}

static bool token_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n < TOKEN_MIN || n >= sizeof(((struct mig_tenant *)0)->token))
		return false;
	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

/* --- defaults ----------------------------------------------------------- */

static void default_data_dir(char *out, size_t n)
{
	const char *dir = getenv("MIG_DATA_DIR"), *home;

	if (dir && *dir) {
		snprintf(out, n, "%s", dir);
	} else if (geteuid() == 0) {
		snprintf(out, n, "/var/lib/mignificent");
	} else if ((dir = getenv("XDG_STATE_HOME")) && *dir == '/') {
		snprintf(out, n, "%s/mignificent", dir);
	} else if ((home = getenv("HOME")) && *home == '/') {
		snprintf(out, n, "%s/.local/state/mignificent", home);
	} else {
		snprintf(out, n, "/tmp/mignificent-%u", (unsigned int)geteuid());
	}
}

static void defaults(struct mig_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->listen_addr, sizeof(c->listen_addr), DEFAULT_ADDR);
	c->listen_port = DEFAULT_PORT;
	default_data_dir(c->data_dir, sizeof(c->data_dir));
	snprintf(c->backend, sizeof(c->backend), "cuda");
	c->pool_per_partition = 1;
	c->max_payload = DEFAULT_MAX_PAYLOAD;
	c->max_artifact = DEFAULT_MAX_ARTIFACT;
	c->http_threads = 0;
	c->segment_size = MIG_SEGMENT_SIZE_DEFAULT;
	c->module_cache = DEFAULT_MODULE_CACHE;
	c->sharing_max_hold_ms = 30000;
	c->lukewarm_on_pressure = true;
	snprintf(c->isolation, sizeof(c->isolation), "sandbox");
	c->sandbox.uid_base = DEFAULT_UID_BASE;
	c->sandbox.uid_count = DEFAULT_UID_COUNT;
	c->sandbox.memory = DEFAULT_SANDBOX_MEMORY;
	c->sandbox.cpus = 0;
	c->sandbox.pids = DEFAULT_SANDBOX_PIDS;
	c->sandbox.tmp = DEFAULT_SANDBOX_TMP;
	c->sandbox.pool = DEFAULT_SANDBOX_POOL;
	snprintf(c->oci_runtime, sizeof(c->oci_runtime), "crun");
}

static void free_strv(char ***v)
{
	for (char **p = *v; p && *p; p++)
		free(*p);
	free(*v);
	*v = NULL;
}

void config_free(struct mig_config *c)
{
	free_strv(&c->sandbox.ro_paths);
	free_strv(&c->sandbox.hide);
	free_strv(&c->oci_command);
}

/* --- the file ----------------------------------------------------------- */

struct file_ctx {
	const char *path;
	char dir[PATH_MAX];     /* relative paths in the file are from here */
	char *err;
	size_t errlen;
};

static int key_fail(struct file_ctx *x, const char *key, const char *want)
{
	return fail(x->err, x->errlen, "config %s: \"%s\" must be %s", x->path,
		    key, want);
}

static int get_string(struct file_ctx *x, const char *key, json_t *v,
		      char *out, size_t n)
{
	if (!json_is_string(v))
		return key_fail(x, key, "a string");
	if (json_string_length(v) >= n)
		return fail(x->err, x->errlen, "config %s: \"%s\" is longer "
			    "than %zu bytes", x->path, key, n - 1);
	snprintf(out, n, "%s", json_string_value(v));
	return 0;
}

static int get_path(struct file_ctx *x, const char *key, json_t *v, char *out,
		    size_t n)
{
	char tmp[PATH_MAX];

	if (get_string(x, key, v, tmp, sizeof(tmp)))
		return -1;
	return absolute(out, n, tmp, x->dir, key, x->err, x->errlen);
}

static int get_int(struct file_ctx *x, const char *key, json_t *v, int lo,
		   int hi, int *out)
{
	char want[64];

	snprintf(want, sizeof(want), "an integer from %d to %d", lo, hi);
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return key_fail(x, key, want);
	*out = (int)json_integer_value(v);
	return 0;
}

static int get_size(struct file_ctx *x, const char *key, json_t *v,
		    uint64_t *out)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && !mig_parse_size(json_string_value(v), out))
		return 0;
	return key_fail(x, key, "a number of bytes or a size such as \"64MiB\"");
}

static int get_tenants(struct file_ctx *x, json_t *v, struct mig_config *c)
{
	size_t i, n = json_array_size(v);
	json_t *t, *val;
	const char *k;
	int j;

	if (!json_is_array(v))
		return key_fail(x, "tenants", "an array of {\"name\", \"token\"}");
	if (!n)
		return fail(x->err, x->errlen, "config %s: \"tenants\" is empty: "
			    "list at least one, or leave it out for the default "
			    "tenant", x->path);
	if (n > sizeof(c->tenants) / sizeof(c->tenants[0]))
		return fail(x->err, x->errlen, "config %s: %zu tenants; at most "
			    "%zu are supported", x->path, n,
			    sizeof(c->tenants) / sizeof(c->tenants[0]));
	json_array_foreach(v, i, t) {
		struct mig_tenant *m = &c->tenants[i];
		json_t *name = json_object_get(t, "name");
		json_t *token = json_object_get(t, "token");

		if (!json_is_object(t) || !json_is_string(name) ||
		    !json_is_string(token))
			return fail(x->err, x->errlen, "config %s: tenants[%zu] "
				    "must be {\"name\": \"...\", \"token\": \"...\"}",
				    x->path, i);
		json_object_foreach(t, k, val)
			if (strcmp(k, "name") && strcmp(k, "token"))
				return fail(x->err, x->errlen, "config %s: "
					    "tenants[%zu] has an unknown key "
					    "\"%s\" (known: name, token)",
					    x->path, i, k);
		if (!tenant_name_ok(json_string_value(name)))
			return fail(x->err, x->errlen, "config %s: tenant name "
				    "\"%s\" must be 1 to 63 of A-Z a-z 0-9 _ . - "
				    "(and not . or ..)", x->path,
				    json_string_value(name));
		if (!token_ok(json_string_value(token)))
			return fail(x->err, x->errlen, "config %s: the token of "
				    "tenant \"%s\" must be %d to %zu printable "
				    "characters without spaces; make one with "
				    "`openssl rand -hex 32`", x->path,
				    json_string_value(name), TOKEN_MIN,
				    sizeof(m->token) - 1);
		snprintf(m->name, sizeof(m->name), "%s", json_string_value(name));
		snprintf(m->token, sizeof(m->token), "%s",
			 json_string_value(token));
		for (j = 0; j < (int)i; j++) {
			if (!strcmp(c->tenants[j].name, m->name))
				return fail(x->err, x->errlen, "config %s: "
					    "tenant \"%s\" is listed twice",
					    x->path, m->name);
			if (!strcmp(c->tenants[j].token, m->token))
				return fail(x->err, x->errlen, "config %s: "
					    "tenants \"%s\" and \"%s\" have the "
					    "same token; give each its own",
					    x->path, c->tenants[j].name, m->name);
		}
	}
	c->ntenants = (int)n;
	return 0;
}

static const char *const known_keys =
	"listen, data_dir, backend, nvml_path, bin_dir, shim_dir, lib_dir, "
	"tenants, pool_per_partition, max_payload, max_artifact, "
	"http_threads, segment_size, verbose, metrics_public, isolation, "
	"allow_bare, sandbox, oci, module_cache, sharing, sharing_max_hold_ms, "
	"executor_poll_us, lukewarm";

/* An array of strings (absolute paths if @paths) into a NULL-ended
 * vector. */
static int get_strv(struct file_ctx *x, const char *key, json_t *v, bool paths,
		    char ***out)
{
	size_t i, n = json_array_size(v);
	json_t *e;
	char **vec;

	if (!json_is_array(v) || n > 4096)
		return key_fail(x, key, paths ? "an array of absolute paths" :
				"an array of strings");
	vec = calloc(n + 1, sizeof(*vec));
	if (!vec)
		return fail(x->err, x->errlen, "out of memory");
	json_array_foreach(v, i, e) {
		const char *s = json_string_value(e);

		if (!s || (paths && (*s != '/' || strstr(s, "/../"))) ||
		    !(vec[i] = strdup(s))) {
			free_strv(&vec);
			return key_fail(x, key, paths ? "an array of absolute paths" :
					"an array of strings");
		}
	}
	free_strv(out);
	*out = vec;
	return 0;
}

static int get_sandbox(struct file_ctx *x, json_t *obj, struct mig_config *c)
{
	struct mig_sandbox_config *s = &c->sandbox;
	const char *k;
	json_t *v;
	int n = 0;

	if (!json_is_object(obj))
		return key_fail(x, "sandbox", "an object ({\"memory\": \"4GiB\", ...})");
	json_object_foreach(obj, k, v) {
		int rc;

		if (!strcmp(k, "uid_base")) {
			if (!json_is_integer(v) || json_integer_value(v) < 1000 ||
			    json_integer_value(v) > 0xf0000000ll)
				return key_fail(x, "sandbox.uid_base", "an integer from 1000 to 4026531840");
			s->uid_base = (unsigned int)json_integer_value(v);
			rc = 0;
		} else if (!strcmp(k, "uid_count")) {
			rc = get_int(x, "sandbox.uid_count", v, 1, 1 << 20, &n);
			s->uid_count = (unsigned int)n;
		} else if (!strcmp(k, "memory")) {
			rc = get_size(x, "sandbox.memory", v, &s->memory);
		} else if (!strcmp(k, "tmp")) {
			rc = get_size(x, "sandbox.tmp", v, &s->tmp);
		} else if (!strcmp(k, "pids")) {
			rc = get_int(x, "sandbox.pids", v, 0, 1 << 22, &n);
			s->pids = (unsigned int)n;
		} else if (!strcmp(k, "cpus")) {
			if (!json_is_number(v) || json_number_value(v) < 0 ||
			    json_number_value(v) > 4096)
				return key_fail(x, "sandbox.cpus", "a number of CPUs (0: no limit)");
			s->cpus = json_number_value(v);
			rc = 0;
		} else if (!strcmp(k, "ro_paths")) {
			rc = get_strv(x, "sandbox.ro_paths", v, true, &s->ro_paths);
		} else if (!strcmp(k, "hide")) {
			rc = get_strv(x, "sandbox.hide", v, true, &s->hide);
		} else if (!strcmp(k, "pool")) {
			rc = get_int(x, "sandbox.pool", v, 0, 64, &s->pool);
		} else if (!strcmp(k, "cgroup_parent")) {
			rc = get_path(x, "sandbox.cgroup_parent", v, s->cgroup_parent,
				      sizeof(s->cgroup_parent));
		} else if (!strcmp(k, "cpu_placement")) {
			const char *p = json_string_value(v);

			if (!p || (strcmp(p, "shared") && strcmp(p, "exclusive")))
				return key_fail(x, "sandbox.cpu_placement",
						"\"shared\" (every instance may run on every CPU of the pool) or \"exclusive\" (an instance with a CPU limit gets that many CPUs of its own)");
			s->cpus_exclusive = !strcmp(p, "exclusive");
			rc = 0;
		} else if (!strcmp(k, "cpu_pool")) {
			const char *p = json_string_value(v);
			cpu_set_t set, mine, outside;
			char list[512], have[512];

			if (!p || strlen(p) >= sizeof(s->cpu_pool) ||
			    mig_cpulist_parse(p, &set))
				return key_fail(x, "sandbox.cpu_pool",
						"a CPU list such as \"2-15\" or \"0-7,16-23\"");
			if (sched_getaffinity(0, sizeof(mine), &mine))
				return fail(x->err, x->errlen, "config %s: sandbox.cpu_pool: cannot read the CPUs this daemon may run on: %s",
					    x->path, strerror(errno));
			mig_cpulist_minus(&outside, &set, &mine);
			if (CPU_COUNT(&outside)) {
				mig_cpulist_format(&outside, list, sizeof(list));
				mig_cpulist_format(&mine, have, sizeof(have));
				return fail(x->err, x->errlen, "config %s: \"sandbox.cpu_pool\" names CPUs %s, which this daemon may not run on (it may run on %s)",
					    x->path, list, have);
			}
			mig_cpulist_format(&set, s->cpu_pool, sizeof(s->cpu_pool));
			rc = 0;
		} else {
			return fail(x->err, x->errlen, "config %s: unknown key \"sandbox.%s\" "
				    "(known: uid_base, uid_count, memory, cpus, pids, tmp, "
				    "ro_paths, hide, cgroup_parent, pool, cpu_placement, "
				    "cpu_pool)", x->path, k);
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* "lukewarm": {"swap_after_ms": N, "host_memory": "64GiB", "on_pressure": true} */
static int get_lukewarm(struct file_ctx *x, json_t *v, struct mig_config *c)
{
	const char *k;
	json_t *m;

	if (!json_is_object(v))
		return key_fail(x, "lukewarm", "an object: {\"swap_after_ms\": N, \"host_memory\": SIZE}");
	json_object_foreach(v, k, m) {
		int ms = 0;

		if (!strcmp(k, "swap_after_ms")) {
			if (get_int(x, "lukewarm.swap_after_ms", m, 0, 86400000, &ms))
				return -1;
			c->lukewarm_after_ms = (unsigned int)ms;
		} else if (!strcmp(k, "host_memory")) {
			if (get_size(x, "lukewarm.host_memory", m, &c->lukewarm_host_memory))
				return -1;
		} else if (!strcmp(k, "on_pressure")) {
			if (!json_is_boolean(m))
				return key_fail(x, "lukewarm.on_pressure", "true or false");
			c->lukewarm_on_pressure = json_is_true(m);
		} else {
			return fail(x->err, x->errlen, "config %s: unknown key \"lukewarm.%s\" "
				    "(known: swap_after_ms, host_memory, on_pressure)", x->path, k);
		}
	}
	return 0;
}

/*
 * "sharing": "overlap-cpu-copy", or {"default": "...", "<partition UUID>":
 * "...", ...}.
 */
static int get_sharing(struct file_ctx *x, json_t *v, struct mig_config *c)
{
	static const char want[] = "\"time-sharing\", \"sequential\", "
				   "\"overlap-cpu\" or \"overlap-cpu-copy\", or an "
				   "object of those by partition UUID and \"default\"";
	const char *k;
	json_t *m;

	if (json_is_string(v)) {
		c->sharing = mig_sharing_parse(json_string_value(v));
		return c->sharing < 0 ? key_fail(x, "sharing", want) : 0;
	}
	if (!json_is_object(v))
		return key_fail(x, "sharing", want);
	c->nsharing_part = 0;
	json_object_foreach(v, k, m) {
		int model = json_is_string(m) ? mig_sharing_parse(json_string_value(m)) : -1;

		if (model < 0)
			return key_fail(x, "sharing", want);
		if (!strcmp(k, "default")) {
			c->sharing = model;
			continue;
		}
		if (c->nsharing_part == (int)(sizeof(c->sharing_part) /
					      sizeof(c->sharing_part[0])) ||
		    strlen(k) >= sizeof(c->sharing_part[0].uuid))
			return fail(x->err, x->errlen, "config %s: \"sharing\" lists "
				    "too many partitions, or a UUID too long", x->path);
		snprintf(c->sharing_part[c->nsharing_part].uuid,
			 sizeof(c->sharing_part[0].uuid), "%s", k);
		c->sharing_part[c->nsharing_part++].model = model;
	}
	return 0;
}

static int get_oci(struct file_ctx *x, json_t *obj, struct mig_config *c)
{
	const char *k;
	json_t *v;

	if (!json_is_object(obj))
		return key_fail(x, "oci", "an object ({\"runtime\": \"crun\"})");
	json_object_foreach(obj, k, v) {
		int rc;

		if (!strcmp(k, "runtime"))
			rc = get_string(x, "oci.runtime", v, c->oci_runtime,
					sizeof(c->oci_runtime));
		else if (!strcmp(k, "command"))
			rc = get_strv(x, "oci.command", v, false, &c->oci_command);
		else
			return fail(x->err, x->errlen, "config %s: unknown key \"oci.%s\" "
				    "(known: runtime, command)", x->path, k);
		if (rc)
			return rc;
	}
	if (c->oci_command && !c->oci_command[0])
		return key_fail(x, "oci.command", "a non-empty array (a command template)");
	return 0;
}

static int apply_key(struct file_ctx *x, const char *k, json_t *v,
		     struct mig_config *c)
{
	char tmp[128];

	if (!strcmp(k, "listen")) {
		char why[256];

		if (get_string(x, k, v, tmp, sizeof(tmp)))
			return -1;
		if (parse_listen(tmp, c, why, sizeof(why)))
			return fail(x->err, x->errlen, "config %s: %s", x->path,
				    why);
		return 0;
	}
	if (!strcmp(k, "data_dir"))
		return get_path(x, k, v, c->data_dir, sizeof(c->data_dir));
	if (!strcmp(k, "backend"))
		return get_string(x, k, v, c->backend, sizeof(c->backend));
	if (!strcmp(k, "nvml_path")) /* a library name is looked up: as is */
		return get_string(x, k, v, c->nvml_path, sizeof(c->nvml_path));
	if (!strcmp(k, "bin_dir"))
		return get_path(x, k, v, c->bin_dir, sizeof(c->bin_dir));
	if (!strcmp(k, "shim_dir"))
		return get_path(x, k, v, c->shim_dir, sizeof(c->shim_dir));
	if (!strcmp(k, "lib_dir"))
		return get_path(x, k, v, c->lib_dir, sizeof(c->lib_dir));
	if (!strcmp(k, "tenants"))
		return get_tenants(x, v, c);
	if (!strcmp(k, "pool_per_partition"))
		return get_int(x, k, v, 0, 64, &c->pool_per_partition);
	if (!strcmp(k, "max_payload"))
		return get_size(x, k, v, &c->max_payload);
	if (!strcmp(k, "max_artifact"))
		return get_size(x, k, v, &c->max_artifact);
	if (!strcmp(k, "http_threads"))
		return get_int(x, k, v, 0, 1024, &c->http_threads);
	if (!strcmp(k, "segment_size"))
		return get_size(x, k, v, &c->segment_size);
	if (!strcmp(k, "module_cache"))
		return get_size(x, k, v, &c->module_cache);
	if (!strcmp(k, "sharing"))
		return get_sharing(x, v, c);
	if (!strcmp(k, "lukewarm"))
		return get_lukewarm(x, v, c);
	if (!strcmp(k, "sharing_max_hold_ms")) {
		int ms = 0;

		if (get_int(x, k, v, 0, 86400000, &ms))
			return -1;
		c->sharing_max_hold_ms = (unsigned int)ms;
		return 0;
	}
	if (!strcmp(k, "executor_poll_us")) {
		int us = 0;

		if (get_int(x, k, v, 0, MIG_EXEC_POLL_US_MAX, &us))
			return -1;
		c->executor_poll_us = (unsigned int)us;
		return 0;
	}
	if (!strcmp(k, "verbose"))
		return get_int(x, k, v, 0, 3, &c->verbose);
	if (!strcmp(k, "isolation"))
		return get_string(x, k, v, c->isolation, sizeof(c->isolation));
	if (!strcmp(k, "allow_bare")) {
		if (!json_is_boolean(v))
			return key_fail(x, k, "true or false");
		c->allow_bare = json_is_true(v);
		return 0;
	}
	if (!strcmp(k, "sandbox"))
		return get_sandbox(x, v, c);
	if (!strcmp(k, "oci"))
		return get_oci(x, v, c);
	if (!strcmp(k, "metrics_public")) {
		if (!json_is_boolean(v))
			return key_fail(x, k, "true or false");
		c->metrics_public = json_is_true(v);
		return 0;
	}
	return fail(x->err, x->errlen, "config %s: unknown key \"%s\" (known: "
		    "%s)", x->path, k, known_keys);
}

static int load_file(const char *path, struct mig_config *c, char *err,
		     size_t errlen)
{
	struct file_ctx x = { .path = path, .err = err, .errlen = errlen };
	json_error_t jerr;
	const char *k;
	json_t *j, *v;
	char *slash;
	int ret = 0;

	if (absolute(x.dir, sizeof(x.dir), path, NULL, "--config", err, errlen))
		return -1;
	slash = strrchr(x.dir, '/');
	if (slash == x.dir)
		slash[1] = 0;
	else if (slash)
		*slash = 0;
	j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		if (jerr.line < 1)
			return fail(err, errlen, "config %s: %s", path, jerr.text);
		return fail(err, errlen, "config %s: line %d, column %d: %s: fix "
			    "the JSON", path, jerr.line, jerr.column, jerr.text);
	}
	if (!json_is_object(j)) {
		json_decref(j);
		return fail(err, errlen, "config %s: the file must hold one JSON "
			    "object ({\"listen\": \"127.0.0.1:10000\", ...})",
			    path);
	}
	json_object_foreach(j, k, v) {
		if (apply_key(&x, k, v, c)) {
			ret = -1;
			break;
		}
	}
	json_decref(j);
	return ret;
}

/* --- checks ------------------------------------------------------------- */

static int check(struct mig_config *c, char *err, size_t errlen)
{
	if (strcmp(c->backend, "cuda") && strcmp(c->backend, "host"))
		return fail(err, errlen, "backend \"%s\" is unknown: use cuda "
			    "(the GPUs) or host (the test double)", c->backend);
	if (!c->max_payload || c->max_payload > PAYLOAD_LIMIT)
		return fail(err, errlen, "max_payload %llu is out of range: give "
			    "1 byte to %llu MiB",
			    (unsigned long long)c->max_payload,
			    PAYLOAD_LIMIT >> 20);
	if (!c->max_artifact || c->max_artifact > ARTIFACT_LIMIT)
		return fail(err, errlen, "max_artifact %llu is out of range: give "
			    "1 byte to %llu MiB",
			    (unsigned long long)c->max_artifact,
			    ARTIFACT_LIMIT >> 20);
	if (strcmp(c->isolation, "sandbox") && strcmp(c->isolation, "oci") &&
	    strcmp(c->isolation, "bare"))
		return fail(err, errlen, "isolation \"%s\" is unknown: use sandbox "
			    "(the built-in one, the default), oci (an OCI runtime) or "
			    "bare (development only: no isolation)", c->isolation);
	if ((uint64_t)c->sandbox.uid_base + c->sandbox.uid_count > 0xfffffffeull)
		return fail(err, errlen, "sandbox.uid_base + uid_count is past the "
			    "largest uid");
	if (c->sandbox.memory && c->sandbox.memory < (16ull << 20))
		return fail(err, errlen, "sandbox.memory of %llu bytes is too small: "
			    "give at least 16MiB (or 0 for no limit)",
			    (unsigned long long)c->sandbox.memory);
	if (c->sandbox.tmp < (1ull << 20))
		return fail(err, errlen, "sandbox.tmp must be at least 1MiB");
	if (c->segment_size < MIG_SEGMENT_SIZE_MIN)
		return fail(err, errlen, "segment_size %llu is below the minimum "
			    "of %llu MiB", (unsigned long long)c->segment_size,
			    MIG_SEGMENT_SIZE_MIN >> 20);
	return 0;
}

/* --- flags -------------------------------------------------------------- */

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "listen", required_argument, NULL, 'l' },
	{ "data-dir", required_argument, NULL, 'd' },
	{ "backend", required_argument, NULL, 'b' },
	{ "nvml", required_argument, NULL, 'n' },
	{ "devices", required_argument, NULL, 'D' },
	{ "isolation", required_argument, NULL, 'I' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

#define SHORT_OPTS "c:l:d:b:n:D:I:vh"

/* First pass: only --config and --help, so the file can come first. */
static int find_config(int argc, char **argv, const char **path, char *err,
		       size_t errlen)
{
	int o;

	opterr = 0;
	optind = 0; /* glibc: start over, whatever an earlier scan did */
	while ((o = getopt_long(argc, argv, SHORT_OPTS, long_opts, NULL)) != -1) {
		if (o == 'c') {
			*path = optarg;
		} else if (o == 'h') {
			usage(stdout);
			exit(0);
		} else if (o == '?') {
			usage(stderr);
			return fail(err, errlen, "unknown option or missing value: "
				    "%s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return fail(err, errlen, "unexpected argument \"%s\" (see "
			    "--help)", argv[optind]);
	return 0;
}

static int apply_flags(int argc, char **argv, struct mig_config *c, char *err,
		       size_t errlen)
{
	int o;

	optind = 0;
	while ((o = getopt_long(argc, argv, SHORT_OPTS, long_opts, NULL)) != -1) {
		switch (o) {
		case 'l':
			if (parse_listen(optarg, c, err, errlen))
				return -1;
			break;
		case 'd':
			if (absolute(c->data_dir, sizeof(c->data_dir), optarg, NULL,
				     "--data-dir", err, errlen))
				return -1;
			break;
		case 'b':
			if (strlen(optarg) >= sizeof(c->backend))
				return fail(err, errlen, "backend \"%s\" is unknown: "
					    "use cuda or host", optarg);
			snprintf(c->backend, sizeof(c->backend), "%s", optarg);
			break;
		case 'n':
			if (strlen(optarg) >= sizeof(c->nvml_path))
				return fail(err, errlen, "--nvml is too long");
			snprintf(c->nvml_path, sizeof(c->nvml_path), "%s", optarg);
			break;
		case 'D':
			if (strlen(optarg) >= sizeof(c->devices))
				return fail(err, errlen, "--devices is too long");
			snprintf(c->devices, sizeof(c->devices), "%s", optarg);
			break;
		case 'I':
			if (strlen(optarg) >= sizeof(c->isolation))
				return fail(err, errlen, "isolation \"%s\" is unknown: "
					    "use sandbox, oci or bare", optarg);
			snprintf(c->isolation, sizeof(c->isolation), "%s", optarg);
			break;
		case 'v':
			c->verbose++;
			break;
		default:
			break;
		}
	}
	return 0;
}

int config_load(struct mig_config *c, int argc, char **argv, char *err,
		size_t errlen)
{
	const char *file = NULL;
	char dir[PATH_MAX];

	defaults(c);
	if (find_config(argc, argv, &file, err, errlen))
		return -1;
	if (file && load_file(file, c, err, errlen))
		return -1;
	if (apply_flags(argc, argv, c, err, errlen))
		return -1;
	/* The default (or $MIG_DATA_DIR) may be relative too. */
	snprintf(dir, sizeof(dir), "%s", c->data_dir);
	if (absolute(c->data_dir, sizeof(c->data_dir), dir, NULL, "data_dir",
		     err, errlen))
		return -1;
	return check(c, err, errlen);
}

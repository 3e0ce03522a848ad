/*
 * modcache.c - the module cache: what an instance of a function loaded,
 * kept by content for the next instances of the same function.
 *
 * Loading a library is the driver's slowest call on an instance's path:
 * 2-90 ms for each of the ~20 fatbins a PyTorch model touches (parsing and
 * relocating hundreds of kernels), and another 0.5-6 ms for each kernel's
 * first use under lazy loading.  Every instance of a function loads the
 * same images.  So the server writes each image it loads into the
 * function's cache directory (given by the daemon; one per deployed
 * version), with the names of the kernels asked of it, and the server of
 * the next instance loads them ahead, while its executor is still starting
 * (importing torch takes seconds): whenever its ring is idle, one image
 * and its kernels at a time.  When the client then loads an image with
 * the same bytes, it gets the loaded one at once.
 *
 *   <dir>/<hash>-<size>.lib|.mod   an image, as the client sent it
 *   <dir>/<hash>-<size>.names      kernel/function names, one per line
 *
 * The hash only names the file: a cached image is used only when its bytes
 * equal the client's (memcmp), so a collision costs a miss, never a wrong
 * module.  Files are written under a temporary name and renamed, so a
 * reader never sees half of one; whatever is read back is checked like an
 * image from the client (mig_image_check()) before the driver sees it.
 * The directory holds one function's images only: nothing crosses between
 * tenants or functions.  Its size is bounded (MIG_MODCACHE_MAX_DEFAULT or
 * the daemon's limit); beyond it, new images are loaded but not kept.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpud.h"
#include "image.h"

#define NAMES_MAX 16384u        /* names kept per image */
#define NAME_LEN_MAX 4096u      /* longest name kept */
#define NAMES_FILE_MAX (16u << 20)

/* A fast 64-bit hash of the image: names its file, nothing more. */
static uint64_t content_hash(const uint8_t *p, uint64_t n)
{
	uint64_t h[4] = { 0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full,
			  0x165667b19e3779f9ull, 0x27d4eb2f165667c5ull };
	uint64_t i, w, r;

	for (i = 0; i + 32 <= n; i += 32)
		for (int l = 0; l < 4; l++) {
			memcpy(&w, p + i + 8 * l, 8);
			h[l] = (h[l] ^ w) * 0x9fb21c651e98df25ull;
			h[l] ^= h[l] >> 29;
		}
	r = n;
	for (int l = 0; l < 4; l++)
		r = (r ^ h[l]) * 0x9fb21c651e98df25ull;
	for (; i < n; i++)
		r = (r ^ p[i]) * 0x100000001b3ull;
	return r ^ (r >> 31);
}

static void entry_base(const struct gpud_modcache *mc,
		       const struct gpud_modcache_entry *e, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%016" PRIx64 "-%" PRIu64, mc->dir, e->key,
		 e->size);
}

/* Read at most @max bytes of @path; NULL if larger, missing or unreadable.
 * Zero padding follows, as for an image from the client. */
static uint8_t *read_small_file(const char *path, uint64_t max, uint64_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	ssize_t got = 0, r;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > max)
		goto out;
	buf = calloc(1, (size_t)st.st_size + 64);
	if (!buf)
		goto out;
	while (got < st.st_size &&
	       (r = read(fd, buf + got, (size_t)(st.st_size - got))) > 0)
		got += r;
	if (got != st.st_size) {
		free(buf);
		buf = NULL;
		goto out;
	}
	*len = (uint64_t)got;
out:
	close(fd);
	return buf;
}

static struct gpud_modcache_entry *entry_new(struct gpud_modcache *mc)
{
	if (mc->n == mc->cap) {
		uint32_t cap = mc->cap ? 2 * mc->cap : 32;
		void *v = realloc(mc->v, cap * sizeof(*mc->v));

		if (!v)
			return NULL;
		mc->v = v;
		mc->cap = cap;
	}
	memset(&mc->v[mc->n], 0, sizeof(mc->v[0]));
	return &mc->v[mc->n++];
}

static void names_read(struct gpud_modcache *mc, struct gpud_modcache_entry *e)
{
	char base[PATH_MAX + 64], path[PATH_MAX + 80];
	uint64_t len = 0;
	char *buf, *p, *nl;

	entry_base(mc, e, base, sizeof(base));
	snprintf(path, sizeof(path), "%s.names", base);
	buf = (char *)read_small_file(path, NAMES_FILE_MAX, &len);
	if (!buf)
		return;
	for (p = buf; p < buf + len && e->nnames < NAMES_MAX; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(buf + len - p));
		if (!nl)
			break;
		*nl = 0;
		if (nl > p && (size_t)(nl - p) <= NAME_LEN_MAX)
			modcache_note_name(mc, (uint32_t)(e - mc->v) + 1, p);
	}
	e->names_dirty = false;
	free(buf);
}

/* Parse "<16 hex>-<size>.lib|.mod"; 0 if it is not one of ours. */
static int parse_name(const char *name, uint64_t *key, uint64_t *size,
		      bool *library)
{
	char kind[8];
	int n = 0;

	if (sscanf(name, "%16" SCNx64 "-%" SCNu64 ".%3[a-z]%n", key, size, kind,
		   &n) != 3 || name[n] || strlen(name) < 18 || name[16] != '-')
		return 0;
	if (!strcmp(kind, "lib"))
		*library = true;
	else if (!strcmp(kind, "mod"))
		*library = false;
	else
		return 0;
	return 1;
}

int modcache_open(struct gpud *g, const char *dir, uint64_t max_bytes)
{
	struct gpud_modcache *mc = &g->mc;
	struct dirent *de;
	DIR *d;

	if (*mc->dir || !dir || *dir != '/' || strlen(dir) >= sizeof(mc->dir))
		return -EINVAL;
	d = opendir(dir);
	if (!d) {
		gpud_log(g, 1, "module cache %s: %s; running without", dir,
			 strerror(errno));
		return -errno;
	}
	snprintf(mc->dir, sizeof(mc->dir), "%s", dir);
	mc->max_bytes = max_bytes ? max_bytes : MIG_MODCACHE_MAX_DEFAULT;
	while ((de = readdir(d))) {
		struct gpud_modcache_entry *e;
		char path[PATH_MAX + 300];
		uint64_t key, size, len = 0;
		bool library;
		uint8_t *img;

		if (!parse_name(de->d_name, &key, &size, &library) ||
		    mc->disk_bytes + size > mc->max_bytes || size > MIG_MAX_IMAGE)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		img = read_small_file(path, size, &len);
		if (!img || len != size || content_hash(img, len) != key ||
		    mig_image_check(img, len + 1) == MIG_IMAGE_BAD) {
			gpud_log(g, 1, "module cache: %s is damaged; removed",
				 de->d_name);
			unlink(path);
			free(img);
			continue;
		}
		e = entry_new(mc);
		if (!e) {
			free(img);
			break;
		}
		e->key = key;
		e->size = size;
		e->library = library;
		e->bytes = img;
		e->on_disk = true;
		mc->disk_bytes += size;
		names_read(mc, e);
	}
	closedir(d);
	gpud_log(g, 1, "module cache %s: %u images (%.1f MiB) to load ahead",
		 dir, mc->n, mc->disk_bytes / 1048576.0);
	return 0;
}

/* Load @e's image and look up its names, so that the driver has them ready. */
static void preload(struct gpud *g, struct gpud_modcache_entry *e)
{
	CUresult r;
	uint32_t i;

	e->tried = true;
	r = e->library ? gpud_library_load(g, &e->obj, e->bytes) :
			 g->b->cuModuleLoadData((CUmodule *)&e->obj, e->bytes);
	if (r != CUDA_SUCCESS) {
		gpud_log(g, 1, "module cache: loading ahead failed (%d)", r);
		e->obj = NULL;
		return;
	}
	for (i = 0; i < e->nnames; i++) {
		CUkernel k;
		CUfunction f;
		int v;

		if (e->library) {
			if (g->b->cuLibraryGetKernel(&k, e->obj, e->names[i]) ==
			    CUDA_SUCCESS)
				g->b->cuKernelGetFunction(&f, k);
		} else if (g->b->cuModuleGetFunction(&f, e->obj, e->names[i]) ==
			   CUDA_SUCCESS) {
			g->b->cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, f);
		}
	}
	g->mc.preloaded++;
}

bool modcache_idle(struct gpud *g)
{
	struct gpud_modcache *mc = &g->mc;

	while (mc->next < mc->n) {
		struct gpud_modcache_entry *e = &mc->v[mc->next++];

		if (!e->tried && e->bytes) {
			preload(g, e);
			return true;
		}
	}
	return false;
}

uint32_t modcache_claim(struct gpud *g, const uint8_t *img, uint64_t size,
			bool library, void **obj, void **bytes, uint64_t *keyp)
{
	struct gpud_modcache *mc = &g->mc;
	uint64_t key;
	uint32_t i;

	*obj = *bytes = NULL;
	if (!*mc->dir)
		return 0;
	key = *keyp = content_hash(img, size);
	for (i = 0; i < mc->n; i++) {
		struct gpud_modcache_entry *e = &mc->v[i];

		if (e->key != key || e->size != size || e->library != library)
			continue;
		if (e->bytes && memcmp(e->bytes, img, size))
			continue;
		e->tried = true;
		if (e->obj) {
			/* Loaded ahead: the handle takes the module and the
			 * bytes the driver may still look at. */
			*obj = e->obj;
			*bytes = e->bytes;
			e->obj = e->bytes = NULL;
			mc->hits++;
		} else {
			free(e->bytes);
			e->bytes = NULL;
		}
		return i + 1;
	}
	mc->misses++;
	return 0;
}

/* Write @img to @path (under a temporary name, then renamed). */
static int write_file(const char *path, const void *img, uint64_t size)
{
	char tmp[PATH_MAX + 400];
	const uint8_t *p = img;
	uint64_t done = 0;
	ssize_t r;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0)
		return -errno;
	while (done < size && (r = write(fd, p + done, size - done)) > 0)
		done += (uint64_t)r;
	if (close(fd) < 0 || done != size || rename(tmp, path) < 0) {
		int e = errno ? errno : EIO;

		unlink(tmp);
		return -e;
	}
	return 0;
}

uint32_t modcache_keep(struct gpud *g, const uint8_t *img, uint64_t size,
		       bool library, uint64_t key)
{
	struct gpud_modcache *mc = &g->mc;
	struct gpud_modcache_entry *e;
	char base[PATH_MAX + 64], path[PATH_MAX + 80];
	int rc;

	if (!*mc->dir || mc->disk_bytes + size > mc->max_bytes)
		return 0;
	e = entry_new(mc);
	if (!e)
		return 0;
	e->key = key;
	e->size = size;
	e->library = library;
	e->tried = true;
	entry_base(mc, e, base, sizeof(base));
	snprintf(path, sizeof(path), "%s.%s", base, library ? "lib" : "mod");
	rc = write_file(path, img, size);
	if (rc < 0) {
		gpud_log(g, 1, "module cache: cannot write %s: %s", path,
			 strerror(-rc));
		mc->n--;
		return 0;
	}
	e->on_disk = true;
	mc->disk_bytes += size;
	mc->written++;
	return (uint32_t)(e - mc->v) + 1;
}

void modcache_note_name(struct gpud_modcache *mc, uint32_t entry,
			const char *name)
{
	struct gpud_modcache_entry *e;
	size_t len = strlen(name);
	uint32_t i;
	char *copy;

	if (!entry || entry > mc->n || !len || len > NAME_LEN_MAX ||
	    strchr(name, '\n'))
		return;
	e = &mc->v[entry - 1];
	if (e->nnames >= NAMES_MAX)
		return;
	for (i = 0; i < e->nnames; i++)
		if (!strcmp(e->names[i], name))
			return;
	if (e->nnames == e->names_cap) {
		uint32_t cap = e->names_cap ? 2 * e->names_cap : 16;
		void *v = realloc(e->names, cap * sizeof(*e->names));

		if (!v)
			return;
		e->names = v;
		e->names_cap = cap;
	}
	copy = strdup(name);
	if (!copy)
		return;
	e->names[e->nnames++] = copy;
	e->names_dirty = true;
}

void modcache_close(struct gpud *g)
{
	struct gpud_modcache *mc = &g->mc;
	uint32_t i, k;

	for (i = 0; i < mc->n; i++) {
		struct gpud_modcache_entry *e = &mc->v[i];

		if (e->names_dirty && e->on_disk) {
			char base[PATH_MAX + 64], path[PATH_MAX + 80];
			size_t len = 0, off = 0;
			char *buf;

			for (k = 0; k < e->nnames; k++)
				len += strlen(e->names[k]) + 1;
			buf = malloc(len + 1); /* sprintf's last NUL */
			for (k = 0; buf && k < e->nnames; k++)
				off += (size_t)sprintf(buf + off, "%s\n", e->names[k]);
			entry_base(mc, e, base, sizeof(base));
			snprintf(path, sizeof(path), "%s.names", base);
			if (buf && write_file(path, buf, len) < 0)
				gpud_log(g, 1, "module cache: cannot write %s", path);
			free(buf);
		}
		/* Loaded ahead, never asked for: the context goes next. */
		if (e->obj) {
			if (e->library)
				g->b->cuLibraryUnload(e->obj);
			else
				g->b->cuModuleUnload(e->obj);
		}
		for (k = 0; k < e->nnames; k++)
			free(e->names[k]);
		free(e->names);
		free(e->bytes);
	}
	if (*mc->dir)
		gpud_log(g, 1, "module cache: %u loaded ahead, %u used, %u new images kept",
			 mc->preloaded, mc->hits, mc->written);
	free(mc->v);
	memset(mc, 0, sizeof(*mc));
}

/*
 * module.c - modules, libraries, functions and kernels.
 *
 * An image (cubin, fatbin, PTX) is copied into the segment once and loaded
 * by the server; of a fatbin, only the entries this device could use
 * (mig_fatbin_select()).  When the program asks for a function or kernel, the
 * server answers once with its attributes and parameter layout (from
 * cuFuncGetParamInfo); the shim keeps that, so attribute and occupancy
 * queries and every later launch need no extra round trip.
 */
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "shim.h"

struct fatbin_wrapper {
	uint32_t magic;
	uint32_t version;
	const void *data;
	const void *filename_or_fatbins;
};

/*
 * Find the real image behind @image and its size.  The runtime hands us
 * fatbin wrappers; programs hand us cubins (ELF), fatbins or PTX text.
 */
static const void *image_span(const void *image, size_t *size)
{
	const uint32_t *m = image;

	if (!image)
		return NULL;
	if (*m == MIG_FATBIN_WRAPPER_MAGIC) {
		const struct fatbin_wrapper *w = image;

		image = w->data;
		m = image;
	}
	if (*m == MIG_FATBIN_MAGIC) {
		const struct mig_fatbin_header *h = image;

		*size = h->header_size + h->fat_size;
		return image;
	}
	if (!memcmp(image, ELFMAG, SELFMAG)) {
		const Elf64_Ehdr *e = image;
		const Elf64_Shdr *sh;
		size_t end = e->e_shoff + (size_t)e->e_shnum * e->e_shentsize;
		int i;

		if (e->e_ident[EI_CLASS] != ELFCLASS64)
			return NULL;
		if (e->e_phoff + (size_t)e->e_phnum * e->e_phentsize > end)
			end = e->e_phoff + (size_t)e->e_phnum * e->e_phentsize;
		sh = (const Elf64_Shdr *)((const char *)image + e->e_shoff);
		for (i = 0; i < e->e_shnum; i++)
			if (sh[i].sh_type != SHT_NOBITS &&
			    sh[i].sh_offset + sh[i].sh_size > end)
				end = sh[i].sh_offset + sh[i].sh_size;
		*size = end;
		return image;
	}
	/* PTX: text, terminated by NUL. */
	*size = strlen(image) + 1;
	return image;
}

static CUresult load_image(const void *image, bool library, uint64_t *id)
{
	struct mig_image_load a;
	size_t size = 0;
	const void *img = image_span(image, &size);
	uint64_t sel;
	unsigned int cc;
	void *tmp;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!img || !size)
		return CUDA_ERROR_INVALID_IMAGE;
	/* Of a fatbin, only what this device can run crosses over. */
	cc = 10u * (unsigned int)shim.dev.attr[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR] +
	     (unsigned int)shim.dev.attr[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR];
	sel = mig_fatbin_select(img, size, cc, NULL);
	tmp = shim_heap_alloc(sel ? sel : size);
	if (!tmp)
		return CUDA_ERROR_OUT_OF_MEMORY;
	if (sel)
		mig_fatbin_select(img, size, cc, tmp);
	else
		memcpy(tmp, img, size);
	shim_log(2, "image of %zu bytes: %llu sent", size,
		 (unsigned long long)(sel ? sel : size));
	a.image = (uint64_t)(uintptr_t)tmp;
	a.size = sel ? sel : size;
	r = shim_call(library ? MIG_OP_LIBRARY_LOAD : MIG_OP_MODULE_LOAD, &a,
		      sizeof(a), MIG_MSGF_REPLY, id, sizeof(*id));
	shim_heap_free(tmp);
	return r;
}

static CUresult new_module(const void *image, bool library, void **out)
{
	struct shim_module *m;
	CUresult r;

	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = load_image(image, library, &m->id);
	if (r != CUDA_SUCCESS) {
		free(m);
		return r;
	}
	m->magic = SHIM_MODULE_MAGIC;
	m->is_library = library;
	*out = m;
	return CUDA_SUCCESS;
}

static struct shim_module *module_from(const void *h, bool library)
{
	struct shim_module *m = (struct shim_module *)h;

	return m && m->magic == SHIM_MODULE_MAGIC && m->is_library == library ?
		       m : NULL;
}

/* JIT options may ask for log buffers: leave them empty, not stale. */
static void clear_jit_logs(unsigned int n, CUjit_option *opts, void **vals)
{
	unsigned int i;

	for (i = 0; opts && vals && i < n; i++) {
		if ((opts[i] == CU_JIT_INFO_LOG_BUFFER ||
		     opts[i] == CU_JIT_ERROR_LOG_BUFFER) && vals[i])
			*(char *)vals[i] = 0;
	}
}

SHIM_API CUresult cuModuleLoadData(CUmodule *module, const void *image)
{
	return new_module(image, false, (void **)module);
}

SHIM_API CUresult cuModuleLoadDataEx(CUmodule *module, const void *image,
				     unsigned int n, CUjit_option *opts,
				     void **vals)
{
	clear_jit_logs(n, opts, vals);
	return new_module(image, false, (void **)module);
}

SHIM_API CUresult cuModuleLoadFatBinary(CUmodule *module, const void *fatbin)
{
	return new_module(fatbin, false, (void **)module);
}

/* Read a file into memory; the caller frees it. */
static void *read_file(const char *path)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || st.st_size <= 0) {
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf && read(fd, buf, (size_t)st.st_size) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[st.st_size] = 0;
	close(fd);
	return buf;
}

SHIM_API CUresult cuModuleLoad(CUmodule *module, const char *fname)
{
	void *img;
	CUresult r;

	if (!fname)
		return CUDA_ERROR_INVALID_VALUE;
	img = read_file(fname);
	if (!img)
		return CUDA_ERROR_FILE_NOT_FOUND;
	r = new_module(img, false, (void **)module);
	free(img);
	return r;
}

static CUresult unload(void *h, bool library)
{
	struct shim_module *m = module_from(h, library);
	struct mig_handle_arg a;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!m)
		return CUDA_ERROR_INVALID_HANDLE;
	a.handle = m->id;
	m->magic = 0;
	r = shim_call(library ? MIG_OP_LIBRARY_UNLOAD : MIG_OP_MODULE_UNLOAD, &a,
		      sizeof(a), MIG_MSGF_REPLY, NULL, 0);
	/* Functions of the module stay allocated: a program holding one gets
	 * CUDA_ERROR_INVALID_HANDLE from the server, not a dangling pointer. */
	free(m);
	return r;
}

SHIM_API CUresult cuModuleUnload(CUmodule hmod)
{
	return unload(hmod, false);
}

SHIM_API CUresult cuModuleGetLoadingMode(CUmoduleLoadingMode *mode)
{
	if (!mode)
		return CUDA_ERROR_INVALID_VALUE;
	*mode = CU_MODULE_LAZY_LOADING;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuLibraryLoadData(CUlibrary *lib, const void *code,
				    CUjit_option *jo, void **jv,
				    unsigned int njo, CUlibraryOption *lo,
				    void **lv, unsigned int nlo)
{
	(void)lo;
	(void)lv;
	(void)nlo;
	clear_jit_logs(njo, jo, jv);
	return new_module(code, true, (void **)lib);
}

SHIM_API CUresult cuLibraryLoadFromFile(CUlibrary *lib, const char *fname,
					CUjit_option *jo, void **jv,
					unsigned int njo, CUlibraryOption *lo,
					void **lv, unsigned int nlo)
{
	void *img;
	CUresult r;

	if (!fname)
		return CUDA_ERROR_INVALID_VALUE;
	img = read_file(fname);
	if (!img)
		return CUDA_ERROR_FILE_NOT_FOUND;
	r = cuLibraryLoadData(lib, img, jo, jv, njo, lo, lv, nlo);
	free(img);
	return r;
}

SHIM_API CUresult cuLibraryUnload(CUlibrary lib)
{
	return unload(lib, true);
}

/* --- functions ------------------------------------------------------------ */

struct shim_func *shim_func_from(const void *handle)
{
	struct shim_func *f = (struct shim_func *)handle;

	return f && f->magic == SHIM_FUNC_MAGIC ? f : NULL;
}

/*
 * Ask the server about symbol @name of module or library @m (op is one of
 * the GET_FUNCTION/KERNEL/GLOBAL calls); on success the answer is in this
 * thread's reply slot.
 */
static CUresult symbol_query(uint16_t op, const struct shim_module *m,
			     const char *name, struct mig_reply_slot **out)
{
	struct mig_get_symbol a;
	struct shim_tx tx;
	size_t nl;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!m)
		return CUDA_ERROR_INVALID_HANDLE;
	if (!name)
		return CUDA_ERROR_INVALID_VALUE;
	nl = strlen(name) + 1;
	if (nl > MIG_MSG_MAX / 2)
		return CUDA_ERROR_INVALID_VALUE;
	a.owner = m->id;
	a.name_len = (uint32_t)nl;
	a.pad = 0;
	r = shim_begin(&tx, op, (uint32_t)(sizeof(a) + nl), MIG_MSGF_REPLY);
	if (r != CUDA_SUCCESS)
		return r;
	memcpy(tx.body, &a, sizeof(a));
	memcpy(tx.body + sizeof(a), name, nl);
	r = shim_commit(&tx);
	*out = &shim.slots[tx.slot];
	return r;
}

static CUresult get_function(struct shim_module *m, const char *name,
			     bool kernel, struct shim_func **out)
{
	struct mig_reply_slot *s;
	const struct mig_func_info *fi;
	struct shim_func *f;
	CUresult r;

	if (!out)
		return CUDA_ERROR_INVALID_VALUE;
	r = symbol_query(kernel ? MIG_OP_LIBRARY_GET_KERNEL :
				  MIG_OP_MODULE_GET_FUNCTION, m, name, &s);
	if (r != CUDA_SUCCESS)
		return r;
	fi = (const struct mig_func_info *)s->data;
	if (s->len < sizeof(*fi) ||
	    s->len < sizeof(*fi) + fi->nparams * sizeof(fi->param[0]))
		return CUDA_ERROR_UNKNOWN;
	f = calloc(1, sizeof(*f));
	if (!f)
		return CUDA_ERROR_OUT_OF_MEMORY;
	f->param = calloc(fi->nparams ? fi->nparams : 1, sizeof(*f->param));
	f->name = strdup(name);
	if (!f->param || !f->name) {
		free(f->param);
		free(f->name);
		free(f);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	f->magic = SHIM_FUNC_MAGIC;
	f->is_kernel = kernel;
	f->id = fi->handle;
	f->owner = m;
	memcpy(f->attr, fi->attr, sizeof(f->attr));
	f->nparams = fi->nparams;
	f->param_bytes = fi->param_bytes;
	memcpy(f->param, fi->param, fi->nparams * sizeof(fi->param[0]));
	pthread_mutex_init(&f->occ_lock, NULL);
	*out = f;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod,
				      const char *name)
{
	return get_function(module_from(hmod, false), name, false,
			    (struct shim_func **)hfunc);
}

SHIM_API CUresult cuLibraryGetKernel(CUkernel *k, CUlibrary lib,
				     const char *name)
{
	return get_function(module_from(lib, true), name, true,
			    (struct shim_func **)k);
}

/* A kernel and its function in our one context are the same object. */
SHIM_API CUresult cuKernelGetFunction(CUfunction *f, CUkernel k)
{
	if (!f)
		return CUDA_ERROR_INVALID_VALUE;
	if (!shim_func_from(k))
		return CUDA_ERROR_INVALID_HANDLE;
	*f = (CUfunction)k;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuKernelGetLibrary(CUlibrary *lib, CUkernel k)
{
	struct shim_func *f = shim_func_from(k);

	if (!lib)
		return CUDA_ERROR_INVALID_VALUE;
	if (!f || !f->is_kernel)
		return CUDA_ERROR_INVALID_HANDLE;
	*lib = (CUlibrary)f->owner;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuFuncGetModule(CUmodule *mod, CUfunction fn)
{
	struct shim_func *f = shim_func_from(fn);

	if (!mod)
		return CUDA_ERROR_INVALID_VALUE;
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	*mod = f->is_kernel ? NULL : (CUmodule)f->owner;
	return f->is_kernel ? CUDA_ERROR_NOT_SUPPORTED : CUDA_SUCCESS;
}

SHIM_API CUresult cuFuncGetName(const char **name, CUfunction fn)
{
	struct shim_func *f = shim_func_from(fn);

	if (!name)
		return CUDA_ERROR_INVALID_VALUE;
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	*name = f->name;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuKernelGetName(const char **name, CUkernel k)
{
	return cuFuncGetName(name, (CUfunction)k);
}

SHIM_API CUresult cuFuncGetParamInfo(CUfunction fn, size_t idx, size_t *off,
				     size_t *size)
{
	struct shim_func *f = shim_func_from(fn);

	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (idx >= f->nparams)
		return CUDA_ERROR_INVALID_VALUE;
	if (off)
		*off = f->param[idx].offset;
	if (size)
		*size = f->param[idx].size;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuKernelGetParamInfo(CUkernel k, size_t idx, size_t *off,
				       size_t *size)
{
	return cuFuncGetParamInfo((CUfunction)k, idx, off, size);
}

SHIM_API CUresult cuFuncIsLoaded(CUfunctionLoadingState *st, CUfunction fn)
{
	if (!st)
		return CUDA_ERROR_INVALID_VALUE;
	if (!shim_func_from(fn))
		return CUDA_ERROR_INVALID_HANDLE;
	*st = CU_FUNCTION_LOADING_STATE_LOADED;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuFuncLoad(CUfunction fn)
{
	return shim_func_from(fn) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

SHIM_API CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attr,
				     CUfunction fn)
{
	struct shim_func *f = shim_func_from(fn);

	if (!pi || attr < 0 || attr >= CU_FUNC_ATTRIBUTE_MAX ||
	    attr >= MIG_FUNC_ATTR_COUNT)
		return CUDA_ERROR_INVALID_VALUE;
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	*pi = __atomic_load_n(&f->attr[attr], __ATOMIC_RELAXED);
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuKernelGetAttribute(int *pi, CUfunction_attribute attr,
				       CUkernel k, CUdevice dev)
{
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	return cuFuncGetAttribute(pi, attr, (CUfunction)k);
}

SHIM_API CUresult cuFuncSetAttribute(CUfunction fn, CUfunction_attribute attr,
				     int value)
{
	struct shim_func *f = shim_func_from(fn);
	struct mig_func_set_attr a;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!f)
		return CUDA_ERROR_INVALID_HANDLE;
	if (attr < 0 || attr >= MIG_FUNC_ATTR_COUNT)
		return CUDA_ERROR_INVALID_VALUE;
	a.func = f->id;
	a.attr = attr;
	a.value = value;
	r = shim_call(MIG_OP_FUNC_SET_ATTR, &a, sizeof(a), MIG_MSGF_REPLY, NULL,
		      0);
	if (r == CUDA_SUCCESS) {
		__atomic_store_n(&f->attr[attr], value, __ATOMIC_RELAXED);
		pthread_mutex_lock(&f->occ_lock);
		f->nocc = 0; /* occupancy depends on the attributes */
		pthread_mutex_unlock(&f->occ_lock);
	}
	return r;
}

SHIM_API CUresult cuKernelSetAttribute(CUfunction_attribute attr, int value,
				       CUkernel k, CUdevice dev)
{
	if (dev != 0)
		return CUDA_ERROR_INVALID_DEVICE;
	return cuFuncSetAttribute((CUfunction)k, attr, value);
}

SHIM_API CUresult cuFuncSetCacheConfig(CUfunction fn, CUfunc_cache c)
{
	(void)c; /* a preference the driver may ignore */
	return shim_func_from(fn) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

SHIM_API CUresult cuKernelSetCacheConfig(CUkernel k, CUfunc_cache c,
					 CUdevice dev)
{
	(void)dev;
	return cuFuncSetCacheConfig((CUfunction)k, c);
}

/* --- globals ------------------------------------------------------------- */

static CUresult get_global(struct shim_module *m, bool library,
			   CUdeviceptr *dptr, size_t *bytes, const char *name)
{
	struct mig_global_info gi;
	struct mig_reply_slot *s;
	CUresult r = symbol_query(library ? MIG_OP_LIBRARY_GET_GLOBAL :
					    MIG_OP_MODULE_GET_GLOBAL, m, name, &s);

	if (r != CUDA_SUCCESS)
		return r;
	memcpy(&gi, s->data, sizeof(gi));
	shim_note_global(gi.dptr, gi.size);
	if (dptr)
		*dptr = gi.dptr;
	if (bytes)
		*bytes = gi.size;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes,
				       CUmodule hmod, const char *name)
{
	return get_global(module_from(hmod, false), false, dptr, bytes, name);
}

SHIM_API CUresult cuLibraryGetGlobal(CUdeviceptr *dptr, size_t *bytes,
				     CUlibrary lib, const char *name)
{
	return get_global(module_from(lib, true), true, dptr, bytes, name);
}

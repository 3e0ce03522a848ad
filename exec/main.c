/*
 * main.c - mig-exec, the executor of a C function.
 *
 *   mig-exec LIBRARY HANDLER
 *
 * Started by mignificentd with the control channel in MIG_CONTROL_FD, the
 * instance's segment in MIG_SEGMENT_FD and the shim first on the library
 * path.  We load the function's shared object, run its mignificent_init()
 * once, say READY, and call the handler for each invocation.  A crash of
 * the handler takes this process down, and the daemon reports it from our
 * exit status: we do not try to survive it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "mig_exec.h"
#include "mignificent.h"

static int fail(int fault, const char *fmt, const char *a, const char *b)
{
	char msg[1024];

	snprintf(msg, sizeof(msg), fmt, a, b);
	fprintf(stderr, "mig-exec: %s\n", msg);
	mig_exec_fail(fault, msg);
	return 1;
}

/* dlopen @path; the error names what is wrong with the file. */
static void *load(const char *path)
{
	void *dl;

	if (access(path, R_OK)) {
		fail(MIG_CTL_FAULT_ARTIFACT,
		     "%s cannot be read (%s): deploy the function again",
		     path, strerror(errno));
		return NULL;
	}
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		fail(MIG_CTL_FAULT_ARTIFACT, "%s%s", dlerror(),
		     " (build it as a shared object for this machine, e.g. cc -shared -fPIC)");
	return dl;
}

static int serve(mig_handler_fn handler)
{
	char ctype[64], msg[512];
	const void *data;
	uint64_t id, len;
	int r;

	while ((r = mig_exec_next(&id, &data, &len, ctype)) == 1) {
		struct mig_payload in = { .data = (void *)data, .len = len };
		struct mig_payload out = { 0 };
		int st, fault;

		unsigned long oom = mig_exec_oom_count();

		memcpy(in.content_type, ctype, sizeof(in.content_type));
		st = handler(&in, &out);
		out.content_type[sizeof(out.content_type) - 1] = 0;
		/* A failed handler may have left the GPU context dead: then
		 * this instance cannot serve again, and the caller should
		 * hear why rather than a generic error. */
		if (st && (fault = mig_exec_gpu_check(msg, sizeof(msg)))) {
			free(out.data);
			return fail(fault, "%s%s", msg, "");
		}
		if (st && mig_exec_oom_count() != oom) {
			snprintf(msg, sizeof(msg),
				 "the function returned %d after the GPU ran out of memory%s%.*s",
				 st, out.data && out.len ? ": " : "",
				 (int)(out.data && out.len < 400 ? out.len : 0),
				 out.data ? (const char *)out.data : "");
			free(out.data);
			if (mig_exec_error(id, MIG_CTL_FAULT_GPU_OOM, msg) < 0)
				return 1;
			continue;
		}
		r = mig_exec_result(id, st, out.data, out.data ? out.len : 0,
				    out.content_type);
		free(out.data);
		if (r == -EMSGSIZE) {
			return fail(MIG_CTL_FAULT_RESULT,
				    "the handler's result is larger than %s%s",
				    "256 MiB", "");
		}
		if (r < 0)
			return 1; /* the daemon is gone */
	}
	if (r < 0) {
		fprintf(stderr, "mig-exec: control channel: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	mig_handler_fn handler;
	mig_init_fn init;
	void *dl;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: mig-exec LIBRARY HANDLER (started by mignificentd)\n");
		return 2;
	}
	r = mig_exec_open();
	if (r < 0) {
		fprintf(stderr,
			"mig-exec: no control channel (MIG_CONTROL_FD): %s; mig-exec is started by mignificentd\n",
			strerror(-r));
		return 2;
	}
	dl = load(argv[1]);
	if (!dl)
		return 1;
	dlerror();
	handler = (mig_handler_fn)dlsym(dl, argv[2]);
	if (!handler)
		return fail(MIG_CTL_FAULT_HANDLER,
			    "the function's library exports no handler \"%s\"%s", argv[2],
			    ": deploy with the name of an exported function (nm -D --defined-only)");
	init = (mig_init_fn)dlsym(dl, "mignificent_init");
	if (init && (r = init()) != 0) {
		char code[16];

		snprintf(code, sizeof(code), "%d", r);
		return fail(MIG_CTL_FAULT_INIT, "mignificent_init() returned %s%s",
			    code, ": the function could not initialize (see its log)");
	}
	if (mig_exec_ready() < 0)
		return 1;
	return serve(handler);
}

/*
 * stream.c - streams and events.
 *
 * Records, waits and launches on a stream are fire-and-forget; queries,
 * synchronizes and elapsed times wait for the server.  Stream capture
 * (CUDA graphs) is not remoted: a stream is never capturing, and starting
 * a capture is reported as not supported.
 */
#include <stdlib.h>

#include "shim.h"

CUresult shim_stream_id(CUstream s, bool per_thread, uint64_t *id,
			uint32_t *flags)
{
	struct shim_stream *ss = (struct shim_stream *)s;

	if (s == NULL) {
		*id = MIG_STREAM_NULL;
		if (per_thread)
			*flags |= MIG_MSGF_PER_THREAD;
		return CUDA_SUCCESS;
	}
	if (s == CU_STREAM_LEGACY) {
		*id = MIG_STREAM_LEGACY;
		return CUDA_SUCCESS;
	}
	if (s == CU_STREAM_PER_THREAD) {
		*id = MIG_STREAM_PER_THREAD;
		return CUDA_SUCCESS;
	}
	if (ss->magic != SHIM_STREAM_MAGIC)
		return CUDA_ERROR_INVALID_HANDLE;
	*id = ss->id;
	return CUDA_SUCCESS;
}

static struct shim_event *event_from(CUevent e)
{
	struct shim_event *ev = (struct shim_event *)e;

	return ev && ev->magic == SHIM_EVENT_MAGIC ? ev : NULL;
}

SHIM_API CUresult cuStreamCreateWithPriority(CUstream *ph, unsigned int flags,
					     int priority)
{
	struct mig_stream_create a = { .flags = flags, .priority = priority };
	struct shim_stream *s;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!ph || (flags & ~CU_STREAM_NON_BLOCKING))
		return CUDA_ERROR_INVALID_VALUE;
	s = calloc(1, sizeof(*s));
	if (!s)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = shim_call(MIG_OP_STREAM_CREATE, &a, sizeof(a), MIG_MSGF_REPLY,
		      &s->id, sizeof(s->id));
	if (r != CUDA_SUCCESS) {
		free(s);
		return r;
	}
	/* The driver clamps priorities into its range; so do we. */
	if (priority < shim.dev.prio_greatest)
		priority = shim.dev.prio_greatest;
	if (priority > shim.dev.prio_least)
		priority = shim.dev.prio_least;
	s->magic = SHIM_STREAM_MAGIC;
	s->flags = flags;
	s->priority = priority;
	*ph = (CUstream)s;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuStreamCreate(CUstream *ph, unsigned int flags)
{
	return cuStreamCreateWithPriority(ph, flags, 0);
}

SHIM_API CUresult cuStreamDestroy_v2(CUstream h)
{
	struct shim_stream *s = (struct shim_stream *)h;
	struct mig_handle_arg a;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!s || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD ||
	    s->magic != SHIM_STREAM_MAGIC)
		return CUDA_ERROR_INVALID_HANDLE;
	a.handle = s->id;
	s->magic = 0;
	r = shim_call(MIG_OP_STREAM_DESTROY, &a, sizeof(a), MIG_MSGF_REPLY, NULL,
		      0);
	free(s);
	return r;
}

SHIM_API CUresult cuStreamDestroy(CUstream h)
{
	return cuStreamDestroy_v2(h);
}

static CUresult stream_simple(uint16_t op, CUstream h, bool per_thread)
{
	struct mig_handle_arg a;
	uint32_t flags = MIG_MSGF_REPLY;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	r = shim_stream_id(h, per_thread, &a.handle, &flags);
	if (r != CUDA_SUCCESS)
		return r;
	return shim_call(op, &a, sizeof(a), flags, NULL, 0);
}

SHIM_API CUresult cuStreamQuery(CUstream h)
{
	return stream_simple(MIG_OP_STREAM_QUERY, h, false);
}

SHIM_API CUresult cuStreamQuery_ptsz(CUstream h)
{
	return stream_simple(MIG_OP_STREAM_QUERY, h, true);
}

SHIM_API CUresult cuStreamSynchronize(CUstream h)
{
	return stream_simple(MIG_OP_STREAM_SYNC, h, false);
}

SHIM_API CUresult cuStreamSynchronize_ptsz(CUstream h)
{
	return stream_simple(MIG_OP_STREAM_SYNC, h, true);
}

static CUresult stream_wait_event(CUstream h, CUevent e, unsigned int fl,
				  bool per_thread)
{
	struct mig_stream_wait_event a = { .flags = fl };
	struct shim_event *ev = event_from(e);
	uint32_t flags = 0;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!ev)
		return CUDA_ERROR_INVALID_HANDLE;
	r = shim_stream_id(h, per_thread, &a.stream, &flags);
	if (r != CUDA_SUCCESS)
		return r;
	a.event = ev->id;
	return shim_call(MIG_OP_STREAM_WAIT_EVENT, &a, sizeof(a), flags, NULL, 0);
}

SHIM_API CUresult cuStreamWaitEvent(CUstream h, CUevent e, unsigned int fl)
{
	return stream_wait_event(h, e, fl, false);
}

SHIM_API CUresult cuStreamWaitEvent_ptsz(CUstream h, CUevent e, unsigned int fl)
{
	return stream_wait_event(h, e, fl, true);
}

static CUresult stream_get(CUstream h, unsigned int *flags, int *prio)
{
	struct shim_stream *s = (struct shim_stream *)h;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!h || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD) {
		if (flags)
			*flags = 0;
		if (prio)
			*prio = 0;
		return CUDA_SUCCESS;
	}
	if (s->magic != SHIM_STREAM_MAGIC)
		return CUDA_ERROR_INVALID_HANDLE;
	if (flags)
		*flags = s->flags;
	if (prio)
		*prio = s->priority;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuStreamGetFlags(CUstream h, unsigned int *flags)
{
	return flags ? stream_get(h, flags, NULL) : CUDA_ERROR_INVALID_VALUE;
}

SHIM_API CUresult cuStreamGetFlags_ptsz(CUstream h, unsigned int *flags)
{
	return cuStreamGetFlags(h, flags);
}

SHIM_API CUresult cuStreamGetPriority(CUstream h, int *prio)
{
	return prio ? stream_get(h, NULL, prio) : CUDA_ERROR_INVALID_VALUE;
}

SHIM_API CUresult cuStreamGetPriority_ptsz(CUstream h, int *prio)
{
	return cuStreamGetPriority(h, prio);
}

SHIM_API CUresult cuStreamGetId(CUstream h, unsigned long long *id)
{
	struct shim_stream *s = (struct shim_stream *)h;

	if (!id)
		return CUDA_ERROR_INVALID_VALUE;
	if (!h || h == CU_STREAM_LEGACY) {
		*id = MIG_STREAM_LEGACY;
		return CUDA_SUCCESS;
	}
	if (h == CU_STREAM_PER_THREAD) {
		*id = MIG_STREAM_PER_THREAD;
		return CUDA_SUCCESS;
	}
	if (s->magic != SHIM_STREAM_MAGIC)
		return CUDA_ERROR_INVALID_HANDLE;
	*id = s->id;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuStreamGetId_ptsz(CUstream h, unsigned long long *id)
{
	return cuStreamGetId(h, id);
}

SHIM_API CUresult cuStreamGetCtx(CUstream h, CUcontext *pctx)
{
	CUresult r = stream_get(h, NULL, NULL);

	if (r != CUDA_SUCCESS)
		return r;
	return cuCtxGetCurrent(pctx);
}

SHIM_API CUresult cuStreamGetCtx_ptsz(CUstream h, CUcontext *pctx)
{
	return cuStreamGetCtx(h, pctx);
}

SHIM_API CUresult cuStreamGetDevice(CUstream h, CUdevice *dev)
{
	CUresult r = stream_get(h, NULL, NULL);

	if (r == CUDA_SUCCESS && dev)
		*dev = 0;
	return dev ? r : CUDA_ERROR_INVALID_VALUE;
}

SHIM_API CUresult cuStreamIsCapturing(CUstream h, CUstreamCaptureStatus *st)
{
	CUresult r = stream_get(h, NULL, NULL);

	if (!st)
		return CUDA_ERROR_INVALID_VALUE;
	*st = CU_STREAM_CAPTURE_STATUS_NONE;
	return r;
}

SHIM_API CUresult cuStreamIsCapturing_ptsz(CUstream h, CUstreamCaptureStatus *st)
{
	return cuStreamIsCapturing(h, st);
}

SHIM_API CUresult cuStreamGetCaptureInfo_v3(
	CUstream h, CUstreamCaptureStatus *st, cuuint64_t *id, CUgraph *graph,
	const CUgraphNode **deps, const CUgraphEdgeData **edges, size_t *ndeps)
{
	CUresult r = stream_get(h, NULL, NULL);

	if (!st)
		return CUDA_ERROR_INVALID_VALUE;
	*st = CU_STREAM_CAPTURE_STATUS_NONE;
	(void)id;
	(void)graph;
	(void)deps;
	(void)edges;
	(void)ndeps;
	return r;
}

SHIM_API CUresult cuStreamGetCaptureInfo_v3_ptsz(
	CUstream h, CUstreamCaptureStatus *st, cuuint64_t *id, CUgraph *graph,
	const CUgraphNode **deps, const CUgraphEdgeData **edges, size_t *ndeps)
{
	return cuStreamGetCaptureInfo_v3(h, st, id, graph, deps, edges, ndeps);
}

SHIM_API CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode)
{
	/* No capture ever happens, so every mode is the current mode. */
	return mode ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* --- events -------------------------------------------------------------- */

SHIM_API CUresult cuEventCreate(CUevent *ph, unsigned int flags)
{
	struct mig_event_create a = { .flags = flags };
	struct shim_event *e;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!ph)
		return CUDA_ERROR_INVALID_VALUE;
	e = calloc(1, sizeof(*e));
	if (!e)
		return CUDA_ERROR_OUT_OF_MEMORY;
	r = shim_call(MIG_OP_EVENT_CREATE, &a, sizeof(a), MIG_MSGF_REPLY, &e->id,
		      sizeof(e->id));
	if (r != CUDA_SUCCESS) {
		free(e);
		return r;
	}
	e->magic = SHIM_EVENT_MAGIC;
	e->flags = flags;
	*ph = (CUevent)e;
	return CUDA_SUCCESS;
}

SHIM_API CUresult cuEventDestroy_v2(CUevent h)
{
	struct shim_event *e = event_from(h);
	struct mig_handle_arg a;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	a.handle = e->id;
	e->magic = 0;
	r = shim_call(MIG_OP_EVENT_DESTROY, &a, sizeof(a), MIG_MSGF_REPLY, NULL,
		      0);
	free(e);
	return r;
}

SHIM_API CUresult cuEventDestroy(CUevent h)
{
	return cuEventDestroy_v2(h);
}

static CUresult event_record(CUevent h, CUstream s, unsigned int fl,
			     bool per_thread)
{
	struct shim_event *e = event_from(h);
	struct mig_event_record a = { .flags = fl };
	uint32_t flags = 0;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	r = shim_stream_id(s, per_thread, &a.stream, &flags);
	if (r != CUDA_SUCCESS)
		return r;
	a.event = e->id;
	return shim_call(MIG_OP_EVENT_RECORD, &a, sizeof(a), flags, NULL, 0);
}

SHIM_API CUresult cuEventRecord(CUevent h, CUstream s)
{
	return event_record(h, s, 0, false);
}

SHIM_API CUresult cuEventRecord_ptsz(CUevent h, CUstream s)
{
	return event_record(h, s, 0, true);
}

SHIM_API CUresult cuEventRecordWithFlags(CUevent h, CUstream s, unsigned int f)
{
	return event_record(h, s, f, false);
}

SHIM_API CUresult cuEventRecordWithFlags_ptsz(CUevent h, CUstream s,
					      unsigned int f)
{
	return event_record(h, s, f, true);
}

static CUresult event_simple(uint16_t op, CUevent h)
{
	struct shim_event *e = event_from(h);
	struct mig_handle_arg a;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!e)
		return CUDA_ERROR_INVALID_HANDLE;
	a.handle = e->id;
	return shim_call(op, &a, sizeof(a), MIG_MSGF_REPLY, NULL, 0);
}

SHIM_API CUresult cuEventQuery(CUevent h)
{
	return event_simple(MIG_OP_EVENT_QUERY, h);
}

SHIM_API CUresult cuEventSynchronize(CUevent h)
{
	return event_simple(MIG_OP_EVENT_SYNC, h);
}

SHIM_API CUresult cuEventElapsedTime_v2(float *ms, CUevent a0, CUevent a1)
{
	struct shim_event *e0 = event_from(a0), *e1 = event_from(a1);
	struct mig_event_elapsed a;
	CUresult r = shim_check_ctx();

	if (r != CUDA_SUCCESS)
		return r;
	if (!ms)
		return CUDA_ERROR_INVALID_VALUE;
	if (!e0 || !e1)
		return CUDA_ERROR_INVALID_HANDLE;
	a.start = e0->id;
	a.end = e1->id;
	return shim_call(MIG_OP_EVENT_ELAPSED, &a, sizeof(a), MIG_MSGF_REPLY, ms,
			 sizeof(*ms));
}

SHIM_API CUresult cuEventElapsedTime(float *ms, CUevent a0, CUevent a1)
{
	return cuEventElapsedTime_v2(ms, a0, a1);
}

/* Host callbacks would have to run here, in stream order, on the server's
 * signal: not remoted yet. */
SHIM_API CUresult cuLaunchHostFunc(CUstream s, CUhostFn fn, void *data)
{
	(void)s;
	(void)fn;
	(void)data;
	return shim_unsupported("cuLaunchHostFunc");
}

SHIM_API CUresult cuStreamAddCallback(CUstream s, CUstreamCallback cb,
				      void *data, unsigned int flags)
{
	(void)s;
	(void)cb;
	(void)data;
	(void)flags;
	return shim_unsupported("cuStreamAddCallback");
}

#!/usr/bin/env python3
"""native_client.py - one client of the native time-sharing baseline of
bench/sharing/run.py: the function's own code in a plain process, no
mignificent, on the real driver.

    native_client.py c LIB HANDLER BODY_FILE WARMUP
    native_client.py python FILE MODULE:HANDLER BODY_FILE WARMUP

Initializes the function as an instance would (mignificent_init, or the
module's import), runs WARMUP untimed requests, prints "ready", then serves
its input's lines until its end:

  one     one request, as a served function gets it: the process waits
          for it (blocked on the pipe) and answers one JSON line, the
          handler's time in ms and, for a function that reports them
          (examples/torch_models with MODEL_TIMINGS=1), its phases' times
          [input, inference] (null otherwise);
  go N    N requests back to back in this process, never waiting between
          them (the start signal, so that all clients' timed requests
          overlap); one JSON line: start and end (CLOCK_MONOTONIC ns), the
          latency of each request in ms, the phases [[input, inference],
          ...] and each request's start ("at", CLOCK_MONOTONIC ns).  Every request's body is BODY_FILE's bytes.  The
function's environment (MODEL=..., BFS_NODES=...) comes from ours.
"""
import ctypes
import importlib.util
import json
import os
import sys
import time


class Payload(ctypes.Structure):  # struct mig_payload (include/mignificent.h)
    _fields_ = [("data", ctypes.c_void_p), ("len", ctypes.c_size_t),
                ("content_type", ctypes.c_char * 64)]


def c_function(lib, handler, body):
    so = ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    if hasattr(so, "mignificent_init") and so.mignificent_init() != 0:
        raise SystemExit(f"{lib}: mignificent_init failed")
    fn = getattr(so, handler)
    fn.argtypes = [ctypes.POINTER(Payload), ctypes.POINTER(Payload)]
    data = ctypes.create_string_buffer(body, len(body))
    request = Payload(ctypes.cast(data, ctypes.c_void_p), len(body), b"")

    libc_free = ctypes.CDLL(None).free
    libc_free.argtypes = [ctypes.c_void_p]

    def call():
        out = Payload()
        rc = fn(ctypes.byref(request), ctypes.byref(out))
        libc_free(out.data)  # the handler's answer is ours to free, as the executor does
        if rc != 0:
            raise SystemExit(f"{handler} returned {rc}")
    return call


def python_function(path, spec, body):
    module, handler = spec.split(":")
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    s = importlib.util.spec_from_file_location(module, path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    fn = getattr(m, handler)
    def call():
        out = fn(body)
        try:
            t = json.loads(out)["timings_ms"]
            return [t["input"], t["inference"]]
        except (TypeError, ValueError, KeyError):
            return None
    return call


def main():
    kind, artifact, handler, body_file, warmup = sys.argv[1:6]
    with open(body_file, "rb") as f:
        body = f.read()
    call = (c_function if kind == "c" else python_function)(artifact, handler, body)
    for _ in range(int(warmup)):
        call()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "one":
            t = time.perf_counter()
            p = call()
            print(json.dumps({"ms": (time.perf_counter() - t) * 1e3, "timing": p}), flush=True)
            continue
        n = int(line.split()[1])
        lat, phases, at = [], [], []
        start = time.monotonic_ns()
        for _ in range(n):
            at.append(time.monotonic_ns())
            t = time.perf_counter()
            p = call()
            lat.append((time.perf_counter() - t) * 1e3)
            if p:
                phases.append(p)
        end = time.monotonic_ns()
        print(json.dumps({"start": start, "end": end, "ms": lat, "timings": phases, "at": at}),
              flush=True)


if __name__ == "__main__":
    main()

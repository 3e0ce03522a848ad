#!/usr/bin/env python3
"""native_client.py - one client of the native time-sharing baseline of
bench/sharing/run.py: the function's own code in a plain process, no
mignificent, on the real driver.

    native_client.py c LIB HANDLER N WARMUP
    native_client.py python FILE MODULE:HANDLER N WARMUP

Initializes the function as an instance would (mignificent_init, or the
module's import), runs WARMUP untimed requests, prints "ready", waits for a
line on stdin (the start signal, so that all clients' timed requests
overlap), runs N timed requests and prints one JSON line: start and end
(CLOCK_MONOTONIC ns) and the latency of each request in ms.  The function's
environment (MODEL=..., BFS_NODES=...) comes from ours.
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


def c_function(lib, handler):
    so = ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    if hasattr(so, "mignificent_init") and so.mignificent_init() != 0:
        raise SystemExit(f"{lib}: mignificent_init failed")
    fn = getattr(so, handler)
    fn.argtypes = [ctypes.POINTER(Payload), ctypes.POINTER(Payload)]

    def call():
        out = Payload()
        rc = fn(ctypes.byref(Payload()), ctypes.byref(out))
        if rc != 0:
            raise SystemExit(f"{handler} returned {rc}")
    return call


def python_function(path, spec):
    module, handler = spec.split(":")
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    s = importlib.util.spec_from_file_location(module, path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    fn = getattr(m, handler)
    return lambda: fn(b"")


def main():
    kind, artifact, handler, n, warmup = sys.argv[1:6]
    call = (c_function if kind == "c" else python_function)(artifact, handler)
    for _ in range(int(warmup)):
        call()
    print("ready", flush=True)
    sys.stdin.readline()
    lat = []
    start = time.monotonic_ns()
    for _ in range(int(n)):
        t = time.perf_counter()
        call()
        lat.append((time.perf_counter() - t) * 1e3)
    end = time.monotonic_ns()
    print(json.dumps({"start": start, "end": end, "ms": lat}), flush=True)


if __name__ == "__main__":
    main()

"""A Python GPU function: y = a*x + y with CuPy, through mignificent's shim.

Deploy with the handler "saxpy:handler" and a Python that has CuPy.  The
request body is the vector length (default 1,000,000); the answer is JSON
with the checksum, computed on the GPU and checked on the CPU.  Importing
CuPy and creating the first arrays happens once, when the instance starts.
"""
import cupy as cp
import numpy as np

cp.arange(1, dtype=cp.float32).sum()  # CUDA context and kernels, once


def handler(payload: bytes):
    text = payload.decode("ascii", "replace").strip()
    n = int(text) if text.isdigit() else 1_000_000
    x = cp.arange(n, dtype=cp.float64)
    y = cp.ones(n, dtype=cp.float64)
    y = 2.0 * x + y
    got = float(y.sum())
    want = float(2.0 * np.arange(n, dtype=np.float64).sum() + n)
    return {"n": n, "sum": got, "ok": got == want}

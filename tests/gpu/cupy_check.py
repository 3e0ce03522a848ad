"""CuPy through mignificent: array arithmetic, reductions, an
ElementwiseKernel (NVRTC + cuModuleLoadData) and matmuls (cuBLAS), each
checked against NumPy.  Prints OK on success (run by test_third_party.py).

Usage: cupy_check.py [basic] [matmul]   (parts to run; default both)
"""
import sys

import numpy as np
import cupy as cp

parts = sys.argv[1:] or ["basic", "matmul"]

rng = np.random.default_rng(1234)


def basic():
    # arange and an exact integer sum.
    n = 1_000_003
    a = cp.arange(n, dtype=cp.int64)
    assert int(a.sum()) == n * (n - 1) // 2, int(a.sum())
    assert int(a[-1]) == n - 1

    # Elementwise arithmetic and a transfer both ways.
    x = rng.standard_normal(200_001).astype(np.float32)
    y = rng.standard_normal(200_001).astype(np.float32)
    dx, dy = cp.asarray(x), cp.asarray(y)
    got = cp.asnumpy((dx * 3 - dy) / 2 + cp.sqrt(cp.abs(dx)))
    want = (x * 3 - y) / 2 + np.sqrt(np.abs(x))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

    # Reductions.
    np.testing.assert_allclose(float(dx.sum()), float(x.sum(dtype=np.float64)),
                               rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(float(dy.max()), float(y.max()))
    np.testing.assert_allclose(float(cp.linalg.norm(dx)), float(np.linalg.norm(x)), rtol=1e-5)

    # A user kernel, compiled at run time.
    saxpy = cp.ElementwiseKernel("float32 x, float32 y, float32 a", "float32 z",
                                 "z = a * x + y", "mig_test_saxpy")
    got = cp.asnumpy(saxpy(dx, dy, np.float32(2.5)))
    np.testing.assert_allclose(got, np.float32(2.5) * x + y, rtol=1e-6, atol=1e-6)


def matmul():
    # Matmuls through cuBLAS.
    A = rng.standard_normal((257, 129)).astype(np.float32)
    B = rng.standard_normal((129, 65)).astype(np.float32)
    np.testing.assert_allclose(cp.asnumpy(cp.asarray(A) @ cp.asarray(B)), A @ B,
                               rtol=1e-3, atol=1e-3)
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    np.testing.assert_allclose(cp.asnumpy(cp.asarray(A64) @ cp.asarray(B64)), A64 @ B64,
                               rtol=1e-12, atol=1e-12)


for part in parts:
    {"basic": basic, "matmul": matmul}[part]()
cp.cuda.Device().synchronize()
print("OK")

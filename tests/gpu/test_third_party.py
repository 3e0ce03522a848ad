"""Third-party CUDA clients through mignificent (GPU suite only).

CuPy (runtime, NVRTC, cuBLAS) and Triton (its own compiler and module
loading, PyTorch's allocator) each run a small script natively and through
`mig run --backend cuda`, checked against NumPy.  Skipped unless
MIG_TEST_BACKEND=cuda and the packages import.
"""
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from migtest import BACKEND, SHIM_DIR, assert_ok, mig_run, native_env, run  # noqa: E402

pytestmark = pytest.mark.gpu

TIMEOUT = 600  # first-time compiles of cuBLAS handles and Triton kernels


def _need(*modules):
    if BACKEND != "cuda":
        pytest.skip("GPU suite only: MIG_TEST_BACKEND=cuda")
    r = subprocess.run([sys.executable, "-c", "import " + ", ".join(modules)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode:
        pytest.skip(f"{', '.join(modules)} not importable: {r.stderr.strip()[-300:]}")


def _env(tmp_path, under_mig):
    env = {"CUPY_CACHE_DIR": str(tmp_path / "cupy"),
           "TRITON_CACHE_DIR": str(tmp_path / "triton"),
           "PYTHONUNBUFFERED": "1"}
    if under_mig:
        # Triton links its launcher against libcuda: point it at the shim.
        env["TRITON_LIBCUDA_PATH"] = str(SHIM_DIR)
    return env


def _check(script, where, tmp_path, args=()):
    argv = [sys.executable, str(HERE / script), *args]
    if where == "native":
        r = run(argv, native_env(_env(tmp_path, False)), timeout=TIMEOUT)
        assert_ok(r, server_summary=False)
    else:
        r = mig_run(argv, env_extra=_env(tmp_path, True), backend="cuda", timeout=TIMEOUT)
        assert_ok(r)


@pytest.mark.parametrize("where", ["native", "mig"])
def test_cupy(where, tmp_path):
    """arange, sums, elementwise arithmetic, an ElementwiseKernel."""
    _need("numpy", "cupy")
    _check("cupy_check.py", where, tmp_path, ["basic"])


@pytest.mark.parametrize("where", ["native", "mig"])
def test_cupy_matmul(where, tmp_path):
    """float32 and float64 matmuls (cuBLAS)."""
    _need("numpy", "cupy")
    _check("cupy_check.py", where, tmp_path, ["matmul"])


@pytest.mark.parametrize("where", ["native", "mig"])
def test_triton(where, tmp_path):
    _need("numpy", "torch", "triton")
    _check("triton_check.py", where, tmp_path)

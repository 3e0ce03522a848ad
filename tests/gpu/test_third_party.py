"""Third-party CUDA clients through mignificent (GPU suite only).

CuPy (runtime, NVRTC, cuBLAS), Triton (its own compiler and module
loading, PyTorch's allocator) and PyTorch (cuBLAS, cuDNN, pinned memory,
streams, events) each run a small script natively and through
`mig run --backend cuda`, checked against NumPy or, for PyTorch, against
the native run's bits.  Skipped unless
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


def _digest(r):
    lines = [l for l in r.out.splitlines() if l.startswith("DIGEST ")]
    assert len(lines) == 1, r.describe()
    return lines[0].split()[1]


@pytest.mark.parametrize("alloc", ["default", "expandable_segments"])
def test_torch_same_bits_as_native(alloc, tmp_path):
    """PyTorch: cuBLAS products, cuDNN convolution/batch norm, pinned memory,
    a side stream, events, mem_get_info; the results through the shim are
    bit for bit the native ones (same inputs, same kernels).  With
    expandable segments the caching allocator maps memory through the
    virtual memory API."""
    _need("torch")
    extra = {"PYTHONUNBUFFERED": "1"}
    if alloc == "expandable_segments":
        extra["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
    argv = [sys.executable, str(HERE / "torch_check.py")]
    native = run(argv, native_env(extra), timeout=TIMEOUT)
    assert_ok(native, server_summary=False)
    mig = mig_run(argv, env_extra=extra, backend="cuda", timeout=TIMEOUT)
    assert_ok(mig)
    assert _digest(mig) == _digest(native), "results differ from native"


@pytest.mark.parametrize("alloc", ["default", "expandable"])
def test_torch_and_pynvml_see_our_nvml(alloc, tmp_path):
    """Under mig run, libnvidia-ml.so.1 is ours: torch.cuda.mem_get_info,
    PyTorch's NVML users (the NVML device count, device_memory_used, the
    OOM message; with expandable segments c10's DriverAPI, which asserts its
    list of NVML entry points) and pynvml (where installed) get the
    partition, this process only, NOT_SUPPORTED for utilization."""
    _need("torch")
    env = {"PYTHONUNBUFFERED": "1"}
    if alloc == "expandable":
        env["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
    r = mig_run([sys.executable, str(HERE / "torch_nvml_check.py")],
                env_extra=env, backend="cuda", timeout=TIMEOUT)
    assert_ok(r)


def test_nvml_abi_matches_the_real_header(tmp_path):
    """nvml/nvml_abi.h's layouts and codes against NVIDIA's nvml.h, where
    the machine has one."""
    if BACKEND != "cuda":
        pytest.skip("GPU suite only: MIG_TEST_BACKEND=cuda")
    heads = sorted(pathlib.Path("/usr/local").glob("cuda*/include/nvml.h"))
    heads += sorted(pathlib.Path("/usr/local").glob("cuda*/targets/*/include/nvml.h"))
    heads += [p for p in [pathlib.Path("/usr/include/nvml.h"),
                          pathlib.Path("/usr/include/nvidia/gdk/nvml.h")] if p.exists()]
    if not heads:
        pytest.skip("no nvml.h on this machine")
    src = HERE / "nvml_abi_layout.c"
    outs = []
    for flags in (["-DREAL", f"-I{heads[0].parent}"], [f"-I{HERE.parent.parent / 'nvml'}"]):
        exe = tmp_path / ("real" if "-DREAL" in flags else "ours")
        c = subprocess.run(["cc", "-Wall", "-Werror", *flags, "-o", str(exe), str(src)],
                           capture_output=True, text=True)
        assert c.returncode == 0, c.stderr
        outs.append(subprocess.run([str(exe)], capture_output=True, text=True).stdout)
    # A bus id format the real header does not define is not compared.
    absent = {line.split()[1] for line in outs[0].splitlines()
              if line.startswith("fmt ") and "(not in this nvml.h)" in line}
    outs = ["\n".join(line for line in out.splitlines()
                      if not (line.startswith("fmt ") and line.split()[1] in absent))
            for out in outs]
    assert outs[0] == outs[1], f"{heads[0]}:\n{outs[0]}\nours:\n{outs[1]}"

"""The daemon on a real GPU (GPU suite only): a C CUDA function and a Python
CuPy function deployed and invoked over HTTP, cold through the pool of
pre-initialized GPU servers, cold without it, and warm; SIGTERM leaves no
process behind.  Skipped unless MIG_TEST_BACKEND=cuda.
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from migtest import BACKEND, BUILD, ROOT  # noqa: E402

pytestmark = pytest.mark.gpu


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def daemon(tmp_path):
    if BACKEND != "cuda":
        pytest.skip("GPU suite only: MIG_TEST_BACKEND=cuda")
    port = _free_port()
    data = tmp_path / "data"
    log = open(tmp_path / "daemon.log", "w+")
    p = subprocess.Popen([str(BUILD / "bin" / "mignificentd"), "--backend", "cuda",
                          "--data-dir", str(data), "--listen", f"127.0.0.1:{port}"],
                         stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/v1/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    token = (data / "token").read_text().strip()
    yield url, token, p
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    log.seek(0)
    print(log.read())


def _req(url, token, method, path, body=None, ctype="application/octet-stream"):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    r = urllib.request.Request(url + path, data=data, method=method,
                               headers={"Authorization": f"Bearer {token}",
                                        "Content-Type": ctype if isinstance(
                                            body, (bytes, type(None))) else
                                        "application/json"})
    with urllib.request.urlopen(r, timeout=300) as resp:
        return resp.status, dict(resp.headers), resp.read()


def _deploy(url, token, name, language, artifact, handler, **extra):
    import base64
    spec = {"language": language, "handler": handler,
            "artifact": base64.b64encode(pathlib.Path(artifact).read_bytes()).decode(),
            "artifact_name": os.path.basename(artifact), **extra}
    status, _, _ = _req(url, token, "PUT", f"/v1/functions/{name}", spec)
    assert status in (200, 201)


def _invoke(url, token, name, payload):
    status, headers, body = _req(url, token, "POST", f"/v1/functions/{name}/invoke",
                                 payload)
    assert status == 200, body
    return headers, json.loads(body)


def test_c_cuda_function_over_http(daemon):
    url, token, _ = daemon
    _deploy(url, token, "hello", "c", BUILD / "examples" / "libhello.so", "hello")
    # The pool's GPU server creates its context; /v1/devices says when.
    deadline = time.monotonic() + 60
    while True:
        _, _, body = _req(url, token, "GET", "/v1/devices")
        pool = json.loads(body)["partitions"][0]["server_pool"]
        if pool["ready"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert pool["ready"] == 1 and pool["failures"] == 0 and "error" not in pool, pool
    h, out = _invoke(url, token, "hello", b"1048576")
    assert out["ok"] and h["X-Mig-Cold"] == "1"
    pooled = int(h["X-Mig-Cold-Start-Us"])
    h, out = _invoke(url, token, "hello", b"1048576")
    assert out["ok"] and h["X-Mig-Cold"] == "0"
    # A second function while the pool refills: a cold start from scratch.
    _deploy(url, token, "hello2", "c", BUILD / "examples" / "libhello.so", "hello")
    _deploy(url, token, "hello3", "c", BUILD / "examples" / "libhello.so", "hello")
    _invoke(url, token, "hello2", b"1024")
    h, out = _invoke(url, token, "hello3", b"1024")
    assert out["ok"]
    print(f"cold start: pooled {pooled} us, from scratch "
          f"{h['X-Mig-Cold-Start-Us']} us (cold={h['X-Mig-Cold']})")


def test_python_gpu_function_over_http(daemon):
    url, token, _ = daemon
    py = shutil.which("python3")
    r = subprocess.run([py, "-c", "import cupy"], capture_output=True)
    if r.returncode:
        pytest.skip("CuPy is not installed for python3")
    _deploy(url, token, "saxpy", "python", ROOT / "examples" / "cupy_py" / "saxpy.py",
            "saxpy:handler", python=py, timeout_ms=120000)
    for _ in range(2):
        _, out = _invoke(url, token, "saxpy", b"1000000")
        assert out["ok"], out


def test_torch_model_function_gives_native_bits(daemon):
    """examples/torch_models deployed as a Python function (ResNet-50 built at
    instance start, sandboxed): two invocations answer the output a native
    run of the same code gives, bit for bit."""
    url, token, _ = daemon
    py = shutil.which("python3")
    r = subprocess.run([py, "-c", "import torch, torchvision"], capture_output=True)
    if r.returncode:
        pytest.skip("torch and torchvision are not installed for python3")
    native = subprocess.run([py, str(ROOT / "bench" / "ml" / "infer.py"), "resnet50", "1"],
                            capture_output=True, text=True, timeout=600)
    assert native.returncode == 0, native.stderr[-3000:]
    want = json.loads(native.stdout.splitlines()[-1])["digest"]
    _deploy(url, token, "resnet", "python", ROOT / "examples" / "torch_models" / "models.py",
            "models:infer", python=py, timeout_ms=300000, gpu_memory="8GiB",
            env={"MODEL": "resnet50"}, limits={"memory": "16GiB"})
    for _ in range(2):
        _, out = _invoke(url, token, "resnet", b"")
        assert out["model"] == "resnet50" and out["digest"] == want, out


def test_torch_models_take_their_input_from_the_request(daemon, tmp_path):
    """The models' per-request input (bench/sharing's requests): a JPEG photo
    for ResNet-50, a JSON question for BERT, prepared on the CPU inside the
    instance; the answers equal a native run of the same code, bit for bit,
    and a body that is not an image is the function's error, not a crash."""
    import urllib.error
    url, token, _ = daemon
    py = shutil.which("python3")
    r = subprocess.run([py, "-c", "import torch, torchvision, transformers, PIL"],
                       capture_output=True)
    if r.returncode:
        pytest.skip("torch, torchvision, transformers or Pillow missing for python3")
    sys.path.insert(0, str(ROOT / "bench" / "sharing"))
    import run as sharing_bench
    bodies = {"resnet50": sharing_bench.photo_jpeg("1280x960"),
              "bert": sharing_bench.squad_json()}
    native_code = ("import json, sys; sys.path.insert(0, 'examples/torch_models'); "
                   "import models; name = sys.argv[1]; m, x = models.build(name); "
                   "print(json.dumps(models.answer(name, m, x, open(sys.argv[2], 'rb').read())))")
    for name, body in bodies.items():
        (tmp_path / name).write_bytes(body)
        native = subprocess.run([py, "-c", native_code, name, str(tmp_path / name)],
                                capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert native.returncode == 0, native.stderr[-3000:]
        want = json.loads(native.stdout.splitlines()[-1])
        _deploy(url, token, f"{name}_req", "python",
                ROOT / "examples" / "torch_models" / "models.py", "models:infer", python=py,
                timeout_ms=300000, gpu_memory="8GiB", env={"MODEL": name},
                limits={"memory": "16GiB"})
        for _ in range(2):
            _, out = _invoke(url, token, f"{name}_req", body)
            assert out == want, (name, out, want)
    with pytest.raises(urllib.error.HTTPError) as e:
        _req(url, token, "POST", "/v1/functions/resnet50_req/invoke", b"not an image")
    assert "not an image" in e.value.read().decode(errors="replace")


@pytest.mark.parametrize("alloc,rounds", [("default", 100), ("expandable", 30)])
def test_torch_model_same_bits_after_100_swaps(daemon, alloc, rounds):
    """A PyTorch model function (ResNet-50) swapped out and back in 100
    times (the invocation swaps in): every answer is the first one's bits.
    With expandable segments the weights live in the client's own virtual
    memory mappings, which move too."""
    url, token, _ = daemon
    py = shutil.which("python3")
    r = subprocess.run([py, "-c", "import torch, torchvision"], capture_output=True)
    if r.returncode:
        pytest.skip("torch and torchvision are not installed for python3")
    env = {"MODEL": "resnet50"}
    if alloc == "expandable":
        env["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
    name = f"resnet_swap_{alloc}"
    _deploy(url, token, name, "python",
            ROOT / "examples" / "torch_models" / "models.py", "models:infer", python=py,
            timeout_ms=300000, gpu_memory="8GiB", env=env, limits={"memory": "16GiB"})
    headers, first = _invoke(url, token, name, b"")
    inst = headers["X-Mig-Instance"]
    for i in range(rounds):
        status, _, body = _req(url, token, "POST", f"/v1/instances/{inst}/swap-out")
        rep = json.loads(body)
        assert status == 200 and rep["bytes"] > 50 << 20, rep  # the weights at least
        headers, out = _invoke(url, token, name, b"")
        assert headers["X-Mig-Instance"] == inst and int(headers["X-Mig-Swap-In-Us"]) > 0
        assert out == first, (i, out, first)


def test_rodinia_functions_on_the_gpu(daemon):
    """examples/rodinia at the paper's sizes (BFS on 1M nodes, HotSpot on
    512 x 512): the GPU's answers equal each function's CPU reference."""
    url, token, _ = daemon
    for name in ("bfs", "hotspot"):
        _deploy(url, token, name, "c", BUILD / "examples" / f"lib{name}.so", name,
                timeout_ms=120000)
        for _ in range(2):
            _, out = _invoke(url, token, name, b"")
            assert out["ok"] is True, out


def test_sigterm_leaves_nothing(daemon):
    url, token, p = daemon
    _deploy(url, token, "hello", "c", BUILD / "examples" / "libhello.so", "hello")
    _invoke(url, token, "hello", b"4096")
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0
    left = subprocess.run(["pgrep", "-f", str(BUILD / "bin" / "mig-")],
                          capture_output=True, text=True).stdout.split()
    assert not left, f"processes left behind: {left}"


def test_sharing_experiment_small():
    """bench/sharing at a small size on the GPU: BFS and HotSpot, two
    clients, every model and the native side; it runs and answers right
    (the numbers are the benchmark's business)."""
    import tempfile
    out = pathlib.Path(tempfile.mkdtemp()) / "sharing.json"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "sharing" / "run.py"),
                        "--workloads", "bfs,hotspot", "--clients", "2", "-n", "3",
                        "--warmup", "1", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())["results"]["2"]
    for w in ("bfs", "hotspot"):
        assert set(res[w]) == {"native", "time-sharing", "sequential", "overlap-cpu",
                               "overlap-cpu-copy"}, res[w]

"""The sandbox attack suite on a real GPU (GPU suite only; needs root).

tests/daemon/test_sandbox.py attacks the executor sandbox on the host test
double; here the same hostile function (tests/daemon/fixture_hostile.c)
attacks a daemon with --backend cuda, where there is something to steal:
the real /dev/nvidia* device nodes, the real driver libraries (every
libcuda/libnvidia-* file that `ldconfig -p` and the standard directories
know), and the real GPU server of another tenant on the same GPU.

The victim tenant runs examples/libhello.so (vector addition on the GPU)
back to back the whole time; every answer must be the one it gave before
the attacks, from the same instance.  Each test stops the daemon and checks
that nothing is left (tests/daemon/sandbox_arena.py).  A bare node is the
positive control: there the attacker does open the GPU and load the driver.

Skipped unless MIG_TEST_BACKEND=cuda.
"""
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from migtest import BACKEND, BUILD, ROOT  # noqa: E402
from sandbox_arena import (ATTACKER_LIMITS, ATTACKER_MEMORY_MIB, SYSCALL_PROBES,  # noqa: E402
                           Api, Arena, build_hostile, driver_library_paths, node_config)

pytestmark = pytest.mark.gpu

HELLO = BUILD / "examples" / "libhello.so"
HELLO_N = b"1048576"  # a vector long enough to keep the GPU busy for a moment


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gpu_device_nodes():
    """The host's NVIDIA device nodes (the real ones, here)."""
    return sorted(glob.glob("/dev/nvidia*") + glob.glob("/dev/nvidia-caps/*"))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return build_hostile(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def gpu_arena(tmp_path, hostile):
    """gpu_arena(isolation="sandbox", **node config) -> Arena on a daemon
    with --backend cuda; its log is printed after the test."""
    if BACKEND != "cuda":
        pytest.skip("GPU suite only: MIG_TEST_BACKEND=cuda")
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root")
    if not HELLO.exists():
        pytest.skip(f"{HELLO} is not built (needs nvcc)")
    made = []

    def make(isolation="sandbox", limits=True, **node_extra):
        name = f"d{len(made)}"
        cfg = tmp_path / f"{name}.json"
        cfg.write_text(json.dumps(node_config(isolation, **node_extra)))
        port = _free_port()
        log = open(tmp_path / f"{name}.log", "w+")
        p = subprocess.Popen([str(BUILD / "bin" / "mignificentd"), "--backend", "cuda",
                              "--config", str(cfg), "--data-dir", str(tmp_path / name),
                              "--listen", f"127.0.0.1:{port}"],
                             stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/v1/health", timeout=1)
                break
            except OSError:
                assert p.poll() is None, f"mignificentd exited with {p.returncode}"
                time.sleep(0.1)

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                return p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                return p.wait()

        victim = (HELLO, "hello", lambda n: HELLO_N, None)  # None: the first answer
        a = Arena(Api(url), p, stop, tmp_path / name, cfg, hostile, victim,
                  hostile_extra={"limits": ATTACKER_LIMITS} if limits else {},
                  sandboxed=isolation != "bare")
        a.log, a.stop_daemon = log, stop
        made.append(a)
        assert b'"ok": true' in a.victim.first_answer, a.victim.first_answer
        return a

    yield make
    for a in made:
        a.abort()
        a.stop_daemon()
        a.log.seek(0)
        print(a.log.read()[-6000:])


def verdict(a):
    problems = a.finish()
    assert not problems, "\n".join(problems)


def test_the_gpu_is_reachable_only_through_the_shim(gpu_arena):
    a = gpu_arena()
    nodes, libs = gpu_device_nodes(), driver_library_paths()
    print(f"device nodes: {nodes}\ndriver libraries: {libs}")
    a.expect(nodes and any("libcuda.so" in p for p in libs),
             "this GPU machine shows no /dev/nvidia* or no libcuda: nothing was tested")
    a.expect_blocked([f"open_dev {n}" for n in nodes] + ["dev_extra", "syscall mknod"] +
                     [f"dlopen {p}" for p in libs])
    o = a.attack("dlopen_cuda")
    a.expect(o.kind == "blocked" and "is the shim" in o.text, f"not the shim: {o}")
    o = a.attack("cuda_call")
    a.expect(o.kind == "info" and o.facts().get("cuInit") == "0" and
             "host_test_double" not in o.text,
             f"the real GPU does not answer through the shim: {o}")
    verdict(a)


def test_the_other_tenants_gpu_server_is_out_of_reach(gpu_arena):
    a = gpu_arena()
    victim, own = a.instance("victim"), a.instance("attacker")
    targets = [a.daemon_pid, victim["exec_pid"], victim["gpud_pid"], own["gpud_pid"]]
    a.expect_blocked([f"kill {pid}" for pid in targets] +
                     [f"ptrace {victim['gpud_pid']}",
                      f"proc_peek {' '.join(map(str, targets))}",
                      f"read {a.artifact('victim', 'victim')} {a.config_path}",
                      "shm", "exists /sys/class /proc/driver/nvidia",
                      f"connect 127.0.0.1 {a.port}"] +
                     [f"syscall {p}" for p in SYSCALL_PROBES])
    verdict(a)


@pytest.mark.parametrize("mode", ["garbage", "size", "tail", "op", "header"])
def test_a_scribbled_ring_leaves_the_other_tenant_computing(gpu_arena, mode):
    a = gpu_arena()
    a.attack("cuda_call")  # a context on the GPU, then the ring is wrecked
    o = a.attack(f"ring {mode}")
    a.expect(o.kind in ("info", "http"), f"the ring attack did not run: {o}")
    for _ in range(3):
        again = a.attack("cuda_call")
        if again.kind == "info" and again.facts().get("cuInit") == "0":
            break
    else:
        a.expect(False, f"the attacker's function does not work again: {again}")
    verdict(a)


def test_memory_limit_on_a_gpu_node(gpu_arena):
    a = gpu_arena()
    a.attack("cuda_call")
    first = a.instance("attacker")
    o = a.attack(f"alloc {ATTACKER_MEMORY_MIB * 4}")
    a.expect(o.status == 500 and o.code == "memory_limit", f"expected memory_limit: {o}")
    again = a.attack("cuda_call")
    a.expect(again.status == 200 and again.instance != first["id"],
             f"no new instance after the memory limit: {again}")
    verdict(a)


def test_a_bare_gpu_node_hands_out_the_gpu(gpu_arena):
    """Positive control: without isolation the same attacks succeed."""
    a = gpu_arena(isolation="bare", limits=False)
    nodes = [n for n in gpu_device_nodes() if n.endswith("ctl") or n[-1].isdigit()]
    libs = [p for p in driver_library_paths() if "libcuda.so" in p and "stubs" not in p]
    assert nodes and libs, (f"this GPU machine shows no /dev/nvidia* ({nodes}) or no "
                            f"libcuda ({libs}): the control has nothing to reach")
    for line in [f"open_dev {' '.join(nodes[:2])}", f"dlopen {' '.join(libs[:1])}"]:
        o = a.attack(line)
        a.expect(o.kind == "ESCAPED", f"not ESCAPED without isolation: {o}")
    verdict(a)

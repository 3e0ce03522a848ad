"""OCI runtime mode (daemon/oci.c) through a real runtime.

build/bin/test_oci_run (tests/unit/oci_run.c) writes a bundle with
oci_write_bundle() and execs the command oci_argv() makes, which is
`crun run --bundle B --preserve-fds N ID`; the command in the container is
a shell script that reports, from the inside, what the walls look like:
uid, devices, seccomp, capabilities, file system, network, and a message
on the preserved descriptor 3.  tests/unit/test_oci.c checks config.json
itself, without a runtime.

Needs root and crun; skipped (with the reason) where crun cannot create
containers.  On hosts with "hybrid" cgroups (v1 controllers plus a cgroup2
mount at /sys/fs/cgroup/unified that has controllers of its own), crun
refuses every container; there the runtime runs in a private mount
namespace without /sys/fs/cgroup/unified, where crun sees plain v1.
"""
import os
import pathlib
import select
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from migtest import BUILD  # noqa: E402

RUNNER = BUILD / "bin" / "test_oci_run"
# The sanitizer pass of scripts/test.sh sets MIG_GPUD to the ASan build's
# server: use that build's runner too.
if os.environ.get("MIG_GPUD"):
    _asan = pathlib.Path(os.environ["MIG_GPUD"]).resolve().parent / "test_oci_run"
    if _asan.exists():
        RUNNER = _asan
CRUN = shutil.which("crun")
# Host uids far from any user (the daemon's default range starts at
# 1700000000); one per test run.
UID = 1799900000 + os.getpid() % 50000
CG = "/sys/fs/cgroup"
DEVICES = {"null", "zero", "full", "random", "urandom", "tty"}
TIMEOUT = 60


def _read(path):
    try:
        return pathlib.Path(path).read_text().strip()
    except OSError:
        return None


def cgroup_v2():
    return os.path.exists(f"{CG}/cgroup.controllers")


def hybrid_with_controllers():
    """crun's "cgroups in hybrid mode not supported" case."""
    return not cgroup_v2() and bool(_read(f"{CG}/unified/cgroup.controllers"))


def runtime_prefix():
    """What runs test_oci_run so that crun can work on this host."""
    if not hybrid_with_controllers():
        return []
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'umount /sys/fs/cgroup/unified && exec "$@"', "sh"]


def interfaces():
    """Network interfaces of the caller's network namespace."""
    lines = pathlib.Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


class Container:
    """One test_oci_run process; descriptor 3 of the command is a pipe."""

    def __init__(self, bundle, script, *opts, cid="t1"):
        self.rfd, wfd = os.pipe()
        argv = [*runtime_prefix(), str(RUNNER), "--bundle", str(bundle), "--id",
                f"mig-test-{os.getpid()}-{cid}", "--uid", str(UID),
                "--pass-fd", str(wfd), *opts, "--", "/bin/sh", "-c", script]
        self.argv = argv
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, pass_fds=(wfd,))
        os.close(wfd)

    def read_fd3(self, timeout=TIMEOUT):
        """Everything written to descriptor 3 until the container closes it."""
        data, end = b"", time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([self.rfd], [], [], 0.2)
            if r:
                chunk = os.read(self.rfd, 4096)
                if not chunk:
                    break
                data += chunk
        return data.decode(errors="replace")

    def read_line_fd3(self, timeout=TIMEOUT):
        data, end = b"", time.monotonic() + timeout
        while not data.endswith(b"\n") and time.monotonic() < end:
            r, _, _ = select.select([self.rfd], [], [], 0.2)
            if r:
                chunk = os.read(self.rfd, 1)
                if not chunk:
                    break
                data += chunk
        return data.decode(errors="replace").strip()

    def finish(self, stdin=b""):
        try:
            out, err = self.p.communicate(stdin, timeout=TIMEOUT)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
            os.close(self.rfd)
        self.out, self.err = out.decode(errors="replace"), err.decode(errors="replace")
        return self.p.returncode

    def describe(self):
        return (f"$ {' '.join(self.argv)}\nexit {self.p.returncode}\n--- stdout\n"
                f"{self.out}\n--- stderr\n{self.err}")


def report(text):
    """key=value lines of the script's output (later keys win)."""
    kv = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            kv[key] = value
    return kv


@pytest.fixture(scope="module")
def oci():
    """A directory for bundles; skip unless crun can run a bundle of oci.c."""
    if os.geteuid() != 0:
        pytest.skip("OCI mode runs executors as other uids: needs root")
    if not CRUN:
        pytest.skip("crun is not installed (apt-get install crun)")
    assert RUNNER.exists(), f"{RUNNER} is not built (ninja -C build)"
    if runtime_prefix() and not shutil.which("unshare"):
        pytest.skip("hybrid cgroups with v2 controllers, and no unshare(1) to hide them")
    # Not under pytest's temporary directories: they are 0700, and the
    # runtime reaches the bundle's root as the function's uid.
    top = pathlib.Path(tempfile.mkdtemp(prefix="mig-test-oci-", dir="/tmp"))
    try:
        os.chmod(top, 0o711)
        c = Container(top / "probe", "echo ok >&3", cid="probe")
        got = c.read_fd3()
        rc = c.finish()
        if rc != 0 or got.strip() != "ok":
            pytest.skip(f"crun cannot create containers on this machine: {c.describe()}")
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def code(oci):
    """A function's code directory with a file to show and one to hide."""
    d = oci / f"code-{time.monotonic_ns()}"
    d.mkdir()
    os.chmod(d, 0o755)
    (d / "hello.txt").write_text("hello from the host\n")
    (d / "secret.so").write_text("the real driver\n")
    for f in d.iterdir():
        os.chmod(f, 0o644)
    return d


PROBE = r"""
echo "uid=$(id -u)"
echo "gid=$(id -g)"
echo "user=$(id -un 2>/dev/null)"
echo "dev=$(ls /dev | tr '\n' ' ')"
for d in null zero full random urandom tty; do
    [ -c /dev/$d ] && echo "chardev_$d=yes"
done
echo "seccomp=$(sed -n 's/^Seccomp:[[:space:]]*//p' /proc/self/status)"
echo "nnp=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/self/status)"
echo "capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
echo "capbnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)"
echo "hostname=$(cat /proc/sys/kernel/hostname)"
echo "uid_map=$(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //')"
echo "pid1=$(cat /proc/1/comm)"
[ -e /sys ] && echo sys=yes || echo sys=no
touch /rootfile 2>/dev/null && echo root=rw || echo root=ro
touch /usr/mig-oci-test 2>/dev/null && echo usr=rw || echo usr=ro
touch /tmp/f 2>/dev/null && echo tmp=rw || echo tmp=ro
touch /dev/shm/f 2>/dev/null && echo shm=rw || echo shm=ro
touch CODE/new 2>/dev/null && echo code=rw || echo code=ro
echo "hello=$(cat CODE/hello.txt)"
echo "hidden=$(cat CODE/secret.so 2>/dev/null | wc -c)"
[ -e /etc/shadow ] && echo shadow=yes || echo shadow=no
[ -e /home ] && echo home=yes || echo home=no
unshare -U true 2>/dev/null && echo unshare=yes || echo unshare=no
unshare -n true 2>/dev/null && echo unshare_net=yes || echo unshare_net=no
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')"
echo "cwd=$(pwd)"
echo "core=$(ulimit -c)"
echo "hi from the container" >&3
"""


def probe(bundle, code, *opts):
    c = Container(bundle, PROBE.replace("CODE", str(code)), "--ro", str(code),
                  "--hide", str(code / "secret.so"), "--cwd", str(code), *opts)
    msg = c.read_fd3()
    rc = c.finish()
    assert rc == 0, c.describe()
    return report(c.out), msg, c


def test_walls(oci, code):
    """Everything the built-in sandbox promises, seen from inside crun."""
    kv, msg, c = probe(oci / "walls", code)
    where = c.describe()
    # The preserved descriptor arrives as 3.
    assert msg == "hi from the container\n", where
    # uid/gid 1000 inside, the plan's host uid outside, nothing else mapped.
    assert kv["uid"] == "1000" and kv["gid"] == "1000", where
    assert kv["user"] == "function", where
    assert kv["uid_map"].split() == ["1000", str(UID), "1"], where
    # Devices: the six, and nothing of the GPU.
    assert "nvidia" not in kv["dev"], where
    for d in DEVICES:
        assert kv.get(f"chardev_{d}") == "yes", where
    # seccomp filter mode, no_new_privs, no capability at all.
    assert kv["seccomp"] == "2", where
    assert kv["nnp"] == "1", where
    assert int(kv["capeff"], 16) == 0 and int(kv["capbnd"], 16) == 0, where
    assert kv["core"] == "0", where
    # Its own uts and pid namespaces: the executor is pid 1.
    assert kv["hostname"] == f"mig-test-{os.getpid()}-t1", where
    assert kv["pid1"] == "sh", where
    # Read-only root and system, private writable /tmp and /dev/shm.
    assert (kv["root"], kv["usr"], kv["code"]) == ("ro", "ro", "ro"), where
    assert (kv["tmp"], kv["shm"]) == ("rw", "rw"), where
    assert kv["sys"] == "no" and kv["shadow"] == "no" and kv["home"] == "no", where
    # The code is there, the hidden file is empty.
    assert kv["hello"] == "hello from the host", where
    assert kv["hidden"] == "0", where
    assert kv["cwd"] == str(code), where
    # Namespaces cannot be made from inside (unshare, clone flags).
    assert kv["unshare"] == "no" and kv["unshare_net"] == "no", where
    # Its own network namespace: loopback only.
    assert kv["ifaces"].split() == ["lo"], where
    # The container's mounts stayed in its mount namespace.
    assert str(oci / "walls") not in pathlib.Path("/proc/self/mountinfo").read_text()


def test_shared_network(oci, code):
    """"network": true shares the host's interfaces; the rest stays walled."""
    kv, msg, c = probe(oci / "net", code, "--network")
    assert kv["ifaces"].split() == interfaces(), c.describe()
    assert kv["seccomp"] == "2" and kv["uid"] == "1000", c.describe()
    assert msg == "hi from the container\n"


def test_limits_in_cgroup(oci):
    """The plan's limits land in the cgroup named by cgroupsPath."""
    name = f"mig-test-oci-{os.getpid()}"
    # What isolation.c hands over: the directory on this host's hierarchy.
    plan_cgroup = f"{CG}/{name}/c1" if cgroup_v2() else f"{CG}/memory/{name}/c1"
    c = Container(oci / "limits", "echo ready >&3; read x", "--cgroup", plan_cgroup,
                  "--memory", str(256 << 20), "--cpus", "1.5", "--pids", "64",
                  cid="limits")
    try:
        ready = c.read_line_fd3()
        if cgroup_v2():
            d = f"{CG}/{name}/c1"
            got = (_read(f"{d}/memory.max"), _read(f"{d}/cpu.max"), _read(f"{d}/pids.max"))
            want = (str(256 << 20), "150000 100000", "64")
        else:
            got = (_read(f"{CG}/memory/{name}/c1/memory.limit_in_bytes"),
                   _read(f"{CG}/cpu/{name}/c1/cpu.cfs_quota_us"),
                   _read(f"{CG}/pids/{name}/c1/pids.max"))
            want = (str(256 << 20), "150000", "64")
            devices = _read(f"{CG}/devices/{name}/c1/devices.list") or ""
    finally:
        rc = c.finish(b"go\n")
        for d in pathlib.Path(CG).glob(f"*/{name}"):
            for sub in sorted(d.glob("**/"), key=lambda p: -len(p.parts)):
                try:
                    sub.rmdir()
                except OSError:
                    pass
        if cgroup_v2():
            try:
                pathlib.Path(f"{CG}/{name}").rmdir()
            except OSError:
                pass
    assert ready == "ready", c.describe()
    assert rc == 0, c.describe()
    assert got == want, c.describe()
    if not cgroup_v2():
        # v1 device cgroup: nothing of the NVIDIA devices (major 195).
        assert "c 195:" not in devices and "a *:* rwm" not in devices, devices


def test_errors_reach_the_caller(oci):
    """A bundle oci.c refuses: the runtime never starts, the reason is given."""
    closed = oci / "closed"
    closed.mkdir(mode=0o700)
    c = Container(closed / "bundle", "true", cid="closed")
    rc = c.finish()
    assert rc == 1, c.describe()
    assert "chmod o+x" in c.err, c.describe()

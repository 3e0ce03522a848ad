"""The two-tenant setting of the sandbox attack suite (tests/daemon/test_sandbox.py
on the host test double, tests/gpu/test_sandbox_gpu.py on a real GPU).

An Arena is one running mignificentd with two tenants:

  attacker  deploys tests/daemon/fixture_hostile.c (handler "attack") and
            sends it one attack per invocation ("open_dev /dev/nvidiactl");
  victim    deploys a function with a checkable answer and invokes it back
            to back from a thread (VictimLoad) for as long as the arena
            lives.

Arena.attack() runs one attack and then checks that the daemon still runs
and that the victim has answered again, correctly, since.  Arena.finish()
stops the victim, then the daemon, and returns every problem it saw: a
victim invocation that failed or was answered by another instance than its
first, and anything the instances left on the host (processes of the
sandbox uid range or naming the data directory, cgroups, mounts, files).

Also here: compiling the fixtures, finding the host's NVIDIA driver
libraries, and reading /proc for cgroups and leftovers.  Standard library
only.
"""
import base64
import glob
import json
import os
import pathlib
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
HERE = ROOT / "tests" / "daemon"

TOKENS = {"attacker": "attacker-token-0123456789abcdef",
          "victim": "victim-token-0123456789abcdef"}

# The attacker's limits (the issue): small, so that hitting them is quick.
ATTACKER_LIMITS = {"memory": "256MiB", "pids": 64, "cpus": 0.5, "tmp": "16MiB"}
ATTACKER_MEMORY_MIB = 256
ATTACKER_PIDS = 64
ATTACKER_CPUS = 0.5
ATTACKER_TMP_MIB = 16
# Long enough for the 2 s CPU spin; a hung GPU call costs no more than this.
ATTACKER_TIMEOUT_MS = 5000

# A host uid range of this test run's own, so that any process left in it
# afterwards is ours.  (The daemon's default starts at 1700000000.)
UID_COUNT = 256
UID_BASE = 1_900_000_000 + (os.getpid() % 4096) * UID_COUNT

# What the sandbox's whoami must say: uid 1000 inside its user namespace,
# a low pid in its own pid namespace.
SANDBOX_UID = 1000
SANDBOX_MAX_PID = 16

# The NVIDIA user-space driver (daemon/isolation.c hides these).
DRIVER_PATTERNS = ("libcuda.so*", "libcudadebugger.so*", "libnvidia-*.so*",
                   "libnvcuvid.so*", "libnvoptix.so*")
DRIVER_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu",
               "/usr/lib/aarch64-linux-gnu", "/usr/local/lib",
               "/usr/local/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib",
               "/usr/local/nvidia/lib64", "/usr/lib/wsl/lib")
DRIVER_DIR_GLOBS = ("/usr/local/cuda*/compat", "/usr/local/cuda*/lib64/stubs",
                    "/usr/local/cuda*/targets/*/lib/stubs")

# The GPU device nodes of the NVIDIA driver.
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia-uvm",
                    "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset", "/dev/nvidia-caps/*",
                    "/dev/dri/*")

# Every probe of fixture_hostile.c's "syscall" attack: each must fail with
# EPERM (the seccomp filter, or no capability).
SYSCALL_PROBES = (
    "mount", "umount2", "pivot_root", "chroot", "unshare", "unshare_mount", "unshare_net",
    "setns", "clone_newuser", "clone_newns", "clone_newpid", "clone_newnet",
    "clone3_newuser", "init_module", "finit_module", "delete_module", "kexec_load",
    "reboot", "bpf", "perf_event_open", "keyctl", "io_uring_setup", "userfaultfd",
    "open_by_handle_at", "name_to_handle_at", "ptrace_traceme", "process_vm_readv",
    "process_vm_writev", "kcmp", "pidfd_getfd", "sethostname", "setdomainname", "syslog",
    "iopl", "ioperm", "fanotify_init", "swapon", "acct", "mknod", "setuid", "capset",
    "raw_socket", "packet_socket", "setrlimit", "nice", "rt_sched",
)


# --- building the fixtures ----------------------------------------------------


def compile_c(source, out, *extra):
    """cc -shared -Werror @source into @out, as the daemon tests build fixtures."""
    cc = os.environ.get("CC", "cc")
    argv = [cc, "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-Iinclude",
            *extra, str(source), "-o", str(out)]
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, f"$ {' '.join(argv)}\n{p.stderr}"
    return pathlib.Path(out)


def build_hostile(out_dir):
    """tests/daemon/fixture_hostile.c: the attacker (handler "attack")."""
    return compile_c(HERE / "fixture_hostile.c", pathlib.Path(out_dir) / "libhostile.so",
                     "-Iipc", "-pthread", "-ldl", "ipc/cpulist.c")


def build_fixture(out_dir):
    """tests/daemon/fixture_fn.c: handlers empty, echo, ... (the victim)."""
    return compile_c(HERE / "fixture_fn.c", pathlib.Path(out_dir) / "libfixture.so")


def node_config(isolation="sandbox", **extra):
    """The node's configuration: both tenants, @isolation, our uid range."""
    cfg = {"tenants": [{"name": n, "token": t} for n, t in TOKENS.items()],
           "isolation": isolation,
           "sandbox": {"uid_base": UID_BASE, "uid_count": UID_COUNT}}
    cfg.update(extra)
    return cfg


def driver_library_paths():
    """Every file of the NVIDIA user-space driver on this host: what ldconfig
    knows and what the standard directories hold (not our shim, not the
    build tree's NVML test double)."""
    found = set()
    dirs = list(DRIVER_DIRS)
    for g in DRIVER_DIR_GLOBS:
        dirs += glob.glob(g)
    for d in dirs:
        for pat in DRIVER_PATTERNS:
            found.update(glob.glob(os.path.join(d, pat)))
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) .*=> (\S+)$", line)
        if m and any(pathlib.PurePath(m.group(1)).match(p) for p in DRIVER_PATTERNS):
            found.add(m.group(2))
    build = str(ROOT)
    paths = set()
    for p in found:
        if not os.path.exists(p) or os.path.realpath(p).startswith(build):
            continue
        paths.add(p)
        paths.add(os.path.realpath(p))  # the file itself, not only its links
    return sorted(paths)


# --- HTTP ---------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def error_code(self):
        try:
            return self.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None

    def error_message(self):
        try:
            return self.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            return self.body.decode(errors="replace")[:300]

    def __repr__(self):
        return f"<HTTP {self.status} {self.body[:300]!r}>"


class Api:
    """Requests to one daemon, as one of TOKENS' tenants."""

    def __init__(self, url):
        self.url = url

    @property
    def port(self):
        return int(self.url.rsplit(":", 1)[1])

    def request(self, method, path, body=None, tenant="attacker", timeout=60):
        headers = {"Authorization": f"Bearer {TOKENS[tenant]}"}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers)
        try:
            with _OPENER.open(req, timeout=timeout) as r:
                return Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def deploy(self, name, so, handler, tenant, **extra):
        spec = {"language": "c", "handler": handler,
                "artifact": base64.b64encode(pathlib.Path(so).read_bytes()).decode()}
        spec.update(extra)
        r = self.request("PUT", f"/v1/functions/{name}", spec, tenant=tenant)
        assert r.status in (200, 201), f"deploying {tenant}/{name}: {r}"
        return r

    def invoke(self, name, payload, tenant, timeout=60):
        return self.request("POST", f"/v1/functions/{name}/invoke", payload, tenant=tenant,
                            timeout=timeout)

    def instances(self, tenant):
        r = self.request("GET", "/v1/instances", tenant=tenant)
        assert r.status == 200, r
        return r.json()["instances"]


# --- outcomes -----------------------------------------------------------------


class Outcome:
    """One attack's answer.  kind: "blocked", "ESCAPED" or "info" (the
    fixture's first word, HTTP 200), "error" (the fixture refused or did
    not understand: a bug of the test), or "http" (the invocation failed:
    @code is the daemon's error code)."""

    def __init__(self, line, r):
        self.line, self.status = line, r.status
        self.instance = r.headers.get("X-Mig-Instance") if r.headers else None
        self.code = None
        if r.status == 200:
            self.text = r.body.decode(errors="replace")
            self.kind = self.text.split(" ", 1)[0]
        else:
            self.code = r.error_code()
            self.text = r.error_message()
            self.kind = "error" if self.code == "function_error" else "http"

    def facts(self):
        """KEY=VALUE words of an info answer (whoami, cuda_call) as a dict."""
        return dict(w.split("=", 1) for w in self.text.split() if "=" in w)

    def __str__(self):
        code = f" {self.code}" if self.code else ""
        return f"{self.line!r} -> HTTP {self.status}{code}: {self.text}"


def not_blocked(outcomes):
    """The outcomes that are not "blocked", as problem lines."""
    return [f"not blocked: {o}" for o in outcomes if o.kind != "blocked"]


# --- the victim ---------------------------------------------------------------


class VictimLoad(threading.Thread):
    """The victim tenant's function, invoked back to back.  Every answer
    must be 200 with the expected body, from the same instance throughout.

    @payload(n) is the n-th request body; @expected(body) its right answer
    (None: the first answer to the same payload is the right one)."""

    def __init__(self, api, name, payload, expected=None):
        super().__init__(daemon=True, name="victim-load")
        self.api, self.name = api, name
        self.payload, self.expected = payload, expected
        self.first_answer = None
        self.ok = 0
        self.failures = []
        self.instances = set()
        self.cond = threading.Condition()
        self.stopping = threading.Event()

    def invoke_once(self, n=0):
        """One invocation (also the warm-up): None, or what was wrong."""
        body = self.payload(n)
        try:
            r = self.api.invoke(self.name, body, tenant="victim", timeout=60)
        except OSError as e:
            return f"invocation {n}: {e!r}"
        want = self.expected(body) if self.expected else self.first_answer
        if r.status == 200 and want is None:
            self.first_answer = want = r.body
        if r.status != 200 or r.body != want:
            return f"invocation {n}: {r} (expected {want[:100]!r})"
        self.instances.add(r.headers.get("X-Mig-Instance"))
        with self.cond:
            self.ok += 1
            self.cond.notify_all()
        return None

    def run(self):
        n = 1
        while not self.stopping.is_set():
            problem = self.invoke_once(n)
            if problem and len(self.failures) < 50:
                self.failures.append(problem)
            n += 1
            time.sleep(0.002)

    def wait_for(self, count, timeout):
        """Wait until @count invocations succeeded in all; True if they did."""
        with self.cond:
            return self.cond.wait_for(lambda: self.ok >= count, timeout)

    def finish(self):
        """Stop; the problems seen."""
        self.stopping.set()
        self.join(90)
        problems = [f"victim: {f}" for f in self.failures]
        if self.is_alive():
            problems.append("victim: an invocation is still hanging after 90 s")
        if len(self.instances) != 1:
            problems.append(f"victim: answered by {len(self.instances)} instances "
                            f"{sorted(map(str, self.instances))}: its instance was replaced")
        if self.ok < 2:
            problems.append(f"victim: only {self.ok} invocations succeeded")
        return problems


# --- what processes hold ------------------------------------------------------


def _read(path, default=""):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return default


def _proc_cgroups(pid):
    """{(hierarchy id, controllers): path} of /proc/PID/cgroup."""
    out = {}
    for line in _read(f"/proc/{pid}/cgroup").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out[(parts[0], parts[1])] = parts[2]
    return out


def _cgroup_mounts():
    """{controller (or "" for cgroup2): mount point}."""
    out = {}
    for line in _read("/proc/self/mountinfo").splitlines():
        pre, _, post = line.partition(" - ")
        fields = post.split()
        if len(fields) < 3:
            continue
        mnt = pre.split()[4]
        if fields[0] == "cgroup2":
            out.setdefault("", mnt)
        elif fields[0] == "cgroup":
            for opt in fields[2].split(","):
                out.setdefault(opt, mnt)
    return out


def cgroup_dirs(pid):
    """The cgroup directories of process @pid that are not this process's
    own: the ones the daemon made for an instance."""
    mine, theirs, mounts = _proc_cgroups("self"), _proc_cgroups(pid), _cgroup_mounts()
    dirs = []
    for key, path in theirs.items():
        own = mine.get(key, "/")
        # Ours, or above ours ("/" while a process is exiting): not made
        # for an instance.
        if path == own or own.startswith(path.rstrip("/") + "/") or path == "/":
            continue
        ctrl = key[1].split(",")[0] if key[1] else ""
        if ctrl in mounts:
            dirs.append(os.path.join(mounts[ctrl], path.lstrip("/")))
    return dirs


def _processes():
    """(pid, real/effective/saved/fs uids, state, cmdline) of every process."""
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == os.getpid():
            continue
        status = _read(f"/proc/{e}/status")
        m = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M)
        s = re.search(r"^State:\s+(\S)", status, re.M)
        if not m:
            continue
        cmd = _read(f"/proc/{e}/cmdline").replace("\0", " ").strip()
        yield int(e), [int(u) for u in m.groups()], s.group(1) if s else "?", cmd


def leftover_processes(needles, pids):
    """Processes running as a uid of our range, naming one of @needles
    (the data directory) on their command line, or among @pids and still
    a mignificent program."""
    left = []
    for pid, uids, state, cmd in _processes():
        if state == "Z":
            continue
        why = None
        if any(UID_BASE <= u < UID_BASE + UID_COUNT for u in uids):
            why = f"uid {uids[0]}"
        elif any(n in cmd for n in needles):
            why = "names the data directory"
        elif pid in pids and "mig-" in cmd:
            why = "an instance's process"
        if why:
            left.append(f"pid {pid} ({why}): {cmd[:200]}")
    return left


def _snapshot(dirpath, prefix=""):
    try:
        return {n for n in os.listdir(dirpath) if n.startswith(prefix)}
    except OSError:
        return set()


# --- the arena ----------------------------------------------------------------


class Arena:
    """A daemon, the attacker's hostile function and the victim under load.

    @proc is the daemon's Popen; @stop() stops it and returns its exit
    status; @victim_fn is (artifact, handler, payload(n), expected(body) or
    None: see VictimLoad); @sandboxed: check before any attack that the
    attacker really runs in the sandbox (uid 1000 in a pid namespace of its
    own), so that attacks meant for a sandbox never run on the host."""

    def __init__(self, api, proc, stop, data_dir, config_path, hostile_so, victim_fn,
                 hostile_extra=None, sandboxed=True):
        self.api, self.proc, self._stop = api, proc, stop
        self.data_dir, self.config_path = pathlib.Path(data_dir), pathlib.Path(config_path)
        self.hostile_so = hostile_so
        self.outcomes, self.problems = [], []
        self.pids, self.cgroups = set(), set()
        self.shm_before = _snapshot("/dev/shm")
        self.tmp_before = _snapshot("/tmp", "mig-hostile")
        self.finished = False
        extra = dict(timeout_ms=ATTACKER_TIMEOUT_MS, max_instances=1)
        extra.update(hostile_extra or {})
        api.deploy("hostile", hostile_so, "attack", "attacker", **extra)
        so, handler, payload, expected = victim_fn
        api.deploy("victim", so, handler, "victim")
        self.victim = VictimLoad(api, "victim", payload, expected)
        problem = self.victim.invoke_once()
        assert problem is None, f"the victim does not work before any attack: {problem}"
        self.whoami = self.attack("whoami", check_victim=False)
        assert self.whoami.kind == "info", f"the hostile function does not run: {self.whoami}"
        if sandboxed:
            facts = self.whoami.facts()
            assert (facts.get("uid") == str(SANDBOX_UID) and facts.get("euid") == str(SANDBOX_UID)
                    and 0 < int(facts.get("pid", "0")) <= SANDBOX_MAX_PID), \
                (f"the attacker's function does not run in a sandbox ({self.whoami}); "
                 f"not running attacks that are meant for one")
        self.victim.start()

    # --- facts about the daemon -------------------------------------------

    @property
    def port(self):
        return self.api.port

    @property
    def daemon_pid(self):
        return self.proc.pid

    def function_dir(self, tenant, name):
        return self.data_dir / "functions" / tenant / name

    def artifact(self, tenant, name):
        """The current artifact of @tenant's function @name."""
        meta = json.loads((self.function_dir(tenant, name) / "function.json").read_text())
        return self.function_dir(tenant, name) / meta["artifact_path"]

    def instance(self, tenant, function=None):
        """The (only) instance of @tenant (of @function), or None."""
        lst = [i for i in self.api.instances(tenant)
               if function is None or i["function"] == function]
        return lst[0] if lst else None

    def record_instances(self):
        """Remember every instance's pids and cgroups, to check afterwards
        (nothing while the daemon no longer answers: it is stopping)."""
        for tenant in TOKENS:
            try:
                instances = self.api.instances(tenant)
            except OSError:
                return
            for i in instances:
                for key in ("exec_pid", "gpud_pid"):
                    if i.get(key):
                        self.pids.add(i[key])
                if i.get("exec_pid"):
                    self.cgroups.update(cgroup_dirs(i["exec_pid"]))

    # --- attacking ----------------------------------------------------------

    def attack(self, line, function="hostile", timeout=None, check_victim=True):
        """Run one attack; then the daemon must live and the victim answer."""
        before = self.victim.ok
        r = self.api.invoke(function, line, tenant="attacker",
                            timeout=timeout or ATTACKER_TIMEOUT_MS / 1000 + 60)
        o = Outcome(line, r)
        print(o)
        self.outcomes.append(o)
        if self.proc.poll() is not None:
            self.problems.append(f"the daemon exited ({self.proc.returncode}) after {line!r}")
            return o
        self.record_instances()
        if check_victim and not self.victim.wait_for(before + 2, 30):
            self.problems.append(f"the victim did not answer twice within 30 s after "
                                 f"{line!r} ({self.victim.failures[-3:]})")
        return o

    def expect_blocked(self, lines, function="hostile"):
        """Run @lines; the ones that were not blocked go to the problems."""
        outs = [self.attack(line, function) for line in lines]
        self.problems += not_blocked(outs)
        return outs

    def expect(self, ok, what):
        if not ok:
            self.problems.append(what)

    # --- the end --------------------------------------------------------------

    def finish(self):
        """Stop the victim and the daemon; every problem seen, leftovers
        on the host included."""
        if self.finished:
            return self.problems
        self.finished = True
        problems = list(self.problems)
        if self.proc.poll() is None:
            self.record_instances()
        problems += self.victim.finish()
        rc = self._stop()
        if rc != 0:
            problems.append(f"mignificentd exited with {rc} on SIGTERM")
        problems += self.leftovers()
        return problems

    def leftovers(self):
        """What the instances left behind, waiting up to 10 s for exits."""
        needles = [str(self.data_dir)]
        deadline = time.monotonic() + 10
        while True:
            procs = leftover_processes(needles, self.pids)
            cgroups = [c for c in sorted(self.cgroups) if os.path.isdir(c)]
            for parent in sorted({os.path.dirname(c) for c in self.cgroups}):
                if os.path.isdir(parent):
                    cgroups += [f"{parent}/{n}" for n in os.listdir(parent)
                                if os.path.isdir(os.path.join(parent, n))
                                and f"{parent}/{n}" not in cgroups]
            if (not procs and not cgroups) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        problems = [f"left running: {p}" for p in procs]
        problems += [f"cgroup left: {c}" for c in cgroups]
        problems += [f"mount left: {m}" for m in _read("/proc/self/mountinfo").splitlines()
                     if str(self.data_dir) in m]
        problems += [f"file left: /dev/shm/{n}" for n in _snapshot("/dev/shm") - self.shm_before]
        problems += [f"file left: /tmp/{n}" for n in
                     _snapshot("/tmp", "mig-hostile") - self.tmp_before]
        return problems

    def abort(self):
        """After a failed test: stop the victim's thread (the daemon is the
        caller's to stop)."""
        self.victim.stopping.set()


def copy_as_fake_driver(src, dst):
    """A stand-in for the real libcuda.so.1 (any loadable ELF object)."""
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o644)

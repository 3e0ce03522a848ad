"""Attacks on the executor sandbox (the "Isolation" issue; docs/isolation.md).

Every test starts build/bin/mignificentd (host test double) with two tenants
and the node isolation under test, and deploys

  * as tenant "attacker", tests/daemon/fixture_hostile.c with small limits
    (memory 256MiB, pids 64, cpus 0.5, tmp 16MiB): each invocation is one
    attack, answered "blocked ...", "ESCAPED ..." or "info ...";
  * as tenant "victim", fixture_fn.c's echo, invoked back to back by a
    thread during every attack: each answer must be right and come from the
    victim's first instance (nothing the attacker does may cost it its
    instance, its GPU server or its answers).

sandbox_arena.py holds that setting.  Besides the attacks' own answers,
every test stops the daemon and checks that nothing is left on the host:
no process of the run's sandbox uid range or naming the data directory,
no instance cgroup, no mount, no file in /dev/shm or /tmp.

The attacks (fixture_hostile.c has the list): the GPU device nodes and the
real driver libraries (made up on the host if it has none: fake
/dev/nvidiactl and /dev/nvidia0 nodes, a fake /usr/local/lib/libcuda.so.1
and libnvidia-ml.so.1, created before the daemon starts because it looks
for driver files when it starts), and our NVML in their place; other
tenants' files and the daemon's; other processes (signals, ptrace, /proc);
the network; a read-only file system; denied system calls;
the memory, pids, CPU and /tmp limits; a request ring scribbled over.
Attacks that end the attacker's instance must give a clear error (e.g. 500
memory_limit) and the next invocation a fresh instance.

Positive controls show the suite can fail: with "network": true the
attacker reaches the daemon's port, and on a node with isolation "bare"
the same harmless attacks succeed.

Needs root (the sandbox does).  Timing is not tested here: see
bench/isolation/run.py.
"""
import base64
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
import types

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from migtest import BUILD  # noqa: E402
from sandbox_arena import (ATTACKER_CPUS, ATTACKER_LIMITS, ATTACKER_MEMORY_MIB,  # noqa: E402
                           ATTACKER_PIDS, ATTACKER_TMP_MIB, GPU_DEVICE_NODES, SYSCALL_PROBES,
                           TOKENS, UID_BASE, UID_COUNT, Api, Arena, build_fixture,
                           build_hostile, cgroup_dirs, copy_as_fake_driver,
                           driver_library_paths, node_config)

pytestmark = [
    pytest.mark.invocation,
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root: mignificentd "
                       "refuses isolation \"sandbox\" otherwise"),
]

# Fake NVIDIA device nodes (path: major, minor), made when the host has none.
FAKE_DEVICE_NODES = {"/dev/nvidiactl": (195, 255), "/dev/nvidia0": (195, 0)}
FAKE_DRIVER = "/usr/local/lib/libcuda.so.1"
FAKE_NVML = "/usr/local/lib/libnvidia-ml.so.1"


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The hostile function and fixture_fn.c (the victim), compiled -Werror."""
    out = tmp_path_factory.mktemp("sandbox")
    return types.SimpleNamespace(hostile=build_hostile(out), fixture=build_fixture(out))


@pytest.fixture(scope="module")
def bait(built):
    """What the attacker should not reach, planted on the host for the
    module's duration (and removed after): fake GPU device nodes and fake
    driver and NVML libraries where the host has none, a file in /dev/shm,
    a listening socket in the abstract Unix namespace."""
    made, notes = [], []
    for path, (major, minor) in FAKE_DEVICE_NODES.items():
        if os.path.lexists(path):
            continue
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            made.append(path)
        except OSError as e:  # no CAP_MKNOD (a container): test the absence only
            notes.append(f"cannot make the fake device node {path} ({e}): the device "
                         f"attacks only check that it is absent")
    fake_driver = fake_nvml = None
    ldconfig = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    if ("libcuda.so.1 " not in ldconfig and not os.path.lexists(FAKE_DRIVER)
            and os.path.isdir(os.path.dirname(FAKE_DRIVER))):
        copy_as_fake_driver(built.fixture, FAKE_DRIVER)
        fake_driver = FAKE_DRIVER
        made.append(FAKE_DRIVER)
    if ("libnvidia-ml.so.1 " not in ldconfig and not os.path.lexists(FAKE_NVML)
            and os.path.isdir(os.path.dirname(FAKE_NVML))):
        copy_as_fake_driver(built.fixture, FAKE_NVML)
        fake_nvml = FAKE_NVML
        made.append(FAKE_NVML)
    shm_secret = f"/dev/shm/mig-sandbox-bait-{os.getpid()}"
    with open(shm_secret, "w") as f:
        f.write("a secret of the host\n")
    os.chmod(shm_secret, 0o644)
    made.append(shm_secret)
    abstract = f"@mig-sandbox-bait-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + abstract[1:])
    listener.listen(64)
    try:
        yield types.SimpleNamespace(fake_driver=fake_driver, fake_nvml=fake_nvml,
                                    shm_secret=shm_secret,
                                    abstract=abstract, notes=notes,
                                    device_nodes=[p for p in FAKE_DEVICE_NODES
                                                  if os.path.exists(p)])
    finally:
        listener.close()
        for path in made:
            try:
                os.unlink(path)
            except OSError:
                pass


def echo_victim(built):
    """fixture_fn.c's echo: each answer is its request."""
    return (built.fixture, "echo", lambda n: f"victim {n}".encode(), lambda body: body)


@pytest.fixture
def arena(start_daemon, built, bait):
    """arena(isolation="sandbox", limits=True, network=False, **node config)
    -> a started Arena; its victim thread is stopped after the test."""
    made = []

    def make(isolation="sandbox", limits=True, network=False, name="d", **node_extra):
        d = start_daemon(node_config(isolation, **node_extra), name=name)
        hostile = {}
        if limits:
            hostile["limits"] = ATTACKER_LIMITS
        if network:
            hostile["network"] = True
        a = Arena(Api(d.url), d.p, d.stop, d.data_dir, d.log_path.with_suffix(".json"),
                  built.hostile, echo_victim(built), hostile_extra=hostile,
                  sandboxed=isolation != "bare")
        a.daemon = d
        made.append(a)
        return a

    yield make
    for a in made:
        a.abort()


def verdict(a, *extra):
    """Stop @a, and fail with every problem it saw (and the daemon's log)."""
    problems = a.finish() + list(extra)
    if problems:
        log = a.daemon.logs()[-6000:]
        pytest.fail("\n".join(problems) + f"\n--- daemon log (tail)\n{log}", pytrace=False)


def host_entries(directory, *but):
    """The names in @directory on the host, but @but (at least one name,
    so that a list attack always has something to look for)."""
    names = sorted(set(os.listdir(directory)) - set(but))
    return names or ["nothing-else"]


def still_there(dirs, timeout=10):
    """Those of @dirs that still exist after @timeout seconds (a replaced
    instance's processes may take the daemon's kill grace to go)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [d for d in dirs if os.path.isdir(d)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def number_after(pattern, text):
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None


# --- who the function is ----------------------------------------------------------


def test_the_function_runs_unprivileged_and_alone(arena):
    a = arena()
    facts = a.whoami.facts()
    a.expect(facts.get("capeff") == "0000000000000000", f"capabilities left: {a.whoami}")
    a.expect(facts.get("no_new_privs") == "1", f"no_new_privs is not set: {a.whoami}")
    a.expect(facts.get("seccomp") == "2", f"no seccomp filter: {a.whoami}")
    a.expect(facts.get("host") != socket.gethostname(),
             f"the function sees the host's hostname: {a.whoami}")
    uids = set()
    for tenant in TOKENS:
        for i in a.api.instances(tenant):
            a.expect(i.get("isolation") == "sandbox",
                     f"instance {i.get('id')} of {tenant} lists isolation "
                     f"{i.get('isolation')!r}, not \"sandbox\"")
            if "uid" in i:
                a.expect(UID_BASE <= i["uid"] < UID_BASE + UID_COUNT,
                         f"instance {i['id']} runs as uid {i['uid']}, outside the "
                         f"node's range {UID_BASE}+{UID_COUNT}")
                uids.add(i["uid"])
    a.expect(len(uids) in (0, 2), f"the two tenants' instances share a uid: {uids}")
    # fds 0-2, and 3-6: control channel, segment, the two lifelines.
    a.expect_blocked(["leaked_fds 6", f"env_grep {TOKENS['attacker']} {TOKENS['victim']}",
                      "dlopen_cuda"])
    # The GPU, through the shim, works in there (a control).
    o = a.attack("cuda_call")
    a.expect(o.kind == "info" and o.facts().get("cuInit") == "0",
             f"the shim does not work in the sandbox: {o}")
    verdict(a)


# --- the GPU's device nodes and driver ----------------------------------------------


def test_gpu_device_nodes_are_not_there(arena, bait):
    a = arena()
    for note in bait.notes:
        print(note)
    a.expect_blocked([f"open_dev {' '.join(GPU_DEVICE_NODES)}",
                      "exists /dev/nvidia-caps /dev/dri",
                      "dev_extra",
                      "syscall mknod"])
    verdict(a)


def test_the_real_driver_libraries_cannot_be_loaded(arena, bait):
    a = arena()
    libs = driver_library_paths()
    print(f"driver libraries on this host: {libs or 'none'}")
    a.expect(not bait.fake_driver or bait.fake_driver in libs,
             f"the fake driver {bait.fake_driver} is not among {libs}")
    a.expect_blocked([f"dlopen {p}" for p in libs])
    o = a.attack("dlopen_cuda")
    a.expect(o.kind == "blocked" and "is the shim" in o.text,
             f"libcuda.so.1 by name is not the shim: {o}")
    o = a.attack("dlopen_nvml")
    a.expect(o.kind == "blocked" and "is ours" in o.text,
             f"libnvidia-ml.so.1 by name is not ours: {o}")
    verdict(a)


def test_nvml_in_the_sandbox_is_ours_and_shows_only_the_partition(arena, bait):
    """libnvidia-ml.so.1 by name is the one beside the shim (nvml/nvml.c),
    the host's NVML (a fake one planted where the host has none) cannot be
    loaded, and what ours answers is the instance's partition: one device
    with the partition's UUID and memory, a process list holding the
    function's process only, no utilization."""
    a = arena()
    # The daemon's shim directory: lib/shim beside its bin (the ASan pass
    # runs another build's daemon).
    daemon_bin = os.path.realpath(f"/proc/{a.daemon_pid}/exe")
    ours = os.path.realpath(os.path.join(os.path.dirname(daemon_bin), "..", "lib", "shim",
                                         "libnvidia-ml.so.1"))
    host = [p for p in driver_library_paths() if "libnvidia-ml" in os.path.basename(p)]
    a.expect(not bait.fake_nvml or bait.fake_nvml in host,
             f"the fake NVML {bait.fake_nvml} is not among {host}")
    a.expect_blocked([f"dlopen {p}" for p in host])
    o = a.attack("nvml")
    f = o.facts()
    part = (a.instance("attacker") or {}).get("partition")
    a.expect(o.kind == "info", f"NVML does not answer in the sandbox: {o}")
    a.expect(f.get("path") and os.path.realpath(f["path"]) == ours,
             f"libnvidia-ml.so.1 is {f.get('path')}, not {ours}: {o}")
    a.expect(f.get("version") == "mignificent" and f.get("count") == "1",
             f"not our NVML with one device: {o}")
    a.expect(part and f.get("uuid") == part,
             f"NVML's device {f.get('uuid')} is not the instance's partition {part}: {o}")
    a.expect(f.get("processes") == "1" and f.get("self") == "1",
             f"the process list is not the function's process alone: {o}")
    a.expect(f.get("total") not in (None, "0") and f.get("total") == f.get("cuda_total"),
             f"NVML's memory total is not the partition's: {o}")
    a.expect(f.get("util") == "3", f"utilization is not NOT_SUPPORTED (3): {o}")
    verdict(a)


# --- files ---------------------------------------------------------------------------


def test_files_of_the_node_and_other_tenants_are_out_of_sight(arena, bait):
    a = arena()
    victim_dir = a.function_dir("victim", "victim")
    lines = [f"read {a.artifact('victim', 'victim')}",
             f"read {victim_dir / 'function.json'}",
             f"read {a.config_path}",  # both tenants' tokens
             f"read {a.daemon.log_path}",
             "read /etc/shadow /proc/1/root/etc/shadow /proc/kcore",
             f"read {bait.shm_secret}",
             # The directories above its own code are there (mount points):
             # nothing else of them may be.
             f"list {a.data_dir} {' '.join(host_entries(a.data_dir, 'functions'))}",
             f"list {a.data_dir / 'functions'} "
             f"{' '.join(host_entries(a.data_dir / 'functions', 'attacker'))}",
             "list /root", "list /home",
             "exists /sys /sys/class /sys/fs/cgroup",
             "shm"]
    if (a.data_dir / "token").exists():
        lines.append(f"read {a.data_dir / 'token'}")
    a.expect_blocked(lines)
    verdict(a)


def test_the_default_tenants_token_file_is_out_of_sight(start_daemon, built):
    """Without tenants in the configuration the daemon keeps its token in
    <data dir>/token: the function must not read it."""
    d = start_daemon({"sandbox": {"uid_base": UID_BASE, "uid_count": UID_COUNT}})
    token_file = d.data_dir / "token"
    assert token_file.exists()
    r = d.request("PUT", "/v1/functions/f", {
        "language": "c", "handler": "attack",
        "artifact": base64.b64encode(built.hostile.read_bytes()).decode()})
    assert r.status == 201, r
    r = d.request("POST", "/v1/functions/f/invoke", f"read {token_file}")
    assert r.status == 200 and r.body.startswith(b"blocked "), r
    r = d.request("POST", "/v1/functions/f/invoke", f"env_grep {d.token()}")
    assert r.status == 200 and r.body.startswith(b"blocked "), r
    assert d.stop() == 0


def test_the_file_system_is_read_only(arena):
    a = arena()
    art = a.artifact("attacker", "hostile")
    a.expect_blocked([
        f"write_dir / /usr /etc /bin /proc {art.parent}",
        f"open_write {art} /etc/passwd /etc/ld.so.cache {BUILD / 'bin' / 'mig-exec'} "
        f"{BUILD / 'lib' / 'shim' / 'libcuda.so.1'}",
        "open_write /proc/sysrq-trigger /proc/sys/kernel/core_pattern",
        "proc_sys_write /proc/sys/kernel/hostname /proc/sys/kernel/core_pattern "
        "/proc/sys/vm/overcommit_memory",
        "syscall sethostname setdomainname",
    ])
    verdict(a)


def test_tmp_is_private_and_bounded(arena):
    a = arena()
    own = a.attack("write_dir /tmp /dev/shm")
    a.expect(own.kind == "ESCAPED" and own.text.count("created") == 2,
             f"the function cannot use its own /tmp and /dev/shm: {own}")
    fill = a.attack("fill_tmp 64")
    written = number_after(r"after (\d+) bytes", fill.text)
    a.expect(fill.kind == "blocked" and "ENOSPC" in fill.text and written is not None
             and written <= ATTACKER_TMP_MIB << 20,
             f"/tmp is not limited to {ATTACKER_TMP_MIB} MiB: {fill}")
    shm = a.attack("fill_tmp 128 /dev/shm")
    a.expect(shm.kind == "blocked", f"/dev/shm has no limit: {shm}")
    verdict(a)


# --- other processes -----------------------------------------------------------------


def test_other_processes_are_out_of_reach(arena):
    a = arena()
    victim, own = a.instance("victim"), a.instance("attacker")
    targets = [a.daemon_pid, victim["exec_pid"], victim["gpud_pid"], own["gpud_pid"]]
    a.expect_blocked(
        [f"kill {pid}" for pid in targets] +
        [f"kill {a.daemon_pid} 0",
         f"ptrace {a.daemon_pid}", f"ptrace {victim['gpud_pid']}", "ptrace parent",
         f"proc_peek {' '.join(map(str, targets))}",
         "proc_peek",  # whatever it can see that is not its own
         "syscall process_vm_readv process_vm_writev kcmp pidfd_getfd ptrace_traceme",
         "oom_score_adj -1000"])
    for pid in (victim["exec_pid"], victim["gpud_pid"], own["gpud_pid"]):
        a.expect(os.path.exists(f"/proc/{pid}"), f"process {pid} is gone")
    verdict(a)


def test_kill_all_ends_only_the_attackers_instance(arena):
    a = arena()
    first = a.instance("attacker")
    o = a.attack("kill_all")
    # kill(-1, SIGKILL) reaches every process of the instance, the executor
    # itself included, and nothing else.
    a.expect(o.status == 502 and o.code == "executor_killed",
             f"expected 502 executor_killed: {o}")
    again = a.attack("whoami")
    a.expect(again.status == 200 and again.instance != first["id"],
             f"the attacker's function did not get a new instance: {again}")
    verdict(a)


def test_a_hung_attacker_times_out_and_is_replaced(arena):
    a = arena()
    first = a.instance("attacker")
    first_cgroups = cgroup_dirs(first["exec_pid"])
    o = a.attack("spin 2 20 8")  # 20 s of two busy threads, over a 5 s timeout
    a.expect(o.status == 504 and o.code == "timeout", f"expected 504 timeout: {o}")
    again = a.attack("whoami")
    a.expect(again.status == 200 and again.instance != first["id"],
             f"the attacker's function did not get a new instance: {again}")
    left = still_there(first_cgroups)
    a.expect(not left, f"the cgroups of the timed-out instance are still there: {left}")
    verdict(a)


# --- network -------------------------------------------------------------------------


def test_no_network_but_its_own_loopback(arena, bait):
    a = arena()
    a.expect_blocked([f"connect 127.0.0.1 {a.port}", "connect 1.1.1.1 53",
                      f"unix_connect {bait.abstract}",
                      "syscall raw_socket packet_socket"])
    verdict(a)


def test_network_true_reaches_the_hosts_network(arena, bait):
    """Positive control: the connect attack can succeed."""
    a = arena(network=True)
    o = a.attack(f"connect 127.0.0.1 {a.port}")
    a.expect(o.kind == "ESCAPED", f"with \"network\": true the daemon's port is "
             f"unreachable: {o}")
    # The network is all it gains.
    a.expect_blocked([f"open_dev {' '.join(GPU_DEVICE_NODES)}", f"read {a.config_path}",
                      "syscall raw_socket packet_socket"])
    print(f"with network: {a.attack(f'unix_connect {bait.abstract}')} "
          f"(the host's abstract Unix sockets)")
    verdict(a)


# --- system calls --------------------------------------------------------------------


def test_denied_system_calls_fail(arena):
    a = arena()
    a.expect_blocked([f"syscall {p}" for p in SYSCALL_PROBES])
    verdict(a)


# --- limits --------------------------------------------------------------------------


def test_memory_limit_ends_only_the_attackers_instance(arena):
    a = arena()
    under = a.attack(f"alloc {ATTACKER_MEMORY_MIB // 4}")
    a.expect(under.kind == "ESCAPED", f"a quarter of the memory limit fails: {under}")
    first = a.instance("attacker")
    first_cgroups = cgroup_dirs(first["exec_pid"])
    over = a.attack(f"alloc {ATTACKER_MEMORY_MIB * 4}")
    a.expect(over.status == 500 and over.code == "memory_limit",
             f"expected 500 memory_limit: {over}")
    again = a.attack("whoami")
    a.expect(again.status == 200 and again.instance != first["id"],
             f"the attacker's function did not get a new instance: {again}")
    a.expect(first_cgroups, f"instance {first['id']} had no cgroup of its own")
    left = still_there(first_cgroups)
    a.expect(not left, f"the cgroups of the killed instance are still there: {left}")
    verdict(a)


def test_pids_limit_stops_a_fork_bomb(arena):
    a = arena()
    first = a.instance("attacker")
    o = a.attack("fork_bomb 1000")
    forks = number_after(r"after (\d+) forks", o.text)
    a.expect(o.kind == "blocked" and forks is not None and forks < ATTACKER_PIDS,
             f"the fork bomb was not stopped below {ATTACKER_PIDS} processes: {o}")
    again = a.attack("whoami")
    a.expect(again.status == 200 and again.instance == first["id"],
             f"the instance did not survive its fork bomb: {again}")
    verdict(a)


def test_cpu_limit_holds_busy_threads(arena):
    a = arena()
    o = a.attack(f"spin 4 2 {ATTACKER_CPUS * 1.5}")
    a.expect(o.kind == "blocked", f"4 busy threads got more than {ATTACKER_CPUS} CPUs: {o}")
    verdict(a)


def cpus_allowed(pid):
    """The CPU list process @pid may run on, as the kernel says."""
    for line in _read_text(f"/proc/{pid}/status").splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    return None


def _read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def test_exclusive_cpu_placement_gives_cpus_of_its_own(arena):
    """sandbox.cpu_placement "exclusive" over a pool of two CPUs: the
    attacker (limits.cpus 0.5) runs on one CPU of its own, which it cannot
    widen (the cgroup's cpuset) and which comes back to the pool with its
    instance: three instances in a row, each replaced after the memory limit
    killed it, get the same CPU; the victim (no CPU limit), whose instance
    started first, on all of the pool, is moved to the other CPU."""
    a = arena(sandbox={"uid_base": UID_BASE, "uid_count": UID_COUNT,
                       "cpu_placement": "exclusive", "cpu_pool": "0-1"})
    for round_ in range(3):
        mine = a.instance("attacker")
        victim = a.instance("victim")
        a.expect(mine and mine.get("cpus") == "0" and mine.get("cpus_exclusive") is True,
                 f"round {round_}: the attacker's instance is not on CPU 0 alone: {mine}")
        a.expect(victim and victim.get("cpus") == "1" and victim.get("cpus_exclusive") is False,
                 f"round {round_}: the victim's instance is not on the pool's other CPU: {victim}")
        if victim:
            a.expect(cpus_allowed(victim["exec_pid"]) == "1",
                     f"round {round_}: the victim's sandbox may run on "
                     f"{cpus_allowed(victim['exec_pid'])}, not CPU 1")
        if mine:
            a.expect(cpus_allowed(mine["exec_pid"]) == "0",
                     f"round {round_}: the attacker's sandbox may run on "
                     f"{cpus_allowed(mine['exec_pid'])}, not CPU 0")
        o = a.attack("widen_cpus")
        a.expect(o.kind == "blocked" and "cpus=0 " in o.text,
                 f"round {round_}: the attacker widened its CPUs, or had others: {o}")
        spin = a.attack(f"spin 4 1 {ATTACKER_CPUS * 1.5}")
        a.expect(spin.kind == "blocked", f"4 busy threads on a CPU of its own got more than "
                 f"{ATTACKER_CPUS} CPUs: {spin}")
        if not mine:
            break
        dirs = cgroup_dirs(mine["exec_pid"])
        over = a.attack(f"alloc {ATTACKER_MEMORY_MIB * 4}")
        a.expect(over.status == 500 and over.code == "memory_limit",
                 f"round {round_}: expected 500 memory_limit: {over}")
        # Its CPU is free once its processes (and so its cgroups) are gone.
        left = still_there(dirs)
        a.expect(not left, f"the cgroups of the killed instance are still there: {left}")
        again = a.attack("whoami")
        a.expect(again.status == 200 and again.instance != mine["id"],
                 f"round {round_}: no new instance after the memory limit: {again}")
    verdict(a)


def test_stopping_the_daemon_mid_attack_leaves_nothing(arena):
    """SIGTERM while the attacker spins and holds children: the drain waits
    for the invocation, and then nothing of the sandbox is left."""
    a = arena()
    result = {}
    spinning = threading.Thread(
        target=lambda: result.update(o=a.attack("spin 2 3 8", check_victim=False)))
    spinning.start()
    time.sleep(1)
    problems = a.finish()  # stops the victim, SIGTERM, checks the host
    spinning.join(30)
    o = result.get("o")
    if o is None or o.kind not in ("blocked", "ESCAPED"):
        problems.append(f"the invocation in flight did not finish: {o}")
    if problems:
        pytest.fail("\n".join(problems) + f"\n--- daemon log (tail)\n"
                    f"{a.daemon.logs()[-6000:]}", pytrace=False)


# --- the GPU server --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["garbage", "size", "tail", "op", "header"])
def test_a_scribbled_request_ring_hurts_only_the_attacker(arena, mode):
    a = arena()
    o = a.attack(f"ring {mode}")
    # Its own invocation may fail or time out; only ours may suffer.
    a.expect(o.kind in ("info", "http"), f"the ring attack did not run: {o}")
    for _ in range(3):
        again = a.attack("cuda_call")
        if again.kind == "info" and again.facts().get("cuInit") == "0":
            break
    else:
        a.expect(False, f"the attacker's function does not work again: {again}")
    verdict(a)


# --- positive control: no isolation ---------------------------------------------------


def test_a_bare_node_lets_the_same_attacks_through(arena, bait):
    """The suite can fail: on a node without isolation, harmless versions
    of the attacks above succeed."""
    a = arena(isolation="bare", limits=False, allow_bare=True)
    victim = a.instance("victim")
    lines = ["exists /sys/class",
             f"read {a.config_path}",
             f"read {a.artifact('victim', 'victim')}",
             f"list {a.data_dir / 'functions'} victim",
             f"connect 127.0.0.1 {a.port}",
             f"unix_connect {bait.abstract}",
             f"proc_peek {victim['gpud_pid']}",
             f"read {bait.shm_secret}",
             "dev_extra",
             f"write_dir {a.artifact('attacker', 'hostile').parent}"]
    if os.geteuid() == 0:
        lines += ["read /etc/shadow", "syscall setuid unshare"]
    lines += [f"open_dev {p}" for p in bait.device_nodes]
    lines += [f"dlopen {p}" for p in driver_library_paths()[:3]]
    outs = [a.attack(line) for line in lines]
    for o in outs:
        a.expect(o.kind == "ESCAPED", f"not ESCAPED without isolation: {o}")
    for tenant in TOKENS:
        for i in a.api.instances(tenant):
            a.expect(i.get("isolation") == "bare",
                     f"instance {i.get('id')} lists isolation {i.get('isolation')!r}")
    verdict(a)


# --- choosing the isolation ----------------------------------------------------------


BAD_ISOLATION_SPECS = [
    ({"isolation": "bare"}, "bare"),
    ({"isolation": "vm"}, "isolation"),
    ({"network": "yes"}, "network"),
    ({"limits": "small"}, "limits"),
    ({"limits": {"memory": "1KiB"}}, "limits.memory"),
    ({"limits": {"memory": "lots"}}, "limits.memory"),
    ({"limits": {"cpus": -1}}, "limits.cpus"),
    ({"limits": {"pids": 0}}, "limits.pids"),
    ({"limits": {"tmp": "lots"}}, "limits.tmp"),
    ({"limits": {"gpus": 1}}, "gpus"),
]


@pytest.mark.parametrize("change,word", BAD_ISOLATION_SPECS,
                         ids=[w for _, w in BAD_ISOLATION_SPECS])
def test_isolation_fields_are_checked_at_deploy(start_daemon, built, change, word):
    d = start_daemon(node_config())
    api = Api(d.url)
    spec = {"language": "c", "handler": "attack",
            "artifact": base64.b64encode(built.hostile.read_bytes()).decode(), **change}
    r = api.request("PUT", "/v1/functions/f", spec)
    assert r.status == 400, r
    assert r.error_code() == "invalid_function" and word in r.error_message(), r
    assert api.request("GET", "/v1/functions/f").status == 404


def test_a_deployment_may_ask_bare_only_where_allowed(start_daemon, built):
    d = start_daemon(node_config(allow_bare=True))
    api = Api(d.url)
    j = api.deploy("open", built.hostile, "attack", "attacker", isolation="bare").json()
    assert j["isolation"] == "bare", j
    j = api.deploy("closed", built.hostile, "attack", "attacker", network=True,
                   limits=ATTACKER_LIMITS).json()
    assert j["network"] is True and j["limits"]["memory"] == 256 << 20, j
    assert j["limits"]["pids"] == 64 and j["limits"]["tmp"] == 16 << 20, j
    r = api.invoke("open", "whoami", "attacker")
    assert r.status == 200 and "uid=1000 " not in r.body.decode(), r
    r = api.invoke("closed", "whoami", "attacker")
    assert r.status == 200 and "uid=1000 " in r.body.decode(), r
    modes = {i["function"]: i.get("isolation") for i in api.instances("attacker")}
    assert modes == {"open": "bare", "closed": "sandbox"}, modes
    assert d.stop() == 0


def test_the_isolation_flag_wins_over_the_file(start_daemon, built):
    bad = start_daemon(node_config(), args=("--isolation", "vm"), name="bad", wait=False)
    assert bad.p.wait(10) == 2 and "vm" in bad.logs(), bad.logs()
    d = start_daemon(node_config("sandbox"), args=("--isolation", "bare"))
    api = Api(d.url)
    api.deploy("f", built.hostile, "attack", "attacker")
    assert api.invoke("f", "whoami", "attacker").status == 200
    assert [i.get("isolation") for i in api.instances("attacker")] == ["bare"]
    assert d.stop() == 0

"""The remoting suite: unmodified CUDA programs through `mig run`.

Every program in tests/cuda/*.cu is built twice (static and shared CUDA
runtime, tests/CMakeLists.txt) and run through `mig run --backend
$MIG_TEST_BACKEND` against a fresh GPU server; it must exit 0, print OK, and
leave a server that exited cleanly.  With the host backend (the default, no
GPU needed) kernels are the host functions in build/lib/libmig_test_kernels.so.
With MIG_TEST_BACKEND=cuda the same programs also run natively (tests marked
gpu).
"""
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migtest import (BACKEND, BUILD, KERNELS, MIG, PROG_DIR, ROOT,  # noqa: E402
                     assert_ok, mig_env, mig_run, native_env, run)

PROGRAMS = sorted(p.stem for p in (ROOT / "tests" / "cuda").glob("*.cu"))
VARIANTS = ["static", "shared"]
# Extra builds: (program, variant suffix).
EXTRA = [("threads_streams", "ptds")]
CASES = [(p, v) for p in PROGRAMS for v in VARIANTS] + EXTRA

# Arguments per program.  faults' "launch" section runs on its own below.
ARGS = {"faults": ["args", "sticky"]}


def binary(prog, variant):
    return PROG_DIR / f"{prog}_{variant}"


def case_id(case):
    return f"{case[0]}-{case[1]}"


def test_build_complete():
    """Everything the suite runs was built (a missing piece fails here once
    instead of as a confusing error in every test)."""
    missing = [str(p) for p in [MIG, BUILD / "bin" / "mig-gpud", KERNELS]
               if not p.exists()]
    missing += [str(binary(p, v)) for p, v in CASES if not binary(p, v).exists()]
    assert not missing, ("not built (cmake -S . -B build -G Ninja && ninja -C build): "
                         + ", ".join(missing))


def test_host_kernel_registry():
    """libmig_test_kernels.so exports one table with every kernel once."""
    lib = ctypes.CDLL(str(KERNELS))
    dups = ctypes.c_int.in_dll(lib, "mig_test_kernels_duplicates").value
    assert dups == 0, "a kernel name is defined in two tests/host_kernels files (see stderr)"
    class HostKernel(ctypes.Structure):  # struct mig_host_kernel
        _fields_ = [("name", ctypes.c_char_p), ("nparams", ctypes.c_uint),
                    ("param_size", ctypes.c_ushort * 32), ("run", ctypes.c_void_p),
                    ("busy_us", ctypes.c_uint)]
    table = (HostKernel * 1025).in_dll(lib, "mig_host_kernels")
    names = []
    for k in table:
        if not k.name:
            break
        assert k.run, f"{k.name} has no run()"
        assert k.nparams <= 32 and all(k.param_size[i] for i in range(k.nparams)), k.name
        names.append(k.name.decode())
    for want in ["vec_add", "mk_saxpy", "_Z11mk_cxx_namePii", "mod_fill", "ts_slow",
                 "ft_wild", "mc_weighted_sum", "dq_touch"]:
        assert want in names, f"{want} missing from the registry: {names}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_program(case):
    prog, variant = case
    r = mig_run([binary(prog, variant), *ARGS.get(prog, [])])
    assert_ok(r)


def test_copy_helpers_follow_the_programs_cpus():
    """The shim splits large pageable copies across helper threads, one
    fewer than the CPUs the program may run on (its affinity, as on an
    instance with CPUs of its own), never more than three: on one CPU
    there are none, and the copies are still right."""
    import shutil
    taskset = shutil.which("taskset")
    assert taskset, "taskset (util-linux) is missing"
    cpus = len(os.sched_getaffinity(0))
    for pin, want in (([], min(3, cpus - 1)), ([taskset, "-c", str(min(os.sched_getaffinity(0)))], 0)):
        r = mig_run([*pin, binary("memcpy_matrix", "static")], {"MIG_SHIM_LOG": "1"})
        assert_ok(r)
        m = re.search(r"copy helpers: (\d+) \((\d+) CPUs to run on\)", r.err)
        assert m, "the shim did not start its copy helpers\n" + r.describe()
        assert (int(m.group(1)), int(m.group(2))) == (want, 1 if pin else cpus), r.describe()


def test_copies_do_not_wait_for_late_copy_helpers():
    """A large pageable copy is split across the shim's copy helpers; on a
    node whose CPUs are all busy a woken helper can wait a scheduler tick or
    more to run.  The caller takes back the parts no helper has started and
    copies them itself, so it never waits for one.  With every helper 50 ms
    late (MIG_COPY_HELPER_DELAY_US) the copy matrix (about a hundred split
    pieces) is still right and takes about as long as without helpers:
    waiting for them would add about five seconds."""
    bin_ = binary("memcpy_matrix", "static")
    base = mig_run([bin_], {"MIG_COPY_THREADS": "0"})
    assert_ok(base)
    late = mig_run([bin_], {"MIG_COPY_THREADS": "3", "MIG_COPY_HELPER_DELAY_US": "50000"})
    assert_ok(late)
    assert late.wall < base.wall + 2.0, \
        f"the copies waited for late helpers: {late.wall:.2f} s against {base.wall:.2f} s without helpers"


@pytest.mark.parametrize("variant", VARIANTS)
def test_faults_bad_launch(variant):
    """Invalid launch configurations fail at launch time, and only there."""
    assert_ok(mig_run([binary("faults", variant), "launch"]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_faults_async_args(variant):
    """Bad addresses to async copies and memsets fail at the call, and only there."""
    assert_ok(mig_run([binary("faults", variant), "async-args"]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_faults_malloc_after_fault(variant):
    """After an illegal address, cudaMalloc fails with it too (sticky)."""
    assert_ok(mig_run([binary("faults", variant), "malloc-after-fault"]))


# --- nothing left behind -------------------------------------------------------

def _mig_memfds(tag):
    """{pid: names} of the processes started with MIG_TEST_RUN_TAG=@tag (our
    mig run's server and program, whoever their parent is now) that hold a
    mignificent memfd, as an fd or a mapping.  Other runs on the machine
    (another developer's tests, say) are not ours to judge."""
    held = {}
    want = f"MIG_TEST_RUN_TAG={tag}".encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        names = set()
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if want not in f.read().split(b"\0"):
                    continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("/memfd:mig"):
                    names.add(link)
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    if "/memfd:mig" in line:
                        names.add(line.split(None, 5)[-1].strip())
        except OSError:
            continue
        if names:
            held[int(pid)] = names
    return held


def _alive(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return b"mig-gpud" in cmd and state != "Z"


@pytest.fixture
def gpud_tracker(tmp_path):
    """MIG_GPUD pointing at a wrapper that records the server's pid."""
    real = os.environ.get("MIG_GPUD") or str(BUILD / "bin" / "mig-gpud")
    pidfile = tmp_path / "gpud.pids"
    wrapper = tmp_path / "mig-gpud"
    wrapper.write_text(f'#!/bin/sh\necho $$ >> "{pidfile}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)

    def pids():
        return [int(x) for x in pidfile.read_text().split()] if pidfile.exists() else []
    return {"MIG_GPUD": str(wrapper), "MIG_TEST_RUN_TAG": uuid.uuid4().hex}, pids


def _mig_shm():
    return {n for n in os.listdir("/dev/shm") if "mig" in n.lower()}


def _assert_nothing_left(pids, tag, shm_before, r_desc):
    assert pids, "the wrapper never saw the server start\n" + r_desc
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), f"mig-gpud {pids} still running\n" + r_desc
    leaked_shm = _mig_shm() - shm_before
    assert not leaked_shm, f"/dev/shm entries left behind: {sorted(leaked_shm)}"
    holders = _mig_memfds(tag)
    assert not holders, f"processes of this run still holding mignificent memfds: {holders}"


def test_faults_leave_nothing_behind(gpud_tracker):
    """After a program that broke its context, the server is gone and no
    shared memory (memfd or /dev/shm) outlives the run."""
    env, pids = gpud_tracker
    shm_before = _mig_shm()
    r = mig_run([binary("faults", "static"), *ARGS["faults"]], env_extra=env)
    assert_ok(r)
    _assert_nothing_left(pids(), env["MIG_TEST_RUN_TAG"], shm_before, r.describe())


def test_killed_program_leaves_nothing_behind(gpud_tracker):
    """A program killed in the middle of its work (SIGTERM to mig run, which
    forwards it) takes its server with it."""
    env, pids = gpud_tracker
    shm_before = _mig_shm()
    argv = [str(MIG), "run", "--backend", BACKEND, "--",
            str(binary("threads_streams", "static"))]
    p = subprocess.Popen(argv, env=mig_env(env), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    # threads_streams runs >= 1.5 s (its slow kernel); kill it while the
    # worker threads are busy.
    deadline = time.monotonic() + 10
    while not pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail("mig run did not exit within 30 s of SIGTERM\n" + err[-3000:])
    desc = f"exit {p.returncode}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"
    assert p.returncode == 128 + signal.SIGTERM, desc
    assert "killed by signal 15" in err, desc
    _assert_nothing_left(pids(), env["MIG_TEST_RUN_TAG"], shm_before, desc)


# --- natively, on a GPU ---------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES + [("faults-all", "static")], ids=case_id)
def test_native(case):
    """The same programs without mignificent: their checks hold on the real
    driver (so a failure through mig run is mignificent's)."""
    prog, variant = case
    args = ARGS.get(prog, [])
    if prog == "faults-all":  # every section, the xfailed ones included
        prog, args = "faults", []
    r = run([binary(prog, variant), *args], native_env())
    assert_ok(r, server_summary=False)


@pytest.mark.parametrize("prog", ["many_kernels_shared", "modules_static"])
def test_module_cache_across_runs(prog, tmp_path):
    """`mig run --module-cache DIR`: the first run keeps what it loaded, the
    second gets it loaded ahead, same results; damaged files are dropped."""
    cache = tmp_path / "cache"
    cache.mkdir()

    def once():
        argv = [MIG, "run", "--backend", BACKEND, "--module-cache", cache, "--",
                binary(*prog.rsplit("_", 1))]
        r = run(argv, mig_env({"MIG_GPUD_PROFILE": "1", "MIG_GPUD_VERBOSE": "1"}))
        assert_ok(r)
        [line] = [x for x in r.err.splitlines() if "images received" in x]
        return line, r.err

    first, _ = once()
    kept = sorted(p for p in cache.iterdir() if p.suffix in (".lib", ".mod"))
    assert kept and "0 loaded ahead, 0 used" in first, first
    second, _ = once()
    assert f"{len(kept)} loaded ahead, {len(kept)} used, 0 misses" in second, second
    for p in kept:
        p.write_bytes(p.read_bytes()[:100])  # truncated: the header lies
    third, err = once()
    assert "is damaged; removed" in err and "0 used" in third, err
    assert sorted(p for p in cache.iterdir() if p.suffix in (".lib", ".mod")) == kept


def _phase_wakes(err):
    """(the spin, the wake-ups) of the profile's GPU-phase line in @err."""
    m = re.search(r"woken in its client's GPU phase \(a call after queued GPU work, "
                  r"spinning (\d+) us first\): (\d+), [\d.]+ ms", err)
    assert m, err
    return int(m.group(1)), int(m.group(2))


def test_server_spins_through_a_launch_bound_clients_gaps():
    """A client that launches every 100 us (CPU work between): the server
    spins through the gaps instead of sleeping, so no launch pays its
    wake-up; with MIG_GPUD_PHASE_SPIN_US=50 (the spin after any call) it
    sleeps in nearly every gap."""
    n = 200

    def wakes(extra):
        r = run([MIG, "run", "--backend", BACKEND, "--", binary("launch_gaps", "static"),
                 str(n), "100"], mig_env({"MIG_GPUD_PROFILE": "1", **extra}))
        assert_ok(r)
        return _phase_wakes(r.err)

    spin, woken = wakes({})
    assert spin == 250 and woken <= n // 4, (spin, woken)  # a preempted client may
    # leave the odd gap longer than the spin
    spin, woken = wakes({"MIG_GPUD_PHASE_SPIN_US": "50"})
    assert spin == 50 and woken >= n // 2, (spin, woken)


@pytest.mark.parametrize("value", ["abc", "-1", "100001", " 5", "5us"])
def test_phase_spin_setting_is_checked(value):
    r = run([MIG, "run", "--backend", BACKEND, "--", binary("launch_gaps", "static"), "5", "0"],
            mig_env({"MIG_GPUD_PHASE_SPIN_US": value}))
    assert r.rc != 0 and f"MIG_GPUD_PHASE_SPIN_US={value}: want microseconds" in r.err, \
        r.describe()


def test_module_cache_argument_errors(tmp_path):
    r = run([MIG, "run", "--backend", BACKEND, "--module-cache", tmp_path / "nope", "--",
             "true"], mig_env())
    assert r.rc == 2 and "--module-cache" in r.err, r.describe()

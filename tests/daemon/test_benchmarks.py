"""The daemon benchmarks run (bench/sharing, bench/lukewarm,
bench/isolation): smoke runs on the host test double, so that a change that
breaks their driver code is seen in CI.  Nothing here looks at a number."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from migtest import BUILD, ROOT, load_script  # noqa: E402


def _run(argv, timeout=600, env=None):
    p = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout, env=dict(os.environ, **(env or {})))
    assert p.returncode == 0, f"$ {' '.join(argv)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def _sharing_module():
    return load_script("bench_sharing_run", ROOT / "bench" / "sharing" / "run.py")


def test_sharing_benchmark_runs(tmp_path):
    if not (BUILD / "examples" / "libbfs.so").exists():
        pytest.skip("examples/rodinia was not built (no nvcc)")
    out = _run(["bench/sharing/run.py", "--backend", "host", "--isolation", "bare",
                "--workloads", "hotspot", "--clients", "2", "-n", "2", "--warmup", "1",
                "--rounds", "2", "--logs", str(tmp_path / "logs"), "--exec-poll-us", "200",
                "--models", "time-sharing,sequential,overlap-cpu,overlap-cpu-copy,"
                "overlap-cpu-copy@0,overlap-cpu-copy@phase_spin_us=50",
                "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")],
               env={"MIG_GPUD_PROFILE": "1"})
    assert "2 clients x 2 requests" in out and "overlap-cpu-copy" in out, out
    assert "executors poll 200 us" in out, out  # the daemons took the setting
    assert "overlap-cpu-copy@0: its executors poll 0 us" in out, out  # but this one
    assert "overlap-cpu-copy@phase_spin_us=50: MIG_GPUD_PHASE_SPIN_US=50" in out, out
    # A variant is a column of its own, after its model, with a row of ratios.
    head = next(line for line in out.splitlines() if line.startswith("workload"))
    assert head.split()[-3:] == ["overlap-cpu-copy", "overlap-cpu-copy@0",
                                 "overlap-cpu-copy@phase_spin_us=50"], out
    assert any(line.split()[:1] == ["hotspot@0"] for line in out.splitlines()), out
    assert "medians of 2 rounds" in out, out
    assert (tmp_path / "r.json").exists() and "| hotspot |" in (tmp_path / "r.md").read_text()
    cells = json.loads((tmp_path / "r.json").read_text())["results"]["2"]["hotspot"]
    # The arbiter's turns per request: the kernels' time under
    # overlap-cpu-copy, the whole request under sequential; none otherwise.
    assert 0 < cells["overlap-cpu-copy"]["gpu_ms"] < cells["sequential"]["gpu_ms"], cells
    assert cells["overlap-cpu-copy"]["turns"] > 0, cells
    assert "gpu_ms" not in cells["time-sharing"], cells
    assert "GPU share" in out and "allows" in out, out
    for c in cells.values():  # the tail: medians of the rounds' p99 and longest
        assert 0 < c["p99"] <= c["max"], c
        assert c["cpu_ms"] >= 0, c  # the daemon's tree (a tick is 10 ms: may be 0)
    assert "CPU occ / native" in out, out
    # The GPU servers' profiles, summed per model: the kernels by name, and
    # the turns where the model has them.
    profiles = json.loads((tmp_path / "r.json").read_text())["profiles"]["hotspot"]
    assert set(profiles) == set(cells), profiles
    for m, p in profiles.items():
        assert p["servers"] >= 2 and p["calls"]["launch"][0] > 0, (m, p)
    occ = profiles["overlap-cpu-copy"]
    assert occ["turns"] > 0 and 0 < occ["held_call_ms"] <= occ["held_ms"], occ
    assert occ["held_calls"] >= occ["calls"]["launch"][0], occ  # every launch in a turn
    assert profiles["time-sharing"].get("turns", 0) == 0, profiles
    assert all("phase_wakes" in p for p in profiles.values()), profiles
    assert occ["handovers"] > 0 and occ["handover_ms"] >= 0, occ  # two clients take turns
    assert occ["announced"] >= 0 and occ["announce_spin_ms"] >= 0, occ
    # A server spinning 50 us announces nothing (it spares the CPUs).
    assert profiles["overlap-cpu-copy@phase_spin_us=50"]["announced"] == 0, profiles
    # A snapshot of the CPUs' speed before each round, every CPU in each.
    snaps = json.loads((tmp_path / "r.json").read_text())["cpu_snapshots"]
    assert [(s["workload"], s["round"]) for s in snaps] == [("hotspot", 0), ("hotspot", 1)]
    assert all(sorted(int(c) for c in s["ratios"]) == sorted(os.sched_getaffinity(0))
               for s in snaps), snaps
    assert "CPU snapshots before the rounds" in out and "of 2 snapshots" in out, out
    logs = {p.name for p in (tmp_path / "logs").iterdir()}
    assert logs == {f"{m}.log" for m in cells}, logs
    # The variant's GPU servers, and only its, had the setting.
    for m in cells:
        spin = "50" if m.endswith("=50") else "250"
        assert f"spinning {spin} us first" in (tmp_path / "logs" / f"{m}.log").read_text(), m
    assert "listening on" in (tmp_path / "logs" / "sequential.log").read_text()


# A busy loop that ends after this much CPU time (not wall-clock time: on
# a loaded machine it may get only part of a CPU).
BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {}: pass\n"


def test_sharing_benchmark_names_its_sides():
    """--models MODEL@US: the poll of the side's daemon; what the tables
    order by; bad names refused."""
    run = _sharing_module()
    assert run.side_variant("overlap-cpu-copy@3000", 0) == (3000, {})
    assert run.side_variant("sequential", 200) == (200, {})
    assert run.base_model("overlap-cpu-copy@3000") == "overlap-cpu-copy"
    for bad in ("overlap@3000", "sequential@", "sequential@-1", "sequential@100001",
                "sequential@3k", "sequential@=5", "sequential@Spin=5", "sequential@a=b c",
                "overlap@x=1"):
        with pytest.raises(ValueError):
            run.side_variant(bad, 0)
    # MODEL@KEY=VALUE: MIG_GPUD_KEY=VALUE for its daemon, the poll as the others'.
    assert run.side_variant("overlap-cpu-copy@phase_spin_us=50", 200) == (
        200, {"MIG_GPUD_PHASE_SPIN_US": "50"})
    assert run.base_model("overlap-cpu-copy@resume=0") == "overlap-cpu-copy"
    args = type("A", (), {"backend": "cuda", "native_sides": ["native"],
                          "models": ["overlap-cpu-copy@3000", "sequential", "overlap-cpu-copy",
                                     "overlap-cpu-copy@100"]})
    assert run.table_sides(args) == ["native", "sequential", "overlap-cpu-copy",
                                      "overlap-cpu-copy@100", "overlap-cpu-copy@3000"]
    assert run.occ_sides(args) == ["overlap-cpu-copy", "overlap-cpu-copy@100",
                                   "overlap-cpu-copy@3000"]
    p = subprocess.run([sys.executable, "bench/sharing/run.py", "--backend", "host",
                        "--models", "sequential,sequential"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "named twice" in p.stderr, p.stderr


def test_sharing_plot_leaves_out_workloads_without_every_result():
    """A partial --json (a run cut short) plots only the workloads that
    have a result for every side, rather than empty bars."""
    run = _sharing_module()
    cell = {"mean": 1.0, "std": 0.1}
    cells = {"resnet50": {"native": cell, "sequential": cell},
             "bert": {"native": cell}}
    assert run.plotted_workloads(cells, ["resnet50", "bert", "hotspot"],
                                 ["native", "sequential"]) == (
        ["resnet50"], ["bert", "hotspot"])
    assert run.plotted_workloads({}, ["bfs"], ["native"]) == ([], ["bfs"])


def _children_names(pid):
    """The command names of process @pid's children (/proc)."""
    names = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                for c in f.read().split():
                    with open(f"/proc/{c}/comm") as g:
                        names.append(g.read().strip())
    except OSError:
        pass  # gone meanwhile
    return names


def test_tree_cpu_counts_live_and_reaped_descendants():
    """bench/daemonlib.tree_cpu_s: a grandchild's CPU counts while it runs
    (a live descendant) and after its parent reaped it (the parent's
    children's time)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import daemonlib
    busy = f"{sys.executable} -c '{BUSY.format(0.4)}'"
    reaped = subprocess.Popen(["sh", "-c", f"{busy}; sleep 30"], start_new_session=True)
    live = subprocess.Popen(["sh", "-c", f"{sys.executable} -c '{BUSY.format(30)}' & wait"],
                            start_new_session=True)
    try:
        # The reaped one: once its shell has gone on to "sleep", the busy
        # child (0.4 s of CPU) was reaped.
        deadline = time.monotonic() + 30
        while "sleep" not in _children_names(reaped.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "sleep" in _children_names(reaped.pid)
        assert daemonlib.tree_cpu_s(reaped.pid) >= 0.39
        while daemonlib.tree_cpu_s(live.pid) < 0.8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert daemonlib.tree_cpu_s(live.pid) >= 0.8
        assert daemonlib.tree_cpu_s(2 ** 22 + 12345) == 0  # no such process
    finally:
        for p in (reaped, live):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_lukewarm_benchmark_runs(tmp_path):
    """One round on the state function (a small state): cold, warm, swap-out,
    lukewarm; the table, and the numbers in the JSON."""
    if not (BUILD / "examples" / "libstate.so").exists():
        pytest.skip("examples/state was not built (no nvcc)")
    out = _run(["bench/lukewarm/run.py", "--host", "--isolation", "bare", "--rounds", "1",
                "--warm", "2", "--workloads", "state-16MiB,resnet50",
                "--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")],
               env={"MIG_GPUD_PROFILE": "1"})
    assert "swapped MiB" in out and "state-16MiB" in out and "targets met" in out, out
    assert "resnet50 skipped" in out, out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["partial"] is False and "resnet50" not in saved["results"], saved
    s = saved["results"]["state-16MiB"]["summary"]
    assert s["bytes"] >= 16 << 20 and s["allocations"] >= 1, s
    for k in ("cold_ms", "cold_start_ms", "warm_ms", "swap_out_ms", "swap_in_ms",
              "lukewarm_ms", "swap_in_server_ms", "swap_out_gbs", "swap_in_gbs"):
        assert s[k] > 0, (k, s)
    assert "| state-16MiB |" in (tmp_path / "r.md").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root")
def test_isolation_benchmark_runs():
    out = _run(["bench/isolation/run.py", "--cold", "2", "--warm", "5", "--pause", "0.1"])
    assert "sandbox vs bare" in out, out


def test_exec_poll_benchmark_runs():
    out = _run(["bench/sharing/exec_poll.py", "--polls", "0,500", "--rounds", "2", "-n", "2"])
    lines = out.splitlines()
    assert "compute / base" in lines[1], out
    assert lines[2].split()[0] == "0" and lines[2].split()[4] == "1.000x", out
    assert lines[3].split()[0] == "500" and lines[3].endswith("of 2"), out


def test_native_client_reports_a_functions_phases(tmp_path):
    """bench/sharing's native client keeps the phase times a function puts
    in its answer (examples/torch_models with MODEL_TIMINGS=1), and the
    summary averages them; answers without them leave no trace."""
    fn = tmp_path / "fakefn.py"
    fn.write_text("import json\n"
                  "def infer(payload):\n"
                  "    if payload == b'plain':\n"
                  "        return json.dumps({'ok': True})\n"
                  "    return json.dumps({'timings_ms': {'input': 1.5, 'inference': 2.5}})\n")
    runs = []
    for body in (b"timed", b"plain"):
        (tmp_path / "body").write_bytes(body)
        p = subprocess.run([sys.executable, str(ROOT / "bench" / "sharing" / "native_client.py"),
                            "python", str(fn), "fakefn:infer", str(tmp_path / "body"), "1"],
                           input="go 3\n", capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stdout.startswith("ready\n"), p.stderr
        runs.append(json.loads(p.stdout.splitlines()[1]))
    assert runs[0]["timings"] == [[1.5, 2.5]] * 3 and runs[1]["timings"] == [], runs
    sharing = _sharing_module()
    s = sharing.summary([runs[0]])
    assert (s["input_ms"], s["infer_ms"]) == (1.5, 2.5), s
    assert "input_ms" not in sharing.summary([runs[1]])
    # Each request on the round's timeline: start, latency, (no daemon),
    # the function's phases; starts in order, from the client's start on.
    [reqs] = s["requests"]
    assert [r[2:] for r in reqs] == [[None, 1.5, 2.5]] * 3, reqs
    assert 0 <= reqs[0][0] <= reqs[1][0] <= reqs[2][0] and all(r[1] > 0 for r in reqs), reqs
    assert [r[3:] for r in sharing.summary([runs[1]])["requests"][0]] == [[None, None]] * 3
    assert "requests" not in sharing.combine([s, s])
    assert sharing.phases(b'{"timings_ms": {"input": 1, "inference": 2}}') == [1.0, 2.0]
    assert sharing.phases(b"not json") is None and sharing.phases(b'{"top": [1]}') is None
    # The spread the requests' variance alone makes: none for equal
    # requests; with half of them 5x as long, 20 per client differ by
    # chance; the same draws every time (seeded).
    assert sharing.spread_if_alike([[10.0] * 20] * 4) == (1.0, 1.0)
    mixed = [[10.0, 50.0] * 10] * 4
    med, p90 = sharing.spread_if_alike(mixed)
    assert 1.05 < med < p90 < 2 and (med, p90) == sharing.spread_if_alike(mixed), (med, p90)
    assert sharing.spread_if_alike([[10.0] * 20]) == (1.0, 1.0)  # one client


def test_sharing_ratios_have_an_interval_over_rounds():
    """bench/sharing's ratios of the targets get a 90 % interval over the
    rounds: none under three rounds; a point where every round has the
    same ratio; around the median's ratio, and wider for rounds that
    disagree more; the same figures every time (seeded)."""
    sharing = _sharing_module()
    cell = lambda mean, thr: {"mean": mean, "throughput": thr}  # noqa: E731
    nat = [cell(20.0 + k, 100.0) for k in range(6)]
    assert sharing.ratio_interval(nat[:2], nat[:2], "mean") is None
    assert sharing.ratio_interval([cell(1.1 * c["mean"], 1) for c in nat], nat,
                                  "mean") == pytest.approx((1.1, 1.1))
    near = [cell(c["mean"] * f, 1) for c, f in zip(nat, (0.98, 1.02, 1.0, 0.99, 1.03, 1.01))]
    far = [cell(c["mean"] * f, 1) for c, f in zip(nat, (0.7, 1.3, 1.0, 0.8, 1.4, 1.1))]
    lo, hi = sharing.ratio_interval(near, nat, "mean")
    wlo, whi = sharing.ratio_interval(far, nat, "mean")
    assert 0.9 < lo < 1.0 < hi < 1.1 and wlo < lo and whi > hi, (lo, hi, wlo, whi)
    assert sharing.ratio_interval(far, nat, "mean") == (wlo, whi)
    assert sharing.with_interval(1.04, (0.981, 1.1)) == "1.04x (0.98-1.10)"
    assert sharing.with_interval(1.04, None) == "1.04x"

    # In the table: the mean against native and the throughput against
    # sequential, each with its interval where the run has the rounds.
    class Args:
        backend, clients, n, workloads = "cuda", [2], 10, ["w"]
        models = ["sequential", "overlap-cpu-copy"]
    seq = [cell(40.0, 50.0 + k) for k in range(6)]
    base = {"fairness": 1.0, "alike": 1.0, "alike_p90": 1.0, "std": 1.0}
    rounds = {2: {"w": {"native": [dict(c, **base) for c in nat],
                        "sequential": [dict(c, **base) for c in seq],
                        "overlap-cpu-copy": [dict(c, **base) for c in near]}}}
    results = {2: {"w": {s: sharing.combine(rs) for s, rs in rounds[2]["w"].items()}}}
    text, md = sharing.tables(results, Args, "header", rounds)
    row = next(line for line in md.splitlines() if line.startswith("| w |") and "x (" in line)
    assert row.count("x (") == 2, row
    text, md = sharing.tables(results, Args, "header")
    assert "x (" not in md, md
    # A served native side: its column in the first table, and the mean
    # against it, with its interval, in the second.
    Args.native_sides = ["native", "native-served"]
    rounds[2]["w"]["native-served"] = [dict(c, **base, mean=c["mean"] / 1.05) for c in near]
    results[2]["w"]["native-served"] = sharing.combine(rounds[2]["w"]["native-served"])
    text, md = sharing.tables(results, Args, "header", rounds)
    assert "| workload | native | native-served | sequential | overlap-cpu-copy |" in md, md
    row = next(line for line in md.splitlines() if line.startswith("| w |") and "x (" in line)
    assert "| 1.05x (1.05-1.05) |" in row, row


def test_sharing_spread_over_all_rounds():
    """bench/sharing's clients' spread over a whole run: two clients that
    swap speeds from one round to the next spread 2.0 in each round and
    1.0 over both; one that is slower in every round stays apart; a run
    of one round, or rounds with different clients, has none."""
    sharing = _sharing_module()
    swap = [{"clients": [10.0, 20.0]}, {"clients": [20.0, 10.0]}]
    assert sharing.spread_over_rounds(swap, 10) == pytest.approx(1.0)
    slow = [{"clients": [10.0, 20.0]}, {"clients": [12.0, 18.0]}]
    assert sharing.spread_over_rounds(slow, 10) == pytest.approx(
        (10 / 10 + 10 / 12) / (10 / 20 + 10 / 18))  # 20 requests each
    # Counted from the rounds' requests where a cell has them.
    uneven = [{"clients": [10.0, 10.0], "requests": [[0] * 30, [0] * 10]},
              {"clients": [10.0, 10.0], "requests": [[0] * 10, [0] * 10]}]
    assert sharing.spread_over_rounds(uneven, 10) == pytest.approx(1.0)
    assert sharing.spread_over_rounds(swap[:1], 10) is None
    assert sharing.spread_over_rounds([{"clients": [1.0, 2.0]}, {"clients": [1.0]}], 10) is None

    class Args:
        backend, clients, n, workloads = "cuda", [4], 10, ["w"]
        models = ["overlap-cpu-copy"]
    base = {"mean": 1.0, "std": 0.0, "throughput": 1.0, "alike": 1.0, "alike_p90": 1.0}
    four = [dict(base, clients=[10.0, 20.0, 10.0, 20.0], fairness=2.0),
            dict(base, clients=[20.0, 10.0, 20.0, 10.0], fairness=2.0)]
    rounds = {4: {"w": {"native": four, "overlap-cpu-copy": four}}}
    results = {4: {"w": {s: sharing.combine(rs) for s, rs in rounds[4]["w"].items()}}}
    _, md = sharing.tables(results, Args, "header", rounds)
    row = next(line for line in md.splitlines() if line.startswith("| w |") and "NO" in line)
    assert row.endswith("| 1.00 (1.00) | NO / yes |"), row


def test_native_clients_serve_one_request_at_a_time(tmp_path):
    """bench/sharing's served native baseline: each client thread hands its
    process one request at a time ("one") and gets one answer per request,
    with the function's phases; the back-to-back mode still answers "go N"."""
    fn = tmp_path / "fakefn.py"
    fn.write_text("import json, os\n"
                  "calls = 0\n"
                  "def infer(payload):\n"
                  "    global calls\n"
                  "    calls += 1\n"
                  "    assert payload == b'body'\n"
                  "    return json.dumps({'timings_ms': {'input': calls, 'inference': 0.5}})\n")
    sharing = _sharing_module()
    fnspec = {"language": "python", "artifact": str(fn), "handler": "fakefn:infer",
              "env": {}, "body": b"body"}
    native = sharing.NativeClients(fnspec, 2, 1, str(tmp_path))
    try:
        served = native.run(2, 3, served=True)
        loop = native.run(1, 2, served=False)
    finally:
        native.close()
    assert len(served) == 2 and all(len(r["ms"]) == 3 for r in served), served
    # One warm-up, then three served requests per process, in order.
    assert [t[0] for t in served[0]["timings"]] == [2, 3, 4], served
    assert all(r["start"] < r["end"] for r in served)
    assert [t[0] for t in loop[0]["timings"]] == [5, 6] and len(loop[0]["ms"]) == 2, loop
    assert all(p.poll() is not None for p in native.ps)

"""bench/sharing/threads_cpu.py: whose threads used the CPUs in a cell of
a sharing run.  Its classification of processes, its attribution of
sampled CPU time to a cell's window, and a real sample of a busy process
read from /proc."""
import json
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from migtest import ROOT, load_script  # noqa: E402

SCRIPT = ROOT / "bench" / "sharing" / "threads_cpu.py"


def load():
    return load_script("threads_cpu", SCRIPT)


def test_process_kinds():
    t = load()
    assert t.process_kind("/opt/x/build/bin/mig-gpud --instance f-1 --backend cuda") == "gpud"
    assert t.process_kind("/usr/bin/python3 /r/bench/sharing/native_client.py python m.py") == "native"
    assert t.process_kind("python3 bench/sharing/run.py --clients 4") == "bench"
    assert t.process_kind("/b/bin/mignificentd --config c.json") == "daemon"
    assert t.process_kind("/b/bin/mig-sandbox --root r -- /b/bin/mig-exec") == "daemon"
    assert t.process_kind("/b/bin/mig-exec --fn libhotspot.so") == "function"
    assert t.process_kind("/usr/bin/python3.12 -m mignificent.executor") == "function"
    assert t.process_kind("/usr/sbin/sshd -D") is None


def test_report_attributes_each_cell_its_window(tmp_path, capsys):
    """Two cells, samples around them; a thread that starts inside a
    window counts from zero; per request = the window's ticks / requests."""
    t = load()
    tick = t.TICK_MS
    ms = 1_000_000
    samples = [
        {"t": 0 * ms, "threads": {"1": ["gpud", "mig-gpud", 0], "2": ["function", "python3", 0]}},
        {"t": 100 * ms, "threads": {"1": ["gpud", "mig-gpud", 10], "2": ["function", "python3", 40],
                                    "3": ["function", "mig-copy", 4]}},
        {"t": 200 * ms, "threads": {"1": ["gpud", "mig-gpud", 10], "2": ["function", "python3", 40],
                                    "4": ["native", "python3", 30]}},
    ]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    req = [[0, 1.0, None, None, None]]
    run = {"rounds": {"2": {"bert": {
        "overlap-cpu-copy": [{"window_ns": [10 * ms, 90 * ms], "requests": [req * 3, req]}],
        "native": [{"window_ns": [110 * ms, 190 * ms], "requests": [req, req]}],
    }}}}
    (tmp_path / "r.json").write_text(json.dumps(run))
    t.report(str(tmp_path / "s.jsonl"), str(tmp_path / "r.json"))
    out = capsys.readouterr().out
    occ = next(l for l in out.splitlines() if "overlap-cpu-copy r0" in l)
    assert "(100 ms, 4 requests)" in occ, out
    assert f"function {44 * tick / 4:.2f}" in occ and f"gpud {10 * tick / 4:.2f}" in occ, out
    nat = next(l for l in out.splitlines() if "native r0" in l)
    assert f"total {30 * tick / 2:.2f}: native {30 * tick / 2:.2f}" in nat, out


def test_sample_reads_a_busy_process(tmp_path):
    """Sampling a process that spins for 0.4 s: its thread is found by its
    name, as a function (a Python process that is not the benchmark), with
    its CPU time."""
    out = tmp_path / "s.jsonl"
    busy = ("import ctypes, time\n"
            "ctypes.CDLL(None).prctl(15, b'mig busy test', 0, 0, 0)\n"  # PR_SET_NAME
            "t = time.time()\nwhile time.time() - t < 0.4: pass\n")
    p = subprocess.run([sys.executable, str(SCRIPT), "sample", str(out), "--interval", "0.05",
                        "--", sys.executable, "-c", busy], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    samples = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(samples) >= 4, samples
    assert all(a["t"] < b["t"] for a, b in zip(samples, samples[1:]))
    used = max((ticks for s in samples for kind, name, ticks in s["threads"].values()
                if (kind, name) == ("function", "mig busy test")), default=0)
    assert used * load().TICK_MS >= 200, samples[-2:]

"""bench/gputrace: the CUPTI trace library and its analysis.

In CI the analysis runs on traces written here (two processes, known
gaps); in the GPU suite the library traces a native program and the GPU
server under `mig run`, and the shim's process writes nothing.
"""
import json
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from migtest import (BACKEND, BUILD, PROG_DIR, ROOT, assert_ok, load_script,  # noqa: E402
                     mig_run, native_env, run)

LIB = BUILD / "lib" / "libmig-gputrace.so"
MS = 1_000_000


def load_analyze():
    return load_script("gputrace_analyze", ROOT / "bench" / "gputrace" / "analyze.py")


def write_trace(path, pid, offset, lines):
    """A trace as gputrace.c writes it; CUPTI's clock is @offset ahead of
    CLOCK_MONOTONIC."""
    head = f"# gputrace pid {pid} cmd prog {pid}\n# clock cupti {1000 + offset} monotonic 1000\n"
    path.write_text(head + "".join(lines))


def k(start_ms, end_ms, sub_ms, offset, name):
    to = lambda ms: int(ms * MS) + offset  # noqa: E731
    return f"K {to(start_ms)} {to(end_ms)} {to(sub_ms) if sub_ms is not None else 0} 1 7 {name}\n"


def test_analysis_splits_the_idle_time(tmp_path):
    """Process 1 runs kernel aa at 0-1 and bb at 1.5-2 ms (submitted at 1.3:
    0.3 ms of the 0.5 ms gap late); process 2 runs cc at 3-4 ms, submitted
    at 2.2 (a switch gap of 1 ms, 0.2 late), and a copy at 4-4.5; process 1
    aa again at 4.2-5.4 (overlapping: a switch, no gap), 0.2 ms longer than
    undisturbed.  Two CUPTI clocks, two offsets: the analysis brings both
    to CLOCK_MONOTONIC."""
    a, b = 5 * MS, -3 * MS
    write_trace(tmp_path / "gputrace-11.txt", 11, a,
                [k(0, 1, 0, a, "aa"), k(1.5, 2, 1.3, a, "bb"), k(4.2, 5.4, 4.0, a, "aa"),
                 "K 12 34"])  # a cut line
    write_trace(tmp_path / "gputrace-22.txt", 22, b,
                [k(3, 4, 2.2, b, "cc"), f"C {4 * MS + b} {int(4.5 * MS) + b} 4096 1 1 7\n",
                 k(50, 51, 49, b, "cc")])  # after the cell: not counted
    (tmp_path / "gputrace-33.txt").write_text("# gputrace pid 33 cmd shim\n")  # no clock: skipped
    run_json = tmp_path / "run.json"
    cell = {"window_ns": [1000 - MS // 10, 1000 + 10 * MS], "requests": [[[0]] * 2]}
    run_json.write_text(json.dumps({"rounds": {"2": {"bfs": {"native": [cell]}}}}))

    mod = load_analyze()
    [(c, w, side, i, window, n)] = list(mod.cells(json.loads(run_json.read_text())))
    assert (c, w, side, i, n) == ("2", "bfs", "native", 0, 2)
    ops = [o for p in ("11", "22", "33")
           for o in ((mod.read_trace(tmp_path / f"gputrace-{p}.txt") or (0, 0, []))[2])]
    s = mod.cell_stats(ops, window[0], window[1], n)
    mod.add_excess([s])
    per = lambda ms: pytest.approx(ms / 2, abs=1e-6)  # noqa: E731  (two requests)
    assert s["processes"] == 2
    assert s["kernels"] == 2.0 and s["copies"] == 0.5
    assert s["kernel_ms"] == per(1 + 0.5 + 1 + 1.2)
    assert s["busy_ms"] == per(1 + 0.5 + 2.4)          # 0-1, 1.5-2, 3-5.4
    assert s["idle_same_ms"] == per(0.5) and s["idle_same_late_ms"] == per(0.3)
    assert s["idle_switch_ms"] == per(1.0) and s["idle_switch_late_ms"] == per(0.2)
    assert s["switches"] == per(2)                     # 1 -> 2 -> 1
    assert s["disturbed"] == per(1)                    # aa under the copy
    assert s["excess_disturbed_ms"] == per(0.2) and s["excess_other_ms"] == per(0)

    out = tmp_path / "cells.json"
    r = run([sys.executable, ROOT / "bench" / "gputrace" / "analyze.py", run_json, tmp_path,
             "--json", out], native_env())
    assert r.rc == 0, r.describe()
    assert "bfs 2cl native r0" in r.out, r.describe()
    assert json.loads(out.read_text())["cells"][0]["busy_ms"] == pytest.approx(1.95)


def test_analysis_without_traces_says_so(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    r = run([sys.executable, ROOT / "bench" / "gputrace" / "analyze.py", tmp_path / "run.json",
             tmp_path], native_env())
    assert r.rc != 0 and "no trace records" in r.err, r.describe()


@pytest.mark.gpu
def test_traces_a_native_program_and_the_gpu_server(tmp_path):
    if BACKEND != "cuda":
        pytest.skip("GPU suite only")
    if not LIB.exists():
        pytest.skip("CUPTI was not found when the tree was built")
    prog = PROG_DIR / "many_kernels_shared"
    env = {"CUDA_INJECTION64_PATH": str(LIB), "MIG_GPUTRACE_DIR": str(tmp_path)}

    r = run([prog], native_env(env))
    assert_ok(r, server_summary=False)
    [native] = list(tmp_path.glob("gputrace-*.txt"))
    kernels = [x for x in native.read_text().splitlines() if x.startswith("K ")]
    assert len(kernels) >= 100, native.read_text()[:2000]
    native.unlink()

    r = mig_run([prog], env)
    assert_ok(r)
    # Only the GPU server ran the real driver: one trace, its kernels.
    [server] = list(tmp_path.glob("gputrace-*.txt"))
    text = server.read_text()
    assert "mig-gpud" in text.splitlines()[0], text[:500]
    assert sum(x.startswith("K ") for x in text.splitlines()) == len(kernels)

#!/usr/bin/env python3
"""threads_cpu.py - whose threads used the node's CPUs in each cell of a
bench/sharing run.

`run.py` reports each cell's CPU time per request for the whole side (the
daemon's process tree, or the native processes).  This says which threads
it was: it samples every thread's user + system time from /proc while a
command (the sharing run) runs, then splits each cell's window (`window_ns`
in the run's --json, CLOCK_MONOTONIC) by kind of process and thread name:

  gpud          the GPU servers (mig-gpud: its dispatch loop, mig-gpud-wait,
                the thread that blocks in the driver, mig-gpud-ctl)
  function      the function's own process inside an instance (mig-exec,
                or Python for a Python function: its threads, CPU pools,
                the shim's copy helpers: mig-copy)
  native        the native processes (bench/sharing/native_client.py)
  daemon        mignificentd (its HTTP threads: MHD-*) and mig-sandbox
  bench         the benchmark's own clients (run.py)

Usage:
  threads_cpu.py sample OUT.jsonl -- COMMAND...   run COMMAND, sampling
  threads_cpu.py report OUT.jsonl RUN.json         per cell: ms per request

The sampling reads /proc every --interval seconds (0.1): a cell's figures
are good to about two intervals of the threads' CPU, so compare cells of
many requests.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gputrace"))
from analyze import cells  # noqa: E402  (the run's cells and their windows)

TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def process_kind(cmdline):
    """The kind of a process, from its command line (argv joined by spaces)."""
    argv0 = os.path.basename(cmdline.split(" ", 1)[0])
    if argv0 == "mig-gpud":
        return "gpud"
    if "native_client.py" in cmdline:
        return "native"
    if "sharing/run.py" in cmdline or "threads_cpu.py" in cmdline:
        return "bench"
    if argv0 in ("mignificentd", "mig-sandbox", "mig"):
        return "daemon"
    if argv0 == "mig-exec" or argv0.startswith("python"):
        return "function"  # an instance's executor (the function's process)
    return None


def snapshot():
    """{tid: (kind, thread name, ticks)} of every thread of a known kind."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        raw = _read(f"/proc/{pid}/cmdline")
        if not raw:
            continue
        kind = process_kind(raw.replace(b"\0", b" ").decode(errors="replace").strip())
        if not kind:
            continue
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            st = _read(f"/proc/{pid}/task/{tid}/stat")
            if not st:
                continue
            # comm is in parentheses and may hold spaces: split after it.
            rp = st.rfind(b")")
            name = st[st.find(b"(") + 1:rp].decode(errors="replace")
            fields = st[rp + 2:].split()
            out[int(tid)] = (kind, name, int(fields[11]) + int(fields[12]))
    return out


def sample(path, interval, cmd):
    child = subprocess.Popen(cmd)
    with open(path, "w") as f:
        while True:
            t = time.monotonic_ns()
            f.write(json.dumps({"t": t, "threads": snapshot()}) + "\n")
            if child.poll() is not None:
                break
            time.sleep(interval)
    return child.returncode


def load_samples(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def usage_between(samples, t0, t1):
    """{(kind, name): ms} used between the last sample at or before t0 and
    the first at or after t1 (threads that started in between count from
    zero; threads gone before t1 are lost)."""
    before = max((s for s in samples if s["t"] <= t0), key=lambda s: s["t"], default=None)
    after = min((s for s in samples if s["t"] >= t1), key=lambda s: s["t"], default=None)
    if not before or not after:
        return None, 0
    use = collections.Counter()
    for tid, (kind, name, ticks) in after["threads"].items():
        start = before["threads"].get(tid)
        use[(kind, name)] += (ticks - (start[2] if start else 0)) * TICK_MS
    return use, (after["t"] - before["t"]) / 1e6


def report(samples_path, run_path):
    samples = load_samples(samples_path)
    with open(run_path) as f:
        run = json.load(f)
    print("CPU per request [ms] by kind of process and thread name "
          "(the sampled span around the cell in parentheses)")
    for clients, w, side, i, (t0, t1), n in cells(run):
        label = f"{w} {clients}cl {side} r{i}"
        use, span = usage_between(samples, t0, t1)
        if use is None or not n:
            print(f"{label}: no samples around it")
            continue
        kinds = collections.Counter()
        for (kind, _), ms in use.items():
            kinds[kind] += ms
        line = ", ".join(f"{k} {v / n:.2f}" for k, v in kinds.most_common() if v > 0)
        print(f"{label} ({span:.0f} ms, {n} requests): total {sum(kinds.values()) / n:.2f}: {line}")
        top = [(k, v) for k, v in use.most_common(8) if v > 0]
        print("    " + ", ".join(f"{k[0]}/{k[1]} {v / n:.2f}" for k, v in top))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cmd = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sample")
    s.add_argument("out")
    s.add_argument("--interval", type=float, default=0.1)
    r = sub.add_parser("report")
    r.add_argument("samples")
    r.add_argument("run")
    a = ap.parse_args(argv)
    if a.what == "sample":
        if not cmd:
            ap.error("sample: a command to run after --")
        return sample(a.out, a.interval, cmd)
    report(a.samples, a.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())

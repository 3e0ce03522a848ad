#!/usr/bin/env python3
"""analyze.py - where the GPU's time went in each cell of a bench/sharing run.

Reads the per-process traces that build/lib/libmig-gputrace.so wrote
(gputrace.c says how to get them) and the run's --json, and prints, for
every cell (clients, workload, side, round), per request:

  busy      the time at least one kernel, copy or memset ran (ms)
  kernels   how many, and their summed time (ms): more than natively means
            the kernels themselves ran slower, not the schedule
  idle      the GPU's idle time inside the cell (ms), split by what came
            after the gap:
              same    the next operation was the same process's
              switch  another process's (a context switch; under an
                      exclusive model, a turn passing)
            each split again by whether that operation had been submitted
            to the GPU before the gap began ("pending": the GPU itself was
            slow to start it) or during it (when: how long after the gap
            began it was submitted - the host was late: its launches, or,
            through mignificent, the turn's hand-over before the server
            could issue it)
  switches  gaps or overlaps where the GPU went from one process's work to
            another's
  disturbed the kernels during which another process's work ran on the GPU
            (time-slicing, or another's copy), and what all kernels ran
            longer than the same kernel's median when undisturbed (over the
            whole trace): "excess", split into the disturbed kernels' and
            the others'

Usage: bench/gputrace/analyze.py RUN.json TRACE_DIR [--json OUT]
"""
import argparse
import bisect
import collections
import glob
import json
import os
import re
import statistics
import sys

Op = collections.namedtuple("Op", "start end submitted pid kind name")


def read_trace(path):
    """One process's trace: (pid, command, [Op]) with times in
    CLOCK_MONOTONIC ns; None if the file has no clock line."""
    pid, cmd, offset, ops = None, "?", None, []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("# gputrace pid "):
                m = re.match(r"# gputrace pid (\d+) cmd (.*)", line)
                if m:
                    pid, cmd = int(m.group(1)), m.group(2).strip()
            elif line.startswith("# clock cupti "):
                v = line.split()
                offset = int(v[5]) - int(v[3])
            elif line[:1] in "KCS" and offset is not None:
                v = line.split()
                try:
                    start, end = int(v[1]) + offset, int(v[2]) + offset
                    sub = int(v[3]) + offset if v[0] == "K" and int(v[3]) else None
                    name = v[6] if v[0] == "K" else None
                except (IndexError, ValueError):
                    continue  # a line cut off at the process's end
                if end > start:
                    ops.append(Op(start, end, sub, pid, v[0], name))
    return None if offset is None else (pid, cmd, ops)


def cell_stats(ops, t0, t1, requests):
    """The figures above for the operations within [t0, t1]; per request
    over @requests."""
    ops = sorted((o for o in ops if o.start >= t0 and o.end <= t1), key=lambda o: o.start)
    st = collections.Counter()
    if not ops:
        return None
    cur_end, cur_pid = ops[0].start, ops[0].pid
    pids = set()
    for o in ops:
        pids.add(o.pid)
        st["kernels" if o.kind == "K" else "copies"] += 1
        st["kernel_ns" if o.kind == "K" else "copy_ns"] += o.end - o.start
        if o.start > cur_end:
            gap = o.start - cur_end
            where = "same" if o.pid == cur_pid else "switch"
            # Submitted before the gap began: the whole gap is the GPU's own
            # delay; during it: the host's (the part before the submission).
            late = 0 if o.submitted is None else max(0, min(gap, o.submitted - cur_end))
            st[f"idle_{where}_ns"] += gap
            st[f"idle_{where}_late_ns"] += late
            st[f"gaps_{where}"] += 1
            st["busy_ns"] += o.end - o.start
        else:
            st["busy_ns"] += max(0, o.end - cur_end)
        if o.pid != cur_pid:
            st["switches"] += 1
        if o.end > cur_end:
            cur_end, cur_pid = o.end, o.pid
    r = max(1, requests)
    ms = lambda k: st[k] / 1e6 / r  # noqa: E731
    return {"requests": requests, "processes": len(pids), "kernel_runs": disturbed(ops),
            "span_ms": (t1 - t0) / 1e6 / r,
            "busy_ms": ms("busy_ns"), "kernels": st["kernels"] / r, "kernel_ms": ms("kernel_ns"),
            "copies": st["copies"] / r, "copy_ms": ms("copy_ns"),
            "idle_same_ms": ms("idle_same_ns"), "idle_same_late_ms": ms("idle_same_late_ns"),
            "idle_switch_ms": ms("idle_switch_ns"),
            "idle_switch_late_ms": ms("idle_switch_late_ns"),
            "gaps_same": st["gaps_same"] / r, "switches": st["switches"] / r}


def disturbed(ops):
    """[(name, duration ns, whether another process's operation overlapped
    it)] for the kernels among @ops (sorted by start)."""
    starts = [o.start for o in ops]
    longest = max(o.end - o.start for o in ops)
    out = []
    for o in ops:
        if o.kind != "K":
            continue
        lo = bisect.bisect_left(starts, o.start - longest)
        hi = bisect.bisect_left(starts, o.end)
        hit = any(p.pid != o.pid and p.end > o.start for p in ops[lo:hi])
        out.append((o.name, o.end - o.start, hit))
    return out


def add_excess(stats):
    """Per cell in @stats, the kernels' time over their undisturbed median
    (per request, ms), split by disturbed; the runs are dropped."""
    alone = collections.defaultdict(list)
    for s in stats:
        for name, dur, hit in s["kernel_runs"]:
            if not hit:
                alone[name].append(dur)
    median = {name: statistics.median(d) for name, d in alone.items()}
    for s in stats:
        runs = [(dur - median[name], hit) for name, dur, hit in s.pop("kernel_runs")
                if name in median]
        r = max(1, s["requests"])
        s["disturbed"] = sum(hit for _, hit in runs) / r
        s["excess_disturbed_ms"] = sum(x for x, hit in runs if hit) / 1e6 / r
        s["excess_other_ms"] = sum(x for x, hit in runs if not hit) / 1e6 / r


def cells(run):
    """(clients, workload, side, round, window, requests) of every round of
    every cell that has a window."""
    for c, per_w in run.get("rounds", {}).items():
        for w, per_side in per_w.items():
            for side, rounds in per_side.items():
                for i, r in enumerate(rounds):
                    if "window_ns" in r:
                        n = sum(len(x) for x in r.get("requests", ()))
                        yield c, w, side, i, r["window_ns"], n


COLUMNS = [("busy", "busy_ms", "{:.2f}"), ("kernels", "kernels", "{:.0f}"),
           ("kernel ms", "kernel_ms", "{:.2f}"), ("copy ms", "copy_ms", "{:.2f}"),
           ("idle same", "idle_same_ms", "{:.2f}"), ("(late)", "idle_same_late_ms", "{:.2f}"),
           ("idle switch", "idle_switch_ms", "{:.2f}"),
           ("(late)", "idle_switch_late_ms", "{:.2f}"), ("switches", "switches", "{:.2f}"),
           ("disturbed", "disturbed", "{:.1f}"), ("excess dist.", "excess_disturbed_ms", "{:.2f}"),
           ("excess other", "excess_other_ms", "{:.2f}"), ("span", "span_ms", "{:.2f}")]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_json")
    ap.add_argument("trace_dir")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    with open(args.run_json) as f:
        run = json.load(f)
    ops, names = [], {}
    for path in sorted(glob.glob(os.path.join(args.trace_dir, "gputrace-*.txt"))):
        t = read_trace(path)
        if t:  # the program and its first argument, without their paths
            names[t[0]] = " ".join(os.path.basename(w) for w in t[1].split()[:2])
            ops.extend(t[2])
    if not ops:
        sys.exit(f"analyze.py: no trace records in {args.trace_dir}")
    out = []
    for c, w, side, i, (t0, t1), n in cells(run):
        s = cell_stats(ops, t0, t1, n)
        if s:
            out.append({"clients": c, "workload": w, "side": side, "round": i, **s})
    add_excess(out)
    print("per request [ms]; idle (late): the part before the next operation was submitted")
    print(f"{'cell':<36}" + "".join(f"{h:>13}" for h, _, _ in COLUMNS))
    for s in out:
        print(f"{'{workload} {clients}cl {side} r{round}'.format(**s):<36}"
              + "".join(f"{fmt.format(s[k]):>13}" for _, k, fmt in COLUMNS))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cells": out, "processes": names}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

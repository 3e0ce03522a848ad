#!/usr/bin/env python3
"""run.py - native vs mignificent, in one invocation, as one table of ratios.

Runs bench/remoting/remoting_bench twice per round: natively (the program
finds the real libcuda.so.1) and under `mig run --backend cuda` (the shim is
its libcuda.so.1, mig-gpud does the work).  Rounds alternate which side goes
first, each metric is the median over rounds, and the result is one table:

    metric | native | mignificent | ratio or difference | target | met?

Targets (the remoting issue):
    launch_async_us              mignificent <= 1.3 x native
    launch_sync_us               mignificent <= native + 5 us
    device_sync_idle_us          mignificent <= native + 4 us
    memcpy_1B_pair_us            mignificent <= native + 6 us
    {h2d,d2h}_{pinned,mignificent_malloc}_N, N >= 4 MiB
                                 mignificent >= 0.95 x native pinned
    {h2d,d2h}_pageable_N, N >= 4 MiB
                                 mignificent >= 1.0 x native pageable
Every other metric is shown for information.

With --host the remoted side uses the `host` test-double backend (no GPU;
kernels from libmig_bench_kernels.so): that checks the plumbing, not the
numbers, and the native side is expected to fail on a machine without a GPU.

A benchmark, not a test: missed targets are reported, not failed.  The exit
status is nonzero only when a run that should have worked did not, or a
metric could not be measured (the benchmark's `error NAME MESSAGE` lines,
shown as ERROR in the table and listed under it).

Standard library only.
"""

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name -> (comparison, bound, target text).  "ratio": mignificent / native
# <= bound; "diff": mignificent - native <= bound (microseconds).
LATENCY_TARGETS = {
    "launch_async_us": ("ratio", 1.3),
    "launch_sync_us": ("diff", 5.0),
    "device_sync_idle_us": ("diff", 4.0),
    "memcpy_1B_pair_us": ("diff", 6.0),
}
# Latency metrics shown as a ratio even without a target (it reads better).
RATIO_LATENCY = {"launch_async_us", "launch_enqueue_us"}

BW_RE = re.compile(r"^(h2d|d2h)_(pageable|pinned|mignificent_malloc)_(\d+)(B|KiB|MiB|GiB)$")
UNIT_BYTES = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
BW_TARGET_MIN = 4 << 20
BW_TARGET = {"pinned": 0.95, "mignificent_malloc": 0.95, "pageable": 1.0}


class Run:
    """One execution of the benchmark: its metrics, info lines and status."""

    def __init__(self, side, argv):
        self.side = side
        self.argv = argv
        self.metrics = {}  # name -> (value, unit, note)
        self.order = []
        self.info = {}
        self.errors = {}  # name -> message, from `error` lines
        self.rc = None
        self.stdout = ""
        self.stderr = ""
        self.error = None

    def ok(self):
        return self.error is None


def parse_output(run, text):
    """Parse `metric NAME VALUE UNIT [NOTE]`, `error NAME MESSAGE` and
    `info KEY TEXT` lines."""
    for line in text.splitlines():
        f = line.split(None, 4)
        if len(f) >= 4 and f[0] == "metric":
            try:
                value = float(f[2])
            except ValueError:
                continue
            if f[1] not in run.metrics:
                run.order.append(f[1])
            run.metrics[f[1]] = (value, f[3], f[4] if len(f) > 4 else "")
        elif len(f) >= 2 and f[0] == "error":
            if f[1] not in run.metrics and f[1] not in run.errors:
                run.order.append(f[1])
            run.errors[f[1]] = line.split(None, 2)[2] if len(f) > 2 else "failed"
        elif len(f) >= 2 and f[0] == "info":
            run.info[f[1]] = line.split(None, 2)[2] if len(f) > 2 else ""


def execute(side, argv, env, timeout, want_mode):
    """Run one side and check it ran in the mode we meant to measure."""
    run = Run(side, argv)
    try:
        p = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout,
                           universal_newlines=True)
        run.rc, run.stdout, run.stderr = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        run.stdout = e.stdout or ""
        run.stderr = e.stderr or ""
        if isinstance(run.stdout, bytes):
            run.stdout = run.stdout.decode(errors="replace")
        if isinstance(run.stderr, bytes):
            run.stderr = run.stderr.decode(errors="replace")
        run.error = "timed out after %d s" % timeout
    except OSError as e:
        run.error = str(e)
        return run
    parse_output(run, run.stdout)
    # Status 3: finished, but some metrics are `error` lines.
    if run.error is None and run.rc not in (0, 3):
        run.error = "exit status %d" % run.rc
    if run.error is None and "done" not in run.info:
        run.error = "output ended early"
    mode = run.info.get("mode")
    if run.error is None and mode != want_mode:
        # A "native" run that found the shim, or a remoted run that found
        # the real driver, measures the wrong thing: refuse its numbers.
        run.error = "ran in %s mode, expected %s" % (mode, want_mode)
    return run


def gpu_info():
    """(name, driver) from nvidia-smi, or (None, None) without it."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None, None
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version",
                              "--format=csv,noheader"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    rows = [[c.strip() for c in l.split(",")] for l in out.splitlines() if l.strip()]
    if not rows:
        return None, None
    names = sorted(set(r[0] for r in rows))
    drivers = sorted(set(r[1] for r in rows if len(r) > 1))
    name = ", ".join(names)
    if len(rows) > 1:
        name = "%d x %s" % (len(rows), name)
    return name, ", ".join(drivers) or None


def combine(runs):
    """(metric -> (median value, unit, note), metric -> error, order) over
    the successful runs; a metric that failed in any run is an error."""
    vals, meta, errors, order = {}, {}, {}, []
    for r in runs:
        if not r.ok():
            continue
        for name in r.order:
            if name not in order:
                order.append(name)
            if name in r.errors:
                errors.setdefault(name, r.errors[name])
                continue
            v, unit, note = r.metrics[name]
            vals.setdefault(name, []).append(v)
            meta[name] = (unit, note)
    res = {n: (statistics.median(vals[n]),) + meta[n]
           for n in vals if n not in errors}
    return res, errors, order


def target_of(name):
    """(kind, comparison, bound) for a metric, or None when informational."""
    if name in LATENCY_TARGETS:
        cmp, bound = LATENCY_TARGETS[name]
        return cmp, "<=", bound
    m = BW_RE.match(name)
    if m and int(m.group(3)) * UNIT_BYTES[m.group(4)] >= BW_TARGET_MIN:
        return "ratio", ">=", BW_TARGET[m.group(2)]
    return None


def unit_of(name):
    """The unit of a metric known only from `error` lines."""
    return "GB/s" if BW_RE.match(name) else "us"


def build_rows(native, remoted, order, n_err, m_err):
    """One row per metric: texts for the table and whether it met its target."""
    rows = []
    for name in order:
        n = native.get(name)
        r = remoted.get(name)
        unit = (n or r)[1] if n or r else unit_of(name)
        note = n[2] if n else ""
        tgt = target_of(name)
        if tgt:
            cmp = tgt[0]
        elif unit == "us" and name not in RATIO_LATENCY:
            cmp = "diff"
        else:
            cmp = "ratio"
        row = {
            "metric": name, "unit": unit, "note": note,
            "native": "%.2f" % n[0] if n else "ERROR" if name in n_err else "n/a",
            "mig": "%.2f" % r[0] if r else "ERROR" if name in m_err else "n/a",
            "cmp": "n/a", "target": "-", "met": "-",
            "value": None, "tgt": tgt, "kind": cmp,
        }
        if n and r:
            if cmp == "diff":
                row["value"] = r[0] - n[0]
            elif n[0] > 0:
                row["value"] = r[0] / n[0]
        if tgt:
            row["met"] = "n/a"
            if row["value"] is not None:
                ok = row["value"] <= tgt[2] if tgt[1] == "<=" else row["value"] >= tgt[2]
                row["met"] = "yes" if ok else "NO"
            elif name in m_err:
                row["met"] = "NO"  # the remoted side could not do it at all
        rows.append(row)
    return rows


def fmt_cmp(row, md):
    v = row["value"]
    if v is None:
        return "n/a"
    if row["kind"] == "diff":
        return "%+.2f %s" % (v, "µs" if md else "us")
    return "%.3f%s" % (v, "×" if md else "x")


def fmt_target(row, md):
    t = row["tgt"]
    if not t:
        return "-"
    op = {"<=": "≤", ">=": "≥"}[t[1]] if md else t[1]
    if t[0] == "diff":
        return "%s +%g %s" % (op, t[2], "µs" if md else "us")
    return "%s %.2f%s" % (op, t[2], "×" if md else "x")


def table(rows, md):
    head = ["metric", "native", "mignificent", "ratio / diff", "target", "met?"]
    body = []
    for row in rows:
        label = "%s [%s]" % (row["metric"], row["unit"].replace("us", "µs") if md else row["unit"])
        if row["note"]:
            label += " " + row["note"]
        body.append([label, row["native"], row["mig"], fmt_cmp(row, md),
                     fmt_target(row, md), row["met"]])
    if md:
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join(["---"] + ["---:"] * 4 + [":---:"]) + "|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
        return "\n".join(out)
    width = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]

    def line(cells):
        return "  ".join(c.ljust(width[i]) if i == 0 else c.rjust(width[i])
                         for i, c in enumerate(cells)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in width])] + [line(r) for r in body])


def error_list(n_err, m_err, md):
    """Lines naming every metric that failed, and why."""
    out = []
    for side, errs in (("native", n_err), ("mignificent", m_err)):
        for name, msg in errs.items():
            out.append(("- %s `%s`: %s" if md else "ERROR %s %s: %s") % (side, name, msg))
    return "\n".join(out)


def summary(rows):
    judged = [r for r in rows if r["tgt"]]
    met = sum(1 for r in judged if r["met"] == "yes")
    missing = sum(1 for r in judged if r["met"] == "n/a")
    s = "targets met: %d of %d" % (met, len(judged))
    if missing:
        s += " (%d without data)" % missing
    return s


def header(args, gpu, driver, native_runs, mig_runs, md):
    info = next((r.info for r in native_runs + mig_runs if r.info), {})
    lines = [
        ("date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("host", platform.node()),
        ("GPU", gpu or info.get("device", "unknown") + " (from the benchmark)"),
        ("driver", driver or "unknown (no nvidia-smi)"),
        ("CUDA driver API / runtime", "%s / %s" % (info.get("driver_api", "?"),
                                                   info.get("runtime", "?"))),
        ("mignificent backend", args.backend),
        ("rounds", "%d (median per metric; sides alternate first)" % args.rounds),
        ("native", " ".join(native_runs[0].argv) if native_runs else "skipped"),
        ("mignificent", " ".join(mig_runs[0].argv) if mig_runs else "skipped"),
    ]
    if md:
        return "\n".join("- **%s**: %s" % (k, v if k not in ("native", "mignificent")
                                             else "`%s`" % v) for k, v in lines)
    return "\n".join("%-26s %s" % (k + ":", v) for k, v in lines)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Run remoting_bench natively and under mignificent; print one table.")
    ap.add_argument("--host", action="store_true",
                    help="remote through the host test-double backend (no GPU needed)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"),
                    help="build tree (default: %(default)s)")
    ap.add_argument("--mig", help="mig executable (default: BUILD/bin/mig)")
    ap.add_argument("--bench", help="benchmark (default: BUILD/bench/remoting/remoting_bench)")
    ap.add_argument("--kernels",
                    help="host kernels for --host (default: BUILD/lib/libmig_bench_kernels.so)")
    ap.add_argument("--rounds", type=int, help="native+mignificent pairs (default 3, 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="pass --quick to the benchmark")
    ap.add_argument("--max-size", help="pass --max-size BYTES to the benchmark")
    ap.add_argument("--skip-native", action="store_true", help="run only the mignificent side")
    ap.add_argument("--markdown", nargs="?", const="-", metavar="FILE",
                    help="write the table as Markdown to FILE (stdout when no FILE)")
    ap.add_argument("--log-dir", help="save every run's stdout and stderr here")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per run (default 1200)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="show each run's stderr (mig run's summary)")
    args = ap.parse_args(argv)
    b = args.build_dir
    args.mig = args.mig or os.path.join(b, "bin", "mig")
    args.bench = args.bench or os.path.join(b, "bench", "remoting", "remoting_bench")
    args.kernels = args.kernels or os.path.join(b, "lib", "libmig_bench_kernels.so")
    args.backend = "host" if args.host else "cuda"
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def main(argv):
    args = parse_args(argv)
    for path, what in ((args.bench, "benchmark"), (args.mig, "mig")):
        if not os.access(path, os.X_OK):
            sys.exit("run.py: no %s at %s (build it: cmake --build build), "
                     "or name it with --%s" % (what, path, "bench" if what == "benchmark" else "mig"))

    bench = [os.path.abspath(args.bench)]
    if args.quick:
        bench.append("--quick")
    if args.max_size:
        bench += ["--max-size", args.max_size]
    mig = [os.path.abspath(args.mig), "run", "--backend", args.backend, "--"] + bench

    native_env = dict(os.environ)
    mig_env = dict(os.environ)
    if args.host:
        if not os.path.exists(args.kernels):
            sys.exit("run.py: no host kernels at %s (--kernels)" % args.kernels)
        old = mig_env.get("MIG_HOST_KERNELS")
        mig_env["MIG_HOST_KERNELS"] = os.path.abspath(args.kernels) + (":" + old if old else "")
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)

    native_runs, mig_runs = [], []
    for rnd in range(args.rounds):
        sides = [("mignificent", mig, mig_env, "mignificent")]
        if not args.skip_native:
            sides.insert(0, ("native", bench, native_env, "native"))
        if rnd % 2:
            sides.reverse()
        for side, cmd, env, mode in sides:
            print("round %d/%d: %s ..." % (rnd + 1, args.rounds, side), file=sys.stderr, flush=True)
            r = execute(side, cmd, env, args.timeout, mode)
            (native_runs if side == "native" else mig_runs).append(r)
            if args.log_dir:
                base = os.path.join(args.log_dir, "%s.%d" % (side, rnd + 1))
                with open(base + ".out", "w") as f:
                    f.write(r.stdout)
                with open(base + ".err", "w") as f:
                    f.write(r.stderr)
            if args.verbose and r.stderr:
                sys.stderr.write(r.stderr)
            if not r.ok():
                print("run.py: %s run failed: %s" % (side, r.error), file=sys.stderr)
                tail = r.stderr.strip().splitlines()[-8:]
                for l in tail:
                    print("    " + l, file=sys.stderr)

    native, n_err, n_order = combine(native_runs)
    remoted, m_err, m_order = combine(mig_runs)
    order = n_order + [m for m in m_order if m not in n_order]
    rows = build_rows(native, remoted, order, n_err, m_err)
    errs = error_list(n_err, m_err, False)
    gpu, driver = gpu_info()

    print(header(args, gpu, driver, native_runs, mig_runs, False))
    print()
    if rows:
        print(table(rows, False))
        print()
    if errs:
        print(errs)
        print()
    print(summary(rows))
    if args.host:
        print("(host test-double backend: checks the plumbing; the numbers say nothing about a GPU)")

    if args.markdown:
        parts = [header(args, gpu, driver, native_runs, mig_runs, True),
                 table(rows, True) if rows else "(no results)"]
        if errs:
            parts.append("Errors:\n\n" + error_list(n_err, m_err, True))
        md = "\n\n".join(parts + [summary(rows) + "."]) + "\n"
        if args.markdown == "-":
            print()
            sys.stdout.write(md)
        else:
            with open(args.markdown, "w") as f:
                f.write(md)
            print("markdown written to %s" % args.markdown, file=sys.stderr)

    # Failures that matter: any remoted run; a native run unless --host
    # (a machine with no GPU cannot run natively).
    failed = any(not r.ok() for r in mig_runs) or bool(m_err)
    failed |= not args.host and (any(not r.ok() for r in native_runs) or bool(n_err))
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""run.py - the paper's ML functions natively and through mignificent, in
one run, as a table of ratios.

For each model (ResNet-50, AlexNet, VGG19, BERT-base; random weights, batch
1, examples/torch_models/models.py) it starts bench/ml/infer.py natively,
under `mig run --backend cuda` (the unmodified process with the shim as its
libcuda.so.1, against a fresh GPU server), and under `mig run
--module-cache DIR` after one untimed run has filled DIR (what the next
instance of a deployed function gets: its server loads the modules the
previous instance used while the new one imports torch), --rounds times
each, the order rotating, and compares the medians over the rounds of:

    instance start   import torch + build the model + move it to the GPU
    first inference  cuDNN/cuBLAS set-up, lazy module loading
    warm inference   mean, p50, p99 over -n inferences (each synchronized),
                     after --warmup untimed ones (default 50; both sides)
    output           SHA-256 of the last output: must be the same bits

Targets (issue "Real GPU libraries through the shim"): warm inference
<= 1.10x native, instance start <= 1.25x native.

Usage: bench/ml/run.py [--models resnet50,alexnet,vgg19,bert] [-n 100] [--warmup 50]
                       [--rounds 3] [--build DIR] [--markdown FILE]
A benchmark, not a test: the exit status is nonzero only when a run failed.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFER = os.path.join(ROOT, "bench", "ml", "infer.py")


def one(argv, env):
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode or not lines:
        sys.stderr.write(f"$ {' '.join(argv)}\nexit {p.returncode}\n{p.stdout[-2000:]}\n"
                         f"{p.stderr[-4000:]}\n")
        return None
    return json.loads(lines[-1])


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


def gpu_name():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version",
                               "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown GPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet50,alexnet,vgg19,bert")
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--markdown")
    a = ap.parse_args()
    mig = os.path.join(a.build, "bin", "mig")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    rows, failed = [], False
    for i, name in enumerate(a.models.split(",")):
        native_argv = [sys.executable, INFER, name, str(a.n), str(a.warmup)]
        cache = tempfile.mkdtemp(prefix=f"mig-modcache-{name}-")
        sides = [("native", native_argv),
                 ("mig", [mig, "run", "--backend", "cuda", "--", *native_argv]),
                 ("cached", [mig, "run", "--backend", "cuda", "--module-cache", cache,
                             "--", *native_argv])]
        print(f"{name}: filling the module cache ...", file=sys.stderr, flush=True)
        if not one(sides[2][1][:-3] + [name, "1", "0"], env):
            failed = True
            continue
        res = {side: [] for side, _ in sides}
        for k in range(a.rounds):
            order = sides[(i + k) % 3:] + sides[:(i + k) % 3]
            for side, argv in order:
                print(f"{name}: {side}, round {k + 1} ...", file=sys.stderr, flush=True)
                r = one(argv, env)
                if r:
                    res[side].append(r)
        subprocess.run(["rm", "-rf", cache])
        if not all(res.values()):
            failed = True
            continue

        def med(side, f):
            return statistics.median(f(r) for r in res[side])

        def row(metric, f, target=None, unit="", side="mig"):
            n, m = med("native", f), med(side, f)
            r = m / n if n else float("nan")
            met = "-" if target is None else ("yes" if r <= target else "NO")
            rows.append((f"{name} {metric}{unit}", n, m, f"{r:.3f}x",
                         "-" if target is None else f"<= {target:.2f}x", met))

        def start(r):
            return r["import_s"] + r["build_s"]

        row("instance start", start, 1.25, " [s]")
        row("  import", lambda r: r["import_s"], None, " [s]")
        row("  build + to GPU", lambda r: r["build_s"], None, " [s]")
        row("first inference", lambda r: r["first_ms"], None, " [ms]")
        row("warm mean", lambda r: statistics.mean(r["warm_ms"]), 1.10, " [ms]")
        row("warm p50", lambda r: pct(r["warm_ms"], 50), 1.10, " [ms]")
        row("warm p99", lambda r: pct(r["warm_ms"], 99), None, " [ms]")
        row("next instance start (module cache)", start, 1.25, " [s]", "cached")
        row("next first inference (module cache)", lambda r: r["first_ms"], None, " [ms]",
            "cached")
        digests = {r["digest"] for side in res for r in res[side]}
        same = len(digests) == 1
        rows.append((f"{name} output bits", "-", "-", "same" if same else "DIFFERENT",
                     "same", "yes" if same else "NO"))
    head = (f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\nGPU, driver: {gpu_name()}\n"
            f"python {platform.python_version()}, n = {a.n} warm inferences per model after "
            f"{a.warmup} untimed, batch 1; medians of {a.rounds} rounds")
    w = max(len(r[0]) for r in rows) if rows else 10
    print(head + "\n")
    print(f"{'metric':<{w}}  {'native':>10}  {'mignificent':>11}  {'ratio':>9}  {'target':>9}  met?")
    for r in rows:
        n = r[1] if isinstance(r[1], str) else f"{r[1]:.3f}"
        m = r[2] if isinstance(r[2], str) else f"{r[2]:.3f}"
        print(f"{r[0]:<{w}}  {n:>10}  {m:>11}  {r[3]:>9}  {r[4]:>9}  {r[5]}")
    met = sum(r[5] == "yes" for r in rows)
    total = sum(r[5] in ("yes", "NO") for r in rows)
    print(f"\ntargets met: {met} of {total}")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(head.replace("\n", "  \n") + "\n\n| metric | native | mignificent | ratio | target | met? |\n"
                    "|---|---:|---:|---:|---:|:---:|\n")
            for r in rows:
                n = r[1] if isinstance(r[1], str) else f"{r[1]:.3f}"
                m = r[2] if isinstance(r[2], str) else f"{r[2]:.3f}"
                f.write(f"| {r[0].strip()} | {n} | {m} | {r[3]} | {r[4]} | {r[5]} |\n")
            f.write(f"\ntargets met: {met} of {total}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

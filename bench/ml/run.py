#!/usr/bin/env python3
"""run.py - the paper's ML functions natively and through mignificent, in
one run, as a table of ratios.

For each model (ResNet-50, AlexNet, VGG19, BERT-base; random weights, batch
1, examples/torch_models/models.py) it starts bench/ml/infer.py once
natively and once under `mig run --backend cuda` (the unmodified process
with the shim as its libcuda.so.1, against a fresh GPU server), alternating
which goes first, and compares:

    instance start   import torch + build the model + move it to the GPU
    first inference  cuDNN/cuBLAS set-up, lazy module loading
    warm inference   mean, p50, p99 over -n inferences (each synchronized),
                     after --warmup untimed ones (default 50; both sides)
    output           SHA-256 of the last output: must be the same bits

Targets (issue "Real GPU libraries through the shim"): warm inference
<= 1.10x native, instance start <= 1.25x native.

Usage: bench/ml/run.py [--models resnet50,alexnet,vgg19,bert] [-n 100] [--warmup 50]
                       [--build DIR] [--markdown FILE]
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
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--markdown")
    a = ap.parse_args()
    mig = os.path.join(a.build, "bin", "mig")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    rows, failed = [], False
    for i, name in enumerate(a.models.split(",")):
        native_argv = [sys.executable, INFER, name, str(a.n), str(a.warmup)]
        mig_argv = [mig, "run", "--backend", "cuda", "--", *native_argv]
        order = [("native", native_argv), ("mig", mig_argv)]
        if i % 2:
            order.reverse()
        res = {}
        for side, argv in order:
            print(f"{name}: {side} ...", file=sys.stderr, flush=True)
            res[side] = one(argv, env)
        if not res["native"] or not res["mig"]:
            failed = True
            continue
        nat, mg = res["native"], res["mig"]

        def row(metric, n, m, target=None, unit=""):
            r = m / n if n else float("nan")
            met = "-" if target is None else ("yes" if r <= target else "NO")
            rows.append((f"{name} {metric}{unit}", n, m, f"{r:.3f}x",
                         "-" if target is None else f"<= {target:.2f}x", met))

        row("instance start", nat["import_s"] + nat["build_s"], mg["import_s"] + mg["build_s"],
            1.25, " [s]")
        row("  import", nat["import_s"], mg["import_s"], None, " [s]")
        row("  build + to GPU", nat["build_s"], mg["build_s"], None, " [s]")
        row("first inference", nat["first_ms"], mg["first_ms"], None, " [ms]")
        row("warm mean", statistics.mean(nat["warm_ms"]), statistics.mean(mg["warm_ms"]),
            1.10, " [ms]")
        row("warm p50", pct(nat["warm_ms"], 50), pct(mg["warm_ms"], 50), 1.10, " [ms]")
        row("warm p99", pct(nat["warm_ms"], 99), pct(mg["warm_ms"], 99), None, " [ms]")
        same = nat["digest"] == mg["digest"]
        rows.append((f"{name} output bits", "-", "-", "same" if same else "DIFFERENT",
                     "same", "yes" if same else "NO"))
    head = (f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\nGPU, driver: {gpu_name()}\n"
            f"python {platform.python_version()}, n = {a.n} warm inferences per model after "
            f"{a.warmup} untimed, batch 1")
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

#!/usr/bin/env python3
"""exec_poll.py - what an executor's polling for its next invocation buys a
CPU-bound function, against the same function whose executor sleeps.

    bench/sharing/exec_poll.py [--polls 0,3000] [--rounds 24] [-n 50]
                               [--backend host|cuda] [--build DIR]

Starts one daemon per --polls value (the node's executor_poll_us, bare
isolation), deploys to each a Python function that compresses 1 MB with
zlib per request (about 10 ms of one CPU, no GPU) and reports that time in
its answer, and has one client send -n requests to each daemon in turn,
the order rotating every round.  It prints, per value, the medians over the
rounds of the function's own compute time, of the request's latency and of
the daemon tree's CPU time per request, their ratios against the first
value (the baseline, 0 by default), and in how many rounds the value's
compute was faster than the baseline's in the same round.

Why: a process that sleeps between requests starts each one slower than
one that never stops (docs/benchmarks.md); an executor that polls keeps its
CPU busy through the gap between two requests of a steady stream.  A
benchmark, not a test: the exit status is nonzero only when something
failed to run.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import daemonlib  # noqa: E402

FUNCTION = '''import json, random, time, zlib
random.seed(0)
DATA = bytes(random.getrandbits(8) for _ in range(200000)) + b"abc" * 300000
def infer(payload):
    t = time.perf_counter()
    zlib.compress(DATA, 6)
    return json.dumps({"compute_ms": (time.perf_counter() - t) * 1e3})
'''
UID_BASE, UID_COUNT = 1700000000, 65536


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--polls", default="0,3000",
                    help="executor_poll_us values, the first the baseline")
    ap.add_argument("--rounds", type=int, default=24)
    ap.add_argument("-n", type=int, default=50, help="requests per daemon and round")
    ap.add_argument("--backend", default="host", choices=("host", "cuda"))
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args(argv)
    try:
        polls = [int(p) for p in args.polls.split(",")]
    except ValueError:
        ap.error("--polls is a list of integers")
    if len(polls) < 2 or len(set(polls)) != len(polls) or args.rounds < 1 or args.n < 1:
        ap.error("two or more different --polls, and --rounds and -n at least 1")
    work = tempfile.mkdtemp(prefix="mig-exec-poll-")
    fn = os.path.join(work, "cpufn.py")
    with open(fn, "w") as f:
        f.write(FUNCTION)
    daemons, res = {}, {p: [] for p in polls}
    try:
        for k, p in enumerate(polls):
            daemons[p] = d = daemonlib.Daemon(
                args.build, args.backend, f"poll-{p}", work,
                {"isolation": "bare", "allow_bare": True, "executor_poll_us": p,
                 "sandbox": {"uid_base": UID_BASE + k * UID_COUNT, "uid_count": UID_COUNT}})
            d.deploy("cpu", {"language": "python", "artifact": fn, "handler": "cpufn:infer",
                             "python": sys.executable}, 1)
            status, _, out = d.request("POST", "/v1/functions/cpu/invoke", b"")  # cold start
            if status != 200:
                raise RuntimeError(f"poll {p}: HTTP {status} {out[:300]!r}")
        for rnd in range(args.rounds):
            for p in polls[rnd % len(polls):] + polls[:rnd % len(polls)]:
                d, comp, lat = daemons[p], [], []
                cpu0 = d.cpu_s()
                for _ in range(args.n):
                    t = time.perf_counter()
                    status, _, out = d.request("POST", "/v1/functions/cpu/invoke", b"")
                    lat.append((time.perf_counter() - t) * 1e3)
                    if status != 200:
                        raise RuntimeError(f"poll {p}: HTTP {status} {out[:300]!r}")
                    comp.append(json.loads(out)["compute_ms"])
                res[p].append((statistics.median(comp), statistics.median(lat),
                               (d.cpu_s() - cpu0) * 1e3 / args.n))
    except (RuntimeError, OSError) as e:
        print(f"exec_poll.py: {e}\n(the daemons' logs are kept in {work})", file=sys.stderr)
        return 1
    finally:
        for d in daemons.values():
            d.stop()
    shutil.rmtree(work, ignore_errors=True)
    base = polls[0]
    med = {p: [statistics.median(r[i] for r in res[p]) for i in range(3)] for p in polls}
    print(f"executor polling, {args.backend} backend, {os.cpu_count()} CPUs: a ~10 ms zlib "
          f"function, {args.rounds} rounds x {args.n} requests per value; medians over rounds")
    print(f"{'poll [us]':>10} {'compute ms':>11} {'request ms':>11} {'CPU ms/req':>11} "
          f"{'compute / base':>15} {'request / base':>15} {'faster rounds':>14}")
    for p in polls:
        c, lt, cpu = med[p]
        faster = sum(a[0] < b[0] for a, b in zip(res[p], res[base]))
        print(f"{p:>10} {c:>11.2f} {lt:>11.2f} {cpu:>11.2f} {c / med[base][0]:>14.3f}x "
              f"{lt / med[base][1]:>14.3f}x "
              + (f"{faster:>8} of {args.rounds}" if p != base else f"{'-':>14}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

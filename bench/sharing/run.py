#!/usr/bin/env python3
"""run.py - fast function switching: concurrent clients of one function on
one GPU under each sharing model, against native time-sharing, in one run.

For each workload (Rodinia-style BFS and HotSpot from examples/rodinia,
ResNet-50, AlexNet, VGG19 and BERT from examples/torch_models) and each
client count (--clients, default 2 and 4), C clients each send --warmup
untimed and then -n timed requests, all clients at once, to

  native            the function's own code in C plain processes on the
                    real driver, no mignificent (native time-sharing; GPU
                    backend only); each process runs its requests back
                    to back (--native loop, the default), or each client
                    hands its process one request at a time over a pipe
                    and waits for the answer (--native served: the
                    process waits between requests, as a served function
                    does); --native loop,served runs both, as the sides
                    native and native-served of the same rounds, and the
                    table compares the mean with each
  time-sharing      mignificentd, every call concurrent
  sequential        mignificentd, one invocation owns the partition
  overlap-cpu       mignificentd, copies and kernels exclusive
  overlap-cpu-copy  mignificentd, kernels exclusive
  MODEL@US          a model's variant, named in --models: its daemon's
                    executors poll US microseconds for their next
                    invocation (executor_poll_us; the other daemons take
                    --exec-poll-us), e.g. overlap-cpu-copy@3000 beside
                    overlap-cpu-copy measures the poll in the same rounds;
                    a variant of overlap-cpu-copy gets its own row of
                    ratios ("alexnet@3000")
  MODEL@KEY=VALUE   a variant whose daemon, and so its GPU servers, has
                    MIG_GPUD_KEY=VALUE in its environment (KEY in lower
                    case), e.g. overlap-cpu-copy@phase_spin_us=50

(one daemon per model, sharing set for the node, all started once; each
client gets its own instance: max_instances = clients; the largest client
count runs first and the smaller ones reuse its instances, natively its
processes).  --rounds R repeats every side R times per workload, each round
starting with the next side, over the same instances and processes (a
round costs only its requests), and reports the median of each figure.

Every request carries its input, so that each one has the CPU work of a
real service: the Rodinia functions read their input files (BFS's 1M-node
graph, HotSpot's two 512 x 512 grids) per request; the vision models get a
JPEG photo (--image WxH, default 1280x960, a synthetic picture made once)
that they decode, resize, crop and normalize on the CPU; BERT gets a JSON
question and a ~250-word context that it tokenizes.  The ML functions get
--cpu-threads CPU threads each (OMP_NUM_THREADS; default the CPUs divided
by the largest client count), natively and through mignificent alike.  With
--cpu-placement exclusive every client's process runs on that many CPUs of
its own: each instance through the node's sandbox.cpu_placement "exclusive"
and limits.cpus, each native process pinned the same way.  The default,
shared, lets every process run on every CPU: on the H200 machine (a VM
whose CPUs' speed differs and drifts) pinning turned that into a lasting
difference between clients, natively too (docs/benchmarks.md).  It
prints the paper's table, mean and standard deviation per request in ms,
then the ratios the issue's targets are about:

  throughput, overlap-cpu-copy vs sequential   (target >= 1.9 where the
                                                function's GPU share allows)
  GPU share: the time an overlap-cpu-copy request held the GPU (the
             arbiter's turns, /metrics) over a sequential request's time;
             with C clients no schedule serves more than min(C, 1/share)
             times sequential's requests ("allows"); where that is under
             2, the target is taken as 0.95 x allows (1.9 is 0.95 x 2)
  mean request, overlap-cpu-copy vs native     (target <= 1.10)
  CPU per request, overlap-cpu-copy vs native: the CPU time the daemon,
             the instances and their GPU servers used over the cell's
             requests, against the native processes' (what waiting and
             forwarding cost the node's CPUs; no target)
  4 clients: max/min per-client throughput     (target <= 1.2)
             in each round (the median over the rounds), and over all
             rounds ("all rounds": each client's requests in every round
             over its time in them; natively alike in parentheses); the
             verdict says both, e.g. "NO / yes"

With three rounds or more, the two ratios against native and sequential
also carry their 90 % interval over the rounds, e.g. "1.04x (0.98-1.10)": a
bootstrap, the rounds drawn again with replacement, paired by index.  On
the H200 machine a client's CPU phase runs at one of a few speeds for a
whole cell and at another in the next (natively alike), so a cell is one
draw, and the interval says whether a ratio's distance from its target is
more than the draws make (docs/benchmarks.md).

Each cell also says, on stderr, its 99th percentile and longest request
(where waits for the GPU's turn show first) and, for an exclusive model,
the GPU turns' time and number per request: more than one turn per
request means its GPU phase was cut, each cut costing it a turn of every
waiter (one other turn since resume tickets), and every cell its CPU time
per request.

Before each round, where build/bench/machine/cpu_probe was built, a
snapshot of the CPUs' speed (`cpu_probe speed --quick`: a 1 ms loop three
times on each CPU, about 50 ms): a virtual machine's CPUs are not equal,
and which ones are slow changes (docs/benchmarks.md).  The output ends
with how many CPUs took over 1.25x the median of all CPUs' loops per
snapshot; --json keeps each snapshot.

--json FILE keeps every round's cells with each client's requests on a
timeline (start, latency, time in the instance, the function's phases);
--markdown FILE the tables; --plot FILE a PNG of the first table (needs
matplotlib; skipped with a note otherwise).

A benchmark, not a test: the exit status is nonzero only when something
failed to run.  With --backend host (the test double; CI) only the
Rodinia workloads run, on small inputs, and there is no native side.

Usage: bench/sharing/run.py [--backend cuda|host] [--workloads bfs,hotspot,...]
                            [--clients 2,4] [-n 10] [--warmup 2] [--models M,M@US,...]
                            [--image WxH] [--rounds R] [--cpu-threads T]
                            [--isolation sandbox|bare] [--cpu-placement exclusive|shared]
                            [--native loop|served|loop,served] [--exec-poll-us US]
                            [--build DIR]
                            [--json F] [--markdown F] [--plot F.png]
"""
import argparse
import datetime
import io
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import daemonlib  # noqa: E402

MODELS = ("time-sharing", "sequential", "overlap-cpu", "overlap-cpu-copy")
HELD = "mignificent_partition_gpu_held_seconds_total"
TURNS = "mignificent_partition_gpu_turns_total"
UID_BASE, UID_COUNT = 1700000000, 65536  # the daemons' default range, then the next ones
COLORS = {"native": "#888888", "native-served": "#bbbbbb", "time-sharing": "#4c72b0",
          "sequential": "#dd8452", "overlap-cpu": "#55a868",
          "overlap-cpu-copy": "#c44e52"}  # the same in every plot
ML = ("resnet50", "alexnet", "vgg19", "bert")
# The native sides: "native" runs its requests as --native says (a loop,
# by default), "native-served" one at a time over a pipe, when --native
# asks for both.
NATIVE_SIDES = ("native", "native-served")
OCC = "overlap-cpu-copy"


def base_model(side):
    """The sharing model of a side: "overlap-cpu-copy@3000" (its
    executors poll 3000 us for their next invocation) is one of
    overlap-cpu-copy's."""
    return side.split("@", 1)[0]


GPUD_KNOB = re.compile(r"([a-z][a-z0-9_]*)=([A-Za-z0-9_.]*)")


def side_variant(side, default):
    """(executor_poll_us, environment) of a side's daemon: "MODEL@US" polls
    US, "MODEL@KEY=VALUE" has MIG_GPUD_KEY=VALUE for its GPU servers, a
    plain model polls @default (--exec-poll-us).  ValueError for a bad
    one."""
    model, at, spec = side.partition("@")
    if model not in MODELS:
        raise ValueError(f"unknown sharing model {model}")
    if not at:
        return default, {}
    knob = GPUD_KNOB.fullmatch(spec)
    if knob:
        return default, {"MIG_GPUD_" + knob.group(1).upper(): knob.group(2)}
    if not spec.isdigit() or int(spec) > 100000:
        raise ValueError(f"{side}: after @ the executors' poll, 0 to 100000 us, "
                         "or a GPU server's setting KEY=VALUE")
    return int(spec), {}


def variant_note(side):
    """What a variant side's daemon differs in, for the header."""
    poll, env = side_variant(side, 0)
    return " ".join(f"{k}={v}" for k, v in env.items()) or f"its executors poll {poll} us"


def occ_sides(args):
    """overlap-cpu-copy and its variants in this run, each with a row of
    the ratios table."""
    return [m for m in table_sides(args) if base_model(m) == OCC]


def workloads(build, backend):
    """name -> deployment spec (and what a native client needs)."""
    ex = os.path.join(build, "examples")
    host = backend == "host"
    w = {}
    for name, env in (("bfs", {"BFS_NODES": "65536"} if host else {}),
                      ("hotspot", {"HOTSPOT_SIZE": "128"} if host else {})):
        if host:
            env["MIG_HOST_KERNELS"] = os.path.join(ex, "librodinia_kernels.so")
        w[name] = {"language": "c", "artifact": os.path.join(ex, f"lib{name}.so"),
                   "handler": name, "env": env, "gpu_memory": "4GiB",
                   "timeout_ms": 300000}
    if not host:
        for m in ML:
            w[m] = {"language": "python",
                    "artifact": os.path.join(ROOT, "examples", "torch_models", "models.py"),
                    "handler": "models:infer", "env": {"MODEL": m},
                    "python": sys.executable, "gpu_memory": "12GiB",
                    "limits": {"memory": "24GiB"}, "timeout_ms": 600000}
    return w


def photo_jpeg(size):
    """A synthetic photo of @size ("WxH") as JPEG bytes: smooth gradients,
    a few shapes and sensor-like noise (a plain gradient would compress to
    nothing and decode far faster than a picture).  Seeded."""
    import numpy as np
    from PIL import Image

    w, h = (int(v) for v in size.lower().split("x"))
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([255 * x / w, 255 * y / h, 127 + 100 * np.sin((x + y) / 37)], -1)
    for _ in range(12):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(20, min(w, h) / 4)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 8, img.shape)
    out = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def squad_json():
    """A question and a ~250-word context for BERT, as JSON bytes."""
    words = ("the gpu server owns the context of a partition and every call of a "
             "function crosses shared memory before it reaches the driver while the "
             "daemon decides which instance may run kernels at any moment").split()
    context = " ".join(words[(i * 7) % len(words)] for i in range(250)) + "."
    return json.dumps({"question": "which process owns the context of a partition?",
                       "context": context}).encode()


def request_bodies(specs, image, threads):
    """Give each ML workload its request body (the Rodinia functions read
    their input themselves) and its CPU threads: PyTorch's CPU pool defaults
    to every core, and C such pools spinning on the same cores (OpenMP
    waits by spinning) make the concurrent clients slower than one at a
    time; a deployment gives each function its share of the node instead."""
    for name, spec in specs.items():
        if name in ML:
            spec["body"] = squad_json() if name == "bert" else photo_jpeg(image)
            spec["env"]["OMP_NUM_THREADS"] = str(threads)
            spec["env"]["MODEL_TIMINGS"] = "1"  # input and inference times per answer


def phases(answer):
    """[input, inference] ms from a function's answer that reports them
    (examples/torch_models with MODEL_TIMINGS=1), else None."""
    if not answer.startswith(b"{"):
        return None
    try:
        t = json.loads(answer)["timings_ms"]
        return [float(t["input"]), float(t["inference"])]
    except (ValueError, KeyError, TypeError):
        return None


def closed_loop(clients, n, connect, warmup=0, on_start=None):
    """Each of @clients threads sends @warmup untimed and then @n timed
    requests back to back, all clients' timed ones together; returns each
    client's {start, end, ms, run_ms, timings, at} (at: each request's
    start, CLOCK_MONOTONIC ns).  connect(i) -> (invoke, close): invoke() sends one request and returns (the ms spent in the
    instance or None, the function's [input, inference] ms or None).
    @on_start() is called once, after every warm-up and before the first
    timed request."""
    barrier = threading.Barrier(clients, action=on_start)
    res, errors = [None] * clients, []

    def client(i):
        invoke, close = connect(i)
        try:
            for _ in range(warmup):
                invoke()
            barrier.wait()
            lat, run, timings, at, start = [], [], [], [], time.monotonic_ns()
            for _ in range(n):
                at.append(time.monotonic_ns())
                t = time.perf_counter()
                ms, p = invoke()
                lat.append((time.perf_counter() - t) * 1e3)
                if ms is not None:
                    run.append(ms)
                if p:
                    timings.append(p)
            res[i] = {"start": start, "end": time.monotonic_ns(), "ms": lat, "run_ms": run,
                      "timings": timings, "at": at}
        except Exception as e:  # reported below, after every thread ended
            errors.append((i, e))
            barrier.abort()
        finally:
            close()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return res, errors


def mig_clients(d, name, body, clients, n, warmup, on_start=None):
    """Each client's {start, end, ms, run_ms, timings} through the daemon
    (run_ms: X-Mig-Run-Us, the daemon's time in the instance, turn waits
    included; timings: the function's [input, inference] ms where its
    answers have them); @on_start() as in closed_loop()."""
    def connect(i):
        conn = d.connect()

        def invoke():
            status, headers, answer = d.request("POST", f"/v1/functions/{name}/invoke",
                                                body, conn)
            if status != 200:
                raise RuntimeError(f"{name}: HTTP {status} {answer[:300]!r}")
            return int(headers.get("X-Mig-Run-Us", 0)) / 1e3, phases(answer)
        return invoke, conn.close
    res, errors = closed_loop(clients, n, connect, warmup, on_start)
    if errors:
        raise RuntimeError(str(errors[0][1]))
    return res


class NativeClients:
    """The same, natively: @clients plain processes of the function, each
    initialized and warmed up once; run(c, n) has the first @c of them send
    @n timed requests together."""

    def __init__(self, spec, clients, warmup, workdir, cpu_sets=None):
        env = dict(os.environ, **spec.get("env", {}))
        body = os.path.join(workdir, "request.body")
        with open(body, "wb") as f:
            f.write(spec.get("body", b""))
        argv = [sys.executable, os.path.join(HERE, "native_client.py"), spec["language"],
                spec["artifact"], spec["handler"], body, str(warmup)]
        cpu_sets = cpu_sets or [None] * clients
        self.ps = [subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, cwd=ROOT,
                                    preexec_fn=(lambda s=cpu_sets[k]: os.sched_setaffinity(0, s))
                                    if cpu_sets[k] else None)
                   for k in range(clients)]
        for p in self.ps:
            if p.stdout.readline().strip() != "ready":
                self._failed(p)

    def _failed(self, p):
        self.close()
        raise RuntimeError(f"a native client failed: {p.stderr.read()[-2000:]}")

    def run(self, clients, n, served=True):
        """@served: each client thread hands its process one request at a
        time over the pipe and waits for the answer, as mig_clients does
        over HTTP (the process waits between requests like a served
        function); else each process runs its @n requests back to back."""
        ps = self.ps[:clients]
        if served:
            return self._served(ps, n)
        for p in ps:
            p.stdin.write(f"go {n}\n")
            p.stdin.flush()
        out = []
        for p in ps:
            line = p.stdout.readline()
            if not line.startswith("{"):
                self._failed(p)
            out.append(json.loads(line))
        return out

    def _served(self, ps, n):
        def connect(i):
            p = ps[i]

            def invoke():
                p.stdin.write("one\n")
                p.stdin.flush()
                line = p.stdout.readline()
                if not line.startswith("{"):
                    raise OSError("no answer")
                return None, json.loads(line).get("timing")
            return invoke, lambda: None
        res, errors = closed_loop(len(ps), n, connect)
        if errors:
            self._failed(ps[errors[0][0]])
        return res

    def cpu_s(self, clients):
        """CPU seconds used so far by the first @clients processes."""
        return sum(daemonlib.tree_cpu_s(p.pid) for p in self.ps[:clients])

    def close(self):
        for p in self.ps:
            if p.poll() is None:
                p.stdin.close()
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def summary(runs, held_s=None, turns=None, cpu_s=None):
    """A cell's figures from its clients' runs; @held_s and @turns: the GPU
    turns' time and number over them (exclusive models), kept per request
    as gpu_ms and turns (more than one: a request's GPU phase was cut);
    @cpu_s: the CPU time the side's processes used, kept per request as
    cpu_ms (native: the function's processes; ours: the daemon, the
    instances and their GPU servers)."""
    lat = [x for r in runs for x in r["ms"]]
    span = (max(r["end"] for r in runs) - min(r["start"] for r in runs)) / 1e9
    per_client = [len(r["ms"]) / ((r["end"] - r["start"]) / 1e9) for r in runs]
    alike = spread_if_alike([r["ms"] for r in runs])
    out = {"mean": statistics.mean(lat), "std": statistics.pstdev(lat),
           "p99": daemonlib.percentile(lat, 0.99), "max": max(lat),
           "throughput": len(lat) / span, "fairness": max(per_client) / min(per_client),
           "clients": per_client, "alike": alike[0], "alike_p90": alike[1]}
    if held_s:
        out["gpu_ms"] = held_s * 1e3 / len(lat)
    if turns:
        out["turns"] = turns / len(lat)
    if cpu_s is not None:
        out["cpu_ms"] = cpu_s * 1e3 / len(lat)
    ph = [p for r in runs for p in r.get("timings", ())]
    if ph:  # the function's own phases (ML functions)
        out["input_ms"] = statistics.mean(p[0] for p in ph)
        out["infer_ms"] = statistics.mean(p[1] for p in ph)
    t0 = min(r["start"] for r in runs)
    out["window_ns"] = [t0, max(r["end"] for r in runs)]  # CLOCK_MONOTONIC (bench/gputrace)
    out["requests"] = [timeline(r, t0) for r in runs]
    return out


def spread_if_alike(per_client, resamples=1000):
    """The clients' spread that the requests' variance alone makes: each
    client's requests drawn again from all clients' together, its
    throughput taken as their count over their sum; (median, 90th
    percentile) over @resamples draws.  A measured spread near it says the
    clients were treated alike and drew different requests; well above
    it, that one was favoured."""
    pool = [x for ms in per_client for x in ms]
    if len(per_client) < 2 or not pool:
        return 1.0, 1.0
    rng = random.Random(0)
    draws = [max(t) / min(t) for t in
             ([len(ms) / sum(rng.choices(pool, k=len(ms))) for ms in per_client]
              for _ in range(resamples))]
    return statistics.median(draws), daemonlib.percentile(draws, 0.9)


def timeline(run, t0):
    """One client's requests, for a look at a round afterwards: [start (ms
    since @t0, the cell's first client's start), latency, time in the
    instance, the function's input and inference phases] each, in ms; None
    where the run does not have that figure for every request."""
    n = len(run["ms"])

    def column(xs, f=lambda x: x):
        return [round(f(x), 3) for x in xs] if xs and len(xs) == n else [None] * n
    timings = run.get("timings") or ()
    return [list(row) for row in zip(column(run.get("at"), lambda a: (a - t0) / 1e6),
                                     column(run["ms"]), column(run.get("run_ms")),
                                     column([p[0] for p in timings]),
                                     column([p[1] for p in timings]))]


# The GPU servers' profile lines (gpud/server.c, MIG_GPUD_PROFILE=1) that
# gpud_profiles() sums, each figure by name.
PROFILE_FIGURES = (
    (("turns", "resumed", "turn_wait_ms"),
     re.compile(r"arbiter \(\S+\): (\d+) turns taken \((\d+) resumed next after a cut\), "
                r"([\d.]+) ms waited")),
    (("kept_gaps", "kept_gap_ms"),
     re.compile(r"while others waited: (\d+) gaps, ([\d.]+) ms")),
    (("held_ms", "held_calls", "held_call_ms"),
     re.compile(r"in its turns: ([\d.]+) ms held, (\d+) calls issued in ([\d.]+) ms")),
    (("doorbell_sleeps", "doorbell_sleep_ms"),
     re.compile(r"doorbell sleeps (\d+) \(([\d.]+) ms\)")),
    (("engine_copies_waited", "engine_copy_wait_ms"),
     re.compile(r"copies that waited out another's turn: (\d+), ([\d.]+) ms")),
    (("htod_two_rows",),
     re.compile(r"copies sent to a copy engine as two rows: (\d+)")),
    (("handovers", "handover_ms"),
     re.compile(r"turns passed to it by another's release while it waited: (\d+), "
                r"noticed ([\d.]+) ms after")),
    (("announced", "announce_spin_ms"),
     re.compile(r"releases announced to the next waiter: (\d+); spun ([\d.]+) ms")),
    (("phase_wakes", "phase_wake_ms"),
     re.compile(r"woken in its client's GPU phase \(a call after queued GPU work, "
                r"spinning \d+ us first\): (\d+), ([\d.]+) ms")),
)
PROFILE_CALL = re.compile(r"^  call (\S+)\s+(\d+)\s+([\d.]+)\s+[\d.]+$")


def gpud_profiles(text):
    """The profiles its GPU servers wrote into a daemon's log @text, summed
    over the servers: each PROFILE_FIGURES figure, "calls" (name: [calls,
    total us]) and "servers"; None where there is none (no
    MIG_GPUD_PROFILE=1)."""
    out = {"servers": 0, "calls": {}}
    for line in text.splitlines():
        if re.match(r"mig-gpud \S+: profile:", line):
            out["servers"] += 1
            continue
        m = PROFILE_CALL.match(line)
        if m:
            n, us = out["calls"].setdefault(m.group(1), [0, 0.0])
            out["calls"][m.group(1)] = [n + int(m.group(2)), round(us + float(m.group(3)), 1)]
            continue
        for names, rx in PROFILE_FIGURES:
            m = rx.search(line)
            if m:
                for name, v in zip(names, m.groups()):
                    out[name] = out.get(name, 0) + (float(v) if "." in v else int(v))
    return out if out["servers"] else None


def thr_target(occ, seq, clients):
    """(GPU share, what it allows, the throughput target) for one cell, or
    Nones where the run has no GPU turns to go by."""
    if not (occ and seq and occ.get("gpu_ms")):
        return None, None, 1.9
    share = occ["gpu_ms"] / (1e3 / seq["throughput"])
    allows = min(clients, 1 / share)
    return share, allows, min(1.9, 0.95 * allows)


SLOW_CPU = 1.25  # a CPU whose loop takes this much over the median of all is slow


def cpu_snapshot(build):
    """Each CPU's speed now, from `cpu_probe speed --quick`: {"at": unix
    seconds, "ratios": {cpu: its median loop time over the median of all
    samples}}; None where the probe was not built or did not answer."""
    probe = os.path.join(build, "bench", "machine", "cpu_probe")
    if not os.access(probe, os.X_OK):
        return None
    try:
        out = subprocess.run([probe, "speed", "--quick"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    ratios = {int(m.group(1)): float(m.group(2)) for m in
              re.finditer(r"^\s+(\d+)\s+[\d.]+x\s+([\d.]+)x\s+[\d.]+x", out, re.M)}
    return {"at": round(time.time(), 1), "ratios": ratios} if ratios else None


def with_cpu_snapshots(text, md, snapshots):
    """The tables' @text and @md with a line on the rounds' CPU snapshots
    (none without any)."""
    if not snapshots:
        return text, md
    slow = [sum(r > SLOW_CPU for r in s["ratios"].values()) for s in snapshots]
    worst = max(max(s["ratios"].values()) for s in snapshots)
    line = (f"CPU snapshots before the rounds (cpu_probe speed --quick): CPUs whose loop "
            f"took over {SLOW_CPU}x the median of all: median {statistics.median(slow):g} of "
            f"{len(snapshots[0]['ratios'])}, at least one in {sum(n > 0 for n in slow)} of "
            f"{len(snapshots)} snapshots; slowest {worst:.2f}x")
    return f"{text}\n{line}", f"{md}\n\n{line}"


def combine(rounds):
    """Several rounds' summaries of one cell: the median of each figure
    over the rounds that have it (the per-client throughputs and the
    requests' timelines stay in the rounds)."""
    keys = {k for r in rounds for k in r if k not in ("clients", "requests", "window_ns")}
    return {k: statistics.median(r[k] for r in rounds if k in r) for k in sorted(keys)}


def ratio_interval(num, den, key, level=0.9, resamples=2000):
    """How far a ratio of two cells' medians over rounds can be trusted:
    (low, high), the @level bootstrap interval of median(num[key]) /
    median(den[key]) with rounds drawn again, with replacement and paired
    by their index (round i of each side ran minutes apart at most, on a
    machine whose CPUs' speed drifts); None below three rounds of each.
    Seeded, so that a run's tables can be printed again alike."""
    n = min(len(num), len(den))
    if n < 3:
        return None
    rng = random.Random(0)
    ratios = []
    for _ in range(resamples):
        pick = [rng.randrange(n) for _ in range(n)]
        ratios.append(statistics.median(num[i][key] for i in pick)
                      / statistics.median(den[i][key] for i in pick))
    tail = (1 - level) / 2
    return daemonlib.percentile(ratios, tail), daemonlib.percentile(ratios, 1 - tail)


def spread_over_rounds(cells, n):
    """The clients' spread over a whole run: max/min over the clients of
    each one's requests in all @cells (one per round, the same clients in
    each) over its time in them; None for fewer than two rounds.  A client
    that was slow in one round for a reason of the moment (the CPU it ran
    on) and fast in the next evens out here; one the arbiter kept waiting
    round after round does not."""
    if (len(cells) < 2 or any("clients" not in c for c in cells)
            or len({len(c["clients"]) for c in cells}) != 1):
        return None
    done = [0] * len(cells[0]["clients"])
    took = [0.0] * len(done)
    for c in cells:
        for i, thr in enumerate(c["clients"]):
            count = len(c["requests"][i]) if "requests" in c else n
            done[i] += count
            took[i] += count / thr
    thr = [d / t for d, t in zip(done, took)]
    return max(thr) / min(thr)


def with_interval(value, interval):
    """"1.04x" or, with an interval, "1.04x (0.98-1.10)"."""
    return f"{value:.2f}x" + (f" ({interval[0]:.2f}-{interval[1]:.2f})" if interval else "")


def table_sides(args):
    """The columns of the tables, in order: the native sides this run has
    (@args.native_sides; the GPU backend only), then its sharing models."""
    natives = getattr(args, "native_sides", ["native"]) if args.backend == "cuda" else []
    return list(natives) + sorted(args.models, key=lambda m: (MODELS.index(base_model(m)),
                                                              m != base_model(m), m))


def tables(results, args, header, rounds=None):
    """The paper's table and the ratios, as text and as markdown; with
    @rounds (clients: workload: side: [each round's cell]) the ratios of
    the targets also get their 90 % interval over the rounds.  With a
    "native-served" side the mean is also compared with it."""
    sides = table_sides(args)
    text, md = [header, ""], [header.replace("\n", "  \n"), ""]
    for clients in args.clients:
        rows = [(w, [results[clients][w].get(s) for s in sides]) for w in args.workloads
                if w in results[clients]]
        text.append(f"{clients} clients x {args.n} requests: mean +- std per request [ms]")
        colw = max([22] + [len(s) + 2 for s in sides])  # a variant's name may be long
        text.append(f"{'workload':<10}" + "".join(f"{s:>{colw}}" for s in sides))
        md.append(f"**{clients} clients × {args.n} requests**: mean ± std per request [ms]\n")
        md.append("| workload | " + " | ".join(sides) + " |")
        md.append("|---|" + "---:|" * len(sides))
        for w, cells in rows:
            f = [f"{c['mean']:.1f} +- {c['std']:.1f}" if c else "-" for c in cells]
            text.append(f"{w:<10}" + "".join(f"{x:>{colw}}" for x in f))
            md.append(f"| {w} | " + " | ".join(x.replace("+-", "±") for x in f) + " |")
        text.append("")
        md.append("")
        head = ("workload", "thr. occ / seq", "GPU share", "allows", ">= 1.9 or 0.95x allows",
                "thr. native / seq", "mean occ / native", "<= 1.10", "occ / served nat.",
                "CPU occ / native",
                "max/min client thr.",
                "if alike (p90)", "native's", "all rounds (nat.)", "<= 1.2")
        text.append("  ".join(f"{h:>17}" for h in head))
        md.append("| " + " | ".join(head) + " |")
        md.append("|---|" + "---:|" * (len(head) - 1))
        for w, o in ((w, o) for w in args.workloads for o in occ_sides(args) or [OCC]):
            r = results[clients].get(w, {})
            occ, seq, nat = r.get(o), r.get("sequential"), r.get("native")
            rr = (rounds or {}).get(clients, {}).get(w, {})
            thr = occ["throughput"] / seq["throughput"] if occ and seq else None
            share, allows, want = thr_target(occ, seq, clients)
            nthr = nat["throughput"] / seq["throughput"] if nat and seq else None
            lat = occ["mean"] / nat["mean"] if occ and nat else None
            fair = occ["fairness"] if occ else None
            cpu = (occ["cpu_ms"] / nat["cpu_ms"] if occ and nat and occ.get("cpu_ms")
                   and nat.get("cpu_ms") else None)
            thr_i = (ratio_interval(rr[o], rr["sequential"], "throughput")
                     if thr and o in rr and "sequential" in rr else None)
            lat_i = (ratio_interval(rr[o], rr["native"], "mean")
                     if lat and o in rr and "native" in rr else None)
            served = r.get("native-served")
            lat_s = occ["mean"] / served["mean"] if occ and served else None
            lat_s_i = (ratio_interval(rr[o], rr["native-served"], "mean")
                       if lat_s and o in rr and "native-served" in rr else None)
            whole = spread_over_rounds(rr[o], args.n) if o in rr else None
            whole_nat = spread_over_rounds(rr["native"], args.n) if "native" in rr else None
            verdict = "-"
            if fair and clients >= 4:
                verdict = "yes" if fair <= 1.2 else "NO"
                if whole:
                    verdict += " / " + ("yes" if whole <= 1.2 else "NO")
            cells = [w + o[len(OCC):], with_interval(thr, thr_i) if thr else "-",
                     f"{100 * share:.{0 if share >= 0.1 else 1}f}%" if share else "-",
                     f"{allows:.2f}x" if allows else "-",
                     (f"{'yes' if thr >= want else 'no'}" + (f" ({want:.2f})" if want < 1.9 else ""))
                     if thr else "-",
                     f"{nthr:.2f}x" if nthr else "-",
                     with_interval(lat, lat_i) if lat else "-",
                     ("yes" if lat <= 1.10 else "NO") if lat else "-",
                     with_interval(lat_s, lat_s_i) if lat_s else "-",
                     f"{cpu:.2f}x" if cpu else "-",
                     f"{fair:.2f}" if fair else "-",
                     f"{occ['alike']:.2f} ({occ['alike_p90']:.2f})" if occ and "alike" in occ
                     else "-",
                     f"{nat['fairness']:.2f}" if nat else "-",
                     (f"{whole:.2f}" + (f" ({whole_nat:.2f})" if whole_nat else ""))
                     if whole else "-",
                     verdict]
            text.append("  ".join(f"{c:>17}" for c in cells))
            md.append("| " + " | ".join(cells) + " |")
        text.append("")
        md.append("")
    return "\n".join(text), "\n".join(md)


def plotted_workloads(cells, workloads, sides):
    """The workloads of @cells ({workload: {side: result}}) with a result
    for every side, and those left out.  A run cut short (a partial --json)
    or a side that failed leaves a workload without some of its cells: a
    plot of it would show an empty bar as if it took no time."""
    ws = [w for w in workloads if all(cells.get(w, {}).get(s) for s in sides)]
    return ws, [w for w in workloads if w not in ws]


def plot(results, args, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no matplotlib: {path} not written)", file=sys.stderr)
        return
    sides = table_sides(args)
    clients = args.clients[0]
    ws, left = plotted_workloads(results.get(clients, {}), args.workloads, sides)
    if left:
        print(f"(plot: {', '.join(left)} left out, not every side has a result)",
              file=sys.stderr)
    if not ws:
        print(f"(no workload has every result: {path} not written)", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, len(ws), figsize=(3.2 * len(ws), 3.4), squeeze=False)
    for ax, w in zip(axes[0], ws):
        cells = [results[clients][w].get(s) for s in sides]
        ax.bar(range(len(sides)), [c["mean"] if c else 0 for c in cells],
               yerr=[c["std"] if c else 0 for c in cells], capsize=3,
               color=[COLORS[base_model(s)] for s in sides])
        for bar, s in zip(ax.patches, sides):
            if s != base_model(s):  # a variant: its model's colour, hatched
                bar.set_hatch("//")
        ax.set_xticks(range(len(sides)))
        ax.set_xticklabels(sides, rotation=45, ha="right", fontsize=7)
        ax.set_title(w)
        ax.set_ylabel("ms per request")
    fig.suptitle(f"{clients} clients x {args.n} requests")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--backend", default="cuda", choices=("cuda", "host"))
    ap.add_argument("--workloads")
    ap.add_argument("--clients", default="2,4")
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every side this often, each round starting with the next "
                         "side; cells are medians over the rounds")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--isolation", default="sandbox", choices=("sandbox", "bare"))
    ap.add_argument("--native", default="loop",
                    help="loop: each native process runs its requests back to back; served: "
                    "each native request is handed to the process over a pipe and answered, "
                    "the process waiting in between, as a served function does; loop,served: "
                    "both, as the sides native and native-served of the same rounds")
    ap.add_argument("--cpu-placement", default="shared", choices=("exclusive", "shared"),
                    help="exclusive: each instance gets --cpu-threads CPUs of its own "
                    "(limits.cpus, the node's sandbox.cpu_placement) and each native "
                    "process the same number, pinned; shared: every process may run on "
                    "every CPU")
    ap.add_argument("--exec-poll-us", type=int, default=0,
                    help="the daemons' executor_poll_us: each executor polls this long for its "
                    "next invocation before it sleeps (default 0: it sleeps at once)")
    ap.add_argument("--image", default="1280x960",
                    help="size of the vision models' request photo, WxH")
    ap.add_argument("--cpu-threads", type=int, default=0,
                    help="OMP_NUM_THREADS of the ML functions (default: CPUs / "
                         "the largest client count)")
    ap.add_argument("--json")
    ap.add_argument("--logs", metavar="DIR",
                    help="keep each daemon's log (its GPU servers' too) as DIR/MODEL.log; "
                    "with MIG_GPUD_PROFILE=1 in the environment they end with each "
                    "server's profile, its arbiter turns included")
    ap.add_argument("--markdown")
    ap.add_argument("--plot")
    ap.add_argument("--replot", metavar="JSON",
                    help="no runs: the tables (and --plot) from an earlier --json")
    args = ap.parse_args(argv)
    if args.replot:
        with open(args.replot) as f:
            saved = json.load(f)
        results = {int(c): v for c, v in saved["results"].items()}
        for c, ws in saved.get("rounds", {}).items():  # runs from before "alike"
            for w, sides in ws.items():
                for side, rs in sides.items():
                    cell = results[int(c)][w][side]
                    alike = [spread_if_alike([[q[1] for q in cl] for cl in r["requests"]])
                             for r in rs if "requests" in r]
                    if alike and "alike" not in cell:
                        cell["alike"] = statistics.median(a[0] for a in alike)
                        cell["alike_p90"] = statistics.median(a[1] for a in alike)
        args.clients = sorted(results)
        args.n = saved.get("n", args.n)
        args.workloads = list(next(iter(results.values())))
        sides = {s for c in results.values() for w in c.values() for s in w}
        args.models = [m for m in sides if m not in NATIVE_SIDES]
        args.native_sides = [s for s in NATIVE_SIDES if s in sides]
        args.backend = "cuda" if args.native_sides else "host"
        text, md = tables(results, args, saved["header"],
                          {int(c): ws for c, ws in saved.get("rounds", {}).items()})
        text, md = with_cpu_snapshots(text, md, saved.get("cpu_snapshots"))
        print(text)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(md + "\n")
        if args.plot:
            plot(results, args, args.plot)
        return 0
    specs = workloads(args.build, args.backend)
    args.workloads = args.workloads.split(",") if args.workloads else list(specs)
    args.clients = [int(c) for c in args.clients.split(",")]
    args.models = args.models.split(",")
    for w in args.workloads:
        if w not in specs:
            ap.error(f"unknown workload {w} (this backend has {', '.join(specs)})")
    for m in args.models:
        try:
            side_variant(m, args.exec_poll_us)
        except ValueError as e:
            ap.error(str(e))
    if len(set(args.models)) != len(args.models):
        ap.error("a model is named twice in --models")
    args.native = args.native.split(",")
    if not args.native or len(set(args.native)) != len(args.native) or any(
            m not in ("loop", "served") for m in args.native):
        ap.error("--native is loop, served or loop,served")
    args.native_sides = ["native"] + (["native-served"] if len(args.native) == 2 else [])
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    results = {c: {w: {} for w in args.workloads} for c in args.clients}
    rounds = {c: {w: {} for w in args.workloads} for c in args.clients}
    profiles = {}  # workload: model: the GPU servers' profiles (MIG_GPUD_PROFILE=1)
    most, order = max(args.clients), sorted(args.clients, reverse=True)
    threads = args.cpu_threads or max(1, os.cpu_count() // most)
    if args.isolation == "bare":
        args.cpu_placement = "shared"  # a bare node places nothing
    native_cpus = None
    if args.cpu_placement == "exclusive":
        # Natively what the daemon does: the k-th process on the k-th run
        # of @threads CPUs (none for processes past the machine's CPUs).
        mine = sorted(os.sched_getaffinity(0))
        native_cpus = [set(mine[k * threads:(k + 1) * threads])
                       if (k + 1) * threads <= len(mine) else None for k in range(most)]
        for spec in specs.values():
            spec.setdefault("limits", {})["cpus"] = threads

    started = datetime.datetime.now(datetime.timezone.utc)
    gpu = "-"

    native_how = ("in a loop in each process and (native-served) served one at a time "
                  "over a pipe" if len(args.native) == 2 else
                  "served one at a time over a pipe" if args.native == ["served"] else
                  "in a loop in each process")

    def header():
        return (f"fast function switching, {args.backend} backend, isolation {args.isolation}\n"
                f"{started:%Y-%m-%d %H:%M} UTC, GPU {gpu}, {os.cpu_count()} CPUs; "
                f"{args.warmup} untimed requests per client first; "
                + (f"each client on {threads} CPUs of its own (instances: "
                   f"sandbox.cpu_placement exclusive, limits.cpus {threads}; native processes "
                   f"pinned alike)" if args.cpu_placement == "exclusive"
                   else "no CPU placement")
                + (f"; native requests {native_how}" if args.backend == "cuda" else "")
                + (f"; executors poll {args.exec_poll_us} us for the next invocation"
                   if args.exec_poll_us else "")
                + "".join(f"; {m}: {variant_note(m)}" for m in args.models if "@" in m)
                + (f"; medians of {args.rounds} rounds" if args.rounds > 1 else "")
                + (f"; vision requests: a {args.image} JPEG photo; ML functions: "
                   f"{threads} CPU threads each"
                   if any(w in ML for w in args.workloads) else ""))

    def record(c, w, side, runs, held_s=None, turns=None, cpu_s=None):
        """Keep a result, say it, and save what we have (a run cut short
        still leaves its numbers)."""
        r = summary(runs, held_s, turns, cpu_s)
        rounds[c][w].setdefault(side, []).append(r)
        results[c][w][side] = combine(rounds[c][w][side])
        inside = [x for run in runs for x in run.get("run_ms", ())]
        print(f"  {side}, {w}, {c} clients: {r['mean']:.1f} +- {r['std']:.1f} ms "
              f"(p99 {r['p99']:.1f}, longest {r['max']:.1f})"
              + (f" (in the instance {statistics.mean(inside):.1f}" if inside else "")
              + (f", GPU turns {r['gpu_ms']:.1f}" if "gpu_ms" in r else "")
              + (f" ms, {r['turns']:.2f} per request" if "turns" in r else "")
              + (")" if inside else "")
              + (f", CPU {r['cpu_ms']:.1f} ms per request" if "cpu_ms" in r else "")
              + (f" [input {r['input_ms']:.1f}, inference {r['infer_ms']:.1f}]"
                 if "input_ms" in r else "")
              + ", "
              f"{r['throughput']:.2f} req/s, client spread {r['fairness']:.2f} "
              f"({' '.join(f'{x:.2f}' for x in r['clients'])}; alike {r['alike']:.2f}, "
              f"p90 {r['alike_p90']:.2f})",
              file=sys.stderr, flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"partial": True, "header": header(), "n": args.n, "results": results,
                           "rounds": rounds, "profiles": profiles}, f)

    def profile_of(w, model, d, at):
        """Its GPU servers' profiles, once @w's instances are gone: summed
        into the JSON (profiles) and said in one line."""
        time.sleep(0.2)  # the servers write them as they exit
        with open(d.log_path, errors="replace") as f:
            f.seek(at)
            p = gpud_profiles(f.read())
        if not p:
            return
        profiles.setdefault(w, {})[model] = p
        launch = p["calls"].get("launch", [0, 0.0])
        print(f"  profile, {model}, {w}: {p['servers']} servers; "
              + (f"{p['turns']} turns ({p['resumed']} resumed), held {p['held_ms']:.1f} ms, "
                 f"{p['held_calls']} calls issued in them in {p['held_call_ms']:.1f} ms, "
                 f"gaps kept while others waited {p['kept_gaps']} ({p['kept_gap_ms']:.1f} ms); "
                 if p.get("turns") else "")
              + (f"hand-overs {p['handovers']} noticed "
                 f"{p['handover_ms'] * 1e3 / p['handovers']:.0f} us after the release on average; "
                 if p.get("handovers") else "")
              + (f"releases announced {p['announced']} (waiters spun "
                 f"{p['announce_spin_ms']:.1f} ms); " if p.get("announced") else "")
              + (f"compute-engine copies waited {p['engine_copies_waited']} "
                 f"({p['engine_copy_wait_ms']:.1f} ms); " if p.get("engine_copies_waited") else "")
              + (f"{p['htod_two_rows']} small copies in two rows; "
                 if p.get("htod_two_rows") else "")
              + f"{launch[0]} launches at {launch[1] / max(launch[0], 1):.2f} us each",
              file=sys.stderr, flush=True)

    # A SIGTERM (a time limit) unwinds like ^C: the daemons and the native
    # processes are stopped, the partial results stay in --json.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("run.py: terminated"))
    workdir = tempfile.mkdtemp(prefix="mig-sharing-bench-")
    if any(w in ML for w in args.workloads):
        request_bodies(specs, args.image, threads)
    sides = (args.native_sides if args.backend == "cuda" else []) + args.models

    def run_side(side, w, native, daemons):
        for c in order:
            print(f"{side}: {w}, {c} clients", file=sys.stderr, flush=True)
            if side in NATIVE_SIDES:
                cpu0 = native.cpu_s(c)
                runs = native.run(c, args.n,
                                  side == "native-served" or args.native == ["served"])
                record(c, w, side, runs, cpu_s=native.cpu_s(c) - cpu0)
                continue
            d, held = daemons[side], []
            runs = mig_clients(d, w, specs[w].get("body", b""), c, args.n, args.warmup,
                               lambda: held.append((d.metric(HELD), d.metric(TURNS),
                                                    d.cpu_s())))
            cpu = d.cpu_s() - held[0][2]
            time.sleep(0.05)  # the last turn ends when its server sleeps
            record(c, w, side, runs, d.metric(HELD) - held[0][0], d.metric(TURNS) - held[0][1],
                   cpu)

    # One daemon per model for the whole run, each with a uid range of its
    # own; per workload, every side's clients are set up once (instances,
    # native processes) and the rounds rotate the sides over them, so that
    # a round costs only its requests and many short rounds can follow a
    # machine whose speed drifts.
    daemons, snapshots = {}, []
    try:
        for k, model in enumerate(args.models):
            poll, env = side_variant(model, args.exec_poll_us)
            daemons[model] = daemonlib.Daemon(
                args.build, args.backend, model, workdir,
                {"sharing": base_model(model), "isolation": args.isolation,
                 **({"executor_poll_us": poll} if poll else {}),
                 "sandbox": {"uid_base": UID_BASE + k * UID_COUNT, "uid_count": UID_COUNT,
                             "cpu_placement": args.cpu_placement}},
                env=env)
            gpu = daemons[model].gpu_name()
        for w in args.workloads:
            native = (NativeClients(specs[w], most, args.warmup, workdir, native_cpus)
                      if args.native_sides and args.backend == "cuda" else None)
            log_at = {m: os.path.getsize(d.log_path) for m, d in daemons.items()}
            try:
                for d in daemons.values():
                    d.deploy(w, specs[w], most)
                for rnd in range(args.rounds):  # each round starts with the next side
                    snap = cpu_snapshot(args.build)
                    if snap:
                        snapshots.append({"workload": w, "round": rnd, **snap})
                    k = rnd % len(sides)
                    for side in sides[k:] + sides[:k]:
                        run_side(side, w, native, daemons)
            finally:
                if native:
                    native.close()
            for m, d in daemons.items():
                d.kill_instances()
                profile_of(w, m, d, log_at[m])
    except (RuntimeError, OSError, threading.BrokenBarrierError) as e:
        print(f"run.py: {e}\n(the daemons' logs are kept in {workdir})", file=sys.stderr)
        return 1
    finally:
        for d in daemons.values():
            d.stop()
            if args.logs:
                os.makedirs(args.logs, exist_ok=True)
                shutil.copyfile(d.log_path, os.path.join(args.logs, f"{d.name}.log"))
    shutil.rmtree(workdir, ignore_errors=True)
    text, md = tables(results, args, header(), rounds)
    text, md = with_cpu_snapshots(text, md, snapshots)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header(), "n": args.n, "results": results,
                       "rounds": rounds, "profiles": profiles,
                       "cpu_snapshots": snapshots}, f, indent=1)
    if args.plot:
        plot(results, args, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

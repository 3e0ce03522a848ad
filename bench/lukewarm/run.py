#!/usr/bin/env python3
"""run.py - lukewarm instances: what an invocation costs when its
instance's GPU memory was swapped to host memory, against a cold start, a
warm instance and the native time to load the same state, in one run.

Usage: bench/lukewarm/run.py [--workloads resnet50,bert,vgg19,state-1GiB,state-8GiB]
                             [--rounds 5] [--warm 5] [--host | --backend cuda|host]
                             [--isolation sandbox|bare] [--build-dir DIR]
                             [--python PY] [--json F] [--markdown F]

On a GPU machine with torch (`--backend cuda`, the default) it measures the
paper's ML models (examples/torch_models, deployed as Python functions) and
a synthetic function holding STATE_BYTES of GPU memory (examples/state:
state-1GiB, state-8GiB; any state-SIZE works); with `--host` (the test
double; CI) only the state function runs, by default with 64 MiB, and the
ML workloads are skipped with a note.  Each workload is deployed on one
mignificentd (lukewarm swap_after_ms 0, on_pressure false: no swap but
ours) and measured --rounds times (medians):

  cold          invoke with no instance (every instance killed first): the
                client's round trip, and the instance start the daemon
                reports (X-Mig-Cold-Start-Us)
  warm          --warm invocations of the warm instance: the median
  1st swap-out  POST /v1/instances/ID/swap-out: the server's time (the
                answer's "ms"; the first swap of an instance allocates its
                pinned host pool), the bytes and allocations it moved
  lukewarm      invoke the swapped-out instance: the round trip, and its
                swap-in (X-Mig-Swap-In-Us, as the daemon times it)
  swap-out      a second swap-out, the pool reused (the steady state)
  swap-in srv   a swap-in by request (POST .../swap-in): the server's time
  load          natively (cuda backend; bench/lukewarm/native_load.py, a
                process with torch imported and CUDA initialised): a model's
                models.build() (random weights, moved to the GPU), and its
                move to the GPU alone; for the state, copying it from
                pageable host memory to the GPU ("reload"); and the pinned
                host-to-device bandwidth (1 GiB, best of 5)

Every answer is checked: a model's must be the same bits before and after
its swap (the answer carries a SHA-256 of the output), the state
function's must say "ok" (its checksum over all of the state is the
expected one).  A mismatch stops the run with exit status 1, and so does
anything that fails to run; a slow number does not (a benchmark, not a
test).  It prints the table per workload and the targets:

  swap-in GB/s vs native pinned host-to-device   >= 0.8x   (>= 256 MiB swapped)
  lukewarm invocation vs warm + swap-in          <= +2 ms
  lukewarm / cold invocation                     <= 0.15   (resnet50, bert)

--json FILE keeps every round (written after each, so a run cut short
leaves its numbers); --markdown FILE the tables.  GB/s are 10^9 bytes per
second, MiB 2^20 bytes.  Standard library only (torch only in the native
helper).
"""
import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import daemonlib  # noqa: E402

ML = ("resnet50", "alexnet", "vgg19", "bert")
DEFAULT = {"cuda": "resnet50,bert,vgg19,state-1GiB,state-8GiB",
           "host": "resnet50,bert,vgg19,state-64MiB"}
MIB, GIB = 1 << 20, 1 << 30
BIG_SWAP = 256 * MIB           # the bandwidth target counts from here
TARGET_BW, TARGET_SLACK_MS, TARGET_COLD = 0.8, 2.0, 0.15
COLD_TARGETED = ("resnet50", "bert")


class Failed(RuntimeError):
    """Something did not run, or an answer was wrong."""


def parse_size(s):
    """Bytes of "64MiB", "8G", "1048576" (powers of 1024, as the daemon
    and examples/state read sizes), or None."""
    m = re.fullmatch(r"(\d+)(?:([KMGTkmgt])(?:i?B)?)?", s)
    if not m:
        return None
    return int(m.group(1)) << (10 * ("KMGT".index(m.group(2).upper()) + 1) if m.group(2) else 0)


def state_bytes(workload):
    """The state function's size for @workload ("state-SIZE"), else None."""
    if not workload.startswith("state-"):
        return None
    n = parse_size(workload[len("state-"):])
    return n if n and n % 8 == 0 else None


def spec(workload, args):
    """The deployment of @workload."""
    ex = os.path.join(args.build, "examples")
    if workload in ML:
        return {"language": "python",
                "artifact": os.path.join(ROOT, "examples", "torch_models", "models.py"),
                "handler": "models:infer", "env": {"MODEL": workload},
                "python": args.python, "gpu_memory": "12GiB",
                "limits": {"memory": "24GiB"}, "timeout_ms": 600000}
    size = state_bytes(workload)
    env = {"STATE_BYTES": str(size)}
    if args.backend == "host":
        env["MIG_HOST_KERNELS"] = os.path.join(ex, "libstate_kernels.so")
    return {"language": "c", "artifact": os.path.join(ex, "libstate.so"), "handler": "state",
            "env": env, "gpu_memory": f"{-(-size // MIB) + 2048}MiB", "timeout_ms": 600000}


def invoke(d, name):
    """One invocation: its round trip and what the daemon's headers say."""
    t0 = time.perf_counter()
    status, h, body = d.request("POST", f"/v1/functions/{name}/invoke", b"")
    ms = (time.perf_counter() - t0) * 1e3
    if status != 200:
        raise Failed(f"{name}: HTTP {status} {body[:500]!r}")

    def us(k):
        return int(h.get(k, 0)) / 1e3
    return {"ms": ms, "instance": h.get("X-Mig-Instance", ""),
            "cold": h.get("X-Mig-Cold") == "1", "cold_start_ms": us("X-Mig-Cold-Start-Us"),
            "queued_ms": us("X-Mig-Queued-Us"), "run_ms": us("X-Mig-Run-Us"),
            "swap_in_ms": us("X-Mig-Swap-In-Us"), "answer": body}


def check(name, r, want, when):
    """@r's answer is right: the state says ok, a model's is @want's."""
    try:
        a = json.loads(r["answer"])
    except ValueError:
        raise Failed(f"{name}, {when}: the answer is not JSON: {r['answer'][:300]!r}")
    if state_bytes(name):
        if a.get("ok") is not True or a.get("bytes") != state_bytes(name):
            raise Failed(f"{name}, {when}: the state is wrong: {a}")
    elif want is not None and a != want:
        raise Failed(f"{name}, {when}: the answer changed: {a} (was {want})")
    return a


def swap(d, name, inst, way):
    """POST swap-@way ("out" or "in") of the idle @inst (an instance that
    answered a moment ago may not be idle yet: 409 is retried for a
    while): the server's time, the bytes and allocations it moved."""
    t0 = time.monotonic()
    while True:
        t = time.perf_counter()
        status, _, body = d.request("POST", f"/v1/instances/{inst}/swap-{way}")
        wall = (time.perf_counter() - t) * 1e3
        if status != 409 or time.monotonic() - t0 > 5:
            break
        time.sleep(0.01)
    if status != 200:
        raise Failed(f"{name}: swap-{way} of {inst}: HTTP {status} {body[:300]!r}")
    rep = json.loads(body)
    if not rep.get("bytes"):
        raise Failed(f"{name}: the swap-{way} of {inst} moved nothing ({rep}): no memory "
                     "from cuMemAlloc to swap (PyTorch's expandable segments?)")
    _, _, body = d.request("GET", "/v1/instances")
    listed = [i for i in json.loads(body)["instances"] if i["id"] == inst]
    if not listed or listed[0].get("swapped") is not (way == "out"):
        raise Failed(f"{name}: {inst} is not listed as swapped {way} after its "
                     f"swap-{way}: {listed}")
    return {"ms": rep["ms"], "http_ms": wall, "bytes": rep["bytes"],
            "allocations": rep["allocations"]}


def one_round(d, name, warm_n):
    """On a fresh instance of @name: a cold invocation, warm ones, a
    swap-out (the first: the server allocates its pinned pool) and a
    lukewarm invocation (the daemon swaps in, timed); then a second
    swap-out (the pool reused), a swap-in by request (the server's own
    time) and a warm invocation that checks the state once more."""
    d.kill_instances()
    cold = invoke(d, name)
    if not cold["cold"]:
        raise Failed(f"{name}: the first invocation after killing every instance was "
                     f"not a cold start (X-Mig-Cold: 0, instance {cold['instance']})")
    want = check(name, cold, None, "cold")
    inst = cold["instance"]

    def same_instance(r, what):
        if r["cold"] or r["instance"] != inst:
            raise Failed(f"{name}: the {what} invocation went to {r['instance']} "
                         f"(cold {r['cold']}), not to {inst}")
    warm = []
    for i in range(warm_n):
        r = invoke(d, name)
        check(name, r, want, f"warm invocation {i + 1}")
        same_instance(r, "warm")
        warm.append(r["ms"])
    first = swap(d, name, inst, "out")
    luke = invoke(d, name)
    check(name, luke, want, "after the swap-out (lukewarm)")
    same_instance(luke, "lukewarm")
    out = swap(d, name, inst, "out")
    back = swap(d, name, inst, "in")
    after = invoke(d, name)
    check(name, after, want, "after the swap-in by request")
    same_instance(after, "last")
    return {"cold_ms": cold["ms"], "cold_start_ms": cold["cold_start_ms"],
            "cold_queued_ms": cold["queued_ms"], "cold_run_ms": cold["run_ms"],
            "warm_ms": statistics.median(warm) if warm else after["ms"],
            "warm_all_ms": warm, "bytes": first["bytes"],
            "allocations": first["allocations"],
            "swap_out_first_ms": first["ms"], "swap_out_first_http_ms": first["http_ms"],
            "lukewarm_ms": luke["ms"], "swap_in_ms": luke["swap_in_ms"],
            "lukewarm_run_ms": luke["run_ms"],
            "swap_out_ms": out["ms"], "swap_out_http_ms": out["http_ms"],
            "swap_out_bytes": out["bytes"], "swap_in_server_ms": back["ms"],
            "swap_in_http_ms": back["http_ms"], "swap_in_bytes": back["bytes"],
            "after_swap_in_ms": after["ms"]}


def native(args, workloads):
    """The native load times and pinned bandwidth (bench/lukewarm/
    native_load.py), or None with a note when it cannot run."""
    argv = [args.python, os.path.join(HERE, "native_load.py"), str(args.rounds)]
    argv += [f"state:{state_bytes(w)}" if state_bytes(w) else w for w in workloads]
    print("native: load times and pinned bandwidth ...", file=sys.stderr, flush=True)
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, text=True, timeout=3600, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"native: {e}; no native numbers", file=sys.stderr)
        return None
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode or not lines:
        print(f"native: {' '.join(argv)} exited with {p.returncode}; no native numbers",
              file=sys.stderr)
        return None
    out = json.loads(lines[-1])
    return {"gpu": out["gpu"], "pinned_h2d_gbs": out["pinned_h2d_gbs"],
            "workloads": {w: out["workloads"][f"state:{state_bytes(w)}" if state_bytes(w) else w]
                          for w in workloads}}


def gbs(nbytes, ms):
    return nbytes / (ms / 1e3) / 1e9 if ms else None


def summary(rounds, nat):
    """Medians over the rounds, and the native numbers beside them."""
    med = {k: statistics.median(r[k] for r in rounds)
           for k in ("cold_ms", "cold_start_ms", "warm_ms", "swap_out_first_ms",
                     "swap_out_ms", "bytes", "allocations", "lukewarm_ms", "swap_in_ms",
                     "swap_in_server_ms")}
    for k, ms, b in (("swap_out_gbs", "swap_out_ms", "swap_out_bytes"),
                     ("swap_in_gbs", "swap_in_ms", "bytes"),
                     ("swap_in_server_gbs", "swap_in_server_ms", "swap_in_bytes")):
        med[k] = statistics.median(gbs(r[b], r[ms]) or 0 for r in rounds)
    for k in ("load_ms", "to_gpu_ms", "reload_ms"):
        if nat and nat.get(k):
            med[k] = statistics.median(nat[k])
    if "reload_ms" in med:  # the state's "load" is its copy back to the GPU
        med["load_ms"] = med["to_gpu_ms"] = med["reload_ms"]
    return med


def f1(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def tables(results, notes, header, pinned):
    """The per-workload table and the targets, as text and as markdown."""
    cols = ("workload", "cold start", "load", "to GPU", "1st swap-out", "swap-out",
            "swap-in", "cold", "lukewarm", "warm", "swapped MiB", "out GB/s", "in GB/s",
            "in GB/s srv")
    rows = []
    for w, r in results.items():
        s = r.get("summary")
        if not s:
            continue
        rows.append((w, f1(s["cold_start_ms"]), f1(s.get("load_ms")), f1(s.get("to_gpu_ms")),
                     f1(s["swap_out_first_ms"]), f1(s["swap_out_ms"]), f1(s["swap_in_ms"]),
                     f1(s["cold_ms"]), f1(s["lukewarm_ms"]), f1(s["warm_ms"]),
                     f1(s["bytes"] / MIB, ".0f"), f1(s["swap_out_gbs"]),
                     f1(s["swap_in_gbs"]), f1(s["swap_in_server_gbs"])))
    text, md = [header, ""], [header.replace("\n", "  \n"), ""]
    widths = [max(len(c), *(len(x[i]) for x in rows)) if rows else len(c)
              for i, c in enumerate(cols)]
    text.append("  ".join(c.rjust(wd) for c, wd in zip(cols, widths)))
    md.append("| " + " | ".join(cols) + " |")
    md.append("|---|" + "---:|" * (len(cols) - 1))
    for x in rows:
        text.append("  ".join(c.rjust(wd) for c, wd in zip(x, widths)))
        md.append("| " + " | ".join(x) + " |")
    text.append("")
    md.append("")
    text.append("times in ms.  cold start: X-Mig-Cold-Start-Us; load: natively, build the "
                "model and move it to the GPU (state: copy it from pageable host memory); "
                "to GPU: the move alone; 1st swap-out: the server's time, its pinned pool "
                "allocated; swap-out: the next one, the pool reused (out GB/s); swap-in: "
                "X-Mig-Swap-In-Us of the lukewarm invocation (in GB/s); in GB/s srv: the "
                "server's own time of a swap-in by request; cold/lukewarm/warm: the "
                "invocation's round trip")
    md.append(text[-1])
    text.append("")
    md.append("")
    head = ("workload", "in GB/s / pinned", f">= {TARGET_BW}x", "(srv / pinned)",
            "lukewarm - (warm + in) ms", f"<= {TARGET_SLACK_MS:.0f} ms",
            "lukewarm / cold", f"<= {TARGET_COLD}")
    trows, met, total = [], 0, 0
    for w, r in results.items():
        s = r.get("summary")
        if not s:
            continue
        big = pinned and s["bytes"] >= BIG_SWAP
        bw = s["swap_in_gbs"] / pinned if big else None
        srv = s["swap_in_server_gbs"] / pinned if big else None
        slack = s["lukewarm_ms"] - (s["warm_ms"] + s["swap_in_ms"])
        cold = s["lukewarm_ms"] / s["cold_ms"]
        verdicts = [None if bw is None else bw >= TARGET_BW, slack <= TARGET_SLACK_MS,
                    cold <= TARGET_COLD if w in COLD_TARGETED else None]
        met += sum(v is True for v in verdicts)
        total += sum(v is not None for v in verdicts)
        yes = ["-" if v is None else ("yes" if v else "NO") for v in verdicts]
        trows.append((w, f1(bw, ".2f") + ("x" if bw is not None else ""), yes[0],
                      f1(srv, ".2f") + ("x" if srv is not None else ""),
                      f"{slack:+.1f}", yes[1], f1(cold, ".3f"), yes[2]))
    text.append("  ".join(f"{h:>19}" for h in head))
    md.append("| " + " | ".join(head) + " |")
    md.append("|---|" + "---:|" * (len(head) - 1))
    for x in trows:
        text.append("  ".join(f"{c:>19}" for c in x))
        md.append("| " + " | ".join(x) + " |")
    text.append(f"\ntargets met: {met} of {total}")
    md.append(f"\ntargets met: {met} of {total}")
    for n in notes:
        text.append(f"note: {n}")
        md.append(f"\nnote: {n}")
    return "\n".join(text), "\n".join(md)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", "--build-dir", dest="build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--backend", default="cuda", choices=("cuda", "host"))
    ap.add_argument("--host", action="store_const", dest="backend", const="host",
                    help="the host test double: --backend host")
    ap.add_argument("--workloads", help="default: " + DEFAULT["cuda"]
                    + f" ({DEFAULT['host']} with --host)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warm", type=int, default=5, help="warm invocations per round")
    ap.add_argument("--isolation", default="sandbox", choices=("sandbox", "bare"))
    ap.add_argument("--python", default=sys.executable,
                    help="the interpreter with torch, for the ML functions and the "
                         "native side")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    asked = (args.workloads or DEFAULT[args.backend]).split(",")
    notes, todo = [], []
    for w in asked:
        if w in ML:
            if args.backend == "host":
                notes.append(f"{w} skipped: the ML workloads need torch on a GPU "
                             "(--backend cuda)")
                continue
        elif not state_bytes(w):
            ap.error(f"unknown workload {w}: one of {', '.join(ML)} or state-SIZE "
                     "(e.g. state-1GiB; a multiple of 8 bytes)")
        todo.append(w)
    for w in todo:
        if state_bytes(w) and not os.path.exists(spec(w, args)["artifact"]):
            ap.error(f"{spec(w, args)['artifact']} is not built: ninja -C {args.build} "
                     "(it needs nvcc)")
    for n in notes:
        print(f"note: {n}", file=sys.stderr)

    started = datetime.datetime.now(datetime.timezone.utc)
    gpu, nat = "-", None
    results = {w: {"rounds": []} for w in todo}

    def header():
        pinned = f"{nat['pinned_h2d_gbs']:.1f} GB/s" if nat else "-"
        return (f"lukewarm instances, {args.backend} backend, isolation {args.isolation}\n"
                f"{started:%Y-%m-%d %H:%M} UTC, GPU {gpu}, {os.cpu_count()} CPUs; "
                f"medians of {args.rounds} rounds, {args.warm} warm invocations per round; "
                f"native pinned host-to-device (1 GiB): {pinned}")

    def save(partial):
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"partial": partial, "header": header(), "rounds": args.rounds,
                           "native": nat, "notes": notes, "results": results}, f, indent=1)
    if args.backend == "cuda" and todo:
        nat = native(args, todo)
        if not nat:
            notes.append("no native numbers: bench/lukewarm/native_load.py failed "
                         f"(torch with CUDA under {args.python}?)")
    workdir = tempfile.mkdtemp(prefix="mig-lukewarm-bench-")
    try:
        # No swap but ours (no policy, none for room), and host memory for
        # the largest swapped-out instance whatever the machine's RAM.
        room = max([16 * GIB] + [state_bytes(w) + 2 * GIB for w in todo if state_bytes(w)])
        d = daemonlib.Daemon(args.build, args.backend, "lukewarm", workdir,
                             {"isolation": args.isolation,
                              "lukewarm": {"swap_after_ms": 0, "on_pressure": False,
                                           "host_memory": f"{room // MIB}MiB"}})
        try:
            gpu = d.gpu_name()
            for w in todo:
                d.deploy(w, spec(w, args), 1)
                for k in range(args.rounds):
                    print(f"{w}: round {k + 1} of {args.rounds} ...", file=sys.stderr,
                          flush=True)
                    r = one_round(d, w, args.warm)
                    results[w]["rounds"].append(r)
                    print(f"  cold {r['cold_ms']:.1f} ms (start {r['cold_start_ms']:.1f}), "
                          f"warm {r['warm_ms']:.2f} ms, swap-out {r['bytes'] / MIB:.0f} MiB "
                          f"in {r['swap_out_ms']:.1f} ms, lukewarm {r['lukewarm_ms']:.1f} ms "
                          f"(swap-in {r['swap_in_ms']:.1f} ms)", file=sys.stderr, flush=True)
                    save(True)
                if any(r["swap_in_ms"] == 0 for r in results[w]["rounds"]):
                    notes.append(f"{w}: X-Mig-Swap-In-Us was 0 in some round (the server "
                                 "swapped in by itself, untimed); its swap-in GB/s is off")
                results[w]["summary"] = summary(results[w]["rounds"],
                                                nat["workloads"][w] if nat else None)
                d.kill_instances()
        finally:
            d.stop()
    except (RuntimeError, OSError, ValueError, KeyError, http.client.HTTPException) as e:
        save(True)
        print(f"run.py: {e}\n(the daemon's log is kept in {workdir})", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    text, md = tables(results, notes, header(), nat["pinned_h2d_gbs"] if nat else None)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md + "\n")
    save(False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

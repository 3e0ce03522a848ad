#!/usr/bin/env python3
"""run.py - what the executor sandbox costs an invocation: sandboxed vs bare,
in one run, as one table of ratios.

Starts two mignificentd of the same build and backend side by side: one
with isolation "bare" (the baseline: the executor is a plain process of the
daemon) and one with "sandbox" (mig-sandbox: namespaces, a root file system
of its own, cgroup, seccomp).  Each gets the same empty C function
(build/examples/libempty.so, or tests/daemon/fixture_fn.c compiled here),
and then, alternating between the two daemons so that drift hits both
alike:

  cold starts   --cold times: invoke on no instance, read the daemon's
                X-Mig-Cold-Start-Us and the client's round trip, kill the
                instance (DELETE /v1/instances/ID) and wait until it is gone;
  warm          --warm invocations of one warm instance, back to back on a
                kept-alive connection: the client's round trip.

    metric | bare | sandbox | sandbox vs bare

Cold starts are compared as the time the sandbox adds (ms), warm
invocations as a ratio.  The GPU servers' pool (pre-initialized servers)
is on in both daemons, as on a node; --pause gives it time to refill
between cold starts.

A benchmark, not a test: nothing here fails on a slow number.  The exit
status is nonzero only when a daemon could not start or an invocation
failed.  Needs root (the sandbox does); works with the host test double
(default) or --backend cuda on a GPU machine.  Standard library only.

Usage: bench/isolation/run.py [--build DIR] [--backend host|cuda]
                              [--cold N] [--warm N] [--pause S]
"""
import argparse
import base64
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import daemonlib  # noqa: E402
MODES = ("bare", "sandbox")


class Daemon(daemonlib.Daemon):
    """A daemon with isolation @mode, and its empty function."""

    def __init__(self, build, backend, mode, workdir):
        super().__init__(build, backend, mode, workdir, {"isolation": mode})
        self.mode = mode

    def invoke(self):
        """One invocation of the empty function: (headers, round trip in s)."""
        t0 = time.perf_counter()
        status, headers, body = self.request("POST", "/v1/functions/empty/invoke", b"")
        wall = time.perf_counter() - t0
        if status != 200:
            raise RuntimeError(f"{self.mode}: invocation failed: HTTP {status} {body[:300]!r}")
        return headers, wall


def empty_function(build, workdir):
    """(path, handler) of a C function that does nothing."""
    lib = os.path.join(build, "examples", "libempty.so")
    if os.path.exists(lib):
        return lib, "empty"
    out = os.path.join(workdir, "libfixture.so")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-Iinclude",
                    "tests/daemon/fixture_fn.c", "-o", out], cwd=ROOT, check=True)
    return out, "empty"


def measure(daemons, args):
    """{mode: {"cold_daemon_ms", "cold_client_ms", "warm_us": [...]}}."""
    out = {m: {"cold_daemon_ms": [], "cold_client_ms": [], "warm_us": []} for m in daemons}
    for n in range(args.cold):
        order = MODES if n % 2 == 0 else MODES[::-1]
        for mode in order:
            d = daemons[mode]
            headers, wall = d.invoke()
            if headers.get("X-Mig-Cold") != "1":
                raise RuntimeError(f"{mode}: cold start {n} found a warm instance")
            out[mode]["cold_daemon_ms"].append(int(headers["X-Mig-Cold-Start-Us"]) / 1000)
            out[mode]["cold_client_ms"].append(wall * 1000)
            d.kill_instances()
        time.sleep(args.pause)
    for d in daemons.values():
        d.invoke()  # the instance the warm invocations use
    for n in range(args.warm):
        order = MODES if n % 2 == 0 else MODES[::-1]
        for mode in order:
            headers, wall = daemons[mode].invoke()
            if headers.get("X-Mig-Cold") != "0":
                raise RuntimeError(f"{mode}: warm invocation {n} was a cold start")
            out[mode]["warm_us"].append(wall * 1e6)
    return out


def table(results):
    bare, box = results["bare"], results["sandbox"]
    rows = []
    for label, key, stat, unit in [
            ("cold start, daemon (X-Mig-Cold-Start-Us)", "cold_daemon_ms", "median", "ms"),
            ("cold start, daemon, p90", "cold_daemon_ms", "p90", "ms"),
            ("cold start, client round trip", "cold_client_ms", "median", "ms")]:
        f = statistics.median if stat == "median" else (lambda v: daemonlib.percentile(v, 0.9))
        b, s = f(bare[key]), f(box[key])
        rows.append((label + f" ({unit}, {stat})" if stat == "median" else label + f" ({unit})",
                     f"{b:.2f}", f"{s:.2f}", f"{s - b:+.2f} ms added"))
    for label, stat in [("warm invocation, client round trip (us, median)", "median"),
                        ("warm invocation, client round trip (us, p99)", "p99")]:
        f = statistics.median if stat == "median" else (lambda v: daemonlib.percentile(v, 0.99))
        b, s = f(bare["warm_us"]), f(box["warm_us"])
        rows.append((label, f"{b:.0f}", f"{s:.0f}", f"{s / b:.2f} x"))
    head = ("metric", "bare", "sandbox", "sandbox vs bare")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(head, widths)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(lines)


def header(args, daemons):
    _, _, body = daemons["sandbox"].request("GET", "/v1/devices")
    devices = json.loads(body)
    gpus = sorted({p.get("gpu_name", "?") for p in devices.get("partitions", [])})
    return (f"mignificent executor isolation: sandbox vs bare, {args.backend} backend\n"
            f"{datetime.date.today()}, Linux {platform.release()}, {os.cpu_count()} CPUs, "
            f"driver {devices.get('driver_version', '?')}, GPU {', '.join(gpus) or '-'}\n"
            f"{args.cold} cold starts and {args.warm} warm invocations of an empty C "
            f"function per mode, alternating")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="the CMake build directory (default: build/)")
    ap.add_argument("--backend", default="host", choices=("host", "cuda"))
    ap.add_argument("--cold", type=int, default=20, help="cold starts per mode (20)")
    ap.add_argument("--warm", type=int, default=200, help="warm invocations per mode (200)")
    ap.add_argument("--pause", type=float, default=0.3,
                    help="seconds between cold starts, for the GPU server pool (0.3)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("run.py: the sandbox needs root (mignificentd refuses isolation \"sandbox\" "
              "otherwise): run as root", file=sys.stderr)
        return 2
    if not os.path.exists(os.path.join(args.build, "bin", "mignificentd")):
        print(f"run.py: {args.build}/bin/mignificentd is not built: ninja -C {args.build}",
              file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="mig-isolation-bench-")
    daemons = {}
    try:
        lib, handler = empty_function(args.build, workdir)
        artifact = base64.b64encode(open(lib, "rb").read()).decode()
        for mode in MODES:
            d = daemons[mode] = Daemon(args.build, args.backend, mode, workdir)
            status, _, body = d.request("PUT", "/v1/functions/empty", {
                "language": "c", "handler": handler, "artifact": artifact,
                "gpu_memory": "64MiB"})
            if status not in (200, 201):
                raise RuntimeError(f"{mode}: deploy failed: HTTP {status} {body[:300]!r}")
        results = measure(daemons, args)
        print(header(args, daemons))
        print()
        print(table(results))
        if args.backend == "host":
            print("\n(host test-double backend: the GPU server does no GPU work; the "
                  "sandbox's cost is all there is to see)")
        return 0
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        print(f"run.py: {e}", file=sys.stderr)
        for d in daemons.values():
            print(f"--- {d.mode} daemon log (tail)\n{d.logs()[-2000:]}", file=sys.stderr)
        return 1
    finally:
        for d in daemons.values():
            d.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

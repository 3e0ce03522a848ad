"""Paths and environments of the remoting test suite (see conftest.py)."""
import importlib.util
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("MIG_BUILD_DIR", ROOT / "build")).resolve()
MIG = BUILD / "bin" / "mig"
SHIM_DIR = BUILD / "lib" / "shim"
KERNELS = BUILD / "lib" / "libmig_test_kernels.so"
PROG_DIR = BUILD / "tests" / "cuda"
BACKEND = os.environ.get("MIG_TEST_BACKEND", "host")

# Seconds one program may take through `mig run` before we call it hung.
RUN_TIMEOUT = 180


def load_script(name, path):
    """The Python program at @path (a benchmark's script, not a package)
    loaded as module @name, for tests of its functions."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def mig_env(extra=None):
    """The environment for `mig run` and the programs under it."""
    env = dict(os.environ)
    env["MIG_TEST_BACKEND"] = BACKEND
    if BACKEND == "host":
        old = env.get("MIG_HOST_KERNELS")
        env["MIG_HOST_KERNELS"] = str(KERNELS) + (":" + old if old else "")
    if extra:
        env.update(extra)
    return env


def native_env(extra=None):
    """The environment for running a program without mignificent."""
    env = dict(os.environ)
    for k in ("MIG_SEGMENT_FD", "MIG_LIFELINE_FD", "MIG_SUMMARY_FD"):
        env.pop(k, None)
    env["MIG_TEST_BACKEND"] = ""
    if extra:
        env.update(extra)
    return env


class Run:
    """A finished `mig run` (or native run): exit status and output."""

    def __init__(self, argv, rc, out, err, wall):
        self.argv, self.rc, self.out, self.err, self.wall = argv, rc, out, err, wall

    def describe(self):
        tail = lambda s: "\n".join(s.splitlines()[-40:])  # noqa: E731
        return (f"$ {' '.join(map(str, self.argv))}\nexit status {self.rc} "
                f"after {self.wall:.2f} s\n--- stdout (tail)\n{tail(self.out)}"
                f"\n--- stderr (tail)\n{tail(self.err)}")


def run(argv, env, timeout=RUN_TIMEOUT):
    import subprocess
    import time

    t0 = time.monotonic()
    try:
        p = subprocess.run([str(a) for a in argv], env=env, capture_output=True,
                           text=True, errors="replace", timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise AssertionError(f"timed out after {timeout} s: {' '.join(map(str, argv))}\n"
                             f"--- stdout\n{out[-4000:]}\n--- stderr\n{err[-4000:]}")
    return Run(argv, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def mig_run(prog_argv, env_extra=None, backend=None, timeout=RUN_TIMEOUT):
    """Run a program through `mig run` against a fresh server."""
    argv = [MIG, "run", "--backend", backend or BACKEND, "--", *prog_argv]
    return run(argv, mig_env(env_extra), timeout)


def assert_ok(r, server_summary=True):
    """Exit 0, "OK" on stdout, and (through mig run) a server that exited
    cleanly: `mig run` prints "GPU server exit status N" otherwise."""
    assert r.rc == 0, r.describe()
    assert "OK" in r.out.split(), r.describe()
    if server_summary:
        assert "GPU server exit status" not in r.err, r.describe()
        assert "--- mig run:" in r.err, "no mig run summary\n" + r.describe()

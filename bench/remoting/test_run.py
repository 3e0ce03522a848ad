#!/usr/bin/env python3
"""test_run.py - checks run.py's driver logic against fakes (no GPU, no build).

A fake benchmark prints fixed metric lines, in "mignificent" mode when the
fake `mig` started it; the fake `mig` takes `run --backend B -- PROGRAM ...`
like the real one.  Run:  python3 bench/remoting/test_run.py
"""

import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_PY = os.path.join(HERE, "run.py")

FAKE_BENCH = textwrap.dedent("""\
    #!/usr/bin/env python3
    import os, sys
    remoted = os.environ.get("FAKE_REMOTED") == "1"
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(("mig" if remoted else "native") + " " + " ".join(sys.argv[1:]) + "\\n")
    if not remoted and os.environ.get("FAKE_NATIVE_FAILS"):
        sys.exit("no CUDA-capable device is detected")
    print("info mode %s" % ("mignificent" if remoted else "native"))
    print("info device Fake H200")
    print("info driver_api 13000")
    print("info runtime 13000")
    note = "" if remoted else " (native: cudaMallocHost)"
    if remoted:
        vals = dict(launch_async_us=2.4, launch_sync_us=12.0, device_sync_idle_us=5.0,
                    memcpy_1B_pair_us=20.0, pin=50.0, page=30.0, small=5.0)
    else:
        vals = dict(launch_async_us=2.0, launch_sync_us=6.0, device_sync_idle_us=2.0,
                    memcpy_1B_pair_us=15.0, pin=52.0, page=25.0, small=10.0)
    for k in ("launch_async_us", "launch_sync_us", "device_sync_idle_us", "memcpy_1B_pair_us"):
        print("metric %s %.3f us" % (k, vals[k]))
    print("metric h2d_pageable_4KiB %.3f GB/s" % vals["small"])
    print("metric h2d_pageable_4MiB %.3f GB/s" % vals["page"])
    print("metric h2d_pinned_4MiB %.3f GB/s" % vals["pin"])
    print("metric h2d_mignificent_malloc_4MiB %.3f GB/s%s" % (vals["pin"], note))
    bad = remoted and os.environ.get("FAKE_COPY_FAILS")
    if bad:
        print("error h2d_pinned_256MiB cudaMemcpy: invalid argument")
    else:
        print("metric h2d_pinned_256MiB 55.000 GB/s")
    print("info done")
    sys.exit(3 if bad else 0)
    """)

FAKE_MIG = textwrap.dedent("""\
    #!/usr/bin/env python3
    import os, sys
    a = sys.argv[1:]
    assert a[0] == "run" and a[1] == "--backend" and a[3] == "--", a
    if a[2] == "host":
        assert os.environ.get("MIG_HOST_KERNELS", "").startswith("/"), "no kernels"
    if not os.environ.get("FAKE_MIG_FORGETS_SHIM"):
        os.environ["FAKE_REMOTED"] = "1"
    sys.stderr.write("--- mig run: summary\\n")
    os.execv(a[4], a[4:])
    """)


def write_exe(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


class RunPyTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        self.bench = os.path.join(d, "remoting_bench")
        self.mig = os.path.join(d, "mig")
        self.kernels = os.path.join(d, "libmig_bench_kernels.so")
        self.log = os.path.join(d, "log")
        write_exe(self.bench, FAKE_BENCH)
        write_exe(self.mig, FAKE_MIG)
        open(self.kernels, "w").close()

    def tearDown(self):
        self.tmp.cleanup()

    def run_py(self, *extra, **env):
        e = dict(os.environ, FAKE_LOG=self.log, PATH="/usr/bin:/bin")  # no nvidia-smi
        e.pop("FAKE_REMOTED", None)
        e.update(env)
        p = subprocess.run([sys.executable, RUN_PY, "--bench", self.bench, "--mig", self.mig,
                            "--kernels", self.kernels] + list(extra),
                           env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        return p

    def row(self, out, metric):
        for line in out.splitlines():
            if line.startswith(metric + " "):
                return line.split()
        self.fail("no row %s in:\n%s" % (metric, out))

    def test_table_and_targets(self):
        md = os.path.join(self.tmp.name, "t.md")
        p = self.run_py("--rounds", "2", "--markdown", md)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout
        # launch_async 2.4 / 2.0 = 1.2x <= 1.3x: met.
        self.assertEqual(self.row(out, "launch_async_us")[-3:], ["<=", "1.30x", "yes"])
        self.assertIn("1.200x", self.row(out, "launch_async_us"))
        # launch_sync 12 - 6 = +6 us > 5 us: missed.
        r = self.row(out, "launch_sync_us")
        self.assertIn("+6.00", r)
        self.assertEqual(r[-1], "NO")
        self.assertEqual(self.row(out, "device_sync_idle_us")[-1], "yes")  # +3 <= 4
        self.assertEqual(self.row(out, "memcpy_1B_pair_us")[-1], "yes")    # +5 <= 6
        self.assertEqual(self.row(out, "h2d_pinned_4MiB")[-1], "yes")      # 0.96 >= 0.95
        self.assertEqual(self.row(out, "h2d_pageable_4MiB")[-1], "yes")    # 1.2 >= 1.0
        self.assertEqual(self.row(out, "h2d_pageable_4KiB")[-1], "-")      # informational
        self.assertIn("(native: cudaMallocHost)", out)
        self.assertIn("targets met: 7 of 8", out)
        # Rounds alternate which side goes first.
        with open(self.log) as f:
            sides = [l.split()[0] for l in f]
        self.assertEqual(sides, ["native", "mig", "mig", "native"])
        with open(md) as f:
            text = f.read()
        self.assertIn("| launch_sync_us [µs] | 6.00 | 12.00 | +6.00 µs | ≤ +5 µs | NO |", text)
        self.assertIn("Fake H200", text)

    def test_host_backend_without_gpu(self):
        p = self.run_py("--host", "--quick", "--max-size", "4M", FAKE_NATIVE_FAILS="1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("native run failed", p.stderr)
        r = self.row(p.stdout, "launch_async_us")
        self.assertEqual(r[2:4], ["n/a", "2.40"])
        self.assertEqual(r[-1], "n/a")
        with open(self.log) as f:
            self.assertEqual(f.read().split("\n")[1], "mig --quick --max-size 4M")

    def test_native_failure_is_fatal_on_gpu(self):
        p = self.run_py("--rounds", "1", FAKE_NATIVE_FAILS="1")
        self.assertEqual(p.returncode, 1)

    def test_remoted_run_without_shim_is_refused(self):
        p = self.run_py("--rounds", "1", FAKE_MIG_FORGETS_SHIM="1")
        self.assertEqual(p.returncode, 1)
        self.assertIn("ran in native mode, expected mignificent", p.stderr)
        self.assertEqual(self.row(p.stdout, "launch_sync_us")[3], "n/a")

    def test_failed_metric_is_shown_and_fails(self):
        md = os.path.join(self.tmp.name, "t.md")
        p = self.run_py("--rounds", "1", "--markdown", md, FAKE_COPY_FAILS="1")
        self.assertEqual(p.returncode, 1)
        r = self.row(p.stdout, "h2d_pinned_256MiB")
        self.assertEqual(r[2:4], ["55.00", "ERROR"])
        self.assertEqual(r[-1], "NO")
        self.assertIn("ERROR mignificent h2d_pinned_256MiB: cudaMemcpy: invalid argument",
                      p.stdout)
        self.assertEqual(self.row(p.stdout, "launch_async_us")[-1], "yes")  # rest kept
        with open(md) as f:
            self.assertIn("- mignificent `h2d_pinned_256MiB`: cudaMemcpy: invalid argument",
                          f.read())

    def test_missing_binary(self):
        p = self.run_py("--bench", "/nonexistent/remoting_bench")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no benchmark at", p.stderr)


if __name__ == "__main__":
    unittest.main()

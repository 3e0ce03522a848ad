"""bench/machine/cpu_probe: the node's CPUs as functions side by side meet
them.  A smoke run in its quick form: every section is there with a row
per CPU, per K and per sleep, the numbers parse, and its arguments are
checked.  Nothing here judges a number (that is the machine's)."""
import os
import re
import subprocess

import pytest

from migtest import BUILD

PROBE = BUILD / "bench" / "machine" / "cpu_probe"


def _probe(*args, cpus=None):
    if not PROBE.exists():
        pytest.fail(f"{PROBE} was not built")
    return subprocess.run([str(PROBE), *args], capture_output=True, text=True, timeout=120,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)


def _section(out, name):
    """The lines of section @name (from its title to the next blank line)."""
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(name + ":"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_quick_run_has_every_section():
    p = _probe("--quick")
    assert p.returncode == 0, p.stderr
    cpus = sorted(os.sched_getaffinity(0))
    speed = _section(p.stdout, "speed")
    rows = [l.split() for l in speed[2:-1]]
    assert [int(r[0]) for r in rows] == cpus, p.stdout
    for r in rows:
        low, mid, high = (float(x.rstrip("x")) for x in r[1:4])
        assert 0 < low <= mid <= high, r
    assert re.search(r"CPUs slow in at least one sample: \d+ of %d" % len(cpus), speed[-1])
    if len(cpus) > 1:
        load = _section(p.stdout, "load")
        ks = [int(l.split()[0]) for l in load[2:]]
        assert ks and ks[0] == 1 and ks[-1] <= len(cpus) - 1, p.stdout
        assert all(re.fullmatch(r"\s*\d+\s+[\d.]+x \(\s*[\d.]+\)\s+[\d.]+x \(\s*[\d.]+\)", l)
                   for l in load[2:]), load
        wake = _section(p.stdout, "wake")
        assert re.search(r"spinning thread: [\d.]+ us median", wake[1]), wake
        assert [l.split()[0] for l in wake[3:]] == ["20", "100", "1000", "5000"], wake


def test_one_cpu_skips_what_needs_two():
    p = _probe("--quick", cpus={min(os.sched_getaffinity(0))})
    assert p.returncode == 0, p.stderr
    assert "speed:" in p.stdout and "load:" not in p.stdout, p.stdout
    assert "wake: needs two CPUs to run on" in p.stdout, p.stdout


def test_one_section_and_bad_arguments():
    p = _probe("speed", "--quick")
    assert p.returncode == 0 and "speed:" in p.stdout and "wake" not in p.stdout, p.stdout
    bad = _probe("fast")
    assert bad.returncode == 2 and "usage: cpu_probe" in bad.stderr, bad
    assert _probe("--help").returncode == 0

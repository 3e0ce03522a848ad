"""Fixtures for tests/daemon/test_api.py: a real mignificentd on a free port.

Each Daemon is the built build/bin/mignificentd, started with the host
test double (``backend: host``), its own data directory under pytest's
tmp_path, and ``listen 127.0.0.1:0``: it picks a free port itself and says
which in its "listening on http://..." log line, so two test runs never
race for a port.  Requests go over real HTTP with urllib (proxies off).
"""
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from migtest import BUILD, ROOT  # noqa: E402

DAEMON = BUILD / "bin" / "mignificentd"
# The sanitizer pass of scripts/test.sh sets MIG_GPUD to the AddressSanitizer
# build's server: run that build's daemon (and executors) too, with the
# release build's libmig_exec.so for Python (an ASan library cannot be
# loaded into an uninstrumented python3).
SANITIZED = None
if os.environ.get("MIG_GPUD"):
    _asan = pathlib.Path(os.environ["MIG_GPUD"]).resolve().parent / "mignificentd"
    if _asan.exists() and _asan != DAEMON.resolve():
        DAEMON, SANITIZED = _asan, {"lib_dir": str(BUILD / "lib")}
START_TIMEOUT = 15
STOP_TIMEOUT = 30

# urllib would send 127.0.0.1 through $http_proxy if the environment has one.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def error(self):
        """The {"error": {"code", "message"}} of an error answer."""
        j = self.json()
        assert set(j) == {"error"} and set(j["error"]) == {"code", "message"}, j
        assert j["error"]["message"], j
        return j["error"]

    def __repr__(self):
        return f"<HTTP {self.status} {self.body[:300]!r}>"


class Daemon:
    """One mignificentd process; stop() sends SIGTERM and returns its status."""

    def __init__(self, data_dir, config=None, args=(), env=None, label=None):
        self.data_dir = data_dir
        label = label or data_dir.name
        self.log_path = data_dir.parent / f"{label}.log"
        self.out_path = data_dir.parent / f"{label}.out"
        argv = [str(DAEMON), "--data-dir", str(data_dir), "--backend", "host",
                "--listen", "127.0.0.1:0", *args]
        if SANITIZED and "--config" not in args:
            config = dict(config or {}, **SANITIZED)
        if config is not None:
            cfg = data_dir.parent / f"{label}.json"
            cfg.write_text(json.dumps(config))
            argv += ["--config", str(cfg)]
        full_env = dict(os.environ)
        full_env.pop("MIG_HOST_KERNELS", None)
        full_env.pop("MIG_DATA_DIR", None)
        full_env.update(env or {})
        self.log = open(self.log_path, "a+")
        self.out = open(self.out_path, "a+")
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=self.log, env=full_env,
                                  cwd=str(ROOT))
        self.url = None
        self.tokens = {t["name"]: t["token"] for t in (config or {}).get("tenants", [])}

    def wait_ready(self):
        t0 = time.monotonic()
        while time.monotonic() - t0 < START_TIMEOUT:
            m = re.search(r"listening on (http://[0-9.:\[\]a-f]+)", self.logs())
            if m:
                self.url = m.group(1)
                return self
            if self.p.poll() is not None:
                raise AssertionError(f"mignificentd exited with {self.p.returncode}:\n"
                                     f"{self.logs()}")
            time.sleep(0.02)
        raise AssertionError(f"mignificentd did not listen within {START_TIMEOUT} s:\n"
                             f"{self.logs()}")

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stdout(self):
        if not self.out.closed:
            self.out.flush()
        with open(self.out_path) as f:
            return f.read()

    def token(self, tenant=None):
        if tenant is None:
            if self.tokens:
                return next(iter(self.tokens.values()))
            return (self.data_dir / "token").read_text().strip()
        return self.tokens[tenant]

    def request(self, method, path, body=None, token="", headers=None, timeout=60,
                tenant=None):
        """One request; token "" means the first tenant's, None means none."""
        if token == "":
            token = self.token(tenant)
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=h)
        try:
            with _OPENER.open(req, timeout=timeout) as r:
                return Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def stop(self, sig=signal.SIGTERM):
        """Send @sig (None: it was sent already) and wait for the exit."""
        if sig is not None and self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError(f"mignificentd did not stop within {STOP_TIMEOUT} s "
                                 f"of {sig!r}:\n{self.logs()[-4000:]}")
        self.log.close()
        self.out.close()
        return rc


@pytest.fixture(scope="session")
def daemon_built():
    assert DAEMON.exists(), f"{DAEMON} is not built: ninja -C {DAEMON.parent.parent} mignificentd"
    for p in ("mig-gpud", "mig-exec"):
        assert (DAEMON.parent / p).exists(), \
            f"{DAEMON.parent / p} is not built: ninja -C {DAEMON.parent.parent}"
    return DAEMON


@pytest.fixture
def start_daemon(daemon_built, tmp_path):
    """start_daemon(config=None, args=(), name="d", wait=True) -> Daemon; all stopped after."""
    started = []

    def start(config=None, args=(), name="d", wait=True, data_dir=None, env=None):
        d = Daemon(data_dir or (tmp_path / name), config, args, env, label=name)
        started.append(d)
        return d.wait_ready() if wait else d

    yield start
    bad = []
    for d in started:
        if d.p.poll() is None:
            rc = d.stop()
            if rc != 0:
                bad.append(f"mignificentd exited with {rc} on SIGTERM:\n{d.logs()[-4000:]}")
    assert not bad, "\n".join(bad)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "invocation: runs functions through daemon/instances.c (real executors "
        "and GPU servers)")

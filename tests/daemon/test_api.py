"""mignificentd's HTTP API against the real daemon (tests/daemon/conftest.py).

Every test starts build/bin/mignificentd with the host test double and its
own data directory and talks to it over HTTP.  Two groups:

  * the API without running functions: deploy, get, list, delete,
    validation, tenancy, 401, 404, 405, 413, malformed JSON, metrics,
    health, devices, persistence across restarts, configuration errors,
    garbage on the socket, SIGHUP and SIGTERM;
  * INVOCATION tests (marked ``invocation``): they also run real executors
    (mig-exec, the Python executor) and GPU servers (mig-gpud, host
    backend) through daemon/instances.c, with the functions of
    tests/daemon/fixture_fn.c and fixture_py.py.

Besides its answers, each test's daemon must stop on SIGTERM with status 0
(the fixture checks that nothing is left running).
"""
import base64
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tarfile
import threading
import time
import zipfile

import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from migtest import BUILD, ROOT  # noqa: E402

HERE = ROOT / "tests" / "daemon"
invocation = pytest.mark.invocation  # registered in tests/daemon/conftest.py

TOKENS = {"alice": "alice-token-0123456789abcdef", "bob": "bob-token-0123456789abcdef"}


def two_tenants(**extra):
    """A config with the tenants alice and bob (alice first: the default)."""
    cfg = {"tenants": [{"name": n, "token": t} for n, t in TOKENS.items()]}
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="session")
def fixture_so(tmp_path_factory):
    """tests/daemon/fixture_fn.c as a shared object (handlers empty, echo, ...)."""
    out = tmp_path_factory.mktemp("fixture") / "libfixture.so"
    cc = os.environ.get("CC", "cc")
    p = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
                        "-Iinclude", "tests/daemon/fixture_fn.c", "-o", str(out)],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return out


def b64(data):
    return base64.b64encode(data).decode()


def c_spec(so, handler="echo", **kw):
    spec = {"language": "c", "handler": handler, "artifact": b64(so.read_bytes())}
    spec.update(kw)
    return spec


def py_spec(source, handler="fixture:ok", **kw):
    spec = {"language": "python", "handler": handler, "artifact": b64(source.encode())}
    spec.update(kw)
    return spec


PY_SOURCE = (HERE / "fixture_py.py").read_text() if (HERE / "fixture_py.py").exists() else ""


def deploy(d, name, spec, tenant=None, status=(200, 201)):
    r = d.request("PUT", f"/v1/functions/{name}", spec, tenant=tenant)
    assert r.status in (status if isinstance(status, tuple) else (status,)), r
    return r


def raw_exchange(d, data, read_timeout=5):
    """Send raw bytes on a new connection; return everything the daemon answers."""
    host, port = d.url[len("http://"):].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=read_timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_of(raw):
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.") else 0


# --- start, health, tokens ---------------------------------------------------


def test_health_needs_no_token(start_daemon):
    d = start_daemon(two_tenants())
    r = d.request("GET", "/v1/health", token=None)
    assert r.status == 200, r
    j = r.json()
    assert j["status"] == "ok" and j["partitions"] == 1
    assert r.headers["Content-Type"] == "application/json"
    assert d.stop() == 0


def test_no_config_makes_default_tenant_token(start_daemon, tmp_path):
    d = start_daemon()
    tok = d.data_dir / "token"
    assert tok.exists()
    assert stat.S_IMODE(tok.stat().st_mode) == 0o600
    assert stat.S_IMODE(d.data_dir.stat().st_mode) == 0o700
    token = tok.read_text().strip()
    assert len(token) == 64 and token in d.stdout(), d.stdout()
    assert d.request("GET", "/v1/functions", token=token).status == 200
    assert d.stop() == 0
    # Second start: same token, not printed again.
    d2 = start_daemon(data_dir=d.data_dir, name="again")
    assert tok.read_text().strip() == token
    assert token not in d2.stdout()
    assert d2.request("GET", "/v1/functions", token=token).status == 200
    assert d2.stop() == 0


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token-0123456789", "Basic YTpi",
                                  "Bearer ", "bearer"])
def test_401_without_a_valid_token(start_daemon, auth):
    d = start_daemon(two_tenants())
    h = {"Authorization": auth} if auth is not None else {}
    for method, path in [("GET", "/v1/functions"), ("GET", "/v1/functions/f"),
                         ("PUT", "/v1/functions/f"), ("POST", "/v1/functions/f/invoke"),
                         ("GET", "/v1/instances"), ("GET", "/v1/devices"),
                         ("GET", "/metrics"), ("GET", "/v1/nowhere")]:
        r = d.request(method, path, body=b"{}" if method in ("PUT", "POST") else None,
                      token=None, headers=h)
        assert r.status == 401, (method, path, r)
        assert r.error()["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_bearer_scheme_is_case_insensitive(start_daemon):
    d = start_daemon(two_tenants())
    r = d.request("GET", "/v1/functions", token=None,
                  headers={"Authorization": "bearer " + TOKENS["alice"]})
    assert r.status == 200, r


# --- deploy, get, list, delete -----------------------------------------------


def test_deploy_get_list_update_delete(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    r = deploy(d, "echo", c_spec(fixture_so, gpu_memory="256MiB", timeout_ms=5000,
                                 keep_alive_ms=1000, max_instances=2,
                                 env={"GREETING": "hi"}, filename="libecho.so"))
    assert r.status == 201, r
    assert r.headers["Location"] == "/v1/functions/echo"
    j = r.json()
    assert j["name"] == "echo" and j["version"] == 1 and j["language"] == "c"
    assert j["gpu_memory"] == 256 << 20 and j["timeout_ms"] == 5000
    assert j["keep_alive_ms"] == 1000 and j["max_instances"] == 2
    assert j["env"] == {"GREETING": "hi"} and j["artifact_name"] == "libecho.so"
    assert j["artifact_size"] == fixture_so.stat().st_size
    assert "artifact" not in j and str(d.data_dir) not in r.body.decode()

    g = d.request("GET", "/v1/functions/echo")
    assert g.status == 200 and g.json() == j

    r2 = deploy(d, "echo", c_spec(fixture_so, handler="empty", gpu_memory=1 << 30))
    assert r2.status == 200 and r2.json()["version"] == 2
    assert r2.json()["handler"] == "empty" and r2.json()["created"] == j["created"]
    # Defaults fill what the update left out.
    assert r2.json()["timeout_ms"] == 60000 and r2.json()["env"] == {}

    deploy(d, "zeta", c_spec(fixture_so))
    deploy(d, "alpha", c_spec(fixture_so))
    names = [f["name"] for f in d.request("GET", "/v1/functions").json()["functions"]]
    assert names == ["alpha", "echo", "zeta"]

    r = d.request("DELETE", "/v1/functions/echo")
    assert r.status == 200 and r.json() == {"deleted": "echo"}
    assert d.request("GET", "/v1/functions/echo").error()["code"] == "function_not_found"
    assert d.request("DELETE", "/v1/functions/echo").status == 404
    assert not (d.data_dir / "functions" / "alice" / "echo").exists()
    # A new deploy under the deleted name starts over.
    assert deploy(d, "echo", c_spec(fixture_so)).json()["version"] == 1
    assert d.stop() == 0


def test_update_keeps_previous_version_files_only(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    for _ in range(4):
        deploy(d, "f", c_spec(fixture_so))
    fdir = d.data_dir / "functions" / "alice" / "f"
    assert sorted(p.name for p in fdir.iterdir() if p.is_dir()) == ["v3", "v4"]
    meta = json.loads((fdir / "function.json").read_text())
    assert meta["version"] == 4 and meta["artifact_path"] == "v4/function.so"


def test_env_as_list_and_cli_field_names(start_daemon, fixture_so):
    """What `mig deploy` sends: "name", "artifact_name", env as "K=V" strings."""
    d = start_daemon(two_tenants())
    spec = c_spec(fixture_so, name="f", artifact_name="libx.so", env=["A=1", "B=x=y"])
    j = deploy(d, "f", spec).json()
    assert j["env"] == {"A": "1", "B": "x=y"} and j["artifact_name"] == "libx.so"


def test_python_artifacts(start_daemon):
    d = start_daemon(two_tenants())
    j = deploy(d, "py", py_spec("def ok(p):\n    return p\n", handler="fixture:ok")).json()
    assert j["artifact_kind"] == "python-file" and j["artifact_name"] == "fixture.py"
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("zmod.py", "def handler(p):\n    return p\n")
    j = deploy(d, "zipped", {"language": "python", "handler": "zmod:handler",
                             "artifact": b64(zbuf.getvalue())}).json()
    assert j["artifact_kind"] == "zip"
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:gz") as t:
        data = b"def handler(p):\n    return b'tar:' + p\n"
        info = tarfile.TarInfo("tmod.py")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    j = deploy(d, "tarred", {"language": "python", "handler": "tmod:handler",
                             "filename": "pkg.tar.gz", "artifact": b64(tbuf.getvalue())}).json()
    assert j["artifact_kind"] == "tar.gz"
    assert (d.data_dir / "functions" / "alice" / "tarred" / "v1" / "pkg" / "tmod.py").exists()


BAD_SPECS = [
    ({"language": "rust"}, "language"),
    ({"handler": None}, "handler"),
    ({"handler": "not a symbol"}, "handler"),
    ({"handler": "1abc"}, "handler"),
    ({"gpu_memory": "lots"}, "gpu_memory"),
    ({"gpu_memory": 0}, "gpu_memory"),
    ({"gpu_memory": "100TiB"}, "gpu_memory"),
    ({"gpu_memory": -5}, "gpu_memory"),
    ({"timeout_ms": -1}, "timeout_ms"),
    ({"timeout_ms": "5s"}, "timeout_ms"),
    ({"keep_alive_ms": 0}, "keep_alive_ms"),
    ({"max_instances": 100000}, "max_instances"),
    ({"profile": "1g 18gb"}, "profile"),
    ({"env": {"1BAD": "x"}}, "1BAD"),
    ({"env": {"GOOD": 5}}, "GOOD"),
    ({"env": {"MIG_CONTROL_FD": "9"}}, "MIG_CONTROL_FD"),
    ({"env": ["NOEQUALS"]}, "env[0]"),
    ({"env": "A=1"}, "env"),
    ({"gpu_mem": 5}, "gpu_mem"),
    ({"artifact": "!!!not base64!!!"}, "base64"),
    ({"artifact": ""}, "artifact"),
    ({"artifact": None}, "artifact"),
    ({"artifact": b64(b"just some text, not an ELF file")}, "ELF"),
    ({"name": "other"}, "name"),
    ({"filename": "../evil.so"}, "filename"),
    ({"filename": "a/b.so"}, "filename"),
    ({"python": "/usr/bin/python3"}, "python"),
]


@pytest.mark.parametrize("change,word", BAD_SPECS, ids=[w for _, w in BAD_SPECS])
def test_invalid_specs_are_400_naming_the_field(start_daemon, fixture_so, change, word):
    d = start_daemon(two_tenants())
    spec = c_spec(fixture_so)
    for k, v in change.items():
        if v is None:
            spec.pop(k, None)
        else:
            spec[k] = v
    r = d.request("PUT", "/v1/functions/f", spec)
    assert r.status == 400, r
    e = r.error()
    assert e["code"] == "invalid_function" and word in e["message"], e
    assert d.request("GET", "/v1/functions/f").status == 404
    assert d.request("GET", "/v1/health", token=None).status == 200


@pytest.mark.parametrize("spec,word", [
    ({"language": "python", "handler": "nocolon"}, "module:function"),
    ({"language": "python", "handler": "a.:f"}, "module:function"),
    ({"language": "python", "handler": "m:f", "filename": "x.txt"}, "filename"),
    ({"language": "python", "handler": "m:f", "filename": "x.tar.gz"}, "gzip"),
    ({"language": "python", "handler": "m:f", "filename": "x.zip"}, "zip"),
])
def test_invalid_python_specs(start_daemon, spec, word):
    d = start_daemon(two_tenants())
    spec = dict(spec, artifact=b64(b"def f(p):\n    return p\n"))
    r = d.request("PUT", "/v1/functions/p", spec)
    assert r.status == 400 and word in r.error()["message"], r


def test_broken_tarball_is_400(start_daemon):
    d = start_daemon(two_tenants())
    r = d.request("PUT", "/v1/functions/p", {
        "language": "python", "handler": "m:f", "filename": "p.tgz",
        "artifact": b64(b"\x1f\x8b\x08\x00garbage garbage garbage")})
    assert r.status == 400 and "unpack" in r.error()["message"], r
    assert d.request("GET", "/v1/functions/p").status == 404


@pytest.mark.parametrize("name", ["bad%20name", "%2E%2E", ".", "a" * 101, "semi;colon",
                                  "%C3%A9t%C3%A9", "%FF%FE", "new%0Aline"])
def test_invalid_function_names(start_daemon, fixture_so, name):
    d = start_daemon(two_tenants())
    r = d.request("PUT", f"/v1/functions/{name}", c_spec(fixture_so))
    assert r.status in (400, 404), r
    if r.status == 400:
        assert r.error()["code"] == "invalid_name"
    r = d.request("POST", f"/v1/functions/{name}/invoke", b"x")
    assert r.status in (400, 404) and r.error()["code"] in ("invalid_name", "no_such_route"), r
    assert d.request("GET", "/v1/functions").json()["functions"] == []


def test_name_charset_edges(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    for name in ["a", "A-b_c.d", "x" * 100, "..x", "v1.2"]:
        assert deploy(d, name, c_spec(fixture_so)).status == 201, name


@pytest.mark.parametrize("body,code", [
    (b"{not json", "malformed_json"),
    (b"", "empty_body"),
    (b"[1, 2]", "invalid_function"),
    (b"\"text\"", "malformed_json"),
    (b'{"language": "c", "language": "c"}', "malformed_json"),
    (b"\xff\xfe{}", "malformed_json"),
])
def test_malformed_bodies(start_daemon, body, code):
    d = start_daemon(two_tenants())
    r = d.request("PUT", "/v1/functions/f", body, headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    assert r.error()["code"] == code


# --- routes ------------------------------------------------------------------


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/", 404), ("GET", "/v1", 404), ("GET", "/v2/functions", 404),
    ("GET", "/v1/%FF%C3", 404), ("DELETE", "/v1/%FF", 404),
    ("GET", "/v1/functions/f/nothing", 404), ("GET", "/v1/instances/i-1/x", 404),
    ("POST", "/v1/functions", 405), ("GET", "/v1/functions/f/invoke", 405),
    ("POST", "/v1/functions/f", 405), ("PUT", "/v1/devices", 405),
    ("GET", "/v1/devices/reload", 405), ("PATCH", "/v1/functions/f", 405),
    ("GET", "/v1/instances/i-1", 405),
])
def test_unknown_routes_and_methods(start_daemon, method, path, status):
    d = start_daemon(two_tenants())
    r = d.request(method, path, body=b"" if method in ("POST", "PUT", "PATCH") else None)
    assert r.status == status, r
    assert r.error()["code"] == ("no_such_route" if status == 404 else "method_not_allowed")
    if status == 405:
        assert r.headers["Allow"]


def test_logs_route(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    assert d.request("GET", "/v1/functions/f/logs").status == 404
    deploy(d, "f", c_spec(fixture_so))
    r = d.request("GET", "/v1/functions/f/logs")
    assert r.status == 200 and r.body == b""  # nothing ran yet
    assert d.request("GET", "/v1/functions/f/logs?bytes=0").status == 400
    assert d.request("GET", "/v1/functions/f/logs?bytes=x").status == 400


@invocation
def test_logs_hold_what_the_function_printed(start_daemon):
    d = start_daemon(two_tenants())
    src = ("import sys\n"
           "def noisy(p):\n"
           "    print('to stdout:', p.decode(), flush=True)\n"
           "    print('to stderr:', p.decode(), file=sys.stderr, flush=True)\n"
           "    return b'done'\n")
    deploy(d, "noisy", py_spec(src, handler="noisy:noisy"))
    assert d.request("POST", "/v1/functions/noisy/invoke", "first").status == 200
    assert d.request("POST", "/v1/functions/noisy/invoke", "second").status == 200
    log = d.request("GET", "/v1/functions/noisy/logs").body.decode()
    for line in ("to stdout: first", "to stderr: first", "to stdout: second"):
        assert line in log, log
    tail = d.request("GET", "/v1/functions/noisy/logs?bytes=10").body
    assert len(tail) == 10 and log.endswith(tail.decode())
    # Another tenant cannot read it.
    assert d.request("GET", "/v1/functions/noisy/logs", tenant="bob").status == 404


def test_devices_flag_restricts_partitions(start_daemon):
    d = start_daemon(two_tenants(), args=("--devices", "0"))
    parts = d.request("GET", "/v1/devices").json()["partitions"]
    assert [p["present"] for p in parts] == [True]
    d.stop()
    d = start_daemon(two_tenants(), args=("--devices", "GPU-none"), name="none")
    parts = d.request("GET", "/v1/devices").json()["partitions"]
    assert [p["present"] for p in parts] == [False]
    assert "names none of the partitions" in d.logs()


def test_devices_and_reload(start_daemon):
    d = start_daemon(two_tenants())
    j = d.request("GET", "/v1/devices").json()
    assert j["driver_version"] == "host"
    (p,) = j["partitions"]
    assert p["present"] is True and p["mem_total"] > 0 and p["profile"] == "whole"
    assert p["mem_reserved"] == 0 and p["instances"] == 0
    r = d.request("POST", "/v1/devices/reload")
    assert r.status == 200 and r.json()["partitions"][0]["uuid"] == p["uuid"]
    d.p.send_signal(signal.SIGHUP)
    t0 = time.monotonic()
    while "SIGHUP" not in d.logs() and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    assert "SIGHUP" in d.logs()
    assert d.request("GET", "/v1/health", token=None).status == 200
    assert d.stop() == 0


def test_kill_unknown_instance_is_404(start_daemon):
    d = start_daemon(two_tenants())
    r = d.request("DELETE", "/v1/instances/i-424242")
    assert r.status == 404 and r.error()["code"] == "instance_not_found"
    assert d.request("GET", "/v1/instances").json() == {"instances": []}


# --- tenancy -------------------------------------------------------------------


def test_tenants_never_see_each_other(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    deploy(d, "secret", c_spec(fixture_so), tenant="alice")
    for method, path in [("GET", "/v1/functions/secret"), ("DELETE", "/v1/functions/secret"),
                         ("POST", "/v1/functions/secret/invoke"),
                         ("GET", "/v1/functions/secret/logs")]:
        r = d.request(method, path, body=b"x" if method == "POST" else None, tenant="bob")
        assert r.status == 404, (method, path, r)
    assert d.request("GET", "/v1/functions", tenant="bob").json()["functions"] == []
    # The same name is bob's own function, independent of alice's.
    assert deploy(d, "secret", c_spec(fixture_so, handler="empty"), tenant="bob").status == 201
    assert d.request("GET", "/v1/functions/secret", tenant="alice").json()["handler"] == "echo"
    assert d.request("GET", "/v1/functions/secret", tenant="bob").json()["handler"] == "empty"
    assert d.request("DELETE", "/v1/functions/secret", tenant="bob").status == 200
    assert d.request("GET", "/v1/functions/secret", tenant="alice").status == 200


# --- sizes ---------------------------------------------------------------------


def test_payload_over_max_payload_is_413_before_upload(start_daemon, fixture_so):
    d = start_daemon(two_tenants(max_payload=1024))
    deploy(d, "echo", c_spec(fixture_so))
    r = d.request("POST", "/v1/functions/echo/invoke", b"x" * 2000)
    assert r.status == 413 and r.error()["code"] == "payload_too_large", r
    assert "1024" in r.error()["message"]
    # Headers announcing 1 GiB and no body at all: the answer comes anyway.
    host = d.url[len("http://"):]
    raw = raw_exchange(d, (f"POST /v1/functions/echo/invoke HTTP/1.1\r\nHost: {host}\r\n"
                           f"Authorization: Bearer {TOKENS['alice']}\r\n"
                           "Content-Length: 1073741824\r\n\r\n").encode())
    assert status_of(raw) == 413, raw
    # Chunked, no length announced: counted, refused at the end.
    raw = raw_exchange(d, (f"POST /v1/functions/echo/invoke HTTP/1.1\r\nHost: {host}\r\n"
                           f"Authorization: Bearer {TOKENS['alice']}\r\n"
                           "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                           "800\r\n" + "y" * 2048 + "\r\n0\r\n\r\n").encode())
    assert status_of(raw) == 413, raw
    assert d.request("GET", "/v1/health", token=None).status == 200


def test_artifact_over_max_artifact_is_413(start_daemon, fixture_so):
    d = start_daemon(two_tenants(max_artifact=4096))
    r = d.request("PUT", "/v1/functions/big", c_spec(fixture_so))
    assert fixture_so.stat().st_size > 4096
    assert r.status == 413 and r.error()["code"] == "artifact_too_large", r


def test_big_bodies_on_small_routes_are_refused(start_daemon):
    """Refused from the headers, before the body is uploaded.  The client
    asks first (Expect: 100-continue, as curl does for a big body): one
    that sends 1 MiB regardless finds the connection closed under its
    writes, and its read of the 413 races the reset."""
    d = start_daemon(two_tenants())
    host = d.url[len("http://"):]
    raw = raw_exchange(d, (f"POST /v1/devices/reload HTTP/1.1\r\nHost: {host}\r\n"
                           f"Authorization: Bearer {d.token()}\r\n"
                           f"Content-Length: {1 << 20}\r\nExpect: 100-continue\r\n\r\n").encode())
    assert status_of(raw) == 413 and b"body_too_large" in raw, raw


# --- robustness ----------------------------------------------------------------


def test_garbage_never_crashes_the_daemon(start_daemon):
    d = start_daemon(two_tenants())
    host = d.url[len("http://"):]
    for junk in [b"\x00\x01\x02garbage\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"a" * 200000 + b"\r\n\r\n",
                 b"POST /v1/functions/f/invoke HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                 b"PUT /v1/functions/f HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                 + TOKENS["alice"].encode() + b"\r\nContent-Length: 10\r\n\r\n{\"a\"",
                 (f"GET /v1/functions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
                  f"{TOKENS['alice']}\r\n\r\n").encode() * 3]:
        raw_exchange(d, junk, read_timeout=1)
        assert d.request("GET", "/v1/health", token=None).status == 200
    assert d.p.poll() is None
    assert d.stop() == 0


def test_concurrent_deploys_and_reads(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    errors = []

    def worker(i):
        try:
            for k in range(5):
                tenant = "alice" if i % 2 else "bob"
                r = d.request("PUT", f"/v1/functions/f{i % 3}", c_spec(fixture_so),
                              tenant=tenant)
                assert r.status in (200, 201), r
                assert d.request("GET", "/v1/functions", tenant=tenant).status == 200
        except AssertionError as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    versions = sorted(f["version"] for f in
                      d.request("GET", "/v1/functions", tenant="alice").json()["functions"])
    assert sum(versions) == 15  # 3 workers x 5 deploys, over f0..f2
    assert d.stop() == 0


# --- persistence ---------------------------------------------------------------


def test_functions_survive_a_restart(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    deploy(d, "keep", c_spec(fixture_so, env={"K": "V"}))
    deploy(d, "keep", c_spec(fixture_so, env={"K": "V2"}))
    deploy(d, "bobs", c_spec(fixture_so), tenant="bob")
    before = d.request("GET", "/v1/functions/keep").json()
    assert d.stop() == 0
    d2 = start_daemon(two_tenants(), data_dir=d.data_dir, name="restarted")
    assert d2.request("GET", "/v1/functions/keep").json() == before
    assert [f["name"] for f in d2.request("GET", "/v1/functions", tenant="bob")
            .json()["functions"]] == ["bobs"]
    assert "2 functions loaded" in d2.logs()
    assert deploy(d2, "keep", c_spec(fixture_so)).json()["version"] == 3
    assert d2.stop() == 0


def test_restart_keeps_module_caches_private(start_daemon, fixture_so):
    """At start the daemon makes deployed code readable for the sandboxed
    functions, but not the GPU servers' module caches beside it."""
    d = start_daemon(two_tenants())
    deploy(d, "keep", c_spec(fixture_so))
    assert d.stop() == 0
    [vdir] = (d.data_dir / "functions" / "alice" / "keep").glob("v*")
    cache = vdir / "module-cache"
    cache.mkdir(mode=0o755)
    img = cache / "0123456789abcdef-5.lib"
    img.write_bytes(b"12345")
    img.chmod(0o644)
    os.chmod(vdir, 0o700)
    d2 = start_daemon(two_tenants(), data_dir=d.data_dir, name="restarted")
    assert stat.S_IMODE(vdir.stat().st_mode) == 0o755
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(img.stat().st_mode) == 0o600
    assert d2.stop() == 0


def test_a_corrupt_function_is_skipped_not_fatal(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    deploy(d, "good", c_spec(fixture_so))
    deploy(d, "bad", c_spec(fixture_so))
    assert d.stop() == 0
    (d.data_dir / "functions" / "alice" / "bad" / "function.json").write_text("{oops")
    d2 = start_daemon(two_tenants(), data_dir=d.data_dir, name="restarted")
    assert d2.request("GET", "/v1/functions/good").status == 200
    assert d2.request("GET", "/v1/functions/bad").status == 404
    assert "alice/bad is not loaded" in d2.logs()


def test_a_stored_tenant_with_too_long_a_name_is_skipped(start_daemon, fixture_so):
    """A tenant directory in the data dir that the daemon cannot have made
    (its name longer than a tenant's may be) is not loaded under its name
    cut short, which could be another tenant's: it is skipped, with the
    reason, and the rest loads."""
    d = start_daemon(two_tenants())
    deploy(d, "keep", c_spec(fixture_so))
    assert d.stop() == 0
    funcs = d.data_dir / "functions"
    shutil.copytree(funcs / "alice", funcs / ("alice" + "x" * 100))
    d2 = start_daemon(two_tenants(), data_dir=d.data_dir, name="restarted")
    assert d2.request("GET", "/v1/functions/keep").status == 200
    assert "tenant or function name is too long" in d2.logs()
    assert "registry: 1 function loaded" in d2.logs(), d2.logs()
    assert d2.stop() == 0


# --- configuration ---------------------------------------------------------------


@pytest.mark.parametrize("config,word", [
    ({"lisen": "127.0.0.1:1"}, "lisen"),
    ({"verbose": "yes"}, "verbose"),
    ({"listen": "nonsense"}, "ADDR:PORT"),
    ({"tenants": []}, "tenants"),
    ({"tenants": [{"name": "a", "token": "short"}]}, "token"),
    ({"tenants": [{"name": "a/b", "token": "x" * 20}]}, "tenant name"),
    ({"tenants": [{"name": "a", "token": "x" * 20}, {"name": "b", "token": "x" * 20}]},
     "same token"),
    ({"max_payload": "lots"}, "max_payload"),
    ({"max_payload": "1TiB"}, "max_payload"),
    ({"http_threads": -1}, "http_threads"),
    ({"segment_size": "1MiB"}, "segment_size"),
    ({"sharing": "round-robin"}, "overlap-cpu-copy"),
    ({"sharing": {"default": "sequential", "GPU-1": "fast"}}, "sharing"),
    ({"sharing": 3}, "sharing"),
    ({"sharing_max_hold_ms": -5}, "sharing_max_hold_ms"),
    ({"executor_poll_us": -1}, "executor_poll_us"),
    ({"executor_poll_us": 100001}, "executor_poll_us"),
    ({"sandbox": {"cpu_placement": "pinned"}}, "sandbox.cpu_placement"),
    ({"sandbox": {"cpu_pool": "3-1"}}, "sandbox.cpu_pool"),
    ({"sandbox": {"cpu_pool": 4}}, "sandbox.cpu_pool"),
    ({"sandbox": {"cpu_pool": "0,1000"}}, "names CPUs 1000, which this daemon may not run on"),
])
def test_bad_config_exits_2_naming_the_problem(start_daemon, config, word):
    d = start_daemon(config, wait=False)
    assert d.p.wait(10) == 2
    assert word in d.logs(), d.logs()


@pytest.mark.parametrize("args,word", [
    (("--backend", "quantum"), "quantum"),
    (("--listen", "127.0.0.1"), "ADDR:PORT"),
    (("--listen", "127.0.0.1:99999"), "ADDR:PORT"),
    (("--listen", "[::1:10"), "ADDR:PORT"),
])
def test_bad_flags_exit_2(start_daemon, args, word):
    d = start_daemon(args=args, wait=False)
    assert d.p.wait(10) == 2
    assert word in d.logs(), d.logs()


def test_sharing_models_are_logged_per_partition(start_daemon, fixture_so):
    """A node default and a per-partition override (the test double's one
    partition has UUID "" as "(default)"); the daemon says which each got."""
    d = start_daemon({"sharing": {"default": "overlap-cpu", "GPU-elsewhere": "sequential"},
                      "verbose": 1})
    deploy(d, "f", c_spec(fixture_so))
    d.request("POST", "/v1/functions/f/invoke", b"")
    assert "sharing model overlap-cpu" in d.logs(), d.logs()
    # /metrics reads the partition's arbiter: its model, one series each.
    text = d.request("GET", "/metrics").body.decode()
    assert 'model="overlap-cpu"} 1' in text, text
    assert metric(text, "mignificent_partition_gpu_turn_waiters") == 0
    assert text.count("\nmignificent_partition_gpu_turns_total{") == 1, text
    assert d.stop() == 0


def test_bad_json_config(start_daemon, tmp_path):
    cfg = tmp_path / "broken.json"
    cfg.write_text('{"listen": "127.0.0.1:0",\n "verbose": }')
    d = start_daemon(args=("--config", str(cfg)), wait=False)
    assert d.p.wait(10) == 2
    assert "line 2" in d.logs(), d.logs()


@pytest.mark.parametrize("value", ["fast", "-5", "100001"])
def test_a_gpu_server_setting_none_could_start_with_is_refused(start_daemon, value):
    """The GPU servers inherit the daemon's environment: a value of
    MIG_GPUD_PHASE_SPIN_US that would stop every one of them from starting
    stops the daemon at its start instead, saying why."""
    d = start_daemon(wait=False, env={"MIG_GPUD_PHASE_SPIN_US": value})
    assert d.p.wait(10) == 2
    assert f"MIG_GPUD_PHASE_SPIN_US={value}: want microseconds" in d.logs(), d.logs()


def test_a_gpu_server_setting_is_taken(start_daemon):
    d = start_daemon(env={"MIG_GPUD_PHASE_SPIN_US": "1000"})
    assert d.stop() == 0


def test_unknown_flag_and_help(daemon_built):
    p = subprocess.run([str(daemon_built), "--bogus"], capture_output=True, text=True)
    assert p.returncode == 2 and "--bogus" in p.stderr
    p = subprocess.run([str(daemon_built), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--listen" in p.stdout


def test_port_in_use_and_data_dir_in_use(start_daemon):
    d = start_daemon(two_tenants())
    port = d.url.rsplit(":", 1)[1]
    other = start_daemon(two_tenants(), args=("--listen", f"127.0.0.1:{port}"), name="other",
                         wait=False)
    assert other.p.wait(10) == 1
    assert "cannot listen" in other.logs() and "--listen" in other.logs()
    same = start_daemon(two_tenants(), data_dir=d.data_dir, name="same", wait=False)
    assert same.p.wait(10) == 1
    assert "another mignificentd" in same.logs()


def test_threads_pool_mode_serves_too(start_daemon, fixture_so):
    d = start_daemon(two_tenants(http_threads=4))
    deploy(d, "f", c_spec(fixture_so))
    assert d.request("GET", "/v1/functions/f").status == 200
    assert d.stop() == 0


# --- metrics -----------------------------------------------------------------------


def test_metrics_need_a_token_and_have_partitions(start_daemon):
    d = start_daemon(two_tenants())
    assert d.request("GET", "/metrics", token=None).status == 401
    r = d.request("GET", "/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.body.decode()
    assert "# TYPE mignificent_partition_memory_bytes gauge" in text
    assert 'mignificent_partition_present{partition="GPU-' in text
    assert "# TYPE mignificent_partition_gpu_turns_total counter" in text
    assert "# TYPE mignificent_partition_gpu_held_seconds_total counter" in text
    assert 'model="time-sharing"} 1' in text, text
    d2 = start_daemon(two_tenants(metrics_public=True), name="public")
    assert d2.request("GET", "/metrics", token=None).status == 200


def server_pool(d):
    """The first partition's "server_pool" in GET /v1/devices."""
    r = d.request("GET", "/v1/devices")
    assert r.status == 200, r
    return json.loads(r.body)["partitions"][0]["server_pool"]


def mig_devices(d):
    """`mig devices` against @d: what it prints."""
    mig = BUILD / "bin" / "mig"
    if not mig.exists():
        pytest.skip("build/bin/mig is not built")
    env = dict(os.environ, MIG_SERVER=d.url, MIG_TOKEN=TOKENS["alice"])
    p = subprocess.run([str(mig), "devices"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def metric(text, name):
    """The value of the one series called @name in a /metrics @text."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name + "{")]
    assert len(values) == 1, (name, text)
    return values[0]


@invocation
def test_the_server_pool_is_shown_ready(start_daemon):
    d = start_daemon(two_tenants())
    deadline = time.monotonic() + 20
    while server_pool(d)["ready"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server_pool(d) == {"ready": 1, "starting": 0, "failures": 0}
    out = mig_devices(d)
    assert "SERVERS" in out and "1 ready" in out and "fail" not in out, out
    assert all(line == line.rstrip() for line in out.splitlines()), out
    text = d.request("GET", "/metrics").body.decode()
    assert "# TYPE mignificent_partition_preinitialized_servers gauge" in text
    assert metric(text, "mignificent_partition_preinitialized_servers") == 1
    assert metric(text, "mignificent_partition_preinitialized_servers_starting") == 0
    assert metric(text, "mignificent_partition_preinitialized_server_failures_total") == 0


@invocation
def test_a_failing_server_pool_is_counted_explained_and_retried_later(start_daemon,
                                                                      fixture_so):
    # Every GPU server this daemon starts cannot open its (test double's)
    # device, and says why on its ready line.
    d = start_daemon(two_tenants(), env={"MIG_HOST_MEM_MIB": "lots"})
    deadline = time.monotonic() + 20
    while server_pool(d)["failures"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    pool = server_pool(d)
    assert pool["failures"] >= 1 and pool["ready"] == 0, pool
    assert "MIG_HOST_MEM_MIB=lots is not a size in MiB" in pool["error"], pool
    # The next try comes 1 s later, the one after it 2 s later: not a loop.
    first = time.monotonic()
    while server_pool(d)["failures"] < 2 and time.monotonic() < first + 20:
        time.sleep(0.05)
    second = time.monotonic()
    # (seen from here, the first failure may have come a little before
    # the first look)
    assert server_pool(d)["failures"] == 2 and second - first >= 0.5, second - first
    time.sleep(1.0)
    assert server_pool(d)["failures"] == 2, server_pool(d)
    text = d.request("GET", "/metrics").body.decode()
    assert metric(text, "mignificent_partition_preinitialized_servers") == 0
    assert metric(text, "mignificent_partition_preinitialized_server_failures_total") >= 2
    # A cold start cannot take one either, and says so.
    deploy(d, "echo", c_spec(fixture_so))
    r = d.request("POST", "/v1/functions/echo/invoke", b"x")
    assert r.status == 503, r
    error = json.loads(r.body)["error"]
    assert error["code"] == "gpu_unavailable", error
    assert "MIG_HOST_MEM_MIB=lots is not a size in MiB" in error["message"], error
    assert "a pre-initialized GPU server on " in d.logs()
    out = mig_devices(d)
    assert "failing (" in out, out
    assert ("its pre-initialized GPU servers fail: host backend: MIG_HOST_MEM_MIB=lots"
            in out), out


# --- invocations (daemon/instances.c, real executors and GPU servers) ----------------


@invocation
def test_invoke_echo_roundtrip_and_timing_headers(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    deploy(d, "echo", c_spec(fixture_so))
    payload = bytes(range(256)) * 3
    r = d.request("POST", "/v1/functions/echo/invoke", payload,
                  headers={"Content-Type": "application/x-test"})
    assert r.status == 200, r
    assert r.body == payload
    assert r.headers["Content-Type"] == "application/x-echo"
    for h in ("X-Mig-Instance", "X-Mig-Queued-Us", "X-Mig-Cold-Start-Us", "X-Mig-Run-Us",
              "X-Mig-Swap-In-Us", "X-Mig-Cold"):
        assert h in r.headers, h
    assert r.headers["X-Mig-Cold"] == "1" and int(r.headers["X-Mig-Cold-Start-Us"]) > 0
    first = r.headers["X-Mig-Instance"]
    r = d.request("POST", "/v1/functions/echo/invoke", b"")
    assert r.status == 200 and r.body == b""
    assert r.headers["X-Mig-Cold"] == "0" and r.headers["X-Mig-Instance"] == first
    assert int(r.headers["X-Mig-Cold-Start-Us"]) == 0
    assert d.stop() == 0


@invocation
def test_invoke_python_function(start_daemon):
    d = start_daemon(two_tenants())
    deploy(d, "py", py_spec(PY_SOURCE, handler="fixture_py:ok"))
    r = d.request("POST", "/v1/functions/py/invoke", "world")
    assert r.status == 200, (r, d.logs()[-3000:])
    j = r.json()
    assert j["got"] == "world" and j["calls"] == 1
    assert r.headers["Content-Type"] == "application/json"
    r = d.request("POST", "/v1/functions/py/invoke", "x")
    assert r.json()["calls"] == 2


@invocation
def test_invoke_python_package(start_daemon):
    d = start_daemon(two_tenants())
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:gz") as t:
        for name, data in [("pkgmod/__init__.py", b""),
                           ("pkgmod/main.py", b"def handler(p):\n    return b'tar:' + p\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    deploy(d, "tarred", {"language": "python", "handler": "pkgmod.main:handler",
                         "filename": "pkg.tar.gz", "artifact": b64(tbuf.getvalue())})
    r = d.request("POST", "/v1/functions/tarred/invoke", "hi")
    assert r.status == 200 and r.body == b"tar:hi", (r, d.logs()[-3000:])


@invocation
def test_function_errors_are_json(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    deploy(d, "fail", c_spec(fixture_so, handler="fail"))
    r = d.request("POST", "/v1/functions/fail/invoke", b"")
    assert r.status == 500, r
    e = r.error()
    assert e["code"] == "function_error" and "on purpose" in e["message"]
    assert r.headers["X-Mig-Function-Status"] == "3"
    deploy(d, "crash", c_spec(fixture_so, handler="crash"))
    r = d.request("POST", "/v1/functions/crash/invoke", b"")
    assert r.status >= 500 and r.error()["message"], r
    deploy(d, "missing", c_spec(fixture_so, handler="no_such_symbol"))
    r = d.request("POST", "/v1/functions/missing/invoke", b"")
    assert r.status >= 400 and "no_such_symbol" in r.error()["message"], r
    assert d.request("GET", "/v1/health", token=None).status == 200
    assert d.stop() == 0


@invocation
def test_timeout_is_504(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    deploy(d, "hang", c_spec(fixture_so, handler="hang", timeout_ms=300))
    r = d.request("POST", "/v1/functions/hang/invoke", b"")
    assert r.status == 504 and r.error()["code"] == "timeout", r


@invocation
def test_update_retires_old_instances(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    deploy(d, "f", c_spec(fixture_so, handler="pid"))
    r1 = d.request("POST", "/v1/functions/f/invoke", b"")
    assert r1.status == 200 and r1.headers["X-Mig-Version"] == "1"
    deploy(d, "f", c_spec(fixture_so, handler="pid"))
    r2 = d.request("POST", "/v1/functions/f/invoke", b"")
    assert r2.status == 200 and r2.headers["X-Mig-Version"] == "2"
    assert r2.headers["X-Mig-Instance"] != r1.headers["X-Mig-Instance"]
    # (The pid in the body is the same: every sandboxed executor is pid 2
    # of its own pid namespace.)
    assert r2.headers["X-Mig-Cold"] == "1"


@invocation
def test_swap_endpoints(start_daemon, fixture_so):
    """POST /v1/instances/ID/swap-out and swap-in: per tenant, idle
    instances only; the next invocation swaps in and says how long it took."""
    d = start_daemon(two_tenants())
    deploy(d, "f", c_spec(fixture_so))
    inst = d.request("POST", "/v1/functions/f/invoke", b"x").headers["X-Mig-Instance"]
    assert d.request("POST", f"/v1/instances/{inst}/swap-out", tenant="bob").status == 404
    r = d.request("POST", f"/v1/instances/{inst}/swap-out")
    assert r.status == 200 and r.json()["swapped"] == "out", r
    assert d.request("GET", "/v1/instances").json()["instances"][0]["swapped"] is True
    assert d.request("GET", f"/v1/instances/{inst}/swap-out").status == 405
    r = d.request("POST", "/v1/functions/f/invoke", b"y")
    assert r.status == 200 and r.headers["X-Mig-Instance"] == inst
    assert int(r.headers["X-Mig-Swap-In-Us"]) > 0, r.headers
    assert d.request("GET", "/v1/instances").json()["instances"][0]["swapped"] is False
    r = d.request("POST", f"/v1/instances/{inst}/swap-in")
    assert r.status == 200 and r.json()["bytes"] == 0, r
    assert d.request("POST", "/v1/instances/i-424242/swap-in").status == 404
    text = d.request("GET", "/metrics").body.decode()
    for line in ('mignificent_swaps_total{direction="out"} 1',
                 'mignificent_swaps_total{direction="in"} 1',
                 "mignificent_lukewarm_instances 0", "mignificent_swap_failures_total 0",
                 'mignificent_lukewarm_starts_total{tenant="alice",function="f"} 1',
                 'mignificent_swap_in_seconds_count{tenant="alice",function="f"} 1'):
        assert line in text, (line, text)


@invocation
def test_instances_list_and_kill_per_tenant(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    deploy(d, "f", c_spec(fixture_so))
    inst = d.request("POST", "/v1/functions/f/invoke", b"x").headers["X-Mig-Instance"]
    lst = d.request("GET", "/v1/instances").json()["instances"]
    assert [i["id"] for i in lst] == [inst] and lst[0]["function"] == "f"
    assert d.request("GET", "/v1/instances", tenant="bob").json()["instances"] == []
    assert d.request("DELETE", f"/v1/instances/{inst}", tenant="bob").status == 404
    r = d.request("DELETE", f"/v1/instances/{inst}")
    assert r.status == 200 and r.json() == {"killed": inst}
    t0 = time.monotonic()
    while d.request("GET", "/v1/instances").json()["instances"] and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert d.request("GET", "/v1/instances").json()["instances"] == []
    r = d.request("POST", "/v1/functions/f/invoke", b"y")
    assert r.status == 200 and r.headers["X-Mig-Instance"] != inst


@invocation
def test_metrics_count_invocations_per_tenant(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    deploy(d, "f", c_spec(fixture_so))
    deploy(d, "fail", c_spec(fixture_so, handler="fail"))
    deploy(d, "g", c_spec(fixture_so), tenant="bob")
    for _ in range(3):
        assert d.request("POST", "/v1/functions/f/invoke", b"x").status == 200
    assert d.request("POST", "/v1/functions/fail/invoke", b"x").status == 500
    assert d.request("POST", "/v1/functions/g/invoke", b"x", tenant="bob").status == 200
    text = d.request("GET", "/metrics").body.decode()
    lab = 'tenant="alice",function="f"'
    assert f'mignificent_invocations_total{{{lab},status="200"}} 3' in text
    assert f'mignificent_cold_starts_total{{{lab}}} 1' in text
    assert f'mignificent_warm_starts_total{{{lab}}} 2' in text
    assert ('mignificent_invocations_total{tenant="alice",function="fail",status="500"} 1'
            in text)
    assert f'mignificent_invocation_duration_seconds_count{{{lab}}} 3' in text
    assert f'mignificent_invocation_duration_seconds_bucket{{{lab},le="+Inf"}} 3' in text
    assert f'mignificent_cold_start_seconds_count{{{lab}}} 1' in text
    assert 'tenant="bob"' not in text  # alice's token: alice's series only
    assert "mignificent_partition_instances{" in text
    bob = d.request("GET", "/metrics", tenant="bob").body.decode()
    assert 'tenant="bob",function="g"' in bob and 'tenant="alice"' not in bob


@invocation
def test_sigterm_drains_in_flight_invocations(start_daemon, fixture_so):
    d = start_daemon(two_tenants())
    deploy(d, "slow", c_spec(fixture_so, handler="sleep_ms"))
    assert d.request("POST", "/v1/functions/slow/invoke", b"1").status == 200  # warm
    pids = [(i["exec_pid"], i["gpud_pid"]) for i in
            d.request("GET", "/v1/instances").json()["instances"]]
    result = {}

    def slow():
        result["r"] = d.request("POST", "/v1/functions/slow/invoke", b"1500")

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.4)
    d.p.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    with pytest.raises(OSError):  # no longer accepting
        d.request("GET", "/v1/health", token=None, timeout=2)
    t.join(30)
    assert result["r"].status == 200 and result["r"].body == b"slept", result["r"]
    assert d.stop(sig=None) == 0
    assert "stopped" in d.logs()
    for pid in (p for pair in pids for p in pair):
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z", pid


@invocation
def test_client_disconnecting_mid_invocation(start_daemon, fixture_so):
    """A client that goes away while its invocation runs: the invocation
    finishes, its answer is dropped, the instance serves the next caller."""
    d = start_daemon(two_tenants())
    deploy(d, "slow", c_spec(fixture_so, handler="sleep_ms", max_instances=1))
    assert d.request("POST", "/v1/functions/slow/invoke", b"1").status == 200
    first = d.request("GET", "/v1/instances").json()["instances"][0]["id"]
    host, port = d.url[len("http://"):].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(b"POST /v1/functions/slow/invoke HTTP/1.1\r\nHost: x\r\n"
              b"Authorization: Bearer " + TOKENS["alice"].encode() +
              b"\r\nContent-Length: 3\r\n\r\n400")
    time.sleep(0.1)
    s.close()  # gone before the 400 ms sleep ends
    r = d.request("POST", "/v1/functions/slow/invoke", b"1")
    assert r.status == 200 and r.body == b"slept", r
    assert r.headers["X-Mig-Instance"] == first  # the same instance, not broken
    assert d.request("GET", "/v1/health", token=None).status == 200
    assert d.stop() == 0


@invocation
def test_the_mig_cli_speaks_this_api(start_daemon, fixture_so):
    """cli/commands.c's deploy and invoke against the daemon (the contract)."""
    mig = BUILD / "bin" / "mig"
    if not mig.exists():
        pytest.skip("build/bin/mig is not built")
    d = start_daemon(two_tenants())
    env = dict(os.environ, MIG_SERVER=d.url, MIG_TOKEN=TOKENS["alice"])
    p = subprocess.run([str(mig), "deploy", "echo", "--language", "c", "--artifact",
                        str(fixture_so), "--handler", "echo", "--gpu-memory", "128MiB",
                        "--env", "A=1"], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and "version 1" in p.stdout, p.stderr
    p = subprocess.run([str(mig), "invoke", "echo", "--data", "via cli"], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "via cli", p.stderr
    p = subprocess.run([str(mig), "ls"], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and "echo" in p.stdout, p.stderr
    p = subprocess.run([str(mig), "invoke", "nope"], env=env, capture_output=True, text=True)
    assert p.returncode != 0 and "nope" in p.stderr
    inst = d.request("GET", "/v1/instances").json()["instances"][0]["id"]
    for cmd, word in (("swap-out", "swapped out"), ("swap-in", "swapped in")):
        p = subprocess.run([str(mig), cmd, inst], env=env, capture_output=True, text=True)
        assert p.returncode == 0 and p.stdout.startswith(f"{word} {inst}: "), (p.stdout,
                                                                              p.stderr)
    p = subprocess.run([str(mig), "swap-out", "i-nope"], env=env, capture_output=True,
                       text=True)
    assert p.returncode != 0 and "i-nope" in p.stderr, p.stderr


def test_no_gpu_starts_and_says_why(start_daemon, fixture_so):
    """The cuda backend where NVML cannot be loaded: the API works, invocations say why."""
    d = start_daemon(two_tenants(), args=("--backend", "cuda", "--nvml",
                                          "/nonexistent/libnvidia-ml.so.1"))
    assert "no GPU partition" in d.logs()
    assert d.request("GET", "/v1/health", token=None).json()["partitions"] == 0
    j = d.request("GET", "/v1/devices").json()
    assert j["partitions"] == [] and j["error"]
    r = d.request("POST", "/v1/devices/reload")
    assert r.status == 503 and r.error()["code"] == "no_gpu", r
    deploy(d, "f", c_spec(fixture_so))
    r = d.request("POST", "/v1/functions/f/invoke", b"x")
    assert r.status == 503 and r.error()["code"] == "no_gpu", r
    assert d.stop() == 0

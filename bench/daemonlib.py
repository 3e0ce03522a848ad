"""daemonlib.py - a mignificentd for a benchmark: started on a port of its
own choosing with a given configuration, one kept-alive HTTP connection per
caller, stopped cleanly; and the benchmarks' percentile.  Standard library
only."""
import base64
import http.client
import json
import os
import re
import signal
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "bench-token-0123456789abcdef"


def percentile(values, q):
    """The @q quantile (0..1) of @values, the nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def tree_cpu_s(pid):
    """The CPU seconds (user and system) that process @pid and its
    descendants used, those of exited descendants included once their
    parent in the tree reaped them, as /proc says (0 for processes gone).
    Differences over an interval are what the tree spent in it."""
    tick, total, todo, seen = os.sysconf("SC_CLK_TCK"), 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return total / tick


START_TIMEOUT = 30


class Daemon:
    """One mignificentd of @build with @config (a dict; the bench tenant is
    added), its files under @workdir/@name; @env: variables added to our
    environment for it (and so for its GPU servers)."""

    def __init__(self, build, backend, name, workdir, config=None, env=None):
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        cfg = os.path.join(self.dir, "config.json")
        with open(cfg, "w") as f:
            json.dump({"tenants": [{"name": "bench", "token": TOKEN}], **(config or {})}, f)
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(
            [os.path.join(build, "bin", "mignificentd"), "--config", cfg,
             "--data-dir", os.path.join(self.dir, "data"), "--backend", backend,
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=self.log, cwd=ROOT,
            env={**os.environ, **env} if env else None)
        self.host, self.port = self._wait_listening()
        self.conn = self.connect()

    def _wait_listening(self):
        t0 = time.monotonic()
        while time.monotonic() - t0 < START_TIMEOUT:
            m = re.search(r"listening on http://([0-9.]+):(\d+)", self.logs())
            if m:
                return m.group(1), int(m.group(2))
            if self.p.poll() is not None:
                raise RuntimeError(f"the {self.name} daemon exited with {self.p.returncode}:\n"
                                   f"{self.logs()[-3000:]}")
            time.sleep(0.02)
        raise RuntimeError(f"the {self.name} daemon did not listen within {START_TIMEOUT} s")

    def connect(self, timeout=600):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def logs(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, conn=None):
        """(status, headers, body) on @conn (default: ours); one retry on a
        connection the daemon closed."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            c = conn or self.conn
            try:
                c.request(method, path, body=body, headers=headers)
                r = c.getresponse()
                return r.status, r.headers, r.read()
            except (http.client.HTTPException, ConnectionError):
                c.close()
                if attempt:
                    raise

    def deploy(self, name, spec, max_instances):
        """PUT function @name: @spec's fields (its "artifact" a path, read and
        sent; a "body" key is the caller's and not sent), kept alive an hour."""
        body = {k: v for k, v in spec.items() if k not in ("artifact", "body")}
        with open(spec["artifact"], "rb") as f:
            body.update(artifact=base64.b64encode(f.read()).decode(),
                        artifact_name=os.path.basename(spec["artifact"]),
                        max_instances=max_instances, keep_alive_ms=3600000)
        status, _, out = self.request("PUT", f"/v1/functions/{name}", body)
        if status not in (200, 201):
            raise RuntimeError(f"deploying {name}: HTTP {status} {out[:300]!r}")

    def gpu_name(self):
        """The partitions' GPU names and the driver version, for a header."""
        _, _, body = self.request("GET", "/v1/devices")
        devs = json.loads(body)
        names = sorted({p.get("gpu_name", "?") for p in devs.get("partitions", [])})
        return f"{', '.join(names) or '-'}, driver {devs.get('driver_version', '?')}"

    def cpu_s(self):
        """CPU seconds used so far by the daemon and everything it runs (the
        instances' executors and sandboxes, the GPU servers)."""
        return tree_cpu_s(self.p.pid)

    def metric(self, name):
        """The sum of metric @name's series in GET /metrics (0.0 if none)."""
        status, _, body = self.request("GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"{self.name}: GET /metrics: HTTP {status}")
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill_instances(self):
        """Kill every instance and wait until none is left."""
        _, _, body = self.request("GET", "/v1/instances")
        for i in json.loads(body)["instances"]:
            self.request("DELETE", f"/v1/instances/{i['id']}")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            _, _, body = self.request("GET", "/v1/instances")
            if not json.loads(body)["instances"]:
                return
            time.sleep(0.01)
        raise RuntimeError(f"{self.name}: instances still there 60 s after the kill")

    def stop(self):
        self.conn.close()
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()

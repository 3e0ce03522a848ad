"""The example functions of examples/rodinia through a real daemon on the
host test double: BFS and HotSpot deploy, run their kernels (the host
implementations in librodinia_kernels.so) and check themselves against
their CPU reference ("ok").  On the GPU the same functions run their CUDA
kernels (tests/gpu, bench/)."""
import base64
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from migtest import BUILD  # noqa: E402

EXAMPLES = BUILD / "examples"
invocation = pytest.mark.invocation


def _deploy(d, name, so, handler, env):
    spec = {"language": "c", "handler": handler,
            "artifact": base64.b64encode(so.read_bytes()).decode(),
            "env": dict(env, MIG_HOST_KERNELS=str(EXAMPLES / "librodinia_kernels.so"))}
    r = d.request("PUT", f"/v1/functions/{name}", spec)
    assert r.status in (200, 201), r


@pytest.fixture
def rodinia():
    libs = [EXAMPLES / n for n in ("libbfs.so", "libhotspot.so", "librodinia_kernels.so")]
    missing = [str(p) for p in libs if not p.exists()]
    if missing:
        pytest.fail("not built (ninja -C build): " + ", ".join(missing))
    return libs


@invocation
@pytest.mark.parametrize("input_mode", ["file", "resident"])
def test_bfs_levels_match_the_cpu(start_daemon, rodinia, input_mode):
    """Each request reads the graph from its text (file), or it stays on the
    GPU (resident): the same levels."""
    d = start_daemon()
    _deploy(d, "bfs", rodinia[0], "bfs", {"BFS_NODES": "20000", "BFS_INPUT": input_mode})
    answers = []
    for _ in range(2):  # cold, then warm on the same graph
        r = d.request("POST", "/v1/functions/bfs/invoke", b"")
        assert r.status == 200, r
        answers.append(json.loads(r.body))
    a = answers[0]
    assert a["ok"] is True and a["nodes"] == 20000 and a["levels"] > 3, a
    assert a["reached"] > 19000, a  # ~6 random edges a node: nearly all reachable
    assert answers[1] == a


@invocation
@pytest.mark.parametrize("input_mode", ["file", "resident"])
def test_hotspot_matches_the_cpu(start_daemon, rodinia, input_mode):
    d = start_daemon()
    _deploy(d, "hotspot", rodinia[1], "hotspot", {"HOTSPOT_SIZE": "64",
                                                   "HOTSPOT_INPUT": input_mode})
    r = d.request("POST", "/v1/functions/hotspot/invoke", b"20")
    assert r.status == 200, r
    a = json.loads(r.body)
    assert a["ok"] is True and a["size"] == 64 and a["steps"] == 20, a
    assert 300 < a["mean"] < 400, a
    r = d.request("POST", "/v1/functions/hotspot/invoke", b"not a number")
    assert r.status == 500 and b"number of steps" in r.body, r

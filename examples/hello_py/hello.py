"""An example mignificent function in Python.

Deploy this file with the handler "hello:handler".  The request body is a
name (empty: "world"); the answer is JSON.  Code at module level runs once
per instance (load models there); ``handler`` runs per invocation.
"""
import os
import time

STARTED = time.time()


def handler(payload: bytes):
    name = payload.decode("utf-8", "replace").strip() or "world"
    return {"hello": name, "pid": os.getpid(),
            "instance_age_s": round(time.time() - STARTED, 3)}

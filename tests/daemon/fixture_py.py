"""Python functions for tests/daemon/test_instances.py."""
import os

CALLS = 0


def ok(payload: bytes):
    global CALLS
    CALLS += 1
    return {"got": payload.decode(), "pid": os.getpid(), "calls": CALLS}


def text(payload: bytes):
    return "hello " + payload.decode()


def raw(payload: bytes):
    return payload[::-1]


def boom(payload: bytes):
    raise ValueError("bad input: " + payload.decode())


def bad_return(payload: bytes):
    return 42


NOT_A_FUNCTION = 1

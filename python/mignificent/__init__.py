"""mignificent: the Python side of a mignificent function.

A Python function is a module with a handler ``handler(payload: bytes)``
returning ``bytes``, ``str`` or a JSON-serializable ``dict``/``list``.  The
node daemon runs it with ``python -m mignificent.executor`` (see
``executor.py``); nothing here needs to be imported by the function itself.
"""

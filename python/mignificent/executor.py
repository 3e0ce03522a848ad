"""The executor of a Python function: ``python -m mignificent.executor``.

mignificentd starts it with

  MIG_CONTROL_FD  its end of the control channel (taken by libmig_exec)
  MIG_EXEC_LIB    the path of libmig_exec.so, which speaks the channel's frames
  MIG_HANDLER     "module:function"
  MIG_ARTIFACT    the deployed code: a .py file, a directory or a .zip

and the shim first on LD_LIBRARY_PATH, so CUDA used by the function (CuPy,
PyTorch, ctypes) goes through the instance's GPU server.  We import the
module, say READY, then call ``function(payload: bytes)`` once per
invocation.  It returns bytes, str (sent as UTF-8 text) or a dict/list (sent
as JSON).  An exception becomes an error result naming the exception (the
last line of its traceback; the whole traceback goes to the log) and the
instance stays usable, unless the exception left the GPU context dead.

The library is bound with ctypes, so there is nothing to compile; ctypes
releases the GIL while we wait for the next invocation.
"""
import ctypes
import importlib
import importlib.util
import json
import os
import sys
import traceback

# enum mig_ctl_fault (ipc/control.h)
FAULT_INTERNAL = 0
FAULT_ARTIFACT = 1
FAULT_HANDLER = 2
FAULT_INIT = 3
FAULT_EXCEPTION = 4
FAULT_RESULT = 5
FAULT_GPU_OOM = 8
FAULT_GPU = 6
FAULT_GPU_GONE = 7


def _bind(path):
    lib = ctypes.CDLL(path)
    c = ctypes
    sigs = {
        "mig_exec_open": ([], c.c_int),
        "mig_exec_ready": ([], c.c_int),
        "mig_exec_next": ([c.POINTER(c.c_uint64), c.POINTER(c.c_void_p),
                           c.POINTER(c.c_uint64), c.c_char_p], c.c_int),
        "mig_exec_result": ([c.c_uint64, c.c_int, c.c_char_p, c.c_uint64,
                             c.c_char_p], c.c_int),
        "mig_exec_error": ([c.c_uint64, c.c_int, c.c_char_p], c.c_int),
        "mig_exec_fail": ([c.c_int, c.c_char_p], c.c_int),
        "mig_exec_gpu_check": ([c.c_char_p, c.c_size_t], c.c_int),
        "mig_exec_oom_count": ([], c.c_ulong),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    return lib


def _last_line(exc):
    """The last line of the exception's traceback: "KeyError: 'x'"."""
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def _import(artifact, module):
    """Import @module from the deployed code at @artifact."""
    if artifact and os.path.isfile(artifact) and artifact.endswith(".py"):
        # The stored copy's file name need not be the module's name.
        name = module or os.path.splitext(os.path.basename(artifact))[0]
        sys.path.insert(0, os.path.dirname(os.path.abspath(artifact)))
        spec = importlib.util.spec_from_file_location(name, artifact)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod
    if artifact:
        sys.path.insert(0, artifact)  # a directory or a zip archive
    return importlib.import_module(module)


def _encode(result):
    """The handler's return value as (body, content type)."""
    if result is None:
        return b"", "application/octet-stream"
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), "application/octet-stream"
    if isinstance(result, str):
        return result.encode("utf-8"), "text/plain; charset=utf-8"
    if isinstance(result, (dict, list)):
        return json.dumps(result).encode("utf-8"), "application/json"
    raise TypeError(f"the handler returned {type(result).__name__}; "
                    "return bytes, str or a dict")


def _gpu_fault(lib):
    """(fault, message) when the GPU context is lost, else (0, "")."""
    buf = ctypes.create_string_buffer(512)
    fault = lib.mig_exec_gpu_check(buf, len(buf))
    return fault, buf.value.decode("utf-8", "replace")


def _load(lib):
    """The handler, or None after telling the daemon why not."""
    spec = os.environ.get("MIG_HANDLER", "")
    artifact = os.environ.get("MIG_ARTIFACT", "")
    module, _, func = spec.partition(":")
    if not func:
        func, module = module, ""
    if not func or (not module and not artifact):
        lib.mig_exec_fail(FAULT_HANDLER, (
            f'handler "{spec}" is not "module:function": deploy a Python '
            'function with its handler spelled that way').encode())
        return None
    if artifact and not os.path.exists(artifact):
        lib.mig_exec_fail(FAULT_ARTIFACT, (
            f"the function's code {artifact} is missing: deploy it again").encode())
        return None
    try:
        mod = _import(artifact, module)
    except (ImportError, SyntaxError) as e:
        traceback.print_exc()
        lib.mig_exec_fail(FAULT_ARTIFACT, (
            f'cannot import module "{module}": {_last_line(e)}').encode())
        return None
    except BaseException as e:  # noqa: B902 - the import ran user code
        traceback.print_exc()
        lib.mig_exec_fail(FAULT_INIT, (
            f'importing module "{module}" raised {_last_line(e)}').encode())
        return None
    handler = getattr(mod, func, None)
    if not callable(handler):
        lib.mig_exec_fail(FAULT_HANDLER, (
            f'module "{mod.__name__}" has no function "{func}": deploy with '
            'the name of a function the module defines').encode())
        return None
    return handler


def _serve(lib, handler):
    inv = ctypes.c_uint64()
    data = ctypes.c_void_p()
    length = ctypes.c_uint64()
    ctype = ctypes.create_string_buffer(64)
    while True:
        r = lib.mig_exec_next(ctypes.byref(inv), ctypes.byref(data),
                              ctypes.byref(length), ctype)
        if r == 0:
            return 0
        if r < 0:
            print(f"mignificent.executor: control channel error {r}", file=sys.stderr)
            return 1
        payload = ctypes.string_at(data, length.value) if length.value else b""
        oom = lib.mig_exec_oom_count()
        try:
            result = handler(payload)
        except BaseException as e:  # noqa: B902 - report every failure
            traceback.print_exc()
            fault, msg = _gpu_fault(lib)
            if fault:
                lib.mig_exec_fail(fault, msg.encode())
                return 1
            if lib.mig_exec_oom_count() != oom:
                lib.mig_exec_error(inv.value, FAULT_GPU_OOM, (
                    "raised after the GPU ran out of memory: " +
                    _last_line(e)).encode())
                continue
            lib.mig_exec_error(inv.value, FAULT_EXCEPTION, _last_line(e).encode())
            continue
        try:
            body, ct = _encode(result)
        except (TypeError, ValueError) as e:
            lib.mig_exec_error(inv.value, FAULT_RESULT, _last_line(e).encode())
            continue
        if lib.mig_exec_result(inv.value, 0, body, len(body), ct.encode()) < 0:
            return 1


def main():
    path = os.environ.get("MIG_EXEC_LIB", "")
    if not path:
        print("mignificent.executor: MIG_EXEC_LIB is not set; the executor is "
              "started by mignificentd", file=sys.stderr)
        return 2
    lib = _bind(path)
    if lib.mig_exec_open() < 0:
        print("mignificent.executor: no control channel (MIG_CONTROL_FD); the "
              "executor is started by mignificentd", file=sys.stderr)
        return 2
    handler = _load(lib)
    if handler is None:
        return 1
    if lib.mig_exec_ready() < 0:
        return 1
    return _serve(lib, handler)


if __name__ == "__main__":
    sys.exit(main())

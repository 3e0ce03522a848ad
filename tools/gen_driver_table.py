#!/usr/bin/env python3
"""gen_driver_table.py - generate the shim's driver entry-point tables.

The shim (our libcuda.so.1) must export every symbol the real driver
exports, and its cuGetProcAddress must map (base name, cudaVersion, flags)
to the same variant the real driver returns.  Both facts come from the
CUDA toolkit:

  * lib64/stubs/libcuda.so lists every exported symbol (kept, so that a
    build does not need the toolkit's stub, in shim/generated/
    libcuda-exports.txt; --regen-exports rewrites it from the stub);
  * cudaTypedefs.h (and cudaProfilerTypedefs.h) name one typedef per ABI
    version of each entry point: PFN_<base>_v<version>[_ptds|_ptsz].

The i-th distinct plain version of <base> is the symbol <base> for i == 0
and <base>_v<i+1> otherwise; a _ptds/_ptsz typedef at version V is the
plain symbol chosen at V with that suffix.  Every symbol so derived must
be exported, and every export must be reached, or this script fails.

Writes, under shim/generated/:
  driver_entry_points.inc  ENTRY(base, min_version, PLAIN|PTDS|PTSZ, symbol)
  unsupported_stubs.c      a weak "not supported" definition per export
  error_table.inc          ERR(enumerator, value, "description")

Usage: tools/gen_driver_table.py [--cuda-home DIR] [--regen-exports] [--check]
       tools/gen_driver_table.py --check-lib build/lib/shim/libcuda.so.1
Python 3 standard library only.
"""

import argparse
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN_DIR = os.path.join(REPO, "shim", "generated")
EXPORTS = os.path.join(GEN_DIR, "libcuda-exports.txt")
REGEN = "tools/gen_driver_table.py"

TYPEDEF_HEADERS = ("cudaTypedefs.h", "cudaProfilerTypedefs.h")

# cuda.h's "#define <name> <symbol>" choose what a program compiled against
# the header calls; cuGetProcAddress instead follows the PFN typedefs.  Where
# the two legitimately differ the difference is listed here (anything else
# is reported as a warning: look at it when the toolkit changes).
HEADER_ALIASES = {
    # The 3-argument API is a different function; the name keeps its
    # 5-argument ABI (cuGraphInstantiate_v2) in the proc-address table.
    "cuGraphInstantiate": "cuGraphInstantiateWithFlags",
    # cuda.h keeps the 2-argument API under the plain name and publishes
    # the 12.5 ABI as its own name, cuStreamGetCtx_v2; by name and
    # version (PFN_cuStreamGetCtx_v12050) the proc-address answer at
    # >= 12050 is cuStreamGetCtx_v2 (and _v2_ptsz).
    "cuStreamGetCtx": "cuStreamGetCtx",
}

# Short descriptions for cuGetErrorString, in our words.  Every enumerator
# of CUresult in cuda.h must have one (the script fails otherwise).
ERROR_STRINGS = {
    "CUDA_SUCCESS": "no error",
    "CUDA_ERROR_INVALID_VALUE": "invalid argument",
    "CUDA_ERROR_OUT_OF_MEMORY": "out of memory",
    "CUDA_ERROR_NOT_INITIALIZED": "initialization error",
    "CUDA_ERROR_DEINITIALIZED": "driver shutting down",
    "CUDA_ERROR_PROFILER_DISABLED": "profiler disabled: an external profiling tool is in use",
    "CUDA_ERROR_PROFILER_NOT_INITIALIZED": "profiler not initialized",
    "CUDA_ERROR_PROFILER_ALREADY_STARTED": "profiler already started",
    "CUDA_ERROR_PROFILER_ALREADY_STOPPED": "profiler already stopped",
    "CUDA_ERROR_STUB_LIBRARY": "CUDA driver is a stub library",
    "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER": "call requires a newer CUDA driver",
    "CUDA_ERROR_DEVICE_UNAVAILABLE": "CUDA device busy or unavailable",
    "CUDA_ERROR_NO_DEVICE": "no CUDA-capable device is detected",
    "CUDA_ERROR_INVALID_DEVICE": "invalid device ordinal",
    "CUDA_ERROR_DEVICE_NOT_LICENSED": "no valid Grid license for the device",
    "CUDA_ERROR_INVALID_IMAGE": "device kernel image is invalid",
    "CUDA_ERROR_INVALID_CONTEXT": "invalid device context",
    "CUDA_ERROR_CONTEXT_ALREADY_CURRENT": "context already current",
    "CUDA_ERROR_MAP_FAILED": "mapping of buffer object failed",
    "CUDA_ERROR_UNMAP_FAILED": "unmapping of buffer object failed",
    "CUDA_ERROR_ARRAY_IS_MAPPED": "array is mapped",
    "CUDA_ERROR_ALREADY_MAPPED": "resource already mapped",
    "CUDA_ERROR_NO_BINARY_FOR_GPU": "no kernel image is available for execution on the device",
    "CUDA_ERROR_ALREADY_ACQUIRED": "resource already acquired",
    "CUDA_ERROR_NOT_MAPPED": "resource not mapped",
    "CUDA_ERROR_NOT_MAPPED_AS_ARRAY": "resource not mapped as array",
    "CUDA_ERROR_NOT_MAPPED_AS_POINTER": "resource not mapped as pointer",
    "CUDA_ERROR_ECC_UNCORRECTABLE": "uncorrectable ECC error encountered",
    "CUDA_ERROR_UNSUPPORTED_LIMIT": "limit is not supported on this architecture",
    "CUDA_ERROR_CONTEXT_ALREADY_IN_USE": "context already bound to another thread",
    "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED": "peer access is not supported between these two devices",
    "CUDA_ERROR_INVALID_PTX": "a PTX JIT compilation failed",
    "CUDA_ERROR_INVALID_GRAPHICS_CONTEXT": "invalid OpenGL or DirectX context",
    "CUDA_ERROR_NVLINK_UNCORRECTABLE": "uncorrectable NVLink error",
    "CUDA_ERROR_JIT_COMPILER_NOT_FOUND": "PTX JIT compiler library not found",
    "CUDA_ERROR_UNSUPPORTED_PTX_VERSION": "PTX built by an unsupported toolchain",
    "CUDA_ERROR_JIT_COMPILATION_DISABLED": "PTX JIT compilation was disabled",
    "CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY": "execution affinity type not supported",
    "CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC": "PTX calls device-side cudaDeviceSynchronize, which is unsupported",
    "CUDA_ERROR_CONTAINED": "device exception contained by GPU error containment",
    "CUDA_ERROR_INVALID_SOURCE": "device kernel source is invalid",
    "CUDA_ERROR_FILE_NOT_FOUND": "file not found",
    "CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND": "shared object symbol not found",
    "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED": "shared object initialization failed",
    "CUDA_ERROR_OPERATING_SYSTEM": "operating system call failed",
    "CUDA_ERROR_INVALID_HANDLE": "invalid resource handle",
    "CUDA_ERROR_ILLEGAL_STATE": "resource not in a valid state for the operation",
    "CUDA_ERROR_LOSSY_QUERY": "query would lose semantically important information",
    "CUDA_ERROR_NOT_FOUND": "named symbol not found",
    "CUDA_ERROR_NOT_READY": "device not ready",
    "CUDA_ERROR_ILLEGAL_ADDRESS": "an illegal memory access was encountered",
    "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES": "too many resources requested for launch",
    "CUDA_ERROR_LAUNCH_TIMEOUT": "the launch timed out and was terminated",
    "CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING": "launch uses incompatible texturing mode",
    "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED": "peer access is already enabled",
    "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED": "peer access has not been enabled",
    "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE": "primary context already initialized",
    "CUDA_ERROR_CONTEXT_IS_DESTROYED": "context is destroyed",
    "CUDA_ERROR_ASSERT": "device-side assert triggered",
    "CUDA_ERROR_TOO_MANY_PEERS": "peer mapping resources exhausted",
    "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED": "host memory range already registered",
    "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED": "host memory range not registered",
    "CUDA_ERROR_HARDWARE_STACK_ERROR": "hardware stack error",
    "CUDA_ERROR_ILLEGAL_INSTRUCTION": "an illegal instruction was encountered",
    "CUDA_ERROR_MISALIGNED_ADDRESS": "misaligned address",
    "CUDA_ERROR_INVALID_ADDRESS_SPACE": "address not in an address space the instruction allows",
    "CUDA_ERROR_INVALID_PC": "invalid program counter",
    "CUDA_ERROR_LAUNCH_FAILED": "unspecified launch failure",
    "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE": "too many blocks in cooperative launch",
    "CUDA_ERROR_TENSOR_MEMORY_LEAK": "kernel exited without freeing its tensor memory",
    "CUDA_ERROR_NOT_PERMITTED": "operation not permitted",
    "CUDA_ERROR_NOT_SUPPORTED": "operation not supported",
    "CUDA_ERROR_SYSTEM_NOT_READY": "system not yet initialized",
    "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH": "display driver and CUDA driver versions mismatch",
    "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE": "forward compatibility not supported on this device",
    "CUDA_ERROR_MPS_CONNECTION_FAILED": "MPS client could not connect to the MPS daemon or server",
    "CUDA_ERROR_MPS_RPC_FAILURE": "MPS remote procedure call failed",
    "CUDA_ERROR_MPS_SERVER_NOT_READY": "MPS server not ready for new clients",
    "CUDA_ERROR_MPS_MAX_CLIENTS_REACHED": "MPS client resources exhausted",
    "CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED": "MPS device connection resources exhausted",
    "CUDA_ERROR_MPS_CLIENT_TERMINATED": "MPS client terminated by the server",
    "CUDA_ERROR_CDP_NOT_SUPPORTED": "dynamic parallelism not supported in this configuration",
    "CUDA_ERROR_CDP_VERSION_MISMATCH": "incompatible dynamic parallelism versions mixed",
    "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED": "operation not permitted when stream is capturing",
    "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED": "operation failed due to a previous error during capture",
    "CUDA_ERROR_STREAM_CAPTURE_MERGE": "operation would result in a merge of separate capture sequences",
    "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED": "capture was not ended in the same stream as it began",
    "CUDA_ERROR_STREAM_CAPTURE_UNJOINED": "capturing stream has unjoined work",
    "CUDA_ERROR_STREAM_CAPTURE_ISOLATION": "dependency created on uncaptured work in another stream",
    "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT": "implicit dependency on a capture from the legacy stream",
    "CUDA_ERROR_CAPTURED_EVENT": "event was last recorded in a capturing stream",
    "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD": "capture ended from a different thread",
    "CUDA_ERROR_TIMEOUT": "wait operation timed out",
    "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE": "graph update not performed: changes violate the update constraints",
    "CUDA_ERROR_EXTERNAL_DEVICE": "asynchronous error in a device outside CUDA",
    "CUDA_ERROR_INVALID_CLUSTER_SIZE": "invalid cluster configuration for launch",
    "CUDA_ERROR_FUNCTION_NOT_LOADED": "function handle is not loaded",
    "CUDA_ERROR_INVALID_RESOURCE_TYPE": "resource type not valid for the operation",
    "CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION": "resources insufficient or not applicable for the operation",
    "CUDA_ERROR_KEY_ROTATION": "key rotation failed",
    "CUDA_ERROR_UNKNOWN": "unknown error",
}


def die(msg):
    sys.stderr.write("gen_driver_table: error: %s\n" % msg)
    sys.exit(1)


def warn(msg):
    sys.stderr.write("gen_driver_table: warning: %s\n" % msg)


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


# --- exports ---------------------------------------------------------------

def exports_from_stub(stub, strict=True):
    """Defined dynamic symbols of @stub; @strict: fail on any not code."""
    try:
        out = subprocess.run(["nm", "-D", "--defined-only", stub],
                             check=True, capture_output=True,
                             text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        die("cannot run nm on %s: %s" % (stub, e))
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, name = parts[1], parts[2].split("@")[0]
        if strict and kind not in ("T", "W", "i"):
            die("%s exports %s as '%s', not a function: the stub "
                "generator cannot handle it" % (stub, name, kind))
        syms.add(name)
    if not syms:
        die("no symbols found in %s" % stub)
    return sorted(syms)


def write_exports(path, syms, stub):
    text = ("# Every dynamic symbol exported by the CUDA driver, as listed by\n"
        "# nm -D --defined-only %s\n"
        "# Generated by %s --regen-exports; one symbol a line.\n"
        % (stub, REGEN))
    text += "".join(s + "\n" for s in syms)
    with open(path, "w") as f:
        f.write(text)


def read_exports(path):
    syms = []
    for line in read(path).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            syms.append(line)
    return sorted(set(syms))


# --- typedefs ---------------------------------------------------------------

TYPEDEF_RE = re.compile(r"typedef\s+(\w+)\s*\(\s*CUDAAPI\s*\*\s*PFN_(\w+?)"
            r"_v(\d+)(?:_(ptds|ptsz))?\s*\)")


def read_typedefs(inc):
    """{base: {"plain": set(versions), "pt": {version: kind}}}"""
    table = {}
    for hdr in TYPEDEF_HEADERS:
        path = os.path.join(inc, hdr)
        if not os.path.exists(path):
            die("%s not found" % path)
        for m in TYPEDEF_RE.finditer(strip_comments(read(path))):
            ret, base, ver, kind = m.groups()
            if ret != "CUresult":
                die("PFN_%s_v%s returns %s, not CUresult: the "
                    "stub generator needs teaching" %
                    (base, ver, ret))
            t = table.setdefault(base, {"plain": set(), "pt": {}})
            if kind:
                old = t["pt"].get(int(ver))
                if old and old != kind:
                    die("%s has both _ptds and _ptsz at %s"
                        % (base, ver))
                t["pt"][int(ver)] = kind
            else:
                t["plain"].add(int(ver))
    return table


def plain_symbol(base, versions, v):
    """The plain symbol of @base chosen at version @v, or None."""
    below = [x for x in versions if x <= v]
    if not below:
        return None
    i = versions.index(below[-1])
    return base if i == 0 else "%s_v%d" % (base, i + 1)


def build_entries(typedefs, exports):
    exported = set(exports)
    entries = []  # (base, version, kind, symbol)
    for base, t in typedefs.items():
        versions = sorted(t["plain"])
        if not versions:
            die("%s has per-thread typedefs but no plain one" % base)
        for i, v in enumerate(versions):
            sym = base if i == 0 else "%s_v%d" % (base, i + 1)
            entries.append((base, v, "PLAIN", sym))
        for v, kind in sorted(t["pt"].items()):
            plain = plain_symbol(base, versions, v)
            if plain is None:
                die("PFN_%s_v%d_%s predates every plain version"
                    % (base, v, kind))
            entries.append((base, v, kind.upper(),
                    "%s_%s" % (plain, kind)))
    missing = sorted({e[3] for e in entries if e[3] not in exported})
    if missing:
        die("derived symbols not exported by the driver (fix the "
            "version->suffix mapping): %s" % " ".join(missing))
    reached = {e[3] for e in entries}
    suffix = re.compile(r"_v\d+(_ptds|_ptsz)?$|_ptds$|_ptsz$")
    orphans = []
    for sym in exports:
        if sym in reached:
            continue
        if sym in typedefs or suffix.search(sym):
            orphans.append(sym)
            continue
        # No typedef at all: reachable under its own name, any version.
        entries.append((sym, 0, "PLAIN", sym))
    if orphans:
        die("exported variants no typedef explains (add a mapping): %s"
            % " ".join(orphans))
    kind_order = {"PLAIN": 0, "PTDS": 1, "PTSZ": 1}
    entries.sort(key=lambda e: (e[0].encode(), e[1], kind_order[e[2]]))
    return entries


def check_header_defines(inc, entries):
    """Compare with cuda.h's own #define <name> <symbol> choices."""
    newest = {}
    newest_pt = {}
    for base, v, kind, sym in entries:
        if kind == "PLAIN":
            newest[base] = sym
        else:
            newest_pt[base] = sym
    text = read(os.path.join(inc, "cuda.h"))
    define = re.compile(r"^\s*#\s*define\s+(cu\w+)\s+(?:__CUDA_API_PT(DS|SZ)"
                        r"\(\s*(cu\w+)\s*\)|(cu\w+))\s*$", re.M)
    notes = []
    for m in define.finditer(text):
        name, pt, ptsym, sym = m.groups()
        target = ptsym or sym
        if name not in newest:
            continue
        if HEADER_ALIASES.get(name) == target:
            continue
        if newest[name] != target:
            notes.append("cuda.h maps %s to %s, the proc-address table "
                         "to %s (from the PFN typedefs)" %
                         (name, target, newest[name]))
        if pt and newest_pt.get(name) != "%s_pt%s" % (target,
                                                      pt.lower()):
            notes.append("cuda.h per-thread %s is %s_pt%s, table "
                         "has %s" % (name, target, pt.lower(),
                                     newest_pt.get(name)))
    return notes


# --- CUresult ---------------------------------------------------------------

def read_errors(inc):
    text = read(os.path.join(inc, "cuda.h"))
    m = re.search(r"typedef\s+enum\s+cudaError_enum\s*\{(.*?)\}\s*CUresult\s*;",
                  text, re.S)
    if not m:
        die("enum cudaError_enum not found in cuda.h")
    errs = []
    for e in re.finditer(r"\b(CUDA_\w+)\s*=\s*(\d+)",
                         strip_comments(m.group(1))):
        errs.append((e.group(1), int(e.group(2))))
    if not errs:
        die("no CUresult enumerators found")
    missing = [n for n, _ in errs if n not in ERROR_STRINGS]
    if missing:
        die("no description for %s: add it to ERROR_STRINGS"
            % " ".join(missing))
    extra = set(ERROR_STRINGS) - {n for n, _ in errs}
    if extra:
        warn("descriptions for codes cuda.h no longer has: %s"
             % " ".join(sorted(extra)))
    values = [v for _, v in errs]
    if len(values) != len(set(values)):
        die("duplicate CUresult values in cuda.h")
    return sorted(errs, key=lambda e: e[1])


# --- output -----------------------------------------------------------------

def header(what, how):
    return ("/*\n"
        " * %s\n"
        " *\n"
        " * GENERATED FILE - do not edit.  Regenerate with\n"
        " *\t%s\n"
        " * from the repository root (reads %s).\n"
        " */\n" % (what, REGEN, how))


def gen_entries(entries, nexports):
    npt = sum(1 for e in entries if e[2] != "PLAIN")
    out = header("driver_entry_points.inc - every driver entry point the "
                 "shim exports, for\n * cuGetProcAddress: "
                 "ENTRY(base, min_version, kind, symbol).",
                 "$CUDA_HOME/include/\n * %s and "
                 "shim/generated/libcuda-exports.txt"
                 % ", ".join(TYPEDEF_HEADERS))
    out += ("/*\n"
        " * kind: PLAIN, or PTDS/PTSZ for the per-thread-default-stream "
        "variant.\n"
        " * Sorted by base name (strcmp order), then version: "
        "lookups binary-search.\n"
        " * %d entries (%d per-thread) over %d exported symbols.\n"
        " */\n" % (len(entries), npt, nexports))
    for base, v, kind, sym in entries:
        out += "ENTRY(%s, %d, %s, %s)\n" % (base, v, kind, sym)
    return out


def gen_stubs(exports):
    out = header("unsupported_stubs.c - a weak definition of every "
                 "symbol the real driver\n * exports, answering "
                 "CUDA_ERROR_NOT_SUPPORTED.  A strong definition\n"
                 " * elsewhere in the shim overrides one at link time.  "
                 "This file must not\n * include cuda.h: the (void) "
                 "prototypes here would clash with it.",
                 "shim/generated/libcuda-exports.txt")
    out += ("\n/* CUresult is an int-sized enum; every exported entry "
            "point returns it. */\n"
            "typedef int CUresult;\n\n"
            "/* Logs the name once; returns CUDA_ERROR_NOT_SUPPORTED "
            "(801). */\n"
            "int shim_unsupported(const char *name);\n\n"
            "/* Each definition is its own prototype: nothing calls "
            "these by name. */\n"
            "#pragma GCC diagnostic ignored \"-Wmissing-prototypes\"\n\n"
            "#define SHIM_WEAK __attribute__((weak, "
            "visibility(\"default\")))\n\n")
    for sym in exports:
        out += ("SHIM_WEAK CUresult %s(void) { return "
            "shim_unsupported(\"%s\"); }\n" % (sym, sym))
    return out


def gen_errors(errs):
    out = header("error_table.inc - every CUresult of cuda.h with a short "
                 "description:\n * ERR(enumerator, value, \"description\").",
                 "$CUDA_HOME/include/cuda.h\n * and ERROR_STRINGS "
                 "in the script")
    for name, value in errs:
        desc = ERROR_STRINGS[name].replace("\\", "\\\\")
        desc = desc.replace("\"", "\\\"")
        out += "ERR(%s, %d, \"%s\")\n" % (name, value, desc)
    return out


def emit(path, text, check, stale):
    if check:
        try:
            if read(path) == text:
                return
        except OSError:
            pass
        stale.append(os.path.relpath(path, REPO))
        return
    with open(path, "w") as f:
        f.write(text)


def check_lib(lib):
    """A strong definition without default visibility hides the weak stub's
    symbol too: catch that after the link."""
    have = set(exports_from_stub(lib, strict=False))
    want = read_exports(EXPORTS)
    missing = [s for s in want if s not in have]
    if missing:
        die("%s does not export: %s" % (lib, " ".join(missing)))
    print("gen_driver_table: %s exports all %d driver symbols"
          % (lib, len(want)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cuda-home", default=os.environ.get(
        "CUDA_HOME", "/usr/local/cuda"))
    ap.add_argument("--regen-exports", action="store_true",
            help="rewrite libcuda-exports.txt from the stub")
    ap.add_argument("--check", action="store_true",
            help="write nothing; fail if a generated file is stale")
    ap.add_argument("--check-lib", metavar="LIB",
                    help="only check that the built shim LIB exports "
                    "every symbol of libcuda-exports.txt")
    args = ap.parse_args()

    if args.check_lib:
        check_lib(args.check_lib)
        return

    inc = os.path.join(args.cuda_home, "include")
    stub = os.path.join(args.cuda_home, "lib64", "stubs", "libcuda.so")
    os.makedirs(GEN_DIR, exist_ok=True)

    if args.regen_exports or not os.path.exists(EXPORTS):
        exports = exports_from_stub(stub)
        if not args.check:
            write_exports(EXPORTS, exports, stub)
    else:
        exports = read_exports(EXPORTS)
        if os.path.exists(stub):
            now = exports_from_stub(stub)
            if now != exports:
                warn("%s differs from %s: run with "
                     "--regen-exports" % (EXPORTS, stub))

    typedefs = read_typedefs(inc)
    entries = build_entries(typedefs, exports)
    for note in check_header_defines(inc, entries):
        warn(note)
    errs = read_errors(inc)

    stale = []
    emit(os.path.join(GEN_DIR, "driver_entry_points.inc"),
         gen_entries(entries, len(exports)), args.check, stale)
    emit(os.path.join(GEN_DIR, "unsupported_stubs.c"),
         gen_stubs(exports), args.check, stale)
    emit(os.path.join(GEN_DIR, "error_table.inc"), gen_errors(errs),
         args.check, stale)
    if stale:
        die("stale: %s (run %s)" % (" ".join(stale), REGEN))

    npt = sum(1 for e in entries if e[2] != "PLAIN")
    nbases = len({e[0] for e in entries})
    print("gen_driver_table: %d exports, %d entries (%d per-thread) over "
          "%d base names, %d error codes" %
          (len(exports), len(entries), npt, nbases, len(errs)))


if __name__ == "__main__":
    main()

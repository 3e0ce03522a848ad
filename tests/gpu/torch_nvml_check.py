"""torch_nvml_check.py - what PyTorch (and pynvml, where installed) get from
NVML inside a function (run under `mig run` by tests/gpu/test_third_party.py):
our libnvidia-ml.so.1 (nvml/nvml.c) with one device, the partition, only this
process, and NOT_SUPPORTED for the GPU-wide state.  Prints OK.

With PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (the test's second
run) PyTorch's allocator goes through c10's DriverAPI, which loads NVML and
asserts that every entry point of its list is there."""
import ctypes
import os
import re

import torch

try:
    import pynvml
except ImportError:  # PyTorch's device_memory_used needs it; the rest does not
    pynvml = None

torch.cuda.init()
x = torch.ones(1 << 20, device="cuda")
free, total = torch.cuda.mem_get_info()
assert 0 < free <= total, (free, total)
print("mem_get_info", free, total)

# NVML as c10 and torch.cuda load it: by name, through the library path.
nv = ctypes.CDLL("libnvidia-ml.so.1")
assert nv.nvmlInit_v2() == 0
ver = ctypes.create_string_buffer(96)
assert nv.nvmlSystemGetNVMLVersion(ver, 96) == 0
assert ver.value == b"mignificent", ver.value
n = ctypes.c_uint(0)
assert nv.nvmlDeviceGetCount_v2(ctypes.byref(n)) == 0 and n.value == 1, n.value
assert nv.nvmlShutdown() == 0
if hasattr(torch.cuda, "_device_count_nvml"):  # PYTORCH_NVML_BASED_CUDA_CHECK's count
    assert torch.cuda._device_count_nvml() == 1, torch.cuda._device_count_nvml()

if pynvml is not None:
    pynvml.nvmlInit()
    assert pynvml.nvmlDeviceGetCount() == 1
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    name = pynvml.nvmlDeviceGetName(h)
    name = name.decode() if isinstance(name, bytes) else name
    assert name == torch.cuda.get_device_name(0), (name, torch.cuda.get_device_name(0))
    mem = pynvml.nvmlDeviceGetMemoryInfo(h)
    assert mem.total == total, (mem.total, total)
    procs = pynvml.nvmlDeviceGetComputeRunningProcesses(h)
    assert [p.pid for p in procs] == [os.getpid()], [p.pid for p in procs]
    try:
        pynvml.nvmlDeviceGetUtilizationRates(h)
        raise AssertionError("utilization answered")
    except pynvml.NVMLError_NotSupported:
        pass
    # PyTorch's own NVML users.
    used = torch.cuda.device_memory_used()
    assert 0 < used <= total, used
    print("device_memory_used", used, "processes", torch.cuda.list_gpu_processes())
    try:
        torch.cuda.utilization()
        raise AssertionError("torch.cuda.utilization answered")
    except Exception as e:  # pynvml's NotSupported, as PyTorch passes it on
        assert "Not Supported" in str(e), e
else:
    print("pynvml is not installed: its checks and device_memory_used skipped")

# An out-of-memory error: c10 asks NVML for the processes using the GPU,
# and must name this one only.
try:
    torch.empty(total * 2, dtype=torch.uint8, device="cuda")
    raise AssertionError("allocated twice the memory")
except torch.cuda.OutOfMemoryError as e:
    msg = str(e)
    print("OOM message:", msg[:300])
    pids = {int(p) for p in re.findall(r"Process (\d+) has", msg)}
    assert pids <= {os.getpid()}, f"the OOM message names other processes: {pids}"
assert float(x.sum()) == float(1 << 20)
print("OK")

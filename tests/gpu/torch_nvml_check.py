"""torch_nvml_check.py - what PyTorch and pynvml get from NVML inside a
function (run under `mig run` by tests/gpu/test_third_party.py): our
libnvidia-ml.so.1 (nvml/nvml.c) with one device, the partition, only this
process, and NOT_SUPPORTED for the GPU-wide state.  Prints OK."""
import os

import pynvml
import torch

torch.cuda.init()
x = torch.ones(1 << 20, device="cuda")
pynvml.nvmlInit()
assert pynvml.nvmlSystemGetNVMLVersion() == "mignificent", pynvml.nvmlSystemGetNVMLVersion()
assert pynvml.nvmlDeviceGetCount() == 1
h = pynvml.nvmlDeviceGetHandleByIndex(0)
name = pynvml.nvmlDeviceGetName(h)
name = name.decode() if isinstance(name, bytes) else name
assert name == torch.cuda.get_device_name(0), (name, torch.cuda.get_device_name(0))
free, total = torch.cuda.mem_get_info()
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
# An out-of-memory error: c10 asks NVML for the processes using the GPU.
try:
    torch.empty(total * 2, dtype=torch.uint8, device="cuda")
    raise AssertionError("allocated twice the memory")
except torch.cuda.OutOfMemoryError as e:
    print("OOM message:", str(e)[:300])
assert float(x.sum()) == float(1 << 20)
print("OK")

"""PyTorch on the GPU, the same way natively and through the shim.

Runs what an inference function does: tensors through the caching
allocator, cuBLAS matrix products (float32 and TF32-free float64), cuDNN
convolution + batch norm + ReLU, pinned host memory with a non-blocking
copy on a side stream, CUDA events, torch.cuda.synchronize() and
mem_get_info().  Prints a SHA-256 of every result (the same inputs and
kernels must give the same bits natively and through the shim) and OK.

Usage: torch_check.py   (PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
                         exercises the virtual memory API)
"""
import hashlib

import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.benchmark = False
torch.backends.cudnn.deterministic = True
torch.manual_seed(1234)

dev = torch.device("cuda")
digest = hashlib.sha256()


def take(t):
    digest.update(t.detach().cpu().contiguous().numpy().tobytes())


# cuBLAS
a = torch.randn(512, 384, device=dev)
b = torch.randn(384, 256, device=dev)
take(a @ b)
take(a.double() @ b.double())
# cuDNN
x = torch.randn(8, 3, 64, 64, device=dev)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16),
                          torch.nn.ReLU(), torch.nn.Conv2d(16, 8, 3)).to(dev).eval()
with torch.no_grad():
    take(net(x))
# pinned memory, a side stream, events
host = torch.arange(1 << 20, dtype=torch.float32).pin_memory()
side = torch.cuda.Stream()
start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
with torch.cuda.stream(side):
    start.record()
    g = host.to(dev, non_blocking=True)
    g.mul_(2)
    stop.record()
torch.cuda.synchronize()
assert stop.elapsed_time(start) <= 0 <= start.elapsed_time(stop)
take(g)
free, total = torch.cuda.mem_get_info()
assert 0 < free <= total, (free, total)
print("DIGEST", digest.hexdigest())
print("OK")

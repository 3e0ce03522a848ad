"""A Triton vector add through mignificent (Triton compiles the kernel and
loads it with cuModuleLoadData; PyTorch allocates the tensors), checked
against NumPy.  Prints OK on success (run by test_third_party.py)."""
import numpy as np
import torch
import triton
import triton.language as tl


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(axis=0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    y = tl.load(y_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, x + y, mask=mask)


rng = np.random.default_rng(7)
for n in (1, 1000, 98_433):
    xh = rng.standard_normal(n).astype(np.float32)
    yh = rng.standard_normal(n).astype(np.float32)
    x = torch.from_numpy(xh).to("cuda")
    y = torch.from_numpy(yh).to("cuda")
    out = torch.empty_like(x)
    grid = lambda meta: (triton.cdiv(n, meta["BLOCK"]),)  # noqa: E731
    add_kernel[grid](x, y, out, n, BLOCK=1024)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(out.cpu().numpy(), xh + yh)
print("OK")

#!/usr/bin/env python3
"""native_load.py - the native side of bench/lukewarm/run.py: what a warm
process with torch imported and CUDA initialised pays to get a workload's
GPU state back without mignificent, and the link's pinned bandwidth.

    native_load.py ROUNDS WORKLOAD...

WORKLOAD is a model of examples/torch_models (resnet50, bert, vgg19, ...)
or state:BYTES.  For a model, each round times models.build(name): the
model built with random weights, moved to the GPU, synchronized ("load");
and, separately, only the move of a model built on the CPU to the GPU
("to_gpu").  One untimed build first (lazy set-up of the libraries).  For
state:BYTES each round times copying BYTES of pageable host memory (a
torch tensor, written beforehand so its pages exist) to the GPU and
synchronizing ("reload").  Then the pinned host-to-device bandwidth: a
1 GiB pinned tensor copied into a GPU tensor with non_blocking=True and
synchronized, best of 5.

Prints one JSON line: {"gpu": ..., "pinned_h2d_gbs": ...,
"workloads": {name: {"load_ms": [...], "to_gpu_ms": [...]} or
{"reload_ms": [...]}}}.  GB/s are 10^9 bytes per second.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "examples", "torch_models"))
import torch  # noqa: E402

PINNED_BYTES = 1 << 30


def sync_ms(t0):
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def model_load(name, rounds):
    import models

    if name == "bert":
        import transformers  # noqa: F401
    else:
        import torchvision  # noqa: F401
    models.build(name)  # untimed: the imports inside, lazy library set-up
    torch.cuda.empty_cache()
    load, to_gpu = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        m = models.build(name)
        load.append(sync_ms(t0))
        del m
        torch.cuda.empty_cache()
        cpu_model, _ = models.build(name, device="cpu")
        t0 = time.perf_counter()
        g = cpu_model.to("cuda")
        to_gpu.append(sync_ms(t0))
        del g, cpu_model
        torch.cuda.empty_cache()
    return {"load_ms": load, "to_gpu_ms": to_gpu}


def state_reload(nbytes, rounds):
    host = torch.empty(nbytes, dtype=torch.uint8)
    host.fill_(0x5a)  # pages that exist, as a real copy of the state has
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        dev = host.cuda()
        out.append(sync_ms(t0))
        del dev
        torch.cuda.empty_cache()
    return {"reload_ms": out}


def pinned_h2d_gbs():
    src = torch.empty(PINNED_BYTES, dtype=torch.uint8, pin_memory=True)
    src.fill_(1)
    dst = torch.empty(PINNED_BYTES, dtype=torch.uint8, device="cuda")
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        dst.copy_(src, non_blocking=True)
        best = min(best, sync_ms(t0))
    del src, dst
    torch.cuda.empty_cache()
    return PINNED_BYTES / (best / 1e3) / 1e9


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__.split("\n\n")[1])
    rounds = int(argv[0])
    torch.empty(1, device="cuda")  # CUDA initialised before anything is timed
    torch.cuda.synchronize()
    res = {"gpu": torch.cuda.get_device_name(0), "workloads": {}}
    for w in argv[1:]:
        print(f"native: {w} ...", file=sys.stderr, flush=True)
        if w.startswith("state:"):
            res["workloads"][w] = state_reload(int(w.split(":", 1)[1]), rounds)
        else:
            res["workloads"][w] = model_load(w, rounds)
    res["pinned_h2d_gbs"] = pinned_h2d_gbs()
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""infer.py - one process of bench/ml/run.py: start an instance of a model
the way a function's instance starts, then time its inferences.

    infer.py MODEL N [WARMUP]

Prints one JSON line: import_s (torch and the model library),
build_s (build the model with random weights and move it to the GPU,
including the first CUDA call, i.e. context creation), first_ms (the first
inference: cuDNN/cuBLAS set-up and lazy module loading happen here),
warm_ms (N inferences, each synchronized, after WARMUP untimed ones:
the state a warm instance that has served requests is in), digest (SHA-256 of the
output: native and remoted must give the same bits).
"""
import json
import os
import sys
import time

t0 = time.perf_counter()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "examples", "torch_models"))
name, n = sys.argv[1], int(sys.argv[2])
warmup = int(sys.argv[3]) if len(sys.argv) > 3 else 0
import torch  # noqa: E402
if name == "bert":
    import transformers  # noqa: E402,F401
else:
    import torchvision  # noqa: E402,F401
import models  # noqa: E402

t1 = time.perf_counter()
model, x = models.build(name)
t2 = time.perf_counter()
out = models.run_inference(model, x)
t3 = time.perf_counter()
for _ in range(warmup):
    models.run_inference(model, x)
warm = []
for _ in range(n):
    a = time.perf_counter()
    out = models.run_inference(model, x)
    warm.append((time.perf_counter() - a) * 1e3)
print(json.dumps({"model": name, "import_s": t1 - t0, "build_s": t2 - t1,
                  "first_ms": (t3 - t2) * 1e3, "warm_ms": warm,
                  "digest": models.summary(name, out)["digest"]}))

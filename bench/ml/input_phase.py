#!/usr/bin/env python3
"""input_phase.py - where a vision function's request time goes, by step,
in one process: the bench/sharing photo decoded, transformed, copied to the
GPU, then the model's inference, as examples/torch_models/models.py does
per request.

    input_phase.py MODEL N [WARMUP]

Run it natively and under `mig run` (one process or several at once) to
see which step differs.  Prints one JSON line: the model, the process's
CPU threads (torch), and per step the median and the 90th percentile over
N requests in ms: decode (the JPEG to RGB), transform (resize, crop, to a
tensor, normalize), copy (the tensor to the GPU, synchronized), infer (the
model, its output back and its summary), total.
"""
import importlib.util
import io
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "torch_models"))


def main(argv):
    if len(argv) not in (2, 3) or not argv[1].isdigit() or int(argv[1]) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    name, n = argv[0], int(argv[1])
    warmup = int(argv[2]) if len(argv) > 2 else 10
    if name == "bert":
        print("input_phase.py: a vision model (resnet50, alexnet, vgg19)", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location(
        "sharing_run", os.path.join(HERE, "..", "sharing", "run.py"))
    sharing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sharing)
    photo = sharing.photo_jpeg("1280x960")

    import torch
    from PIL import Image
    import models

    model, _ = models.build(name)
    models.image_input(photo)  # builds the transform
    transform = models._vision_transform
    steps = {k: [] for k in ("decode", "transform", "copy", "infer", "total")}
    for i in range(warmup + n):
        t0 = time.perf_counter()
        img = Image.open(io.BytesIO(photo)).convert("RGB")
        t1 = time.perf_counter()
        x = transform(img).unsqueeze(0)
        t2 = time.perf_counter()
        x = x.to("cuda")
        torch.cuda.synchronize()
        t3 = time.perf_counter()
        models.summary(name, models.run_inference(model, x))
        t4 = time.perf_counter()
        if i >= warmup:
            for k, a, b in (("decode", t0, t1), ("transform", t1, t2), ("copy", t2, t3),
                            ("infer", t3, t4), ("total", t0, t4)):
                steps[k].append((b - a) * 1e3)

    def p90(v):
        return sorted(v)[int(0.9 * (len(v) - 1))]

    print(json.dumps({"model": name, "threads": torch.get_num_threads(), "n": n,
                      **{k: [round(statistics.median(v), 3), round(p90(v), 3)]
                         for k, v in steps.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

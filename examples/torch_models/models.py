"""models.py - PyTorch inference functions: ResNet-50, AlexNet, VGG19
(torchvision) and BERT-base (transformers), as in the paper's workloads.

Random weights (seeded: nothing is downloaded) and one fixed input per
model.  The model named by the MODEL environment variable (resnet50,
alexnet, vgg19, bert) is built and moved to the GPU when the module is
imported, i.e. at instance start; an invocation is one inference at batch
size 1, answered with JSON: the model, the five top classes (or, for BERT,
the start/end logits' argmax) and a SHA-256 of the raw output, so that two
runs can be compared bit for bit.

Deploy as a Python function with handler "models:infer" and
env {"MODEL": "resnet50"}; bench/ml/run.py imports build() and
run_inference() directly to time the same code natively and through the shim.
"""
import hashlib
import json
import os

import torch

MODELS = ("resnet50", "alexnet", "vgg19", "bert")


def _deterministic():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def build(name, device="cuda"):
    """(model, input) for @name, on @device, in eval mode."""
    if name not in MODELS:
        raise ValueError(f"MODEL must be one of {', '.join(MODELS)}, not {name!r}")
    _deterministic()
    torch.manual_seed(0)
    if name == "bert":
        from transformers import BertConfig, BertForQuestionAnswering

        cfg = BertConfig()  # bert-base: 12 layers, hidden 768, 12 heads
        model = BertForQuestionAnswering(cfg)
        gen = torch.Generator().manual_seed(1)
        x = {"input_ids": torch.randint(0, cfg.vocab_size, (1, 384), generator=gen),
             "attention_mask": torch.ones(1, 384, dtype=torch.long),
             "token_type_ids": torch.zeros(1, 384, dtype=torch.long)}
        x = {k: v.to(device) for k, v in x.items()}
    else:
        import torchvision

        model = getattr(torchvision.models, name)(weights=None)
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(1, 3, 224, 224, generator=gen).to(device)
    model = model.to(device).eval()
    torch.cuda.synchronize()
    return model, x


def run_inference(model, x):
    """One inference; the output tensor, on the GPU, finished."""
    with torch.no_grad():
        out = model(**x) if isinstance(x, dict) else model(x)
    if not isinstance(out, torch.Tensor):  # BERT: start and end logits
        out = torch.stack([out.start_logits, out.end_logits])
    torch.cuda.synchronize()
    return out


def summary(name, out):
    raw = out.detach().float().cpu().contiguous()
    digest = hashlib.sha256(out.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    if name == "bert":
        top = [int(raw[0].argmax()), int(raw[1].argmax())]
    else:
        top = [int(i) for i in raw[0].topk(5).indices]
    return {"model": name, "top": top, "digest": digest}


_NAME = os.environ.get("MODEL", "")
_MODEL = build(_NAME) if _NAME else None


def infer(payload):
    """The handler: one inference of the instance's model (the request body
    is not used: the input is fixed)."""
    if _MODEL is None:
        raise RuntimeError("set MODEL in the function's env (resnet50, alexnet, vgg19, bert)")
    return json.dumps(summary(_NAME, run_inference(*_MODEL)))

"""models.py - PyTorch inference functions: ResNet-50, AlexNet, VGG19
(torchvision) and BERT-base (transformers), as in the paper's workloads.

Random weights (seeded: nothing is downloaded).  The model named by the
MODEL environment variable (resnet50, alexnet, vgg19, bert) is built and
moved to the GPU when the module is imported, i.e. at instance start; an
invocation is one inference at batch size 1, answered with JSON: the model,
the five top classes (or, for BERT, the start/end logits' argmax) and a
SHA-256 of the raw output, so that two runs can be compared bit for bit.

The input:
  empty request body   one fixed input per model, made at instance start
                       (bench/ml and the bit-identity tests use this)
  an image (vision)    any format Pillow reads (JPEG, PNG, ...), prepared
                       on the CPU as torchvision's ImageNet models expect:
                       decode, RGB, resize the short side to 256, centre
                       crop 224, scale and normalize -- the per-request CPU
                       work of a real inference service
  JSON (BERT)          {"question": "...", "context": "..."}: lowercased,
                       split into words and punctuation, each word hashed
                       to a vocabulary id (no vocabulary file is needed),
                       laid out [CLS] question [SEP] context [SEP], padded
                       or cut to 384 tokens; the answer also carries the
                       predicted span's words

Deploy as a Python function with handler "models:infer" and
env {"MODEL": "resnet50"}; bench/ml/run.py imports build() and
run_inference() directly to time the same code natively and through the shim.
"""
import hashlib
import io
import json
import os
import re
import time
import zlib

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


SEQ_LEN = 384
_CLS, _SEP, _FIRST_WORD_ID = 101, 102, 1000  # bert-base's [CLS], [SEP]; ids below are special
_WORD = re.compile(r"\w+|[^\w\s]")
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_vision_transform = None


def image_input(data, device="cuda"):
    """An encoded image -> the (1, 3, 224, 224) input tensor on @device."""
    global _vision_transform
    from PIL import Image
    from torchvision import transforms

    if _vision_transform is None:
        _vision_transform = transforms.Compose([
            transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
            transforms.Normalize(_IMAGENET_MEAN, _IMAGENET_STD)])
    try:
        img = Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as e:  # Pillow raises several kinds for a bad image
        raise ValueError(f"the request body is not an image Pillow can read: {e}") from None
    return _vision_transform(img).unsqueeze(0).to(device)


def _token_ids(text, vocab_size):
    return [_FIRST_WORD_ID + zlib.crc32(w.encode()) % (vocab_size - _FIRST_WORD_ID)
            for w in _WORD.findall(text.lower())]


def text_input(data, vocab_size, device="cuda"):
    """A JSON question and context -> (BERT's input dict on @device, the
    context's words in token order)."""
    try:
        req = json.loads(data)
        question, context = req["question"], req["context"]
        if not isinstance(question, str) or not isinstance(context, str):
            raise TypeError("question and context must be strings")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError('the request body must be JSON {"question": "...", '
                         f'"context": "..."}}: {e}') from None
    q = _token_ids(question, vocab_size)[:SEQ_LEN // 4]
    words = _WORD.findall(context.lower())[:SEQ_LEN - len(q) - 3]
    c = _token_ids(" ".join(words), vocab_size)
    ids = [_CLS, *q, _SEP, *c, _SEP]
    types = [0] * (len(q) + 2) + [1] * (len(c) + 1)
    pad = SEQ_LEN - len(ids)
    x = {"input_ids": torch.tensor([ids + [0] * pad]),
         "attention_mask": torch.tensor([[1] * len(ids) + [0] * pad]),
         "token_type_ids": torch.tensor([types + [0] * pad])}
    return {k: v.to(device) for k, v in x.items()}, words, len(q) + 2


def answer(name, model, fixed_input, payload):
    """The handler's work: inference on @payload's input (or the fixed one).
    With MODEL_TIMINGS=1 in the environment the result also has
    "timings_ms": {"input": decoding the request and moving it to the GPU,
    "inference": the model, the output back and its summary} (benchmarks;
    off by default, so that equal inputs give equal answers)."""
    t0 = time.perf_counter()
    words = first = None
    if not payload:
        x = fixed_input
    elif name != "bert":
        x = image_input(payload)
    else:
        x, words, first = text_input(payload, model.config.vocab_size)
    t1 = time.perf_counter()
    res = summary(name, run_inference(model, x))
    if words is not None:
        start, end = (t - first for t in res["top"])
        res["answer"] = " ".join(words[start:end + 1]) if 0 <= start <= end < len(words) else ""
    if _TIMINGS:
        res["timings_ms"] = {"input": (t1 - t0) * 1e3,
                             "inference": (time.perf_counter() - t1) * 1e3}
    return res


_NAME = os.environ.get("MODEL", "")
_TIMINGS = os.environ.get("MODEL_TIMINGS") == "1"
_MODEL = build(_NAME) if _NAME else None


def infer(payload):
    """The handler: one inference of the instance's model on the request's
    input (an empty body: the fixed input)."""
    if _MODEL is None:
        raise RuntimeError("set MODEL in the function's env (resnet50, alexnet, vgg19, bert)")
    return json.dumps(answer(_NAME, *_MODEL, payload))

"""W3 (WORKLOADS.md) in PyTorch: one optimizer step over 10 tensors of 1M f32 parameters.

For each optimizer PyTorch has, every implementation it offers on CPU: the per-tensor
loop (foreach=False), foreach=True, and fused=True where supported. Median ms/step over
`--steps` after `--warmup`. Prints one JSON object per line:
    {"optimizer": "adam", "variant": "fused", "ms": 5.1}

    .venv/bin/python bench/w3_torch.py [--threads 2] [--steps 50] [--warmup 5] [--only adam,sgd]
"""
import argparse
import json
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=50)
p.add_argument("--warmup", type=int, default=5)
p.add_argument("--only", default="")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

O = torch.optim
# descent name -> (constructor, kwargs); the same hyperparameters as descent's defaults.
OPTIMIZERS = {
    "sgd": (O.SGD, dict(lr=0.01)),
    "sgd_momentum": (O.SGD, dict(lr=0.01, momentum=0.9)),
    "rmsprop": (O.RMSprop, dict(lr=0.001, alpha=0.9, eps=1e-7)),
    "adam": (O.Adam, dict(lr=0.001, eps=1e-7)),
    "adamw": (O.AdamW, dict(lr=0.001, eps=1e-7, weight_decay=0.004)),
    "adamax": (O.Adamax, dict(lr=0.001, eps=1e-7)),
    "nadam": (O.NAdam, dict(lr=0.001, eps=1e-7)),
    "radam": (O.RAdam, dict(lr=0.001)),
    "adagrad": (O.Adagrad, dict(lr=0.001, initial_accumulator_value=0.1, eps=1e-7)),
    "adadelta": (O.Adadelta, dict(lr=0.001, rho=0.95, eps=1e-7)),
    "adafactor": (getattr(O, "Adafactor", None), dict(lr=0.01)),
    "rprop": (O.Rprop, dict(lr=0.01)),
}
only = set(filter(None, a.only.split(",")))
params = [torch.nn.Parameter(torch.randn(1_000_000)) for _ in range(10)]
grads = [torch.randn(1_000_000) for _ in range(10)]
for name, (ctor, kw) in OPTIMIZERS.items():
    if ctor is None or (only and name not in only):
        continue
    for variant in ("for-loop", "foreach", "fused"):
        flags = {"for-loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}[variant]
        try:
            opt = ctor(params, **kw, **flags)
            for p_, g in zip(params, grads):
                p_.grad = g
            opt.step()
        except (RuntimeError, TypeError, ValueError):
            continue  # this implementation does not exist for this optimizer on CPU
        times = []
        for i in range(a.warmup + a.steps):
            t = time.perf_counter()
            opt.step()
            if i >= a.warmup:
                times.append(time.perf_counter() - t)
        times.sort()
        print(json.dumps({"optimizer": name, "variant": variant, "ms": 1e3 * times[len(times) // 2]}), flush=True)

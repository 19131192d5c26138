"""W4 (docs/workloads.md) in PyTorch eager: Keras's mnist_convnet on Fashion-MNIST —
Conv2d 32 3×3 ReLU → MaxPool 2 → Conv2d 64 3×3 ReLU → MaxPool 2 → Flatten → Dropout 0.5 →
Linear 10; Adam 1e-3 (eps 1e-7, as Keras), batch 128. A warm-up epoch over the first
`--warmup` batches, then one timed epoch over `--samples` images. `--layout` picks
PyTorch's NCHW (contiguous) or channels_last memory format. One JSON line on stdout.

    .venv/bin/python bench/w4_torch.py [--threads 2] [--layout nchw|channels_last]
"""
import argparse
import json
import resource
import time

import numpy as np
import torch

from fashion import TRAIN_FLOPS, load

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--samples", type=int, default=60000)
p.add_argument("--warmup", type=int, default=10)
p.add_argument("--layout", choices=["nchw", "channels_last"], default="nchw")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
x, y, xt, yt = load(a.samples)
fmt = torch.channels_last if a.layout == "channels_last" else torch.contiguous_format
x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
xt = torch.from_numpy(xt).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
y, yt = torch.from_numpy(y), torch.from_numpy(yt)
nn = torch.nn
model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Dropout(0.5), nn.Linear(1600, 10)).to(memory_format=fmt)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
loss_fn = nn.CrossEntropyLoss()
batch = 128


def epoch(n):
    model.train()
    perm = torch.randperm(n)
    for i in range(0, n, batch):
        idx = perm[i:i + batch]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()


epoch(min(a.warmup * batch, a.samples))
t = time.perf_counter()
epoch(a.samples)
sec = time.perf_counter() - t
model.eval()
with torch.no_grad():
    acc = float((model(xt).argmax(1) == yt).float().mean())
print(json.dumps({
    "system": f"PyTorch {torch.__version__} eager ({a.layout})", "workload": "w4", "threads": a.threads,
    "sec_per_epoch": sec, "samples_per_s": a.samples / sec, "gflops": TRAIN_FLOPS * a.samples / sec / 1e9,
    "test_accuracy": acc, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))

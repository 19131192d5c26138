"""W1 (WORKLOADS.md) in PyTorch eager: 100 → Dense 64 ReLU → Dense 10 logits, Adam(1e-3,
eps=1e-7), batch 32, shuffled each epoch, 60k teacher samples. Prints one JSON line.

    .venv/bin/python bench/w1_torch.py [--epochs 10] [--threads 2]
"""
import argparse
import json
import resource
import time

import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
rng = np.random.default_rng(a.seed)
t1 = rng.normal(size=(100, 32)).astype(np.float32)
t2 = rng.normal(size=(32, 10)).astype(np.float32)


def make(n):
    x = rng.normal(size=(n, 100)).astype(np.float32)
    y = np.argmax(np.maximum(x @ t1, 0) @ t2, axis=1)
    return torch.from_numpy(x), torch.from_numpy(y)


x, y = make(60000)
xt, yt = make(10000)
model = torch.nn.Sequential(torch.nn.Linear(100, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
loss_fn = torch.nn.CrossEntropyLoss()
epoch_s = []
for epoch in range(a.epochs):
    t = time.perf_counter()
    perm = torch.randperm(60000)
    for i in range(0, 60000, 32):
        idx = perm[i:i + 32]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    epoch_s.append(time.perf_counter() - t)
with torch.no_grad():
    acc = (model(xt).argmax(1) == yt).float().mean().item()
med = float(np.median(epoch_s[1:] if len(epoch_s) > 1 else epoch_s))
print(json.dumps({"system": f"pytorch {torch.__version__}", "threads": a.threads, "sec_per_epoch": med,
                  "steps_per_s": 1875 / med, "test_accuracy": acc,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))

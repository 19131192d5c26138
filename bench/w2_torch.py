"""W2 (WORKLOADS.md) in PyTorch eager: 784 → 1024 ReLU → 1024 ReLU → 10 logits, Adam 1e-3,
batch 256, 60k teacher samples; one warm-up epoch, then one timed epoch. One JSON line.

    .venv/bin/python bench/w2_torch.py [--threads 2]
"""
import argparse
import json
import resource
import time

import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--samples", type=int, default=60000)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
rng = np.random.default_rng(0)
n = a.samples
x = rng.standard_normal((n, 784), dtype=np.float32)
t1 = rng.standard_normal((784, 64), dtype=np.float32)
t2 = rng.standard_normal((64, 10), dtype=np.float32)
y = torch.from_numpy(np.argmax(np.maximum(x @ t1, 0) @ t2, axis=1))
x = torch.from_numpy(x)
model = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                            torch.nn.Linear(1024, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
loss_fn = torch.nn.CrossEntropyLoss()


def epoch():
    perm = torch.randperm(n)
    for i in range(0, n, 256):
        idx = perm[i:i + 256]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()


epoch()
t = time.perf_counter()
epoch()
sec = time.perf_counter() - t
P = 784 * 1024 + 1024 * 1024 + 1024 * 10
sps = n / sec
print(json.dumps({"system": f"pytorch {torch.__version__}", "threads": a.threads, "samples_per_s": sps,
                  "gflops": 6 * P * sps / 1e9, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))

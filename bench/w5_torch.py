"""W5 (docs/workloads.md) in PyTorch: nanoGPT's shakespeare_char model at its CPU size
(n_layer 4, n_head 4, n_embd 128, block 64, batch 12, no bias, dropout 0; fused QKV,
`scaled_dot_product_attention` with is_causal, weight tying), AdamW (β₂ 0.99, wd 0.1 on
matrices) with global clipping at 1. Trains `--steps` timed steps after `--warmup`,
eager or under `torch.compile` (`--mode`), then times `--gen` tokens of generation
from one prompt with a key/value cache. One JSON line on stdout.

    .venv/bin/python bench/w5_torch.py [--mode eager|compile] [--steps 200]
"""
import argparse
import json
import math
import resource
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from shakespeare import CONFIG, load, train_flops_per_token, windows

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--mode", choices=["eager", "compile"], default="eager")
p.add_argument("--steps", type=int, default=200)
p.add_argument("--warmup", type=int, default=20)
p.add_argument("--gen", type=int, default=500)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
C, H, L, T, B = CONFIG["n_embd"], CONFIG["n_head"], CONFIG["n_layer"], CONFIG["block"], CONFIG["batch"]
chars, train_ids, val_ids = load()
V = len(chars)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C, bias=False), nn.LayerNorm(C, bias=False)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C, bias=False), nn.Linear(C, C, bias=False)
        self.fc, self.proj = nn.Linear(C, 4 * C, bias=False), nn.Linear(4 * C, C, bias=False)

    def attend(self, x, cache=None):
        b, t, _ = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (z.view(b, t, H, C // H).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            if cache:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
        causal = cache is None or q.shape[2] > 1
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, C))

    def forward(self, x, cache=None):
        x = x + self.attend(self.ln_1(x), cache)
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.h = nn.ModuleList([Block() for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, bias=False)
        self.head = nn.Linear(C, V, bias=False)
        self.head.weight = self.wte.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx, caches=None, pos0=0):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(pos0, pos0 + t))
        for i, blk in enumerate(self.h):
            x = blk(x, None if caches is None else caches[i])
        return self.head(self.ln_f(x))


model = GPT()
decay = [p_ for p_ in model.parameters() if p_.dim() >= 2]
rest = [p_ for p_ in model.parameters() if p_.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
fwd = torch.compile(model) if a.mode == "compile" else model


def step(xb, yb):
    logits = fwd(xb)
    loss = F.cross_entropy(logits.view(-1, V), yb.view(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


rng = np.random.default_rng(0)
batches = [tuple(torch.from_numpy(z) for z in windows(train_ids, B, T, rng)) for _ in range(a.warmup + a.steps)]
for xb, yb in batches[: a.warmup]:
    step(xb, yb)
t0 = time.perf_counter()
for xb, yb in batches[a.warmup :]:
    loss = step(xb, yb)
loss = loss.item()
sec = time.perf_counter() - t0
tokens = a.steps * B * T

# Generation: one prompt, sampling at temperature 0.8 with top-k 200; a key/value cache
# while the context fits the window, then (learned positions shift) the last T tokens
# recomputed for each new one, as nanoGPT's generate crops.
model.eval()
with torch.no_grad():
    seq = torch.tensor([[chars.index(c) for c in "ROMEO:"]])
    g0 = time.perf_counter()
    caches = [[] for _ in range(L)]
    logits = model(seq, caches, 0)
    for made in range(a.gen):
        probs = F.softmax(logits[:, -1] / 0.8, dim=-1)
        v, _ = torch.topk(probs, min(200, V))
        probs[probs < v[:, [-1]]] = 0
        nxt = torch.multinomial(probs, 1)
        seq = torch.cat([seq, nxt], 1)
        if seq.shape[1] <= T:
            logits = model(nxt, caches, seq.shape[1] - 1)
        else:
            logits = model(seq[:, -T:])
    made = a.gen
    gen_sec = time.perf_counter() - g0
print(json.dumps({
    "system": f"PyTorch {a.mode}", "workload": "w5", "threads": a.threads, "steps": a.steps,
    "tokens_per_s": tokens / sec, "ms_per_step": 1e3 * sec / a.steps,
    "gflops": train_flops_per_token(V) * tokens / sec / 1e9, "loss": loss,
    "gen_tokens_per_s": made / gen_sec, "gen_tokens": made,
    "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))

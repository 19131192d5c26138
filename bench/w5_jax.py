"""W5 (docs/workloads.md) in JAX + optax: nanoGPT's shakespeare_char model at its CPU
size (as bench/w5_torch.py: fused QKV, causal softmax attention, exact GELU, no bias,
tied head), AdamW (β₂ 0.99, wd 0.1 on matrices) after global clipping at 1. `--mode
step` jits one training step and calls it per batch; `--mode scan` jits `lax.scan` over
all timed batches (the strongest form for small models). Warm-up (compilation) first,
then `--steps` timed steps. One JSON line on stdout.

    .venv/bin/python bench/w5_jax.py [--mode step|scan] [--steps 200]
"""
import argparse
import json
import resource
import time

import numpy as np

from shakespeare import CONFIG, load, train_flops_per_token, windows

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2, help="informational: XLA uses every core of this machine")
p.add_argument("--mode", choices=["step", "scan"], default="scan")
p.add_argument("--steps", type=int, default=200)
p.add_argument("--warmup", type=int, default=20)
a = p.parse_args()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

C, H, L, T, B = CONFIG["n_embd"], CONFIG["n_head"], CONFIG["n_layer"], CONFIG["block"], CONFIG["batch"]
chars, train_ids, _ = load()
V = len(chars)
key = jax.random.PRNGKey(0)


def normal(k, shape):
    return 0.02 * jax.random.normal(k, shape)


keys = iter(jax.random.split(key, 64))
params = {"wte": normal(next(keys), (V, C)), "wpe": normal(next(keys), (T, C)), "ln_f": jnp.ones(C), "h": []}
for _ in range(L):
    params["h"].append({
        "ln_1": jnp.ones(C), "ln_2": jnp.ones(C),
        "attn": normal(next(keys), (C, 3 * C)), "proj": normal(next(keys), (C, C)),
        "fc": normal(next(keys), (C, 4 * C)), "fc_proj": normal(next(keys), (4 * C, C)),
    })


def ln(x, g):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / jnp.sqrt(v + 1e-5) * g


mask = jnp.tril(jnp.ones((T, T), bool))


def forward(p, idx):
    x = p["wte"][idx] + p["wpe"][: idx.shape[1]]
    for blk in p["h"]:
        q, k, v = jnp.split(ln(x, blk["ln_1"]) @ blk["attn"], 3, axis=-1)
        q, k, v = (z.reshape(B, T, H, C // H).transpose(0, 2, 1, 3) for z in (q, k, v))
        s = jnp.where(mask, q @ k.transpose(0, 1, 3, 2) / np.sqrt(C // H), -jnp.inf)
        y = (jax.nn.softmax(s, -1) @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + y @ blk["proj"]
        x = x + jax.nn.gelu(ln(x, blk["ln_2"]) @ blk["fc"], approximate=False) @ blk["fc_proj"]
    return ln(x, p["ln_f"]) @ p["wte"].T


def loss_fn(p, xb, yb):
    return optax.softmax_cross_entropy_with_integer_labels(forward(p, xb), yb).mean()


decay_mask = jax.tree_util.tree_map(lambda z: z.ndim >= 2, params)
opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.1, mask=decay_mask))
state = opt.init(params)


def step(carry, batch):
    p, s = carry
    loss, g = jax.value_and_grad(loss_fn)(p, *batch)
    upd, s = opt.update(g, s, p)
    return (optax.apply_updates(p, upd), s), loss


rng = np.random.default_rng(0)
def batches(n):
    xs, ys = zip(*(windows(train_ids, B, T, rng) for _ in range(n)))
    return jnp.asarray(np.stack(xs), jnp.int32), jnp.asarray(np.stack(ys), jnp.int32)


carry = (params, state)
if a.mode == "scan":
    run = jax.jit(lambda c, xs, ys: jax.lax.scan(step, c, (xs, ys)))
    wx, wy = batches(a.steps)  # compile for the timed length
    carry, _ = run(carry, wx, wy)
    jax.block_until_ready(carry)
    xs, ys = batches(a.steps)
    t0 = time.perf_counter()
    carry, losses = run(carry, xs, ys)
    jax.block_until_ready(losses)
    sec = time.perf_counter() - t0
    loss = float(losses[-1])
else:
    one = jax.jit(step)
    wx, wy = batches(a.warmup)
    for i in range(a.warmup):
        carry, l = one(carry, (wx[i], wy[i]))
    jax.block_until_ready(l)
    xs, ys = batches(a.steps)
    t0 = time.perf_counter()
    for i in range(a.steps):
        carry, l = one(carry, (xs[i], ys[i]))
    jax.block_until_ready(l)
    sec = time.perf_counter() - t0
    loss = float(l)
tokens = a.steps * B * T
print(json.dumps({
    "system": f"JAX {a.mode}", "workload": "w5", "threads": a.threads, "steps": a.steps,
    "tokens_per_s": tokens / sec, "ms_per_step": 1e3 * sec / a.steps,
    "gflops": train_flops_per_token(V) * tokens / sec / 1e9, "loss": loss,
    "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))

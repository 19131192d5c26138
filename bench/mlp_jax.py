"""W1 and W2 (docs/workloads.md) in JAX + optax, in the two forms a performance-minded
user writes:

  --form step  a jitted training step, called once per batch from Python;
  --form scan  a whole epoch as one jitted `lax.scan` over the batches.

Same model, loss, Adam(1e-3, eps=1e-7) and teacher data as the other peers. Each epoch
draws a fresh permutation; the gather of the shuffled batches happens inside the timed
region (inside the compiled epoch for `scan`), as it does for every other system. `scan`
needs equal batches, so W2 uses 234 full batches of 256 (59,904 of the 60,000 samples)
per epoch and reports samples actually trained. One JSON line on stdout.

    .venv/bin/python bench/mlp_jax.py w1|w2 --form step|scan
"""
import argparse
import json
import resource
import time

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("workload", choices=["w1", "w2"])
p.add_argument("--form", choices=["step", "scan"], default="scan")
p.add_argument("--threads", type=int, default=2, help="informational: XLA uses every core of this machine")
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()

import jax  # noqa: E402  (after argparse, so --help is fast)
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

if a.workload == "w1":
    features, hidden, batch, epochs, teacher_hidden = 100, [64], 32, 10, 32
else:
    features, hidden, batch, epochs, teacher_hidden = 784, [1024, 1024], 256, 2, 64

rng = np.random.default_rng(a.seed)
t1 = rng.standard_normal((features, teacher_hidden), dtype=np.float32)
t2 = rng.standard_normal((teacher_hidden, 10), dtype=np.float32)


def make(n):
    x = rng.standard_normal((n, features), dtype=np.float32)
    return x, np.argmax(np.maximum(x @ t1, 0) @ t2, axis=1).astype(np.int32)


x_np, y_np = make(60000)
xt_np, yt_np = make(10000)
x, y, xt, yt = map(jnp.asarray, (x_np, y_np, xt_np, yt_np))

sizes = [features] + hidden + [10]
key = jax.random.PRNGKey(a.seed)
glorot = jax.nn.initializers.glorot_uniform()
params = []
for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
    key, sub = jax.random.split(key)
    params.append((glorot(sub, (fan_in, fan_out), jnp.float32), jnp.zeros((fan_out,), jnp.float32)))
opt = optax.adam(1e-3, eps=1e-7)
opt_state = opt.init(params)


def forward(params, xb):
    h = xb
    for w, b in params[:-1]:
        h = jax.nn.relu(h @ w + b)
    w, b = params[-1]
    return h @ w + b


def loss_fn(params, xb, yb):
    return optax.softmax_cross_entropy_with_integer_labels(forward(params, xb), yb).mean()


def update(params, opt_state, xb, yb):
    loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


steps = 60000 // batch
trained = steps * batch

if a.form == "step":
    # The batch's rows are gathered inside the jitted step: slicing and indexing device
    # arrays from Python would dispatch extra ops per batch (718 steps/s on W1, measured).
    @jax.jit
    def step(params, opt_state, x, y, idx):
        return update(params, opt_state, x[idx], y[idx])

    def run_epoch(params, opt_state, perm):
        perm = np.asarray(perm)
        for i in range(steps):
            params, opt_state, loss = step(params, opt_state, x, y, perm[i * batch:(i + 1) * batch])
        return params, opt_state, loss
else:
    @jax.jit
    def run_epoch(params, opt_state, perm):
        xb = x[perm[:trained]].reshape(steps, batch, features)
        yb = y[perm[:trained]].reshape(steps, batch)

        def body(carry, b):
            params, opt_state = carry
            params, opt_state, loss = update(params, opt_state, *b)
            return (params, opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), (xb, yb))
        return params, opt_state, losses[-1]

epoch_s = []
perm_key = jax.random.PRNGKey(a.seed + 1)
for epoch in range(epochs):
    perm_key, sub = jax.random.split(perm_key)
    perm = jax.random.permutation(sub, 60000)
    perm.block_until_ready()
    t = time.perf_counter()
    params, opt_state, loss = run_epoch(params, opt_state, perm)
    jax.block_until_ready(params)
    epoch_s.append(time.perf_counter() - t)

acc = float((forward(params, xt).argmax(1) == yt).mean())
# The first epoch compiles; the rest are timed (W1: median of epochs 2..10; W2: epoch 2).
med = float(np.median(epoch_s[1:]))
weights = sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))
print(json.dumps({
    "system": f"jax {jax.__version__} + optax {optax.__version__} ({'jit step' if a.form == 'step' else 'lax.scan epoch'})",
    "workload": a.workload, "form": a.form, "threads": a.threads, "sec_per_epoch": med,
    "steps_per_s": steps / med, "samples_per_s": trained / med,
    "gflops": 6.0 * weights * trained / med / 1e9, "test_accuracy": acc,
    "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))

"""W4 (docs/workloads.md) in JAX + optax, the epoch as one jitted `lax.scan` over the
batches (the strongest form for small models): Keras's mnist_convnet on Fashion-MNIST,
NHWC as Keras, Adam 1e-3 (eps 1e-7), batch 128, dropout 0.5. A warm-up run of the
compiled epoch over `--warmup` batches (compilation), then one timed epoch over
`--samples` images (whole batches). One JSON line on stdout.

    .venv/bin/python bench/w4_jax.py [--samples 60000]
"""
import argparse
import json
import resource
import time

import numpy as np

from fashion import TRAIN_FLOPS, load

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2, help="informational: XLA uses every core of this machine")
p.add_argument("--samples", type=int, default=60000)
p.add_argument("--warmup", type=int, default=10)
a = p.parse_args()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

batch = 128
x_np, y_np, xt_np, yt_np = load(a.samples)
x, y = jnp.asarray(x_np), jnp.asarray(y_np.astype(np.int32))
xt, yt = jnp.asarray(xt_np), jnp.asarray(yt_np.astype(np.int32))
key = jax.random.PRNGKey(0)
k1, k2, k3, key = jax.random.split(key, 4)
glorot = jax.nn.initializers.glorot_uniform()
params = {
    "c1": (glorot(k1, (3, 3, 1, 32)), jnp.zeros(32)),
    "c2": (glorot(k2, (3, 3, 32, 64)), jnp.zeros(64)),
    "d": (glorot(k3, (1600, 10)), jnp.zeros(10)),
}
opt = optax.adam(1e-3, eps=1e-7)
opt_state = opt.init(params)
dn = ("NHWC", "HWIO", "NHWC")


def forward(params, xb, drop_key):
    h = xb
    for name in ("c1", "c2"):
        w, b = params[name]
        h = jax.nn.relu(jax.lax.conv_general_dilated(h, w, (1, 1), "VALID", dimension_numbers=dn) + b)
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    h = h.reshape(h.shape[0], -1)
    if drop_key is not None:
        keep = jax.random.bernoulli(drop_key, 0.5, h.shape)
        h = jnp.where(keep, h / 0.5, 0.0)
    w, b = params["d"]
    return h @ w + b


def loss_fn(params, xb, yb, k):
    return optax.softmax_cross_entropy_with_integer_labels(forward(params, xb, k), yb).mean()


@jax.jit
def run_epoch(params, opt_state, perm, key):
    def step(carry, idx):
        params, opt_state, key = carry
        key, sub = jax.random.split(key)
        grads = jax.grad(loss_fn)(params, x[idx], y[idx], sub)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), None

    (params, opt_state, key), _ = jax.lax.scan(step, (params, opt_state, key), perm)
    return params, opt_state, key


rng = np.random.default_rng(0)
steps = a.samples // batch


def perm(n_steps):
    return jnp.asarray(rng.permutation(a.samples)[: n_steps * batch].reshape(n_steps, batch))


# The warm-up compiles the epoch for its own length; the timed epoch has another length,
# so it is compiled first too (compilation is not training time).
params_w, state_w, _ = run_epoch(params, opt_state, perm(a.warmup), key)
jax.block_until_ready(params_w)
timed = perm(steps)
run_epoch.lower(params, opt_state, timed, key).compile()
t = time.perf_counter()
params, opt_state, key = run_epoch(params, opt_state, timed, key)
jax.block_until_ready(params)
sec = time.perf_counter() - t
acc = float((jnp.argmax(jax.jit(lambda p, v: forward(p, v, None))(params, xt), 1) == yt).mean())
n = steps * batch
print(json.dumps({
    "system": f"JAX {jax.__version__} scan", "workload": "w4", "threads": a.threads,
    "sec_per_epoch": sec, "samples_per_s": n / sec, "gflops": TRAIN_FLOPS * n / sec / 1e9,
    "test_accuracy": acc, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))

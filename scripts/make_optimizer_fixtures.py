"""Reference values for descent's optimizer tests, computed by Keras 3 itself.

Run (from the repository root, after `bash scripts/setup_python.sh`):
    KERAS_BACKEND=torch .venv/bin/python scripts/make_optimizer_fixtures.py

Writes fixtures/optimizers.json: for each optimizer configuration, three parameter
tensors, a fixed sequence of gradients, and the parameters after every step. Keras's
optimizers are applied through `apply_gradients` exactly as `model.fit` does.
A PyTorch cross-check is recorded for SGD variants, whose update rules coincide.
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

STEPS = 12
SHAPES = [(3, 4), (5,), (2, 3)]
rng = np.random.default_rng(20261128)
init = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
# Gradients of mixed scales, a few exact zeros, and a sign flip mid-way: exercises
# epsilon handling, momentum reversal and AMSGrad's running max.
grads = []
for t in range(STEPS):
    step = []
    for s in SHAPES:
        g = rng.normal(size=s).astype(np.float32) * (0.1 if t % 3 == 0 else 1.0)
        g[rng.random(size=s) < 0.1] = 0.0
        if t == 6:
            g = -3.0 * g
        step.append(g.astype(np.float32))
    grads.append(step)

CONFIGS = {
    "sgd": ("SGD", dict(learning_rate=0.05)),
    "sgd_momentum": ("SGD", dict(learning_rate=0.05, momentum=0.9)),
    "sgd_nesterov": ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    "rmsprop": ("RMSprop", dict(learning_rate=0.01)),
    "rmsprop_centered": ("RMSprop", dict(learning_rate=0.01, centered=True)),
    "rmsprop_momentum": ("RMSprop", dict(learning_rate=0.01, momentum=0.8)),
    "rmsprop_centered_momentum": ("RMSprop", dict(learning_rate=0.01, momentum=0.8, centered=True, rho=0.8)),
    "adam": ("Adam", dict(learning_rate=0.01)),
    "adam_betas": ("Adam", dict(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-4)),
    "amsgrad": ("Adam", dict(learning_rate=0.01, amsgrad=True)),
}


def run_keras(cls, kwargs):
    opt = getattr(keras.optimizers, cls)(**kwargs)
    vars_ = [keras.Variable(x.copy(), dtype="float32") for x in init]
    out = []
    for step in grads:
        opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step], vars_))
        out.append([keras.ops.convert_to_numpy(v).astype(np.float32).ravel().tolist() for v in vars_])
    return out


def run_torch_sgd(kwargs):
    ps = [torch.nn.Parameter(torch.tensor(x.copy())) for x in init]
    opt = torch.optim.SGD(ps, lr=kwargs["learning_rate"], momentum=kwargs.get("momentum", 0.0),
                          nesterov=kwargs.get("nesterov", False))
    out = []
    for step in grads:
        for p, g in zip(ps, step):
            p.grad = torch.tensor(g)
        opt.step()
        out.append([p.detach().numpy().astype(np.float32).ravel().tolist() for p in ps])
    return out


fixtures = {
    "source": f"keras {keras.__version__} (backend {keras.backend.backend()}), torch {torch.__version__}",
    "shapes": [list(s) for s in SHAPES],
    "init": [x.ravel().tolist() for x in init],
    "grads": [[g.ravel().tolist() for g in step] for step in grads],
    "cases": {},
}
for name, (cls, kwargs) in CONFIGS.items():
    case = {"optimizer": cls, "hyper": kwargs, "keras": run_keras(cls, kwargs)}
    if cls == "SGD":
        case["torch"] = run_torch_sgd(kwargs)
    fixtures["cases"][name] = case

os.makedirs("fixtures", exist_ok=True)
with open("fixtures/optimizers.json", "w") as f:
    json.dump(fixtures, f)
print("wrote fixtures/optimizers.json:", ", ".join(fixtures["cases"]))

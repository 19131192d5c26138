"""Reference values for descent's optimizer and schedule tests.

Run (from the repository root, after `bash scripts/setup_python.sh`):
    KERAS_BACKEND=torch .venv/bin/python scripts/make_optimizer_fixtures.py

Writes fixtures/optimizers.json:
- `cases`: for each optimizer configuration, the parameters after each of 12 steps on
  three tensors (a 3×4 kernel, a 5-vector, a 2×3 kernel) from a fixed gradient sequence,
  computed by Keras 3 itself (`apply_gradients`, exactly as `fit` does), by PyTorch where
  Keras has no such optimizer or option, or by a NumPy transcription of the paper for
  LARS, which neither ships. `descent` holds extra descent-only keys needed to express the
  same configuration (e.g. `decay_vectors`, since Keras decays 1-D tensors too).
- `schedules`: learning rates at steps 0..N from Keras's schedules and PyTorch's
  OneCycleLR / CyclicLR.
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

STEPS = 12
SHAPES = [(3, 4), (5,), (2, 3)]
NAMES = ["w0.kernel", "b0.bias", "w1.kernel"]
rng = np.random.default_rng(20261128)
init = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
# Gradients of mixed scales, some exact zeros, and a sign flip mid-way: exercises
# epsilon handling, momentum reversal, AMSGrad's running max and Rprop's sign logic.
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

ALL = dict(decay_vectors=True)  # Keras decays every variable; descent skips 1-D by default

# name: (framework, class, kwargs, descent-only extra keys)
CONFIGS = {
    "sgd": ("keras", "SGD", dict(learning_rate=0.05), {}),
    "sgd_momentum": ("keras", "SGD", dict(learning_rate=0.05, momentum=0.9), {}),
    "sgd_nesterov": ("keras", "SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True), {}),
    "rmsprop": ("keras", "RMSprop", dict(learning_rate=0.01), {}),
    "rmsprop_centered": ("keras", "RMSprop", dict(learning_rate=0.01, centered=True), {}),
    "rmsprop_momentum": ("keras", "RMSprop", dict(learning_rate=0.01, momentum=0.8), {}),
    "rmsprop_centered_momentum": ("keras", "RMSprop", dict(learning_rate=0.01, momentum=0.8, centered=True, rho=0.8), {}),
    "adam": ("keras", "Adam", dict(learning_rate=0.01), {}),
    "adam_betas": ("keras", "Adam", dict(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-4), {}),
    "amsgrad": ("keras", "Adam", dict(learning_rate=0.01, amsgrad=True), {}),
    "adamw": ("keras", "AdamW", dict(learning_rate=0.01, weight_decay=0.1), ALL),
    "adamax": ("keras", "Adamax", dict(learning_rate=0.01), {}),
    "nadam": ("keras", "Nadam", dict(learning_rate=0.01), {}),
    "adagrad": ("keras", "Adagrad", dict(learning_rate=0.1), {}),
    "adadelta": ("keras", "Adadelta", dict(learning_rate=1.0), {}),
    "adafactor": ("keras", "Adafactor", dict(learning_rate=0.05), {}),
    "ftrl": ("keras", "Ftrl", dict(learning_rate=0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.02,
                                   l2_shrinkage_regularization_strength=0.01, beta=0.1), {}),
    "lion": ("keras", "Lion", dict(learning_rate=0.01), {}),
    "lamb": ("keras", "Lamb", dict(learning_rate=0.01), {}),
    # Muon orthogonalizes the two kernels and takes Adam for the bias (weight decay 0.004
    # on both parts, Keras's defaults); the second case sends w1 to Adam by name.
    "muon": ("keras", "Muon", dict(learning_rate=0.01), ALL),
    "muon_options": ("keras", "Muon", dict(learning_rate=0.02, momentum=0.9, nesterov=False, rms_rate=0.1, adam_lr_ratio=0.5,
                                           exclude_layers=["w1"]), ALL),
    # Keras 3.15's ScheduleFreeAdamW on the torch backend departs from the paper: its
    # `momentum_old = momentum.value` aliases the variable that `assign_sub` then updates,
    # so x_old is computed from the *new* z. descent follows the paper; the reference is
    # a NumPy transcription of it (this script checks the Keras discrepancy below).
    "schedule_free_adamw": ("numpy", "ScheduleFreeAdamW", dict(learning_rate=0.01, warmup_steps=3), {}),
    # Keras's common options on various optimizers.
    "adam_weight_decay": ("keras", "Adam", dict(learning_rate=0.01, weight_decay=0.05), ALL),
    "sgd_clipnorm": ("keras", "SGD", dict(learning_rate=0.05, momentum=0.5, clipnorm=0.5), {}),
    "adam_global_clipnorm": ("keras", "Adam", dict(learning_rate=0.01, global_clipnorm=1.0), {}),
    "rmsprop_clipvalue": ("keras", "RMSprop", dict(learning_rate=0.01, clipvalue=0.3), {}),
    "adam_accumulation": ("keras", "Adam", dict(learning_rate=0.01, gradient_accumulation_steps=3), {}),
    "sgd_ema": ("keras", "SGD", dict(learning_rate=0.05, momentum=0.9, use_ema=True, ema_momentum=0.8), {}),
    "sgd_ema_overwrite": ("keras", "SGD", dict(learning_rate=0.05, use_ema=True, ema_momentum=0.7,
                                                ema_overwrite_frequency=4), {}),
    "adam_cosine": ("keras", "Adam", dict(learning_rate=dict(name="cosine_decay", initial_learning_rate=0.02,
                                                              decay_steps=10, alpha=0.1)), {}),
    "lion_exponential": ("keras", "Lion", dict(learning_rate=dict(name="exponential_decay", initial_learning_rate=0.01,
                                                                   decay_steps=3, decay_rate=0.5, staircase=True)), {}),
    # PyTorch references.
    "radam": ("torch", "RAdam", dict(learning_rate=0.01), {}),
    "rprop": ("torch", "Rprop", dict(learning_rate=0.01), {}),
    "sgd_dampening": ("torch", "SGD", dict(learning_rate=0.05, momentum=0.9, dampening=0.3), {}),
    "sgd_l2": ("torch", "SGD", dict(learning_rate=0.05, momentum=0.9, l2=0.1), ALL),
    # NumPy transcription (no framework ships LARS).
    "lars": ("numpy", "Lars", dict(learning_rate=0.5, momentum=0.9, trust_coefficient=0.02, l2=0.01), ALL),
    "lars_nesterov": ("numpy", "Lars", dict(learning_rate=0.5, momentum=0.9, nesterov=True, trust_coefficient=0.02), {}),
}

KERAS_SCHEDULES = {
    "cosine_decay": dict(initial_learning_rate=0.1, decay_steps=20),
    "exponential_decay": dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.6, staircase=False),
    "inverse_time_decay": dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.5, staircase=True),
    "polynomial_decay": dict(initial_learning_rate=0.1, decay_steps=15, end_learning_rate=0.01, power=2.0),
    "piecewise_constant_decay": dict(boundaries=[5, 12], values=[0.1, 0.05, 0.01]),
    "cosine_decay_restarts": dict(initial_learning_rate=0.1, first_decay_steps=6, t_mul=2.0, m_mul=0.5, alpha=0.05),
}
KERAS_EXTRA = {
    "polynomial_decay_cycle": ("polynomial_decay", dict(initial_learning_rate=0.1, decay_steps=8, end_learning_rate=0.01, power=1.5, cycle=True)),
    "cosine_decay_warmup": ("cosine_decay", dict(initial_learning_rate=0.0, decay_steps=20, alpha=0.1, warmup_target=0.1, warmup_steps=5)),
    "cosine_decay_restarts_t1": ("cosine_decay_restarts", dict(initial_learning_rate=0.1, first_decay_steps=5, t_mul=1.0, m_mul=0.9)),
}


def keras_schedule(name, kwargs):
    cls = {"cosine_decay": "CosineDecay", "exponential_decay": "ExponentialDecay", "inverse_time_decay": "InverseTimeDecay",
           "polynomial_decay": "PolynomialDecay", "piecewise_constant_decay": "PiecewiseConstantDecay",
           "cosine_decay_restarts": "CosineDecayRestarts"}[name]
    return getattr(keras.optimizers.schedules, cls)(**kwargs)


def run_keras(cls, kwargs):
    kwargs = dict(kwargs)
    lr = kwargs.get("learning_rate")
    if isinstance(lr, dict):
        lr = dict(lr)
        kwargs["learning_rate"] = keras_schedule(lr.pop("name"), lr)
    opt = getattr(keras.optimizers, cls)(**kwargs)
    vars_ = [keras.Variable(x.copy(), dtype="float32", name=n.replace(".", "_")) for x, n in zip(init, NAMES)]
    out, ema = [], []
    for step in grads:
        opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step], vars_))
        out.append([keras.ops.convert_to_numpy(v).astype(np.float32).ravel().tolist() for v in vars_])
        if kwargs.get("use_ema"):
            ema.append([keras.ops.convert_to_numpy(a).astype(np.float32).ravel().tolist()
                        for a in opt._model_variables_moving_average])
    return out, ema


def run_torch(cls, kw):
    ps = [torch.nn.Parameter(torch.tensor(x.copy())) for x in init]
    lr = kw["learning_rate"]
    if cls == "SGD":
        opt = torch.optim.SGD(ps, lr=lr, momentum=kw.get("momentum", 0.0), dampening=kw.get("dampening", 0.0),
                              weight_decay=kw.get("l2", 0.0))
    elif cls == "RAdam":
        opt = torch.optim.RAdam(ps, lr=lr)
    elif cls == "Rprop":
        opt = torch.optim.Rprop(ps, lr=lr)
    out = []
    for step in grads:
        for p, g in zip(ps, step):
            p.grad = torch.tensor(g)
        opt.step()
        out.append([p.detach().numpy().astype(np.float32).ravel().tolist() for p in ps])
    return out


def run_lars(kw):
    """LARS (You et al. 2017) as timm implements it, in float32 NumPy."""
    lr, mu, tau = np.float32(kw["learning_rate"]), np.float32(kw["momentum"]), np.float32(kw["trust_coefficient"])
    l2, eps, nesterov = np.float32(kw.get("l2", 0.0)), np.float32(1e-8), kw.get("nesterov", False)
    ps = [x.copy() for x in init]
    bufs = [np.zeros_like(x) for x in init]
    out = []
    for step in grads:
        for i, g in enumerate(step):
            p = ps[i]
            w_norm = np.sqrt(np.sum(p.astype(np.float64) ** 2))
            g_norm = np.sqrt(np.sum(g.astype(np.float64) ** 2))
            trust = np.float32(tau * w_norm / (g_norm + l2 * w_norm + eps)) if w_norm > 0 and g_norm > 0 else np.float32(1)
            gs = (trust * (g + l2 * p)).astype(np.float32)
            bufs[i] = (mu * bufs[i] + gs).astype(np.float32)
            upd = gs + mu * bufs[i] if nesterov else bufs[i]
            ps[i] = (p - lr * upd).astype(np.float32)
        out.append([p.ravel().tolist() for p in ps])
    return out


def run_schedule_free(kw, z_new_for_x_old=False):
    """Schedule-free AdamW (Defazio et al. 2024) in float32 NumPy, Keras's parametrization."""
    lr0, b1, b2, eps, warm = kw["learning_rate"], 0.9, 0.999, 1e-8, kw.get("warmup_steps", 0)
    y = [x.copy() for x in init]
    z = [x.copy() for x in init]
    v = [np.zeros_like(x) for x in init]
    out = []
    for t, step in enumerate(grads, 1):
        lr = np.float32(lr0 * (min(t / warm, 1.0) if warm else 1.0))
        for i, g in enumerate(step):
            z_old = z[i].copy()
            v[i] = (v[i] + (g * g - v[i]) * np.float32(1 - b2)).astype(np.float32)
            denom = np.sqrt(v[i] / np.float32(1 - b2 ** t)) + np.float32(eps)
            z[i] = (z[i] - lr * g / denom).astype(np.float32)
            zo = z[i] if z_new_for_x_old else z_old
            x_old = (y[i] - np.float32(1 - b1) * zo) / np.float32(b1)
            w = np.float32(1.0 / t)
            x_new = (1 - w) * x_old + w * z[i]
            y[i] = (np.float32(1 - b1) * z[i] + np.float32(b1) * x_new).astype(np.float32)
        out.append([p.ravel().tolist() for p in y])
    return out


def torch_schedules(steps=40):
    res = {}
    def record(make):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
        sched = make(opt)
        vals = []
        for _ in range(steps):
            vals.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        return vals
    oc = torch.optim.lr_scheduler.OneCycleLR
    res["one_cycle"] = (dict(name="one_cycle", max_learning_rate=0.1, total_steps=steps),
                        record(lambda o: oc(o, max_lr=0.1, total_steps=steps, cycle_momentum=False)))
    res["one_cycle_linear_three_phase"] = (
        dict(name="one_cycle", max_learning_rate=0.2, total_steps=steps, pct_start=0.25, anneal_strategy="linear",
             div_factor=10.0, final_div_factor=100.0, three_phase=True),
        record(lambda o: oc(o, max_lr=0.2, total_steps=steps, pct_start=0.25, anneal_strategy="linear", div_factor=10.0,
                            final_div_factor=100.0, three_phase=True, cycle_momentum=False)))
    cy = torch.optim.lr_scheduler.CyclicLR
    for mode, extra in [("triangular", {}), ("triangular2", {}), ("exp_range", dict(gamma=0.97))]:
        res[f"cyclic_{mode}"] = (
            dict(name="cyclic", base_learning_rate=0.01, max_learning_rate=0.1, step_size_up=5, step_size_down=3, mode=mode, **extra),
            record(lambda o: cy(o, base_lr=0.01, max_lr=0.1, step_size_up=5, step_size_down=3, mode=mode, cycle_momentum=False, **extra)))
    return res


fixtures = {
    "source": f"keras {keras.__version__} (backend {keras.backend.backend()}), torch {torch.__version__}, numpy {np.__version__}",
    "names": NAMES,
    "shapes": [list(s) for s in SHAPES],
    "init": [x.ravel().tolist() for x in init],
    "grads": [[g.ravel().tolist() for g in step] for step in grads],
    "cases": {},
    "schedules": {},
}
for name, (framework, cls, kwargs, extra) in CONFIGS.items():
    case = {"framework": framework, "optimizer": cls, "hyper": kwargs, "descent": extra}
    if framework == "keras":
        case["params"], ema = run_keras(cls, kwargs)
        if ema:
            case["ema"] = ema
    elif framework == "torch":
        case["params"] = run_torch(cls, kwargs)
    elif cls == "Lars":
        case["params"] = run_lars(kwargs)
    else:
        case["params"] = run_schedule_free(kwargs)
        keras_out, _ = run_keras(cls, kwargs)
        aliased = run_schedule_free(kwargs, z_new_for_x_old=True)
        gap = max(abs(a - b) for s1, s2 in zip(keras_out, aliased) for t1, t2 in zip(s1, s2) for a, b in zip(t1, t2))
        paper_gap = max(abs(a - b) for s1, s2 in zip(keras_out, case["params"]) for t1, t2 in zip(s1, s2) for a, b in zip(t1, t2))
        print(f"schedule_free_adamw: Keras vs paper max |diff| {paper_gap:.2e}; Keras vs aliased-z variant {gap:.2e}")
    fixtures["cases"][name] = case

for key, (name, kwargs) in list((n, (n, k)) for n, k in KERAS_SCHEDULES.items()) + list(KERAS_EXTRA.items()):
    sched = keras_schedule(name, kwargs)
    values = [float(keras.ops.convert_to_numpy(sched(s))) for s in range(40)]
    fixtures["schedules"][key] = {"source": "keras", "schedule": dict(name=name, **kwargs), "values": values}
for key, (spec, values) in torch_schedules().items():
    fixtures["schedules"][key] = {"source": "torch", "schedule": spec, "values": values}

os.makedirs("fixtures", exist_ok=True)
with open("fixtures/optimizers.json", "w") as f:
    json.dump(fixtures, f)
print(f"wrote fixtures/optimizers.json: {len(fixtures['cases'])} optimizer cases, {len(fixtures['schedules'])} schedules")

"""Reference values for descent's BatchNormalization and LayerNormalization from Keras 3
(default arguments, non-trivial γ and β). Writes fixtures/normalization.json.

    KERAS_BACKEND=torch .venv/bin/python scripts/make_normalization_fixtures.py
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras
import numpy as np

rng = np.random.default_rng(7)
x = (rng.normal(size=(6, 4)) * np.array([1.0, 3.0, 0.5, 2.0]) + np.array([0.0, 5.0, -1.0, 2.0])).astype(np.float32)
gamma = np.array([1.0, 0.5, 2.0, -1.0], dtype=np.float32)
beta = np.array([0.0, 0.1, -0.2, 0.3], dtype=np.float32)

bn = keras.layers.BatchNormalization()
bn.build((None, 4))
bn.gamma.assign(gamma)
bn.beta.assign(beta)
train_out = keras.ops.convert_to_numpy(bn(x, training=True))
moving_mean = keras.ops.convert_to_numpy(bn.moving_mean)
moving_var = keras.ops.convert_to_numpy(bn.moving_variance)
infer_out = keras.ops.convert_to_numpy(bn(x, training=False))

ln = keras.layers.LayerNormalization()
ln.build((None, 4))
ln.gamma.assign(gamma)
ln.beta.assign(beta)
ln_out = keras.ops.convert_to_numpy(ln(x))

out = {
    "generator": f"scripts/make_normalization_fixtures.py, Keras {keras.__version__} ({keras.backend.backend()})",
    "x": x.tolist(), "gamma": gamma.tolist(), "beta": beta.tolist(),
    "batch_norm": {"train": train_out.tolist(), "moving_mean": moving_mean.tolist(),
                   "moving_variance": moving_var.tolist(), "inference_after_one_step": infer_out.tolist()},
    "layer_norm": ln_out.tolist(),
}
with open("fixtures/normalization.json", "w") as f:
    json.dump(out, f, indent=1)
print("wrote fixtures/normalization.json")

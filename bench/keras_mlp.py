"""W1 / W2 (WORKLOADS.md) in Keras 3 on TensorFlow, with model.fit as users run it.
Prints one JSON line (same keys as the PyTorch scripts).

    KERAS_BACKEND=tensorflow .venv/bin/python bench/keras_mlp.py w1|w2 [--threads 2]
"""
import argparse
import json
import os
import resource
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

p = argparse.ArgumentParser()
p.add_argument("workload", choices=["w1", "w2"])
p.add_argument("--threads", type=int, default=2)
p.add_argument("--epochs", type=int, default=None)
a = p.parse_args()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(a.threads)
tf.config.threading.set_inter_op_parallelism_threads(a.threads)
import keras  # noqa: E402

features, hidden, batch, epochs = {"w1": (100, [64], 32, 10), "w2": (784, [1024, 1024], 256, 2)}[a.workload]
epochs = a.epochs or epochs
teacher_hidden = 32 if a.workload == "w1" else 64
rng = np.random.default_rng(0)
t1 = rng.standard_normal((features, teacher_hidden), dtype=np.float32)
t2 = rng.standard_normal((teacher_hidden, 10), dtype=np.float32)


def make(n):
    x = rng.standard_normal((n, features), dtype=np.float32)
    return x, np.argmax(np.maximum(x @ t1, 0) @ t2, axis=1)


x, y = make(60000)
xt, yt = make(10000)
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((features,))] + [keras.layers.Dense(h, activation="relu") for h in hidden]
                         + [keras.layers.Dense(10)])
model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


class Timer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.t)


timer = Timer()
model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
sec = float(np.median(timer.times[1:]))
acc = float(model.evaluate(xt, yt, batch_size=1024, verbose=0)[1])
P = sum(int(np.prod(w.shape)) for w in model.weights if len(w.shape) == 2)
steps = -(-60000 // batch)
print(json.dumps({"system": f"keras {keras.__version__} / tensorflow {tf.__version__}", "threads": a.threads,
                  "sec_per_epoch": sec, "steps_per_s": steps / sec, "samples_per_s": 60000 / sec,
                  "gflops": 6 * P * 60000 / sec / 1e9, "test_accuracy": acc,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))

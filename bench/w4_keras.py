"""W4 (docs/workloads.md) in Keras 3 (TensorFlow backend): Keras's mnist_convnet on
Fashion-MNIST, Adam 1e-3, batch 128. A warm-up fit over `--warmup` batches, then one
timed epoch over `--samples` images. One JSON line on stdout.

    KERAS_BACKEND=tensorflow .venv/bin/python bench/w4_keras.py [--threads 2]
"""
import argparse
import json
import os
import resource
import time

from fashion import TRAIN_FLOPS, load

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--samples", type=int, default=60000)
p.add_argument("--warmup", type=int, default=10)
a = p.parse_args()
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(a.threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
keras.utils.set_random_seed(0)
x, y, xt, yt = load(a.samples)
L = keras.layers
model = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                          L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(), L.Dropout(0.5),
                          L.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x[: a.warmup * 128], y[: a.warmup * 128], batch_size=128, epochs=1, verbose=0)
t = time.perf_counter()
model.fit(x, y, batch_size=128, epochs=1, verbose=0)
sec = time.perf_counter() - t
acc = model.evaluate(xt, yt, batch_size=1024, verbose=0)[1]
print(json.dumps({
    "system": f"Keras {keras.__version__} (TensorFlow {tf.__version__})", "workload": "w4", "threads": a.threads,
    "sec_per_epoch": sec, "samples_per_s": a.samples / sec, "gflops": TRAIN_FLOPS * a.samples / sec / 1e9,
    "test_accuracy": acc, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))

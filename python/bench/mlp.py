"""W1 and W2 (the MLP workloads of `descent bench`) driven from Python through
descent.keras, timed per epoch as `descent bench-child` times them, and compared with the
CLI's child in alternating runs, so a slow moment of a shared machine hits both.

    python python/bench/mlp.py [--workload w1|w2] [--rounds 3] [--descent target/release/descent]

Prints one JSON line per run and the ratio Python / CLI of the medians. The data are
random (same shapes as the CLI's teacher data): a dense step costs the same whatever the
values."""

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from descent import keras

WORKLOADS = {  # features, hidden, batch, epochs (as bench_mlp.rs)
    "w1": (100, [64], 32, 10),
    "w2": (784, [1024, 1024], 256, 2),
}


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def python_run(workload, samples=60_000):
    features, hidden, batch, epochs = WORKLOADS[workload]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, features)).astype(np.float32)
    y = rng.integers(0, 10, size=samples)
    layers = [keras.layers.Dense(h, activation="relu", **({"input_shape": (features,)} if i == 0 else {})) for i, h in enumerate(hidden)]
    model = keras.Sequential(layers + [keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[timer])
    sec = float(np.median(timer.seconds[1:]))
    steps = -(-samples // batch)
    return {"system": "descent (Python)", "workload": workload, "sec_per_epoch": sec, "steps_per_s": steps / sec, "samples_per_s": samples / sec}


def cli_run(binary, workload):
    out = subprocess.run([binary, "bench-child", workload, "--telemetry", "0"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="w1", choices=sorted(WORKLOADS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--descent", default="target/release/descent")
    ap.add_argument("--child", action="store_true", help="one Python run, one JSON line (used by the driver)")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(python_run(a.workload)))
        return
    key = "steps_per_s" if a.workload == "w1" else "samples_per_s"
    py, cli = [], []
    for r in range(a.rounds):
        # Each Python run in its own process, as the CLI's child is.
        out = subprocess.run([sys.executable, __file__, "--workload", a.workload, "--child"], capture_output=True, text=True, check=True)
        p = json.loads(out.stdout.strip().splitlines()[-1])
        c = cli_run(a.descent, a.workload)
        print(json.dumps(p))
        print(json.dumps(c))
        py.append(p[key])
        cli.append(c[key])
    pm, cm = float(np.median(py)), float(np.median(cli))
    print(f"{a.workload}: Python {pm:,.0f} {key}, CLI {cm:,.0f}: Python / CLI = {pm / cm:.3f} (medians of {a.rounds} alternating runs)")


if __name__ == "__main__":
    main()

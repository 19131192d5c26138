"""descent's Keras surface from Python, against descent's own results and behaviour."""

import _thread
import json
import subprocess
import threading
import time

import numpy as np
import pytest
from safetensors_reader import read_safetensors

import descent
from descent import keras


def classic(seed=3):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Dense(64, activation="relu", input_shape=(64,), name="hidden"), keras.layers.Dense(10, name="out")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def test_the_seed_program_runs_as_written_and_warns_like_keras():
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(1000, 100)).astype("float32")
    y_train = x_train[:, :10].argmax(axis=1)
    model = keras.Sequential([
        keras.layers.Dense(64, activation='relu', input_shape=(100,)),
        keras.layers.Dense(10, activation='softmax')
    ])
    optimizer = keras.optimizers.Adam(learning_rate=0.001)
    loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with pytest.warns(UserWarning, match="from_logits"):
        model.compile(optimizer=optimizer, loss=loss_function, metrics=['accuracy'])
    history = model.fit(x_train, y_train, epochs=10, verbose=0)
    assert list(history.history) == ["loss", "accuracy"] and history.epoch == list(range(10))
    loss, acc = history.history["loss"], history.history["accuracy"]
    assert len(loss) == 10 and loss[-1] < loss[0] - 0.3, loss
    # argmax of 10 Gaussian features: learnable, but not in 10 epochs of a softmax fed as logits.
    assert acc[-1] > 0.6, acc


def test_same_seed_gives_the_weights_descent_fit_gives(digits, descent_cli, workdir):
    x, y = digits
    model = classic(seed=3)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    np.save("x.npy", x)
    np.save("y.npy", y.astype(np.float32))
    (workdir / "e.toml").write_text(
        """
name = "same"
seed = 3
[data]
format = "npy"
x = "x.npy"
y = "y.npy"
test_split = 0.0
[model]
layers = [{ type = "dense", units = 64, activation = "relu", name = "hidden" }, { type = "dense", units = 10, name = "out" }]
[compile]
optimizer = { name = "adam", learning_rate = 0.001 }
loss = { name = "sparse_categorical_crossentropy", from_logits = true }
metrics = ["accuracy"]
[fit]
epochs = 3
batch_size = 32
verbose = 0
"""
    )
    out = subprocess.run([descent_cli, "fit", "e.toml"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rust = read_safetensors(workdir / "runs" / "same-001" / "model.safetensors")
    python = model._model().get_weights()
    assert sorted(n for n, _ in python) == sorted(rust) == ["hidden.bias", "hidden.kernel", "out.bias", "out.kernel"]
    for name, w in python:
        np.testing.assert_array_equal(w, rust[name], err_msg=name)


def test_a_functional_model_with_a_shared_layer_trains_on_digits(digits):
    x, y = digits
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(64,), name="pixels")
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
    block = keras.layers.Dense(32, activation="relu", name="block")
    twice = block(block(hidden))  # one set of weights, called twice
    skip = keras.layers.Add(name="skip")([hidden, twice])
    outputs = keras.layers.Dense(10, name="out")(skip)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    lines = []
    model.summary(print_fn=lines.append)
    assert "skip (Add)" in lines[0] and "block" in lines[0]
    history = model.fit(x[:1400], y[:1400], epochs=20, validation_data=(x[1400:], y[1400:]), verbose=0)
    assert "val_accuracy" in history.history
    loss, acc = model.evaluate(x[1400:], y[1400:], verbose=0)
    assert acc > 0.9, acc
    # 64·32+32 (hidden) + 32·32+32 (block, once) + 32·10+10 (out)
    assert model.count_params() == 2080 + 1056 + 330


def test_python_callbacks_see_every_epoch_and_can_stop_training(digits):
    x, y = digits
    seen = []

    class Recorder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append("begin")

        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, round(logs["loss"], 6)))

        def on_train_end(self, logs=None):
            seen.append("end")

    def stop_after_two(epoch, logs):
        if epoch == 1:
            model.stop_training = True

    batches = []
    model = classic()
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[Recorder(), keras.callbacks.LambdaCallback(on_epoch_end=stop_after_two, on_train_batch_end=lambda b, logs: batches.append(b))])
    assert seen[0] == "begin" and seen[-1] == "end" and [e for e, _ in seen[1:-1]] == [0, 1]
    assert [l for _, l in seen[1:-1]] == [round(v, 6) for v in history.history["loss"]]
    assert len(history.epoch) == 2 and len(batches) == 2 * 57  # 1797 samples, batch 32

    # An exception in a callback stops training and reaches the caller as itself.
    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise ZeroDivisionError("from the callback")

    with pytest.raises(ZeroDivisionError, match="from the callback"):
        classic().fit(x, y, epochs=5, verbose=0, callbacks=[Boom()])


def test_descent_callbacks_take_keras_arguments(digits, workdir):
    x, y = digits
    model = classic()
    history = model.fit(
        x, y, epochs=50, verbose=0, validation_split=0.2,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True), keras.callbacks.CSVLogger("log.csv")],
    )
    assert len(history.epoch) < 50, "early stopping stopped the run"
    rows = (workdir / "log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch") and len(rows) == len(history.epoch) + 1


def test_ctrl_c_stops_training_between_steps_and_leaves_the_model_usable(digits):
    x, y = digits
    model = classic()
    timer = threading.Timer(0.5, _thread.interrupt_main)
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=100_000, verbose=0)
    assert time.monotonic() - started < 5
    assert model.predict(x[:3], verbose=0).shape == (3, 10)


def test_errors_are_python_exceptions_with_descent_messages(digits):
    x, y = digits
    bad = y.copy()
    bad[7] = 12
    with pytest.raises(descent.DescentError, match="label 12"):
        classic().fit(x, bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="units must be at least 1"):
        m = keras.Sequential([keras.layers.Dense(0, input_shape=(64,))])
        m.compile(optimizer="adam", loss="mse")
    with pytest.raises(descent.DescentError, match="unknown optimizer|adamm"):
        keras.Sequential([keras.layers.Dense(3, input_shape=(4,))]).compile(optimizer="adamm", loss="mse")
    with pytest.raises(RuntimeError, match="compile"):
        keras.Sequential([keras.layers.Dense(3, input_shape=(4,))]).fit(np.zeros((4, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="not a finite number"):
        keras.optimizers.Adam(learning_rate=float("nan"))
    with pytest.raises(descent.DescentError):
        classic().fit(x, y[:100], epochs=1, verbose=0)
    with pytest.raises(TypeError, match="at most 1 positional"):
        keras.layers.Dense(3, "relu")


def test_a_saved_model_opens_in_python_and_in_the_cli_and_back(digits, descent_cli, workdir):
    x, y = digits
    model = classic()
    model.fit(x, y, epochs=2, verbose=0)
    model.save("saved")
    back = keras.models.load_model("saved")
    np.testing.assert_array_equal(back.predict(x[:50]), model.predict(x[:50]))
    # The CLI predicts from the folder Python wrote.
    np.savetxt("in.csv", x[:5], delimiter=",", header=",".join(f"pixel_{i}" for i in range(64)), comments="")
    out = subprocess.run([descent_cli, "predict", "saved", "--input", "in.csv", "--output", "p.csv"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    classes = [int(r.split(",")[0]) for r in (workdir / "p.csv").read_text().splitlines()[1:]]
    assert classes == list(model.predict(x[:5]).argmax(axis=1))
    # And a run folder from `descent fit` opens in Python: evaluate continues from it.
    loaded = keras.models.load_model("saved")
    logs = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"} and logs["accuracy"] > 0.8
    meta = json.loads((workdir / "saved" / "model.json").read_text())
    assert meta["format"] == "descent.model"


def test_every_layer_family_builds_and_trains_with_keras_arguments():
    L = keras.layers
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8, 8, 1)).astype("float32"), np.arange(64) % 10
    convnet = keras.Sequential([
        keras.Input(shape=(8, 8, 1)), L.Conv2D(8, 3, padding="same", activation="relu"), L.BatchNormalization(),
        L.DepthwiseConv2D((3, 3)), L.MaxPooling2D(2), L.SpatialDropout2D(0.1), L.ZeroPadding2D(1),
        L.AveragePooling2D(pool_size=(2, 2)), L.Flatten(), L.Dropout(0.5), L.Dense(10),
    ])
    convnet.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    convnet.fit(x, y, epochs=1, verbose=0)
    augmented = keras.Sequential([
        L.RandomFlip("horizontal", input_shape=(8, 8, 1)), L.RandomTranslation(0.1, 0.1),
        L.Conv2D(4, (3, 3), strides=(2, 2), kernel_regularizer=keras.regularizers.l2(1e-4)), L.GlobalAveragePooling2D(), L.Dense(10),
    ])
    augmented.compile(optimizer=keras.optimizers.AdamW(learning_rate=keras.optimizers.schedules.CosineDecay(1e-3, 100)), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    augmented.fit(x, y, epochs=1, verbose=0)
    tokens = rng.integers(0, 50, size=(32, 12)).astype("float32")
    inp = keras.Input(shape=(12,))
    e = L.Embedding(50, 16)(inp)
    a = L.MultiHeadAttention(num_heads=2, key_dim=8)(e, e)
    h = L.LayerNormalization()(L.Add()([e, a]))
    conv = L.Conv1D(8, 3, padding="causal")
    out = L.Dense(50)(L.GlobalMaxPooling1D()(conv(h)))
    text = keras.Model(inp, out)
    text.compile(optimizer="lion", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    text.fit(tokens, tokens[:, 0], epochs=1, verbose=0)
    lines = []
    text.summary(print_fn=lines.append)
    assert f"{conv.name} (Conv1D)" in lines[0] and conv.name.startswith("conv1d"), lines[0]
    small = keras.Sequential([L.Dense(8, input_dim=4, activation="tanh"), L.GaussianNoise(0.1), L.Activation("gelu"), L.Reshape((2, 4)), L.Flatten(), L.Dense(1)])
    small.compile(optimizer=keras.optimizers.RMSprop(), loss="mse", metrics=["mae"])
    history = small.fit(np.ones((16, 4)), np.ones(16), epochs=2, verbose=0)
    assert list(history.history) == ["loss", "mae"]


def test_the_lab_runs_the_cli_files_and_resumes_studies(workdir, descent_cli):
    from conftest import bundled_experiment
    (workdir / "e.toml").write_text(bundled_experiment("classic"))
    run = descent.fit_experiment("e.toml")
    # The README's main job: 0.964 held out with the default seed.
    assert run["test"]["accuracy"] > 0.95 and len(run["history"]["loss"]) == 10
    # The run folder opens with the CLI.
    out = subprocess.run([descent_cli, "evaluate", run["dir"]], capture_output=True, text=True)
    assert out.returncode == 0 and "accuracy" in out.stdout, out.stderr
    cv = descent.cross_validate("e.toml", folds=3, stratified=True)
    assert len(cv["accuracy"]["folds"]) == 3 and cv["accuracy"]["mean"] > 0.9
    (workdir / "s.toml").write_text(
        """
[study]
experiment = "e.toml"
trials = 4
jobs = 1
sampler = "random"
[objective]
metric = "accuracy"
folds = 2
[space."compile.optimizer.learning_rate"]
type = "log_uniform"
low = 1e-3
high = 3e-2
"""
    )
    first = descent.tune("s.toml", trials=2)
    assert [t["number"] for t in first["trials"]] == [0, 1]
    # Resumed from its SQLite file: two more, the first two kept as they were.
    study = descent.tune("s.toml")
    assert [t["number"] for t in study["trials"]] == [0, 1, 2, 3] and study["trials"][:2] == first["trials"]
    assert study["best"]["value"] == max(t["value"] for t in study["trials"])
    out = subprocess.run([descent_cli, "study", "show", study["storage"]], capture_output=True, text=True)
    assert out.returncode == 0 and "complete" in out.stdout, out.stderr
    # A study defined in Python: the same space, its own storage; resumed the same way.
    space = {"compile.optimizer.learning_rate": {"type": "log_uniform", "low": 1e-3, "high": 3e-2}}
    defined = descent.tune(experiment="e.toml", space=space, metric="accuracy", folds=2, sampler="random", name="py", trials=3, jobs=1)
    assert defined["storage"].endswith("py.sqlite") and len(defined["trials"]) == 3
    # Same sampler seed and space as the file's study: the same first trials.
    assert [t["params"] for t in defined["trials"]] == [t["params"] for t in study["trials"][:3]]
    again = descent.tune(experiment="e.toml", space=space, metric="accuracy", folds=2, sampler="random", name="py", trials=5, jobs=1)
    assert [t["number"] for t in again["trials"]] == [0, 1, 2, 3, 4] and again["trials"][:3] == defined["trials"]
    with pytest.raises(descent.DescentError, match="model.layers.9.units`: index 9 is past the 2 entries"):
        descent.tune(experiment="e.toml", space={"model.layers.9.units": {"type": "int", "low": 1, "high": 4}}, metric="accuracy", name="bad", trials=1)
    # Optimizers compared on the same folds, with the paired test.
    ranked = descent.compare("e.toml", optimizers=["adam", "sgd@0.001"], metric="accuracy", folds=3)
    assert [c["label"] for c in ranked["contenders"]] == ["adam", "sgd@0.001"]
    assert "leader" in ranked["table"] and ranked["contenders"][0]["report"]["accuracy"]["mean"] > ranked["contenders"][1]["report"]["accuracy"]["mean"]


def test_the_doctor_finds_a_too_low_learning_rate_and_reports_render(workdir):
    from conftest import bundled_experiment
    (workdir / "slow.toml").write_text(bundled_experiment("classic_lr_too_low"))
    run = descent.fit_experiment("slow.toml")
    findings = descent.doctor(run["dir"])
    assert any("learning rate is too low" in f["title"] for f in findings), findings
    assert all(f["text"].startswith("[") for f in findings)
    path = descent.report(run["dir"])
    assert open(path).read().startswith("<!doctype html>")
    lr = descent.lr_find("slow.toml", steps=60)
    assert len(lr["learning_rates"]) <= 60 and 1e-5 < lr["valley"] < 1.0


def test_a_python_learning_rate_schedule_and_sample_weights(digits):
    x, y = digits
    seen = []

    def schedule(epoch, lr):
        seen.append(lr)
        return 0.01 if epoch == 0 else lr / 2

    model = classic()
    model.fit(x, y, epochs=4, verbose=0, callbacks=[keras.callbacks.LearningRateScheduler(schedule)])
    # Each epoch starts from the rate the schedule set the epoch before (f32-rounded).
    assert seen[0] == pytest.approx(0.001) and seen[1:] == pytest.approx([0.01, 0.005, 0.0025], rel=1e-6)
    with pytest.raises(descent.DescentError, match="finite"):
        classic().fit(x, y, epochs=2, verbose=0, callbacks=[keras.callbacks.LearningRateScheduler(lambda e, lr: float("nan"))])
    # A zero weight takes a sample out of the loss: with every weight zero, the gradient
    # is zero and Adam leaves every weight where it started; with ones, they move.
    frozen = classic()
    start = frozen.get_weights()
    frozen.fit(x, y, epochs=1, verbose=0, sample_weight=np.zeros(len(y)))
    after = frozen.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(start, after))
    moved = classic()
    moved.fit(x, y, epochs=1, verbose=0, sample_weight=np.ones(len(y)))
    assert not all(np.array_equal(a, b) for a, b in zip(start, moved.get_weights()))


def test_several_inputs_and_outputs_with_per_output_losses(digits):
    x, y = digits
    keras.utils.set_random_seed(2)
    left, right = keras.Input(shape=(32,), name="left"), keras.Input(shape=(32,), name="right")
    merged = keras.layers.Concatenate(name="both")([keras.layers.Dense(32, activation="relu")(left), keras.layers.Dense(32, activation="relu")(right)])
    digit = keras.layers.Dense(10, name="digit")(merged)
    ink = keras.layers.Dense(1, name="ink")(merged)
    model = keras.Model(inputs=[left, right], outputs=[digit, ink])
    model.compile(
        optimizer="adam",
        loss={"digit": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "ink": "mse"},
        loss_weights={"digit": 1.0, "ink": 0.5},
        metrics=["accuracy"],
    )
    ink_target = x.mean(axis=1, keepdims=True)
    history = model.fit({"left": x[:, :32], "right": x[:, 32:]}, [y, ink_target], epochs=15, verbose=0, validation_split=0.2)
    assert {"loss", "digit_loss", "ink_loss", "val_digit_accuracy"} <= set(history.history), history.history.keys()
    digit_out, ink_out = model.predict([x[:, :32], x[:, 32:]])
    assert digit_out.shape == (len(x), 10) and ink_out.shape == (len(x), 1)
    logs = model.evaluate([x[:, :32], x[:, 32:]], [y, ink_target], verbose=0, return_dict=True)
    assert logs["digit_accuracy"] > 0.9 and logs["ink_loss"] < 0.01, logs
    with pytest.raises(descent.DescentError, match="2 input"):
        model.predict(x[:, :32])


def test_explain_finds_the_features_a_model_uses():
    # The label is the sign of feature 0; the other 7 features are noise.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.layers.Dense(16, activation="relu", input_shape=(8,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=20, verbose=0)
    e = descent.explain(model, x, y, samples=2, repeats=3, steps=64)
    ranked = sorted(e["permutation_importance"], key=lambda i: -i["mean"])
    assert ranked[0]["feature"] == 0 and ranked[0]["mean"] > 0.3 and all(abs(i["mean"]) < 0.05 for i in ranked[1:]), ranked
    for s in e["samples"]:
        attributions = np.abs(s["integrated_gradients"])
        assert attributions.argmax() == 0 and abs(s["completeness_gap"]) < 0.05 * max(1.0, abs(s["output"])), s


def test_layers_give_and_take_their_weights_by_name(digits):
    x, _ = digits
    model = classic()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hidden = model.get_layer("hidden")
    kernel, bias = hidden.get_weights()
    assert kernel.shape == (64, 64) and bias.shape == (64,) and not bias.any()
    hidden.set_weights([np.zeros_like(kernel), np.ones_like(bias)])
    # Every hidden unit is now relu(0·x + 1) = 1: the output is the same for every input.
    out = model.predict(x[:4])
    np.testing.assert_allclose(out, np.broadcast_to(out[0], out.shape), rtol=1e-6)
    with pytest.raises(ValueError, match="2 weight arrays, 1 were given"):
        hidden.set_weights([kernel])
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        model.get_layer("nope")


def test_training_releases_the_gil(digits):
    x, y = digits
    model = classic()
    ticks, done = [0], threading.Event()

    def count():
        while not done.is_set():
            ticks[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    time.sleep(0.2)
    solo_start = (ticks[0], time.monotonic())
    time.sleep(0.2)
    solo = (ticks[0] - solo_start[0]) / (time.monotonic() - solo_start[1])
    before = (ticks[0], time.monotonic())
    model.fit(x, y, epochs=30, verbose=0)  # no Python callbacks: no bytecode runs inside
    after = (ticks[0], time.monotonic())
    done.set()
    counter.join()
    during = (after[0] - before[0]) / (after[1] - before[1])
    # With the GIL held through training the counter would stand still but for a switch
    # or two (5 ms each) in fit's Python wrapper; released, it runs at a good part of its
    # own speed (it shares 2 cores with training's threads).
    assert during > 0.3 * solo, (during, solo)

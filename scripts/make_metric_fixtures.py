"""Reference values for descent's streaming metrics, computed by scikit-learn on the
whole set at once. Writes fixtures/metrics.json; the Rust test feeds the same data in
small batches and must match.

    .venv/bin/python scripts/make_metric_fixtures.py
"""
import json

import numpy as np
import sklearn
from sklearn import metrics as M
from sklearn.preprocessing import label_binarize

rng = np.random.default_rng(2026)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def classification(pred, y_true, y_pred, k_classes):
    out = {"accuracy": M.accuracy_score(y_true, y_pred)}
    for avg in ["micro", "macro", "weighted"]:
        out[f"precision_{avg}"] = M.precision_score(y_true, y_pred, average=avg, zero_division=0)
        out[f"recall_{avg}"] = M.recall_score(y_true, y_pred, average=avg, zero_division=0)
        out[f"f1_{avg}"] = M.f1_score(y_true, y_pred, average=avg, zero_division=0)
    out["confusion_matrix"] = M.confusion_matrix(y_true, y_pred, labels=list(range(k_classes))).tolist()
    return out


cases = []

# Binary, one logit per sample, scores rounded to create ties.
n = 101
logit = np.round(rng.normal(size=n) * 1.5, 1)
y = (rng.random(n) < 1 / (1 + np.exp(-1.2 * logit))).astype(int)
pred = f32(logit)
yp = (pred > 0).astype(int)
expected = {
    "binary_accuracy": M.accuracy_score(y, yp),
    "precision": M.precision_score(y, yp, zero_division=0),
    "recall": M.recall_score(y, yp, zero_division=0),
    "f1": M.f1_score(y, yp, zero_division=0),
    "auc": M.roc_auc_score(y, pred),
    "pr_auc": M.average_precision_score(y, pred),
}
cases.append({"name": "binary_logits", "outputs": 1, "loss": "binary_crossentropy", "from_logits": True,
              "pred": pred.tolist(), "target": y.astype(float).tolist(), "expected": expected})

# Four classes, probabilities, sparse labels; class 3 is rare so macro/weighted differ.
n, k = 97, 4
probs = f32(softmax(rng.normal(size=(n, k)) * 1.3 + np.array([0.4, 0.2, 0.0, -1.0])))
y = rng.choice(k, size=n, p=[0.4, 0.3, 0.2, 0.1])
probs[np.arange(n), y] += f32(0.15)  # some signal
probs = f32(probs / probs.sum(axis=1, keepdims=True))
yp = probs.argmax(axis=1)
expected = classification(probs, y, yp, k)
expected["top_2_accuracy"] = M.top_k_accuracy_score(y, probs, k=2, labels=list(range(k)))
expected["auc"] = M.roc_auc_score(y, probs, multi_class="ovr", average="macro")
expected["pr_auc"] = M.average_precision_score(label_binarize(y, classes=list(range(k))), probs, average="macro")
cases.append({"name": "multiclass_probs_sparse", "outputs": k, "loss": "sparse_categorical_crossentropy", "from_logits": False,
              "pred": probs.ravel().tolist(), "target": y.astype(float).tolist(), "expected": expected})

# Three classes, logits, one-hot targets: AUC on softmax probabilities.
n, k = 89, 3
logits = f32(rng.normal(size=(n, k)) * 2.0)
y = rng.choice(k, size=n)
logits[np.arange(n), y] += f32(0.8)
onehot = np.eye(k)[y]
p64 = softmax(logits.astype(np.float64))
expected = classification(logits, y, logits.argmax(axis=1), k)
expected["auc"] = M.roc_auc_score(y, p64, multi_class="ovr", average="macro")
expected["pr_auc"] = M.average_precision_score(onehot, p64, average="macro")
cases.append({"name": "multiclass_logits_onehot", "outputs": k, "loss": "categorical_crossentropy", "from_logits": True,
              "pred": logits.ravel().tolist(), "target": onehot.ravel().tolist(), "expected": expected})

# Regression with two outputs.
n = 83
yt = f32(rng.normal(size=(n, 2)) * np.array([1.0, 3.0]) + np.array([0.5, -2.0]))
yhat = f32(yt + rng.normal(size=(n, 2)) * np.array([0.3, 1.5]))
# In float64 (the values are exactly the float32 ones), so the reference is not rounded.
t64, p64 = yt.astype(np.float64), yhat.astype(np.float64)
mse = M.mean_squared_error(t64, p64)
expected = {"mse": mse, "mae": M.mean_absolute_error(t64, p64), "rmse": float(np.sqrt(mse)), "r2": M.r2_score(t64, p64)}
cases.append({"name": "regression_two_outputs", "outputs": 2, "loss": "mean_squared_error", "from_logits": False,
              "pred": yhat.ravel().tolist(), "target": yt.ravel().tolist(), "expected": expected})

out = {"generator": f"scripts/make_metric_fixtures.py, scikit-learn {sklearn.__version__}", "cases": cases}
with open("fixtures/metrics.json", "w") as f:
    json.dump(out, f, indent=1)
print(f"wrote fixtures/metrics.json ({len(cases)} cases)")

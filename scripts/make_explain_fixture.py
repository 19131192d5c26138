"""Reference values for descent's permutation importance, from scikit-learn's
`permutation_importance` on a fixed linear classifier (scores = X W + b, accuracy).
Writes fixtures/permutation_importance.json with the data, the weights, the
permutation scikit-learn applied to each column at each repeat (replaying its
RandomState), and its importances; the Rust test replays the same permutations and
must give the same numbers.

    .venv/bin/python scripts/make_explain_fixture.py
"""
import json

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.inspection import permutation_importance

rng = np.random.default_rng(7)
N, F, K, REPEATS, SEED = 80, 5, 3, 5, 42
W = rng.normal(size=(F, K)).astype(np.float32)
W[4] = 0.0  # a feature the model ignores: importance exactly 0
b = rng.normal(size=K).astype(np.float32)
X = rng.normal(size=(N, F)).astype(np.float32)
y = np.argmax(X @ W + b + rng.normal(scale=0.7, size=(N, K)), axis=1)


class Linear(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        self.classes_ = np.arange(K)
        return self

    def predict(self, X):
        return np.argmax(np.asarray(X, dtype=np.float32) @ W + b, axis=1)


model = Linear().fit(X, y)
result = permutation_importance(model, X, y, n_repeats=REPEATS, random_state=SEED)

# Replay scikit-learn's shuffles: one seed drawn from random_state, a fresh RandomState
# from it per column, a cumulative in-place shuffle of the row indices per repeat, each
# applied to the column as it was after the previous repeat.
seed = np.random.RandomState(SEED).randint(np.iinfo(np.int32).max + 1)
perms = []
for j in range(F):
    rs = np.random.RandomState(seed)
    idx = np.arange(N)
    current = np.arange(N)  # which original row each position holds
    per_repeat = []
    for _ in range(REPEATS):
        rs.shuffle(idx)
        current = current[idx]
        per_repeat.append(current.tolist())
    perms.append(per_repeat)

# Check the replay: scoring the replayed permutations gives scikit-learn's numbers.
base = model.score(X, y)
for j in range(F):
    for r in range(REPEATS):
        Xp = X.copy()
        Xp[:, j] = X[perms[j][r], j]
        assert abs((base - model.score(Xp, y)) - result.importances[j, r]) < 1e-12

json.dump(
    {
        "sklearn": sklearn.__version__,
        "x": X.ravel().tolist(), "y": y.tolist(), "rows": N, "features": F, "classes": K,
        "kernel": W.ravel().tolist(), "bias": b.tolist(), "n_repeats": REPEATS,
        "permutations": perms, "score": base,
        "importances": result.importances.tolist(),
        "importances_mean": result.importances_mean.tolist(),
        "importances_std": result.importances_std.tolist(),
    },
    open("fixtures/permutation_importance.json", "w"),
)
print("wrote fixtures/permutation_importance.json; means", np.round(result.importances_mean, 4))

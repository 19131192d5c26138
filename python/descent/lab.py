"""descent's optimization lab from Python, on the same files as the CLI: an experiment
TOML (``descent fit``, ``descent cv``) or a study TOML (``descent tune``, resumed from its
SQLite file). Run folders and study databases written here open with the CLI, and the
other way round."""

import json
import os

from . import _native
from .keras._config import clean


def fit_experiment(path):
    """Runs the experiment file like ``descent fit``: returns ``{"dir", "history", "test",
    "warnings"}`` (the run folder, per-epoch values, held-out scores)."""
    return json.loads(_native.fit_experiment(os.fspath(path)))


def cross_validate(path, folds=5, stratified=False, repeats=1, seed=None):
    """k-fold cross-validation of the experiment file, like ``descent cv``: for each
    metric, its value in every fold and their mean and standard deviation."""
    return json.loads(_native.cross_validate(os.fspath(path), folds, stratified, repeats, seed))


def tune(study=None, trials=None, jobs=None, verbose=False, *, experiment=None, space=None, metric="loss", folds=1, sampler="tpe", name=None, storage=None, **study_keys):
    """Runs (or resumes) a study, like ``descent tune``; returns the study with every
    trial and ``best``, the best complete one.

    ``study`` is a study file, or a dict of its tables (``{"study": ..., "objective":
    ..., "space": ...}``); or define it here: ``experiment`` (a file), ``space`` (``{"path":
    {"type": "log_uniform", "low": ..., "high": ...}, ...}``), ``metric``, ``folds``,
    ``sampler``, ``name``, ``storage`` (default ``<name>.sqlite``) and any other ``[study]``
    key. Run again, it resumes from the storage: nothing lost or run twice."""
    if study is None:
        if experiment is None or not space:
            raise ValueError("tune: give a study file, or experiment= and space=")
        name = name or "study"
        section = {"name": name, "experiment": os.fspath(experiment), "sampler": sampler, **study_keys}
        if trials is not None:
            section["trials"] = trials
        if storage is not None:
            section["storage"] = os.fspath(storage)
        study = {"study": section, "objective": {"metric": metric, "folds": folds}, "space": space}
    if isinstance(study, dict):
        where = f"{(study.get('study') or {}).get('name', 'study')}.toml"
        text = json.dumps(clean(study, "study"), allow_nan=False)
        result = _native.tune(where, trials, jobs, verbose, text)
    else:
        result = _native.tune(os.fspath(study), trials, jobs, verbose)
    study = json.loads(result)
    done = [t for t in study["trials"] if t["state"] == "complete" and t["value"] is not None]
    pick = max if study["direction"] == "maximize" else min
    study["best"] = pick(done, key=lambda t: t["value"]) if done else None
    return study


def compare(experiments, optimizers=None, metric="loss", folds=5, stratified=False, repeats=1, seed=None):
    """``descent compare``: cross-validates each experiment file — or one experiment with
    each of ``optimizers`` (``"adam"``, ``"sgd@0.1"``, ``"nesterov"``) — on the same folds,
    and ranks them with paired tests. Returns ``{"metric", "contenders": [{"label",
    "report"}], "table"}`` (``table`` as the CLI prints it)."""
    paths = [os.fspath(experiments)] if isinstance(experiments, (str, os.PathLike)) else [os.fspath(p) for p in experiments]
    return json.loads(_native.compare(paths, list(optimizers or []), metric, folds, stratified, repeats, seed))


def doctor(run, lr_find=False):
    """``descent doctor RUN``: the findings on a run folder, each a dict (``problem``,
    ``code``, ``title``, ``evidence``, ``cause``, ``fix``, and ``text`` as the CLI prints
    it); none for a healthy run. With ``lr_find``, the range test backs the learning-rate
    advice."""
    return json.loads(_native.doctor(os.fspath(run), lr_find))


def lr_find(path, steps=100):
    """``descent lr-find FILE``: the learning-rate range test (rates, smoothed losses, and
    the ``valley``, ``steep`` and ``minimum`` suggestions)."""
    return json.loads(_native.lr_find(os.fspath(path), steps))


def report(run, out=None):
    """``descent report RUN``: writes the run's HTML report; returns its path."""
    return _native.report(os.fspath(run), None if out is None else os.fspath(out))


def explain(model, x, y, samples=3, repeats=5, steps=50, seed=0):
    """``descent explain`` on a Keras model and arrays: permutation importance of every
    feature (the drop in the score when it is shuffled, mean and std over ``repeats``),
    and integrated gradients and saliency of the first ``samples`` rows for their true
    class (attributions over the flattened input; ``completeness_gap`` = Σ attributions −
    (F(x) − F(0)), small when ``steps`` suffice)."""
    import numpy as np
    out = model._model().explain(np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float32), samples, repeats, steps, seed)
    return json.loads(out)

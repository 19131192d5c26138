"""descent's optimization lab from Python, on the same files as the CLI: an experiment
TOML (``descent fit``, ``descent cv``) or a study TOML (``descent tune``, resumed from its
SQLite file). Run folders and study databases written here open with the CLI, and the
other way round."""

import json
import os

from . import _native


def fit_experiment(path):
    """Runs the experiment file like ``descent fit``: returns ``{"dir", "history", "test",
    "warnings"}`` (the run folder, per-epoch values, held-out scores)."""
    return json.loads(_native.fit_experiment(os.fspath(path)))


def cross_validate(path, folds=5, stratified=False, repeats=1, seed=None):
    """k-fold cross-validation of the experiment file, like ``descent cv``: for each
    metric, its value in every fold and their mean and standard deviation."""
    return json.loads(_native.cross_validate(os.fspath(path), folds, stratified, repeats, seed))


def tune(path, trials=None, jobs=None, verbose=False):
    """Runs (or resumes) the study file, like ``descent tune``; returns the study with
    every trial and ``best``, the best complete one."""
    study = json.loads(_native.tune(os.fspath(path), trials, jobs, verbose))
    done = [t for t in study["trials"] if t["state"] == "complete" and t["value"] is not None]
    pick = max if study["direction"] == "maximize" else min
    study["best"] = pick(done, key=lambda t: t["value"]) if done else None
    return study


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

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

"""Reads a run's TensorBoard event files with TensorBoard's own reader and checks them
against the run's history.csv (every epoch scalar, train and validation).

    descent fit EXPERIMENT.toml      # with [[callbacks]] type = "tensorboard"
    .venv/bin/python scripts/check_tensorboard.py runs/NAME-NNN [tensorboard]
"""
import csv
import math
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = Path(sys.argv[1])
logs = run / (sys.argv[2] if len(sys.argv) > 2 else "tensorboard")
rows = list(csv.DictReader(open(run / "history.csv")))
checked = 0
for sub, prefix in [("train", ""), ("validation", "val_")]:
    acc = EventAccumulator(str(logs / sub), size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    print(f"{sub}: scalars {sorted(tags['scalars'])}, histograms {len(tags['histograms'])} tags")
    for tag in tags["scalars"]:
        if not tag.startswith("epoch_") or tag == "epoch_learning_rate":
            continue
        column = prefix + tag[len("epoch_"):]
        for ev in acc.Scalars(tag):
            want = float(rows[ev.step][column])
            assert math.isclose(ev.value, want, rel_tol=1e-6), (sub, tag, ev.step, ev.value, want)
            checked += 1
    for tag in tags["histograms"]:
        for ev in acc.Histograms(tag):
            assert ev.histogram_value.num > 0 and len(ev.histogram_value.bucket) == len(ev.histogram_value.bucket_limit)
            checked += 1
print(f"OK: {checked} values read by TensorBoard {__import__('tensorboard').__version__} match history.csv")

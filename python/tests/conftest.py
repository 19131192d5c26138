import os
import pathlib
import shutil

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def digits():
    """The bundled UCI digits (data/digits.csv): x scaled to [0, 1], integer labels."""
    table = np.loadtxt(ROOT / "data" / "digits.csv", delimiter=",", skiprows=1, dtype=np.float32)
    return table[:, :-1] / 16.0, table[:, -1].astype(np.int64)


@pytest.fixture(scope="session")
def descent_cli():
    """The `descent` binary of this checkout (DESCENT_BIN, else target/release or
    target/debug: `cargo test --workspace` builds the latter)."""
    candidates = [os.environ.get("DESCENT_BIN"), ROOT / "target" / "release" / "descent", ROOT / "target" / "debug" / "descent"]
    found = [pathlib.Path(c) for c in candidates if c and pathlib.Path(c).is_file()]
    if not found:
        pytest.fail("no descent binary: run `cargo build -p descent-cli` (or set DESCENT_BIN)")
    return str(max(found, key=lambda p: p.stat().st_mtime)) if not os.environ.get("DESCENT_BIN") else str(found[0])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def bundled_experiment(name):
    """examples/<name>.toml with its data path made absolute and training quiet, to run
    from a test's own folder."""
    text = (ROOT / "examples" / f"{name}.toml").read_text()
    text = text.replace('"../data/digits.csv"', f'"{ROOT / "data" / "digits.csv"}"')
    return text.replace("[fit]\n", "[fit]\nverbose = 0\n", 1)

#!/usr/bin/env bash
# Creates .venv with PyTorch, Keras 3 (+ TensorFlow for the Keras benchmarks), JAX + optax and scikit-learn: only needed to regenerate
# reference fixtures and to run the PyTorch side of benchmarks (never by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q numpy scikit-learn torch keras tensorflow-cpu tensorboard jax optax
.venv/bin/python -c "import torch, keras; import jax, optax; print('torch', torch.__version__, 'keras', keras.__version__, 'jax', jax.__version__, 'optax', optax.__version__)"

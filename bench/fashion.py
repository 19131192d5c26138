"""Fashion-MNIST for the W4 peers: Debian's `dataset-fashion-mnist` IDX files (gzip),
the first `n` training images scaled to [0, 1] (N, 28, 28, 1) and the 10,000 test images."""
import gzip

import numpy as np

ROOT = "/usr/share/datasets/fashion-mnist"


def _idx(name):
    with gzip.open(f"{ROOT}/{name}.gz") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(n):
    x = (_idx("train-images-idx3-ubyte")[:n].astype(np.float32) / 255.0)[..., None]
    y = _idx("train-labels-idx1-ubyte")[:n].astype(np.int64)
    xt = (_idx("t10k-images-idx3-ubyte").astype(np.float32) / 255.0)[..., None]
    yt = _idx("t10k-labels-idx1-ubyte").astype(np.int64)
    return x, y, xt, yt


# Multiply-adds per sample of Keras's mnist_convnet forward pass: conv 3×3×1→32 over
# 26×26, conv 3×3×32→64 over 11×11, dense 1600→10; training ≈ 3× the forward FLOPs.
FORWARD_MACS = 26 * 26 * 32 * 9 + 11 * 11 * 64 * 288 + 1600 * 10
TRAIN_FLOPS = 6 * FORWARD_MACS

"""Tiny Shakespeare for the W5 benchmark scripts: the character vocabulary, the 90/10
split by position (as descent's text data and nanoGPT), and random next-character
windows."""
import numpy as np

CONFIG = dict(n_layer=4, n_head=4, n_embd=128, block=64, batch=12)


def load(path="data/tinyshakespeare.txt"):
    text = open(path, encoding="utf-8").read()
    chars = sorted(set(text))
    table = {c: i for i, c in enumerate(chars)}
    ids = np.array([table[c] for c in text], dtype=np.int64)
    n = len(ids) - round(len(ids) * 0.1)
    return chars, ids[:n], ids[n:]


def windows(ids, batch, block, rng):
    o = rng.integers(0, len(ids) - block, size=batch)
    x = np.stack([ids[i : i + block] for i in o])
    y = np.stack([ids[i + 1 : i + block + 1] for i in o])
    return x, y


def train_flops_per_token(vocab, n_layer=4, n_embd=128, block=64):
    """6 × parameters in matrices (embedding lookups excluded, head included) plus
    attention's 6·n_layer·T·C for the score and value products (PaLM's count, halved for
    the causal mask)."""
    matrices = n_layer * 12 * n_embd * n_embd + n_embd * vocab
    return 6 * matrices + 6 * n_layer * block * n_embd

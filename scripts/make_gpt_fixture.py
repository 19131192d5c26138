"""Reference values for descent's GPT (the `gpt` preset with bias = true) from PyTorch in
float64: a 2-layer model with fixed random weights, named as descent names them and laid
out as its matrices ([in, out]); the logits and loss of one batch, every parameter's
gradient, and the losses of 10 AdamW steps on that batch (β = (0.9, 0.99), ε = 1e-8,
lr 1e-3, decoupled weight decay 0.1 on matrices only, as descent's `decay_vectors =
false`). Writes fixtures/gpt.json.

    .venv/bin/python scripts/make_gpt_fixture.py
"""
import json

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(5)

VOCAB, BLOCK, N_LAYER, N_HEAD, N_EMBD, BATCH = 11, 8, 2, 2, 16, 3


def w(*shape, scale=0.3):
    return rng.normal(0.0, scale, size=shape)


params = {
    "embedding.token_embeddings": w(VOCAB, N_EMBD),
    "embedding.position_embeddings": w(BLOCK, N_EMBD),
}
for l in range(N_LAYER):
    for ln in ("ln_1", "ln_2"):
        params[f"h{l}_{ln}.gamma"] = 1.0 + w(N_EMBD, scale=0.1)
        params[f"h{l}_{ln}.beta"] = w(N_EMBD, scale=0.1)
    for part in ("query", "key", "value", "attention_output"):
        params[f"h{l}_attn.{part}.kernel"] = w(N_EMBD, N_EMBD)
        params[f"h{l}_attn.{part}.bias"] = w(N_EMBD, scale=0.1)
    params[f"h{l}_mlp_fc.kernel"] = w(N_EMBD, 4 * N_EMBD)
    params[f"h{l}_mlp_fc.bias"] = w(4 * N_EMBD, scale=0.1)
    params[f"h{l}_mlp_proj.kernel"] = w(4 * N_EMBD, N_EMBD, scale=0.15)
    params[f"h{l}_mlp_proj.bias"] = w(N_EMBD, scale=0.1)
params["ln_f.gamma"] = 1.0 + w(N_EMBD, scale=0.1)
params["ln_f.beta"] = w(N_EMBD, scale=0.1)
params["head.kernel"] = w(N_EMBD, VOCAB)

x = rng.integers(0, VOCAB, size=(BATCH, BLOCK))
y = rng.integers(0, VOCAB, size=(BATCH, BLOCK))

tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}


def forward(p):
    xt = torch.tensor(x)
    h = p["embedding.token_embeddings"][xt] + p["embedding.position_embeddings"][: x.shape[1]]
    hd = N_EMBD // N_HEAD
    for l in range(N_LAYER):
        pre = f"h{l}_"
        a = F.layer_norm(h, (N_EMBD,), p[pre + "ln_1.gamma"], p[pre + "ln_1.beta"], eps=1e-5)

        def heads(t):
            return t.view(BATCH, BLOCK, N_HEAD, hd).transpose(1, 2)

        q = heads(a @ p[pre + "attn.query.kernel"] + p[pre + "attn.query.bias"])
        k = heads(a @ p[pre + "attn.key.kernel"] + p[pre + "attn.key.bias"])
        v = heads(a @ p[pre + "attn.value.kernel"] + p[pre + "attn.value.bias"])
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(BATCH, BLOCK, N_EMBD)
        h = h + o @ p[pre + "attn.attention_output.kernel"] + p[pre + "attn.attention_output.bias"]
        m = F.layer_norm(h, (N_EMBD,), p[pre + "ln_2.gamma"], p[pre + "ln_2.beta"], eps=1e-5)
        m = F.gelu(m @ p[pre + "mlp_fc.kernel"] + p[pre + "mlp_fc.bias"])
        h = h + m @ p[pre + "mlp_proj.kernel"] + p[pre + "mlp_proj.bias"]
    h = F.layer_norm(h, (N_EMBD,), p["ln_f.gamma"], p["ln_f.beta"], eps=1e-5)
    return h @ p["head.kernel"]


def loss_of(logits):
    return F.cross_entropy(logits.reshape(-1, VOCAB), torch.tensor(y).reshape(-1))


logits = forward(tensors)
loss = loss_of(logits)
loss.backward()
grads = {k: t.grad.numpy().tolist() for k, t in tensors.items()}

train = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
matrices = [t for t in train.values() if t.dim() == 2]
vectors = [t for t in train.values() if t.dim() < 2]
opt = torch.optim.AdamW(
    [{"params": matrices, "weight_decay": 0.1}, {"params": vectors, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99), eps=1e-8
)
losses = []
for _ in range(10):
    opt.zero_grad()
    l = loss_of(forward(train))
    l.backward()
    opt.step()
    losses.append(l.item())

fixture = {
    "config": {"vocab": VOCAB, "block": BLOCK, "n_layer": N_LAYER, "n_head": N_HEAD, "n_embd": N_EMBD, "batch": BATCH},
    "x": x.tolist(),
    "y": y.tolist(),
    "params": {k: v.tolist() for k, v in params.items()},
    "logits": logits.detach().numpy().tolist(),
    "loss": loss.item(),
    "grads": grads,
    "adamw_losses": losses,
    "torch": torch.__version__,
}
with open("fixtures/gpt.json", "w") as f:
    json.dump(fixture, f)
print("loss", loss.item(), "adamw", losses[0], "→", losses[-1])

"""Reference values for descent's convolution and pooling from PyTorch (float64):
forward outputs and the gradients of sum(y * probe) with respect to the input, kernel
and bias, for Keras-style channels-last arguments (strides, `valid`/`same`/`causal`
padding with TensorFlow's rule — the odd cell after —, dilation, groups, depthwise).
Writes fixtures/conv.json.

    .venv/bin/python scripts/make_conv_fixtures.py
"""
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(11)


def pads(size, k, stride, dilation, padding):
    """(before, after) along one axis, as Keras/TensorFlow pad."""
    span = (k - 1) * dilation + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span - 1, 0
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def nchw(x_nhwc):
    return x_nhwc.permute(0, 3, 1, 2)


def conv_case(name, x_shape, k, filters, strides=(1, 1), dilation=(1, 1), padding="valid", groups=1, depthwise=False):
    n, h, w, c = x_shape
    x = torch.tensor(rng.uniform(-1, 1, size=x_shape), requires_grad=True)
    if depthwise:  # Keras's [kh, kw, c, multiplier]
        kshape = (k[0], k[1], c, filters)
    else:  # Keras's [kh, kw, c / groups, filters]
        kshape = (k[0], k[1], c // groups, filters)
    kernel = torch.tensor(rng.uniform(-1, 1, size=kshape), requires_grad=True)
    out_ch = c * filters if depthwise else filters
    bias = torch.tensor(rng.uniform(-1, 1, size=(out_ch,)), requires_grad=True)
    # PyTorch's weight: [out, in / groups, kh, kw].
    if depthwise:
        weight = kernel.reshape(k[0], k[1], 1, c * filters).permute(3, 2, 0, 1)
        g = c
    else:
        weight = kernel.permute(3, 2, 0, 1)
        g = groups
    (pt, pb), (pl, pr) = pads(h, k[0], strides[0], dilation[0], padding), pads(w, k[1], strides[1], dilation[1], padding)
    xp = F.pad(nchw(x), (pl, pr, pt, pb))
    y = F.conv2d(xp, weight, bias, stride=strides, dilation=dilation, groups=g).permute(0, 2, 3, 1)
    probe = torch.tensor(rng.uniform(-1, 1, size=tuple(y.shape)))
    (y * probe).sum().backward()
    return {
        "name": name, "op": "depthwise" if depthwise else "conv", "x_shape": list(x_shape), "kernel_shape": list(kshape),
        "strides": list(strides), "dilation": list(dilation), "padding": padding, "groups": groups,
        "x": x.detach().flatten().tolist(), "kernel": kernel.detach().flatten().tolist(), "bias": bias.detach().tolist(),
        "y_shape": list(y.shape), "y": y.detach().flatten().tolist(), "probe": probe.flatten().tolist(),
        "grad_x": x.grad.flatten().tolist(), "grad_kernel": kernel.grad.flatten().tolist(), "grad_bias": bias.grad.tolist(),
    }


def pool_case(name, x_shape, kind, size, strides, padding="valid"):
    n, h, w, c = x_shape
    # Distinct values, so every max is unique (ties would leave the gradient's cell a choice).
    vals = rng.permutation(n * h * w * c).astype(np.float64) / 10.0 - 5.0
    x = torch.tensor(vals.reshape(x_shape), requires_grad=True)
    (pt, pb), (pl, pr) = pads(h, size[0], strides[0], 1, padding), pads(w, size[1], strides[1], 1, padding)
    if kind == "max":
        xp = F.pad(nchw(x), (pl, pr, pt, pb), value=-math.inf)
        y = F.max_pool2d(xp, size, strides)
    else:  # the mean of the cells inside the input (TensorFlow's `same`)
        total = F.avg_pool2d(F.pad(nchw(x), (pl, pr, pt, pb)), size, strides, divisor_override=1)
        count = F.avg_pool2d(F.pad(torch.ones_like(nchw(x)), (pl, pr, pt, pb)), size, strides, divisor_override=1)
        y = total / count
    y = y.permute(0, 2, 3, 1)
    probe = torch.tensor(rng.uniform(-1, 1, size=tuple(y.shape)))
    (y * probe).sum().backward()
    return {
        "name": name, "op": kind, "x_shape": list(x_shape), "size": list(size), "strides": list(strides), "padding": padding,
        "x": x.detach().flatten().tolist(), "y_shape": list(y.shape), "y": y.detach().flatten().tolist(),
        "probe": probe.flatten().tolist(), "grad_x": x.grad.flatten().tolist(),
    }


cases = [
    conv_case("conv 3x3 valid", (2, 7, 6, 3), (3, 3), 4),
    conv_case("conv 3x3 same stride 2", (2, 7, 8, 3), (3, 3), 5, strides=(2, 2), padding="same"),
    conv_case("conv 2x3 same stride (2,1) dilation (1,2)", (1, 6, 9, 2), (2, 3), 3, strides=(2, 1), dilation=(1, 2), padding="same"),
    conv_case("conv groups 2", (2, 5, 5, 4), (3, 3), 6, groups=2, padding="same"),
    conv_case("conv 1x1", (2, 4, 3, 5), (1, 1), 3),
    conv_case("conv 5x5 dilation 2 valid", (1, 12, 11, 2), (5, 5), 2, dilation=(2, 2)),
    conv_case("conv1d causal dilation 2", (2, 1, 9, 3), (1, 3), 4, dilation=(1, 2), padding="causal"),
    conv_case("depthwise 3x3 multiplier 2 same", (2, 6, 6, 3), (3, 3), 2, padding="same", depthwise=True),
    conv_case("depthwise 3x3 stride 2 valid", (1, 7, 7, 4), (3, 3), 1, strides=(2, 2), depthwise=True),
    pool_case("max 2x2", (2, 6, 6, 3), "max", (2, 2), (2, 2)),
    pool_case("max 3x3 stride 2 same", (2, 7, 8, 2), "max", (3, 3), (2, 2), "same"),
    pool_case("max 3x3 stride 1 valid", (1, 5, 6, 2), "max", (3, 3), (1, 1)),
    pool_case("average 2x2", (2, 6, 6, 3), "average", (2, 2), (2, 2)),
    pool_case("average 3x3 stride 2 same", (2, 7, 8, 2), "average", (3, 3), (2, 2), "same"),
]

with open("fixtures/conv.json", "w") as f:
    json.dump({"made_by": "scripts/make_conv_fixtures.py", "torch": torch.__version__, "cases": cases}, f)
print(f"wrote fixtures/conv.json: {len(cases)} cases, torch {torch.__version__}")

"""The MLPs' activations, applied in place to a layer's fresh output where autograd does not need it.

On the CPU, torch's float32 tanh costs several times numpy's at every size these networks see (a
64-row minibatch and a 2,048-row rollout alike), so outside autograd it runs through numpy, on the
tensor's own memory. The two agree to float32
rounding (one unit in the last place).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def activation_(h: Tensor, activation: str) -> Tensor:
    """``tanh`` or ``relu`` of ``h``: in place when ``h`` needs no gradient, else autograd's op."""
    if h.requires_grad:
        return torch.tanh(h) if activation == "tanh" else torch.relu(h)
    if activation == "relu":
        return h.relu_()
    if h.device.type == "cpu":
        array = h.numpy()
        np.tanh(array, out=array)
        return h
    return h.tanh_()

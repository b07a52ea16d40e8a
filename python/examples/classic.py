"""The classic examples in Python (run: PYTHONPATH=build/release/python python3 python/examples/classic.py)."""

import math

import numpy as np
import torch
import torch.nn.functional as F

import xent

# [3, 5] zeros: every class has probability 1/5, so the loss is ln 5.
loss = xent.cross_entropy(torch.zeros(3, 5), torch.tensor([1, 3, 2]))
print(f"[3,5] zeros: {loss.item():.7f} (ln 5 = {math.log(5):.7f})")
assert loss.item() == np.float32(math.log(5))

# The same from NumPy: NumPy in, NumPy out.
print("NumPy:", xent.cross_entropy(np.zeros((3, 5), np.float32), np.array([1, 3, 2])))

# A character language model's logits [B, T, C], scored from step h on: the
# slice x[:, h:] with the class axis moved to dim 1 is read in place (no copy),
# and the gradient flows back into the full tensor.
B, T, C, h = 4, 64, 96, 8
torch.manual_seed(0)
x = torch.randn(B, T, C, requires_grad=True)
y = torch.randint(0, C, (B, T))
loss = xent.cross_entropy(x[:, h:].permute(0, 2, 1), y[:, h:], label_smoothing=0.1)
loss.backward()
ref = F.cross_entropy(x.detach()[:, h:].reshape(-1, C).double(), y[:, h:].reshape(-1), label_smoothing=0.1)
print(f"char-LM slice: xent {loss.item():.7f}, PyTorch (float64) {ref.item():.7f}")
print("gradient of the unscored steps is zero:", bool((x.grad[:, :h] == 0).all()))

# How far from the exact value? The multiprecision reference, in float32 ulps.
r = xent.reference(x.detach()[:, h:].permute(0, 2, 1), y[:, h:], label_smoothing=0.1, exact=True)
print(f"error against the reference: {xent.ulp_error(loss.detach(), r.loss).item():.3f} ulp")

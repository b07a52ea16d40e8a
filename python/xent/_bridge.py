"""The Python side of libxent_python_plugin.so (python/src/python_plugin.cpp).

Runs inside `xent verify`'s child processes: the plug-in hands every tensor
over as a NumPy view of the host's memory; Kernel copies the inputs into
fresh contiguous torch tensors (the function under test may do anything to
them), calls the function with torch.nn.functional.cross_entropy's
signature, and writes the loss and, when asked, the upstream-weighted
gradient (torch.autograd.grad) back through the views.
"""

import importlib

import numpy as np
import torch


def load(spec):
    """The object named by 'module:qualified.name'."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"XENT_PYTHON_FUNCTION must be module:function, got {spec!r}")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


class Kernel:
    def __init__(self, spec):
        self.spec = spec
        self.fn = load(spec)
        torch.set_num_threads(1)

    def __call__(self, logits, target, weight, reduction, ignore_index, label_smoothing, loss, grad, upstream):
        x = torch.from_numpy(np.array(logits, dtype=np.float32, copy=True))
        t = torch.from_numpy(np.array(target, copy=True))
        w = None if weight is None else torch.from_numpy(np.array(weight, dtype=np.float32, copy=True))
        if grad is not None:
            x.requires_grad_(True)
        y = self.fn(x, t, weight=w, ignore_index=int(ignore_index), reduction=reduction,
                    label_smoothing=float(label_smoothing))
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{self.spec} returned {type(y).__name__}, not a torch.Tensor")
        if tuple(y.shape) != tuple(loss.shape):
            raise ValueError(f"{self.spec} returned shape {tuple(y.shape)}, expected {tuple(loss.shape)}")
        g = None
        if grad is not None:
            if not y.requires_grad:
                raise TypeError(f"{self.spec}: the result does not require grad (no gradient to check)")
            u = torch.from_numpy(np.array(np.broadcast_to(upstream, loss.shape), dtype=np.float32, copy=True))
            (g,) = torch.autograd.grad(y, x, u.to(y.dtype), allow_unused=True)
            if g is None:
                g = torch.zeros_like(x)
        loss[...] = y.detach().to(torch.float32).numpy()
        if grad is not None:
            grad[...] = g.detach().to(torch.float32).numpy()

"""The autograd function of xent.cross_entropy (torch only)."""

import torch
from torch.autograd.function import once_differentiable

from . import _xent
from ._convert import as_arg


class CrossEntropyFunction(torch.autograd.Function):
    """Loss of (input, target, weight, ignore_index, reduction, label_smoothing, impl).

    mean/sum: forward computes the loss and the gradient in one fused call
    (upstream 1) and keeps the gradient; backward returns it as it is when
    grad_output is 1, else multiplies it by grad_output (one float32 rounding
    more). none: forward computes the loss only; backward calls the fused
    kernel again with grad_output as the per-position upstream gradient, so
    every entry is rounded once.
    """

    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, reduction, label_smoothing, impl):
        from . import _empty, _empty_grad, _loss_shape

        out = _empty(input, _loss_shape(input, target, reduction))
        ctx.options = (ignore_index, reduction, label_smoothing, impl)
        args = (as_arg(input, "input"), as_arg(target, "target"))
        w = as_arg(weight, "weight", optional=True)
        if reduction == "none":
            _xent.forward(*args, as_arg(out, "out"), None, w, ignore_index, reduction,
                          label_smoothing, None, impl)
            ctx.save_for_backward(input, target, weight)
        else:
            grad = _empty_grad(input)
            _xent.forward(*args, as_arg(out, "out"), as_arg(grad, "grad"), w, ignore_index,
                          reduction, label_smoothing, None, impl)
            ctx.save_for_backward(grad)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        from . import _empty, _empty_grad, _loss_shape

        ignore_index, reduction, label_smoothing, impl = ctx.options
        if ctx.needs_input_grad[2]:  # PyTorch's own answer for a weight that requires grad
            raise RuntimeError("xent.cross_entropy is not differentiable with respect to argument 'weight'. "
                               "This input cannot have requires_grad True.")
        if reduction == "none":
            input, target, weight = ctx.saved_tensors
            grad = _empty_grad(input)
            scratch = _empty(input, _loss_shape(input, target, reduction))
            _xent.forward(as_arg(input, "input"), as_arg(target, "target"), as_arg(scratch, "out"),
                          as_arg(grad, "grad"), as_arg(weight, "weight", optional=True),
                          ignore_index, reduction, label_smoothing,
                          as_arg(grad_output.to(torch.float32), "upstream"), impl)
        else:
            (grad,) = ctx.saved_tensors
            if grad_output.item() != 1.0:
                grad = grad * grad_output.to(torch.float32)
        return grad, None, None, None, None, None, None

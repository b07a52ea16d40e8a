"""The autograd function of xent.cross_entropy (torch only)."""

import torch
from torch.autograd.function import once_differentiable

from . import _xent
from ._convert import as_arg


class CrossEntropyFunction(torch.autograd.Function):
    """Loss of (input, target, weight, ignore_index, reduction, label_smoothing, impl).

    Every gradient entry is rounded once, as the kernel rounds it:
    mean/sum: forward computes the loss and the gradient in one fused call
    (upstream 1) and keeps the gradient; backward returns it as it is when
    grad_output is 1 (loss.backward()); for any other grad_output it calls
    the fused kernel again with grad_output as the upstream gradient
    (multiplying the kept gradient would round twice: up to 1.1 ulp, and a
    whole ulp on subnormal entries, where the accurate tier allows 1).
    none: forward computes the loss only; backward calls the fused kernel
    with grad_output as the per-position upstream gradient.
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
            ctx.save_for_backward(grad, input, target, weight)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        from . import _empty, _empty_grad, _loss_shape, _result_dtype

        ignore_index, reduction, label_smoothing, impl = ctx.options
        if ctx.needs_input_grad[2]:  # PyTorch's own answer for a weight that requires grad
            raise RuntimeError("xent.cross_entropy is not differentiable with respect to argument 'weight'. "
                               "This input cannot have requires_grad True.")
        if reduction == "none":
            input, target, weight = ctx.saved_tensors
        else:
            grad, input, target, weight = ctx.saved_tensors
            if grad_output.item() == 1.0:
                return grad, None, None, None, None, None, None
        grad = _empty_grad(input)
        scratch = _empty(input, _loss_shape(input, target, reduction))
        _xent.forward(as_arg(input, "input"), as_arg(target, "target"), as_arg(scratch, "out"),
                      as_arg(grad, "grad"), as_arg(weight, "weight", optional=True),
                      ignore_index, reduction, label_smoothing,
                      as_arg(grad_output.to(_result_dtype(input)), "upstream"), impl)
        return grad, None, None, None, None, None, None

"""Python cross-entropies for the xent.verify tests and examples (importable by name)."""

import os
import signal

import torch
import torch.nn.functional as F


def torch_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """PyTorch's own, as a user would pass it."""
    return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)


def no_max_shift(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """A hand-written cross-entropy with the classic bug: log(sum(exp(x))) without subtracting the max.

    exp overflows to inf for logits above ~88, and the loss becomes NaN where
    the true one is finite.
    """
    dim = 1 if input.dim() > 1 else 0
    log_probs = input - torch.log(torch.exp(input).sum(dim=dim, keepdim=True))
    # log_softmax of log-probabilities is themselves: F.cross_entropy adds the options.
    return F.cross_entropy(log_probs, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)


def crashes_on_large_logits(input, target, **options):
    """Correct, except that it kills its process (SIGSEGV) on a logit above 1e4."""
    if input.numel() and input.detach().abs().max().item() > 1e4:
        os.kill(os.getpid(), signal.SIGSEGV)
    return F.cross_entropy(input, target, **options)


def xent_stable(input, target, **options):
    """xent's own stable kernel through the Python module (autograd included)."""
    import xent

    return xent.cross_entropy(input, target, impl="stable", **options)


def hangs_on_nan(input, target, **options):
    """Correct, except that it never returns when a logit is NaN."""
    if input.numel() and torch.isnan(input.detach()).any().item():
        while True:
            pass
    return F.cross_entropy(input, target, **options)

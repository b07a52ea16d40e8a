"""xent.nn.CrossEntropyLoss: torch.nn.CrossEntropyLoss computed by xent."""

import torch

from . import cross_entropy


class CrossEntropyLoss(torch.nn.Module):
    """``torch.nn.CrossEntropyLoss`` with an ``impl`` (a registered implementation's name, or None).

    The deprecated ``size_average``/``reduce`` arguments are not accepted:
    use ``reduction``.
    """

    __constants__ = ["ignore_index", "reduction", "label_smoothing", "impl"]

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0, impl=None):
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.impl = impl

    def forward(self, input, target):
        return cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing,
                             impl=self.impl)

    def extra_repr(self):
        s = f"reduction={self.reduction!r}, ignore_index={self.ignore_index}"
        if self.label_smoothing:
            s += f", label_smoothing={self.label_smoothing}"
        if self.impl is not None:
            s += f", impl={self.impl!r}"
        return s

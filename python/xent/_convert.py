"""Python objects to what the extension reads: DLPack capsules and NumPy arrays.

Nothing here copies data. torch tensors become DLPack capsules of the same
memory (``detach()`` shares storage; any strides), NumPy arrays are passed as
they are (the extension reads their data pointer and strides), and other
objects are accepted when they export ``__dlpack__`` or
``__array_interface__`` (``numpy.asarray`` wraps those without copying).
"""

import sys

import numpy as np


def torch_module():
    """torch when it has been imported by someone, else None (xent never imports it itself here)."""
    return sys.modules.get("torch")


def is_torch(x):
    torch = torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def as_arg(x, name, optional=False):
    if x is None:
        if optional:
            return None
        raise TypeError(f"{name} is None")
    if is_torch(x):
        # to_dlpack refuses tensors that require grad; detach() is the same memory.
        return x.detach().__dlpack__()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):  # a NumPy scalar: a 0-d array of its value
        return np.asarray(x)
    if hasattr(x, "__dlpack__"):
        return x.__dlpack__()
    if hasattr(x, "__array_interface__") or hasattr(x, "__array_struct__"):
        return np.asarray(x)
    raise TypeError(
        f"{name} must be a torch.Tensor or a numpy.ndarray (or export __dlpack__ or "
        f"__array_interface__), got {type(x).__name__}"
    )

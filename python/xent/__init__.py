"""xent: the cross-entropy of torch.nn.CrossEntropyLoss, verified against a multiprecision reference.

    import torch, xent
    loss = xent.cross_entropy(logits, target)          # torch.nn.functional.cross_entropy's semantics
    loss.backward()                                    # gradient from the fused kernel
    xent.nn.CrossEntropyLoss(label_smoothing=0.1)      # the module

Inputs are torch tensors (CPU) or NumPy arrays, read in place with any
strides; results are torch tensors for torch input and NumPy arrays for NumPy
input. Invalid input raises ``xent.Error`` (a ``ValueError``) with the
library's message before anything is written; objects that are not tensors
raise ``TypeError``.
"""

from collections import namedtuple

import numpy as np

from . import _xent
from ._convert import as_arg, is_torch, torch_module
from ._verify import Failure, Verdict, verify

Error = _xent.Error

__all__ = [
    "Error",
    "Implementation",
    "Reference",
    "cross_entropy",
    "cross_entropy_forward_backward",
    "cross_entropy_into",
    "implementations",
    "default_implementation",
    "reference",
    "ulp_error",
    "verify",
    "Verdict",
    "Failure",
    "nn",
]

Implementation = namedtuple("Implementation", "name description tier domain supported peer")
Reference = namedtuple("Reference", "loss grad")


def implementations():
    """The registered implementations (ours first), as ``Implementation`` tuples."""
    return [Implementation(**d) for d in _xent.implementations()]


def default_implementation():
    """The name of the implementation used when ``impl`` is None (``$XENT_IMPL`` or the most accurate)."""
    return _xent.default_implementation()


def _is_probability_target(target):
    if is_torch(target):
        return target.is_floating_point()
    dtype = target.dtype if isinstance(target, (np.ndarray, np.generic)) else np.asarray(target).dtype
    return dtype.kind == "f"


def _loss_shape(input, target, reduction):
    """Shape of the loss: () for mean and sum; for none the target's position shape."""
    if reduction != "none":
        return ()
    if _is_probability_target(target):
        shape = tuple(input.shape)
        return shape[:1] + shape[2:] if len(shape) > 1 else ()
    return tuple(target.shape)


def _result_dtype(like):
    """PyTorch's: results in the logits' dtype, float32 for anything the library
    refuses (its error then names the input, not a result)."""
    if is_torch(like):
        torch = torch_module()
        return like.dtype if like.dtype in (torch.bfloat16, torch.float16, torch.float64) else torch.float32
    dtype = getattr(like, "dtype", None)
    return dtype if dtype in (np.float16, np.float64) else np.float32


def _empty(like, shape):
    """An uninitialised buffer of the same kind (torch or NumPy) as ``like`` for its loss."""
    if is_torch(like):
        return torch_module().empty(shape, dtype=_result_dtype(like))
    return np.empty(shape, dtype=_result_dtype(like))


def _empty_grad(input):
    if is_torch(input):
        torch = torch_module()
        # The input's layout when it is dense (a permutation), else contiguous.
        return torch.empty_like(input, dtype=_result_dtype(input), memory_format=torch.preserve_format)
    return np.empty(np.shape(input), dtype=_result_dtype(input))


def _check_reduction(reduction):
    if not isinstance(reduction, str):
        raise TypeError(f"reduction must be a str ('none', 'mean' or 'sum'), got {type(reduction).__name__}")


def cross_entropy_into(input, target, out, grad=None, weight=None, ignore_index=-100,
                       reduction="mean", label_smoothing=0.0, upstream=None, impl=None):
    """Writes the loss into ``out`` (and d loss / d input, scaled by ``upstream``, into ``grad``).

    Every tensor is read or written in place (torch or NumPy, any strides).
    ``out``: one element for mean/sum, the target's position shape for none.
    ``grad``: the input's shape; it may be ``input`` itself (in place).
    ``upstream``: None (1), one element, or for none one value per position.
    Everything is validated first: on an error nothing has been written.
    """
    _check_reduction(reduction)
    _xent.forward(
        as_arg(input, "input"), as_arg(target, "target"), as_arg(out, "out"),
        as_arg(grad, "grad", optional=True), as_arg(weight, "weight", optional=True),
        int(ignore_index), reduction, float(label_smoothing),
        as_arg(upstream, "upstream", optional=True), impl,
    )


def cross_entropy_forward_backward(input, target, weight=None, ignore_index=-100, reduction="mean",
                                   label_smoothing=0.0, upstream=None, impl=None):
    """(loss, d loss / d input scaled by ``upstream``) from one fused call, as new tensors of the input's kind."""
    _check_reduction(reduction)
    out = _empty(input, _loss_shape(input, target, reduction))
    grad = _empty_grad(input)
    cross_entropy_into(input, target, out, grad, weight, ignore_index, reduction, label_smoothing,
                       upstream, impl)
    return out, grad


def _loss_only(input, target, weight, ignore_index, reduction, label_smoothing, impl):
    out = _empty(input, _loss_shape(input, target, reduction))
    cross_entropy_into(input, target, out, None, weight, ignore_index, reduction, label_smoothing,
                       None, impl)
    return out


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, impl=None):
    """``torch.nn.functional.cross_entropy`` computed by xent.

    ``impl`` names a registered implementation (``xent.implementations()``;
    None: ``xent.default_implementation()``). For a torch input that requires
    grad (with grad mode on) the result carries a ``grad_fn``: mean and sum
    compute the loss and the gradient in one fused call, and backward returns
    that gradient when the upstream gradient is 1 (``loss.backward()``); for
    any other upstream gradient, and for none (loss only in forward),
    backward calls the fused kernel again with the upstream gradient, so
    each gradient entry is rounded once, as the kernel's tier promises.
    The gradient flows to ``input`` only: a target that requires grad is an
    error, and so is (in backward, as in PyTorch) a weight that requires grad.
    """
    _check_reduction(reduction)
    if is_torch(input):
        torch = torch_module()
        if torch.is_grad_enabled() and input.requires_grad:
            from ._autograd import CrossEntropyFunction

            if is_torch(target) and target.requires_grad:
                raise NotImplementedError(
                    "xent.cross_entropy: the gradient with respect to the target is not implemented "
                    "(detach the target)"
                )
            # Tensors for save_for_backward (from_numpy shares the memory).
            if not is_torch(target):
                target = torch.as_tensor(target)
            if weight is not None and not is_torch(weight):
                weight = torch.as_tensor(weight)
            return CrossEntropyFunction.apply(input, target, weight, int(ignore_index), reduction,
                                              float(label_smoothing), impl)
    return _loss_only(input, target, weight, ignore_index, reduction, label_smoothing, impl)


def reference(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
              grad=False, upstream=None, exact=False, precision_bits=160, threads=0):
    """The multiprecision (MPFR) reference of the loss and, with ``grad=True``, of d loss / d input.

    Returns ``Reference(loss, grad)`` (grad None unless asked): float64 values,
    the exact result rounded once; with ``exact=True`` each is a pair
    ``(hi, lo)`` of float64 arrays whose unevaluated sum carries ~106 bits.
    ``loss`` is a 0-d array for mean/sum, one value per position for none;
    ``grad`` has the input's shape (for none: the gradient of ``loss.sum()``,
    or weighted by ``upstream``). ``threads``: 0 for one per core.
    torch in, torch out (float64); NumPy in, NumPy out.
    """
    _check_reduction(reduction)
    d = _xent.reference(
        as_arg(input, "input"), as_arg(target, "target"), as_arg(weight, "weight", optional=True),
        int(ignore_index), reduction, float(label_smoothing), bool(grad),
        as_arg(upstream, "upstream", optional=True), int(precision_bits), int(threads),
    )
    wrap = torch_module().from_numpy if is_torch(input) else (lambda a: a)

    def value(kind):
        hi, lo = d[kind + "_hi"], d[kind + "_lo"]
        if exact:
            return wrap(hi), wrap(lo)
        return wrap(np.asarray(hi + lo))  # round-to-nearest of the exact sum (|lo| <= ulp(hi)/2: hi except at ties)

    return Reference(value("loss"), value("grad") if grad else None)


def _numpy(x, name):
    if is_torch(x):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (float, int, np.generic)):
        return np.asarray(x)
    raise TypeError(f"{name} must be a torch.Tensor or a numpy.ndarray, got {type(x).__name__}")


def ulp_error(y, ref):
    """Error of each element of ``y`` against the reference, in ulps of ``y``'s dtype.

    ``y``: float32 (ulps of the float32 result, as every xent tier), float64,
    float16 (11 bits, subnormals from 2^-24) or, for torch tensors, bfloat16
    (8 bits). ``ref``: a float64 array or a ``(hi, lo)`` pair
    (``reference(..., exact=True)``). |y - r| / ulp(RN(r)), RN(r) the exact
    value rounded once to y's dtype; 0.5 or less means correctly rounded. NaN
    against NaN and equal infinities give 0; NaN or an infinity against a
    finite value give inf. A float64 array of ``y``'s shape (torch for torch ``y``).
    """
    if isinstance(ref, tuple) and len(ref) == 2:
        hi, lo = _numpy(ref[0], "ref"), _numpy(ref[1], "ref")
    else:
        hi = _numpy(ref, "ref")
        lo = np.zeros_like(hi, dtype=np.float64)
    if is_torch(y):
        dtype = str(y.dtype).replace("torch.", "")
        values = y.detach().cpu().double().numpy() if y.is_floating_point() else _numpy(y, "y")
    else:
        values = _numpy(y, "y")
        dtype = str(values.dtype)
    e = _xent.ulp_error(values, hi, lo, dtype)
    return torch_module().from_numpy(e) if is_torch(y) else e


def __getattr__(name):
    # xent.nn needs torch: imported on first use.
    if name == "nn":
        import importlib

        return importlib.import_module(".nn", __name__)
    raise AttributeError(f"module 'xent' has no attribute {name!r}")

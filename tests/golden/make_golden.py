#!/usr/bin/python3
"""Golden values for xent from PyTorch's torch.nn.functional.cross_entropy.

Regenerate (from the repository root; Debian's python3 has torch 1.13 + numpy,
the pyenv python3 on PATH does not):

    /usr/bin/python3 tests/golden/make_golden.py

It rewrites tests/golden/cases.json deterministically (fixed seeds, one thread),
so running it twice gives the same file. tests/golden_test.cpp reads that file;
the JSON is committed, so the tests never need PyTorch.

Every case stores its inputs exactly (float32 values written as the shortest
decimal that reads back, via float64, as the same float32), the options, and
PyTorch's outputs: the loss (scalar or per position) and the gradient with
respect to the logits from autograd, for a recorded upstream gradient (a scalar
for mean/sum, one value per position for none). JSON has no NaN/inf: such
values are the strings "nan", "inf", "-inf" (inputs and outputs alike).

Error cases carry "expect_error": true and "error_source":
  "pytorch"  PyTorch raises too (its message is kept for documentation only;
             xent's messages differ),
  "xent"     PyTorch silently accepts the input and xent rejects it on purpose
             (documented difference, see "note"; PyTorch's output is kept).

Cases with a "dtype" (bfloat16, float16, float64) hold values of that dtype
and golden values rounded once to it: PyTorch's float64 result for the 16-bit
ones, the exact value (Python's decimal) for float64 (exact_cross_entropy).

A case may carry "xent_grad": PyTorch's gradient is recorded in "grad", but
xent deliberately differs (see "note"); the tests compare xent with xent_grad.
"""

import json
import math
import os
import zlib
from decimal import Decimal, getcontext

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cases.json")

NAN = float("nan")
INF = float("inf")


# ---------------------------------------------------------------- encoding --

def enc(v):
    """One float32 value as JSON: a number that round-trips, or a string.

    The number is the shortest decimal of the float32 when reading it as a
    float64 (strtod, what nlohmann::json does) and rounding that to float32
    gives the same float32 back (checked here); otherwise the exact float64
    value of the float32 (17 digits, always round-trips)."""
    f = np.float32(v)
    d = float(f)
    if math.isnan(d):
        return "nan"
    if math.isinf(d):
        return "inf" if d > 0 else "-inf"
    short = float(repr(f))  # shortest float32 digits, e.g. 0.1 for np.float32(0.1)
    if np.float32(short) == f and math.copysign(1.0, short) == math.copysign(1.0, d):
        return short
    return d


def ftensor(a, dtype="float32"):
    """float32/float64 values; bfloat16/float16 values are float32 values
    (exact), written as such with their dtype named."""
    a = np.asarray(a)
    if dtype == "float64":
        data = [float(v) for v in a.reshape(-1)]
        data = [("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")) if not math.isfinite(v) else v
                for v in data]
    else:
        data = [enc(v) for v in a.astype(np.float32).reshape(-1)]
    return {"shape": list(a.shape), "dtype": dtype, "data": data}


def itensor(a, dtype="int64"):
    a = np.asarray(a, dtype=np.int64)
    return {"shape": list(a.shape), "dtype": dtype, "data": [int(v) for v in a.reshape(-1)]}


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


# ----------------------------------------------------------------- inputs --

def logits_for(rng, shape, scale=2.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def class_axis(shape):
    return 0 if len(shape) == 1 else 1


def positions_of(shape):
    """Target (position) shape of logits of this shape."""
    if len(shape) == 1:
        return ()
    return (shape[0],) + tuple(shape[2:])


def index_targets(rng, shape):
    C = shape[class_axis(shape)]
    return rng.integers(0, C, size=positions_of(shape)).astype(np.int64)


def prob_targets(rng, shape):
    ax = class_axis(shape)
    z = rng.standard_normal(shape)
    e = np.exp(z - z.max(axis=ax, keepdims=True))
    return (e / e.sum(axis=ax, keepdims=True)).astype(np.float32)


def weights_for(rng, C):
    return rng.uniform(0.25, 2.0, size=C).astype(np.float32)


# ------------------------------------------------------------------ torch --

cases = []
names = set()


def torch_run(x, t, weight, ignore_index, reduction, ls, upstream):
    xt = torch.tensor(np.asarray(x, dtype=np.float32), requires_grad=True)
    tt = torch.tensor(t)
    wt = None if weight is None else torch.tensor(np.asarray(weight, dtype=np.float32))
    loss = F.cross_entropy(xt, tt, weight=wt, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=ls)
    loss.backward(torch.tensor(np.asarray(upstream, dtype=np.float32)).reshape(loss.shape))
    return loss.detach().numpy(), xt.grad.numpy()


def add(name, x, t, weight=None, ignore_index=-100, reduction="mean", ls=0.0, upstream=None,
        note=None, xent_grad=None, rng=None):
    """A case PyTorch computes. t: int64 array (index) or float32 array (probabilities)."""
    assert name not in names, name
    names.add(name)
    x = np.asarray(x, dtype=np.float32)
    t = np.asarray(t)
    prob = t.dtype.kind == "f"
    if prob:
        t = t.astype(np.float32)
    loss_shape = positions_of(x.shape) if reduction == "none" else ()
    if upstream is None:
        if reduction == "none":
            r = rng if rng is not None else rng_for(name + "/upstream")
            upstream = r.uniform(-1.5, 1.5, size=loss_shape).astype(np.float32)
        else:
            upstream = np.float32(1.0)
    upstream = np.asarray(upstream, dtype=np.float32).reshape(loss_shape)
    loss, grad = torch_run(x, t, weight, ignore_index, reduction, ls, upstream)
    case = {
        "name": name,
        "logits": ftensor(x),
        "target": ftensor(t) if prob else itensor(t),
        "weight": None if weight is None else ftensor(weight),
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": ls,
        "expect_error": False,
        "upstream": ftensor(upstream),
        "loss": ftensor(np.asarray(loss).reshape(loss_shape)),
        "grad": ftensor(grad),
    }
    if note:
        case["note"] = note
    if xent_grad is not None:
        case["xent_grad"] = ftensor(xent_grad)
    cases.append(case)
    return case


def add_error(name, x, t, weight=None, ignore_index=-100, reduction="mean", ls=0.0,
              source="pytorch", note=None, x_dtype="float32", t_dtype=None, w_dtype="float32"):
    """A case xent must reject. PyTorch is run to record what it does."""
    assert name not in names, name
    names.add(name)
    x = np.asarray(x)
    t = np.asarray(t)
    if t_dtype is None:
        t_dtype = "int64" if t.dtype.kind in "iu" else "float32"
    tdtypes = {"int64": torch.int64, "int32": torch.int32, "float32": torch.float32,
               "float64": torch.float64}
    xt = torch.tensor(x, dtype=torch.float64 if x_dtype == "float64" else torch.float32)
    tt = torch.tensor(t, dtype=tdtypes[t_dtype])
    wt = None if weight is None else torch.tensor(
        np.asarray(weight), dtype=torch.float64 if w_dtype == "float64" else torch.float32)
    case = {
        "name": name,
        "logits": ftensor(x, x_dtype),
        "target": itensor(t, t_dtype) if t_dtype.startswith("int") else ftensor(t, t_dtype),
        "weight": None if weight is None else ftensor(weight, w_dtype),
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": "nan" if isinstance(ls, float) and math.isnan(ls) else ls,
        "expect_error": True,
        "error_source": source,
    }
    try:
        out = F.cross_entropy(xt, tt, weight=wt, ignore_index=ignore_index, reduction=reduction,
                              label_smoothing=ls)
        assert source == "xent", f"{name}: PyTorch accepted an input marked as a PyTorch error"
        out = out.detach().numpy()
        case["pytorch_loss"] = ftensor(out, "float64" if out.dtype == np.float64 else "float32")
    except Exception as e:  # noqa: BLE001 -- any PyTorch error is what we record
        assert source == "pytorch", f"{name}: PyTorch raised {e!r} on an input marked as accepted"
        case["pytorch_message"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    if note:
        case["note"] = note
    cases.append(case)


# ------------------------------------------------------------------ cases --

def shape_tag(shape):
    return "x".join(str(s) for s in shape)


SHAPES = [(5,), (4, 5), (3, 4, 3), (2, 3, 2, 3)]
REDUCTIONS = ["none", "mean", "sum"]
SMOOTHINGS = [0.0, 0.1, 1.0]


def grid_index():
    """Index targets: shapes x reductions x smoothing x weight x ignore_index."""
    for shape in SHAPES:
        C = shape[class_axis(shape)]
        base = f"index/{shape_tag(shape)}"
        rng = rng_for(base)
        x = logits_for(rng, shape)
        t = index_targets(rng, shape)
        w = weights_for(rng, C)
        if len(shape) == 1:
            t = np.array(3, dtype=np.int64)  # not 1: the ignore_index=1 variant keeps its target
        for ii in (-100, 1):
            ti = t.copy()
            if t.ndim > 0:
                flat = ti.reshape(-1)
                if ii == -100:
                    flat[1::4] = -100  # some ignored positions
                else:
                    flat[2] = 1       # at least one target equal to ignore_index ...
                    flat[0] = 0       # ... and at least one counted
            for red in REDUCTIONS:
                for ls in SMOOTHINGS:
                    for weighted in (False, True):
                        name = f"{base}/ii{ii}/{red}/ls{ls}/{'w' if weighted else 'nw'}"
                        add(name, x, ti, w if weighted else None, ii, red, ls)


def grid_prob():
    """Probability targets: shapes x reductions x smoothing x weight."""
    for shape in SHAPES:
        C = shape[class_axis(shape)]
        base = f"prob/{shape_tag(shape)}"
        rng = rng_for(base)
        x = logits_for(rng, shape)
        q = prob_targets(rng, shape)
        w = weights_for(rng, C)
        for red in REDUCTIONS:
            for ls in SMOOTHINGS:
                for weighted in (False, True):
                    name = f"{base}/{red}/ls{ls}/{'w' if weighted else 'nw'}"
                    add(name, x, q, w if weighted else None, -100, red, ls)


def special_values():
    """NaN/inf rules of docs/design.md §2 (row 1 of 4 carries the special value)."""
    rng = rng_for("special")
    C = 5
    x0 = logits_for(rng, (4, C))
    t0 = np.array([2, 0, 4, 1], dtype=np.int64)
    w = weights_for(rng, C)
    w_zero = w.copy()
    w_zero[3] = 0.0  # weight 0 on the -inf class: 0 * inf
    q0 = prob_targets(rng, (4, C))

    variants = {
        "nan_logit": lambda x: x.__setitem__((1, 3), NAN),
        "pinf_logit": lambda x: x.__setitem__((1, 3), INF),
        "ninf_nontarget": lambda x: x.__setitem__((1, 3), -INF),
        "ninf_target": lambda x: x.__setitem__((1, 0), -INF),
        "all_ninf_row": lambda x: x.__setitem__((1, slice(None)), -INF),
        "nan_and_pinf": lambda x: (x.__setitem__((1, 3), NAN), x.__setitem__((1, 2), INF)),
        "two_ninf_nontarget": lambda x: (x.__setitem__((1, 3), -INF), x.__setitem__((2, 0), -INF)),
    }
    for vname, setv in variants.items():
        x = x0.copy()
        setv(x)
        for red in REDUCTIONS:
            for ls in (0.0, 0.1):
                for wname, wv in (("nw", None), ("w", w)):
                    add(f"special/{vname}/{red}/ls{ls}/{wname}", x, t0, wv, -100, red, ls)
    # -inf on a class whose weight is 0, with smoothing: w_c * lp_c = 0 * -inf = NaN.
    x = x0.copy()
    x[1, 3] = -INF
    for red in REDUCTIONS:
        add(f"special/ninf_nontarget_zero_weight/{red}/ls0.1", x, t0, w_zero, -100, red, 0.1,
            note="label smoothing multiplies lp=-inf by weight 0: the row's loss is NaN, "
                 "its gradient finite")
        add(f"special/ninf_nontarget_zero_weight/{red}/ls0.0", x, t0, w_zero, -100, red, 0.0)

    # -inf on the target times 0: epsilon = 1 removes the target term
    # ((1 - 1) * inf), a zero weight on the target class does too (0 * inf).
    x = x0.copy()
    x[1, 0] = -INF
    w_t0 = w.copy()
    w_t0[0] = 0.0
    for red in REDUCTIONS:
        add(f"special/ninf_target/{red}/ls1.0/nw", x, t0, None, -100, red, 1.0,
            note="(1 - eps) * inf with eps = 1 is NaN")
        add(f"special/ninf_target_zero_weight/{red}/ls0.0", x, t0, w_t0, -100, red, 0.0,
            note="weight 0 on the -inf target: 0 * inf is NaN")

    # Special values in an ignored row: the loss ignores them; PyTorch's gradient
    # of that row is NaN for NaN/+inf (log_softmax backward: 0 - exp(NaN) * 0),
    # xent writes zeros (ignored rows contribute nothing).
    t_ign = t0.copy()
    t_ign[1] = -100
    for vname in ("nan_logit", "pinf_logit", "ninf_nontarget", "all_ninf_row"):
        x = x0.copy()
        variants[vname](x)
        for red in REDUCTIONS:
            for ls in (0.0, 0.1):
                name = f"special/ignored_row_{vname}/{red}/ls{ls}"
                probe_loss, probe_grad = torch_run(x, t_ign, None, -100, red, ls,
                                                   np.ones(4 if red == "none" else (), np.float32))
                del probe_loss
                if np.isnan(probe_grad[1]).any():
                    # Same upstream as add() will draw.
                    c = add(name, x, t_ign, None, -100, red, ls,
                            note="PyTorch's gradient of an ignored row holding NaN/+inf is NaN "
                                 "(log_softmax backward computes 0 - exp(NaN)*0); xent gives "
                                 "ignored rows a zero gradient (documented difference, "
                                 "README.md: where xent differs from PyTorch)")
                    g = np.array([np.nan if v == "nan" else v for v in c["grad"]["data"]],
                                 dtype=np.float32).reshape(x.shape)
                    g[1, :] = 0.0
                    c["xent_grad"] = ftensor(g)
                else:
                    add(name, x, t_ign, None, -100, red, ls)

    # Probability targets with -inf logits: q = 0 there gives 0 * -inf = NaN in
    # PyTorch (no special case), q > 0 gives +inf.
    for qname, qcol in (("q_zero", 0.0), ("q_positive", None)):
        x = x0.copy()
        x[1, 3] = -INF
        q = q0.copy()
        if qcol is not None:
            q[1, 3] = qcol
            q[1] /= q[1].sum()
        for red in REDUCTIONS:
            for ls in (0.0, 0.1):
                add(f"special/prob_ninf_{qname}/{red}/ls{ls}", x, q, None, -100, red, ls)
    for vname in ("nan_logit", "pinf_logit", "all_ninf_row"):
        x = x0.copy()
        variants[vname](x)
        for red in REDUCTIONS:
            add(f"special/prob_{vname}/{red}", x, q0, w, -100, red, 0.1)

    # Special values in an (N, C, d) layout: the class axis is strided.
    rng3 = rng_for("special/3d")
    x3 = logits_for(rng3, (2, 4, 3))
    t3 = np.array([[0, 1, 2], [3, 0, 1]], dtype=np.int64)
    x3[0, 2, 1] = -INF  # non-target of position (0, 1)
    x3[1, 1, 2] = NAN   # position (1, 2)
    x3[1, 3, 0] = -INF  # target of position (1, 0)
    for red in REDUCTIONS:
        for ls in (0.0, 0.1):
            add(f"special/3d_mixed/{red}/ls{ls}", x3, t3, None, -100, red, ls)


def all_ignored():
    rng = rng_for("all_ignored")
    x = logits_for(rng, (4, 5))
    w = weights_for(rng, 5)
    for ii, t in ((-100, np.full(4, -100, np.int64)), (2, np.full(4, 2, np.int64))):
        for red in REDUCTIONS:
            for ls in (0.0, 0.1):
                for wname, wv in (("nw", None), ("w", w)):
                    add(f"all_ignored/ii{ii}/{red}/ls{ls}/{wname}", x, t, wv, ii, red, ls,
                        note="all targets ignored: mean NaN (0/0), sum 0, none zeros, grad zeros")
    x3 = logits_for(rng, (2, 3, 2))
    for red in REDUCTIONS:
        add(f"all_ignored/2x3x2/{red}", x3, np.full((2, 2), -100, np.int64), None, -100, red, 0.0)
    x1 = logits_for(rng, (5,))
    for red in REDUCTIONS:
        add(f"all_ignored/scalar_target/{red}", x1, np.array(-100, np.int64), None, -100, red, 0.0)
    # One class weight 0 on every counted target: W = 0 too, mean is 0/0 = NaN.
    wz = np.ones(5, np.float32)
    wz[3] = 0.0
    for red in REDUCTIONS:
        add(f"zero_total_weight/{red}", x, np.full(4, 3, np.int64), wz, -100, red, 0.0,
            note="every counted target has weight 0: mean is 0/0 = NaN")


def empty():
    C = 5
    w = np.linspace(0.5, 1.5, C).astype(np.float32)
    for shape in ((0, C), (2, C, 0), (0, C, 3), (0, 0)):
        x = np.zeros(shape, np.float32)
        tshape = positions_of(shape)
        for red in REDUCTIONS:
            for ls in (0.0, 0.1):
                if ls > 0 and shape[1] == 0:
                    # C = 0: PyTorch's smoothing term is (eps / 0) * 0 = NaN even for
                    # 'sum'; a degenerate artifact we do not pin down.
                    continue
                for wname, wv in (("nw", None), ("w", w if shape[1] == C else None)):
                    if wname == "w" and wv is None:
                        continue
                    add(f"empty/{shape_tag(shape)}/index/{red}/ls{ls}/{wname}", x,
                        np.zeros(tshape, np.int64), wv, -100, red, ls,
                        note="empty input: mean NaN, sum 0, none empty")
                    add(f"empty/{shape_tag(shape)}/prob/{red}/ls{ls}/{wname}", x,
                        np.zeros(shape, np.float32), wv, -100, red, ls)


def one_class():
    rng = rng_for("one_class")
    for shape in ((4, 1), (2, 1, 3), (1,)):
        x = logits_for(rng, shape, scale=5.0)
        t = np.zeros(positions_of(shape), np.int64)
        for red in REDUCTIONS:
            for ls in (0.0, 0.1):
                add(f"one_class/{shape_tag(shape)}/{red}/ls{ls}", x, t, None, -100, red, ls,
                    note="C = 1: log_softmax is 0, the loss is identically 0")
        w = np.array([2.5], np.float32)
        add(f"one_class/{shape_tag(shape)}/mean/weighted", x, t, w, -100, "mean", 0.0)


def continuous_targets():
    """PyTorch #137188: float targets of the logits' shape are probabilities."""
    rng = rng_for("continuous")
    x = logits_for(rng, (4, 1))
    y = np.array([[0.3], [2.5], [-1.0], [7.0]], np.float32)  # regression targets
    for red in REDUCTIONS:
        add(f"continuous/regression_Nx1/{red}", x, y, None, -100, red, 0.0,
            note="#137188: (N,1) float targets are taken as probabilities over one class: "
                 "the loss is always 0")
    x = logits_for(rng, (3, 4))
    q = rng.uniform(-1.0, 3.0, size=(3, 4)).astype(np.float32)  # negative, unnormalised
    w = weights_for(rng, 4)
    for red in REDUCTIONS:
        for ls in (0.0, 0.1):
            add(f"continuous/unnormalised_q/{red}/ls{ls}", x, q, w, -100, red, ls,
                note="q is not validated: negative and unnormalised targets are accepted")
    # Soft one-hot equals index targets (unweighted).
    x = logits_for(rng, (3, 4))
    t = np.array([0, 3, 1], np.int64)
    onehot = np.eye(4, dtype=np.float32)[t]
    for red in REDUCTIONS:
        add(f"continuous/one_hot/{red}", x, onehot, None, -100, red, 0.0)
        add(f"continuous/one_hot_as_index/{red}", x, t, None, -100, red, 0.0)


def large_logits():
    """#11752: large logits make the loss exactly 0 (dominant target) or large."""
    x = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0], [-500.0, 500.0, 499.0],
                  [20.0, 0.0, 0.0]], np.float32)
    t = np.array([0, 0, 2, 0], np.int64)
    for red in REDUCTIONS:
        for ls in (0.0, 0.1):
            add(f"large/1000/{red}/ls{ls}", x, t, None, -100, red, ls,
                note="#11752: loss 0 for a dominant target, large otherwise")
    rng = rng_for("large")
    for scale in (100.0, 1.0e4):
        x = logits_for(rng, (6, 7), scale=scale)
        t = rng.integers(0, 7, size=6).astype(np.int64)
        w = weights_for(rng, 7)
        for red in REDUCTIONS:
            add(f"large/scale{scale:g}/{red}", x, t, w, -100, red, 0.1)
            add(f"large/scale{scale:g}/{red}/ls0", x, t, None, -100, red, 0.0)
    # Inside the naive kernel's domain but near its edge: exp(80) ~ 5.5e34.
    x = np.array([[80.0, -80.0, 0.0, 79.5], [-86.0, -86.5, -85.0, -86.0]], np.float32)
    t = np.array([3, 2], np.int64)
    for red in REDUCTIONS:
        add(f"large/near_naive_edge/{red}", x, t, None, -100, red, 0.0)
    # Dominant target: the loss is tiny but not 0 (PyTorch rounds it).
    x = np.array([[16.0, 0.0, 0.0, 0.0], [25.0, 1.0, -3.0, 0.5]], np.float32)
    t = np.array([0, 0], np.int64)
    for red in REDUCTIONS:
        add(f"large/dominant_target/{red}", x, t, None, -100, red, 0.0)


def weighted_mean_vs_none():
    """#49400: weighted 'mean' divides by the sum of target weights, not by N."""
    rng = rng_for("weighted_mean")
    x = logits_for(rng, (6, 4))
    t = np.array([0, 1, 1, 3, 2, 1], np.int64)
    w = np.array([0.5, 3.0, 1.0, 0.25], np.float32)
    for red in REDUCTIONS:
        add(f"weighted_mean_vs_none/{red}", x, t, w, -100, red, 0.0,
            note="#49400: mean = sum(l) / sum(w[t]), which differs from none.mean()",
            upstream=None if red != "none" else np.ones(6, np.float32))
        add(f"weighted_mean_vs_none/{red}/ls0.2", x, t, w, -100, red, 0.2)


def ignore_index_variants():
    rng = rng_for("ignore_variants")
    x = logits_for(rng, (5, 4))
    w = weights_for(rng, 4)
    t = np.array([1, -1, 3, -1, 0], np.int64)
    for red in REDUCTIONS:
        add(f"ignore/minus1/{red}", x, t, w, -1, red, 0.1)
    t = np.array([1, 7, 3, 7, 0], np.int64)
    for red in REDUCTIONS:
        add(f"ignore/out_of_range_7/{red}", x, t, w, 7, red, 0.1,
            note="ignore_index outside [0, C) still ignores targets equal to it")
    t = np.array([1, 1, 3, 2, 0], np.int64)
    for red in REDUCTIONS:
        for ls in (0.1, 1.0):
            add(f"ignore/in_range_1/{red}/ls{ls}", x, t, w, 1, red, ls,
                note="class 1 = ignore_index still counts in C and in the smoothing sum")
    # Probability targets with a negative ignore_index other than -100 are fine.
    q = prob_targets(rng, (5, 4))
    add("ignore/prob_minus5/mean", x, q, None, -5, "mean", 0.0)


def unusual_weights():
    """Weights are not validated either: zero, negative, and NaN on a class no target uses."""
    rng = rng_for("unusual_weights")
    x = logits_for(rng, (5, 4))
    t = np.array([0, 1, 3, 1, 0], np.int64)
    for wname, w in (("zero_negative", np.array([1.5, -0.5, 0.0, 2.0], np.float32)),
                     ("nan_untargeted", np.array([1.0, 0.5, NAN, 2.0], np.float32))):
        for red in REDUCTIONS:
            for ls in (0.0, 0.1):
                add(f"weights/{wname}/{red}/ls{ls}", x, t, w, -100, red, ls)
    q = prob_targets(rng, (5, 4))
    for red in REDUCTIONS:
        add(f"weights/zero_negative_prob/{red}", x, q, np.array([1.5, -0.5, 0.0, 2.0], np.float32),
            -100, red, 0.1)


def wide_rows():
    """A few rows over many classes (the LLM shape, in miniature)."""
    rng = rng_for("wide")
    C = 1000
    x = logits_for(rng, (2, C), scale=3.0)
    t = np.array([17, 998], np.int64)
    w = weights_for(rng, C)
    for red in REDUCTIONS:
        add(f"wide/2x1000/{red}/ls0.1/w", x, t, w, -100, red, 0.1)
    add("wide/2x1000/mean/ls0/nw", x, t, None, -100, "mean", 0.0)
    x[0, 17] = 40.0  # dominant target in a wide row
    add("wide/2x1000_dominant/none", x, t, None, -100, "none", 0.0)


def classic():
    x = np.zeros((3, 5), np.float32)
    t = np.array([1, 3, 2], np.int64)
    add("classic/zeros_3x5/mean", x, t, note="headline example: ln 5 = 1.6094379")
    rng = rng_for("classic")
    x = logits_for(rng, (3, 5))
    for red, up in (("mean", 0.5), ("sum", -2.0), ("mean", 0.0)):
        add(f"classic/upstream_{up:g}/{red}", x, t, None, -100, red, 0.0, upstream=np.float32(up))
    add("classic/upstream_scalar_none", x, t, None, -100, "none", 0.0,
        upstream=np.full(3, 0.75, np.float32))
    # Char-level LM idiom: [B,T,C][:, h:].contiguous().view(-1, C).
    B, T, C, h = 2, 5, 6, 2
    xs = logits_for(rng, (B, T, C))
    ts = rng.integers(0, C, size=(B, T)).astype(np.int64)
    add("classic/char_lm_slice_flattened/mean", xs[:, h:].reshape(-1, C), ts[:, h:].reshape(-1),
        note="[B,T,C][:, h:].contiguous().view(-1, C): a [B*(T-h), C] problem")


def errors():
    rng = rng_for("errors")
    x = logits_for(rng, (3, 5))
    x3 = logits_for(rng, (2, 5, 4))
    q = prob_targets(rng, (3, 5))
    t = np.array([1, 2, 2], np.int64)
    add_error("error/target_out_of_bounds/positive", x, [1, 7, 2])
    add_error("error/target_out_of_bounds/negative", x, [1, -1, 2])
    add_error("error/target_out_of_bounds/equal_C", x, [1, 5, 2], reduction="none")
    add_error("error/target_out_of_bounds/with_smoothing", x, [1, 7, 2], ls=0.1)
    add_error("error/target_out_of_bounds/ignore_index_1", x, [1, -100, 2], ignore_index=1)
    add_error("error/target_out_of_bounds/3d", x3, [[1, 2, 3, 0], [0, 0, 9, 0]])
    add_error("error/target_out_of_bounds/scalar", logits_for(rng, (5,)), np.array(5))
    add_error("error/weight_wrong_length", x, t, weight=np.ones(4, np.float32))
    add_error("error/weight_wrong_length_prob", x, q, weight=np.ones(6, np.float32))
    add_error("error/weight_2d", x, t, weight=np.ones((1, 5), np.float32))
    add_error("error/weight_float64", x, t, weight=np.ones(5), w_dtype="float64")
    add_error("error/target_batch_mismatch", x, [1, 2])
    add_error("error/target_shape_mismatch_3d", x3, np.zeros((2, 3), np.int64))
    add_error("error/target_2d_for_2d_logits", x, np.zeros((3, 1), np.int64))
    add_error("error/prob_target_ignore_index_1", x, q, ignore_index=1)
    add_error("error/prob_target_ignore_index_0", x, q, ignore_index=0)
    add_error("error/label_smoothing_gt_1", x, t, ls=1.5)
    add_error("error/label_smoothing_gt_1_prob", x, q, ls=1.5)
    add_error("error/int32_target", x, t, t_dtype="int32")
    add_error("error/int64_target_of_logits_shape", x, np.zeros((3, 5), np.int64))
    add_error("error/zero_classes", np.zeros((3, 0), np.float32), [0, 0, 0])
    add_error("error/zero_dim_logits", np.array(1.0, np.float32), np.array(0),
              note="PyTorch takes a 0-d target of the same shape as probabilities and then "
                   "complains about its dtype; xent rejects 0-d logits")
    add_error("error/unknown_reduction", x, t, reduction="avg")
    # PyTorch accepts these; xent rejects them on purpose.
    add_error("error/label_smoothing_negative", x, t, ls=-0.5, source="xent",
              note="PyTorch #134767: label_smoothing < 0 is silently treated as 0; xent rejects it")
    add_error("error/label_smoothing_negative_prob", x, q, ls=-0.1, source="xent",
              note="label_smoothing < 0 is silently treated as 0 by PyTorch; xent rejects it")
    add_error("error/label_smoothing_nan", x, t, ls=NAN, source="xent",
              note="label_smoothing NaN is silently treated as 0 by PyTorch; xent rejects it")
    add_error("error/float64_prob_target", x, q.astype(np.float64), t_dtype="float64",
              source="xent",
              note="PyTorch promotes float32 logits with float64 probabilities to float64; "
                   "xent requires the logits' dtype")


# ------------------------------------------------------- 16-bit logits --

DIGITS = {"bfloat16": (8, -126), "float16": (11, -14)}
TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def round_to(v, dtype):
    """A float64 rounded once to the dtype (to nearest, ties to even,
    subnormals, overflow to inf): Python's round() on an exactly scaled
    float, never through float32 (which would round twice)."""
    if not math.isfinite(v) or v == 0.0:
        return v
    p, emin = DIGITS[dtype]
    e = max(math.frexp(abs(v))[1] - 1, emin)
    q = math.ldexp(1.0, e - p + 1)
    r = round(abs(v) / q) * q  # abs(v) / q is exact; round() ties to even
    largest = math.ldexp(2.0 - math.ldexp(1.0, 1 - p), 127 if dtype == "bfloat16" else 15)
    return math.copysign(INF if r > largest else r, v)


def rounded(a, dtype):
    """Values of the dtype, as float32 (exact)."""
    return np.vectorize(lambda v: round_to(float(v), dtype))(np.asarray(a, np.float64)).astype(np.float32)


def add16(name, dtype, x, t, weight=None, ignore_index=-100, reduction="mean", ls=0.0):
    """bfloat16/float16 logits (probabilities, weights, upstream in the same
    dtype). The golden values are PyTorch's float64 result on the same numbers
    (a 16-bit value widens exactly), rounded once to the dtype: what a
    correctly rounded kernel returns, and PyTorch's semantics (results in
    the logits' dtype). PyTorch's own bfloat16 result is kept for reference
    ("pytorch_loss"/"pytorch_grad"); float16 has none (not implemented on
    the CPU)."""
    assert name not in names, name
    names.add(name)
    x = rounded(x, dtype)
    t = np.asarray(t)
    prob = t.dtype.kind == "f"
    if prob:
        t = rounded(t, dtype)
    if weight is not None:
        weight = rounded(weight, dtype)
    loss_shape = positions_of(x.shape) if reduction == "none" else ()
    r = rng_for(name + "/upstream")
    upstream = (r.uniform(-1.5, 1.5, size=loss_shape) if reduction == "none" else np.ones(()))
    upstream = rounded(upstream, dtype).reshape(loss_shape)

    def run(tdtype):
        xt = torch.tensor(x, dtype=torch.float64).to(tdtype).requires_grad_()
        tt = torch.tensor(t, dtype=torch.float64).to(tdtype) if prob else torch.tensor(t)
        wt = None if weight is None else torch.tensor(weight, dtype=torch.float64).to(tdtype)
        loss = F.cross_entropy(xt, tt, weight=wt, ignore_index=ignore_index, reduction=reduction,
                               label_smoothing=ls)
        loss.backward(torch.tensor(upstream, dtype=torch.float64).to(tdtype).reshape(loss.shape))
        return loss.detach().double().numpy(), xt.grad.double().numpy()

    loss64, grad64 = run(torch.float64)
    case = {
        "name": name,
        "dtype": dtype,
        "logits": ftensor(x, dtype),
        "target": ftensor(t, dtype) if prob else itensor(t),
        "weight": None if weight is None else ftensor(weight, dtype),
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": ls,
        "expect_error": False,
        "upstream": ftensor(upstream, dtype),
        "loss": ftensor(rounded(np.asarray(loss64).reshape(loss_shape), dtype), dtype),
        "grad": ftensor(rounded(grad64, dtype), dtype),
        "note": f"golden: PyTorch in float64 on the {dtype} inputs, rounded once to {dtype}",
    }
    if dtype == "bfloat16":
        loss16, grad16 = run(torch.bfloat16)
        case["pytorch_loss"] = ftensor(np.asarray(loss16).reshape(loss_shape), dtype)
        case["pytorch_grad"] = ftensor(grad16, dtype)
    cases.append(case)


def sixteen_bit():
    """bfloat16 and float16: every option on (N, C) and (N, C, d) logits."""
    for dtype in ("bfloat16", "float16"):
        for shape in ((6, 7), (2, 5, 3)):
            base = f"{dtype}/{shape_tag(shape)}"
            rng = rng_for(base)
            x = logits_for(rng, shape, scale=3.0)
            t = index_targets(rng, shape)
            t.reshape(-1)[1] = -100
            q = prob_targets(rng, shape)
            w = weights_for(rng, shape[1])
            for red in REDUCTIONS:
                add16(f"{base}/index/{red}", dtype, x, t, None, -100, red, 0.0)
                add16(f"{base}/index/{red}/w/ls0.1", dtype, x, t, w, -100, red, 0.1)
                add16(f"{base}/prob/{red}/w", dtype, x, q, w, -100, red, 0.0)
        # Large logits: dominant targets (tiny losses) and float16's range.
        x = np.array([[12.0, 0.0, -3.0, 1.0], [-60.0, 60.0, 59.5, 0.0], [1000.0, 0.0, 3.0, -1000.0]], np.float32)
        t = np.array([0, 2, 0], np.int64)
        for red in REDUCTIONS:
            add16(f"{dtype}/large/{red}", dtype, x, t, None, -100, red, 0.0)


# ------------------------------------------------------- float64 logits --

def log1p_decimal(r):
    """ln(1 + r) for r >= 0 at the context's precision, also where 1 + r
    rounds to 1: the series for small r."""
    if r > Decimal("1e-12"):
        return (1 + r).ln()
    total, term, n = Decimal(0), r, 1
    while term != 0 and abs(term) > abs(r) * Decimal(10) ** -90:
        total += term / n
        n += 1
        term = -term * r
    return total


def exact_cross_entropy(x, t, weight, ignore_index, reduction, ls, upstream):
    """The exact loss and gradient of float64 inputs, in Python's decimal at
    80 significant digits (its exp and ln are correctly rounded in that
    precision), rounded once to float64 at the end: what a correctly rounded
    kernel returns. PyTorch's semantics (docs/design.md §2)."""
    getcontext().prec = 80
    x = np.asarray(x, np.float64)
    ax = class_axis(x.shape)
    C = x.shape[ax]
    xs = np.moveaxis(x, ax, -1).reshape(-1, C)  # (P, C), positions in C order
    P = xs.shape[0]
    prob = np.asarray(t).dtype.kind == "f"
    ts = np.moveaxis(np.asarray(t, np.float64), ax, -1).reshape(-1, C) if prob else np.asarray(t).reshape(-1)
    w = [Decimal(1)] * C if weight is None else [Decimal(float(v)) for v in weight]
    eps = Decimal(float(ls))
    ups = np.asarray(upstream, np.float64).reshape(-1)
    losses, b_rows, counted = [], [], []
    for p in range(P):
        xp = [Decimal(float(v)) for v in xs[p]]
        if not prob and int(ts[p]) == ignore_index:
            losses.append(Decimal(0))
            b_rows.append(None)
            counted.append(False)
            continue
        # In the log1p form, without cancellation: L = log1p(Σ_{c≠k} e^{x_c - m}),
        # lse - x_c = (m - x_c) + L, 1 - p_j = Σ_{c≠j} p_c (a rest of 1e-304
        # would vanish in 1 + rest at 80 digits).
        k = max(range(C), key=lambda c: xp[c])
        m = xp[k]
        L = log1p_decimal(sum((xp[c] - m).exp() for c in range(C) if c != k))
        if prob:
            q = [(1 - eps) * Decimal(float(v)) + eps / C for v in ts[p]]
        else:
            q = [(1 - eps) * (1 if c == int(ts[p]) else 0) + eps / C for c in range(C)]
        b = [w[c] * q[c] for c in range(C)]
        losses.append(sum(b[c] * ((m - xp[c]) + L) for c in range(C)))
        b_rows.append((b, [(xp[c] - m - L).exp() for c in range(C)]))
        counted.append(True)
    if reduction == "none":
        scales = [Decimal(float(u)) for u in ups]
        loss = np.array([float(v) for v in losses]).reshape(positions_of(x.shape))
    else:
        W = Decimal(P) if prob else sum(w[int(ts[p])] for p in range(P) if counted[p])
        total = sum(losses)
        value = total / W if reduction == "mean" else total
        s = Decimal(float(ups[0])) / (W if reduction == "mean" else 1)
        scales = [s] * P
        loss = np.array(float(value))
    grad = np.zeros((P, C))
    for p in range(P):
        if b_rows[p] is None:
            continue
        b, pr = b_rows[p]
        for c in range(C):
            # p_c B - b_c = p_c (B - b_c) - b_c (1 - p_c), each factor a sum of
            # nonnegative terms.
            others_b = sum(b[j] for j in range(C) if j != c)
            others_p = sum(pr[j] for j in range(C) if j != c)
            grad[p, c] = float(scales[p] * (pr[c] * others_b - b[c] * others_p))
    grad = np.moveaxis(grad.reshape(tuple(np.delete(x.shape, ax)) + (C,)), -1, ax) if x.ndim > 1 else grad[0]
    return loss, grad


def add64(name, x, t, weight=None, ignore_index=-100, reduction="mean", ls=0.0):
    """float64 logits (probabilities, weights, upstream, loss and gradient in
    float64). The golden values are the exact values rounded once to float64
    (exact_cross_entropy), checked here against PyTorch's float64 result
    (which is within ~1e-15 of it where the result is not tiny); PyTorch's own
    result is kept for reference ("pytorch_loss"/"pytorch_grad")."""
    assert name not in names, name
    names.add(name)
    x = np.asarray(x, np.float64)
    t = np.asarray(t)
    prob = t.dtype.kind == "f"
    loss_shape = positions_of(x.shape) if reduction == "none" else ()
    r = rng_for(name + "/upstream")
    upstream = (r.uniform(-1.5, 1.5, size=loss_shape) if reduction == "none" else np.ones(())).reshape(loss_shape)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(t, dtype=torch.float64) if prob else torch.tensor(t)
    wt = None if weight is None else torch.tensor(np.asarray(weight, np.float64))
    tl = F.cross_entropy(xt, tt, weight=wt, ignore_index=ignore_index, reduction=reduction, label_smoothing=ls)
    tl.backward(torch.tensor(upstream, dtype=torch.float64).reshape(tl.shape))
    torch_loss, torch_grad = tl.detach().numpy().reshape(loss_shape), xt.grad.numpy()
    loss, grad = exact_cross_entropy(x, t, weight, ignore_index, reduction, ls, upstream)
    for what, a, b in (("loss", loss, torch_loss), ("grad", grad, torch_grad)):
        a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
        scale = max(1.0, float(np.max(np.abs(a)))) if a.size else 1.0
        assert np.all(np.abs(a - b) <= 1e-12 * scale), (name, what, a, b)
    case = {
        "name": name,
        "dtype": "float64",
        "logits": ftensor(x, "float64"),
        "target": ftensor(t, "float64") if prob else itensor(t),
        "weight": None if weight is None else ftensor(np.asarray(weight, np.float64), "float64"),
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": ls,
        "expect_error": False,
        "upstream": ftensor(upstream, "float64"),
        "loss": ftensor(np.asarray(loss).reshape(loss_shape), "float64"),
        "grad": ftensor(grad, "float64"),
        "pytorch_loss": ftensor(torch_loss, "float64"),
        "pytorch_grad": ftensor(torch_grad, "float64"),
        "note": "golden: the exact value (Python decimal, 80 digits) rounded once to float64; "
                "PyTorch's float64 result in pytorch_loss/pytorch_grad",
    }
    cases.append(case)


def float64():
    """float64: every option on (N, C) and (N, C, d) logits with full
    significands, dominant targets, huge spreads and logits one ulp apart."""
    for shape in ((6, 7), (2, 5, 3)):
        base = f"float64/{shape_tag(shape)}"
        rng = rng_for(base)
        x = rng.standard_normal(shape) * 3.0
        t = index_targets(rng, shape)
        t.reshape(-1)[1] = -100
        z = rng.standard_normal(shape)
        q = np.exp(z - z.max(axis=1, keepdims=True))
        q = q / q.sum(axis=1, keepdims=True)
        w = rng.uniform(0.25, 2.0, size=shape[1])
        for red in REDUCTIONS:
            add64(f"{base}/index/{red}", x, t, None, -100, red, 0.0)
            add64(f"{base}/index/{red}/w/ls0.1", x, t, w, -100, red, 0.1)
            add64(f"{base}/prob/{red}/w", x, q, w, -100, red, 0.0)
    one = 1.0 + 2.0 ** -52
    x = np.array([[12.0, 0.0, -3.0, 1.0], [-60.0, 60.0, 59.5, 0.0], [1000.0, 0.0, 3.0, -1000.0],
                  [700.0, -700.0, 0.0, 1e-300], [1.0, one, 1.0 - 2.0 ** -53, 1.0]])
    t = np.array([0, 2, 0, 0, 1], np.int64)
    for red in REDUCTIONS:
        add64(f"float64/large/{red}", x, t, None, -100, red, 0.0)


def main():
    grid_index()
    grid_prob()
    special_values()
    all_ignored()
    empty()
    one_class()
    continuous_targets()
    large_logits()
    weighted_mean_vs_none()
    ignore_index_variants()
    unusual_weights()
    wide_rows()
    classic()
    sixteen_bit()
    float64()
    errors()
    header = {
        "generator": "tests/golden/make_golden.py (run: /usr/bin/python3 tests/golden/make_golden.py)",
        "torch_version": torch.__version__.split("+")[0],
        "encoding": "float32 values as round-tripping decimals; NaN/inf as \"nan\"/\"inf\"/\"-inf\"",
        "grad": "d(sum(upstream * loss))/d(logits) from autograd",
    }
    # One case per line: readable diffs, small file.
    with open(OUT, "w") as f:
        f.write("{\n")
        for k, v in header.items():
            f.write(f"{json.dumps(k)}: {json.dumps(v)},\n")
        f.write('"cases": [\n')
        f.write(",\n".join(json.dumps(c, separators=(",", ":"), allow_nan=False) for c in cases))
        f.write("\n]}\n")
    n_err = sum(c["expect_error"] for c in cases)
    print(f"wrote {OUT}: {len(cases)} cases ({n_err} error cases), "
          f"{os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()

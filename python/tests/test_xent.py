"""Tests of the Python module (ctest label `python`; plain unittest, pytest runs them too).

Agreement with torch.nn.functional.cross_entropy is a test of the semantics,
not of the accuracy: xent's results are compared with PyTorch's evaluated in
float64 (rtol 1e-5, atol 1e-6: far above both float32 implementations' error
on these O(1) losses and gradients, far below any semantic difference).
Accuracy is measured against the multiprecision reference (xent.reference,
xent.ulp_error), with the tier bounds of the README (stable: loss and every
gradient entry within 1 ulp).
"""

import itertools
import math
import unittest

import numpy as np
import torch
import torch.nn.functional as F

import xent
from xent import _xent
from xent._convert import as_arg

OURS = [i.name for i in xent.implementations() if i.name in ("stable", "simd", "openmp") and i.supported]
RTOL, ATOL = 1e-5, 1e-6


def logits(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * 3).float()


def index_target(shape, classes, seed=1, ignore=None):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, classes, shape, generator=g)
    if ignore is not None and t.numel() > 1:
        t.view(-1)[:: 3] = ignore  # every third position ignored
    return t


def prob_target(shape, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g), dim=1 if len(shape) > 1 else 0)


def torch64(x, t, **kw):
    """F.cross_entropy in float64 (the semantics, with little rounding of its own)."""
    w = kw.pop("weight", None)
    t64 = t.double() if t.is_floating_point() else t
    return F.cross_entropy(x.double(), t64, weight=None if w is None else w.double(), **kw)


class ClassicExamples(unittest.TestCase):
    def test_zeros_3x5_is_ln5(self):
        x = torch.zeros(3, 5)
        t = torch.tensor([1, 3, 2])
        for impl in [None] + OURS:
            loss = xent.cross_entropy(x, t, impl=impl)
            self.assertIsInstance(loss, torch.Tensor)
            self.assertEqual(loss.shape, ())
            self.assertEqual(loss.item(), np.float32(math.log(5)))
        loss = xent.cross_entropy(np.zeros((3, 5), np.float32), np.array([1, 3, 2]))
        self.assertIsInstance(loss, np.ndarray)
        self.assertEqual(loss.shape, ())
        self.assertEqual(loss[()], np.float32(math.log(5)))

    def test_char_lm_slice(self):
        # logits [B, T, C] of a character model, the last T - h steps scored:
        # x[:, h:] permuted to the class axis at dim 1, no copy.
        B, T, C, h = 2, 7, 11, 3
        x = logits(B, T, C, seed=5)
        t = index_target((B, T), C, seed=6)
        view = x[:, h:].permute(0, 2, 1)
        self.assertFalse(view.is_contiguous())
        got = xent.cross_entropy(view, t[:, h:])
        want = torch64(x[:, h:].reshape(-1, C), t[:, h:].reshape(-1))
        torch.testing.assert_close(got.double(), want, rtol=RTOL, atol=ATOL)


class AgreementWithTorch(unittest.TestCase):
    def cases(self):
        C = 7
        shapes = [(C,), (5, C), (2, C, 3, 2)]
        for shape, reduction, weighted, smoothing, kind in itertools.product(
            shapes, ["none", "mean", "sum"], [False, True], [0.0, 0.25], ["index", "prob"]
        ):
            x = logits(*shape, seed=len(shape))
            pos = shape[:1] + shape[2:] if len(shape) > 1 else ()
            if kind == "index":
                ignore = 4 if len(shape) > 1 else None
                t = index_target(pos, C, ignore=ignore)
                kw = {"ignore_index": 4} if ignore is not None else {}
            else:
                t = prob_target(shape)
                kw = {}
            if weighted:
                kw["weight"] = torch.linspace(0.5, 2.0, C)
            kw.update(reduction=reduction, label_smoothing=smoothing)
            yield x, t, kw

    def test_loss_every_option_and_implementation(self):
        n = 0
        for impl in OURS:
            for x, t, kw in self.cases():
                with self.subTest(impl=impl, shape=tuple(x.shape), target=t.dtype, **{k: v for k, v in kw.items() if k != "weight"},
                                  weighted="weight" in kw):
                    got = xent.cross_entropy(x, t, impl=impl, **kw)
                    want = torch64(x, t, **kw)
                    self.assertEqual(got.dtype, torch.float32)
                    self.assertEqual(got.shape, want.shape)
                    torch.testing.assert_close(got.double(), want, rtol=RTOL, atol=ATOL)
                    n += 1
        self.assertGreater(n, 100)

    def test_gradient_every_option_vs_autograd(self):
        for impl in OURS:
            for x, t, kw in self.cases():
                with self.subTest(impl=impl, shape=tuple(x.shape), target=t.dtype, **{k: v for k, v in kw.items() if k != "weight"},
                                  weighted="weight" in kw):
                    xa = x.clone().requires_grad_()
                    loss = xent.cross_entropy(xa, t, impl=impl, **kw)
                    self.assertIsNotNone(loss.grad_fn)
                    xb = x.double().requires_grad_()
                    w = kw.get("weight")
                    ref = F.cross_entropy(xb, t.double() if t.is_floating_point() else t,
                                          **{**kw, "weight": None if w is None else w.double()})
                    if kw["reduction"] == "none":
                        up = torch.linspace(-1.5, 2.0, max(loss.numel(), 1))[: loss.numel()].reshape(loss.shape)
                        loss.backward(up)
                        ref.backward(up.double())
                    else:
                        (loss * 3).backward()  # an upstream gradient other than 1
                        (ref * 3).backward()
                    self.assertEqual(xa.grad.shape, x.shape)
                    torch.testing.assert_close(xa.grad.double(), xb.grad, rtol=RTOL, atol=ATOL)

    def test_edge_cases(self):
        cases = [
            (torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)),  # empty batch: mean NaN, sum 0
            (logits(5), torch.tensor(2)),  # unbatched (C) with a 0-d target
            (logits(5), prob_target((5,))),  # unbatched probabilities
            (logits(3, 4), torch.full((3,), -100)),  # every target ignored: mean NaN, gradient 0
        ]
        for x, t in cases:
            for reduction in ["none", "mean", "sum"]:
                with self.subTest(shape=tuple(x.shape), target=tuple(t.shape), reduction=reduction):
                    xa = x.clone().requires_grad_()
                    got = xent.cross_entropy(xa, t, reduction=reduction)
                    xb = x.double().requires_grad_()
                    want = F.cross_entropy(xb, t.double() if t.is_floating_point() else t, reduction=reduction)
                    self.assertEqual(got.shape, want.shape)
                    torch.testing.assert_close(got.double(), want.detach(), rtol=RTOL, atol=ATOL, equal_nan=True)
                    got.sum().backward()
                    want.sum().backward()
                    torch.testing.assert_close(xa.grad.double(), xb.grad, rtol=RTOL, atol=ATOL, equal_nan=True)

    def test_upstream_one_returns_the_fused_gradient(self):
        x = logits(6, 9).requires_grad_()
        t = index_target((6,), 9)
        xent.cross_entropy(x, t, impl="stable").backward()
        _, g = xent.cross_entropy_forward_backward(x.detach(), t, impl="stable")
        self.assertTrue(torch.equal(x.grad, g))

    def test_upstream_gradient_rounded_once(self):
        # loss * u backward equals the kernel's gradient with upstream u, bit for bit.
        x = logits(6, 9, seed=3)
        t = index_target((6,), 9)
        w = torch.linspace(0.2, 1.6, 9)
        u = torch.tensor(0.90326798)
        for impl in OURS:
            for reduction in ["mean", "sum"]:
                xa = x.clone().requires_grad_()
                (xent.cross_entropy(xa, t, weight=w, reduction=reduction, impl=impl) * u).backward()
                _, g = xent.cross_entropy_forward_backward(x, t, weight=w, reduction=reduction, upstream=u,
                                                           impl=impl)
                self.assertTrue(torch.equal(xa.grad, g), (impl, reduction))

    def test_numpy_target_with_torch_input(self):
        x = logits(4, 5).requires_grad_()
        t = index_target((4,), 5)
        loss = xent.cross_entropy(x, t.numpy(), weight=np.linspace(1, 2, 5, dtype=np.float32))
        self.assertIsInstance(loss, torch.Tensor)
        loss.backward()
        self.assertEqual(x.grad.shape, x.shape)

    def test_module(self):
        x = logits(4, 6, 3).requires_grad_()
        t = index_target((4, 3), 6)
        w = torch.linspace(1, 2, 6)
        m = xent.nn.CrossEntropyLoss(weight=w, label_smoothing=0.1, reduction="sum", impl="stable")
        r = torch.nn.CrossEntropyLoss(weight=w.double(), label_smoothing=0.1, reduction="sum")
        self.assertIn("weight", dict(m.named_buffers()))
        loss = m(x, t)
        xb = x.detach().double().requires_grad_()
        want = r(xb, t)
        torch.testing.assert_close(loss.double(), want, rtol=RTOL, atol=ATOL)
        loss.backward()
        want.backward()
        torch.testing.assert_close(x.grad.double(), xb.grad, rtol=RTOL, atol=ATOL)

    def test_no_grad_and_plain_tensors_have_no_graph(self):
        x = logits(3, 4).requires_grad_()
        t = index_target((3,), 4)
        with torch.no_grad():
            self.assertIsNone(xent.cross_entropy(x, t).grad_fn)
        self.assertIsNone(xent.cross_entropy(x.detach(), t).grad_fn)


class NumpyPath(unittest.TestCase):
    def test_numpy_in_numpy_out(self):
        x = logits(5, 8).numpy()
        t = index_target((5,), 8).numpy()
        for reduction in ["none", "mean", "sum"]:
            got = xent.cross_entropy(x, t, reduction=reduction, label_smoothing=0.1)
            self.assertIsInstance(got, np.ndarray)
            self.assertEqual(got.dtype, np.float32)
            same = xent.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction=reduction,
                                      label_smoothing=0.1)
            np.testing.assert_array_equal(got, same.numpy())
        loss, grad = xent.cross_entropy_forward_backward(x, t, impl="stable")
        self.assertIsInstance(grad, np.ndarray)
        self.assertEqual(grad.shape, x.shape)
        xb = torch.from_numpy(x).double().requires_grad_()
        F.cross_entropy(xb, torch.from_numpy(t)).backward()
        np.testing.assert_allclose(grad, xb.grad.numpy(), rtol=RTOL, atol=ATOL)

    def test_probability_targets(self):
        x = logits(4, 5).numpy()
        q = prob_target((4, 5)).numpy()
        got = xent.cross_entropy(x, q, reduction="none")
        want = torch64(torch.from_numpy(x), torch.from_numpy(q), reduction="none").numpy()
        self.assertEqual(got.shape, (4,))
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


class ZeroCopy(unittest.TestCase):
    def check_view(self, tensor, address, strides):
        a, dtype, shape, s = _xent.view_info(as_arg(tensor, "tensor"))
        self.assertEqual(a, address)
        self.assertEqual(tuple(shape), tuple(tensor.shape))
        self.assertEqual(tuple(s), tuple(strides))

    def test_torch_views_are_read_in_place(self):
        big = logits(6, 20, 4)
        views = [big[:, ::3, 1], big.permute(2, 1, 0)[1:], big[1:5, 2:9], big[::2]]
        for v in views:
            with self.subTest(shape=tuple(v.shape), stride=v.stride()):
                self.assertFalse(v.is_contiguous())
                self.check_view(v, v.data_ptr(), v.stride())

    def test_numpy_views_are_read_in_place(self):
        big = logits(6, 20, 4).numpy()
        for v in [big[:, ::3, 1], big.transpose(2, 1, 0)[1:], big[1:5, 2:9]]:
            with self.subTest(shape=v.shape, strides=v.strides):
                self.check_view(v, v.__array_interface__["data"][0], [s // 4 for s in v.strides])

    def test_requires_grad_tensor_is_read_in_place(self):
        x = logits(3, 4).requires_grad_()
        self.check_view(x, x.data_ptr(), x.stride())

    def test_strided_results_equal_contiguous_bitwise(self):
        big = logits(8, 30)
        x = big[1::2, 3::2]  # (4, 14) with strides (60, 2)
        t = index_target((4,), 14)
        for impl in OURS:
            for reduction in ["none", "mean"]:
                a = xent.cross_entropy_forward_backward(x, t, reduction=reduction, impl=impl)
                b = xent.cross_entropy_forward_backward(x.contiguous(), t, reduction=reduction, impl=impl)
                self.assertTrue(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), (impl, reduction))
        xn = big.numpy()[1::2, 3::2]
        np.testing.assert_array_equal(xent.cross_entropy(xn, t.numpy(), reduction="none"),
                                      xent.cross_entropy(x, t, reduction="none").numpy())

    def test_in_place_gradient(self):
        x = logits(5, 6)
        t = index_target((5,), 6)
        _, want = xent.cross_entropy_forward_backward(x, t, impl="stable")
        out = torch.empty(())
        xent.cross_entropy_into(x, t, out, grad=x, impl="stable")
        self.assertTrue(torch.equal(x, want))

    def test_outputs_written_in_place(self):
        x = logits(4, 5)
        t = index_target((4,), 5)
        buf = torch.full((4, 3), 7.0)
        out = buf[:, 1]  # strided output
        xent.cross_entropy_into(x, t, out, reduction="none")
        torch.testing.assert_close(out.double(), torch64(x, t, reduction="none"), rtol=RTOL, atol=ATOL)
        self.assertTrue(torch.all(buf[:, 0] == 7) and torch.all(buf[:, 2] == 7))


class Errors(unittest.TestCase):
    def assert_untouched(self, out, grad):
        self.assertTrue(torch.all(out == 42.0))
        self.assertTrue(torch.all(grad == 42.0))

    def raises_value_error(self, message, f, *args, **kw):
        with self.assertRaises(ValueError) as cm:
            f(*args, **kw)
        self.assertIsInstance(cm.exception, xent.Error)
        self.assertIn(message, str(cm.exception))
        return cm.exception

    def test_target_out_of_range_writes_nothing(self):
        x = torch.zeros(3, 5)
        t = torch.tensor([1, 7, 2])
        for impl in OURS:
            out, grad = torch.full((), 42.0), torch.full((3, 5), 42.0)
            e = self.raises_value_error(
                "Target 7 is out of bounds at position [1] (classes 0..4, ignore_index -100)",
                xent.cross_entropy_into, x, t, out, grad, impl=impl)
            self.assertEqual(e.argument, "target")
            self.assert_untouched(out, grad)
            self.raises_value_error("Target 7 is out of bounds", xent.cross_entropy,
                                    x.clone().requires_grad_(), t, impl=impl)
        self.raises_value_error("Target 7 is out of bounds", xent.cross_entropy, x.numpy(), t.numpy())

    def test_wrong_dtypes(self):
        t = torch.tensor([1, 2])
        self.raises_value_error("int64", xent.cross_entropy, torch.zeros(2, 5), t.int())
        e = self.raises_value_error("float32", xent.cross_entropy, torch.zeros(2, 5, dtype=torch.int32), t)
        self.assertEqual(e.argument, "logits")
        # float64 logits need a kernel that computes them: naive takes float32 only.
        self.raises_value_error("does not compute float64 logits", xent.cross_entropy,
                                torch.zeros(2, 5, dtype=torch.float64), t, impl="naive")
        # 16-bit logits need a kernel that computes them: naive takes float32 only.
        self.raises_value_error("does not compute bfloat16 logits", xent.cross_entropy,
                                torch.zeros(2, 5, dtype=torch.bfloat16), t, impl="naive")
        out, grad = torch.full((), 42.0), torch.full((2, 5), 42.0)
        self.raises_value_error("float32", xent.cross_entropy_into, torch.zeros(2, 5), t,
                                out.double(), grad)
        self.assert_untouched(out, grad)

    def test_wrong_shapes(self):
        out, grad = torch.full((), 42.0), torch.full((3, 5), 42.0)
        self.raises_value_error("target shape", xent.cross_entropy_into, torch.zeros(3, 5),
                                torch.tensor([1, 2]), out, grad)
        self.assert_untouched(out, grad)
        self.raises_value_error("grad must have the logits' shape", xent.cross_entropy_into,
                                torch.zeros(3, 4), torch.tensor([1, 2, 0]), out, grad)
        self.assert_untouched(out, grad)
        self.raises_value_error("weight", xent.cross_entropy, torch.zeros(3, 5), torch.tensor([1, 2, 0]),
                                weight=torch.ones(4))

    def test_bad_options(self):
        x, t = torch.zeros(3, 5), torch.tensor([1, 2, 0])
        self.raises_value_error("label_smoothing", xent.cross_entropy, x, t, label_smoothing=-0.1)
        self.raises_value_error("avg", xent.cross_entropy, x, t, reduction="avg")
        self.raises_value_error("unknown implementation 'nope'", xent.cross_entropy, x, t, impl="nope")

    def test_read_only_output(self):
        out = np.full((), 42.0, np.float32)
        out.flags.writeable = False
        self.raises_value_error("read-only", xent.cross_entropy_into, np.zeros((3, 5), np.float32),
                                np.array([1, 2, 0]), out)
        self.assertEqual(out[()], 42.0)

    def test_type_errors(self):
        with self.assertRaises(TypeError):
            xent.cross_entropy([[0.0, 1.0]], [1])
        with self.assertRaises(TypeError):
            xent.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), reduction=None)

    def test_weight_requiring_grad(self):
        x = logits(2, 3).requires_grad_()
        w = torch.ones(3, requires_grad=True)
        loss = xent.cross_entropy(x, torch.tensor([0, 2]), weight=w)
        with self.assertRaisesRegex(RuntimeError, "not differentiable with respect to argument 'weight'"):
            loss.backward()

    def test_target_requiring_grad(self):
        x = logits(2, 3).requires_grad_()
        q = prob_target((2, 3)).requires_grad_()
        with self.assertRaises(NotImplementedError):
            xent.cross_entropy(x, q)


class ReferenceAndUlps(unittest.TestCase):
    def test_ln5(self):
        r = xent.reference(np.zeros((3, 5), np.float32), np.array([1, 3, 2]), grad=True)
        self.assertEqual(r.loss[()], math.log(5))
        np.testing.assert_allclose(r.grad, np.where(np.eye(5)[[1, 3, 2]] == 1, 0.2 - 1, 0.2) / 3, rtol=1e-15)
        hi, lo = xent.reference(np.zeros((3, 5), np.float32), np.array([1, 3, 2]), exact=True).loss
        self.assertEqual(hi, math.log(5))
        self.assertLess(abs(lo), 1e-16 * math.log(5))

    def test_stable_within_its_tier(self):
        # (N, C, d) with weights, smoothing and ignored positions; none and mean.
        x = logits(3, 6, 4, seed=9)
        t = index_target((3, 4), 6, ignore=2)
        kw = dict(weight=torch.linspace(0.5, 1.5, 6), ignore_index=2, label_smoothing=0.1)
        for reduction in ["none", "mean"]:
            loss, grad = xent.cross_entropy_forward_backward(x, t, reduction=reduction, impl="stable", **kw)
            r = xent.reference(x, t, reduction=reduction, grad=True, exact=True, **kw)
            self.assertIsInstance(r.loss[0], torch.Tensor)
            self.assertEqual(tuple(r.grad[0].shape), tuple(x.shape))
            self.assertLessEqual(xent.ulp_error(loss, r.loss).max().item(), 1.0)
            self.assertLessEqual(xent.ulp_error(grad, r.grad).max().item(), 1.0)
            # the float64 reference agrees with PyTorch's float64 evaluation
            want = torch64(x, t, reduction=reduction, **kw)
            torch.testing.assert_close(xent.reference(x, t, reduction=reduction, **kw).loss, want,
                                       rtol=1e-12, atol=1e-14)

    def test_reference_upstream(self):
        x = logits(4, 3)
        t = index_target((4,), 3)
        up = torch.tensor([1.0, -2.0, 0.5, 0.0])
        r = xent.reference(x, t, reduction="none", grad=True, upstream=up)
        xb = x.double().requires_grad_()
        F.cross_entropy(xb, t, reduction="none").backward(up.double())
        torch.testing.assert_close(r.grad, xb.grad, rtol=1e-12, atol=1e-15)

    def test_ulp_error(self):
        r = np.array([1.0, 1.0, 2.0 ** -30, np.nan])
        y = np.array([1.0, np.nextafter(np.float32(1), np.float32(2)), 2.0 ** -30, np.nan], np.float32)
        np.testing.assert_array_equal(xent.ulp_error(y, r), [0.0, 1.0, 0.0, 0.0])
        self.assertEqual(xent.ulp_error(np.float32(np.nan), 1.0)[()], math.inf)
        self.assertEqual(xent.ulp_error(np.array([1.0 + 2.0 ** -52]), np.array([1.0]))[0], 1.0)
        # Half types, each in its own ulps: float16 steps by 2^-10 at 1 and
        # 2^-24 in its subnormals; bfloat16 (torch only) by 2^-7 at 1.
        h = np.array([1.0 + 2.0 ** -10, 2.0 ** -23, 65504.0], np.float16)
        np.testing.assert_array_equal(xent.ulp_error(h, np.array([1.0, 2.0 ** -24, 65520.0])), [1.0, 1.0, 0.5])
        b = torch.tensor([1.0 + 2.0 ** -7, 1.0], dtype=torch.bfloat16)
        e = xent.ulp_error(b, np.array([1.0, 1.0 + 2.0 ** -8]))
        self.assertTrue(torch.is_tensor(e))
        self.assertEqual(e.tolist(), [1.0, 0.5])
        with self.assertRaises(TypeError):
            xent.ulp_error(np.array([1], np.int32), np.array([1.0]))


class SixteenBit(unittest.TestCase):
    """bfloat16 and float16 logits: results in the logits' dtype (PyTorch's
    semantics); stable rounds each once from the exact value (the reference
    of the widened inputs, which are the same numbers)."""

    def test_torch_half_types_are_correctly_rounded_by_stable(self):
        t = index_target((6,), 7)
        w = torch.linspace(0.5, 2.0, 7)
        for dtype, name in [(torch.bfloat16, "bfloat16"), (torch.float16, "float16")]:
            x = logits(6, 7, seed=4).to(dtype).requires_grad_()
            for reduction in ["none", "mean"]:
                kw = dict(weight=w.to(dtype), label_smoothing=0.1, reduction=reduction)
                loss = xent.cross_entropy(x, t, impl="stable", **kw)
                self.assertEqual(loss.dtype, dtype)
                loss.sum().backward()
                self.assertEqual(x.grad.dtype, dtype)
                r = xent.reference(x.detach().float(), t, grad=True, exact=True, weight=w.to(dtype).float(),
                                   label_smoothing=0.1, reduction=reduction)
                self.assertLessEqual(xent.ulp_error(loss.detach(), r.loss).max().item(), 0.5, name)
                self.assertLessEqual(xent.ulp_error(x.grad, r.grad).max().item(), 0.5, name)
                x.grad = None

    def test_numpy_float16_in_float16_out(self):
        x = logits(4, 5, seed=2).numpy().astype(np.float16)
        t = index_target((4,), 5).numpy()
        loss, grad = xent.cross_entropy_forward_backward(x, t, impl="stable")
        self.assertEqual((loss.dtype, grad.dtype), (np.float16, np.float16))
        r = xent.reference(x.astype(np.float32), t, grad=True, exact=True)
        self.assertLessEqual(xent.ulp_error(loss, r.loss).max(), 0.5)
        self.assertLessEqual(xent.ulp_error(grad, r.grad).max(), 0.5)


class Float64(unittest.TestCase):
    """float64 logits: results in float64 (PyTorch's semantics), each rounded
    once from the exact value by stable (the default: the most accurate)."""

    def test_torch_float64_is_correctly_rounded(self):
        t = index_target((6,), 7)
        w = torch.linspace(0.5, 2.0, 7, dtype=torch.float64)
        x = (logits(6, 7, seed=5).double() * (1 + 1e-9)).requires_grad_()
        for reduction in ["none", "mean"]:
            kw = dict(weight=w, label_smoothing=0.1, reduction=reduction)
            loss = xent.cross_entropy(x, t, **kw)
            self.assertEqual(loss.dtype, torch.float64)
            loss.sum().backward()
            self.assertEqual(x.grad.dtype, torch.float64)
            r = xent.reference(x.detach(), t, grad=True, exact=True, **kw)
            self.assertLessEqual(xent.ulp_error(loss.detach(), r.loss).max().item(), 0.5)
            self.assertLessEqual(xent.ulp_error(x.grad, r.grad).max().item(), 0.5)
            # PyTorch's own float64 result agrees to a few ulps.
            self.assertTrue(torch.allclose(loss, F.cross_entropy(x, t, **kw), rtol=1e-14, atol=0))
            x.grad = None

    def test_numpy_float64_in_float64_out(self):
        x = logits(4, 5, seed=3).numpy().astype(np.float64) / 3
        t = index_target((4,), 5).numpy()
        loss, grad = xent.cross_entropy_forward_backward(x, t)
        self.assertEqual((loss.dtype, grad.dtype), (np.float64, np.float64))
        r = xent.reference(x, t, grad=True, exact=True)
        self.assertLessEqual(xent.ulp_error(loss, r.loss).max(), 0.5)
        self.assertLessEqual(xent.ulp_error(grad, r.grad).max(), 0.5)


class Registry(unittest.TestCase):
    def test_implementations(self):
        names = [i.name for i in xent.implementations()]
        for n in ["stable", "simd", "openmp", "throughput", "naive"]:
            self.assertIn(n, names)
        self.assertIn(xent.default_implementation(), names)
        stable = next(i for i in xent.implementations() if i.name == "stable")
        self.assertEqual(stable.tier, "correctly_rounded")
        throughput = next(i for i in xent.implementations() if i.name == "throughput")
        self.assertEqual(throughput.tier, "relaxed")


if __name__ == "__main__":
    unittest.main()

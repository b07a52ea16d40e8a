"""xent.verify on Python functions (runs `xent verify` in a subprocess; needs the xent command).

A few properties at a reduced budget, so that the test stays short: each
property's child process starts Python and imports torch.
"""

import os
import sys
import unittest

import xent

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernels  # noqa: E402

QUICK = dict(scale=0.2, sweep=False, quiet=True, timeout=300)


def have_command():
    try:
        xent._verify._command()
        return True
    except FileNotFoundError:
        return False


@unittest.skipUnless(have_command(), "the xent command is not built")
class Verify(unittest.TestCase):
    def test_xent_through_python_accepted(self):
        # At stable's own tier: the autograd path keeps every gradient entry
        # rounded once (an upstream gradient other than 1 included).
        v = xent.verify(kernels.xent_stable, tier="accurate",
                        properties=["loss_within_tier", "gradient_within_tier", "reduction_within_tier",
                                    "options_within_tier", "shift_invariance"], **QUICK)
        self.assertTrue(v.accepted, v.output)
        self.assertIn("ACCEPTED", v.summary)
        self.assertEqual(v.failures, [])

    def test_torch_deviation_reported_with_counterexample(self):
        # PyTorch's float32 losses overflow for logits near FLT_MAX. A wrapper
        # of F.cross_entropy is a function of its own: found, shrunk,
        # replayable, and new (xent cannot know what it wraps).
        v = xent.verify(kernels.torch_cross_entropy, tier="standard", properties=["loss_within_tier"], **QUICK)
        self.assertFalse(v.accepted)
        (f,) = v.failures
        self.assertEqual(f.property, "reference_props/loss_within_tier")
        self.assertIn("got inf", f.details)
        self.assertIn("RC_PARAMS=", f.replay)
        self.assertEqual(v.known, [])

    def test_torch_itself_has_known_deviations(self):
        # F.cross_entropy itself is the LibTorch peer's ATen kernel: the same
        # failure is its documented deviation, still with its counterexample.
        import torch.nn.functional as F

        for fn, known_deviations in ((F.cross_entropy, None), (kernels.torch_cross_entropy, "torch")):
            v = xent.verify(fn, tier="standard", properties=["loss_within_tier"], known_deviations=known_deviations,
                            **QUICK)
            self.assertFalse(v.accepted)
            self.assertEqual(v.failures, [], v.output)
            (k,) = v.known
            self.assertEqual(k.property, "reference_props/loss_within_tier")
            self.assertIn("float32 overflow", k.reason)
            self.assertIn("got inf", k.details)
            self.assertIn("RC_PARAMS=", k.replay)
            self.assertIn("a known PyTorch deviation", v.summary)
        # Judged at another tier, or with the list turned off, it is a failure like any other.
        for kwargs in (dict(tier="fast"), dict(tier="standard", known_deviations="none")):
            v = xent.verify(F.cross_entropy, properties=["loss_within_tier"], **kwargs, **QUICK)
            self.assertEqual([f.property for f in v.failures], ["reference_props/loss_within_tier"], v.output)
            self.assertEqual(v.known, [])
        with self.assertRaises(ValueError):
            xent.verify(F.cross_entropy, known_deviations="numpy", **QUICK)

    def test_missing_max_shift_rejected(self):
        v = xent.verify(kernels.no_max_shift, tier="standard", properties=["loss_within_tier", "shift_invariance"],
                        **QUICK)
        self.assertFalse(v.accepted)
        self.assertIn("REJECTED", v.summary)
        self.assertTrue(v.failures)
        self.assertTrue(any(f.replay for f in v.failures), v.output)

    def test_crash_reported_not_fatal(self):
        v = xent.verify("kernels:crashes_on_large_logits", tier="standard", properties=["loss_within_tier"],
                        **QUICK)
        self.assertFalse(v.accepted)
        self.assertEqual([f.status.split()[0] for f in v.failures], ["CRASH"], v.output)

    def test_hang_reported_not_fatal(self):
        v = xent.verify("kernels:hangs_on_nan", properties=["special_values_follow_pytorch"],
                        **{**QUICK, "timeout": 10})
        self.assertFalse(v.accepted)
        self.assertEqual(len(v.failures), 1, v.output)
        self.assertIn("hung: killed after 10 s", v.failures[0].status)

    def test_command_line(self):
        import subprocess

        r = subprocess.run([sys.executable, "-m", "xent", "verify", "kernels:no_max_shift", "--property",
                            "loss_within_tier", "--scale", "0.2", "--no-sweep"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("Verdict for no_max_shift: REJECTED", r.stdout)
        r = subprocess.run([sys.executable, "-m", "xent", "verify", "no_colon"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)

    def test_xent_verify_python_option(self):
        # The C++ command's --python: the same plug-in, from any directory
        # where the module is importable (here the tests' own).
        import subprocess

        from xent._verify import _command

        r = subprocess.run([_command(), "verify", "--python", "kernels:no_max_shift", "--property", "loss_within_tier",
                            "--scale", "0.2", "--no-sweep"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("Verdict for no_max_shift: REJECTED", r.stdout)
        r = subprocess.run([_command(), "verify", "--python", "no_colon"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("expected module:function", r.stderr)

    def test_not_importable(self):
        with self.assertRaises(ValueError):
            xent.verify(lambda x, t, **kw: x.sum())


if __name__ == "__main__":
    unittest.main()

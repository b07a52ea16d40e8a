"""xent.verify on Python cross-entropies (run from the repository root:
PYTHONPATH=build/release/python:python/tests python3 python/examples/verify_functions.py).

PyTorch's own F.cross_entropy is checked like any kernel (its deviations are
reported with shrunk counterexamples), and a hand-written cross-entropy that
forgets the max shift is rejected.
"""

import sys

import torch.nn.functional as F

import xent
import kernels  # python/tests/kernels.py: importable by name in xent verify's child processes

quick = dict(scale=0.2, sweep=False)
print("== torch.nn.functional.cross_entropy, tier standard ==")
torch_verdict = xent.verify(F.cross_entropy, tier="standard", **quick)
print("== no max shift, tier standard ==")
buggy = xent.verify(kernels.no_max_shift, tier="standard", properties=["loss_within_tier"], **quick)
print("torch:", torch_verdict.summary)
print(f"  {len(torch_verdict.known)} known PyTorch deviations, {len(torch_verdict.failures)} new failures")
for f in torch_verdict.failures:
    print(f"  new: {f.property}: {f.status}\n    {f.replay}")
print("buggy:", buggy.summary)
sys.exit(0 if not buggy.accepted else 1)

#!/usr/bin/python3
"""What Debian's PyTorch (1.13) computes for F.cross_entropy on the CPU for each
floating dtype of the logits, and how far its results are from the exact value
rounded once to that dtype. Prints a report; writes nothing. Recorded in
docs/dtypes.md, the ground the dtypes work (float64, bfloat16, float16 logits)
builds on.

    /usr/bin/python3 tests/golden/torch_dtypes.py

Support: every option of the semantics (index and probability targets, class
weights, label smoothing, ignore_index, the three reductions, an (N, C, d)
layout), forward and backward, per dtype. Accuracy: the reference is PyTorch
itself in float64 on the same (exactly widened) inputs, whose error (~1e-16
relative) is far below half an ulp of bfloat16 (2^-9 relative), rounded once
to bfloat16; so "correctly rounded" here means "equal to RN_bf16 of a value
within 2^-50 of the exact one", which can misjudge only results within that
distance of a rounding boundary.
"""

import torch
import torch.nn.functional as F

torch.set_num_threads(1)

OPTIONS = [
    ("index targets", {}),
    ("probability targets", {"prob": True}),
    ("class weights", {"weight": True}),
    ("label smoothing 0.1", {"ls": 0.1}),
    ("reduction none", {"red": "none"}),
    ("reduction sum", {"red": "sum"}),
    ("ignore_index", {"ign": True}),
    ("(N, C, d) layout", {"ncd": True}),
]


def probe(dt, kw):
    torch.manual_seed(0)
    shape = (4, 5, 3) if kw.get("ncd") else (4, 5)
    x = torch.randn(*shape).to(dt).requires_grad_()
    if kw.get("prob"):
        t = torch.softmax(torch.randn(*shape), 1).to(dt)
    else:
        t = torch.randint(0, 5, (4, 3) if kw.get("ncd") else (4,))
        if kw.get("ign"):
            t[0] = -100
    w = torch.rand(5).to(dt) if kw.get("weight") else None
    try:
        loss = F.cross_entropy(x, t, weight=w, label_smoothing=kw.get("ls", 0.0),
                               reduction=kw.get("red", "mean"))
    except RuntimeError as e:
        return "error: " + str(e).split("\n")[0], "-"
    try:
        loss.sum().backward()
        return f"ok, {loss.dtype}", f"ok, {x.grad.dtype}"
    except RuntimeError as e:
        return f"ok, {loss.dtype}", "error: " + str(e).split("\n")[0]


def bf16_ulps(y, r):
    """|y - r| in ulps of bfloat16 at RN_bf16(r) (8 significant bits)."""
    rr = r.to(torch.bfloat16).double()
    e = torch.floor(torch.log2(rr.abs().clamp(min=2.0**-126)))
    return (y.double() - r).abs() / 2.0 ** (e - 7)


def bf16_accuracy():
    torch.manual_seed(1)
    print("\nbfloat16 logits ~ 3 N(0,1), 512 rows, index targets, mean for the gradient:")
    print("| C | loss: correctly rounded | loss: worst ulp | gradient: correctly rounded | gradient: worst ulp |")
    print("|--:|--:|--:|--:|--:|")
    for C in (5, 100, 1000, 32000):
        x = (torch.randn(512, C) * 3).to(torch.bfloat16)
        t = torch.randint(0, C, (512,))
        y = F.cross_entropy(x, t, reduction="none")
        r = F.cross_entropy(x.double(), t, reduction="none")
        xg = x.clone().requires_grad_()
        F.cross_entropy(xg, t).backward()
        rg = x.double().requires_grad_()
        F.cross_entropy(rg, t).backward()
        cr = (y.double() == r.to(torch.bfloat16).double()).double().mean().item()
        gcr = (xg.grad.double() == rg.grad.to(torch.bfloat16).double()).double().mean().item()
        print(f"| {C} | {100 * cr:.1f} % | {bf16_ulps(y, r).max().item():.2f} | "
              f"{100 * gcr:.1f} % | {bf16_ulps(xg.grad, rg.grad).max().item():.2f} |")


def main():
    print(f"torch {torch.__version__}, CPU, F.cross_entropy")
    print("| logits dtype | option | forward | backward |")
    print("|---|---|---|---|")
    for dt in (torch.float64, torch.bfloat16, torch.float16):
        for name, kw in OPTIONS:
            fwd, bwd = probe(dt, kw)
            print(f"| {str(dt).replace('torch.', '')} | {name} | {fwd} | {bwd} |")
    bf16_accuracy()


if __name__ == "__main__":
    main()

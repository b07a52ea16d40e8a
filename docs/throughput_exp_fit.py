#!/usr/bin/env python3
"""Coefficients of the relaxed tier's exponential (docs/throughput_kernel.md, 3c).

e^r ~ 1 + r + r^2 (Q0 + Q1 r + Q2 r^2 + Q3 r^3) on |r| <= 0.3467 (ln2/2 plus
the reduction's rounding), fitted for the least maximum relative error by
Lawson's iteratively reweighted least squares on a grid, then rounded to
float32. Prints the coefficients and the relative error of the rounded
polynomial on a denser grid, with a bound on how much it can move between
grid points (its derivative times half the spacing).

    python3 docs/throughput_exp_fit.py      # needs numpy (python3-numpy)
"""
import numpy as np

A = 0.3467
U = 2.0**-24  # float32 unit roundoff


def rel_err(c, r):
    q = c[0] + r * (c[1] + r * (c[2] + r * c[3]))
    return (np.expm1(r) - r - r * r * q) / np.exp(r)


def fit():
    xs = np.linspace(-A, A, 20001)
    xs = xs[np.abs(xs) > 1e-6]  # the error vanishes to second order at 0
    e = np.exp(xs)
    basis = np.stack([xs**k / e for k in range(2, 6)], axis=1)
    target = (np.expm1(xs) - xs) / e
    w = np.full(len(xs), 1.0 / len(xs))
    for _ in range(3000):
        sw = np.sqrt(w)
        c, *_ = np.linalg.lstsq(basis * sw[:, None], target * sw, rcond=None)
        w *= np.abs(target - basis @ c)
        w /= w.sum()
    return c


def main():
    c32 = np.array(fit(), dtype=np.float32)
    c = c32.astype(np.float64)
    grid, step = np.linspace(-A, A, 4000001, retstep=True)
    err = rel_err(c, grid)
    slope = np.abs(np.diff(err)).max() / step
    worst = np.abs(err).max() + slope * step / 2
    for k, v in enumerate(c32):
        print(f"constexpr float kQ{k} = {float(v):.9g}f;")
    print(f"max relative error {worst:.4g} = {worst / U:.3f} u (u = 2^-24), "
          f"grid step {step:.2g}, largest slope {slope:.2g}")


if __name__ == "__main__":
    main()

// Double-double arithmetic (an unevaluated sum hi + lo of doubles, ~106 bits)
// for `stable`'s correctly rounded fallback, and the float32 rounding test.
// The algorithms and their error bounds are those of Joldes, Muller & Popescu,
// "Tight and rigorous error bounds for basic building blocks of double-word
// arithmetic", ACM TOMS 44(2), 2017; how they combine into the bounds `stable`
// relies on is docs/correct_rounding.md. u = 2^-53 below.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "rounding_format.hpp"

namespace xent::ddm {

struct dd {
  double hi = 0.0;
  double lo = 0.0;
  constexpr dd() = default;
  constexpr dd(double h) : hi(h) {}  // NOLINT: a double is an exact double-double
  constexpr dd(double h, double l) : hi(h), lo(l) {}
};

inline dd two_sum(double a, double b) {
  const double s = a + b;
  const double bb = s - a;
  return {s, (a - (s - bb)) + (b - bb)};
}
inline dd fast_two_sum(double a, double b) {  // |a| >= |b| (or a = 0)
  const double s = a + b;
  return {s, b - (s - a)};
}
inline dd two_prod(double a, double b) {
  const double p = a * b;
  return {p, std::fma(a, b, -p)};
}

// A non-finite hi keeps lo = 0, so that infinities propagate as in double.
inline dd finish(dd z) { return std::isfinite(z.hi) ? z : dd{z.hi, 0.0}; }

// DWPlusDW (JMP Alg. 6): relative error <= 3u^2/(1-4u).
inline dd operator+(dd x, dd y) {
  const dd s = two_sum(x.hi, y.hi);
  if (!std::isfinite(s.hi)) return {s.hi, 0.0};
  const dd t = two_sum(x.lo, y.lo);
  const dd v = fast_two_sum(s.hi, s.lo + t.hi);
  return finish(fast_two_sum(v.hi, t.lo + v.lo));
}
// DWPlusFP (Alg. 4): relative error <= 2u^2.
inline dd operator+(dd x, double y) {
  const dd s = two_sum(x.hi, y);
  if (!std::isfinite(s.hi)) return {s.hi, 0.0};
  return finish(fast_two_sum(s.hi, x.lo + s.lo));
}
inline dd operator+(double y, dd x) { return x + y; }
inline dd operator-(dd x) { return {-x.hi, -x.lo}; }
inline dd operator-(dd x, dd y) { return x + (-y); }
inline dd operator-(dd x, double y) { return x + (-y); }
inline dd operator-(double y, dd x) { return (-x) + y; }
// DWTimesFP3 (Alg. 9): relative error <= 2u^2.
inline dd operator*(dd x, double y) {
  const dd c = two_prod(x.hi, y);
  if (!std::isfinite(c.hi)) return {c.hi, 0.0};
  return finish(fast_two_sum(c.hi, std::fma(x.lo, y, c.lo)));
}
inline dd operator*(double y, dd x) { return x * y; }
// DWTimesDW3 (Alg. 12): relative error <= 4u^2.
inline dd operator*(dd x, dd y) {
  const dd c = two_prod(x.hi, y.hi);
  if (!std::isfinite(c.hi)) return {c.hi, 0.0};
  const double t = std::fma(x.lo, y.hi, std::fma(x.hi, y.lo, x.lo * y.lo));
  return finish(fast_two_sum(c.hi, c.lo + t));
}
// DWDivDW2 (Alg. 17): relative error <= 15u^2 + 56u^3.
inline dd operator/(dd x, dd y) {
  const double th = x.hi / y.hi;
  if (!std::isfinite(th) || th == 0.0) return {th, 0.0};
  const dd r = y * th;
  const dd pi = two_sum(x.hi, -r.hi);
  const double d = pi.hi + ((pi.lo - r.lo) + x.lo);
  return finish(fast_two_sum(th, d / y.hi));
}
inline dd operator/(dd x, double y) { return x / dd(y); }

inline double hi(double x) { return x; }
inline double hi(dd x) { return x.hi; }

// e^a, relative error <= 2^-98 for a.hi in [-745.1, 709] (docs/correct_rounding.md
// §4); 0 below (absolute error < 2^-1074). a = k ln2/32 + r, |r| <= ln2/64 + 2^-40,
// e^a = 2^(k div 32) 2^((k mod 32)/32) e^r; e^r - 1 by its Taylor series, the
// terms of degree >= 6 (< 2^-48.7) in double, the others in double-double.
dd exp(dd a);
// e^y - 1 with relative accuracy (2^-94) for y in [0, 709].
dd expm1(double y);
// e^y - 1 for a double-double y, |y.hi| <= 0.0108: relative error <= 2^-95
// (the Taylor series of exp's core without its 1; docs/correct_rounding.md §4).
dd expm1(dd y);
// log(1 + x) for x >= 0 (x.hi < 2^1000): one Newton step on e^y = 1 + x from
// the libm value, relative error <= 2^-90 (docs/correct_rounding.md §4).
dd log1p(dd x);

// ---------------------------------------------------------------------------
// The rounding test (Ziv): is RN(v) in format `f` (float32, bfloat16,
// float16: rounding_format.hpp) the same for every real in [v - err,
// v + err], v = hi + lo? Rounding boundaries are the midpoints between
// adjacent values of the format (subnormals included) and the overflow
// threshold (the midpoint between the largest value and 2^(emax+1)).

struct boundaries {
  double below, above;  // the midpoints around x (±inf where there is none)
};

// ±inf stand for ±2^(emax+1) in midpoint arithmetic.
inline double as_wide(float x, const format& f = float32) {
  return std::isinf(x) ? std::copysign(std::ldexp(1.0, f.max_exponent + 1), static_cast<double>(x))
                       : static_cast<double>(x);
}

inline boundaries around(float x, const format& f = float32) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  const float up = next_up(x, f), down = next_down(x, f);
  const double w = as_wide(x, f);
  return {x == -inf ? -std::numeric_limits<double>::infinity() : (as_wide(down, f) + w) / 2,
          x == inf ? std::numeric_limits<double>::infinity() : (w + as_wide(up, f)) / 2};
}

// The common case in a few integer operations: v a double in float32's
// normal range and err < 2^-30 |v|. Within v's binade [2^e, 2^(e+1)) the
// boundaries are the doubles whose low 29 significand bits are 2^28 (the
// float32 midpoints); |low - 2^28| double ulps is v's distance to the
// nearest one (an interval this narrow cannot reach the next binade's
// boundaries: 2^e itself is a float). float32 only; false means "use
// round_checked".
inline bool round_fast(double v, double err, float& out) {
  const double a = std::fabs(v);
  if (a < 0x1p-126 && err < 0x1p-152) {
    // Subnormal range: boundaries at (k + 1/2) 2^-149; v 2^149 is exact.
    const double t = a * 0x1p149;
    const double frac = t - std::floor(t);  // exact
    if (!(std::fabs(frac - 0.5) * 0x1p-149 > err * (1 + 0x1p-40))) return false;
    out = static_cast<float>(v);
    return true;
  }
  if (!(a >= 0x1p-126 && a < 0x1.fffffep127 && err < 0x1p-30 * a)) return false;
  std::uint64_t bits;
  static_assert(sizeof bits == sizeof v);
  __builtin_memcpy(&bits, &v, sizeof bits);
  const auto low = static_cast<std::int64_t>(bits & ((std::uint64_t{1} << 29) - 1));
  const std::int64_t dist = low > (std::int64_t{1} << 28) ? low - (std::int64_t{1} << 28) : (std::int64_t{1} << 28) - low;
  // ulp(v) = 2^(e - 52): the exponent field alone, scaled.
  double binade;
  const std::uint64_t eb = bits & 0x7ff0000000000000ull;
  __builtin_memcpy(&binade, &eb, sizeof binade);
  if (!(static_cast<double>(dist - 1) * (binade * 0x1p-52) > err)) return false;
  out = static_cast<float>(v);
  return true;
}

// True, with out = RN(v) in format fmt, when the interval holds no
// boundary. A non-finite hi is an exact special result (NaN, ±inf) and passes.
inline bool round_checked(double h, double l, double err, float& out, const format& fmt = float32) {
  if (!std::isfinite(h)) {
    out = static_cast<float>(h);
    return true;
  }
  if (!(err < 0x1p1000)) return false;  // NaN or unusable bound
  float f = round(h, fmt);
  for (int step = 0; step < 2; ++step) {
    const boundaries b = around(f, fmt);
    // Distances to the two boundaries. h - boundary is exact when both are
    // within a factor 2 (Sterbenz), else within 2^-53 of itself; adding lo
    // rounds once more: the slacks cover both.
    const double dl = (h - b.below) + l, du = (b.above - h) - l;
    if (dl < 0.0 && step == 0) {  // h is itself a boundary and lo pushes below it
      f = next_down(f, fmt);
      continue;
    }
    if (du < 0.0 && step == 0) {
      f = next_up(f, fmt);
      continue;
    }
    const double sl = 0x1p-52 * (std::fabs(h - b.below) + std::fabs(dl));
    const double su = 0x1p-52 * (std::fabs(b.above - h) + std::fabs(du));
    if (dl > err + sl && du > err + su) {
      out = f;
      return true;
    }
    return false;
  }
  return false;
}

// The last resort (docs/correct_rounding.md §5): a double-double value whose
// interval [v - err, v + err] still holds a boundary. Its bound is what the
// error analysis can promise, but most such values are exact or nearly so
// (a float difference m - x_t that is itself a midpoint, plus a tiny
// log1p term that the double-double keeps exactly in its low part): the
// double-double value rounded correctly, RN(hi + lo).
inline float resolve(double h, double l, const format& fmt = float32) {
  float out;
  if (round_checked(h, l, 0.0, out, fmt)) return out;
  // hi + lo exactly on a boundary: ties to even (a midpoint) or overflow.
  const float f = round(h, fmt);
  const boundaries b = around(f, fmt);
  return round(std::fabs(h - b.below) <= std::fabs(b.above - h) ? b.below : b.above, fmt);
}

// ---------------------------------------------------------------------------
// float64 results (docs/correct_rounding.md §8): the same test for a
// double-double value against the float64 boundaries f ± s/2 (s the spacing
// above or below f = RN(hi + lo)), which are not doubles. With r = (hi - f)
// + lo (hi - f exact: f is within a few ulps of hi), the distances are
// r + s_below/2 and s_above/2 - r, each rounded once more: the slacks cover
// it. Values below 2^-969 (where s/2 may not be a double, and every bound's
// floor eta is far larger than s anyway) and from 2^1023 up (the boundary
// above the largest double overflows) are left to the last resort.
inline bool round_checked(double h, double l, double err, double& out) {
  if (!std::isfinite(h)) {
    out = h;
    return true;
  }
  if (!(err < 0x1p1000)) return false;
  const double f = h + l;  // RN(h + l): one rounding of the exact sum
  const double a = std::fabs(f);
  if (!(a >= 0x1p-969 && a < 0x1p1023)) return false;
  const double r = (h - f) + l;
  const double below = (f - next_down(f, float64)) / 2, above = (next_up(f, float64) - f) / 2;
  const double dl = r + below, du = above - r;
  const double slack = 0x1p-52 * (std::fabs(r) + below + above);
  if (dl > err + slack && du > err + slack) {
    out = f;
    return true;
  }
  return false;
}
inline double resolve64(double h, double l) { return h + l; }  // RN(hi + lo), ties to even

// Twice the boundaries around a value x of the format, exactly, as
// double-doubles (2b is a double-double even where b is not: float64's
// subnormal midpoints); ±inf where there is none, NaN where 2b overflows.
struct twice_boundaries {
  dd below, above;
};
inline twice_boundaries twice_around(float x, const format& f) {
  const boundaries b = around(x, f);
  return {dd{2 * b.below, 0.0}, dd{2 * b.above, 0.0}};
}
inline twice_boundaries twice_around(double x, const format&) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  if (std::isnan(x) || std::fabs(x) >= 0x1p1023) return {dd{nan, 0.0}, dd{nan, 0.0}};
  const double up = next_up(x, float64) - x, down = x - next_down(x, float64);  // exact spacings
  return {dd{2 * x, -down}, dd{2 * x, up}};
}

}  // namespace xent::ddm

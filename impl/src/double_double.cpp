// exp, expm1 and log1p in double-double for `stable`'s fallback
// (docs/correct_rounding.md §4); their constants: dd_exp_constants.hpp.
#include "double_double.hpp"
#include "dd_exp_constants.hpp"

#include <bit>

// The functions below run once per element of a float64 row, and their
// double-double operations are fused multiply-adds: compiled for the
// baseline x86-64 ISA each is a call into libm's fma. On x86-64 they are
// also compiled with FMA and picked at load time (GCC/Clang function
// multiversioning); fma rounds once either way, so the bits are the same.
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define XENT_FMA_CLONES __attribute__((target_clones("fma", "default")))
#endif
#endif
#ifndef XENT_FMA_CLONES
#define XENT_FMA_CLONES
#endif

namespace xent::ddm {
namespace {

using namespace exp_constants;

// e^r - 1 for |r| <= 0.0109: r + r^2/2! + ... + r^12/12!; the omitted terms
// are below 2^-107 |r|, the double tail (degree >= 6) carries 2^-100.7 |r|.
XENT_FMA_CLONES dd expm1_small(dd r) {
  const double x = r.hi;
  double tail = inv_fact[6];
  for (int n = 5; n >= 0; --n) tail = tail * x + inv_fact[n];
  dd p = r * tail + inv_fact_dd[3];  // r/6! + ... + 1/5!
  p = p * r + inv_fact_dd[2];
  p = p * r + inv_fact_dd[1];
  p = p * r + inv_fact_dd[0];
  p = p * r + 1.0;
  p = p * r;
  return p;
}

// a = k ln2/32 + r, exactly up to 2^-104 |r| + 2^-150.
XENT_FMA_CLONES dd reduce(dd a, double& k) {
  k = std::nearbyint(a.hi * inv_ln2_32);
  const double t = a.hi - k * ln2_32_1;  // exact (k C1 exact, Sterbenz)
  dd r = two_sum(t, a.lo);
  r = r - two_prod(k, ln2_32_2);
  return r - k * ln2_32_3;
}

// x 2^m for |m| <= 960, one multiplication by the power of two (rounded
// once, as ldexp: exact unless the product is subnormal, which for the lo
// part of e^r's double-double needs |lo| < 2^-62 |hi| with m near -960).
double scaled(double x, std::int64_t m) {
  return x * std::bit_cast<double>(static_cast<std::uint64_t>(m + 1023) << 52);
}

}  // namespace

XENT_FMA_CLONES dd exp(dd a) {
  if (std::isnan(a.hi)) return {a.hi, 0.0};
  if (a.hi < -745.2) return {0.0, 0.0};
  if (a.hi > 709.7) return {std::numeric_limits<double>::infinity(), 0.0};
  double k;
  const dd r = reduce(a, k);
  const auto ki = static_cast<std::int64_t>(k);
  const std::int64_t i = ki & 31, m = (ki - i) / 32;
  const dd e = two_pow[i] * (expm1_small(r) + 1.0);
  if (m >= -960 && m <= 960) return {scaled(e.hi, m), scaled(e.lo, m)};
  // 2^m in two steps: the result may be subnormal while 2^m alone underflows.
  const int m1 = static_cast<int>(m / 2), m2 = static_cast<int>(m - m / 2);
  return {std::ldexp(std::ldexp(e.hi, m1), m2), std::ldexp(std::ldexp(e.lo, m1), m2)};
}

XENT_FMA_CLONES dd expm1(double y) {
  if (std::fabs(y) <= 0.0108) return expm1_small(dd(y));
  return exp(dd(y)) - 1.0;  // e^y >= 1.0108: at most 6.6 bits lost
}

XENT_FMA_CLONES dd expm1(dd y) {
  if (std::fabs(y.hi) <= 0.0108) return expm1_small(y);
  return exp(y) - 1.0;
}

XENT_FMA_CLONES dd log1p(dd x) {
  if (!(x.hi > 0.0) || !std::isfinite(x.hi)) return {std::log1p(x.hi), 0.0};
  const double y0 = std::log1p(x.hi + x.lo);
  const dd e = expm1(y0);
  // y1 = y0 + (x - (e^y0 - 1)) / e^y0: the residual is computed in
  // double-double from x and expm1, so it keeps relative accuracy as x -> 0.
  return dd(y0) + (x - e) / (e + 1.0);
}

}  // namespace xent::ddm

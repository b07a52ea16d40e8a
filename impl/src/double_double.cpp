// exp, expm1 and log1p in double-double for `stable`'s fallback
// (docs/correct_rounding.md §4). Constants from mpmath at 400 bits.
#include "double_double.hpp"

namespace xent::ddm {
namespace {

// ln2/32 = C1 + C2 + C3, C1 with 36 significant bits: k C1 is exact for |k| < 2^17.
constexpr double ln2_32_1 = 0x1.62e42fefa0000p-6;
constexpr double ln2_32_2 = 0x1.cf79abc9e3b3ap-45;
constexpr double ln2_32_3 = -0x1.ff0342542fc33p-99;
constexpr double inv_ln2_32 = 0x1.71547652b82fep+5;

// 2^(i/32), i = 0..31, rounded to double-double (relative error <= 2^-107).
constexpr dd two_pow[32] = {
    {0x1.0000000000000p+0, 0x0.0p+0},
    {0x1.059b0d3158574p+0, 0x1.d73e2a475b465p-55},
    {0x1.0b5586cf9890fp+0, 0x1.8a62e4adc610bp-54},
    {0x1.11301d0125b51p+0, -0x1.6c51039449b3ap-54},
    {0x1.172b83c7d517bp+0, -0x1.19041b9d78a76p-55},
    {0x1.1d4873168b9aap+0, 0x1.e016e00a2643cp-54},
    {0x1.2387a6e756238p+0, 0x1.9b07eb6c70573p-54},
    {0x1.29e9df51fdee1p+0, 0x1.612e8afad1255p-55},
    {0x1.306fe0a31b715p+0, 0x1.6f46ad23182e4p-55},
    {0x1.371a7373aa9cbp+0, -0x1.63aeabf42eae2p-54},
    {0x1.3dea64c123422p+0, 0x1.ada0911f09ebcp-55},
    {0x1.44e086061892dp+0, 0x1.89b7a04ef80d0p-59},
    {0x1.4bfdad5362a27p+0, 0x1.d4397afec42e2p-56},
    {0x1.5342b569d4f82p+0, -0x1.07abe1db13cadp-55},
    {0x1.5ab07dd485429p+0, 0x1.6324c054647adp-54},
    {0x1.6247eb03a5585p+0, -0x1.383c17e40b497p-54},
    {0x1.6a09e667f3bcdp+0, -0x1.bdd3413b26456p-54},
    {0x1.71f75e8ec5f74p+0, -0x1.16e4786887a99p-55},
    {0x1.7a11473eb0187p+0, -0x1.41577ee04992fp-55},
    {0x1.82589994cce13p+0, -0x1.d4c1dd41532d8p-54},
    {0x1.8ace5422aa0dbp+0, 0x1.6e9f156864b27p-54},
    {0x1.93737b0cdc5e5p+0, -0x1.75fc781b57ebcp-57},
    {0x1.9c49182a3f090p+0, 0x1.c7c46b071f2bep-56},
    {0x1.a5503b23e255dp+0, -0x1.d2f6edb8d41e1p-54},
    {0x1.ae89f995ad3adp+0, 0x1.7a1cd345dcc81p-54},
    {0x1.b7f76f2fb5e47p+0, -0x1.5584f7e54ac3bp-56},
    {0x1.c199bdd85529cp+0, 0x1.11065895048ddp-55},
    {0x1.cb720dcef9069p+0, 0x1.503cbd1e949dbp-56},
    {0x1.d5818dcfba487p+0, 0x1.2ed02d75b3707p-55},
    {0x1.dfc97337b9b5fp+0, -0x1.1a5cd4f184b5cp-54},
    {0x1.ea4afa2a490dap+0, -0x1.e9c23179c2893p-54},
    {0x1.f50765b6e4540p+0, 0x1.9d3e12dd8a18bp-54},
};

// 1/n!: n = 2..5 in double-double, 6..12 in double.
constexpr dd inv_fact_dd[4] = {
    {0x1.0000000000000p-1, 0x0.0p+0},
    {0x1.5555555555555p-3, 0x1.5555555555555p-57},
    {0x1.5555555555555p-5, 0x1.5555555555555p-59},
    {0x1.1111111111111p-7, 0x1.1111111111111p-63},
};
constexpr double inv_fact[7] = {0x1.6c16c16c16c17p-10, 0x1.a01a01a01a01ap-13, 0x1.a01a01a01a01ap-16,
                                0x1.71de3a556c734p-19, 0x1.27e4fb7789f5cp-22, 0x1.ae64567f544e4p-26,
                                0x1.1eed8eff8d898p-29};

// e^r - 1 for |r| <= 0.0109: r + r^2/2! + ... + r^12/12!; the omitted terms
// are below 2^-107 |r|, the double tail (degree >= 6) carries 2^-100.7 |r|.
dd expm1_small(dd r) {
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
dd reduce(dd a, double& k) {
  k = std::nearbyint(a.hi * inv_ln2_32);
  const double t = a.hi - k * ln2_32_1;  // exact (k C1 exact, Sterbenz)
  dd r = two_sum(t, a.lo);
  r = r - two_prod(k, ln2_32_2);
  return r - k * ln2_32_3;
}

}  // namespace

dd exp(dd a) {
  if (std::isnan(a.hi)) return {a.hi, 0.0};
  if (a.hi < -745.2) return {0.0, 0.0};
  if (a.hi > 709.7) return {std::numeric_limits<double>::infinity(), 0.0};
  double k;
  const dd r = reduce(a, k);
  const auto ki = static_cast<std::int64_t>(k);
  const std::int64_t i = ki & 31, m = (ki - i) / 32;
  const dd e = two_pow[i] * (expm1_small(r) + 1.0);
  // 2^m in two steps: the result may be subnormal while 2^m alone underflows.
  const int m1 = static_cast<int>(m / 2), m2 = static_cast<int>(m - m / 2);
  return {std::ldexp(std::ldexp(e.hi, m1), m2), std::ldexp(std::ldexp(e.lo, m1), m2)};
}

dd expm1(double y) {
  if (std::fabs(y) <= 0.0108) return expm1_small(dd(y));
  return exp(dd(y)) - 1.0;  // e^y >= 1.0108: at most 6.6 bits lost
}

dd expm1(dd y) {
  if (std::fabs(y.hi) <= 0.0108) return expm1_small(y);
  return exp(y) - 1.0;
}

dd log1p(dd x) {
  if (!(x.hi > 0.0) || !std::isfinite(x.hi)) return {std::log1p(x.hi), 0.0};
  const double y0 = std::log1p(x.hi + x.lo);
  const dd e = expm1(y0);
  // y1 = y0 + (x - (e^y0 - 1)) / e^y0: the residual is computed in
  // double-double from x and expm1, so it keeps relative accuracy as x -> 0.
  return dd(y0) + (x - e) / (e + 1.0);
}

}  // namespace xent::ddm

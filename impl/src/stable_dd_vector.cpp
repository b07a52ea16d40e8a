// The double-double exponentials of a float64 row in double lanes (contract
// in stable_dd_vector.hpp). Highway compiles the HWY_NAMESPACE part once per
// target (foreach_target.h re-includes this file); HWY_DYNAMIC_DISPATCH picks
// the best one. Each block below names the scalar operation it mirrors.
#include "stable_dd_vector.hpp"

#include <cmath>
#include <cstdint>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "stable_dd_vector.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "dd_exp_constants.hpp"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace xent {
namespace stable_dd_vector {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<double>;
using DI = hn::RebindToSigned<D>;
using V = hn::Vec<D>;
namespace k = ddm::exp_constants;

bool AvailableImpl() { return HWY_NATIVE_FMA && hn::Lanes(D()) >= 2; }

#if HWY_NATIVE_FMA
// A double-double in lanes.
struct VDD {
  V hi, lo;
};

// ddm::two_sum
HWY_INLINE VDD TwoSum(V a, V b) {
  const V s = hn::Add(a, b);
  const V bb = hn::Sub(s, a);
  return {s, hn::Add(hn::Sub(a, hn::Sub(s, bb)), hn::Sub(b, bb))};
}
// ddm::fast_two_sum
HWY_INLINE VDD FastTwoSum(V a, V b) {
  const V s = hn::Add(a, b);
  return {s, hn::Sub(b, hn::Sub(s, a))};
}
// ddm::two_prod: fma(a, b, -p)
HWY_INLINE VDD TwoProd(V a, V b) {
  const V p = hn::Mul(a, b);
  return {p, hn::MulSub(a, b, p)};
}
// operator+(dd, dd) on finite values (finish() keeps them)
HWY_INLINE VDD AddDD(VDD x, VDD y) {
  const VDD s = TwoSum(x.hi, y.hi);
  const VDD t = TwoSum(x.lo, y.lo);
  const VDD v = FastTwoSum(s.hi, hn::Add(s.lo, t.hi));
  return FastTwoSum(v.hi, hn::Add(t.lo, v.lo));
}
// operator+(dd, double)
HWY_INLINE VDD AddD(VDD x, V y) {
  const VDD s = TwoSum(x.hi, y);
  return FastTwoSum(s.hi, hn::Add(x.lo, s.lo));
}
// operator*(dd, double): fast_two_sum(c.hi, fma(x.lo, y, c.lo))
HWY_INLINE VDD MulD(VDD x, V y) {
  const VDD c = TwoProd(x.hi, y);
  return FastTwoSum(c.hi, hn::MulAdd(x.lo, y, c.lo));
}
// operator*(dd, dd): fma(x.lo, y.hi, fma(x.hi, y.lo, x.lo * y.lo))
HWY_INLINE VDD MulDD(VDD x, VDD y) {
  const VDD c = TwoProd(x.hi, y.hi);
  const V t = hn::MulAdd(x.lo, y.hi, hn::MulAdd(x.hi, y.lo, hn::Mul(x.lo, y.lo)));
  return FastTwoSum(c.hi, hn::Add(c.lo, t));
}
HWY_INLINE VDD Neg(VDD x) { return {hn::Neg(x.hi), hn::Neg(x.lo)}; }

// ddm::exp(a) for lanes with a.hi in [-660, 0] (k >= -30500: 2^m normal
// and the products below it, |m| <= 960).
HWY_INLINE VDD ExpLanes(D d, VDD a) {
  const DI di;
  // reduce(): k = nearbyint(a.hi / (ln2/32)), r = a - k ln2/32 (three parts)
  const V kf = hn::Round(hn::Mul(a.hi, hn::Set(d, k::inv_ln2_32)));
  const V t = hn::Sub(a.hi, hn::Mul(kf, hn::Set(d, k::ln2_32_1)));
  VDD r = TwoSum(t, a.lo);
  r = AddDD(r, Neg(TwoProd(kf, hn::Set(d, k::ln2_32_2))));
  r = AddD(r, hn::Neg(hn::Mul(kf, hn::Set(d, k::ln2_32_3))));
  // expm1_small(r)
  const V x = r.hi;
  V tail = hn::Set(d, k::inv_fact[6]);
  for (int n = 5; n >= 0; --n) tail = hn::Add(hn::Mul(tail, x), hn::Set(d, k::inv_fact[n]));
  auto c = [&](int i) { return VDD{hn::Set(d, k::inv_fact_dd[i].hi), hn::Set(d, k::inv_fact_dd[i].lo)}; };
  VDD p = AddDD(MulD(r, tail), c(3));
  p = AddDD(MulDD(p, r), c(2));
  p = AddDD(MulDD(p, r), c(1));
  p = AddDD(MulDD(p, r), c(0));
  p = AddD(MulDD(p, r), hn::Set(d, 1.0));
  p = MulDD(p, r);
  // two_pow[i] (expm1 + 1), i = k mod 32; then 2^m, m = k div 32
  const auto ki = hn::ConvertTo(di, kf);
  const auto i = hn::And(ki, hn::Set(di, 31));
  const auto m = hn::ShiftRight<5>(hn::Sub(ki, i));
  const double* table = &k::two_pow[0].hi;
  const auto i2 = hn::Add(i, i);
  const VDD tp{hn::GatherIndex(d, table, i2), hn::GatherIndex(d, table + 1, i2)};
  const VDD e = MulDD(tp, AddD(p, hn::Set(d, 1.0)));
  const V scale = hn::BitCast(d, hn::ShiftLeft<52>(hn::Add(m, hn::Set(di, 1023))));
  return {hn::Mul(e.hi, scale), hn::Mul(e.lo, scale)};
}
#endif

// The scalar expression: ddm::exp(-P::difference(m, x)) of stable_kernel.cpp.
HWY_INLINE ddm::dd Scalar(double x, double m) {
  const double v = m - x;
  const ddm::dd diff = std::isfinite(v) ? ddm::two_sum(m, -x) : ddm::dd{v, 0.0};
  return ddm::exp(-diff);
}

void ExponentialsImpl(const double* x, std::int64_t C, double m, ddm::dd* e) {
#if HWY_NATIVE_FMA
  const D d;
  const auto N = static_cast<std::int64_t>(hn::Lanes(d));
  HWY_ALIGN double hi[hn::MaxLanes(d)], lo[hn::MaxLanes(d)];
  const V vm = hn::Set(d, m), floor = hn::Set(d, -660.0);
  std::int64_t j = 0;
  for (; j + N <= C; j += N) {
    const V xv = hn::LoadU(d, x + j);
    // P::difference(m, x) = two_sum(m, -x), then exp(-d)
    const VDD diff = TwoSum(vm, hn::Neg(xv));
    const VDD a = Neg(diff);
    const VDD r = ExpLanes(d, a);
    hn::Store(r.hi, d, hi);
    hn::Store(r.lo, d, lo);
    // Lanes whose a.hi is below -660 (x = -inf gives -inf; NaN is
    // excluded by the caller): the scalar expression.
    const auto outside = hn::Not(hn::Ge(a.hi, floor));
    const bool any_outside = !hn::AllFalse(d, outside);
    for (std::int64_t l = 0; l < N; ++l)
      e[j + l] = any_outside && !(-(m - x[j + l]) >= -660.0) ? Scalar(x[j + l], m) : ddm::dd{hi[l], lo[l]};
  }
  for (; j < C; ++j) e[j] = Scalar(x[j], m);
#else
  (void)x;  // available() is false here
  (void)C;
  (void)m;
  (void)e;
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace stable_dd_vector
}  // namespace xent
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace xent::stable_dd_vector {

HWY_EXPORT(AvailableImpl);
HWY_EXPORT(ExponentialsImpl);

bool available() { return HWY_DYNAMIC_DISPATCH(AvailableImpl)(); }

void exponentials(const double* x, std::int64_t C, double m, ddm::dd* e) {
  HWY_DYNAMIC_DISPATCH(ExponentialsImpl)(x, C, m, e);
}

}  // namespace xent::stable_dd_vector
#endif  // HWY_ONCE

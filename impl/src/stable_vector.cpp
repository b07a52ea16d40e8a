// The `stable` kernel's float64 common path in double lanes (contract in
// stable_vector.hpp, bounds in docs/correct_rounding.md §3). Highway
// compiles the HWY_NAMESPACE part once per target (foreach_target.h
// re-includes this file); HWY_DYNAMIC_DISPATCH picks the best one.
#include "stable_vector.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "stable_vector.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "simd_vector_ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace xent {
namespace stable_vector {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;
using simd::HWY_NAMESPACE::DD2;
using simd::HWY_NAMESPACE::DFH;
using simd::HWY_NAMESPACE::ToFloat;
using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DD2>;
using VD = hn::Vec<DD2>;

// Lanes of the widest double vector of any target (SVE: up to 32): the
// size of the padded tail buffers.
constexpr std::int64_t kTail = 64;

// The first n < Lanes(d) elements of p, the other lanes `fill`. AVX2 and
// AVX-512 have masked loads that never touch the masked-off lanes; other
// targets go through a padded copy (a vector load right after narrow
// stores stalls on store forwarding, which the masked load avoids, and a
// row of C = 10 pays it on every call).
template <class D, typename T = hn::TFromD<D>>
HWY_INLINE hn::Vec<D> LoadTail(D d, const T* p, std::int64_t n, T fill) {
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  const auto m = hn::FirstN(d, static_cast<std::size_t>(n));
  return hn::IfThenElse(m, hn::MaskedLoad(m, d, p), hn::Set(d, fill));
#else
  HWY_ALIGN T t[kTail];
  std::fill(t, t + hn::Lanes(d), fill);
  std::copy(p, p + n, t);
  return hn::Load(d, t);
#endif
}

// e^{-d} for d >= 0 (docs/correct_rounding.md §3.1): x = -d = k ln2 + r with
// k by the shifter trick, r = (x - k kLn2Hi) - k kLn2Lo (k kLn2Hi is exact;
// each difference rounds at most once),
// e^r by its Taylor polynomial of degree 13 (Horner), times 2^k as two
// exact powers of two (k down to -1077: the second product is the only
// rounding into the subnormal range). 0 where d > 745.2 (e^-d < 2^-1075).
HWY_INLINE VD ExpNeg(DD2 dd, VD d) {
  const DI di;
  constexpr double kShifter = 0x1.8p52;  // t = x log2e + kShifter: k in t's low bits
  constexpr double kLn2Hi = 0x1.62e42fefp-1;         // 33 bits: k kLn2Hi exact for |k| < 2^20
  constexpr double kLn2Lo = 0x1.473de6af278edp-34;  // ln2 - kLn2Hi, within 2^-89
  const VD x = hn::Neg(hn::Min(d, hn::Set(dd, 745.5)));
  const VD shifter = hn::Set(dd, kShifter);
  const VD t = hn::MulAdd(x, hn::Set(dd, 1.4426950408889634), shifter);
  const VD kf = hn::Sub(t, shifter);
  VD r = hn::NegMulAdd(kf, hn::Set(dd, kLn2Hi), x);
  r = hn::NegMulAdd(kf, hn::Set(dd, kLn2Lo), r);
  // 1/i!, i = 13 .. 0 (rounded to double).
  VD p = hn::Set(dd, 1.6059043836821613e-10);
  p = hn::MulAdd(p, r, hn::Set(dd, 2.08767569878681e-09));
  p = hn::MulAdd(p, r, hn::Set(dd, 2.505210838544172e-08));
  p = hn::MulAdd(p, r, hn::Set(dd, 2.755731922398589e-07));
  p = hn::MulAdd(p, r, hn::Set(dd, 2.7557319223985893e-06));
  p = hn::MulAdd(p, r, hn::Set(dd, 2.48015873015873e-05));
  p = hn::MulAdd(p, r, hn::Set(dd, 0.0001984126984126984));
  p = hn::MulAdd(p, r, hn::Set(dd, 0.001388888888888889));
  p = hn::MulAdd(p, r, hn::Set(dd, 0.008333333333333333));
  p = hn::MulAdd(p, r, hn::Set(dd, 0.041666666666666664));
  p = hn::MulAdd(p, r, hn::Set(dd, 0.16666666666666666));
  p = hn::MulAdd(p, r, hn::Set(dd, 0.5));
  p = hn::MulAdd(p, r, hn::Set(dd, 1.0));
  p = hn::MulAdd(p, r, hn::Set(dd, 1.0));
  // k exactly: t and kShifter share their exponent, so their bits differ by k.
  const auto k = hn::Sub(hn::BitCast(di, t), hn::BitCast(di, shifter));
  const auto ka = hn::ShiftRight<1>(k);  // floor(k / 2) >= -539
  const auto kb = hn::Sub(k, ka);        // >= -539
  const auto bias = hn::Set(di, 1023);
  const VD sa = hn::BitCast(dd, hn::ShiftLeft<52>(hn::Add(ka, bias)));
  const VD sb = hn::BitCast(dd, hn::ShiftLeft<52>(hn::Add(kb, bias)));
  const VD e = hn::Mul(hn::Mul(p, sa), sb);
  return hn::IfThenZeroElse(hn::Gt(d, hn::Set(dd, 745.2)), e);
}

bool VectorExponentialsPayImpl() { return hn::Lanes(DD2()) >= 4; }
bool MassPassPaysImpl() { return hn::Lanes(DD2()) >= 2; }

bool RowMaxImpl(const float* x, std::int64_t C, float& m, std::int64_t& k) {
  const DF df;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(df));
  // The max and NaN scan of the simd kernel's blocks (four max chains; the
  // max of a set is the same in any order, and m below is the row's own
  // element), prefetching 16 KiB ahead, into the rows that follow: this
  // first pass over a row is the one that reads memory, and a row of a few
  // KiB is about a page, where the hardware's stream prefetch stops.
  simd::HWY_NAMESPACE::MaxScan scan(df);
  scan.scan(df, x, 0, C, 4096);
  if (!hn::AllFalse(df, scan.nan)) return false;
  const float best = hn::GetLane(hn::MaxOfLanes(df, scan.vmax));
  // The first index holding the max (== treats -0 and +0 alike, as the
  // scalar scan's > does); m is that element itself.
  const auto target = hn::Set(df, best);
  std::int64_t j = 0;
  for (; j + N <= C; j += N) {
    const intptr_t first = hn::FindFirstTrue(df, hn::Eq(hn::LoadU(df, x + j), target));
    if (first >= 0) {
      k = j + first;
      m = x[k];
      return true;
    }
  }
  for (; j < C; ++j)
    if (x[j] == best) {
      k = j;
      m = x[j];
      return true;
    }
  k = 0;  // unreachable for C >= 1: the max is in the row
  m = best;
  return true;
}

// TwoSum of x into the lanes' (s, c).
HWY_INLINE void TwoSumInto(VD& s, VD& c, VD x) {
  const VD t = hn::Add(s, x);
  const VD z = hn::Sub(t, s);
  c = hn::Add(c, hn::Add(hn::Sub(s, hn::Sub(t, z)), hn::Sub(x, z)));
  s = t;
}

// Σ of the lanes' (s, c) pairs, compensated, in lane order (and `extra`
// lane values where given).
template <std::size_t kMax>
double LaneSum(DD2 dd, VD s, VD c, const double* extra = nullptr, std::int64_t skip = -1) {
  HWY_ALIGN double a[kMax], b[kMax];
  hn::Store(s, dd, a);
  hn::Store(c, dd, b);
  const auto N = static_cast<std::int64_t>(hn::Lanes(dd));
  double hi = 0.0, lo = 0.0;
  auto add = [&](double v) {
    const double t = hi + v, z = t - hi;  // TwoSum
    lo += (hi - (t - z)) + (v - z);
    hi = t;
  };
  for (std::int64_t l = 0; l < N; ++l) {
    add(a[l]);
    if (std::isfinite(a[l])) add(b[l]);  // c is NaN after an infinity, as the scalar accumulator's
    if (extra && l != skip) add(extra[l]);
  }
  return std::isfinite(hi) ? hi + lo : hi;  // lo is NaN after an infinity
}

struct ExpState {
  VD s, c, rho, md, k;
  std::int64_t finite = 0;
};

// e = e^{-(m - x)} of N lanes starting at class i (x, e already offset),
// accumulated into the state (lane k excluded from the sums).
HWY_INLINE VD ExpStep(DD2 dd, hn::Vec<DFH> xf, double i, ExpState& st) {
  const VD xd = hn::PromoteTo(dd, xf);
  const VD d = hn::Sub(st.md, xd);  // >= 0; +inf for x = -inf
  st.finite += static_cast<std::int64_t>(hn::CountTrue(dd, hn::Lt(d, hn::Set(dd, HUGE_VAL))));
  VD e = ExpNeg(dd, d);
  const VD in_sum = hn::IfThenZeroElse(hn::Eq(hn::Iota(dd, i), st.k), e);
  TwoSumInto(st.s, st.c, in_sum);
  st.rho = hn::MulAdd(in_sum, hn::Min(d, hn::Set(dd, 2048.0)), st.rho);
  return e;
}

void ExponentialsImpl(const float* x, std::int64_t C, float m, std::int64_t k, double* e, double* sums,
                      bool* finite_other) {
  const DD2 dd;
  const DFH dfh;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(dd));
  ExpState st{hn::Zero(dd), hn::Zero(dd), hn::Zero(dd), hn::Set(dd, static_cast<double>(m)),
              hn::Set(dd, static_cast<double>(k))};
  std::int64_t j = 0;
  for (; j + N <= C; j += N)
    hn::StoreU(ExpStep(dd, hn::LoadU(dfh, x + j), static_cast<double>(j), st), dd, e + j);
  if (j < C) {  // the tail, padded with -inf (e = 0, not finite)
    HWY_ALIGN double et[kTail];
    const auto xf = LoadTail(dfh, x + j, C - j, -std::numeric_limits<float>::infinity());
    hn::Store(ExpStep(dd, xf, static_cast<double>(j), st), dd, et);
    std::copy(et, et + (C - j), e + j);
  }
  e[k] = 1.0;
  // The lanes' (s, c) pairs summed once more, compensated, in lane order
  // (a plain sum would add (2L - 1) u to the bound, and a wider bound sends
  // more results to the costly fallbacks). Every term is finite here.
  sums[0] = LaneSum<kTail>(dd, st.s, st.c);
  sums[1] = hn::GetLane(hn::SumOfLanes(dd, st.rho));
  *finite_other = st.finite >= 2;  // x_k is finite
}

// The rounding test of a vector of values v within err of the exact ones:
// stores RN_f32(v) to g and returns whether it decided every lane.
HWY_INLINE bool RoundStore(DD2 dd, DFH dfh, VD v, VD bound, float* g) {
  using DU = hn::RebindToUnsigned<DFH>;
  const DU du;
  const VD av = hn::Abs(v);
  // The bound, plus the absolute floor eta every test adds, widened by
  // 2^-50 to cover the roundings of the distances below.
  const VD err = hn::Mul(hn::Add(bound, hn::Set(dd, 0x1p-600)), hn::Set(dd, 1.0 + 0x1p-50));
  const auto f = ToFloat(dfh, v);
  hn::StoreU(f, dfh, g);
  const auto fa = hn::Abs(f);
  const VD fd = hn::PromoteTo(dd, fa);
  const auto bits = hn::BitCast(du, fa);
  const VD up = hn::PromoteTo(dd, hn::BitCast(dfh, hn::Add(bits, hn::Set(du, 1u))));
  // Below 0 the neighbour is -2^-149, bits 0x80000001: the bits of fa minus
  // one, plus 0x80000002 where fa = 0 (wrapping), in integer lanes (a
  // select between the two neighbours is a branch on the one-lane target,
  // taken at random in rows whose entries underflow: twice that row's time).
  const auto at_zero = hn::And(hn::VecFromMask(du, hn::Eq(bits, hn::Zero(du))), hn::Set(du, 0x80000002u));
  const VD dn = hn::PromoteTo(dd, hn::BitCast(dfh, hn::Add(hn::Sub(bits, hn::Set(du, 1u)), at_zero)));
  // The boundaries of RN_f32 around |v|: exact midpoints (26 bits at most).
  // A result that rounds to 0 keeps v's sign, as the scalar test does.
  const VD half = hn::Set(dd, 0.5);
  const VD b_hi = hn::Mul(hn::Add(fd, up), half);
  const VD b_lo = hn::Mul(hn::Add(fd, dn), half);
  const auto ok = hn::And(hn::And(hn::Gt(hn::Sub(av, b_lo), err), hn::Gt(hn::Sub(b_hi, av), err)),
                          hn::Lt(fd, hn::Set(dd, 0x1.fffffep127)));
  return hn::AllTrue(dd, ok);
}

// One vector of plain entries F e_j, bound |v| (a + b d_j).
HWY_INLINE bool GradStep(DD2 dd, DFH dfh, VD e, hn::Vec<DFH> x, VD md, VD F, VD a, VD b, float* g) {
  const VD d = hn::Min(hn::Sub(md, hn::PromoteTo(dd, x)), hn::Set(dd, 2048.0));
  const VD v = hn::Mul(e, F);
  return RoundStore(dd, dfh, v, hn::Mul(hn::Abs(v), hn::MulAdd(b, d, a)), g);
}

// One vector of entries of a smoothed or probability-target row, the
// formulas and bounds of row_model<double>::gradient (docs/correct_rounding.md
// §3.4) lane by lane, scaled by s1 as write_gradient does. Lanes j = k and
// j = kb hold values the caller recomputes; the row's other inputs: q (or
// the one-hot of t where q is null), w (1 where null).
// q_is_index: the one-hot of r.t instead of q; w_is_one: weight 1.
HWY_INLINE bool MassStep(DD2 dd, DFH dfh, VD ej, hn::Vec<DFH> x, hn::Vec<DFH> q, hn::Vec<DFH> w, bool q_is_index,
                         bool w_is_one, double j0, const mass_row& r, float* g) {
  constexpr double u = 0x1p-53;
  const VD vu = hn::Set(dd, u), two = hn::Set(dd, 2.0);
  const VD d = hn::Min(hn::Sub(hn::Set(dd, static_cast<double>(r.m)), hn::PromoteTo(dd, x)), hn::Set(dd, 2048.0));
  const VD S = hn::Set(dd, r.S);
  const VD re = hn::MulAdd(hn::Set(dd, 1.01 * u), d, hn::Set(dd, r.fexp));
  const VD nj = hn::Sub(S, ej);
  const VD e_nj = hn::Add(hn::Add(hn::Set(dd, r.E_S), hn::Mul(re, ej)), hn::Mul(vu, hn::Abs(nj)));
  const VD qv = !q_is_index ? hn::PromoteTo(dd, q)
                            : hn::IfThenElseZero(hn::Eq(hn::Iota(dd, j0), hn::Set(dd, static_cast<double>(r.t))),
                                                 hn::Set(dd, 1.0));
  const VD wv = !w_is_one ? hn::PromoteTo(dd, w) : hn::Set(dd, 1.0);
  const VD bj = hn::Mul(wv, hn::Add(hn::Mul(hn::Set(dd, r.one_m), qv), hn::Set(dd, r.ec)));
  const VD be = hn::Mul(hn::Abs(wv), hn::Add(hn::Abs(hn::Mul(hn::Set(dd, r.one_m_d), qv)), hn::Set(dd, r.ec_d)));
  const VD anj = hn::Sub(hn::Set(dd, r.mass), bj);
  const VD e_anj = hn::Add(hn::Add(hn::Set(dd, r.E_mass), hn::Mul(vu, hn::Abs(anj))), hn::Mul(hn::Set(dd, 5 * u), be));
  const VD rs = hn::Set(dd, r.E_S / r.S);
  const VD pj = hn::Div(ej, S);
  const VD t1 = hn::Mul(pj, anj);
  const VD e1 = hn::Add(hn::Mul(pj, e_anj), hn::Mul(hn::Abs(t1), hn::Add(hn::Add(re, rs), hn::Set(dd, 2 * u))));
  const VD t2 = hn::Mul(bj, hn::Div(nj, S));
  const VD e2 = hn::Add(hn::Div(hn::Add(hn::Mul(hn::Mul(hn::Set(dd, 5 * u), be), hn::Abs(nj)),
                                        hn::Mul(hn::Abs(bj), e_nj)),
                                S),
                        hn::Mul(hn::Abs(t2), hn::Add(rs, hn::Set(dd, 2 * u))));
  const VD v0 = hn::Sub(t1, t2);
  const VD err0 = hn::Mul(two, hn::Add(hn::Add(e1, e2), hn::Mul(vu, hn::Abs(v0))));
  const VD s1 = hn::Set(dd, r.s1);
  const VD v = hn::Mul(s1, v0);
  const VD err = hn::Mul(two, hn::Add(hn::Mul(hn::Abs(s1), err0),
                                      hn::Mul(hn::Abs(v), hn::Set(dd, r.rel1 + u))));
  return RoundStore(dd, dfh, v, err, g);
}

std::int64_t MassGradientImpl(const double* e, const float* x, const float* q, const float* w, std::int64_t C,
                              const mass_row& r, float* g, std::int64_t* undecided) {
  const DD2 dd;
  const DFH dfh;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(dd));
  const auto none = hn::Zero(dfh);
  std::int64_t n = 0;
  std::int64_t j = 0;
  for (; j + N <= C; j += N)
    if (!MassStep(dd, dfh, hn::LoadU(dd, e + j), hn::LoadU(dfh, x + j), q ? hn::LoadU(dfh, q + j) : none,
                  w ? hn::LoadU(dfh, w + j) : none, !q, !w, static_cast<double>(j), r, g + j))
      for (std::int64_t i = j; i < j + N; ++i) undecided[n++] = i;
  if (j < C) {
    HWY_ALIGN float gt[kTail];
    const std::int64_t len = C - j;
    if (!MassStep(dd, dfh, LoadTail(dd, e + j, len, 1.0), LoadTail(dfh, x + j, len, r.m),
                  q ? LoadTail(dfh, q + j, len, 0.0f) : none, w ? LoadTail(dfh, w + j, len, 1.0f) : none, !q, !w,
                  static_cast<double>(j), r, gt))
      for (std::int64_t i = j; i < C; ++i) undecided[n++] = i;
    std::copy(gt, gt + len, g + j);
  }
  return n;
}

// mass_pass's lanes: compensated pairs, plain bound sums, and each lane's
// largest b so far (its first index; -1 before the lane's first class) with
// the sum of the lane's other terms, as the scalar pass keeps them.
struct MassPassState {
  VD bd_s, bd_c, sm_s, sm_c, mass_s, mass_c, rest_s, rest_c;
  VD b1, aw, dw, w1, sw, b0, b0_rest;
  VD bk, beta_k, kb;
};

HWY_INLINE void MassPassStep(DD2 dd, hn::Vec<DFH> x, hn::Vec<DFH> q, hn::Vec<DFH> w, bool q_is_index,
                             bool w_is_one, bool prob, double j0, std::int64_t valid, const mass_pass_row& r,
                             MassPassState& st) {
  const VD iota = hn::Iota(dd, j0);
  const auto in_row = hn::FirstN(dd, static_cast<std::size_t>(valid));
  const VD d = hn::Sub(hn::Set(dd, static_cast<double>(r.m)), hn::PromoteTo(dd, x));  // 0 in the tail
  const VD qv = !q_is_index ? hn::PromoteTo(dd, q)
                            : hn::IfThenElseZero(hn::Eq(iota, hn::Set(dd, static_cast<double>(r.t))),
                                                 hn::Set(dd, 1.0));
  // Lanes past the row weigh 0: every term they add is 0.
  const VD wv = hn::IfThenElseZero(in_row, !w_is_one ? hn::PromoteTo(dd, w) : hn::Set(dd, 1.0));
  const VD aw = hn::Abs(wv);
  const VD bc = hn::Mul(wv, hn::Add(hn::Mul(hn::Set(dd, r.one_m), qv), hn::Set(dd, r.ec)));
  const VD be = hn::Mul(aw, hn::Add(hn::Abs(hn::Mul(hn::Set(dd, r.one_m_d), qv)), hn::Set(dd, r.ec_d)));
  if (prob) {
    TwoSumInto(st.bd_s, st.bd_c, hn::Mul(bc, d));
    st.b1 = hn::MulAdd(be, d, st.b1);
  } else {
    const VD dl = hn::Add(d, hn::Set(dd, r.L));
    TwoSumInto(st.sm_s, st.sm_c, hn::Mul(wv, dl));
    st.aw = hn::MulAdd(aw, dl, st.aw);
    st.dw = hn::MulAdd(aw, d, st.dw);
    st.w1 = hn::Add(st.w1, aw);
    st.sw = hn::Add(st.sw, wv);
  }
  // A larger b (or the lane's first) swaps with the lane's largest so far,
  // which then joins the rest; any other b joins the rest itself.
  const auto none = hn::Lt(st.kb, hn::Zero(dd));
  const auto gt = hn::And(in_row, hn::Or(none, hn::Gt(bc, st.bk)));
  TwoSumInto(st.rest_s, st.rest_c, hn::IfThenElse(gt, hn::IfThenZeroElse(none, st.bk), bc));
  st.b0_rest = hn::Add(st.b0_rest, hn::IfThenElse(gt, hn::IfThenZeroElse(none, st.beta_k), be));
  st.bk = hn::IfThenElse(gt, bc, st.bk);
  st.beta_k = hn::IfThenElse(gt, be, st.beta_k);
  st.kb = hn::IfThenElse(gt, iota, st.kb);
  TwoSumInto(st.mass_s, st.mass_c, bc);
  st.b0 = hn::Add(st.b0, be);
}

void MassPassImpl(const float* x, const float* q, const float* w, std::int64_t C, const mass_pass_row& r,
                  mass_pass_sums* out) {
  const DD2 dd;
  const DFH dfh;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(dd));
  const VD z = hn::Zero(dd);
  MassPassState st{z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, hn::Set(dd, -1.0)};
  const auto none = hn::Zero(dfh);
  const bool prob = q != nullptr;
  std::int64_t j = 0;
  for (; j + N <= C; j += N)
    MassPassStep(dd, hn::LoadU(dfh, x + j), prob ? hn::LoadU(dfh, q + j) : none, w ? hn::LoadU(dfh, w + j) : none,
                 !prob, !w, prob, static_cast<double>(j), N, r, st);
  if (j < C) {
    const std::int64_t len = C - j;
    MassPassStep(dd, LoadTail(dfh, x + j, len, r.m), prob ? LoadTail(dfh, q + j, len, 0.0f) : none,
                 w ? LoadTail(dfh, w + j, len, 0.0f) : none, !prob, !w, prob, static_cast<double>(j), len, r, st);
  }
  // The row's kb: the largest of the lanes' (the first index among equal
  // ones, as the scalar scan picks); the other lanes' largest join the rest.
  HWY_ALIGN double bk[kTail], beta_k[kTail], kb[kTail];
  hn::Store(st.bk, dd, bk);
  hn::Store(st.beta_k, dd, beta_k);
  hn::Store(st.kb, dd, kb);
  std::int64_t best = -1;
  for (std::int64_t l = 0; l < N; ++l) {
    if (kb[l] < 0) continue;
    if (best < 0 || bk[l] > bk[best] || (bk[l] == bk[best] && kb[l] < kb[best])) best = l;
  }
  double b0_rest = hn::GetLane(hn::SumOfLanes(dd, st.b0_rest));
  for (std::int64_t l = 0; l < N; ++l)
    if (kb[l] < 0) bk[l] = 0.0;  // lanes without a class add nothing
    else if (l != best) b0_rest += beta_k[l];
  out->kb = best < 0 ? 0 : static_cast<std::int64_t>(kb[best]);
  out->rest = LaneSum<kTail>(dd, st.rest_s, st.rest_c, bk, best);
  out->b0_rest = b0_rest;
  out->mass = LaneSum<kTail>(dd, st.mass_s, st.mass_c);
  out->b0 = hn::GetLane(hn::SumOfLanes(dd, st.b0));
  out->bd = LaneSum<kTail>(dd, st.bd_s, st.bd_c);
  out->b1 = hn::GetLane(hn::SumOfLanes(dd, st.b1));
  out->smooth = LaneSum<kTail>(dd, st.sm_s, st.sm_c);
  out->aw = hn::GetLane(hn::SumOfLanes(dd, st.aw));
  out->dw = hn::GetLane(hn::SumOfLanes(dd, st.dw));
  out->w1 = hn::GetLane(hn::SumOfLanes(dd, st.w1));
  out->sum_w = hn::GetLane(hn::SumOfLanes(dd, st.sw));
}

std::int64_t PlainGradientImpl(const double* e, const float* x, std::int64_t C, float m, double F, double a,
                               double b, float* g, std::int64_t* undecided) {
  const DD2 dd;
  const DFH dfh;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(dd));
  const VD md = hn::Set(dd, static_cast<double>(m)), vF = hn::Set(dd, F), va = hn::Set(dd, a),
           vb = hn::Set(dd, b);
  std::int64_t n = 0;
  auto undecide = [&](std::int64_t from, std::int64_t to) {
    for (std::int64_t i = from; i < to; ++i) undecided[n++] = i;
  };
  std::int64_t j = 0;
  for (; j + N <= C; j += N)
    if (!GradStep(dd, dfh, hn::LoadU(dd, e + j), hn::LoadU(dfh, x + j), md, vF, va, vb, g + j)) undecide(j, j + N);
  if (j < C) {
    HWY_ALIGN float gt[kTail];
    if (!GradStep(dd, dfh, LoadTail(dd, e + j, C - j, 1.0), LoadTail(dfh, x + j, C - j, m), md, vF, va, vb, gt))
      undecide(j, C);
    std::copy(gt, gt + (C - j), g + j);
  }
  return n;
}

}  // namespace HWY_NAMESPACE
}  // namespace stable_vector
}  // namespace xent
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace xent::stable_vector {

HWY_EXPORT(VectorExponentialsPayImpl);
HWY_EXPORT(MassPassPaysImpl);
HWY_EXPORT(RowMaxImpl);
HWY_EXPORT(ExponentialsImpl);
HWY_EXPORT(PlainGradientImpl);
HWY_EXPORT(MassGradientImpl);
HWY_EXPORT(MassPassImpl);

double sum_error(double n) {
  const double t = (n + 128.0) * 0x1p-53;
  return 0x1p-53 + 2.0 * t * t;
}

bool vector_exponentials_pay(std::int64_t C) {
  return C >= kVectorExpMinClasses && HWY_DYNAMIC_DISPATCH(VectorExponentialsPayImpl)();
}

bool row_max(const float* x, std::int64_t C, float& m, std::int64_t& k) {
  return HWY_DYNAMIC_DISPATCH(RowMaxImpl)(x, C, m, k);
}

row_exponentials exponentials(const float* x, std::int64_t C, float m, std::int64_t k, double* e) {
  double sums[2];
  row_exponentials r;
  HWY_DYNAMIC_DISPATCH(ExponentialsImpl)(x, C, m, k, e, sums, &r.finite_other);
  r.rest = sums[0];
  r.rho = sums[1];
  return r;
}

std::int64_t plain_gradient(const double* e, const float* x, std::int64_t C, float m, double F, double a,
                            double b, float* g, std::int64_t* undecided) {
  return HWY_DYNAMIC_DISPATCH(PlainGradientImpl)(e, x, C, m, F, a, b, g, undecided);
}

std::int64_t mass_gradient(const double* e, const float* x, const float* q, const float* w, std::int64_t C,
                           const mass_row& r, float* g, std::int64_t* undecided) {
  return HWY_DYNAMIC_DISPATCH(MassGradientImpl)(e, x, q, w, C, r, g, undecided);
}

bool mass_pass_pays() { return HWY_DYNAMIC_DISPATCH(MassPassPaysImpl)(); }

mass_pass_sums mass_pass(const float* x, const float* q, const float* w, std::int64_t C, const mass_pass_row& r) {
  mass_pass_sums s;
  HWY_DYNAMIC_DISPATCH(MassPassImpl)(x, q, w, C, r, &s);
  return s;
}

}  // namespace xent::stable_vector
#endif  // HWY_ONCE

// Per-target building blocks shared by the row kernel (simd_row_passes.cpp)
// and the column kernel (simd_column.cpp): the exponential with its carried
// rounding errors, the float64 accumulation and its fixed combine order, the
// block max scan. Both translation units include this inside Highway's
// per-target loop (the -inl.h convention: re-included once per target), so a
// row gets the same operations in either kernel.
#if defined(XENT_SIMD_VECTOR_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef XENT_SIMD_VECTOR_OPS_INL_H_
#undef XENT_SIMD_VECTOR_OPS_INL_H_
#else
#define XENT_SIMD_VECTOR_OPS_INL_H_
#endif

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "hwy/cache_control.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "simd_row_passes.hpp"

HWY_BEFORE_NAMESPACE();
namespace xent {
namespace simd {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Cody-Waite split of ln 2: kLn2Hi has 24 bits, so n*kLn2Hi (|n| <= 126) is
// exact to 2^-24 and fma(n, -kLn2Hi, s) is exact.
constexpr float kLog2e = 1.44269504088896340736f;
constexpr float kLn2Hi = 0.693147182464599609375f;
constexpr float kLn2Lo = -1.904654323148236e-09f;
// For targets without FMA: ln 2 = kLn2A (16 bits) + kLn2B (13 bits) + kLn2C.
constexpr float kLn2A = 0.693145751953125f;
constexpr float kLn2B = 1.4284159988164902e-06f;
constexpr float kLn2C = 1.9082146973659064e-10f;
// 1.5 * 2^23 + 127: s*log2e + kShifter rounds s*log2e to an integer n and
// leaves n + 127 (the biased exponent of 2^n) in the low mantissa bits, so
// 2^n is one shift away; this replaces round, convert and add.
constexpr float kShifter = 12583039.0f;
// expm1(r) ~ r + r^2 (P0 + P1 r + ... + P5 r^5) on |r| <= ln2/2; fitted
// (weighted minimax) relative error 2^-34 before rounding the coefficients.
constexpr float kP0 = 0.50000000678421f;
constexpr float kP1 = 0.1666666586693263f;
constexpr float kP2 = 0.04166629435730223f;
constexpr float kP3 = 0.008333497353135802f;
constexpr float kP4 = 0.0013944704030684815f;
constexpr float kP5 = 0.00019790293322019827f;
// Below this the fast exp is not a normal float; such terms are dropped from
// sums (the row code recomputes tiny sums exactly) and computed in float64
// for gradients.
constexpr float kLowest = -86.0f;
// kLowest < s <= -0.0 holds exactly when the bits of s, read as int32, are
// below those of kLowest (negative floats order backwards as integers, -0.0
// is INT_MIN; +0, -inf, NaN and positive values all compare above): one
// integer compare.
constexpr std::int32_t kLowestBits = std::bit_cast<std::int32_t>(kLowest);

// e^{x - m} = val + err (val a float, err its rounding error to ~2^-24 of
// itself) for lanes with kLowest < x - m <= 0; s = x - m rounded. Other lanes
// (x - m below kLowest, -inf, NaN) give garbage that the caller masks.
// Error of val + err: the Cody-Waite reduction is exact (the rounding error of
// x - m is carried by TwoSum into c), the polynomial is 2^-34, and t is
// rounded twice (t0, t): at most 2^-25 of e^{x-m}.
HWY_INLINE void ExpShifted(DF d, VF x, VF m, VF neg_m, VF& s, VF& val, VF& err) {
  const hn::RebindToSigned<DF> di;
  s = hn::Sub(x, m);
  // TwoSum: s + lo == x - m exactly.
  const VF bb = hn::Sub(s, x);
  const VF lo = hn::Add(hn::Sub(x, hn::Sub(s, bb)), hn::Sub(neg_m, bb));
  const VF shifter = hn::Set(d, kShifter);
  const VF tn = hn::MulAdd(s, hn::Set(d, kLog2e), shifter);
  const VF kn = hn::Sub(tn, shifter);
#if HWY_NATIVE_FMA
  const VF rh = hn::MulAdd(kn, hn::Set(d, -kLn2Hi), s);  // exact
  const VF c = hn::MulAdd(kn, hn::Set(d, -kLn2Lo), lo);  // r = rh + c
#else
  // Without FMA: three-part split; kn*kLn2A and kn*kLn2B are exact, s - kn*kLn2A
  // is exact (Sterbenz), and the rounding error of the next step is carried.
  const VF r1 = hn::Sub(s, hn::Mul(kn, hn::Set(d, kLn2A)));
  const VF b = hn::Mul(kn, hn::Set(d, kLn2B));
  const VF rh = hn::Sub(r1, b);
  const VF c = hn::Add(hn::Sub(hn::Sub(r1, rh), b), hn::Sub(lo, hn::Mul(kn, hn::Set(d, kLn2C))));
#endif
  // Estrin's scheme: the same polynomial with a shorter dependency chain (the
  // loop is bound by latency more than by the number of operations).
  const VF r2 = hn::Mul(rh, rh);
  const VF qa = hn::MulAdd(hn::Set(d, kP1), rh, hn::Set(d, kP0));
  const VF qb = hn::MulAdd(hn::Set(d, kP3), rh, hn::Set(d, kP2));
  const VF qc = hn::MulAdd(hn::Set(d, kP5), rh, hn::Set(d, kP4));
  const VF q = hn::MulAdd(hn::MulAdd(qc, r2, qb), r2, qa);
  const VF t0 = hn::MulAdd(r2, q, rh);                             // e^rh - 1
  const VF t = hn::MulAdd(c, hn::Add(t0, hn::Set(d, 1.0f)), t0);  // e^(rh+c) - 1
  const VF pow2 = hn::BitCast(d, hn::ShiftLeft<23>(hn::BitCast(di, tn)));
  // t * pow2 is exact, so val is pow2 (1 + t) rounded once (also without FMA),
  // pow2 - val is exact (Sterbenz: val / pow2 is in [0.7, 1.5]) and err is the
  // rounding error of val, itself rounded.
  val = hn::MulAdd(t, pow2, pow2);
  err = hn::MulAdd(t, pow2, hn::Sub(pow2, val));
}

// Lanes with kLowest < s <= -0.0: too small, -inf and NaN lanes are left out.
// (-0.0 is a tie: x = -0 with max +0; the caller removes ties.)
HWY_INLINE hn::Mask<DF> Kept(DF d, VF s) {
  const hn::RebindToSigned<DF> di;
  return hn::RebindMask(d, hn::Lt(hn::BitCast(di, s), hn::Set(di, kLowestBits)));
}

// The fixed order in which per-lane float64 partial sums p[0..n) are added:
// lane j with lane j + n/2, then those n/2 values left to right. The column
// kernel (positions in lanes, ColumnRowsImpl) adds in the same order, so a
// row gives the same bits in either layout.
HWY_INLINE double Combine(const double* p, std::int64_t n) {
  if (n == 1) return p[0];
  const std::int64_t h = n / 2;
  double s = p[0] + p[h];
  for (std::int64_t j = 1; j < h; ++j) s += p[j] + p[j + h];
  return s;
}

// Float lanes of this target's widest vector: the size of per-lane buffers.
constexpr std::int64_t kTargetMaxLanes = HWY_MAX_BYTES / sizeof(float);
static_assert(kTargetMaxLanes <= kMaxLanes);

// Float64 accumulation of float lanes: lane j sums its values in order.
#if HWY_TARGET == HWY_SCALAR
using DD = hn::Rebind<double, DF>;
struct Acc {
  hn::Vec<DD> a;
  HWY_INLINE Acc() : a(hn::Zero(DD())) {}
  HWY_INLINE void add(VF v) { a = hn::Add(a, hn::PromoteTo(DD(), v)); }
  HWY_INLINE double sum() const { return hn::GetLane(a); }
};
#else
using DH = hn::Half<DF>;
using DD = hn::Rebind<double, DH>;
struct Acc {
  hn::Vec<DD> a, b;  // lanes [0, n/2) and [n/2, n)
  HWY_INLINE Acc() : a(hn::Zero(DD())), b(hn::Zero(DD())) {}
  HWY_INLINE void add(VF v) {
    a = hn::Add(a, hn::PromoteTo(DD(), hn::LowerHalf(DH(), v)));
    b = hn::Add(b, hn::PromoteTo(DD(), hn::UpperHalf(DH(), v)));
  }
  HWY_INLINE double sum() const {
    const std::int64_t h = static_cast<std::int64_t>(hn::Lanes(DD()));
    HWY_ALIGN double p[kTargetMaxLanes];
    hn::Store(a, DD(), p);
    hn::Store(b, DD(), p + h);
    return Combine(p, 2 * h);
  }
};
#endif

HWY_INLINE double SumF(DF d, VF v) {
  Acc acc;
  acc.add(v);
  (void)d;
  return acc.sum();
}

// One vector of the exponential pass: e^{x - m} as val + err, the kept terms
// (kLowest < x - m < 0) added to the float64 sum and the float32 error sum;
// ties (x = m, exactly 1 each) are returned apart. The row kernel (lanes =
// classes) and the column kernel (lanes = positions) both call this, so a row
// gets the same operations in either layout.
HWY_INLINE void ExpTerms(DF d, VF x, VF m, VF neg_m, Acc& acc, VF& errs, VF& val, VF& err,
                         hn::Mask<DF>& keep, hn::Mask<DF>& tie) {
  VF s;
  ExpShifted(d, x, m, neg_m, s, val, err);
  tie = hn::Eq(x, m);
  keep = hn::AndNot(tie, Kept(d, s));
  acc.add(hn::IfThenElseZero(keep, val));
  errs = hn::Add(errs, hn::IfThenElseZero(keep, err));
}

constexpr std::int64_t kBlock = kStatsBlock;

// Loads n < lanes floats, the other lanes filled with `fill` (no read past the
// end): a masked load where the target has one (AVX2, AVX-512: masked lanes
// do not fault), else a copy through a buffer (a row's tail: 5 % of a
// C = 1000 row on AVX-512 went to the copy).
HWY_INLINE VF LoadPartial(DF d, const float* p, std::int64_t n, float fill) {
#if HWY_TARGET <= HWY_AVX2
  const auto first = hn::FirstN(d, static_cast<std::size_t>(n));
  return hn::IfThenElse(first, hn::MaskedLoad(first, d, p), hn::Set(d, fill));
#else
  HWY_ALIGN float buf[kTargetMaxLanes];
  for (std::int64_t i = 0; i < kTargetMaxLanes; ++i) buf[i] = fill;
  std::memcpy(buf, p, static_cast<std::size_t>(n) * sizeof(float));
  return hn::Load(d, buf);
#endif
}

// Running max and NaN flag of a block (pass 1). Max's NaN behaviour is
// target-specific and Ne is an ordered compare on x86: NaN is found by IsNaN.
// kFlagNaN = false: the max alone (ScanChunkRelaxedT finds NaN otherwise).
template <bool kFlagNaN>
struct MaxScanT {
  VF vmax;
  hn::Mask<DF> nan;
  HWY_INLINE explicit MaxScanT(DF d)
      : vmax(hn::Set(d, -std::numeric_limits<float>::infinity())), nan(hn::Lt(vmax, vmax)) {}
  HWY_INLINE void add(VF v) {
    vmax = hn::Max(vmax, v);
    if constexpr (kFlagNaN) nan = hn::Or(nan, hn::IsNaN(v));
  }
  // Lanes [from, len) of p (from a multiple of the vector length). Four
  // independent max chains: one chain is bound by Max's latency (a row's
  // first block waits for its max before any exponential), and the max of a
  // set does not depend on the order it is taken in (NaN is flagged apart;
  // which zero a -0/+0 tie keeps changes no result, as a zero max ties).
  // ahead > 0: also prefetch each line that many floats ahead.
  HWY_INLINE void scan(DF d, const float* p, std::int64_t from, std::int64_t len, std::int64_t ahead = 0) {
    const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
    std::int64_t i = from;
    if (i + 4 * N <= len) {
      VF m1 = vmax, m2 = vmax, m3 = vmax;
      auto n1 = nan, n2 = nan, n3 = nan;
      for (; i + 4 * N <= len; i += 4 * N) {
        if (ahead > 0)
          for (std::int64_t k = 0; k < 4 * N; k += 16) hwy::Prefetch(p + i + k + ahead);
        const VF v0 = hn::LoadU(d, p + i), v1 = hn::LoadU(d, p + i + N);
        const VF v2 = hn::LoadU(d, p + i + 2 * N), v3 = hn::LoadU(d, p + i + 3 * N);
        vmax = hn::Max(vmax, v0);
        m1 = hn::Max(m1, v1);
        m2 = hn::Max(m2, v2);
        m3 = hn::Max(m3, v3);
        if constexpr (kFlagNaN) {
          nan = hn::Or(nan, hn::IsNaN(v0));
          n1 = hn::Or(n1, hn::IsNaN(v1));
          n2 = hn::Or(n2, hn::IsNaN(v2));
          n3 = hn::Or(n3, hn::IsNaN(v3));
        }
      }
      vmax = hn::Max(hn::Max(vmax, m1), hn::Max(m2, m3));
      if constexpr (kFlagNaN) nan = hn::Or(hn::Or(nan, n1), hn::Or(n2, n3));
    }
    for (; i + N <= len; i += N) add(hn::LoadU(d, p + i));
    if (i < len) add(LoadPartial(d, p + i, len - i, -std::numeric_limits<float>::infinity()));
  }
};
using MaxScan = MaxScanT<true>;

using DD2 = hn::ScalableTag<double>;
using DFH = hn::Rebind<float, DD2>;  // as many floats as doubles per vector

// float64 -> float32 lanes, rounded as static_cast does (overflow and +-inf
// give +-inf). Highway's scalar target saturates to +-FLT_MAX instead.
HWY_INLINE hn::Vec<DFH> ToFloat(DFH dfh, hn::Vec<DD2> v) {
#if HWY_TARGET == HWY_SCALAR
  return hn::Set(dfh, static_cast<float>(hn::GetLane(v)));
#else
  return hn::DemoteTo(dfh, v);
#endif
}

HWY_INLINE double RestExactF64(const float* x, std::int64_t n, float M) {
  const DD2 dd;
  const DFH dfh;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(dd));
  const auto m = hn::Set(dd, static_cast<double>(M));
  const auto floor = hn::Set(dd, -1100.0);
  auto acc = hn::Zero(dd);
  std::int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto xd = hn::PromoteTo(dd, hn::LoadU(dfh, x + i));
    const auto e = hn::Exp(dd, hn::Max(hn::Sub(xd, m), floor));
    acc = hn::Add(acc, hn::IfThenZeroElse(hn::Eq(xd, m), e));
  }
  double s = hn::GetLane(hn::SumOfLanes(dd, acc));
  for (; i < n; ++i)
    if (x[i] != M) s += std::exp(static_cast<double>(x[i]) - static_cast<double>(M));
  return s;
}

// |a| e^y < 2^-151 rounds to zero: lanes with y = x - M below the returned
// bound need no float64 path (0: none does). log|a| is bounded above by
// (ilogb|a| + 1) ln 2, which only moves the bound down (safe) and is exact.
// ilogb of a normal |a| is read from its bits: the libm call cost a tenth of
// the column kernel's time at C = 10.
HWY_INLINE float SlowBelow(double abs_a) {
  if (!(abs_a > 0.0)) return 0.0f;
  constexpr double kLn2 = 0.69314718055994530942;
  const int biased = static_cast<int>(std::bit_cast<std::uint64_t>(abs_a) >> 52);  // sign bit 0
  const int exponent = biased > 0 && biased < 0x7ff ? biased - 1023 : std::ilogb(abs_a);
  const double yl = -151.0 * kLn2 - static_cast<double>(exponent + 1) * kLn2 - 1e-3;
  return yl > kLowest ? 0.0f : static_cast<float>(yl);
}

// Below this v, a v (v + e the exponential, a the factor) is under about
// 2^-100: the float32 product's correction terms would be subnormal and lose
// the bits that keep it within an ulp, so TinyProduct computes it in float64.
// Never below FLT_MIN (positive): the gradient passes take a lane with v = 0
// (not kept: maybe a float64 lane) as below it, and with |a| > 2^50 the
// quotient would round to 0 and hide those lanes (normal gradients of huge
// weights were written as 0). No kept v lies in (0, FLT_MIN): v >= e^-86.
HWY_INLINE float TinyBelow(double a) {
  const double t = 0x1p-100 / std::fabs(a);
  if (t >= 2.0) return 2.0f;  // v <= 1: 2 means every lane
  return std::max(static_cast<float>(t), std::numeric_limits<float>::min());
}
HWY_INLINE float TinyProduct(double a, float v, float e) {
  return static_cast<float>(a * (static_cast<double>(v) + static_cast<double>(e)));
}

}  // namespace HWY_NAMESPACE
}  // namespace simd
}  // namespace xent
HWY_AFTER_NAMESPACE();

#endif  // XENT_SIMD_VECTOR_OPS_INL_H_

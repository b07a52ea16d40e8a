// Per-instruction-set vector primitives (see simd_primitives.hpp for the
// contract and the numerics). Highway compiles the HWY_NAMESPACE part once per
// target (foreach_target.h re-includes this file) and HWY_DYNAMIC_DISPATCH picks
// the best one this CPU supports, once per process (tests may force others).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "simd_primitives.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "simd_primitives.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/cache_control.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

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

constexpr std::int64_t kPad = 64;  // >= lanes of any target
constexpr std::int64_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

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
    HWY_ALIGN double p[kPad];
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
static_assert(kBlock == kColumnMaxClasses, "the column kernel mirrors a one-block row");

// Loads n < lanes floats, the other lanes filled with `fill` (no read past the end).
HWY_INLINE VF LoadPartial(DF d, const float* p, std::int64_t n, float fill) {
  HWY_ALIGN float buf[kPad];
  for (std::int64_t i = 0; i < kPad; ++i) buf[i] = fill;
  std::memcpy(buf, p, static_cast<std::size_t>(n) * sizeof(float));
  return hn::Load(d, buf);
}

// Running max and NaN flag of a block (pass 1). Max's NaN behaviour is
// target-specific and Ne is an ordered compare on x86: NaN is found by IsNaN.
struct MaxScan {
  VF vmax;
  hn::Mask<DF> nan;
  HWY_INLINE explicit MaxScan(DF d)
      : vmax(hn::Set(d, -std::numeric_limits<float>::infinity())), nan(hn::Lt(vmax, vmax)) {}
  HWY_INLINE void add(VF v) {
    vmax = hn::Max(vmax, v);
    nan = hn::Or(nan, hn::IsNaN(v));
  }
  // Lanes [from, len) of p (from a multiple of the vector length).
  HWY_INLINE void scan(DF d, const float* p, std::int64_t from, std::int64_t len) {
    const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
    std::int64_t i = from;
    for (; i + N <= len; i += N) add(hn::LoadU(d, p + i));
    if (i < len) add(LoadPartial(d, p + i, len - i, -std::numeric_limits<float>::infinity()));
  }
};

// Blocks of kBlock floats: pass 1 finds the block max bm, pass 2 (from L1)
// sums e^{x - bm}. Pass 2 of a block runs in the same loop as pass 1 of the
// next one and prefetches the block after that, so the max scan costs little
// beside the exps and memory latency is hidden behind them.
// kStore: also writes each element's e^{x - bm} as val + err (v[j], e[j]; 0
// where x - bm < kLowest or x = -inf; exactly 1 and 0 at the block max) and
// each block's max bm (bmax[block]) for grad_stored.
template <bool kStore>
chunk_stats StatsT(const float* x, std::int64_t n, float* v, float* e, float* bmax) {
  const DF d;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
  const float ninf = -std::numeric_limits<float>::infinity();
  chunk_stats total;
  MaxScan cur(d);
  cur.scan(d, x, 0, std::min(kBlock, n));
  for (std::int64_t start = 0; start < n; start += kBlock) {
    const float* xb = x + start;
    const float* xn = xb + kBlock;
    const std::int64_t len = std::min(kBlock, n - start);
    const std::int64_t len_next = start + kBlock < n ? std::min(kBlock, n - start - kBlock) : 0;
    if (!hn::AllFalse(d, cur.nan)) {
      total.nan = true;
      return total;
    }
    const float bm = hn::GetLane(hn::MaxOfLanes(d, cur.vmax));
    MaxScan next(d);
    if (kStore) bmax[start / kBlock] = bm;
    if (bm == ninf) {  // nothing in this block contributes
      if (kStore)
        for (std::int64_t j = 0; j < len; ++j) v[start + j] = e[start + j] = 0.0f;
      next.scan(d, xn, 0, len_next);
      cur = next;
      continue;
    }
    chunk_stats b;
    b.max = bm;
    if (bm == std::numeric_limits<float>::infinity()) {
      merge(total, b);  // the row is undefined; the row code checks max
      return total;
    }
    // Pass 2: Σ e^{x - bm} over x < bm, ties counted apart.
    const VF m = hn::Set(d, bm);
    const VF neg_m = hn::Set(d, -bm);
    Acc acc;
    VF errs = hn::Zero(d);
    std::int64_t ties = 0;
    // Lanes [i, i + cnt) of the block (xv holds them, padding -inf).
    auto step = [&](VF xv, std::int64_t i, std::int64_t cnt) HWY_ATTR {
      VF val, err;
      hn::Mask<DF> keep, tie;
      ExpTerms(d, xv, m, neg_m, acc, errs, val, err, keep, tie);
      ties += static_cast<std::int64_t>(hn::CountTrue(d, tie));
      if constexpr (kStore) {
        const auto used = hn::Or(keep, tie);
        const VF vv = hn::IfThenElseZero(used, val), ev = hn::IfThenElseZero(used, err);
        if (cnt == N) {
          hn::StoreU(vv, d, v + start + i);
          hn::StoreU(ev, d, e + start + i);
        } else {
          HWY_ALIGN float bv[kPad], be[kPad];
          hn::Store(vv, d, bv);
          hn::Store(ev, d, be);
          std::memcpy(v + start + i, bv, static_cast<std::size_t>(cnt) * sizeof(float));
          std::memcpy(e + start + i, be, static_cast<std::size_t>(cnt) * sizeof(float));
        }
      } else {
        (void)i, (void)cnt;
      }
    };
    std::int64_t i = 0;
    for (; i + N <= len && i + N <= len_next; i += N) {
      hwy::Prefetch(xb + i + 2 * kBlock);  // one line per vector
      next.add(hn::LoadU(d, xn + i));
      step(hn::LoadU(d, xb + i), i, N);
    }
    next.scan(d, xn, i, len_next);
    for (; i + N <= len; i += N) step(hn::LoadU(d, xb + i), i, N);
    if (i < len) step(LoadPartial(d, xb + i, len - i, ninf), i, len - i);
    b.rest = acc.sum() + SumF(d, errs);
    b.ties = static_cast<double>(ties);
    merge(total, b);
    cur = next;
  }
  return total;
}

chunk_stats StatsImpl(const float* x, std::int64_t n) { return StatsT<false>(x, n, nullptr, nullptr, nullptr); }
chunk_stats StatsStoreImpl(const float* x, std::int64_t n, float* v, float* e, float* bmax) {
  return StatsT<true>(x, n, v, e, bmax);
}

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

double RestExactImpl(const float* x, std::int64_t n, float M) {
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

double WeightedGapImpl(const float* x, const float* w, std::int64_t n, float M) {
  const DD2 dd;
  const DFH dfh;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(dd));
  const auto m = hn::Set(dd, static_cast<double>(M));
  auto acc = hn::Zero(dd);
  std::int64_t i = 0;
  for (; i + N <= n; i += N) {
    auto gap = hn::Sub(m, hn::PromoteTo(dd, hn::LoadU(dfh, x + i)));
    if (w) gap = hn::Mul(gap, hn::PromoteTo(dd, hn::LoadU(dfh, w + i)));
    acc = hn::Add(acc, gap);
  }
  double s = hn::GetLane(hn::SumOfLanes(dd, acc));
  for (; i < n; ++i) {
    const double gap = static_cast<double>(M) - static_cast<double>(x[i]);
    s += w ? static_cast<double>(w[i]) * gap : gap;
  }
  return s;
}

void ProbSumsImpl(const float* x, const float* q, const float* w, std::int64_t n, float M,
                  double omeps, double epsc, double* gap_sum, double* mass) {
  const DD2 dd;
  const DFH dfh;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(dd));
  const auto m = hn::Set(dd, static_cast<double>(M));
  const auto a = hn::Set(dd, omeps);
  const auto b = hn::Set(dd, epsc);
  auto acc_g = hn::Zero(dd);
  auto acc_m = hn::Zero(dd);
  std::int64_t i = 0;
  for (; i + N <= n; i += N) {
    auto wq = hn::MulAdd(a, hn::PromoteTo(dd, hn::LoadU(dfh, q + i)), b);
    if (w) wq = hn::Mul(wq, hn::PromoteTo(dd, hn::LoadU(dfh, w + i)));
    const auto gap = hn::Sub(m, hn::PromoteTo(dd, hn::LoadU(dfh, x + i)));
    acc_g = hn::Add(acc_g, hn::Mul(wq, gap));
    acc_m = hn::Add(acc_m, wq);
  }
  double sg = hn::GetLane(hn::SumOfLanes(dd, acc_g));
  double sm = hn::GetLane(hn::SumOfLanes(dd, acc_m));
  for (; i < n; ++i) {
    double wq = omeps * static_cast<double>(q[i]) + epsc;
    if (w) wq *= static_cast<double>(w[i]);
    sg += wq * (static_cast<double>(M) - static_cast<double>(x[i]));
    sm += wq;
  }
  *gap_sum = sg;
  *mass = sm;
}

// |a| e^y < 2^-151 rounds to zero: lanes with y = x - M below the returned
// bound need no float64 path (0: none does). log|a| is bounded above by
// (ilogb|a| + 1) ln 2, which only moves the bound down (safe) and is exact.
HWY_INLINE float SlowBelow(double abs_a) {
  if (!(abs_a > 0.0)) return 0.0f;
  constexpr double kLn2 = 0.69314718055994530942;
  const double yl = -151.0 * kLn2 - static_cast<double>(std::ilogb(abs_a) + 1) * kLn2 - 1e-3;
  return yl > kLowest ? 0.0f : static_cast<float>(yl);
}

// Below this v, a v (v + e the exponential, a the factor) is under about
// 2^-100: the float32 product's correction terms would be subnormal and lose
// the bits that keep it within an ulp, so TinyProduct computes it in float64.
HWY_INLINE float TinyBelow(double a) {
  const double t = 0x1p-100 / std::fabs(a);
  return t < 2.0 ? static_cast<float>(t) : 2.0f;  // v <= 1: 2 means every lane
}
HWY_INLINE float TinyProduct(double a, float v, float e) {
  return static_cast<float>(a * (static_cast<double>(v) + static_cast<double>(e)));
}

// g_j = a e^{x_j - M} from StatsStoreImpl's v, e (= e^{x_j - bm} to about
// 2^-25) and block maxima: a_b (v_j + e_j) with a_b = a e^{bm - M} per block
// (exactly a in the block of the row max), no second exponential. Lanes with
// v_j = 0 (x_j - bm below kLowest, or -inf) give a signed zero, or float64
// from x_j where the result is subnormal but not negligible. special >= 0:
// g[special] = special_value. stream: non-temporal stores (g must not alias x).
void GradStoredImpl(const float* x, const float* v, const float* e, const float* bmax, float* g,
                    std::int64_t n, float M, double a, std::int64_t special, float special_value,
                    bool stream) {
  const DF d;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
  const double Md = static_cast<double>(M);
  auto exact = [&](float xj) { return static_cast<float>(a * std::exp(static_cast<double>(xj) - Md)); };
  const double abs_a = std::fabs(a);
  if (!(abs_a < 0x1p100)) {  // huge or non-finite factor: float64 throughout
    for (std::int64_t j = 0; j < n; ++j) g[j] = j == special ? special_value : exact(x[j]);
    return;
  }
  const float ylow = SlowBelow(abs_a);
  const float a_hi0 = static_cast<float>(a);
  const VF zero = hn::Set(d, a_hi0 * 0.0f);  // signed zero, like a * 0
  const VF vzero = hn::Zero(d), vylow = hn::Set(d, ylow), m = hn::Set(d, M);
  const auto addr = reinterpret_cast<std::uintptr_t>(g);
  const std::uintptr_t vbytes = static_cast<std::uintptr_t>(N) * sizeof(float);
  const bool nt = stream && addr % vbytes == 0;  // blocks are whole vectors apart
  for (std::int64_t start = 0; start < n; start += kBlock) {
    const std::int64_t len = std::min(kBlock, n - start);
    const float bm = bmax[start / kBlock];
    const double f = bm == M ? 1.0 : std::exp(static_cast<double>(bm) - Md);
    const double ab = a * f;
    const float ab_hi = static_cast<float>(ab);
    const float ab_lo = static_cast<float>(ab - static_cast<double>(ab_hi));
    const VF va_hi = hn::Set(d, ab_hi), va_lo = hn::Set(d, ab_lo), vtiny = hn::Set(d, TinyBelow(ab));
    // Gradient of lanes [i, i + cnt) of the block.
    auto compute = [&](VF vv, VF ev, std::int64_t i, std::int64_t cnt) HWY_ATTR {
      VF gv = hn::MulAdd(va_hi, vv, hn::MulAdd(va_lo, vv, hn::Mul(va_hi, ev)));
      const auto small = hn::Eq(vv, vzero);
      gv = hn::IfThenElse(small, zero, gv);
      const auto tiny = hn::AndNot(small, hn::Lt(vv, vtiny));
      const std::int64_t j0 = start + i;
      const bool any_small = ylow != 0.0f && !hn::AllFalse(d, small);
      const bool any_tiny = !hn::AllFalse(d, tiny);
      const bool patch = special >= j0 && special < j0 + cnt;
      if (HWY_UNLIKELY(any_small || any_tiny || patch)) {
        HWY_ALIGN float buf[kPad];
        hn::Store(gv, d, buf);
        if (any_tiny) {
          HWY_ALIGN float tl[kPad], vl[kPad], el[kPad];
          hn::Store(hn::VecFromMask(d, tiny), d, tl);
          hn::Store(vv, d, vl);
          hn::Store(ev, d, el);
          for (std::int64_t k = 0; k < cnt; ++k)
            if (tl[k] != 0.0f) buf[k] = TinyProduct(ab, vl[k], el[k]);
        }
        if (any_small) {
          const VF s = hn::Sub(LoadPartial(d, x + j0, cnt, 0.0f), m);
          HWY_ALIGN float sl[kPad];
          hn::Store(hn::VecFromMask(d, hn::And(small, hn::Ge(s, vylow))), d, sl);
          for (std::int64_t k = 0; k < cnt; ++k)
            if (sl[k] != 0.0f) buf[k] = exact(x[j0 + k]);
        }
        if (patch) buf[special - j0] = special_value;
        gv = hn::Load(d, buf);
      }
      return gv;
    };
    std::int64_t i = 0;
    for (; i + N <= len; i += N) {
      const VF gv = compute(hn::LoadU(d, v + start + i), hn::LoadU(d, e + start + i), i, N);
      if (nt) hn::Stream(gv, d, g + start + i);
      else hn::StoreU(gv, d, g + start + i);
    }
    if (i < len) {
      const std::int64_t cnt = len - i;
      const VF gv = compute(LoadPartial(d, v + start + i, cnt, 0.0f), LoadPartial(d, e + start + i, cnt, 0.0f), i, cnt);
      HWY_ALIGN float buf[kPad];
      hn::Store(gv, d, buf);
      std::memcpy(g + start + i, buf, static_cast<std::size_t>(cnt) * sizeof(float));
    }
  }
  if (nt) hwy::FlushStream();
}

// b_j of target_mass for lanes [i, i + N) (see simd_primitives.hpp).
struct MassLanes {
  const float* q;
  const float* w;
  double omeps, epsc;
  std::int64_t special;
  double special_b;
  HWY_INLINE hn::Vec<DD2> operator()(std::int64_t i) const {
    const DD2 dd;
    const DFH dfh;
    const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(dd));
    auto b = q ? hn::MulAdd(hn::Set(dd, omeps), hn::PromoteTo(dd, hn::LoadU(dfh, q + i)),
                            hn::Set(dd, epsc))
               : hn::Set(dd, epsc);
    if (w) b = hn::Mul(b, hn::PromoteTo(dd, hn::LoadU(dfh, w + i)));
    if (HWY_UNLIKELY(special >= i && special < i + N)) {
      HWY_ALIGN double buf[kPad];
      hn::Store(b, dd, buf);
      buf[special - i] = special_b;
      b = hn::Load(dd, buf);
    }
    return b;
  }
  // The same value for one element, in the same operations.
  HWY_INLINE double one(std::int64_t i) const {
    if (i == special) return special_b;
    double b = q ? std::fma(omeps, static_cast<double>(q[i]), epsc) : epsc;
    if (w) b *= static_cast<double>(w[i]);
    return b;
  }
};

HWY_INLINE void MassAdd(mass_stats& s, double b) {
  mass_stats one;
  one.total = b;
  one.max = b;
  one.any = true;
  merge(s, one);
}

mass_stats TargetMassImpl(const float* q, const float* w, std::int64_t n, double omeps,
                          double epsc, std::int64_t special, double special_b) {
  const DD2 dd;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(dd));
  const MassLanes lanes{q, w, omeps, epsc, special, special_b};
  mass_stats s;
  std::int64_t i = 0;
  if (n >= 4 * N) {
    // Per lane of four independent vectors: the largest b so far, the sum of
    // the others, the total; merged in a fixed order at the end.
    using V = hn::Vec<DD2>;
    V mx[4], tot[4], rest[4];
    for (int u = 0; u < 4; ++u) {
      mx[u] = lanes(u * N);
      tot[u] = mx[u];
      rest[u] = hn::Zero(dd);
    }
    for (i = 4 * N; i + 4 * N <= n; i += 4 * N) {
      for (int u = 0; u < 4; ++u) {
        const V b = lanes(i + u * N);
        const auto gt = hn::Gt(b, mx[u]);
        rest[u] = hn::Add(rest[u], hn::IfThenElse(gt, mx[u], b));
        mx[u] = hn::IfThenElse(gt, b, mx[u]);
        tot[u] = hn::Add(tot[u], b);
      }
    }
    HWY_ALIGN double bm[kPad], br[kPad], bt[kPad];
    for (int u = 0; u < 4; ++u) {
      hn::Store(mx[u], dd, bm);
      hn::Store(rest[u], dd, br);
      hn::Store(tot[u], dd, bt);
      for (std::int64_t k = 0; k < N; ++k) {
        mass_stats l;
        l.total = bt[k];
        l.max = bm[k];
        l.rest = br[k];
        l.any = true;
        merge(s, l);
      }
    }
  }
  for (; i < n; ++i) MassAdd(s, lanes.one(i));
  return s;
}

void GradSmoothedImpl(const float* x, const float* w, const float* q, float* g, std::int64_t n,
                      const smooth_row& k, std::int64_t special, double special_b) {
  const DD2 dd;
  const DFH dfh;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(dd));
  const MassLanes lanes{q, w, k.omeps, k.epsc, special, special_b};
  const double Md = static_cast<double>(k.M);
  const auto m = hn::Set(dd, Md);
  const auto floor = hn::Set(dd, -1100.0);
  const auto vrest = hn::Set(dd, k.rest), vS = hn::Set(dd, k.sum), vA = hn::Set(dd, k.mass);
  const auto vbmax = hn::Set(dd, k.mass_max), vmrest = hn::Set(dd, k.mass_rest);
  const auto vscale = hn::Set(dd, k.scale);
  // p_j = e_j * (1/S): one more float64 rounding than e_j / S, far below the
  // float32 result's ulp and the cancellation allowance; divisions cost more.
  const double invS = 1.0 / k.sum;
  const auto vinvS = hn::Set(dd, invS);
  std::int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto xd = hn::PromoteTo(dd, hn::LoadU(dfh, x + i));
    const auto e = hn::Exp(dd, hn::Max(hn::Sub(xd, m), floor));
    const auto not_j = hn::IfThenElse(hn::Eq(xd, m), vrest, hn::Sub(vS, e));
    const auto b = lanes(i);
    const auto mass_not_j = hn::IfThenElse(hn::Eq(b, vbmax), vmrest, hn::Sub(vA, b));
    const auto v = hn::Sub(hn::Mul(hn::Mul(e, vinvS), mass_not_j), hn::Mul(b, hn::Mul(not_j, vinvS)));
    hn::StoreU(ToFloat(dfh, hn::Mul(vscale, v)), dfh, g + i);
  }
  for (; i < n; ++i) {
    const double xd = static_cast<double>(x[i]);
    const double e = std::exp(xd - Md);
    const double not_j = xd == Md ? k.rest : k.sum - e;
    const double b = lanes.one(i);
    const double mass_not_j = b == k.mass_max ? k.mass_rest : k.mass - b;
    const double v = (e * invS) * mass_not_j - b * (not_j * invS);
    g[i] = static_cast<float>(k.scale * v);
  }
}

// Row-path scalars, computed by the same vector functions the column kernel
// uses per lane (so both layouts give the same bits).
double Log1pF64Impl(double x) { return hn::GetLane(hn::Log1p(DD2(), hn::Set(DD2(), x))); }
double ExpF64Impl(double x) { return hn::GetLane(hn::Exp(DD2(), hn::Set(DD2(), x))); }

// Log1p or Exp of n <= kPad doubles in place, a full vector at a time.
template <bool kLog1p>
HWY_INLINE void MapF64(double* v, std::int64_t n) {
  const DD2 dd;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(dd));
  for (std::int64_t i = 0; i < n; i += N) {
    const auto x = hn::Load(dd, v + i);
    hn::Store(kLog1p ? hn::Log1p(dd, x) : hn::Exp(dd, x), dd, v + i);
  }
}

// Positions in lanes (see column_rows in simd_primitives.hpp). Every step is
// the row kernel's for the same row: StatsImpl (one block: C <= kBlock) with
// its lane l's partial sums (classes l, l + N, ...) kept per l and combined in
// its order, then simd_row.hpp's index-target formulas and GradScaledImpl.
void ColumnRowsImpl(const column_group& q) {
  const DF d;
  const hn::RebindToSigned<DF> di;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
  const std::int64_t C = q.classes, K = q.count;
  auto load = [&](std::int64_t c) HWY_ATTR {
    const float* p = q.x + c * q.xs;
    return K == N ? hn::LoadU(d, p) : LoadPartial(d, p, K, 0.0f);
  };

  // Each class is its own stream through memory (C of them): prefetch a few
  // groups ahead, which the hardware prefetchers do not track that many of.
  MaxScan scan(d);
  for (std::int64_t c = 0; c < C; ++c) {
    hwy::Prefetch(q.x + c * q.xs + 4 * N);
    scan.add(load(c));
  }
  const VF m = scan.vmax, neg_m = hn::Neg(m);
  HWY_ALIGN float M[kMaxLanes];
  hn::Store(m, d, M);
  const auto nan_lanes = hn::VecFromMask(d, scan.nan);
  HWY_ALIGN float nan[kMaxLanes];
  hn::Store(nan_lanes, d, nan);

  // Pass 2 per row-kernel lane l.
  HWY_ALIGN double P[kMaxLanes * kMaxLanes];
  HWY_ALIGN float E[kMaxLanes * kMaxLanes];
  auto ties = hn::Zero(di);
  for (std::int64_t l = 0; l < N && l < C; ++l) {
    Acc acc;
    VF errs = hn::Zero(d);
    for (std::int64_t c = l; c < C; c += N) {
      VF val, err;
      hn::Mask<DF> keep, tie;
      ExpTerms(d, load(c), m, neg_m, acc, errs, val, err, keep, tie);
      ties = hn::Add(ties, hn::IfThenElseZero(hn::RebindMask(di, tie), hn::Set(di, 1)));
    }
#if HWY_TARGET == HWY_SCALAR
    hn::Store(acc.a, DD(), P + l * N);
#else
    hn::Store(acc.a, DD(), P + l * N);
    hn::Store(acc.b, DD(), P + l * N + N / 2);
#endif
    hn::Store(errs, d, E + l * N);
  }
  for (std::int64_t l = C; l < N; ++l)  // lanes past C add nothing in the row kernel
    for (std::int64_t k = 0; k < N; ++k) P[l * N + k] = 0.0, E[l * N + k] = 0.0f;
  HWY_ALIGN std::int32_t tie_count[kMaxLanes];
  hn::Store(ties, di, tie_count);

  // Per position, in float64 lanes: StatsImpl's Combine, then simd_row.hpp's
  // formulas (the same IEEE operations in the same order).
  const DD2 dd;
  const DFH dfh;
  const hn::Rebind<std::int32_t, DD2> dih;
  const std::int64_t ND = static_cast<std::int64_t>(hn::Lanes(dd));
  HWY_ALIGN double Md[kMaxLanes] = {}, xt[kMaxLanes] = {}, wt[kMaxLanes] = {}, sc[kMaxLanes] = {};
  HWY_ALIGN double rest[kMaxLanes] = {}, log_sum[kMaxLanes] = {};
  HWY_ALIGN double a_d[kMaxLanes] = {}, ok[kMaxLanes] = {};
  HWY_ALIGN float a_hi[kMaxLanes] = {}, a_lo[kMaxLanes] = {}, zero[kMaxLanes] = {};
  HWY_ALIGN float ylow[kMaxLanes] = {}, gt[kMaxLanes] = {};
  HWY_ALIGN std::int32_t tcls[kMaxLanes] = {}, bad[kMaxLanes] = {}, skip[kMaxLanes] = {};
  bool any_huge = false, huge[kMaxLanes] = {};
  for (std::int64_t k = 0; k < N; ++k) {
    const bool used = k < K && q.target[k] >= 0;
    skip[k] = k < K && !used ? -1 : 0;
    bad[k] = used && (nan[k] != 0.0f || std::isinf(M[k])) ? -1 : 0;
    ok[k] = used && bad[k] == 0 ? 1.0 : 0.0;
    Md[k] = static_cast<double>(M[k]);
    xt[k] = ok[k] != 0.0 ? static_cast<double>(q.x[k + q.target[k] * q.xs]) : 0.0;
    wt[k] = used ? q.weight[k] : 0.0;
    sc[k] = used && q.g ? q.scale[k] : 0.0;
    tcls[k] = ok[k] != 0.0 ? static_cast<std::int32_t>(q.target[k]) : -1;
    huge[k] = false;
    ylow[k] = 0.0f;
  }
  bool tiny = false;
  for (std::int64_t h = 0; h < N; h += ND) {
    auto restacc = hn::Load(dd, P + h), errsum = hn::Add(hn::Zero(dd), hn::PromoteTo(dd, hn::Load(dfh, E + h)));
    if (N > 1) {
      const std::int64_t H = N / 2;
      auto ev = [&](std::int64_t l) HWY_ATTR {
        return hn::Add(hn::Zero(dd), hn::PromoteTo(dd, hn::Load(dfh, E + l * N + h)));
      };
      restacc = hn::Add(restacc, hn::Load(dd, P + H * N + h));
      errsum = hn::Add(errsum, ev(H));
      for (std::int64_t j = 1; j < H; ++j) {
        restacc = hn::Add(restacc, hn::Add(hn::Load(dd, P + j * N + h), hn::Load(dd, P + (j + H) * N + h)));
        errsum = hn::Add(errsum, hn::Add(ev(j), ev(j + H)));
      }
    }
    const auto ties_rest = hn::Sub(hn::PromoteTo(dd, hn::Load(dih, tie_count + h)), hn::Set(dd, 1.0));
    const auto r = hn::Add(hn::Add(restacc, errsum), ties_rest);
    hn::Store(r, dd, rest + h);
    tiny = tiny || !hn::AllFalse(dd, hn::And(hn::Lt(r, hn::Set(dd, kTinyRest)), hn::Ne(hn::Load(dd, ok + h), hn::Zero(dd))));
  }
  if (HWY_UNLIKELY(tiny)) {  // rare: simd_row.hpp's float64 recomputation
    HWY_ALIGN float buf[kBlock];
    for (std::int64_t k = 0; k < K; ++k) {
      if (ok[k] == 0.0 || !(rest[k] < kTinyRest)) continue;
      for (std::int64_t c = 0; c < C; ++c) buf[c] = q.x[k + c * q.xs];
      rest[k] = (static_cast<double>(tie_count[k]) - 1.0) + RestExactImpl(buf, C, M[k]);
    }
  }
  constexpr double qnan = std::numeric_limits<double>::quiet_NaN();
  for (std::int64_t h = 0; h < N; h += ND) {
    const auto r = hn::Load(dd, rest + h), md = hn::Load(dd, Md + h), x_t = hn::Load(dd, xt + h);
    const auto w = hn::Load(dd, wt + h);
    const auto ls = hn::Log1p(dd, r);
    hn::Store(hn::Mul(w, hn::Add(hn::Sub(md, x_t), ls)), dd, log_sum + h);  // the loss
    if (!q.g) continue;
    const auto S = hn::Add(hn::Set(dd, 1.0), r);
    const auto et = hn::Exp(dd, hn::Sub(x_t, md));
    const auto others = hn::IfThenElse(hn::Eq(x_t, md), r, hn::Sub(S, et));
    const auto scale = hn::Load(dd, sc + h);
    hn::Store(ToFloat(dfh, hn::Mul(scale, hn::Mul(hn::Neg(w), hn::Div(others, S)))), dfh, gt + h);
    const auto a = hn::Mul(scale, hn::Div(w, S));
    const auto ahi = ToFloat(dfh, a);
    hn::Store(a, dd, a_d + h);
    hn::Store(ahi, dfh, a_hi + h);
    hn::Store(ToFloat(dfh, hn::Sub(a, hn::PromoteTo(dd, ahi))), dfh, a_lo + h);
    hn::Store(hn::Mul(ahi, hn::Zero(dfh)), dfh, zero + h);  // signed zero, like a * 0
  }
  for (std::int64_t k = 0; k < K; ++k)
    q.loss[k] = skip[k] != 0 ? 0.0 : bad[k] != 0 ? qnan : log_sum[k];
  if (!q.g) return;
  for (std::int64_t k = 0; k < K; ++k) {
    if (ok[k] == 0.0) continue;
    const double abs_a = std::fabs(a_d[k]);
    huge[k] = !(abs_a < 0x1p100);  // huge or non-finite factor: float64 throughout
    any_huge = any_huge || huge[k];
    ylow[k] = SlowBelow(abs_a);
  }

  // GradStoredImpl per lane (a, ylow and the target differ between lanes; one
// block: a_b = a).
  const VF va_hi = hn::Load(d, a_hi), va_lo = hn::Load(d, a_lo), vzero = hn::Load(d, zero);
  const VF vylow = hn::Load(d, ylow), vgt = hn::Load(d, gt);
  HWY_ALIGN float tiny_below[kMaxLanes] = {};
  for (std::int64_t k = 0; k < K; ++k) tiny_below[k] = ok[k] != 0.0 ? TinyBelow(a_d[k]) : 0.0f;
  const VF vtiny = hn::Load(d, tiny_below);
  const VF vnan = hn::Set(d, static_cast<float>(qnan));
  const auto vt = hn::Load(di, tcls);
  const auto is_bad = hn::RebindMask(d, hn::Ne(hn::Load(di, bad), hn::Zero(di)));
  const auto is_skip = hn::RebindMask(d, hn::Ne(hn::Load(di, skip), hn::Zero(di)));
  for (std::int64_t c = 0; c < C; ++c) {
    const VF v = load(c);
    VF s, val, verr;
    ExpShifted(d, v, m, neg_m, s, val, verr);
    VF gv = hn::MulAdd(va_hi, val, hn::MulAdd(va_lo, val, hn::Mul(va_hi, verr)));
    const auto small = hn::Not(hn::Or(Kept(d, s), hn::Eq(v, m)));  // GradStoredImpl's v = 0
    gv = hn::IfThenElse(small, vzero, gv);
    const auto slow = hn::And(small, hn::Ge(s, vylow));
    const auto tiny_lanes = hn::AndNot(small, hn::Lt(val, vtiny));
    if (HWY_UNLIKELY(any_huge || !hn::AllFalse(d, hn::Or(slow, tiny_lanes)))) {
      HWY_ALIGN float out[kPad], xs[kPad], sv[kPad], tl[kPad], vl[kPad], el[kPad];
      hn::Store(gv, d, out);
      hn::Store(v, d, xs);
      hn::Store(hn::VecFromMask(d, slow), d, sv);
      hn::Store(hn::VecFromMask(d, tiny_lanes), d, tl);
      hn::Store(val, d, vl);
      hn::Store(verr, d, el);
      for (std::int64_t k = 0; k < K; ++k) {
        if (huge[k] || sv[k] != 0.0f)
          out[k] = static_cast<float>(
              a_d[k] * std::exp(static_cast<double>(xs[k]) - static_cast<double>(M[k])));
        else if (tl[k] != 0.0f)
          out[k] = TinyProduct(a_d[k], vl[k], el[k]);
      }
      gv = hn::Load(d, out);
    }
    gv = hn::IfThenElse(hn::RebindMask(d, hn::Eq(vt, hn::Set(di, static_cast<std::int32_t>(c)))), vgt, gv);
    gv = hn::IfThenElse(is_bad, vnan, gv);
    gv = hn::IfThenZeroElse(is_skip, gv);
    float* gc = q.g + c * q.gs;
    if (K == N) {
      hn::StoreU(gv, d, gc);
    } else {
      HWY_ALIGN float out[kPad];
      hn::Store(gv, d, out);
      std::memcpy(gc, out, static_cast<std::size_t>(K) * sizeof(float));
    }
  }
}

std::int64_t TargetImpl() { return HWY_TARGET; }
std::int64_t LanesImpl() { return static_cast<std::int64_t>(hn::Lanes(DF())); }

}  // namespace HWY_NAMESPACE
}  // namespace simd
}  // namespace xent
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace xent {
namespace simd {

HWY_EXPORT(StatsImpl);
HWY_EXPORT(RestExactImpl);
HWY_EXPORT(WeightedGapImpl);
HWY_EXPORT(ProbSumsImpl);
HWY_EXPORT(GradStoredImpl);
HWY_EXPORT(StatsStoreImpl);
HWY_EXPORT(TargetMassImpl);
HWY_EXPORT(GradSmoothedImpl);
HWY_EXPORT(TargetImpl);
HWY_EXPORT(Log1pF64Impl);
HWY_EXPORT(ExpF64Impl);
HWY_EXPORT(ColumnRowsImpl);
HWY_EXPORT(LanesImpl);

void merge(chunk_stats& a, const chunk_stats& b) {
  a.nan = a.nan || b.nan;
  if (b.max == -std::numeric_limits<float>::infinity()) return;  // b contributes nothing
  if (a.max == -std::numeric_limits<float>::infinity()) {
    a.max = b.max;
    a.ties = b.ties;
    a.rest = b.rest;
    return;
  }
  if (b.max > a.max) {  // a's ties become ordinary terms
    const double f = std::exp(static_cast<double>(a.max) - static_cast<double>(b.max));
    a.rest = (a.rest + a.ties) * f + b.rest;
    a.ties = b.ties;
    a.max = b.max;
  } else if (b.max == a.max) {
    a.rest += b.rest;
    a.ties += b.ties;
  } else {
    const double f = std::exp(static_cast<double>(b.max) - static_cast<double>(a.max));
    a.rest += (b.rest + b.ties) * f;
  }
}

chunk_stats stats(const float* x, std::int64_t n) { return HWY_DYNAMIC_DISPATCH(StatsImpl)(x, n); }

double rest_exact(const float* x, std::int64_t n, float M) {
  return HWY_DYNAMIC_DISPATCH(RestExactImpl)(x, n, M);
}

double weighted_gap(const float* x, const float* w, std::int64_t n, float M) {
  return HWY_DYNAMIC_DISPATCH(WeightedGapImpl)(x, w, n, M);
}

void prob_sums(const float* x, const float* q, const float* w, std::int64_t n, float M,
               double omeps, double epsc, double* gap_sum, double* mass) {
  HWY_DYNAMIC_DISPATCH(ProbSumsImpl)(x, q, w, n, M, omeps, epsc, gap_sum, mass);
}

chunk_stats stats_store(const float* x, std::int64_t n, float* v, float* e, float* bmax) {
  return HWY_DYNAMIC_DISPATCH(StatsStoreImpl)(x, n, v, e, bmax);
}

void grad_stored(const float* x, const float* v, const float* e, const float* bmax, float* g,
                 std::int64_t n, float M, double a, std::int64_t special, float special_value, bool stream) {
  HWY_DYNAMIC_DISPATCH(GradStoredImpl)(x, v, e, bmax, g, n, M, a, special, special_value, stream);
}

void merge(mass_stats& a, const mass_stats& b) {
  if (!b.any) return;
  if (!a.any) {
    a = b;
    return;
  }
  a.total += b.total;
  if (b.max > a.max) {  // a's largest becomes an ordinary term
    a.rest += a.max + b.rest;
    a.max = b.max;
  } else {
    a.rest += b.rest + b.max;
  }
}

mass_stats target_mass(const float* q, const float* w, std::int64_t n, double omeps, double epsc,
                       std::int64_t special, double special_b) {
  return HWY_DYNAMIC_DISPATCH(TargetMassImpl)(q, w, n, omeps, epsc, special, special_b);
}

void grad_smoothed(const float* x, const float* w, const float* q, float* g, std::int64_t n,
                   const smooth_row& k, std::int64_t special, double special_b) {
  HWY_DYNAMIC_DISPATCH(GradSmoothedImpl)(x, w, q, g, n, k, special, special_b);
}

double log1p_f64(double x) { return HWY_DYNAMIC_DISPATCH(Log1pF64Impl)(x); }
double exp_f64(double x) { return HWY_DYNAMIC_DISPATCH(ExpF64Impl)(x); }
void column_rows(const column_group& g) { HWY_DYNAMIC_DISPATCH(ColumnRowsImpl)(g); }
std::int64_t column_lanes() { return HWY_DYNAMIC_DISPATCH(LanesImpl)(); }

const char* active_target_name() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(TargetImpl)()); }

}  // namespace simd
}  // namespace xent
#endif  // HWY_ONCE

// The compute floor: the least work any float32 cross-entropy does per logit
// -- a max scan, e^(x - m) with a value-only exponential, a float sum -- on
// rows that stay in L1, with no error carried, no log, no gradient. No kernel
// that computes a softmax denominator from the logits can beat its rate, so
// the CE roofline of a case is min(memory roofline, this floor).
//
// The exponential is the short kind XNNPACK's raddexpminusmax kernels use
// (rr2_p5): n = round(x log2 e) by the shifter trick (adding 1.5 2^23 + 127
// leaves n + 127 in the low mantissa bits, so 2^n is those bits shifted into
// the exponent: no Round, no conversion), r = x - n ln 2 in two parts
// (Cody-Waite), a degree-5 polynomial for e^r evaluated by Estrin's scheme
// (short dependency chains), times 2^n, flushed to 0 below -87.3 (where e^x
// is subnormal or 0). It is the same trick and scheme as the kernels' own
// exponential, so no kernel's exponential is cheaper on any target; an
// earlier form (Round + ConvertTo, Horner) ran well below the kernels on
// SCALAR and SSE4, where those operations are emulated.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "compute_floor.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace xent_bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class D, class V = hn::Vec<D>>
HWY_INLINE V exp_value(D d, V x) {
  const hn::RebindToSigned<D> di;
  const V log2e = hn::Set(d, 1.44269504f), ln2_hi = hn::Set(d, 0.693145752f), ln2_lo = hn::Set(d, 1.42860677e-6f);
  const V shifter = hn::Set(d, 12583039.0f);  // 1.5 2^23 + 127
  const V tn = hn::MulAdd(x, log2e, shifter);
  const V n = hn::Sub(tn, shifter);  // n + 127 - 127, rounded to an integer
  V r = hn::NegMulAdd(n, ln2_hi, x);
  r = hn::NegMulAdd(n, ln2_lo, r);
  // e^r on [-ln2/2, ln2/2]: 1 + r + r^2 ((c2 + r c3) + r^2 (c4 + r c5)).
  const V r2 = hn::Mul(r, r);
  const V qa = hn::MulAdd(hn::Set(d, 1.66666672e-1f), r, hn::Set(d, 0.5f));
  const V qb = hn::MulAdd(hn::Set(d, 8.33333377e-3f), r, hn::Set(d, 4.16666418e-2f));
  const V p = hn::Add(hn::MulAdd(hn::MulAdd(qb, r2, qa), r2, r), hn::Set(d, 1.0f));
  const V scale = hn::BitCast(d, hn::ShiftLeft<23>(hn::BitCast(di, tn)));
  const V e = hn::Mul(p, scale);
  return hn::IfThenElseZero(hn::Ge(x, hn::Set(d, -87.3f)), e);
}

// One row: m = max, s = sum e^(x - m), four independent accumulators each so
// that latency never limits. Returns m + s (a value that depends on every
// logit, so nothing is elided). n is a multiple of 4 vectors.
float floor_row(const float* HWY_RESTRICT x, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  auto m0 = hn::Set(d, -3.0e38f), m1 = m0, m2 = m0, m3 = m0;
  for (size_t i = 0; i < n; i += 4 * N) {
    m0 = hn::Max(m0, hn::LoadU(d, x + i));
    m1 = hn::Max(m1, hn::LoadU(d, x + i + N));
    m2 = hn::Max(m2, hn::LoadU(d, x + i + 2 * N));
    m3 = hn::Max(m3, hn::LoadU(d, x + i + 3 * N));
  }
  const auto m = hn::MaxOfLanes(d, hn::Max(hn::Max(m0, m1), hn::Max(m2, m3)));  // in every lane
  auto s0 = hn::Zero(d), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < n; i += 4 * N) {
    s0 = hn::Add(s0, exp_value(d, hn::Sub(hn::LoadU(d, x + i), m)));
    s1 = hn::Add(s1, exp_value(d, hn::Sub(hn::LoadU(d, x + i + N), m)));
    s2 = hn::Add(s2, exp_value(d, hn::Sub(hn::LoadU(d, x + i + 2 * N), m)));
    s3 = hn::Add(s3, exp_value(d, hn::Sub(hn::LoadU(d, x + i + 3 * N), m)));
  }
  return hn::GetLane(m) + hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
}

}  // namespace HWY_NAMESPACE
}  // namespace xent_bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <utility>
#include <vector>

#include "compute_floor.hpp"

namespace xent_bench {
HWY_EXPORT(floor_row);

float compute_floor_row(const float* x, std::size_t n) { return HWY_DYNAMIC_DISPATCH(floor_row)(x, n); }

double compute_floor_pass(int threads, double seconds) {
  // 4096 logits (16 KiB) per thread: L1-resident after the first pass;
  // values of a normal logit row (the exponentials are all in range).
  constexpr std::size_t row = 4096;
  double elements_per_second = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : elements_per_second)
  {
    std::vector<float> x(row);
    unsigned state = 12345u + static_cast<unsigned>(omp_get_thread_num());
    for (auto& v : x) {
      state = state * 1664525u + 1013904223u;
      v = static_cast<float>(state >> 8) / 16777216.0f * 8.0f - 4.0f;
    }
    float sink = compute_floor_row(x.data(), row);  // warm
    const auto t0 = std::chrono::steady_clock::now();
    std::size_t passes = 0;
    double elapsed = 0.0;
    do {
      for (int k = 0; k < 64; ++k) {
        x[static_cast<std::size_t>(k)] += sink * 0.0f;  // a dependence on the previous pass
        sink = compute_floor_row(x.data(), row);
      }
      passes += 64;
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (elapsed < seconds);
    elements_per_second = static_cast<double>(passes * row) / elapsed;
    if (sink == 1.2345f) elements_per_second += 0.0;  // keep sink alive
  }
  return elements_per_second;
}

namespace {
// By (target, threads); target 0 is the best one.
std::map<std::pair<std::int64_t, int>, double>& floors() {
  static std::map<std::pair<std::int64_t, int>, double> m;
  return m;
}
}  // namespace

void record_floor(int threads, double elements_per_second, std::int64_t target) {
  double& v = floors()[{target, threads}];
  v = std::max(v, elements_per_second);
}

double compute_floor(int threads, std::int64_t target) {
  auto it = floors().find({target, threads});
  if (it != floors().end() && it->second > 0.0) return it->second;
  // Pins and unpins: call it outside a pinned case.
  if (target) hwy::SetSupportedTargetsForTest(target);
  const double r = compute_floor_pass(threads, 0.2);
  if (target) hwy::SetSupportedTargetsForTest(0);
  record_floor(threads, r, target);
  return r;
}

}  // namespace xent_bench
#endif  // HWY_ONCE

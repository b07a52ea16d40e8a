// Per-instruction-set row passes (see simd_row_passes.hpp for the
// contract and the numerics; the vector operations shared with the column
// kernel are in simd_vector_ops-inl.h). Highway compiles the HWY_NAMESPACE part once per
// target (foreach_target.h re-includes this file) and HWY_DYNAMIC_DISPATCH picks
// the best one this CPU supports, once per process (tests may force others).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "simd_row_passes.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "simd_row_passes.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/cache_control.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "simd_vector_ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace xent {
namespace simd {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;

// Blocks of kBlock floats: pass 1 finds the block max bm, pass 2 (from L1)
// sums e^{x - bm}. Pass 2 of a block runs in the same loop as pass 1 of the
// next one and prefetches the block after that, so the max scan costs little
// beside the exps and memory latency is hidden behind them.
// kStore: also writes each element's e^{x - bm} as val + err (v[j], e[j]; 0
// where x - bm < kLowest or x = -inf; exactly 1 and 0 at the block max) and
// each block's max bm (bmax[block]) for grad_stored.
template <bool kStore>
chunk_stats ScanChunkT(const float* x, std::int64_t n, float* v, float* e, float* bmax) {
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
      merge_chunk_stats(total, b);  // the row is undefined; the row code checks max
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
          HWY_ALIGN float bv[kTargetMaxLanes], be[kTargetMaxLanes];
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
    // The row's last block (a row of one block: all of it) keeps prefetching
    // the same distance ahead, into the rows that follow: a row of a few KiB
    // is about one page, and the hardware's stream prefetch stops at pages.
    for (; i + N <= len; i += N) {
      hwy::Prefetch(xb + i + 2 * kBlock);
      step(hn::LoadU(d, xb + i), i, N);
    }
    if (i < len) step(LoadPartial(d, xb + i, len - i, ninf), i, len - i);
    b.rest = acc.sum() + SumF(d, errs);
    b.ties = static_cast<double>(ties);
    merge_chunk_stats(total, b);
    cur = next;
  }
  return total;
}

// e^r ~ 1 + r + r^2 (kQ0 + kQ1 r + kQ2 r^2 + kQ3 r^3) on |r| <= 0.3467:
// relative error 1.77 u (u = 2^-24) with these float32 coefficients, from
// docs/throughput_exp_fit.py. Two multiply-adds fewer than the fast kernel's
// degree-7 polynomial (2^-34): the subtraction x - bm, rounded, already costs
// up to 64 u, so the 2^-34 bought nothing here.
constexpr float kQ0 = 0.499992311f;
constexpr float kQ1 = 0.166671157f;
constexpr float kQ2 = 0.0418902747f;
constexpr float kQ3 = 0.0083125094f;

// The relaxed tier's exponential (`throughput`, docs/throughput_kernel.md):
// e^s for s = x - m rounded (no carried error of the subtraction, no error
// term of the result), Cody-Waite reduction and the degree-5 polynomial.
// Lanes outside kLowest < s <= 0 give garbage (never inf or NaN reaches a
// sum: the caller selects, never multiplies, with its masks).
HWY_INLINE VF ExpValue(DF d, VF s) {
  const hn::RebindToSigned<DF> di;
  const VF shifter = hn::Set(d, kShifter);
  const VF tn = hn::MulAdd(s, hn::Set(d, kLog2e), shifter);
  const VF kn = hn::Sub(tn, shifter);
#if HWY_NATIVE_FMA
  const VF r = hn::MulAdd(kn, hn::Set(d, -kLn2Lo), hn::MulAdd(kn, hn::Set(d, -kLn2Hi), s));
#else
  const VF r1 = hn::Sub(s, hn::Mul(kn, hn::Set(d, kLn2A)));  // exact
  const VF r = hn::Sub(hn::Sub(r1, hn::Mul(kn, hn::Set(d, kLn2B))), hn::Mul(kn, hn::Set(d, kLn2C)));
#endif
  const VF r2 = hn::Mul(r, r);
  const VF qa = hn::MulAdd(hn::Set(d, kQ1), r, hn::Set(d, kQ0));
  const VF qb = hn::MulAdd(hn::Set(d, kQ3), r, hn::Set(d, kQ2));
  const VF q = hn::MulAdd(qb, r2, qa);
  const VF t = hn::MulAdd(r2, q, r);  // e^r - 1
  const VF pow2 = hn::BitCast(d, hn::ShiftLeft<23>(hn::BitCast(di, tn)));
  return hn::MulAdd(t, pow2, pow2);
}

// Whether p[0, n) holds a NaN (the relaxed scan's rare exact check).
HWY_INLINE bool HasNaN(DF d, const float* p, std::int64_t n) {
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
  std::int64_t i = 0;
  for (; i + N <= n; i += N)
    if (!hn::AllFalse(d, hn::IsNaN(hn::LoadU(d, p + i)))) return true;
  for (; i < n; ++i)
    if (std::isnan(p[i])) return true;
  return false;
}

// Float sums of the relaxed scan run over at most this many vectors per
// accumulator before they are added to the float64 sum: each float partial
// then carries at most (kRelaxedRun - 1) roundings (docs/throughput_kernel.md).
constexpr int kRelaxedRun = 32;

// Four consecutive vectors of stored exponentials v, for the gradient
// passes: the common group (no lane below the tiny-product threshold, so
// nothing to patch) is found by one test on their minimum; a test per vector
// cost about as much as the stores.
struct Group4 {
  VF v[4];
  HWY_INLINE Group4(DF d, const float* p) {
    const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
    for (int k = 0; k < 4; ++k) v[k] = hn::LoadU(d, p + k * N);
  }
  HWY_INLINE bool none_below(DF d, VF tiny) const {
    return hn::AllFalse(d, hn::Lt(hn::Min(hn::Min(v[0], v[1]), hn::Min(v[2], v[3])), tiny));
  }
};

template <bool kErr>
void GradStoredT(const float* x, const float* v, const float* e, const float* bmax, float* g,
                 std::int64_t n, float M, double a, std::int64_t special, float special_value,
                 bool stream, bool fence = true);

// The next block of a pending gradient, written from inside the scan loop of
// the same block of the next row, 4 vectors per 4 scanned: the stores spread
// over the scan (written as one burst after or before it, 8 KB of
// non-temporal stores fill the store queue and the scan waits: measured no
// faster than writing the whole row after its own scan). Vectors with a lane
// to patch (the target, tiny or zero lanes), the lanes the loop does not
// reach and a factor of 2^100 or more go through GradStoredT itself (no
// fence: finish_pending_grad's).
class PendingBlock {
 public:
  PendingBlock(DF d, pending_grad* job) : hi_(hn::Zero(d)), lo_(hi_), tiny_(hi_) {
    if (!job || !job->active()) return;
    job_ = job;
    o_ = job->done;
    len_ = std::min(kBlock, job->n - o_);
    const double abs_a = std::fabs(job->a);
    const auto addr = reinterpret_cast<std::uintptr_t>(job->g + o_);
    inline_ = abs_a < 0x1p100 && addr % (hn::Lanes(d) * sizeof(float)) == 0;
    if (!inline_) return;
    const float bm = job->bmax[o_ / kBlock];
    const double f = bm == job->M ? 1.0 : std::exp(static_cast<double>(bm) - static_cast<double>(job->M));
    const double ab = job->a * f;
    const float ab_hi = static_cast<float>(ab);
    hi_ = hn::Set(d, ab_hi);
    lo_ = hn::Set(d, static_cast<float>(ab - static_cast<double>(ab_hi)));
    tiny_ = hn::Set(d, TinyBelow(ab));
    special_ = job->special - o_;
  }

  // Gradient lanes [i, i + 4N) of the block (i = the lanes written so far).
  HWY_INLINE void Step4(DF d, std::int64_t i) {
    if (!inline_) return;
    const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
    const float* v = job_->v + o_;
    float* g = job_->g + o_;
    const Group4 grp(d, v + i);
    if (HWY_LIKELY(grp.none_below(d, tiny_) && (special_ < i || special_ >= i + 4 * N))) {
      for (int k = 0; k < 4; ++k) hn::Stream(hn::MulAdd(hi_, grp.v[k], hn::Mul(lo_, grp.v[k])), d, g + i + k * N);
      written_ = i + 4 * N;
      return;
    }
    for (std::int64_t k = i; k < i + 4 * N; k += N) {
      const VF vv = hn::LoadU(d, v + k);
      if (HWY_UNLIKELY(!hn::AllFalse(d, hn::Lt(vv, tiny_)) || (special_ >= k && special_ < k + N))) {
        Through(k, N);
      } else {
        hn::Stream(hn::MulAdd(hi_, vv, hn::Mul(lo_, vv)), d, g + k);
      }
    }
    written_ = i + 4 * N;
  }

  // The rest of the block.
  void Finish() {
    if (!job_) return;
    Through(written_, len_ - written_);
    job_->done += len_;
    job_ = nullptr;
  }

 private:
  void Through(std::int64_t i, std::int64_t n) {
    const std::int64_t j = o_ + i;
    GradStoredT<false>(job_->x + j, job_->v + j, nullptr, job_->bmax + o_ / kBlock, job_->g + j, n, job_->M,
                       job_->a, job_->special - j, job_->special_value, true, false);
  }

  pending_grad* job_ = nullptr;
  std::int64_t o_ = 0, len_ = 0, written_ = 0, special_ = -1;
  bool inline_ = false;
  VF hi_, lo_, tiny_;
};

void FinishPendingGradImpl(pending_grad* job) {
  const DF d;
  while (job->active()) PendingBlock(d, job).Finish();
  hwy::FlushStream();
  *job = pending_grad{};
}

// ScanChunkT with the relaxed tier's numerics: ExpValue, four float32
// accumulators (independent chains) flushed into the float64 sum every
// kRelaxedRun steps and at every block end, ties counted by a scalar
// popcount (the vector pipes are the limit).
// kStore: v[j] = e^{x_j - bm} (0 where not kept, 1 at ties) and bmax, as
// ScanChunkT stores, without the error terms.
// job: a pending gradient, one block of it written per block scanned.
template <bool kStore>
chunk_stats ScanChunkRelaxedT(const float* x, std::int64_t n, float* v, float* bmax, pending_grad* job) {
  const DF d;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
  const float ninf = -std::numeric_limits<float>::infinity();
  chunk_stats total;
  MaxScanT<false> cur(d);
  cur.scan(d, x, 0, std::min(kBlock, n));
  for (std::int64_t start = 0; start < n; start += kBlock) {
    PendingBlock pending(d, kStore ? job : nullptr);
    const float* xb = x + start;
    const float* xn = xb + kBlock;
    const std::int64_t len = std::min(kBlock, n - start);
    const std::int64_t len_next = start + kBlock < n ? std::min(kBlock, n - start - kBlock) : 0;
    // The max scan flags no NaN (IsNaN and a mask Or per vector were 10-15 %
    // of this loop's time). A NaN in the block shows instead as a NaN bm, as
    // bm = -inf, or in the tie count: bm is then one of the block's values
    // (its lane has s = +0) and the NaN's lane has s = NaN, both counted as
    // ties below, so ties >= 2. Each of those cases checks exactly.
    const float bm = hn::GetLane(hn::MaxOfLanes(d, cur.vmax));
    MaxScanT<false> next(d);
    if (kStore) bmax[start / kBlock] = bm;
    if (std::isnan(bm) || (bm == ninf && HasNaN(d, xb, len))) {
      pending.Finish();
      total.nan = true;
      return total;
    }
    if (bm == ninf) {
      pending.Finish();
      if (kStore)
        for (std::int64_t j = 0; j < len; ++j) v[start + j] = 0.0f;
      next.scan(d, xn, 0, len_next);
      cur = next;
      continue;
    }
    chunk_stats b;
    b.max = bm;
    if (bm == std::numeric_limits<float>::infinity()) {
      pending.Finish();
      merge_chunk_stats(total, b);
      return total;
    }
    // A zero max is subtracted as -0: then every tie, -0 or +0, gives s = +0,
    // which Kept leaves out, so one integer compare decides the kept lanes.
    const VF m = hn::Set(d, bm == 0.0f ? -0.0f : bm);
    const VF vzero = hn::Zero(d), vlowest = hn::Set(d, kLowest);
    Acc acc;
    VF a0 = vzero, a1 = a0, a2 = a0, a3 = a0;
    std::int64_t ties = 0;
    int run = 0;
    auto flush = [&]() HWY_ATTR {
      acc.add(a0);
      acc.add(a1);
      acc.add(a2);
      acc.add(a3);
      a0 = a1 = a2 = a3 = hn::Zero(d);
      run = 0;
    };
    // e^{x - bm} of the kept lanes (0 elsewhere, 1 at ties); counts ties.
    auto term = [&](VF xv, std::int64_t i, std::int64_t cnt) HWY_ATTR {
      const VF s = hn::Sub(xv, m);
      // Lanes not below zero: ties (s = +0) and NaN, counted as N minus the
      // others (padding lanes are -inf) by a scalar popcount: the vector
      // pipes are the limit, and Not would cost one of them.
      const auto below = hn::Lt(s, vzero);
      const auto keep = Kept(d, s);
      const VF val = ExpValue(d, s);
      ties += N - static_cast<std::int64_t>(hn::CountTrue(d, below));
      if constexpr (kStore) {
        // Kept lanes and ties (s > kLowest: NaN lanes too are 0; their row is NaN).
        const VF vv = hn::IfThenElseZero(hn::Gt(s, vlowest), val);
        if (cnt == N) {
          hn::StoreU(vv, d, v + start + i);
        } else {
          HWY_ALIGN float bv[kTargetMaxLanes];
          hn::Store(vv, d, bv);
          std::memcpy(v + start + i, bv, static_cast<std::size_t>(cnt) * sizeof(float));
        }
      } else {
        (void)i, (void)cnt;
      }
      return hn::IfThenElseZero(keep, val);
    };
    auto step4 = [&](std::int64_t i) HWY_ATTR {
      a0 = hn::Add(a0, term(hn::LoadU(d, xb + i), i, N));
      a1 = hn::Add(a1, term(hn::LoadU(d, xb + i + N), i + N, N));
      a2 = hn::Add(a2, term(hn::LoadU(d, xb + i + 2 * N), i + 2 * N, N));
      a3 = hn::Add(a3, term(hn::LoadU(d, xb + i + 3 * N), i + 3 * N, N));
      if (++run == kRelaxedRun) flush();
    };
    std::int64_t i = 0;
    for (; i + 4 * N <= len && i + 4 * N <= len_next; i += 4 * N) {
      for (int k = 0; k < 4; ++k) hwy::Prefetch(xb + i + k * N + 2 * kBlock);
      next.add(hn::LoadU(d, xn + i));
      next.add(hn::LoadU(d, xn + i + N));
      next.add(hn::LoadU(d, xn + i + 2 * N));
      next.add(hn::LoadU(d, xn + i + 3 * N));
      step4(i);
      if constexpr (kStore) pending.Step4(d, i);
    }
    next.scan(d, xn, i, len_next);
    for (; i + 4 * N <= len; i += 4 * N) {  // prefetching on, as in ScanChunkT
      for (int k = 0; k < 4; ++k) hwy::Prefetch(xb + i + k * N + 2 * kBlock);
      step4(i);
      if constexpr (kStore) pending.Step4(d, i);
    }
    for (; i + N <= len; i += N) {
      a0 = hn::Add(a0, term(hn::LoadU(d, xb + i), i, N));
      if (++run == kRelaxedRun) flush();
    }
    if (i < len) a0 = hn::Add(a0, term(LoadPartial(d, xb + i, len - i, ninf), i, len - i));
    flush();
    pending.Finish();
    if (HWY_UNLIKELY(ties > 1) && HasNaN(d, xb, len)) {
      total.nan = true;
      return total;
    }
    b.rest = acc.sum();
    b.ties = static_cast<double>(ties);
    merge_chunk_stats(total, b);
    cur = next;
  }
  return total;
}

chunk_stats ScanChunkRelaxedImpl(const float* x, std::int64_t n) {
  return ScanChunkRelaxedT<false>(x, n, nullptr, nullptr, nullptr);
}
chunk_stats ScanChunkStoreRelaxedImpl(const float* x, std::int64_t n, float* v, float* bmax, pending_grad* job) {
  return ScanChunkRelaxedT<true>(x, n, v, bmax, job);
}

chunk_stats ScanChunkImpl(const float* x, std::int64_t n) { return ScanChunkT<false>(x, n, nullptr, nullptr, nullptr); }
chunk_stats ScanChunkStoreImpl(const float* x, std::int64_t n, float* v, float* e, float* bmax) {
  return ScanChunkT<true>(x, n, v, e, bmax);
}

double RestExactImpl(const float* x, std::int64_t n, float M) { return RestExactF64(x, n, M); }

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
    auto wq = hn::Add(hn::Mul(a, hn::PromoteTo(dd, hn::LoadU(dfh, q + i))), b);  // as the tail
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

// g_j = a e^{x_j - M} from ScanChunkStoreImpl's v, e (= e^{x_j - bm} to about
// 2^-25) and block maxima: a_b (v_j + e_j) with a_b = a e^{bm - M} per block
// (exactly a in the block of the row max), no second exponential. Lanes with
// v_j = 0 (x_j - bm below kLowest, or -inf) give a signed zero, or float64
// from x_j where the result is subnormal but not negligible. special >= 0:
// g[special] = special_value. stream: non-temporal stores (g must not alias x).
// kErr = false (the relaxed scan's output): no error terms, e is not read.
// fence = false leaves the non-temporal stores unfenced (a pending gradient's
// blocks: finish_pending_grad fences).
template <bool kErr>
void GradStoredT(const float* x, const float* v, const float* e, const float* bmax, float* g,
                 std::int64_t n, float M, double a, std::int64_t special, float special_value,
                 bool stream, bool fence) {
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
    auto product = [&](VF vv, VF ev) HWY_ATTR {
      return kErr ? hn::MulAdd(va_hi, vv, hn::MulAdd(va_lo, vv, hn::Mul(va_hi, ev)))
                  : hn::MulAdd(va_hi, vv, hn::Mul(va_lo, vv));
    };
    // Gradient of lanes [i, i + cnt) of the block.
    auto compute = [&](VF vv, VF ev, std::int64_t i, std::int64_t cnt) HWY_ATTR {
      VF gv = product(vv, ev);
      const std::int64_t j0 = start + i;
      const bool patch = special >= j0 && special < j0 + cnt;
      // One test for the common vector: every zero (small) lane is also below
      // vtiny (>= FLT_MIN), so no lane below it means nothing to patch, not
      // even a signed zero (the blend below costs two ops a vector outside).
      if (HWY_UNLIKELY(patch || !hn::AllFalse(d, hn::Lt(vv, vtiny)))) {
        const auto small = hn::Eq(vv, vzero);
        gv = hn::IfThenElse(small, zero, gv);
        const auto tiny = hn::AndNot(small, hn::Lt(vv, vtiny));
        const bool any_small = ylow != 0.0f && !hn::AllFalse(d, small);
        const bool any_tiny = !hn::AllFalse(d, tiny);
        HWY_ALIGN float buf[kTargetMaxLanes];
        hn::Store(gv, d, buf);
        if (any_tiny) {
          HWY_ALIGN float tl[kTargetMaxLanes], vl[kTargetMaxLanes], el[kTargetMaxLanes];
          hn::Store(hn::VecFromMask(d, tiny), d, tl);
          hn::Store(vv, d, vl);
          hn::Store(kErr ? ev : vzero, d, el);
          for (std::int64_t k = 0; k < cnt; ++k)
            if (tl[k] != 0.0f) buf[k] = TinyProduct(ab, vl[k], el[k]);
        }
        if (any_small) {
          const VF s = hn::Sub(LoadPartial(d, x + j0, cnt, 0.0f), m);
          HWY_ALIGN float sl[kTargetMaxLanes] = {};  // (GCC cannot see cnt <= lanes)
          hn::Store(hn::VecFromMask(d, hn::And(small, hn::Ge(s, vylow))), d, sl);
          for (std::int64_t k = 0; k < cnt; ++k)
            if (sl[k] != 0.0f) buf[k] = exact(x[j0 + k]);
        }
        if (patch) buf[special - j0] = special_value;
        gv = hn::Load(d, buf);
      }
      return gv;
    };
    auto put = [&](VF gv, std::int64_t i) HWY_ATTR {
      if (nt) hn::Stream(gv, d, g + start + i);
      else hn::StoreU(gv, d, g + start + i);
    };
    auto err_at = [&](std::int64_t i) HWY_ATTR { return kErr ? hn::LoadU(d, e + start + i) : vzero; };
    std::int64_t i = 0;
    for (; i + 4 * N <= len; i += 4 * N) {  // groups of four, as PendingBlock::Step4
      const Group4 grp(d, v + start + i);
      const std::int64_t j0 = start + i;
      if (HWY_LIKELY(grp.none_below(d, vtiny) && (special < j0 || special >= j0 + 4 * N))) {
        for (int k = 0; k < 4; ++k) put(product(grp.v[k], err_at(i + k * N)), i + k * N);
      } else {
        for (std::int64_t k = i; k < i + 4 * N; k += N) put(compute(hn::LoadU(d, v + start + k), err_at(k), k, N), k);
      }
    }
    for (; i + N <= len; i += N) put(compute(hn::LoadU(d, v + start + i), err_at(i), i, N), i);
    if (i < len) {
      const std::int64_t cnt = len - i;
      const VF gv = compute(LoadPartial(d, v + start + i, cnt, 0.0f),
                            kErr ? LoadPartial(d, e + start + i, cnt, 0.0f) : vzero, i, cnt);
      HWY_ALIGN float buf[kTargetMaxLanes];
      hn::Store(gv, d, buf);
      std::memcpy(g + start + i, buf, static_cast<std::size_t>(cnt) * sizeof(float));
    }
  }
  if (nt && fence) hwy::FlushStream();
}

void GradStoredImpl(const float* x, const float* v, const float* e, const float* bmax, float* g,
                    std::int64_t n, float M, double a, std::int64_t special, float special_value,
                    bool stream) {
  GradStoredT<true>(x, v, e, bmax, g, n, M, a, special, special_value, stream);
}
void GradStoredRelaxedImpl(const float* x, const float* v, const float* bmax, float* g, std::int64_t n,
                           float M, double a, std::int64_t special, float special_value, bool stream) {
  GradStoredT<false>(x, v, nullptr, bmax, g, n, M, a, special, special_value, stream);
}

// b_j of target_mass for lanes [i, i + N) (see simd_row_passes.hpp).
// operator() and one() must give the same bits for the same j: the gradient
// takes mass_rest where b_j equals the largest b, and a lane and the tail
// may see the same element (target_mass reads pieces shorter than 4 vectors
// with one(), grad_smoothed whole vectors with operator()). With C = 1 a
// mismatch leaves p_j (A - b_j) = A - b_j = 2^-53 A instead of exact 0. Hence
// an unfused multiply and add in both: hn::MulAdd fuses on some targets only
// (not on scalar, SSE4, SSSE3), std::fma everywhere.
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
    auto b = q ? hn::Add(hn::Mul(hn::Set(dd, omeps), hn::PromoteTo(dd, hn::LoadU(dfh, q + i))),
                         hn::Set(dd, epsc))
               : hn::Set(dd, epsc);
    if (w) b = hn::Mul(b, hn::PromoteTo(dd, hn::LoadU(dfh, w + i)));
    if (HWY_UNLIKELY(special >= i && special < i + N)) {
      HWY_ALIGN double buf[kTargetMaxLanes];
      hn::Store(b, dd, buf);
      buf[special - i] = special_b;
      b = hn::Load(dd, buf);
    }
    return b;
  }
  // The same value for one element, in the same operations.
  HWY_INLINE double one(std::int64_t i) const {
    if (i == special) return special_b;
    double b = q ? omeps * static_cast<double>(q[i]) + epsc : epsc;
    if (w) b *= static_cast<double>(w[i]);
    return b;
  }
};

HWY_INLINE void MassAdd(mass_stats& s, double b) {
  mass_stats one;
  one.total = b;
  one.max = b;
  one.any = true;
  merge_mass_stats(s, one);
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
    HWY_ALIGN double bm[kTargetMaxLanes], br[kTargetMaxLanes], bt[kTargetMaxLanes];
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
        merge_mass_stats(s, l);
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

std::int64_t TargetImpl() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace simd
}  // namespace xent
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace xent {
namespace simd {

HWY_EXPORT(ScanChunkImpl);
HWY_EXPORT(RestExactImpl);
HWY_EXPORT(WeightedGapImpl);
HWY_EXPORT(ProbSumsImpl);
HWY_EXPORT(GradStoredImpl);
HWY_EXPORT(ScanChunkStoreImpl);
HWY_EXPORT(TargetMassImpl);
HWY_EXPORT(ScanChunkRelaxedImpl);
HWY_EXPORT(ScanChunkStoreRelaxedImpl);
HWY_EXPORT(GradStoredRelaxedImpl);
HWY_EXPORT(FinishPendingGradImpl);
HWY_EXPORT(GradSmoothedImpl);
HWY_EXPORT(TargetImpl);
HWY_EXPORT(Log1pF64Impl);
HWY_EXPORT(ExpF64Impl);

void merge_chunk_stats(chunk_stats& a, const chunk_stats& b) {
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

chunk_stats scan_chunk(const float* x, std::int64_t n) { return HWY_DYNAMIC_DISPATCH(ScanChunkImpl)(x, n); }

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

chunk_stats scan_chunk_store(const float* x, std::int64_t n, float* v, float* e, float* bmax) {
  return HWY_DYNAMIC_DISPATCH(ScanChunkStoreImpl)(x, n, v, e, bmax);
}

void grad_stored(const float* x, const float* v, const float* e, const float* bmax, float* g,
                 std::int64_t n, float M, double a, std::int64_t special, float special_value, bool stream) {
  HWY_DYNAMIC_DISPATCH(GradStoredImpl)(x, v, e, bmax, g, n, M, a, special, special_value, stream);
}

chunk_stats scan_chunk_relaxed(const float* x, std::int64_t n) {
  return HWY_DYNAMIC_DISPATCH(ScanChunkRelaxedImpl)(x, n);
}

chunk_stats scan_chunk_store_relaxed(const float* x, std::int64_t n, float* v, float* bmax, pending_grad* job) {
  return HWY_DYNAMIC_DISPATCH(ScanChunkStoreRelaxedImpl)(x, n, v, bmax, job);
}

void finish_pending_grad(pending_grad& job) {
  if (job.n) HWY_DYNAMIC_DISPATCH(FinishPendingGradImpl)(&job);
}

void grad_stored_relaxed(const float* x, const float* v, const float* bmax, float* g, std::int64_t n,
                         float M, double a, std::int64_t special, float special_value, bool stream) {
  HWY_DYNAMIC_DISPATCH(GradStoredRelaxedImpl)(x, v, bmax, g, n, M, a, special, special_value, stream);
}

void merge_mass_stats(mass_stats& a, const mass_stats& b) {
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

const char* active_target_name() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(TargetImpl)()); }

}  // namespace simd
}  // namespace xent
#endif  // HWY_ONCE

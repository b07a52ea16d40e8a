// The per-row logic of the `simd` and `openmp` kernels, on top of the
// row passes (simd_row_passes.hpp). Formulas are those of the stable
// kernel (stable_kernel.cpp), evaluated with the float64 scalars there:
//   loss    = w_t ((m - x_t) + log1p(rest)),  rest = Σ_{j≠k} e^{x_j - m}
//   g_t     = -w_t (Σ_{j≠t} p_j)                  (ε = 0: never p_t - 1)
//   smoothed or probability targets (b = w q', A = Σ b), in float64 lanes:
//   g_j     = p_j (A - b_j) - b_j (1 - p_j), 1 - p_j and A - b_j each
//             without cancellation (ties at the max included in `rest`)
// Long rows (C >= kLongRow) are cut into fixed chunks of kChunk classes whose
// statistics are merged in chunk order; the chunking depends on C only, so
// running the chunks on several threads (openmp) gives the same bits.
// Rows whose class stride is not 1 are gathered into a thread-local buffer
// (and the gradient scattered back).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "scratch.hpp"
#include "simd_row_passes.hpp"
#include "sixteen_bit.hpp"
#include "xent/kernel/problem.hpp"

namespace xent::simd {

constexpr std::int64_t kLongRow = 65536;
constexpr std::int64_t kChunk = 16384;  // a multiple of kStatsBlock
static_assert(kChunk % kStatsBlock == 0, "chunks hold whole blocks");

// Separate gradient buffers at least this large get non-temporal stores.
constexpr std::int64_t kStreamBytes = std::int64_t{8} << 20;

// The row numerics: `fast` (simd, openmp: the exponential's errors carried,
// float64 sums) or `relaxed` (throughput, docs/throughput_kernel.md: a
// value-only exponential, float32 runs flushed into float64 sums). Relaxed
// numerics apply to index targets without smoothing and C > kRelaxedAbove;
// other rows keep the fast numerics. The column paths (simd_column.hpp)
// compute the fast numerics only, so under relaxed numerics they take no row
// of more than kRelaxedAbove classes (column_path): a row gets one result in
// any layout. Above 128 classes the relaxed row path is as fast as the
// gathered column path per row (C = 128 vs 129 on AVX-512: 78 vs 85 ns),
// and at C = 1000 twice the fast numerics' rate.
enum class numerics { fast, relaxed };
constexpr std::int64_t kRelaxedAbove = 128;

class row_engine {
 public:
  row_engine(const problem& pr, bool with_grad, numerics num = numerics::fast) : pr_(pr) {
    const std::int64_t C = pr.classes;
    // An empty batch may have any C (its weight a stride-0 view of one float):
    // no copy of the weights and no walk over them without a row.
    const bool rows = pr.positions > 0;
    if (pr.weight && rows) {
      weights_.resize(static_cast<std::size_t>(C));
      for (std::int64_t c = 0; c < C; ++c) weights_[c] = pr.weight_at(c);
      w_ = weights_.data();
    }
    if (rows && pr.target == target_kind::index && pr.label_smoothing > 0.0) {
      for (std::int64_t c = 0; c < C; ++c) wtot_ += static_cast<double>(pr.weight_at(c));
    }
    chunk_ = C >= kLongRow ? kChunk : (C > 0 ? C : 1);
    chunks_ = C >= kLongRow ? (C + kChunk - 1) / kChunk : 1;
    relaxed_ = num == numerics::relaxed && pr.target == target_kind::index && pr.label_smoothing == 0.0 &&
               C > kRelaxedAbove;
    const bool in_place = pr.grad == pr.logits;
    // 16-bit rows are widened into float32 buffers (and their gradient
    // narrowed back): the same float32 row numerics on exactly the same values.
    widen_ = pr.type != dtype::f32;
    stream_ = with_grad && !in_place && !widen_ && pr.grad_class_stride == 1 &&
              pr.positions * C * static_cast<std::int64_t>(sizeof(float)) >= kStreamBytes;
    // A deferred gradient reads its row's logits in place (rare lanes), so
    // they must not be a gathered copy the next row overwrites.
    defers_ = stream_ && relaxed_ && pr.logits_class_stride == 1 && pr.target == target_kind::index &&
              pr.label_smoothing == 0.0;
  }

  std::int64_t chunks() const { return chunks_; }

  // Takes the row scratch row() will use on this thread, so that a failed
  // allocation (xent::error) comes before anything is written. Every thread
  // that runs row() calls this first; row() itself then allocates nothing
  // but the small per-chunk vectors of long rows.
  void reserve(bool with_grad) const {
    const problem& pr = pr_;
    const std::int64_t C = pr.classes;
    if (pr.positions == 0) return;  // no row: C may be any size
    if (pr.logits_class_stride != 1 || widen_) row_scratch(kRowX, C);
    if (pr.target == target_kind::probability && (pr.target_class_stride != 1 || widen_)) row_scratch(kRowQ, C);
    if (with_grad && (pr.grad_class_stride != 1 || widen_)) row_scratch(kRowG, C);
    if (with_grad && pr.target == target_kind::index && pr.label_smoothing == 0.0) {
      row_scratch(kRowV, C);
      if (!relaxed_) row_scratch(kRowE, C);
      row_scratch(kRowBlockMax, (C + kStatsBlock - 1) / kStatsBlock);
      if (defers_) {
        row_scratch(kRowV2, C);
        row_scratch(kRowBlockMax2, (C + kStatsBlock - 1) / kStatsBlock);
      }
    }
    thread_pending_grad() = pending_grad{};  // nothing left from an earlier call
  }

  // The thread's gradient row still being written (pending_grad): row()
  // leaves its gradient there when given it; the thread's loop ends with
  // finish_pending_grad(thread_pending_grad()).
  static pending_grad& thread_pending_grad() {
    thread_local pending_grad job;
    return job;
  }

  // l_n in double; writes scale * dl_n/dx into g (strided) when g != nullptr.
  // par(n, f) runs f(0..n-1), possibly in parallel (chunks of long rows).
  // Needs reserve(g != nullptr) on this thread first (its buffers).
  // pending (the thread's thread_pending_grad(), with a par that runs on the
  // calling thread only): where the engine defers (defers_, a finite scale),
  // the gradient is left there and written during the next row's scan, or
  // by finish_pending_grad; every row finishes the previous one's.
  template <class Par>
  double row(std::int64_t p, float* g, double scale, Par&& par, pending_grad* pending = nullptr) const {
    const problem& pr = pr_;
    const std::int64_t C = pr.classes;
    // A strided or 16-bit row is copied (widened) into a float32 buffer.
    auto gathered = [&](const float* row, std::int64_t stride, int buffer) {
      float* buf = row_scratch(buffer, C);
      if (widen_) sixteen::widen_row(reinterpret_cast<const std::uint16_t*>(row), stride, buf, C, pr.type);
      else
        for (std::int64_t c = 0; c < C; ++c) buf[c] = row[c * stride];
      return static_cast<const float*>(buf);
    };
    const float* x = pr.logits_row(p);
    if (pr.logits_class_stride != 1 || widen_) x = gathered(x, pr.logits_class_stride, kRowX);
    const float* q = nullptr;
    if (pr.target == target_kind::probability) {
      q = pr.target_row(p);
      if (pr.target_class_stride != 1 || widen_) q = gathered(q, pr.target_class_stride, kRowQ);
    }
    float* gout = g;
    const bool scatter = g && (pr.grad_class_stride != 1 || widen_);
    if (scatter) gout = row_scratch(kRowG, C);
    // Index targets without smoothing: the stats pass keeps every e^{x - bm}
    // for the gradient (grad_stored), which then needs no second exponential.
    const bool stored = g && pr.target == target_kind::index && pr.label_smoothing == 0.0;
    const std::int64_t blocks = (C + kStatsBlock - 1) / kStatsBlock;
    float* ev_v = stored ? row_scratch(kRowV, C) : nullptr;
    float* ev_e = stored && !relaxed_ ? row_scratch(kRowE, C) : nullptr;
    float* bmax = stored ? row_scratch(kRowBlockMax, blocks) : nullptr;
    const bool stream = stream_ && !scatter;
    const bool defer = pending && defers_ && g && std::isfinite(scale);
    if (!defer && pending) finish_pending_grad(*pending);
    if (defer && pending->v == ev_v) {  // the pending row holds the first set
      ev_v = row_scratch(kRowV2, C);
      bmax = row_scratch(kRowBlockMax2, blocks);
    }
    auto len = [&](std::int64_t i) { return std::min(chunk_, C - i * chunk_); };

    // Pass 1: max and rest, chunk statistics merged in chunk order.
    chunk_stats st;
    auto chunk = [&](std::int64_t off, std::int64_t n) {
      if (relaxed_)
        return stored ? scan_chunk_store_relaxed(x + off, n, ev_v + off, bmax + off / kStatsBlock,
                                                 defer ? pending : nullptr)
                      : scan_chunk_relaxed(x + off, n);
      return stored ? scan_chunk_store(x + off, n, ev_v + off, ev_e + off, bmax + off / kStatsBlock)
                    : scan_chunk(x + off, n);
    };
    if (chunks_ == 1) {
      st = chunk(0, C);
    } else {
      std::vector<chunk_stats> parts(static_cast<std::size_t>(chunks_));
      par(chunks_, [&](std::int64_t i) { parts[i] = chunk(i * chunk_, len(i)); });
      for (const auto& s : parts) merge_chunk_stats(st, s);
    }
    if (defer && pending->active()) finish_pending_grad(*pending);  // a scan that stopped early (NaN, +inf)
    auto chunked_sum = [&](auto&& f) {
      if (chunks_ == 1) return f(x, std::int64_t{0}, C);
      std::vector<double> parts(static_cast<std::size_t>(chunks_));
      par(chunks_, [&](std::int64_t i) { parts[i] = f(x + i * chunk_, i * chunk_, len(i)); });
      double s = 0.0;
      for (double v : parts) s += v;
      return s;
    };

    constexpr double nan = std::numeric_limits<double>::quiet_NaN();
    if (st.nan || std::isinf(st.max)) {  // NaN or +inf logit, or every logit -inf
      if (g)
        for (std::int64_t c = 0; c < C; ++c) pr.store_grad(g, c, nan);
      return nan;
    }
    const float M = st.max;
    const double Md = static_cast<double>(M);
    // The block passes count the lanes equal to the max apart (ties): rest =
    // Σ_{j≠k} e^{x_j - M} is their fast sum plus ties - 1.
    const double ties_rest = st.ties - 1.0;
    double rest = st.rest + ties_rest;
    // The fast pass gives rest to ~2^-25 relative: enough for the loss and for
    // gradients a*p_j, but smoothing and probability targets subtract two terms
    // of the gradient that may cancel: there rest is recomputed in float64.
    const bool cancelling = g && (pr.label_smoothing > 0.0 || pr.target == target_kind::probability);
    if (rest < kTinyRest || cancelling)
      rest = ties_rest + chunked_sum([&](const float* xc, std::int64_t, std::int64_t n) {
               return rest_exact(xc, n, M);
             });
    const double log_sum = log1p_f64(rest);
    const double sum = 1.0 + rest;
    const double eps = pr.label_smoothing;
    const double eps_c = eps / static_cast<double>(C);
    const double omeps = 1.0 - eps;
    const float* w = w_;

    // Smoothed or probability targets: the gradient is p_j A - b_j with
    // b_c = w_c q'_c, A = Σ b (q one-hot at t for index targets), evaluated as
    // p_j (A - b_j) - b_j (1 - p_j) with both factors free of cancellation
    // (the stable kernel's form; grad_smoothed).
    auto smoothed_grad = [&](std::int64_t t, double bt) {
      mass_stats ms;
      if (chunks_ == 1) {
        ms = target_mass(q, w, C, omeps, eps_c, t, bt);
      } else {
        std::vector<mass_stats> parts(static_cast<std::size_t>(chunks_));
        par(chunks_, [&](std::int64_t i) {
          const std::int64_t off = i * chunk_;
          parts[i] = target_mass(q ? q + off : nullptr, w ? w + off : nullptr, len(i), omeps, eps_c,
                                 t - off, bt);
        });
        for (const auto& s : parts) merge_mass_stats(ms, s);
      }
      const smooth_row k{M, rest, sum, ms.total, ms.max, ms.rest, omeps, eps_c, scale};
      par(chunks_, [&](std::int64_t i) {
        const std::int64_t off = i * chunk_;
        grad_smoothed(x + off, w ? w + off : nullptr, q ? q + off : nullptr, gout + off, len(i), k,
                      t - off, bt);
      });
    };

    double loss = 0.0;
    if (pr.target == target_kind::index) {
      const std::int64_t t = pr.target_at(p);
      const double wt = static_cast<double>(pr.weight_at(t));
      const double xt = static_cast<double>(x[t]);
      loss = wt * ((Md - xt) + log_sum);
      if (eps > 0.0) {
        // PyTorch's form (1-eps) l + (eps/C) s, kept so that 0 * inf gives its NaN.
        const double gaps = chunked_sum([&](const float* xc, std::int64_t off, std::int64_t n) {
          return weighted_gap(xc, w ? w + off : nullptr, n, M);
        });
        loss = omeps * loss + eps_c * (gaps + wtot_ * log_sum);
      }
      if (g) {
        if (eps > 0.0) {
          smoothed_grad(t, wt * (omeps + eps_c));
        } else {
          const double e_t = exp_f64(xt - Md);
          const double others = xt == Md ? rest : sum - e_t;  // Σ_{j≠t} e^{x_j - m}
          const float gt = static_cast<float>(scale * (-wt * (others / sum)));
          const double a = scale * (wt / sum);
          if (defer && relaxed_) {
            *pending = pending_grad{x, ev_v, bmax, gout, C, 0, M, a, t, gt};
            return loss;  // no scatter: stream excludes it
          }
          par(chunks_, [&](std::int64_t i) {
            const std::int64_t off = i * chunk_;
            if (relaxed_)
              grad_stored_relaxed(x + off, ev_v + off, bmax + off / kStatsBlock, gout + off, len(i), M, a,
                                  t - off, gt, stream);
            else
              grad_stored(x + off, ev_v + off, ev_e + off, bmax + off / kStatsBlock, gout + off, len(i), M, a,
                          t - off, gt, stream);
          });
        }
      }
    } else {
      std::vector<double> gparts(static_cast<std::size_t>(chunks_)), mparts(gparts.size());
      par(chunks_, [&](std::int64_t i) {
        const std::int64_t off = i * chunk_;
        prob_sums(x + off, q + off, w ? w + off : nullptr, len(i), M, omeps, eps_c, &gparts[i],
                  &mparts[i]);
      });
      double gap_sum = 0.0, mass = 0.0;
      for (std::size_t i = 0; i < gparts.size(); ++i) {
        gap_sum += gparts[i];
        mass += mparts[i];
      }
      loss = gap_sum + mass * log_sum;
      if (g) smoothed_grad(-1, 0.0);
    }
    if (scatter && widen_)
      sixteen::narrow_row(gout, reinterpret_cast<std::uint16_t*>(g), pr.grad_class_stride, C, pr.type);
    else if (scatter)
      for (std::int64_t c = 0; c < C; ++c) g[c * pr.grad_class_stride] = gout[c];
    return loss;
  }

 private:
  const problem& pr_;
  std::vector<float> weights_;  // contiguous copy of the weights (empty: none)
  const float* w_ = nullptr;
  double wtot_ = 0.0;  // Σ_c w_c (index targets with smoothing)
  std::int64_t chunk_ = 1, chunks_ = 1;
  bool stream_ = false;
  bool widen_ = false;    // 16-bit logits: rows widened into float32 buffers
  bool relaxed_ = false;  // relaxed numerics for this problem's rows
  bool defers_ = false;   // rows may leave their gradient pending (row())
};

}  // namespace xent::simd

// The part every kernel shares: the loop over positions, ignore_index,
// the mean's denominator, the upstream gradient and the batch reduction.
// A kernel supplies only the per-row math:
//
//   double row(const problem&, std::int64_t p, float* grad_row, double grad_scale)
//
// returns the position's loss l_n (weights and label smoothing included,
// before the reduction) in double, and when grad_row is not null writes
// grad_scale * d l_n / d x into it (strides: problem.grad_class_stride).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "pairwise_sum.hpp"
#include "scratch.hpp"
#include "xent/kernel/problem.hpp"

namespace xent {

// D in docs/design.md §2: Σ weights of counted positions (index targets), the
// number of positions (probability targets), 1 for sum and none.
inline double reduction_denominator(const problem& pr) {
  if (pr.reduce != reduction::mean) return 1.0;
  if (pr.target == target_kind::probability) return static_cast<double>(pr.positions);
  if (!pr.weight) {  // a count of ones: exact in any order, no buffer and no pairwise pass
    std::int64_t counted = 0;
    pr.for_each_offset(pr.target_position_strides, [&](std::int64_t, std::int64_t off) {
      counted += pr.target_index[off] != pr.ignore_index;
    });
    return static_cast<double>(counted);
  }
  double* w = position_scratch(1, pr.positions);
  pr.for_each_offset(pr.target_position_strides, [&](std::int64_t p, std::int64_t off) {
    const std::int64_t t = pr.target_index[off];
    w[p] = t == pr.ignore_index ? 0.0 : pr.weight_wide(t);
  });
  return pairwise_sum(w, static_cast<std::size_t>(pr.positions));
}

inline void zero_row(const problem& pr, float* g) {
  for (std::int64_t c = 0; c < pr.classes; ++c) pr.store_grad(g, c, 0.0);
}

// Writes the mean or sum of the per-position losses (fixed pairwise order).
// `denominator` is reduction_denominator(pr) when already known, else NaN.
inline void write_reduction(const problem& pr, const double* losses, double denominator) {
  const double total = pairwise_sum(losses, static_cast<std::size_t>(pr.positions));
  if (pr.reduce == reduction::sum) {
    pr.store_reduced(total);
    return;
  }
  const double d = std::isnan(denominator) ? reduction_denominator(pr) : denominator;
  // PyTorch divides the two smoothing terms by W separately: with W = 0 the
  // (1-eps) part is 0/0 whatever the smoothing part is.
  const bool smoothed_zero_weight =
      d == 0.0 && pr.target == target_kind::index && pr.label_smoothing > 0.0;
  pr.store_reduced(smoothed_zero_weight ? std::numeric_limits<double>::quiet_NaN() : total / d);
}

// Runs f(i) for i in [0, n) in order on the calling thread; with a reserve
// step, runs it first (it takes the scratch f will use: openmp's loop runs it
// on every thread of the team before any f); with a finish step, runs it
// after the last f (what f left for later on this thread).
struct serial_loop {
  template <class F>
  void operator()(std::int64_t n, F&& f) const {
    for (std::int64_t i = 0; i < n; ++i) f(i);
  }
  template <class F, class R>
  void operator()(std::int64_t n, F&& f, R&& reserve) const {
    reserve();
    (*this)(n, f);
  }
  template <class F, class R, class E>
  void operator()(std::int64_t n, F&& f, R&& reserve, E&& finish) const {
    (*this)(n, f, reserve);
    finish();
  }
};

// Where the positions' losses go: the loss tensor (reduction none) or this
// thread's scratch, reduced in a fixed pairwise order by finish(); and the
// mean's denominator the gradients are scaled by.
class position_losses {
 public:
  position_losses(const problem& pr, bool with_grad)
      : pr_(pr),
        with_grad_(with_grad),
        denominator_(with_grad ? reduction_denominator(pr) : 1.0),
        none_(pr.reduce == reduction::none),
        losses_(none_ ? nullptr : position_scratch(0, pr.positions)) {}

  // 1 without a gradient (the reduction computes it when it needs it).
  double denominator() const { return denominator_; }
  bool none() const { return none_; }
  void store(std::int64_t p, double l) const {
    if (none_) pr_.store_loss(p, l);
    else losses_[p] = l;
  }
  void finish() const {
    if (!none_)
      write_reduction(pr_, losses_, with_grad_ ? denominator_ : std::numeric_limits<double>::quiet_NaN());
  }

 private:
  const problem& pr_;
  bool with_grad_;
  double denominator_;
  bool none_;
  double* losses_;
};

// The gradient's scale upstream / D is infinite when the mean's denominator
// is 0 (every counted target has weight 0) or the upstream gradient is. An
// entry is then that infinity times the exact unscaled value v_j = p_j A -
// b_j (b_j = w_j q'_j, A = Σ b), NaN only where v_j is exactly 0. A kernel
// computes v_j in floating point, where it can underflow to 0 although it is
// not 0 (p_j underflows for x_j far below the max; p_j A - b_j cancels to
// below the smallest double for the max class), and 0 · inf gives NaN. The
// sign of v_j decides instead:
//   S v_j = e_j (A - b_j) - b_j Σ_{i≠j} e_i,   e_i = e^{x_i - m},
// two terms compared through their logarithms, which do not underflow.
// infinite_scale_classes lists the classes and signs (read before an
// in-place gradient overwrites the logits); infinite_scale_fix turns the NaN
// entries among them into ±inf after the row's gradient.
struct infinite_scale_row {
  std::vector<std::int64_t> classes;
  std::vector<double> signs;  // sign(scale · v_j), ±1
};

// sign(v_j) from ej_log = x_j - m, A, b_j and rest_log = log Σ_{i≠j} e_i
// (-inf when every other class is -inf); 0 when v_j is 0 or too close to 0
// for double logarithms to tell.
inline double cancellation_sign(double ej_log, double A, double bj, double rest_log) {
  const double P = A - bj;
  const int sp = P > 0 ? 1 : P < 0 ? -1 : 0;
  const int sn = rest_log > -std::numeric_limits<double>::infinity() ? (bj > 0 ? 1 : bj < 0 ? -1 : 0) : 0;
  if (sp == 0 && sn == 0) return 0.0;
  if (sp != sn) return sp != 0 ? sp : -sn;  // opposite signs, or one term 0
  const double lp = ej_log + std::log(std::fabs(P)), ln = std::log(std::fabs(bj)) + rest_log;
  const double tol = 0x1p-30 * std::max({1.0, std::fabs(lp), std::fabs(ln)});
  if (lp > ln + tol) return sp;
  if (ln > lp + tol) return -sn;
  return 0.0;
}

// Classes [0, n) of a row known to hold no NaN or +inf: x_of(j) = x_j,
// b_of(j) = b_j, mass = A, m the row max, rest_log_of(j) = log Σ_{i≠j} e_i.
template <class X, class B, class R>
infinite_scale_row infinite_scale_classes(std::int64_t n, double scale, double mass, double m, X&& x_of, B&& b_of,
                                          R&& rest_log_of) {
  infinite_scale_row r;
  if (!std::isinf(scale) || std::isnan(mass)) return r;
  for (std::int64_t j = 0; j < n; ++j) {
    if (!(x_of(j) > -std::numeric_limits<double>::infinity())) continue;
    const double sv = cancellation_sign(x_of(j) - m, mass, b_of(j), rest_log_of(j));
    if (sv == 0.0) continue;
    r.classes.push_back(j);
    r.signs.push_back(scale > 0 ? sv : -sv);
  }
  return r;
}

// The same for row p of a problem (every class; weights, targets, smoothing).
inline infinite_scale_row infinite_scale_classes(const problem& pr, std::int64_t p, double scale) {
  if (!std::isinf(scale)) return {};
  const std::int64_t C = pr.classes;
  const float* x = pr.logits_row(p);
  auto x_of = [&](std::int64_t j) { return pr.load_class_wide(x, j, pr.logits_class_stride); };
  double m = -std::numeric_limits<double>::infinity();
  std::int64_t k = 0;
  for (std::int64_t j = 0; j < C; ++j) {
    if (std::isnan(x_of(j)) || x_of(j) == std::numeric_limits<double>::infinity()) return {};  // a NaN row
    if (x_of(j) > m) m = x_of(j), k = j;
  }
  if (!(m > -std::numeric_limits<double>::infinity())) return {};
  const double eps_c = pr.label_smoothing / static_cast<double>(C), omeps = 1.0 - pr.label_smoothing;
  const float* q = pr.target == target_kind::probability ? pr.target_row(p) : nullptr;
  const std::int64_t t = q ? -1 : pr.target_at(p);
  auto b_of = [&](std::int64_t j) {
    const double qj = q ? pr.load_class_wide(q, j, pr.target_class_stride) : (j == t ? 1.0 : 0.0);
    return pr.weight_wide(j) * (omeps * qj + eps_c);
  };
  double mass = 0.0, S = 0.0, m2 = -std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j < C; ++j) {
    mass += b_of(j);
    S += std::exp(x_of(j) - m);
    if (j != k) m2 = std::max(m2, x_of(j));
  }
  // log Σ_{i≠k} e_i without underflow: shifted by the second largest logit.
  double rest_k = -std::numeric_limits<double>::infinity();
  if (m2 > -std::numeric_limits<double>::infinity()) {
    double s2 = 0.0;
    for (std::int64_t j = 0; j < C; ++j)
      if (j != k) s2 += std::exp(x_of(j) - m2);
    rest_k = (m2 - m) + std::log(s2);
  }
  // Any other class: Σ_{i≠j} e_i >= e_k = 1, no underflow.
  auto rest_log_of = [&](std::int64_t j) { return j == k ? rest_k : std::log(S - std::exp(x_of(j) - m)); };
  return infinite_scale_classes(C, scale, mass, m, x_of, b_of, rest_log_of);
}

// g: the gradient entries of the row's classes [0, n) (class stride gs).
inline void infinite_scale_fix(const problem& pr, const infinite_scale_row& r, float* g, std::int64_t gs) {
  for (std::size_t i = 0; i < r.classes.size(); ++i) {
    const std::int64_t j = r.classes[i];
    const double v = problem::load_wide(g, j * gs, pr.type);
    if (std::isnan(v)) problem::store(g, j * gs, r.signs[i] * std::numeric_limits<double>::infinity(), pr.type);
  }
}

// The per-position driver: ignored positions get loss 0 and a zero gradient
// row (NaN logits included); counted ones row(p, grad_row, grad_scale), the
// scale being the upstream gradient over the mean's denominator; then the
// reduction. loop(n, f, reserve, finish) runs reserve() on each thread it
// uses, then f(0..n-1), possibly in parallel (each position writes only its
// own outputs), then finish() on each of those threads.
template <class Loop, class Reserve, class Row, class Finish>
void run_positions(const problem& pr, bool with_grad, Loop&& loop, Reserve&& reserve, Row&& row,
                   Finish&& finish) {
  const position_losses out(pr, with_grad);
  loop(pr.positions, [&](std::int64_t p) {
    float* g = with_grad ? pr.grad_row(p) : nullptr;
    double l = 0.0;
    if (!pr.counted(p)) {
      if (g) zero_row(pr, g);
    } else {
      const double scale = g ? static_cast<double>(pr.upstream_at(p)) / out.denominator() : 0.0;
      const infinite_scale_row fix = g ? infinite_scale_classes(pr, p, scale) : infinite_scale_row{};
      l = row(p, g, scale);
      if (!fix.classes.empty()) infinite_scale_fix(pr, fix, g, pr.grad_class_stride);
    }
    out.store(p, l);
  }, reserve, finish);
  out.finish();
}

template <class Loop, class Reserve, class Row>
void run_positions(const problem& pr, bool with_grad, Loop&& loop, Reserve&& reserve, Row&& row) {
  run_positions(pr, with_grad, loop, reserve, row, [] {});
}

// run_positions in order on the calling thread, for kernels whose row is
// row(problem, p, grad_row, grad_scale).
template <class Row>
void run_rows(const problem& pr, bool with_grad, Row&& row) {
  run_positions(pr, with_grad, serial_loop{}, [] {},
                [&](std::int64_t p, float* g, double scale) { return row(pr, p, g, scale); });
}

}  // namespace xent

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

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "pairwise_sum.hpp"
#include "scratch.hpp"
#include "xent/problem.hpp"

namespace xent {

// D in docs/design.md §2: Σ weights of counted positions (index targets), the
// number of positions (probability targets), 1 for sum and none.
inline double reduction_denominator(const problem& pr) {
  if (pr.reduce != reduction::mean) return 1.0;
  if (pr.target == target_kind::probability) return static_cast<double>(pr.positions);
  double* w = position_scratch(1, pr.positions);
  pr.for_each_offset(pr.target_position_strides, [&](std::int64_t p, std::int64_t off) {
    const std::int64_t t = pr.target_index[off];
    w[p] = t == pr.ignore_index ? 0.0 : static_cast<double>(pr.weight_at(t));
  });
  return pairwise_sum(w, static_cast<std::size_t>(pr.positions));
}

inline void zero_row(const problem& pr, float* g) {
  for (std::int64_t c = 0; c < pr.classes; ++c) g[c * pr.grad_class_stride] = 0.0f;
}

// Writes the mean or sum of the per-position losses (fixed pairwise order).
// `denominator` is reduction_denominator(pr) when already known, else NaN.
inline void write_reduction(const problem& pr, const double* losses, double denominator) {
  const double total = pairwise_sum(losses, static_cast<std::size_t>(pr.positions));
  if (pr.reduce == reduction::sum) {
    *pr.loss = static_cast<float>(total);
    return;
  }
  const double d = std::isnan(denominator) ? reduction_denominator(pr) : denominator;
  // PyTorch divides the two smoothing terms by W separately: with W = 0 the
  // (1-eps) part is 0/0 whatever the smoothing part is.
  const bool smoothed_zero_weight =
      d == 0.0 && pr.target == target_kind::index && pr.label_smoothing > 0.0;
  *pr.loss = smoothed_zero_weight ? std::numeric_limits<float>::quiet_NaN()
                                  : static_cast<float>(total / d);
}

template <class Row>
void run_rows(const problem& pr, bool with_grad, Row&& row) {
  const double denominator = with_grad ? reduction_denominator(pr) : 1.0;
  const bool none = pr.reduce == reduction::none;
  double* losses = none ? nullptr : position_scratch(0, pr.positions);
  for (std::int64_t p = 0; p < pr.positions; ++p) {
    float* g = with_grad ? pr.grad_row(p) : nullptr;
    double l = 0.0;
    if (!pr.counted(p)) {
      if (g) zero_row(pr, g);  // ignored rows contribute nothing, NaN logits included
    } else {
      l = row(pr, p, g, g ? static_cast<double>(pr.upstream_at(p)) / denominator : 0.0);
    }
    if (none) *pr.loss_at(p) = static_cast<float>(l);
    else losses[p] = l;
  }
  if (!none) write_reduction(pr, losses, with_grad ? denominator : std::numeric_limits<double>::quiet_NaN());
}

}  // namespace xent

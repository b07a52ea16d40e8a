// The (N, C, d...) layout for the `simd` and `openmp` kernels: a class's
// values for consecutive positions are adjacent, so positions go in vector
// lanes (simd::column_rows) instead of gathering each row. Index targets
// without label smoothing and C <= simd::kColumnMaxClasses; other problems
// take the row path (simd_row.hpp), which gives the same bits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "row_driver.hpp"
#include "simd_primitives.hpp"
#include "xent/problem.hpp"

namespace xent::simd {

// Does the column kernel take this problem? The last position dimension must
// have stride 1 in the logits (and the gradient) while the classes do not.
inline bool column_layout(const problem& pr, bool with_grad) {
  if (pr.target != target_kind::index || pr.label_smoothing > 0.0) return false;
  if (pr.classes < 1 || pr.classes > kColumnMaxClasses) return false;
  if (pr.position_shape.empty() || pr.position_shape.back() < 2) return false;
  if (pr.logits_position_strides.back() != 1 || pr.logits_class_stride == 1) return false;
  return !with_grad || pr.grad_position_strides.back() == 1;
}

// run_rows (row_driver.hpp) for column_layout problems: groups of up to
// column_lanes() consecutive positions of one run of the last dimension.
// loop(n, f) runs f(0..n-1), possibly in parallel (each group writes only
// its own positions).
template <class Loop>
void run_columns(const problem& pr, bool with_grad, Loop&& loop) {
  constexpr std::int64_t kMaxLanes = 64;
  const double denominator = with_grad ? reduction_denominator(pr) : 1.0;
  const bool none = pr.reduce == reduction::none;
  double* losses = none ? nullptr : position_scratch(0, pr.positions);
  const std::int64_t run = pr.position_shape.back(), lanes = column_lanes();
  const std::int64_t per_run = (run + lanes - 1) / lanes;
  loop(pr.positions / run * per_run, [&](std::int64_t group) {
    const std::int64_t first = group / per_run * run + group % per_run * lanes;
    const std::int64_t count = std::min(lanes, group / per_run * run + run - first);
    // Positions of one run differ only in the last index: base offsets once,
    // then the last dimension's stride.
    const std::int64_t* t0 = pr.target_index + pr.offset(first, pr.target_position_strides);
    const std::int64_t ts = pr.target_position_strides.back();
    const float* u0 = pr.upstream ? pr.upstream + pr.offset(first, pr.upstream_position_strides) : nullptr;
    const std::int64_t us = pr.upstream ? pr.upstream_position_strides.back() : 0;
    std::int64_t target[kMaxLanes];
    double weight[kMaxLanes], scale[kMaxLanes], loss[kMaxLanes];
    for (std::int64_t k = 0; k < count; ++k) {
      const std::int64_t t = t0[k * ts];
      target[k] = t == pr.ignore_index ? -1 : t;
      weight[k] = target[k] < 0 ? 0.0 : static_cast<double>(pr.weight_at(t));
      const float up = u0 ? u0[k * us] : pr.upstream_scalar;
      scale[k] = with_grad && target[k] >= 0 ? static_cast<double>(up) / denominator : 0.0;
    }
    column_group g;
    g.x = pr.logits_row(first);
    g.xs = pr.logits_class_stride;
    g.classes = pr.classes;
    g.count = count;
    g.target = target;
    g.weight = weight;
    g.scale = scale;
    g.g = with_grad ? pr.grad_row(first) : nullptr;
    g.gs = pr.grad_class_stride;
    g.loss = loss;
    column_rows(g);
    if (none) {
      float* l0 = pr.loss_at(first);
      const std::int64_t ls = pr.loss_position_strides.back();
      for (std::int64_t k = 0; k < count; ++k) l0[k * ls] = static_cast<float>(loss[k]);
    } else {
      for (std::int64_t k = 0; k < count; ++k) losses[first + k] = loss[k];
    }
  });
  if (!none)
    write_reduction(pr, losses, with_grad ? denominator : std::numeric_limits<double>::quiet_NaN());
}

}  // namespace xent::simd

// The (N, C, d...) layout for the `simd` and `openmp` kernels: a class's
// values for consecutive positions are adjacent, so positions go in vector
// lanes (simd::column_rows) instead of gathering each row; rows of a few
// classes are transposed into that form. Index targets without label
// smoothing and C <= simd::kColumnMaxClasses; other problems take the row
// path (simd_row.hpp), which gives the same bits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "row_driver.hpp"
#include "simd_row_passes.hpp"
#include "simd_row.hpp"
#include "xent/kernel/problem.hpp"

namespace xent::simd {

// The (N, C, d...) layout, where consecutive positions of one class are
// adjacent: up to column_lanes() positions at once, one per vector lane.
// Index targets without label smoothing, C <= kColumnMaxClasses. Position
// k < count has logits x[k + c*xs], target class target[k] (< 0: ignored:
// loss 0 and a zero gradient row), weight[k] = w[target[k]] and gradient
// scale scale[k]; writes loss[k] (as row_engine::row returns it) and, when
// g != nullptr, g[k + c*gs]. Results are bitwise those of row_engine on the
// same row: the same operations in the same order.
constexpr std::int64_t kColumnMaxClasses = kStatsBlock;
// The column paths compute the fast numerics only; under relaxed numerics
// (`throughput`) they take only rows that keep the fast numerics there too
// (C <= kRelaxedAbove, simd_row.hpp), so any layout gives one result.
struct column_group {
  const float* x = nullptr;
  std::int64_t xs = 0;
  std::int64_t classes = 0;
  std::int64_t count = 0;
  const std::int64_t* target = nullptr;
  const double* weight = nullptr;
  const double* scale = nullptr;
  float* g = nullptr;
  std::int64_t gs = 0;
  double* loss = nullptr;
  // With a gradient: scratch of column_lanes() * classes floats each, where
  // the loss pass keeps e^{x - m} (value and error) for the gradient pass.
  float* kept_val = nullptr;
  float* kept_err = nullptr;
};
void column_rows(const column_group& group);
std::int64_t column_lanes();
// The gather path's transposes: rows[k] (k < count <= column_lanes()) a
// group's row, class c at rows[k][c * cs], into buf[c * lanes + k], and back.
void gather_columns(const float* const* rows, std::int64_t count, std::int64_t cs, std::int64_t C, float* buf);
void scatter_columns(const float* buf, float* const* rows, std::int64_t count, std::int64_t cs, std::int64_t C);

// Which column path takes this problem, if any:
//  lanes:  the last position dimension has stride 1 in the logits (and the
//          gradient) while the classes do not: the kernel reads in place.
//  gather: rows of few classes (C <= kGatherMaxClasses) in any other layout:
//          a group's rows are transposed into a small buffer first (and the
//          gradient back), which costs less than the row path's per-row work
//          (measured: 2x faster at C = 100, 3x slower at C = 1000).
enum class column_mode { none, lanes, gather };
constexpr std::int64_t kGatherMaxClasses = 128;
static_assert(kGatherMaxClasses <= kRelaxedAbove, "gathered rows keep the fast numerics under relaxed ones");

// num: the numerics of the kernel's rows (simd_row.hpp); relaxed rows (more
// than kRelaxedAbove classes) take the row path in every layout.
inline column_mode column_path(const problem& pr, bool with_grad, numerics num = numerics::fast) {
  if (pr.target != target_kind::index || pr.label_smoothing > 0.0) return column_mode::none;
  if (pr.type != dtype::f32) return column_mode::none;  // 16-bit: the row path widens rows
  if (pr.classes < 1 || pr.classes > kColumnMaxClasses) return column_mode::none;
  if (num == numerics::relaxed && pr.classes > kRelaxedAbove) return column_mode::none;
  if (!pr.position_shape.empty() && pr.position_shape.back() >= 2 &&
      pr.logits_position_strides.back() == 1 && pr.logits_class_stride != 1 &&
      (!with_grad || pr.grad_position_strides.back() == 1))
    return column_mode::lanes;
  if (pr.classes <= kGatherMaxClasses && pr.positions >= 2) return column_mode::gather;
  return column_mode::none;
}

// run_positions (row_driver.hpp) for column_path problems: groups of up to
// column_lanes() consecutive positions (lanes: of one run of the last
// dimension). loop(n, f, reserve) runs reserve() on each thread it uses, then
// f(0..n-1), possibly in parallel (each group writes only its own positions).
// All scratch is taken before the first output is written.
template <class Loop>
void run_columns(const problem& pr, bool with_grad, column_mode mode, Loop&& loop) {
  const position_losses out(pr, with_grad);
  const double denominator = out.denominator();
  const bool gather = mode == column_mode::gather;
  const std::int64_t run = gather ? pr.positions : pr.position_shape.back(), lanes = column_lanes();
  const std::int64_t per_run = (run + lanes - 1) / lanes, C = pr.classes;
  auto reserve = [&] {
    if (gather && pr.positions > 0) {
      row_scratch(kRowX, lanes * C);
      row_scratch(kRowG, lanes * C);
    }
    if (with_grad && pr.positions > 0) {
      row_scratch(kRowV, lanes * C);
      row_scratch(kRowE, lanes * C);
    }
  };
  // Per position set-up is a fifth of a call at C = 10: what every position
  // shares is computed once (the scale of a scalar upstream gradient, the
  // same division), and positions along one dimension are addressed by strides.
  const double shared_scale = static_cast<double>(pr.upstream_scalar) / denominator;
  const bool one_dim = pr.position_shape.size() == 1;
  loop(pr.positions / run * per_run, [&](std::int64_t group) {
    const std::int64_t first = group / per_run * run + group % per_run * lanes;
    const std::int64_t count = std::min(lanes, group / per_run * run + run - first);
    std::int64_t target[kMaxLanes];
    double weight[kMaxLanes], scale[kMaxLanes], loss[kMaxLanes];
    // up: the position's upstream value (float32: column paths take float32
    // problems only), nullptr for a scalar upstream.
    auto set_lane = [&](std::int64_t k, std::int64_t t, const float* up) {
      target[k] = t == pr.ignore_index ? -1 : t;
      weight[k] = target[k] < 0 ? 0.0 : static_cast<double>(pr.weight_at(t));
      scale[k] = !with_grad || target[k] < 0 ? 0.0
                 : up                        ? static_cast<double>(*up) / denominator
                                             : shared_scale;
    };
    column_group g;
    g.classes = C;
    g.count = count;
    g.target = target;
    g.weight = weight;
    g.scale = scale;
    g.loss = loss;
    if (with_grad) {
      g.kept_val = row_scratch(kRowV, lanes * C);
      g.kept_err = row_scratch(kRowE, lanes * C);
    }
    if (gather) {
      float* xbuf = row_scratch(kRowX, lanes * C);
      float* gbuf = row_scratch(kRowG, lanes * C);
      const float* xrow[kMaxLanes];
      float* grow[kMaxLanes];
      if (one_dim) {
        const float* x0 = pr.logits_row(first);
        float* g0 = with_grad ? pr.grad_row(first) : nullptr;
        const std::int64_t* t0 = pr.target_index + pr.offset(first, pr.target_position_strides);
        const float* u0 = pr.upstream ? pr.upstream + pr.offset(first, pr.upstream_position_strides) : nullptr;
        const std::int64_t xs = pr.logits_position_strides[0], gs = pr.grad_position_strides[0];
        const std::int64_t ts = pr.target_position_strides[0], us = pr.upstream_position_strides[0];
        for (std::int64_t k = 0; k < count; ++k) {
          xrow[k] = x0 + k * xs;
          if (with_grad) grow[k] = g0 + k * gs;
          set_lane(k, t0[k * ts], u0 ? u0 + k * us : nullptr);
        }
      } else {
        for (std::int64_t k = 0; k < count; ++k) {
          xrow[k] = pr.logits_row(first + k);
          if (with_grad) grow[k] = pr.grad_row(first + k);
          const float* up = pr.upstream ? pr.upstream + pr.offset(first + k, pr.upstream_position_strides) : nullptr;
          set_lane(k, pr.target_at(first + k), up);
        }
      }
      gather_columns(xrow, count, pr.logits_class_stride, C, xbuf);
      g.x = xbuf;
      g.xs = lanes;
      g.g = with_grad ? gbuf : nullptr;
      g.gs = lanes;
      column_rows(g);
      if (with_grad) scatter_columns(gbuf, grow, count, pr.grad_class_stride, C);
      for (std::int64_t k = 0; k < count; ++k) out.store(first + k, loss[k]);
      return;
    }
    // Positions of one run differ only in the last index: base offsets once,
    // then the last dimension's stride.
    const std::int64_t* t0 = pr.target_index + pr.offset(first, pr.target_position_strides);
    const std::int64_t ts = pr.target_position_strides.back();
    const float* u0 = pr.upstream ? pr.upstream + pr.offset(first, pr.upstream_position_strides) : nullptr;
    const std::int64_t us = pr.upstream ? pr.upstream_position_strides.back() : 0;
    for (std::int64_t k = 0; k < count; ++k) set_lane(k, t0[k * ts], u0 ? u0 + k * us : nullptr);
    g.x = pr.logits_row(first);
    g.xs = pr.logits_class_stride;
    g.g = with_grad ? pr.grad_row(first) : nullptr;
    g.gs = pr.grad_class_stride;
    column_rows(g);
    if (out.none()) {  // one run: the last dimension's stride
      float* l0 = pr.loss_at(first);
      const std::int64_t ls = pr.loss_position_strides.back();
      for (std::int64_t k = 0; k < count; ++k) l0[k * ls] = static_cast<float>(loss[k]);
    } else {
      for (std::int64_t k = 0; k < count; ++k) out.store(first + k, loss[k]);
    }
  }, reserve);
  out.finish();
}

}  // namespace xent::simd

#include "xent/kernel/widened_problem.hpp"

#include "sixteen_bit.hpp"

namespace xent {

widened_problem::widened_problem(const problem& pr, bool with_grad) : f_(pr), with_grad_(with_grad) {
  const std::int64_t P = pr.positions, C = pr.classes;
  const auto n = static_cast<std::size_t>(P * C);
  const bool none = pr.reduce == reduction::none;
  // Contiguous strides of the copies: row-major over the position shape.
  auto contiguous = [&](std::int64_t unit) {
    std::vector<std::int64_t> st(pr.position_shape.size());
    for (std::size_t d = st.size(); d-- > 0;) {
      st[d] = unit;
      unit *= pr.position_shape[d];
    }
    return st;
  };
  x_.resize(n);
  q_.resize(pr.target == target_kind::probability ? n : 0);
  w_.resize(pr.weight ? static_cast<std::size_t>(C) : 0);
  g_.resize(with_grad && pr.grad != pr.logits ? n : 0);
  loss_.resize(pr.out_type == dtype::f32 ? 0 : none ? static_cast<std::size_t>(P) : 1);
  up_.resize(none && pr.upstream ? static_cast<std::size_t>(P) : 0);

  f_.type = f_.out_type = dtype::f32;
  // Rows widened by the vectorised conversions (exact).
  auto widen_rows = [&](const float* base, const std::vector<std::int64_t>& strides, std::int64_t stride,
                        const floats& to) {
    pr.for_each_offset(strides, [&](std::int64_t p, std::int64_t off) {
      const auto* row = reinterpret_cast<const std::uint16_t*>(base) + off;
      if (pr.type == dtype::f32) {
        for (std::int64_t c = 0; c < C; ++c) to[static_cast<std::size_t>(p * C + c)] = base[off + c * stride];
      } else {
        sixteen::widen_row(row, stride, to.data() + p * C, C, pr.type);
      }
    });
  };
  widen_rows(pr.logits, pr.logits_position_strides, pr.logits_class_stride, x_);
  f_.logits = x_.data();
  f_.logits_class_stride = 1;
  f_.logits_position_strides = contiguous(C);
  if (!q_.empty()) {
    widen_rows(pr.target_prob, pr.target_position_strides, pr.target_class_stride, q_);
    f_.target_prob = q_.data();
    f_.target_class_stride = 1;
    f_.target_position_strides = contiguous(C);
  }
  if (pr.weight) {
    for (std::int64_t c = 0; c < C; ++c) w_[static_cast<std::size_t>(c)] = pr.weight_at(c);
    f_.weight = w_.data();
    f_.weight_stride = 1;
  }
  if (!up_.empty()) {
    for (std::int64_t p = 0; p < P; ++p) up_[static_cast<std::size_t>(p)] = pr.upstream_at(p);
    f_.upstream = up_.data();
    f_.upstream_position_strides = contiguous(1);
  }
  if (with_grad) {
    f_.grad = pr.grad == pr.logits ? x_.data() : g_.data();
    f_.grad_class_stride = 1;
    f_.grad_position_strides = contiguous(C);
  }
  if (!loss_.empty()) {
    f_.loss = loss_.data();
    if (none) f_.loss_position_strides = contiguous(1);
  }
}

void widened_problem::store(const problem& pr) const {
  const std::int64_t P = pr.positions, C = pr.classes;
  if (!loss_.empty()) {
    if (pr.reduce == reduction::none)
      for (std::int64_t p = 0; p < P; ++p) pr.store_loss(p, loss_[static_cast<std::size_t>(p)]);
    else
      pr.store_reduced(loss_[0]);
  }
  if (!with_grad_) return;
  for (std::int64_t p = 0; p < P; ++p) {
    float* row = pr.grad_row(p);
    const float* v = f_.grad + p * C;
    if (pr.type == dtype::f32)
      for (std::int64_t c = 0; c < C; ++c) row[c * pr.grad_class_stride] = v[c];
    else
      sixteen::narrow_row(v, reinterpret_cast<std::uint16_t*>(row), pr.grad_class_stride, C, pr.type);
  }
}

}  // namespace xent

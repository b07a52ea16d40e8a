#include "xent/kernel/widened_problem.hpp"

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
  pr.for_each_offset(pr.logits_position_strides, [&](std::int64_t p, std::int64_t off) {
    for (std::int64_t c = 0; c < C; ++c)
      x_[static_cast<std::size_t>(p * C + c)] = problem::load(pr.logits, off + c * pr.logits_class_stride, pr.type);
  });
  f_.logits = x_.data();
  f_.logits_class_stride = 1;
  f_.logits_position_strides = contiguous(C);
  if (!q_.empty()) {
    pr.for_each_offset(pr.target_position_strides, [&](std::int64_t p, std::int64_t off) {
      for (std::int64_t c = 0; c < C; ++c)
        q_[static_cast<std::size_t>(p * C + c)] =
            problem::load(pr.target_prob, off + c * pr.target_class_stride, pr.type);
    });
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
    for (std::int64_t c = 0; c < C; ++c) pr.store_grad(row, c, v[c]);
  }
}

}  // namespace xent

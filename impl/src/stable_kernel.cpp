// `stable`: scalar, max-shifted, accurate (DESIGN.md §3, Blanchard, Higham &
// Higham 2021). Everything after the float inputs is in double:
//   loss   = (m - x_t) + log1p(Σ_{j≠k} e^{x_j - m}),  m = x_k the row max
//   1 - p_t = Σ_{j≠t} p_j, never computed as a difference
// so the loss keeps relative accuracy as it goes to 0 (dominant target) and
// the target's gradient entry does not cancel.
#include <cmath>
#include <limits>

#include "kernels.hpp"
#include "row_driver.hpp"

namespace xent {
namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

struct row_stats {
  double max = 0.0;       // m
  std::int64_t argmax = 0;
  double rest = 0.0;      // Σ_{j≠k} e^{x_j - m}
  bool undefined = false; // a NaN or +inf logit, or every logit -inf: loss and gradient NaN
};

row_stats stats(const float* x, std::int64_t C, std::int64_t stride) {
  row_stats s;
  float m = -std::numeric_limits<float>::infinity();
  std::int64_t k = 0;
  for (std::int64_t j = 0; j < C; ++j) {
    const float v = x[j * stride];
    if (std::isnan(v)) {
      s.undefined = true;
      return s;
    }
    if (v > m) {
      m = v;
      k = j;
    }
  }
  if (std::isinf(m)) {  // +inf: inf - inf; -inf: every class impossible
    s.undefined = true;
    return s;
  }
  s.max = m;
  s.argmax = k;
  double rest = 0.0;
  for (std::int64_t j = 0; j < C; ++j)
    if (j != k) rest += std::exp(static_cast<double>(x[j * stride]) - s.max);
  s.rest = rest;
  return s;
}

double row(const problem& pr, std::int64_t p, float* g, double scale) {
  const std::int64_t C = pr.classes;
  const float* x = pr.logits_row(p);
  const std::int64_t xs = pr.logits_class_stride;
  const row_stats st = stats(x, C, xs);
  const std::int64_t gs = pr.grad_class_stride;
  if (st.undefined) {
    if (g)
      for (std::int64_t j = 0; j < C; ++j) g[j * gs] = static_cast<float>(nan);
    return nan;
  }
  const double m = st.max;
  const double log_sum = std::log1p(st.rest);  // lse - m
  const double sum = 1.0 + st.rest;            // Σ e^{x_j - m}
  const double eps = pr.label_smoothing;
  const double eps_c = eps / static_cast<double>(C);
  auto w = [&](std::int64_t c) { return static_cast<double>(pr.weight_at(c)); };
  auto gap = [&](std::int64_t c) { return m - static_cast<double>(x[c * xs]); };  // >= 0

  if (pr.target == target_kind::index) {
    const std::int64_t t = pr.target_at(p);
    const double wt = w(t);
    double loss = wt * (gap(t) + log_sum);
    double weight_total = 0.0;  // Σ_c w_c, needed with smoothing
    if (eps > 0.0) {
      double smooth = 0.0;  // Σ_c w_c (lse - x_c), each term >= 0: no cancellation
      for (std::int64_t c = 0; c < C; ++c) {
        smooth += w(c) * (gap(c) + log_sum);
        weight_total += w(c);
      }
      loss = (1.0 - eps) * loss + eps_c * smooth;
    }
    if (g) {
      // 1 - p_t as Σ_{j≠t} p_j: for t the argmax it is exactly `rest`.
      const double e_t = std::exp(-gap(t));
      const double others = t == st.argmax ? st.rest : sum - e_t;
      for (std::int64_t j = 0; j < C; ++j) {
        double v;
        if (j == t) {
          v = -(1.0 - eps) * wt * (others / sum);
          if (eps > 0.0) v += eps_c * ((e_t / sum) * weight_total - wt);
        } else {
          const double pj = std::exp(-gap(j)) / sum;
          v = (1.0 - eps) * wt * pj;
          if (eps > 0.0) v += eps_c * (pj * weight_total - w(j));
        }
        g[j * gs] = static_cast<float>(scale * v);
      }
    }
    return loss;
  }

  // Probability targets: q'_c = (1-eps) q_c + eps/C; l = Σ_c w_c q'_c (lse - x_c).
  const float* q = pr.target_row(p);
  const std::int64_t qs = pr.target_class_stride;
  auto qp = [&](std::int64_t c) { return (1.0 - eps) * static_cast<double>(q[c * qs]) + eps_c; };
  double loss = 0.0, mass = 0.0;  // mass = Σ_c w_c q'_c
  for (std::int64_t c = 0; c < C; ++c) {
    const double wq = w(c) * qp(c);
    loss += wq * gap(c);
    mass += wq;
  }
  loss += mass * log_sum;
  if (g)
    for (std::int64_t j = 0; j < C; ++j) {
      const double pj = std::exp(-gap(j)) / sum;
      g[j * gs] = static_cast<float>(scale * (pj * mass - w(j) * qp(j)));
    }
  return loss;
}

class stable_kernel final : public implementation {
 public:
  std::string name() const override { return "stable"; }
  std::string description() const override {
    return "scalar, max-shifted, log1p form, float64 accumulation, pairwise batch reduction";
  }
  xent::tier tier() const override { return tier::accurate; }
  std::string domain() const override { return "all inputs"; }
  void forward(const problem& p) const override { run_rows(p, false, row); }
  void forward_backward(const problem& p) const override { run_rows(p, true, row); }
};

}  // namespace

std::unique_ptr<implementation> make_stable_kernel() { return std::make_unique<stable_kernel>(); }

}  // namespace xent

// `stable`: scalar, max-shifted, accurate (docs/design.md §3, Blanchard, Higham &
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

  const bool index = pr.target == target_kind::index;
  const std::int64_t t = index ? pr.target_at(p) : -1;
  if (index && eps == 0.0) {
    const double wt = w(t);
    const double loss = wt * (gap(t) + log_sum);  // before g overwrites x (in-place)
    if (g) {
      // 1 - p_t as Σ_{j≠t} p_j: for t the argmax it is exactly `rest`.
      const double others = t == st.argmax ? st.rest : sum - std::exp(-gap(t));
      for (std::int64_t j = 0; j < C; ++j) {
        const double v = j == t ? -wt * (others / sum) : wt * (std::exp(-gap(j)) / sum);
        g[j * gs] = static_cast<float>(scale * v);
      }
    }
    return loss;
  }

  // Smoothed or probability targets: the loss is Σ_c b_c (lse - x_c) with
  // b_c = w_c q'_c, q' = (1-eps) q + eps/C (q one-hot at t for index targets).
  const float* q = index ? nullptr : pr.target_row(p);
  const std::int64_t qs = pr.target_class_stride;
  auto b = [&](std::int64_t c) {
    const double qc = index ? (c == t ? 1.0 : 0.0) : static_cast<double>(q[c * qs]);
    return w(c) * ((1.0 - eps) * qc + eps_c);
  };
  double loss = 0.0;
  double mass = 0.0;       // A = Σ_c b_c
  double mass_rest = 0.0;  // Σ_{c≠kb} b_c, kb the largest b: A - b_kb without cancellation
  std::int64_t kb = 0;
  for (std::int64_t c = 0; c < C; ++c) {
    const double bc = b(c);
    if (bc > b(kb)) {
      mass_rest += b(kb);
      kb = c;
    } else if (c != kb) {
      mass_rest += bc;
    }
    mass += bc;
  }
  if (index) {
    // PyTorch's form (1-eps) l + (eps/C) s, kept so that 0 * inf gives its NaN.
    double smooth = 0.0;  // Σ_c w_c (lse - x_c), each term >= 0: no cancellation
    for (std::int64_t c = 0; c < C; ++c) smooth += w(c) * (gap(c) + log_sum);
    loss = (1.0 - eps) * (w(t) * (gap(t) + log_sum)) + eps_c * smooth;
  } else {
    for (std::int64_t c = 0; c < C; ++c) loss += b(c) * gap(c);
    loss += mass * log_sum;
  }
  if (g) {
    // d l / d x_j = p_j A - b_j = p_j (A - b_j) - b_j (1 - p_j), both factors
    // without cancellation: 1 - p_j = Σ_{i≠j} e_i / S, A - b_j from mass_rest.
    // What remains is the true difference of the two terms.
    for (std::int64_t j = 0; j < C; ++j) {
      const double e_j = std::exp(-gap(j));
      const double not_j = j == st.argmax ? st.rest : sum - e_j;
      const double bj = b(j);
      const double mass_not_j = j == kb ? mass_rest : mass - bj;
      const double v = (e_j / sum) * mass_not_j - bj * (not_j / sum);
      g[j * gs] = static_cast<float>(scale * v);
    }
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

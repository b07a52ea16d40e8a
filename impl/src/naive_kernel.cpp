// `naive`: the textbook formula in float32, no max shift:
//   p_j = exp(x_j) / Σ_c exp(x_c),  l = -log(p_t),  dl/dx_j = p_j - δ_jt
// It is the baseline the report measures the others against. exp overflows
// above ~88.7 and underflows below ~-103, so its tier only holds inside the
// declared domain; outside it the loss becomes inf/NaN or 0 (the report shows
// where). The batch reduction is the shared one.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "kernels.hpp"
#include "row_driver.hpp"

namespace xent {
namespace {

// exp(x) is a normal float for x in [-87, 88.7]; the sum of C of them stays
// finite when every x <= 88 - ln C; p_c = exp(x_c) / sum stays a normal float
// when max - x_c <= 87 - ln C.
constexpr float domain_low = -87.0f;
float domain_high(std::int64_t C) { return 88.0f - std::log(static_cast<float>(C)); }
float domain_spread(std::int64_t C) { return 87.0f - std::log(static_cast<float>(C)); }

double row(const problem& pr, std::int64_t p, float* g, double scale) {
  const std::int64_t C = pr.classes;
  const float* x = pr.logits_row(p);
  const std::int64_t xs = pr.logits_class_stride;
  const float eps = static_cast<float>(pr.label_smoothing);
  const float eps_c = eps / static_cast<float>(C);
  float sum = 0.0f;
  for (std::int64_t c = 0; c < C; ++c) sum += std::exp(x[c * xs]);
  auto prob = [&](std::int64_t c) { return std::exp(x[c * xs]) / sum; };
  auto w = [&](std::int64_t c) { return pr.weight_at(c); };

  // Target distribution q'_c (index targets: one-hot smoothed).
  std::int64_t t = -1;
  if (pr.target == target_kind::index) t = pr.target_at(p);
  auto target_q = [&](std::int64_t c) {
    const float q = t >= 0 ? (c == t ? 1.0f : 0.0f) : pr.target_row(p)[c * pr.target_class_stride];
    return (1.0f - eps) * q + eps_c;
  };

  float loss = 0.0f;
  float mass = 0.0f;  // Σ_c w_c q'_c (index targets: Σ over the smoothing terms too)
  if (t >= 0 && eps == 0.0f) {
    loss = 0.0f - w(t) * std::log(prob(t));  // 0 - 0 is +0, -(0) would be -0
    mass = w(t);
  } else {
    for (std::int64_t c = 0; c < C; ++c) {
      const float wq = w(c) * target_q(c);
      if (wq != 0.0f) loss -= wq * std::log(prob(c));
      mass += wq;
    }
  }
  if (g) {
    const float s = static_cast<float>(scale);
    // Textbook gradient of Σ_c w_c q'_c (-log p_c): p_j Σ w q' - w_j q'_j.
    for (std::int64_t j = 0; j < C; ++j) {
      const float wq = (t >= 0 && eps == 0.0f) ? (j == t ? w(t) : 0.0f) : w(j) * target_q(j);
      g[j * pr.grad_class_stride] = s * (prob(j) * mass - wq);
    }
  }
  return loss;
}

class naive_kernel final : public implementation {
 public:
  std::string name() const override { return "naive"; }
  std::string description() const override {
    return "textbook -log(exp(x_t) / sum exp(x)) in float32, no max shift";
  }
  xent::tier tier() const override { return tier::naive; }
  std::string domain() const override {
    return "finite logits in [-87, 88 - ln C], max - min <= 87 - ln C (exp and p neither "
           "overflow nor underflow)";
  }
  std::optional<std::string> outside_domain(const problem& pr) const override {
    const float high = domain_high(pr.classes);
    for (std::int64_t p = 0; p < pr.positions; ++p) {
      if (!pr.counted(p)) continue;
      const float* x = pr.logits_row(p);
      float lo = 0.0f, hi = 0.0f;
      for (std::int64_t c = 0; c < pr.classes; ++c) {
        const float v = x[c * pr.logits_class_stride];
        if (!(v >= domain_low && v <= high)) {
          std::ostringstream m;
          m << "logit " << v << " at position " << p << ", class " << c << " is outside ["
            << domain_low << ", " << high << "]";
          return m.str();
        }
        lo = c == 0 ? v : std::min(lo, v);
        hi = c == 0 ? v : std::max(hi, v);
      }
      if (hi - lo > domain_spread(pr.classes)) {
        std::ostringstream m;
        m << "logits at position " << p << " spread over " << hi - lo << " > "
          << domain_spread(pr.classes);
        return m.str();
      }
    }
    return std::nullopt;
  }
  void forward(const problem& p) const override { run_rows(p, false, row); }
  void forward_backward(const problem& p) const override { run_rows(p, true, row); }
};

}  // namespace

std::unique_ptr<implementation> make_naive_kernel() { return std::make_unique<naive_kernel>(); }

}  // namespace xent

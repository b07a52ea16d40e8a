// Why is my loss exactly 0?
//  1. C = 1: softmax over one class is 1, log_softmax is 0, whatever the logits.
//  2. The classic bug (PyTorch issue #137188): a regression model's output
//     (N, 1) with float targets (N, 1). The targets have the logits' shape and
//     a floating dtype, so they are taken as class probabilities -- and with
//     one class the loss is 0. No error, no warning from PyTorch; `xent check`
//     warns (its diagnostics are shown here).
#include <cmath>
#include <string>
#include <vector>

#include "diagnostics.hpp"
#include "examples.hpp"
#include "fill.hpp"
#include "format.hpp"
#include "xent/kernel.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace xent::examples {
namespace {

std::string pad(std::string s, std::size_t n) {
  if (s.size() < n) s.append(n - s.size(), ' ');
  return s;
}

// Mean, per-position losses and gradient of every implementation: all must be 0.
void all_zero(outcome& o, const tensor_view& x, const tensor_view& t, std::int64_t n) {
  const ref::result r = ref::compute(make_problem(x, t, {}), false);
  o.say("  " + pad("reference", 12) + "mean " + ref::to_string(r.reduced, 6));
  o.expect(ref::to_double(r.reduced) == 0.0, "the reference loss is 0");
  options none;
  none.reduce = reduction::none;
  for (const implementation* impl : implementations()) {
    if (!impl->supported() || impl->peer()) continue;  // ours; peers are judged by the sweep and verify
    const float mean = cross_entropy(x, t, {}, impl);
    std::vector<float> per(static_cast<std::size_t>(n), -1.0f), grad(static_cast<std::size_t>(n), -1.0f);
    cross_entropy(x, t, view(per.data(), {n}), none, impl);
    float l = 0.0f;
    cross_entropy_forward_backward(x, t, view(&l, {}), view(grad.data(), {n, 1}), {}, nullptr, impl);
    float worst = 0.0f, worst_g = 0.0f;
    for (float v : per) worst = std::max(worst, std::fabs(v));
    for (float v : grad) worst_g = std::max(worst_g, std::fabs(v));
    o.say("  " + pad(impl->name(), 12) + "mean " + cli::float_text(mean) + ", max |per-sample loss| " +
          cli::float_text(worst) + ", max |gradient| " + cli::float_text(worst_g));
    o.expect(mean == 0.0f && worst == 0.0f && worst_g == 0.0f,
             impl->name() + ": loss and gradient are exactly 0");
  }
}

}  // namespace

outcome zero_loss() {
  constexpr std::int64_t N = 8;
  outcome o;
  o.name = "zero_loss";
  o.title = "why a loss is 0: C = 1, and float targets of the logits' shape taken as probabilities";

  fill::rng g(3);
  std::vector<float> x(N);
  for (auto& v : x) v = static_cast<float>(10.0 * g.normal());
  const tensor_view xv = view(x.data(), {N, 1});

  o.say("1) C = 1: logits [8, 1] (normal, sigma 10), class-index targets all 0");
  const std::vector<std::int64_t> t0(N, 0);
  all_zero(o, xv, view(t0.data(), {N}), N);

  o.say("2) regression targets: logits [8, 1], float32 targets [8, 1] (house prices in $100k)");
  std::vector<float> y(N);
  for (auto& v : y) v = static_cast<float>(std::round(g.uniform(0.5, 9.5) * 100.0) / 100.0);
  const tensor_view yv = view(y.data(), {N, 1});
  std::string ys;
  for (float v : y) ys += (ys.empty() ? "" : ", ") + cli::fmt(v, "%.2f");
  o.say("   targets [" + ys + "]: same shape as the logits and floating -> class probabilities");
  all_zero(o, xv, yv, N);

  o.say("   xent check warns:");
  const auto warnings = cli::diagnose(make_problem(xv, yv, {}), {N, 1});
  bool single = false, distribution = false;
  for (const auto& w : warnings) {
    o.say("   - " + w.message);
    single = single || w.code == "single_class";
    distribution = distribution || w.code == "not_distribution";
  }
  o.expect(single, "the C = 1 warning is given");
  o.expect(distribution, "the 'treated as class probabilities' warning is given");
  o.say("   fix: a regression loss (MSE) for continuous targets, or C >= 2 logits with int64 class "
        "indices of shape [N]");
  return o;
}

}  // namespace xent::examples

#ifndef XENT_EXAMPLES_LIBRARY
int main() { return xent::examples::main_of(xent::examples::zero_loss); }
#endif

// The headline example from the PyTorch tutorials: logits [3, 5] all zero,
// targets [1, 3, 2], mean reduction -> ln 5 = 1.6094379. Then random logits
// (fixed seed): every implementation against the reference.
#include <cmath>
#include <string>
#include <vector>

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

// Mean loss of every supported implementation against the reference.
void compare(outcome& o, const std::vector<float>& x, const std::vector<std::int64_t>& t,
             std::vector<std::int64_t> shape) {
  const tensor_view lv = view(x.data(), std::move(shape));
  const tensor_view tv = view(t.data(), {static_cast<std::int64_t>(t.size())});
  const ref::result r = ref::compute(make_problem(lv, tv, {}), false);
  o.say("  " + pad("reference", 12) + ref::to_string(r.reduced) + " (float32 " +
        cli::float_text(ref::to_float(r.reduced)) + ")");
  for (const implementation* impl : implementations()) {
    if (!impl->supported() || impl->peer()) continue;  // ours; peers are judged by the sweep and verify
    const float loss = cross_entropy(lv, tv, {}, impl);
    const double ulps = ref::ulp_error(loss, r.reduced);
    o.say("  " + pad(impl->name(), 12) + pad(cli::float_text(loss), 14) + cli::ulp_text(ulps) +
          " ulp (" + to_string(impl->tier()) + ")");
    o.expect(ulps <= mean_ulp_bound(impl->tier()),
             impl->name() + ": error " + cli::ulp_text(ulps) + " ulp exceeds its tier's bound " +
                 cli::ulp_text(mean_ulp_bound(impl->tier())));
  }
}

}  // namespace

outcome classic() {
  outcome o;
  o.name = "classic";
  o.title = "logits [3, 5] all zero, targets [1, 3, 2], mean -> ln 5 = 1.6094379";

  const std::vector<float> zeros(15, 0.0f);
  const std::vector<std::int64_t> targets{1, 3, 2};
  o.say("zero logits [3, 5], targets [1, 3, 2], reduction mean; ln 5 = " +
        cli::fmt(std::log(5.0), "%.17g"));
  const ref::result r =
      ref::compute(make_problem(view(zeros.data(), {3, 5}), view(targets.data(), {3}), {}), false);
  o.expect(std::fabs(ref::to_double(r.reduced) - std::log(5.0)) < 1e-15,
           "the reference gives ln 5");
  compare(o, zeros, targets, {3, 5});
  for (const implementation* impl : implementations())
    if (impl->supported() && !impl->peer()) {  // ours; peers are judged by the sweep and verify
      const float loss =
          cross_entropy(view(zeros.data(), {3, 5}), view(targets.data(), {3}), {}, impl);
      o.expect(std::fabs(loss - 1.6094379f) <= 2e-7f, impl->name() + " gives ln 5 = 1.6094379");
    }

  // Random logits, fixed seed: normal(0, 1), [64, 10], uniform targets.
  fill::rng g(42);
  std::vector<float> x(64 * 10);
  for (auto& v : x) v = static_cast<float>(g.normal());
  std::vector<std::int64_t> t(64);
  for (auto& v : t) v = g.below(10);
  o.say("random logits [64, 10] (normal, sigma 1, seed 42), random targets, reduction mean");
  compare(o, x, t, {64, 10});
  return o;
}

}  // namespace xent::examples

#ifndef XENT_EXAMPLES_LIBRARY
int main() { return xent::examples::main_of(xent::examples::classic); }
#endif

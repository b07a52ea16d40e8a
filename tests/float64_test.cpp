// stable's float64 results (docs/correct_rounding.md §8) against the
// multiprecision reference on the cases that defeat double-double: losses
// that are a float64 midpoint plus a term far below every error bound,
// results in float64's subnormal range, rows whose logits differ by a few
// subnormal units, and huge spreads; every result must be the reference
// rounded once to float64 (the reference at 4480 bits: float64's whole exponent range).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "xent/kernel.hpp"
#include "xent/kernel/statistics.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace {

using xent::reduction;

struct f64_case {
  std::string name;
  std::int64_t n, c;
  std::vector<double> x;
  std::vector<std::int64_t> t;
  double eps = 0.0;
  double upstream = 1.0;
};

// Every loss, reduction and gradient entry of stable equals the reference
// rounded once to float64.
void expect_correctly_rounded(const f64_case& k) {
  const xent::implementation* stable = xent::find_implementation("stable");
  ASSERT_NE(stable, nullptr);
  xent::reset_stable_rounding_statistics();
  for (const reduction r : {reduction::none, reduction::sum, reduction::mean}) {
    SCOPED_TRACE(k.name + " " + xent::to_string(r));
    xent::options o;
    o.reduce = r;
    o.label_smoothing = k.eps;
    const std::int64_t outs = r == reduction::none ? k.n : 1;
    std::vector<double> loss(static_cast<std::size_t>(outs)), grad(k.x.size());
    const std::vector<double> up(1, k.upstream);
    const auto lv = r == reduction::none ? xent::view(loss.data(), {k.n}) : xent::view(loss.data(), {});
    xent::tensor_view lw = lv;
    lw.data = loss.data();
    xent::tensor_view gv = xent::view(grad.data(), {k.n, k.c});
    gv.data = grad.data();
    const xent::tensor_view uv = xent::view(up.data(), {});
    const auto xv = xent::view(k.x.data(), {k.n, k.c});
    const auto tv = xent::view(k.t.data(), {k.n});
    xent::cross_entropy_forward_backward(xv, tv, lw, gv, o, &uv, stable);
    const xent::problem pr = xent::make_problem(xv, tv, o, lw, &gv, &uv);
    const xent::ref::result ref = xent::ref::compute(pr, true, 4480);
    for (std::int64_t i = 0; i < outs; ++i) {
      const xent::ref::exact& e = r == reduction::none ? ref.loss[static_cast<std::size_t>(i)] : ref.reduced;
      EXPECT_TRUE(xent::ref::correctly_rounded(loss[static_cast<std::size_t>(i)], e, xent::dtype::f64))
          << "loss " << i << ": got " << loss[static_cast<std::size_t>(i)] << ", reference "
          << xent::ref::to_string(e, 20);
    }
    for (std::size_t i = 0; i < grad.size(); ++i)
      EXPECT_TRUE(xent::ref::correctly_rounded(grad[i], ref.grad[i], xent::dtype::f64))
          << "grad " << i << ": got " << grad[i] << ", reference " << xent::ref::to_string(ref.grad[i], 20);
  }
  // Every result proven, none rounded on trust (the last resorts decided them).
  EXPECT_EQ(xent::stable_rounding_statistics().unresolved, 0u);
}

constexpr double inf = std::numeric_limits<double>::infinity();

TEST(float64, midpoint_loss_plus_a_tiny_log_term) {
  // d = m - x_t = a + b needs 54 bits (a float64 midpoint); L = log1p(e^-d) > 0.
  expect_correctly_rounded({"margin_120", 1, 3, {58.696221049982796, -61.014245019263008, -inf}, {1}});
  const double a = 300.0 + 0x1p-44, b = 300.0;  // d = 600 + 2^-44: ulp of [512, 1024) is 2^-43
  expect_correctly_rounded({"margin_600", 1, 2, {a, -b}, {1}});
  expect_correctly_rounded({"margin_900", 1, 2, {450.0, -(450.0 + 0x1p-44)}, {1}});
}

TEST(float64, subnormal_results) {
  // Gradient entries e^-d with d near 710..745: float64 subnormals.
  expect_correctly_rounded({"grad_subnormal", 2, 3, {0.0, -715.3, -740.1, 1.25, -709.9, -744.0}, {0, 2}});
  // A tiny upstream gradient scales every entry into the subnormals.
  expect_correctly_rounded({"tiny_upstream", 1, 3, {0.5, -0.25, 1.0}, {1}, 0.0, 0x1p-1060});
  expect_correctly_rounded({"tiny_loss", 1, 2, {0.0, -730.5}, {0}});
}

TEST(float64, logits_a_few_subnormal_units_apart) {
  const double s = std::numeric_limits<double>::denorm_min();
  expect_correctly_rounded({"subnormal_spread", 1, 3, {-0.0, s, 0.0}, {1}, 1.0});
  expect_correctly_rounded({"subnormal_spread_t", 1, 3, {3 * s, s, 0.0}, {0}});
  expect_correctly_rounded({"tiny_spread", 1, 4, {-2.5e-293, 0.0, 2.0e-317, 1e-300}, {0}, 1.0});
}

TEST(float64, subnormal_differences_with_smoothing) {
  const double s = std::numeric_limits<double>::denorm_min();
  expect_correctly_rounded({"eps1_8s", 1, 4, {8 * s, -0.0, 0.0, -0.0}, {0}, 1.0});
  expect_correctly_rounded({"eps1_pair", 1, 2, {-3 * s, 3 * s}, {0}, 1.0});
}

TEST(float64, huge_spreads) {
  expect_correctly_rounded({"huge", 2, 3, {1e300, -1e300, 0.0, -4.7e259, 1.2e260, 3.3e260}, {1, 0}});
}

}  // namespace

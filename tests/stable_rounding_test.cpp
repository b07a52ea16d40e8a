// stable's last resort (docs/correct_rounding.md §5.1) on losses whose
// rational part is a float32 midpoint and whose transcendental part L is far
// below every error floor: two-class rows [-b, a] with target 0, so the loss
// is d + log1p(e^-d), d = a + b exact and a midpoint, and 0 < log1p(e^-d) <
// e^-d. For margins beyond ~415 the double-double interval straddles the
// midpoint, and beyond 745 L underflows even there; the sign of L decides.
// The exact loss lies just above d, so the correct result is the float above
// d, and stable must prove it (no result counted unresolved).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "xent/kernel.hpp"
#include "xent/xent.hpp"

namespace {

using xent::reduction;

// The float just above (in magnitude: w > 0) the midpoint v.
float above(double v) {
  const auto f = static_cast<float>(v);
  return static_cast<double>(f) > v ? f : std::nextafter(f, INFINITY);
}

bool is_midpoint(double v) {
  const auto f = static_cast<float>(v);
  if (static_cast<double>(f) == v) return false;
  const float g = static_cast<double>(f) < v ? std::nextafter(f, INFINITY) : std::nextafter(f, -INFINITY);
  return static_cast<double>(f) + static_cast<double>(g) == 2 * v;
}

struct margin_case {
  float a, b;  // d = a + b: the ulp of d is twice that of a and b
};

// d in [256, 512) (L just below the floor 2^-600 at 430), [512, 1024) (L
// between 2^-1075 and 2^-600 at 600, underflowed at 900) and 2^21.
const margin_case cases[] = {
    {215.0f + 0x1p-16f, 215.0f},        // d = 430 + 2^-16 (ulp of [256, 512): 2^-15)
    {300.0f + 0x1p-15f, 300.0f},        // d = 600 + 2^-15 (ulp of [512, 1024): 2^-14)
    {450.0f, 450.0f + 0x1p-15f},        // d = 900 + 2^-15
    {1048576.0f, 1048576.0f + 0.125f},  // d = 2^21 + 2^-3 (ulp of [2^21, 2^22): 2^-2)
};

class stable_last_resort : public ::testing::TestWithParam<margin_case> {};

TEST_P(stable_last_resort, large_margin_midpoint_losses_are_proven) {
  const margin_case mc = GetParam();
  const double d = static_cast<double>(mc.a) + static_cast<double>(mc.b);
  ASSERT_TRUE(is_midpoint(d)) << d;
  const xent::implementation* stable = xent::find_implementation("stable");
  ASSERT_NE(stable, nullptr);
  const std::vector<float> x = {-mc.b, mc.a, -mc.b, mc.a};
  const std::vector<std::int64_t> t = {0, 0};
  for (const reduction r : {reduction::none, reduction::sum, reduction::mean}) {
    SCOPED_TRACE(xent::to_string(r));
    xent::options o;
    o.reduce = r;
    std::vector<float> loss(r == reduction::none ? 2 : 1), grad(4);
    xent::reset_stable_rounding_statistics();
    xent::cross_entropy_forward_backward(xent::view(x.data(), {2, 2}), xent::view(t.data(), {2}),
                                         xent::view(loss.data(), {static_cast<std::int64_t>(loss.size())}),
                                         xent::view(grad.data(), {2, 2}), o, nullptr, stable);
    const xent::rounding_statistics s = xent::stable_rounding_statistics();
    // sum: 2d + 2L, 2d a midpoint too; mean: d + L.
    EXPECT_EQ(loss[0], above(r == reduction::sum ? 2 * d : d)) << loss[0];
    EXPECT_EQ(loss.back(), loss[0]);
    EXPECT_EQ(s.unresolved, 0u) << "of " << s.results << " results, " << s.retried << " retried, " << s.exact
                                << " decided exactly";
    EXPECT_GT(s.exact, 0u);  // the case reached the last resort, as planted
  }
}

// The weighted mean: D = 2 w with w = 0.1f (not a dyadic fraction of few
// bits), so the bound on the remainder over D is scaled to a power of two
// before it meets D exactly; the mean is d + L again.
TEST_P(stable_last_resort, weighted_mean_of_large_margin_midpoints_is_proven) {
  const margin_case mc = GetParam();
  const double d = static_cast<double>(mc.a) + static_cast<double>(mc.b);
  const xent::implementation* stable = xent::find_implementation("stable");
  ASSERT_NE(stable, nullptr);
  const std::vector<float> x = {-mc.b, mc.a, -mc.b, mc.a}, w = {0.1f, 0.1f};
  const std::vector<std::int64_t> t = {0, 0};
  xent::options o;
  o.reduce = reduction::mean;
  o.weight = xent::view(w.data(), {2});
  float loss = 0.0f;
  xent::reset_stable_rounding_statistics();
  xent::cross_entropy(xent::view(x.data(), {2, 2}), xent::view(t.data(), {2}), xent::view(&loss, {}), o, stable);
  const xent::rounding_statistics s = xent::stable_rounding_statistics();
  EXPECT_EQ(loss, above(d)) << loss;
  EXPECT_EQ(s.unresolved, 0u) << "of " << s.results << " results, " << s.retried << " retried";
  EXPECT_GT(s.exact, 0u);
}

INSTANTIATE_TEST_SUITE_P(margins, stable_last_resort, ::testing::ValuesIn(cases));

// Rational rows (every logit the row's maximum or -inf, as at a zero-
// initialised output layer) with probability targets: p_j = 1/n on the n
// finite classes, so g_j = s (A/n - q_j) (0 - s q_j on a -inf class), and
// with n = 4 and n = 2 every entry is a dyadic rational that double holds
// exactly; the targets make some of them float32 midpoints (ties to even).
TEST(stable_rational_rows, probability_target_ties_are_decided_exactly) {
  const xent::implementation* stable = xent::find_implementation("stable");
  ASSERT_NE(stable, nullptr);
  const float inf = INFINITY, tiny = 0x1p-24f;
  const std::vector<float> x = {0, 0, 0, 0, -inf, 5, -inf, 5};
  const std::vector<float> q = {0, 1, tiny, 0, tiny, 1, 0, 0};
  const double n[2] = {4, 2};
  for (const reduction r : {reduction::none, reduction::sum, reduction::mean}) {
    SCOPED_TRACE(xent::to_string(r));
    xent::options o;
    o.reduce = r;
    std::vector<float> loss(r == reduction::none ? 2 : 1), grad(8);
    xent::reset_stable_rounding_statistics();
    xent::cross_entropy_forward_backward(xent::view(x.data(), {2, 4}), xent::view(q.data(), {2, 4}),
                                         xent::view(loss.data(), {static_cast<std::int64_t>(loss.size())}),
                                         xent::view(grad.data(), {2, 4}), o, nullptr, stable);
    const xent::rounding_statistics st = xent::stable_rounding_statistics();
    const double s = r == reduction::mean ? 0.5 : 1.0;  // mean: D = N = 2 (probability targets)
    int midpoints = 0;
    for (int p = 0; p < 2; ++p) {
      double A = 0.0;
      for (int c = 0; c < 4; ++c) A += static_cast<double>(q[static_cast<std::size_t>(4 * p + c)]);  // exact
      for (int c = 0; c < 4; ++c) {
        const auto i = static_cast<std::size_t>(4 * p + c);
        const double pj = std::isinf(x[i]) ? 0.0 : 1.0 / n[p];
        const double exact = s * (pj * A - static_cast<double>(q[i]));  // exact: dyadic, few bits
        midpoints += is_midpoint(exact);
        EXPECT_EQ(grad[i], static_cast<float>(exact)) << "row " << p << " class " << c << ": exact " << exact;
      }
    }
    EXPECT_GE(midpoints, 2);  // (1 + 2^-24)/4 and 1/2 + 2^-25 (halved by the mean: still midpoints)
    EXPECT_EQ(st.unresolved, 0u);
    EXPECT_GE(st.exact, static_cast<std::uint64_t>(midpoints));  // every tie proven exactly
  }
}

}  // namespace

// The compute floor computes what it claims on every Highway target of this
// CPU: max + Σ e^(x - m) of the row (a fast probe that skipped or broke the
// exponential would not be a floor of the real work).
#include "compute_floor.hpp"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

TEST(compute_floor, the_row_value_is_max_plus_the_sum_of_exponentials_on_every_target) {
  std::vector<float> x(4096);
  unsigned state = 7u;
  for (auto& v : x) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(state >> 8) / 16777216.0f * 60.0f - 30.0f;  // e^(x - m) down to e^-60
  }
  const float m = *std::max_element(x.begin(), x.end());
  double sum = 0.0;
  for (const float v : x) sum += std::exp(static_cast<double>(v) - m);
  const double expected = m + sum;
  int targets = 0;
  for (const std::int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    const float got = xent_bench::compute_floor_row(x.data(), x.size());
    EXPECT_NEAR(got, expected, 1e-5 * expected) << hwy::TargetName(target);
    ++targets;
  }
  hwy::SetSupportedTargetsForTest(0);
  EXPECT_GE(targets, 1);
}

}  // namespace

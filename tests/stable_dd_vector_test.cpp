// The float64 row's double-double exponentials in double lanes
// (impl/src/stable_dd_vector.hpp) on every Highway target of this CPU that
// has them: the same hi and lo bits as the scalar ddm::exp(-(m - x_j)) that
// the error bounds of docs/correct_rounding.md §4 are about, on margins
// that cover the reduction's interval ends, the lanes handed to the scalar
// code (beyond 660, the subnormal range, -inf), ties with the max and
// full-significand float64 values.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "double_double.hpp"
#include "stable_dd_vector.hpp"

namespace {

TEST(stable_dd_vector, same_bits_as_the_scalar_exponential_on_every_target) {
  const double m = 3.0000000000000004;  // a max with a full significand
  std::vector<double> x{m, m, std::nextafter(m, 0.0)};
  for (int i = 0; i <= 80000; ++i) x.push_back(m - i / 100.0 - i * 0x1p-40);
  for (int k = 0; k <= 1080; ++k)
    for (const double off : {-0.5, 0.5}) {
      const double v = m - (k + off) * 0.6931471805599453 / 32;
      for (const double w : {v, std::nextafter(v, -1e300), std::nextafter(v, 1e300)}) x.push_back(w);
    }
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> margin(0.0, 760.0);
  for (int i = 0; i < 40000; ++i) x.push_back(m - margin(rng));
  for (const double d : {659.999, 660.0, 660.001, 708.39, 745.1, 745.2, 745.3, 800.0, 1e-300, 5e-324})
    x.push_back(m - d);
  x.push_back(-std::numeric_limits<double>::infinity());
  const auto C = static_cast<std::int64_t>(x.size());
  std::vector<xent::ddm::dd> want(x.size());
  for (std::size_t j = 0; j < x.size(); ++j) {
    const double v = m - x[j];
    const xent::ddm::dd d = std::isfinite(v) ? xent::ddm::two_sum(m, -x[j]) : xent::ddm::dd{v, 0.0};
    want[j] = xent::ddm::exp(-d);
  }
  int covered = 0;
  for (const std::int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    if (!xent::stable_dd_vector::available()) continue;
    ++covered;
    // Every length 0..40 (the vector/tail split), then the whole row.
    for (std::int64_t n = 0; n <= 40; ++n) {
      std::vector<xent::ddm::dd> e(static_cast<std::size_t>(n));
      xent::stable_dd_vector::exponentials(x.data() + 100, n, m, e.data());
      for (std::int64_t j = 0; j < n; ++j) {
        const auto k = static_cast<std::size_t>(100 + j);
        ASSERT_EQ(std::bit_cast<std::uint64_t>(e[static_cast<std::size_t>(j)].hi), std::bit_cast<std::uint64_t>(want[k].hi));
        ASSERT_EQ(std::bit_cast<std::uint64_t>(e[static_cast<std::size_t>(j)].lo), std::bit_cast<std::uint64_t>(want[k].lo));
      }
    }
    std::vector<xent::ddm::dd> e(x.size());
    xent::stable_dd_vector::exponentials(x.data(), C, m, e.data());
    std::int64_t differ = 0, first = -1;
    for (std::size_t j = 0; j < x.size(); ++j)
      if (std::bit_cast<std::uint64_t>(e[j].hi) != std::bit_cast<std::uint64_t>(want[j].hi) ||
          std::bit_cast<std::uint64_t>(e[j].lo) != std::bit_cast<std::uint64_t>(want[j].lo))
        if (differ++ == 0) first = static_cast<std::int64_t>(j);
    EXPECT_EQ(differ, 0) << "first at x = " << (first >= 0 ? x[static_cast<std::size_t>(first)] : 0.0);
  }
  hwy::SetSupportedTargetsForTest(0);
  // On x86-64 the AVX2 and AVX-512 targets have FMA; a CPU without them
  // (SSE4 only) has nothing to compare, which the count says.
  RecordProperty("targets_compared", covered);
}

}  // namespace

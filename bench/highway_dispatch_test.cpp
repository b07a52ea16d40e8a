// The bench's detection of Highway kernels: the vectorised kernels are found
// (stable's float64 path included), the scalar one is not, and dispatch is left unpinned afterwards.
#include "highway_dispatch.hpp"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <stdexcept>
#include <string>

#include "xent/xent.hpp"

namespace {

const xent::implementation& impl(const char* name) {
  const xent::implementation* i = xent::find_implementation(name);
  if (!i) throw std::runtime_error(std::string("no implementation ") + name);
  return *i;
}

TEST(highway_dispatch, finds_the_vectorised_kernels_and_not_the_scalar_ones) {
  if (hwy::SupportedAndGeneratedTargets().size() < 2) GTEST_SKIP() << "this CPU has one Highway target: nothing to pin";
  EXPECT_TRUE(xent_bench::dispatches_on_highway(impl("simd")));
  EXPECT_TRUE(xent_bench::dispatches_on_highway(impl("openmp")));
  EXPECT_TRUE(xent_bench::dispatches_on_highway(impl("stable")));  // its float64 path (stable_vector)
  EXPECT_FALSE(xent_bench::dispatches_on_highway(impl("naive")));
  // Unpinned again: every target of the CPU is back.
  EXPECT_EQ(hwy::SupportedTargets() & HWY_TARGETS, [] {
    hwy::SetSupportedTargetsForTest(0);
    return hwy::SupportedTargets() & HWY_TARGETS;
  }());
}

}  // namespace

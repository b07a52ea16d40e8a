// Front-door behaviour on the classic examples, for every registered kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "xent/kernel.hpp"
#include "xent/xent.hpp"

namespace {

std::vector<const xent::implementation*> kernels() { return xent::implementations(); }

class api : public ::testing::TestWithParam<const xent::implementation*> {};

TEST_P(api, zero_logits_give_ln_C) {
  const std::vector<float> x(15, 0.0f);
  const std::vector<std::int64_t> t{1, 3, 2};
  const float loss = xent::cross_entropy(xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), {}, GetParam());
  EXPECT_FLOAT_EQ(loss, 1.6094379f);
}

// An empty batch may have any C: no row is computed, so no row scratch may be
// taken (found by fuzz_problem: an 8 TB allocation for N = 0, C = 2^40).
TEST_P(api, empty_batch_with_huge_class_count) {
  const std::vector<float> x(1, 0.0f);
  const std::vector<std::int64_t> t(1, 0);
  const std::int64_t C = std::int64_t{1} << 40;
  const auto logits = xent::view(x.data(), {0, C});
  const auto target = xent::view(t.data(), {0});
  // A class weight of C entries broadcast from one float (stride 0), as a
  // fuzzed input had it: nothing may visit its classes one by one.
  const float w = 2.0f;
  xent::tensor_view weight = xent::view(&w, {C});
  weight.strides = {0};
  for (const auto r : {xent::reduction::mean, xent::reduction::sum}) {
    for (const bool weighted : {false, true}) {
      xent::options o;
      o.reduce = r;
      if (weighted) {
        o.weight = weight;
        o.label_smoothing = 0.25;  // smoothing sums the weights over the classes
      }
      float loss = -1.0f, fused = -1.0f;
      std::vector<float> g(1, 99.0f);
      const std::string what = xent::to_string(r) + (weighted ? " weighted" : "");
      ASSERT_NO_THROW(loss = xent::cross_entropy(logits, target, o, GetParam())) << what;
      ASSERT_NO_THROW(xent::cross_entropy_forward_backward(logits, target, xent::view(&fused, {}),
                                                           xent::view(g.data(), {0, C}), o, nullptr, GetParam()))
          << what;
      if (r == xent::reduction::mean) {
        EXPECT_TRUE(std::isnan(loss) && std::isnan(fused)) << loss << " " << fused;
      } else {
        EXPECT_EQ(loss, 0.0f);
        EXPECT_EQ(fused, 0.0f);
      }
      EXPECT_EQ(g[0], 99.0f);  // nothing to write
    }
  }
  EXPECT_LT(xent::scratch_bytes(), std::size_t{1} << 30);
}

TEST_P(api, none_reduction_matches_mean_of_rows) {
  const std::vector<float> x{1, 2, 3, -1, 0.5f, 4, 0, 0, 0};
  const std::vector<std::int64_t> t{2, 0, 1};
  std::vector<float> per(3, -1.0f);
  xent::options o;
  o.reduce = xent::reduction::none;
  xent::cross_entropy(xent::view(x.data(), {3, 3}), xent::view(t.data(), {3}), xent::view(per.data(), {3}), o, GetParam());
  const float mean = xent::cross_entropy(xent::view(x.data(), {3, 3}), xent::view(t.data(), {3}), {}, GetParam());
  EXPECT_NEAR(mean, (per[0] + per[1] + per[2]) / 3, 1e-6);
  EXPECT_NEAR(per[2], std::log(3.0f), 1e-6);
}

TEST_P(api, gradient_rows_sum_to_zero) {
  const std::vector<float> x{1, 2, 3, -1, 0.5f, 4};
  const std::vector<std::int64_t> t{2, 0};
  std::vector<float> g(6, 99.0f);
  float loss = 0;
  xent::cross_entropy_forward_backward(xent::view(x.data(), {2, 3}), xent::view(t.data(), {2}), xent::view(&loss, {}),
                                       xent::view(g.data(), {2, 3}), {}, nullptr, GetParam());
  EXPECT_NEAR(g[0] + g[1] + g[2], 0.0, 1e-7);
  EXPECT_NEAR(g[3] + g[4] + g[5], 0.0, 1e-7);
  EXPECT_LT(g[3], 0.0f);
}

// The mean of a row whose only counted target has weight 0 (D = 0: the
// gradient's scale is +inf), with smoothing: each entry is +inf times its
// exact unscaled value. The max class has b_1 > 0 and p_1 A - b_1 =
// -b_1 (1 - p_1), about -e^-1920: not 0, so -inf, although it underflows in
// any floating-point evaluation (found by float16_range_edges_within_tier,
// seed 6). The others have b = 0 and p_j A > 0: +inf. The loss is 0/0.
// mpi, whose ranks see the row's sums only, cannot tell the max class's sign
// when that sum underflowed: it keeps NaN there.
TEST_P(api, infinite_scale_keeps_the_sign_of_an_underflowing_entry) {
  const std::vector<float> x{47648, 49568, 47584}, w{0, 0.23449707f, 0};
  const std::vector<std::int64_t> t{0};
  std::vector<float> g(3, 99.0f);
  float loss = 0;
  xent::options o;
  o.weight = xent::view(w.data(), {3});
  o.label_smoothing = 0.1;
  xent::cross_entropy_forward_backward(xent::view(x.data(), {1, 3}), xent::view(t.data(), {1}), xent::view(&loss, {}),
                                       xent::view(g.data(), {1, 3}), o, nullptr, GetParam());
  EXPECT_TRUE(std::isnan(loss));
  EXPECT_EQ(g[0], INFINITY);
  EXPECT_EQ(g[2], INFINITY);
  if (GetParam()->name() == "mpi") EXPECT_TRUE(std::isnan(g[1]));
  else EXPECT_EQ(g[1], -INFINITY);
}

INSTANTIATE_TEST_SUITE_P(all, api, ::testing::ValuesIn(kernels()),
                         [](const auto& p) { return p.param->name(); });

// The scratch our kernels keep between calls is counted and can be freed,
// and results do not depend on whether it was there.
TEST(scratch, counted_reused_and_released) {
  const auto* simd = xent::find_implementation("simd");
  ASSERT_NE(simd, nullptr);
  const std::int64_t N = 4096, C = 3000;
  std::vector<float> x(static_cast<std::size_t>(N * C));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 1000) / 100.0f;
  std::vector<std::int64_t> t(static_cast<std::size_t>(N));
  for (std::int64_t p = 0; p < N; ++p) t[p] = (p * 31) % C;
  std::vector<float> g1(x.size()), g2(x.size());
  float l1 = 0, l2 = 0;
  auto call = [&](std::vector<float>& g, float& l) {
    xent::cross_entropy_forward_backward(xent::view(x.data(), {N, C}), xent::view(t.data(), {N}), xent::view(&l, {}),
                                         xent::view(g.data(), {N, C}), {}, nullptr, simd);
  };
  xent::release_scratch();
  EXPECT_EQ(xent::scratch_bytes(), 0u);
  call(g1, l1);
  // 8 bytes per position (losses; weights take 8 more only with class
  // weights), 8 per class for the row's exponentials.
  EXPECT_GE(xent::scratch_bytes(), static_cast<std::size_t>(8 * N + 8 * C));
  const std::size_t held = xent::scratch_bytes();
  call(g2, l2);  // reused, not grown
  EXPECT_EQ(xent::scratch_bytes(), held);
  EXPECT_EQ(l1, l2);
  EXPECT_EQ(g1, g2);
  xent::release_scratch();
  EXPECT_EQ(xent::scratch_bytes(), 0u);
  call(g2, l2);
  EXPECT_EQ(l1, l2);
  EXPECT_EQ(g1, g2);
}

}  // namespace

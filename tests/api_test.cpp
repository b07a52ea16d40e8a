// Front-door behaviour on the classic examples, for every registered kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

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

INSTANTIATE_TEST_SUITE_P(all, api, ::testing::ValuesIn(kernels()),
                         [](const auto& p) { return p.param->name(); });

}  // namespace

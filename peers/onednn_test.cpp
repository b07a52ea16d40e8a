// The oneDNN composition computes PyTorch's semantics: on benign inputs
// (logits of moderate size, where oneDNN's float32 logsoftmax is accurate to
// a few ulps) it agrees with `stable` for every option -- index and
// probability targets, weights, ignore_index, label smoothing, the three
// reductions, (N, C, d) layouts, an in-place gradient -- within a tolerance
// far below any semantic mistake (a wrong weight, denominator or smoothing
// term moves results by percents). How accurate oneDNN is beyond that is
// what `xent report` and `xent verify --impl onednn` measure.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "onednn_implementation.hpp"
#include "xent/kernel.hpp"
#include "xent/xent.hpp"

namespace {

const xent::implementation& onednn() {
  xent::peers::register_onednn();
  return *xent::find_implementation("onednn");
}
const xent::implementation& stable() { return *xent::find_implementation("stable"); }

// |got - want| <= abs + 1e-3 |want|. oneDNN's float32 logsoftmax is off by
// up to ~1.5e-6 in absolute terms (log(1) of a single class comes back as
// +1.43e-6), which a sum over rows multiplies and the gradients of soft
// targets amplify by cancellation; a semantic mistake is far larger.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, double abs, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], abs + 1e-3 * std::fabs(want[i])) << what << " [" << i << "]";
}

struct setup {
  std::vector<std::int64_t> shape, positions;
  bool probability = false, weighted = false;
  double smoothing = 0.0;
  xent::reduction reduce = xent::reduction::mean;
};

std::string describe(const setup& s) {
  std::string d = "shape [";
  for (auto e : s.shape) d += std::to_string(e) + ",";
  d += "] ";
  d += s.probability ? "probability" : "index";
  d += s.weighted ? " weighted" : "";
  d += " eps " + std::to_string(s.smoothing) + " " + xent::to_string(s.reduce);
  return d;
}

void compare(const setup& s, std::mt19937& rng) {
  std::int64_t n = 1, P = 1;
  for (auto e : s.shape) n *= e;
  for (auto e : s.positions) P *= e;
  const std::int64_t C = s.shape[1];
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::uniform_real_distribution<float> unit(0.1f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(n)), q(static_cast<std::size_t>(n)), w(static_cast<std::size_t>(C));
  for (auto& v : x) v = normal(rng);
  for (auto& v : w) v = unit(rng);
  std::vector<std::int64_t> t(static_cast<std::size_t>(P));
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = i % 5 == 3 ? -100 : static_cast<std::int64_t>(rng() % C);
  for (auto& v : q) v = unit(rng);  // unnormalised soft targets are allowed
  xent::options o;
  o.reduce = s.reduce;
  o.label_smoothing = s.smoothing;
  if (s.weighted) o.weight = xent::view(w.data(), {C});
  const auto logits = xent::view(x.data(), s.shape);
  const auto target = s.probability ? xent::view(q.data(), s.shape) : xent::view(t.data(), s.positions);
  const bool none = s.reduce == xent::reduction::none;
  const std::vector<std::int64_t> out_shape = none ? s.positions : std::vector<std::int64_t>{};
  const std::size_t outs = none ? static_cast<std::size_t>(P) : 1;
  std::vector<float> l1(outs), l2(outs), g1(x.size()), g2(x.size());
  xent::cross_entropy_forward_backward(logits, target, xent::view(l1.data(), out_shape), xent::view(g1.data(), s.shape),
                                       o, nullptr, &onednn());
  xent::cross_entropy_forward_backward(logits, target, xent::view(l2.data(), out_shape), xent::view(g2.data(), s.shape),
                                       o, nullptr, &stable());
  const double row_abs = 1e-5, loss_abs = s.reduce == xent::reduction::sum ? row_abs * static_cast<double>(P) : row_abs;
  expect_close(l1, l2, loss_abs, describe(s) + " loss");
  expect_close(g1, g2, row_abs, describe(s) + " grad");
  // Loss only, and an in-place gradient, give the same values.
  std::vector<float> l3(outs), inplace = x;
  xent::cross_entropy(logits, target, xent::view(l3.data(), out_shape), o, &onednn());
  expect_close(l3, l1, 0.0, describe(s) + " forward only");
  xent::cross_entropy_forward_backward(xent::view(inplace.data(), s.shape), target, xent::view(l3.data(), out_shape),
                                       xent::view(inplace.data(), s.shape), o, nullptr, &onednn());
  expect_close(inplace, g1, 0.0, describe(s) + " in place");
}

TEST(onednn_peer, agrees_with_stable_on_every_option) {
  std::mt19937 rng(7);
  const std::vector<std::vector<std::int64_t>> shapes{{6, 10}, {3, 7, 4}, {2, 1000}, {5, 1}};
  for (const auto& shape : shapes)
    for (const bool probability : {false, true})
      for (const bool weighted : {false, true})
        for (const double eps : {0.0, 0.2})
          for (const auto r : {xent::reduction::none, xent::reduction::mean, xent::reduction::sum}) {
            setup s;
            s.shape = shape;
            s.positions = {shape[0]};
            if (shape.size() == 3) s.positions.push_back(shape[2]);
            s.probability = probability;
            s.weighted = weighted;
            s.smoothing = eps;
            s.reduce = r;
            compare(s, rng);
          }
}

TEST(onednn_peer, is_listed_as_a_peer) {
  const auto& i = onednn();
  EXPECT_TRUE(i.peer());
  EXPECT_EQ(i.tier(), xent::tier::standard);
  EXPECT_NE(i.description().find("oneDNN " + xent::peers::onednn_version()), std::string::npos) << i.description();
}

}  // namespace

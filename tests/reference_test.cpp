// The multiprecision reference against closed forms computed independently in
// long double, against itself at twice the precision, and the error measures
// on hand-picked cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "xent/kernel/problem.hpp"
#include "xent/reference.hpp"

namespace {

using xent::ref::exact;
using shape_t = std::vector<std::int64_t>;
using ld = long double;

constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float nan = std::numeric_limits<float>::quiet_NaN();

ld value(const exact& r) { return static_cast<ld>(r.hi) + static_cast<ld>(r.lo); }

// Relative difference, in long double (about 64 bits).
::testing::AssertionResult close(const exact& got, ld want, ld tol) {
  const ld diff = std::fabs(value(got) - want);
  if (diff <= tol * std::fabs(want)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got " << xent::ref::to_string(got) << ", want "
                                       << static_cast<double>(want) << " (relative error "
                                       << static_cast<double>(diff / std::fabs(want)) << ")";
}

// Position shape of logits: every dim but the class axis.
shape_t positions_of(const shape_t& logits) {
  shape_t s;
  for (std::size_t d = 0; d < logits.size(); ++d)
    if (d != (logits.size() == 1 ? 0 : 1)) s.push_back(logits[d]);
  return s;
}

struct index_problem {
  std::vector<float> x;
  shape_t shape;
  std::vector<std::int64_t> t;
  std::vector<float> w;  // empty: no weight
  xent::options opt;

  xent::problem make() {
    if (!w.empty()) opt.weight = xent::view(w.data(), {static_cast<std::int64_t>(w.size())});
    return xent::make_problem(xent::view(x.data(), shape), xent::view(t.data(), positions_of(shape)),
                              opt);
  }
  xent::ref::result run(bool grad = false, unsigned bits = xent::ref::default_precision_bits) {
    return xent::ref::compute(make(), grad, bits);
  }
};

struct prob_problem {
  std::vector<float> x, q;
  shape_t shape;
  std::vector<float> w;
  xent::options opt;

  xent::ref::result run(bool grad = false) {
    if (!w.empty()) opt.weight = xent::view(w.data(), {static_cast<std::int64_t>(w.size())});
    const auto p = xent::make_problem(xent::view(x.data(), shape), xent::view(q.data(), shape), opt);
    return xent::ref::compute(p, grad);
  }
};

xent::options with(xent::reduction r, double eps = 0.0) {
  xent::options o;
  o.reduce = r;
  o.label_smoothing = eps;
  return o;
}

// log_softmax in long double, in the stable form (accurate for the moderate
// rows used here, including dominant targets).
std::vector<ld> log_softmax(const float* x, std::size_t C) {
  std::size_t k = 0;
  for (std::size_t c = 1; c < C; ++c)
    if (x[c] > x[k]) k = c;
  ld rest = 0;
  for (std::size_t c = 0; c < C; ++c)
    if (c != k) rest += std::exp(static_cast<ld>(x[c]) - x[k]);
  std::vector<ld> lp(C);
  for (std::size_t c = 0; c < C; ++c) lp[c] = (static_cast<ld>(x[c]) - x[k]) - std::log1p(rest);
  return lp;
}

// --- Semantics against closed forms -------------------------------------

TEST(reference, zero_logits_give_ln_C) {
  index_problem p{std::vector<float>(15, 0.0f), {3, 5}, {1, 3, 2}, {}, {}};
  const auto r = p.run(true);
  EXPECT_EQ(xent::ref::to_float(r.reduced), 1.6094379f);
  EXPECT_TRUE(close(r.reduced, std::log(5.0L), 1e-18L));
  EXPECT_EQ(xent::ref::to_double(r.reduced), 1.6094379124341003);
  for (const auto& l : r.loss) EXPECT_TRUE(close(l, std::log(5.0L), 1e-18L));
  // mean gradient: (1/5 - [j == t]) / 3
  for (std::size_t n = 0; n < 3; ++n)
    for (std::size_t j = 0; j < 5; ++j)
      EXPECT_TRUE(close(r.grad[n * 5 + j], (0.2L - (static_cast<std::int64_t>(j) == p.t[n])) / 3, 1e-18L));

  p.opt = with(xent::reduction::sum);
  EXPECT_TRUE(close(p.run().reduced, 3 * std::log(5.0L), 1e-18L));
  p.opt = with(xent::reduction::none);
  EXPECT_TRUE(std::isnan(p.run().reduced.hi));
}

TEST(reference, two_classes_match_log1p_exp) {
  const std::vector<std::pair<float, float>> pairs{
      {0.0f, 0.0f}, {1.5f, -2.25f}, {-3.0f, 2.0f}, {30.0f, 0.0f}, {0.0f, 40.0f}, {-7.125f, -7.0f}};
  for (const auto& [xt, xo] : pairs) {
    index_problem p{{xt, xo}, {1, 2}, {0}, {}, {}};
    const ld want = std::log1p(std::exp(static_cast<ld>(xo) - xt));
    EXPECT_TRUE(close(p.run().reduced, want, 1e-17L)) << xt << " " << xo;
  }
}

TEST(reference, dominant_target_keeps_relative_accuracy) {
  for (const float margin : {20.0f, 50.0f, 92.0f, 100.0f}) {
    std::vector<float> x(10, 0.0f);
    x[7] = margin;
    index_problem p{x, {1, 10}, {7}, {}, {}};
    const auto r = p.run();
    const ld want = std::log1p(9 * std::exp(-static_cast<ld>(margin)));  // ~ 9 e^-M
    EXPECT_TRUE(close(r.reduced, want, 1e-17L)) << margin;
    EXPECT_GT(xent::ref::to_float(r.reduced), 0.0f);
  }
  // A huge shift changes nothing: [1e30 + M, 1e30, ...] is not representable,
  // but [x, x, ...] with x = 1e30 gives ln C exactly as at 0.
  index_problem huge{{1e30f, 1e30f, -1e30f}, {1, 3}, {0}, {}, {}};
  EXPECT_TRUE(close(huge.run().reduced, std::log(2.0L), 1e-18L));
}

TEST(reference, target_gradient_is_minus_the_other_probabilities) {
  for (const float margin : {30.0f, 100.0f}) {
    std::vector<float> x(10, 0.0f);
    x[7] = margin;
    index_problem p{x, {1, 10}, {7}, {}, with(xent::reduction::none)};
    const auto r = p.run(true);
    const ld e = std::exp(-static_cast<ld>(margin)), sum = 1 + 9 * e;
    ASSERT_EQ(r.grad.size(), 10u);
    EXPECT_TRUE(close(r.grad[7], -9 * e / sum, 1e-17L)) << margin;
    EXPECT_LT(xent::ref::to_float(r.grad[7]), 0.0f);  // not the 0 that p_t - 1 gives
    for (std::size_t j = 0; j < 10; ++j)
      if (j != 7) {
        EXPECT_TRUE(close(r.grad[j], e / sum, 1e-17L)) << margin;
      }
  }
}

TEST(reference, label_smoothing_and_weights) {
  index_problem p{{0.5f, -1.0f, 2.0f, 0.25f, 3.0f, 1.0f, -2.0f, 0.0f},
                  {2, 4},
                  {1, 3},
                  {1.0f, 2.0f, 0.5f, 3.0f},
                  {}};
  const ld eps = 0.1, C = 4;
  ld sum_l = 0, sum_s = 0, W = 0;
  std::vector<ld> none;
  for (std::size_t n = 0; n < 2; ++n) {
    const auto lp = log_softmax(&p.x[n * 4], 4);
    const auto t = static_cast<std::size_t>(p.t[n]);
    const ld l = -p.w[t] * lp[t];
    ld s = 0;
    for (std::size_t c = 0; c < 4; ++c) s -= p.w[c] * lp[c];
    none.push_back((1 - eps) * l + eps / C * s);
    sum_l += l;
    sum_s += s;
    W += p.w[t];
  }
  p.opt = with(xent::reduction::none, 0.1);
  const auto r = p.run();
  for (std::size_t n = 0; n < 2; ++n) EXPECT_TRUE(close(r.loss[n], none[n], 1e-17L));
  p.opt = with(xent::reduction::sum, 0.1);
  EXPECT_TRUE(close(p.run().reduced, (1 - eps) * sum_l + eps / C * sum_s, 1e-17L));
  p.opt = with(xent::reduction::mean, 0.1);
  const auto m = p.run(true);
  EXPECT_TRUE(close(m.reduced, ((1 - eps) * sum_l + eps / C * sum_s) / W, 1e-17L));
  // Gradient: (1/W)[(1-eps) w_t (p_j - [j==t]) + (eps/C)(p_j sum w - w_j)]
  const ld w_sum = 1 + 2 + 0.5L + 3;
  for (std::size_t n = 0; n < 2; ++n) {
    const auto lp = log_softmax(&p.x[n * 4], 4);
    const auto t = static_cast<std::size_t>(p.t[n]);
    for (std::size_t j = 0; j < 4; ++j) {
      const ld pj = std::exp(lp[j]);
      const ld want = ((1 - eps) * p.w[t] * (pj - (j == t)) + eps / C * (pj * w_sum - p.w[j])) / W;
      EXPECT_TRUE(close(m.grad[n * 4 + j], want, 1e-16L)) << n << " " << j;
    }
  }
}

TEST(reference, ignore_index_masks_positions) {
  index_problem p{{1.0f, 2.0f, 3.0f, nan, nan, nan, -1.0f, 0.5f, 4.0f, 0.0f, 2.0f, -3.0f},
                  {4, 3},
                  {0, -100, 2, 1},
                  {0.5f, 2.0f, 1.0f},
                  with(xent::reduction::none)};
  ld sum = 0, W = 0;
  std::vector<ld> want(4, 0.0L);
  for (std::size_t n : {0u, 2u, 3u}) {
    const auto t = static_cast<std::size_t>(p.t[n]);
    want[n] = -p.w[t] * log_softmax(&p.x[n * 3], 3)[t];
    sum += want[n];
    W += p.w[t];
  }
  const auto r = p.run(true);
  EXPECT_EQ(r.loss[1].hi, 0.0);  // ignored, even over NaN logits
  EXPECT_EQ(r.loss[1].lo, 0.0);
  for (std::size_t n : {0u, 2u, 3u}) EXPECT_TRUE(close(r.loss[n], want[n], 1e-17L));
  for (std::size_t j = 3; j < 6; ++j) EXPECT_EQ(r.grad[j].hi, 0.0);
  p.opt = with(xent::reduction::sum);
  EXPECT_TRUE(close(p.run().reduced, sum, 1e-17L));
  p.opt = with(xent::reduction::mean);
  EXPECT_TRUE(close(p.run().reduced, sum / W, 1e-17L));

  // ignore_index may be a real class: it still counts in C.
  index_problem q{{0, 0, 0, 0, 0, 0}, {2, 3}, {2, 0}, {}, with(xent::reduction::mean, 0.3)};
  q.opt.ignore_index = 2;
  EXPECT_TRUE(close(q.run().reduced, std::log(3.0L), 1e-18L));
}

TEST(reference, probability_targets) {
  prob_problem p{{0.5f, -1.0f, 2.0f, 3.0f, 1.0f, -2.0f},
                 {0.2f, 0.3f, 0.5f, 1.0f, 0.0f, 0.0f},
                 {2, 3},
                 {1.0f, 2.0f, 0.5f},
                 with(xent::reduction::mean, 0.2)};
  const ld eps = 0.2;
  ld sum = 0;
  std::vector<ld> grad;
  for (std::size_t n = 0; n < 2; ++n) {
    const auto lp = log_softmax(&p.x[n * 3], 3);
    ld A = 0, l = 0;
    std::vector<ld> a(3);
    for (std::size_t c = 0; c < 3; ++c) {
      a[c] = p.w[c] * ((1 - eps) * p.q[n * 3 + c] + eps / 3);
      A += a[c];
      l -= a[c] * lp[c];
    }
    sum += l;
    for (std::size_t j = 0; j < 3; ++j) grad.push_back((std::exp(lp[j]) * A - a[j]) / 2);
  }
  const auto r = p.run(true);
  EXPECT_TRUE(close(r.reduced, sum / 2, 1e-17L));  // mean over positions, not weights
  for (std::size_t i = 0; i < 6; ++i) EXPECT_TRUE(close(r.grad[i], grad[i], 1e-16L)) << i;

  // One-hot probabilities are index targets (unweighted, no smoothing).
  prob_problem one_hot{{0.5f, -1.0f, 2.0f}, {0.0f, 1.0f, 0.0f}, {1, 3}, {}, {}};
  index_problem index{{0.5f, -1.0f, 2.0f}, {1, 3}, {1}, {}, {}};
  const auto a = one_hot.run(), b = index.run();
  EXPECT_EQ(a.reduced.hi, b.reduced.hi);
  EXPECT_EQ(a.reduced.lo, b.reduced.lo);
}

TEST(reference, class_axis_strides) {
  // (N, C, d) = (2, 3, 2): position (n, i) reads x[n][c][i].
  const std::vector<float> x{1, 2, 3, 4, 5, -6, 0.5f, 0.25f, -1, 8, 2, 2};
  index_problem nd{x, {2, 3, 2}, {0, 2, 1, 1}, {}, with(xent::reduction::none)};
  std::vector<float> rows;
  for (int n = 0; n < 2; ++n)
    for (int i = 0; i < 2; ++i)
      for (int c = 0; c < 3; ++c) rows.push_back(x[static_cast<std::size_t>(n * 6 + c * 2 + i)]);
  index_problem flat{rows, {4, 3}, {0, 2, 1, 1}, {}, with(xent::reduction::none)};
  const auto a = nd.run(true), b = flat.run(true);
  for (std::size_t n = 0; n < 4; ++n) EXPECT_EQ(a.loss[n].hi, b.loss[n].hi);
  for (std::size_t i = 0; i < 12; ++i) EXPECT_EQ(a.grad[i].hi, b.grad[i].hi);
}

TEST(reference, upstream_gradient) {
  std::vector<float> x{1, 2, 3, -1, 0.5f, 4};
  std::vector<std::int64_t> t{2, 0};
  std::vector<float> out(2), grad(6), up{2.0f, -0.5f};
  auto o = with(xent::reduction::none);
  const auto xv = xent::view(x.data(), {2, 3});
  const auto gv = xent::view(grad.data(), {2, 3});
  const auto uv = xent::view(up.data(), {2});
  const auto p = xent::make_problem(xv, xent::view(t.data(), {2}), o, xent::view(out.data(), {2}), &gv, &uv);
  const auto r = xent::ref::compute(p, true);
  index_problem plain{x, {2, 3}, t, {}, with(xent::reduction::none)};
  const auto base = plain.run(true);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_TRUE(close(r.grad[i], up[i / 3] * value(base.grad[i]), 1e-18L));

  plain.opt = with(xent::reduction::mean);
  auto q = plain.make();
  q.upstream_scalar = 3.0f;
  q.upstream_scalar_wide = 3.0;
  const auto m = xent::ref::compute(q, true);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_TRUE(close(m.grad[i], 1.5L * value(base.grad[i]), 1e-18L));
}

// --- Special values ------------------------------------------------------

TEST(reference, special_values_per_row) {
  index_problem p{{nan, 0, 0, inf, 0, 0, -inf, 1, 2, -inf, 1, 2, -inf, -inf, -inf},
                  {5, 3},
                  {1, 1, 0, 1, 0},
                  {},
                  with(xent::reduction::none)};
  const auto r = p.run(true);
  EXPECT_TRUE(std::isnan(r.loss[0].hi));  // NaN logit
  EXPECT_TRUE(std::isnan(r.loss[1].hi));  // +inf logit
  EXPECT_EQ(r.loss[2].hi, std::numeric_limits<double>::infinity());  // -inf on the target
  EXPECT_TRUE(std::isnan(r.loss[4].hi));  // every logit -inf
  for (std::size_t j = 0; j < 6; ++j) EXPECT_TRUE(std::isnan(r.grad[j].hi));
  // -inf target: the gradient stays finite, (p_j - [j == t]) with p over {1, 2}.
  const ld p1 = 1 / (1 + std::exp(1.0L));
  EXPECT_EQ(r.grad[6].hi, -1.0);
  EXPECT_TRUE(close(r.grad[7], p1, 1e-18L));
  EXPECT_TRUE(close(r.grad[8], 1 - p1, 1e-18L));
  // -inf on another class changes nothing.
  index_problem two{{1, 2}, {1, 2}, {0}, {}, with(xent::reduction::none)};
  const auto b = two.run();
  EXPECT_EQ(r.loss[3].hi, b.loss[0].hi);
  EXPECT_EQ(r.loss[3].lo, b.loss[0].lo);
  EXPECT_EQ(r.grad[9].hi, 0.0);

  // ... unless smoothing averages over it: +inf.
  index_problem smooth{{-inf, 1, 2}, {1, 3}, {1}, {}, with(xent::reduction::none, 0.1)};
  EXPECT_EQ(smooth.run().loss[0].hi, std::numeric_limits<double>::infinity());
  // Weight 0 on a -inf target: 0 * inf = NaN, as in PyTorch.
  index_problem zero_w{{-inf, 1, 2}, {1, 3}, {0}, {0.0f, 1.0f, 1.0f}, with(xent::reduction::none)};
  EXPECT_TRUE(std::isnan(zero_w.run().loss[0].hi));
  // ... and eps = 1 makes (1 - eps) * inf = NaN.
  index_problem full{{-inf, 1, 2}, {1, 3}, {0}, {}, with(xent::reduction::none, 1.0)};
  EXPECT_TRUE(std::isnan(full.run().loss[0].hi));
  // Probability targets: -inf logit with q = 0 is -inf * 0 = NaN in PyTorch,
  // while the gradient p_j - q_j stays finite (values checked against PyTorch).
  prob_problem soft{{-inf, 1, 2}, {0, 0.5f, 0.5f}, {1, 3}, {}, {}};
  const auto s = soft.run(true);
  EXPECT_TRUE(std::isnan(s.reduced.hi));
  EXPECT_EQ(s.grad[0].hi, 0.0);
  EXPECT_TRUE(close(s.grad[1], 1 / (1 + std::exp(1.0L)) - 0.5L, 1e-17L));
  EXPECT_TRUE(close(s.grad[2], 0.5L - 1 / (1 + std::exp(1.0L)), 1e-17L));
}

TEST(reference, special_values_in_reductions) {
  index_problem p{{0, 0, nan, 0}, {2, 2}, {0, 0}, {}, with(xent::reduction::mean)};
  EXPECT_TRUE(std::isnan(p.run().reduced.hi));
  p.x = {0, 0, -inf, 0};
  EXPECT_EQ(p.run().reduced.hi, std::numeric_limits<double>::infinity());
  p.opt = with(xent::reduction::sum);
  EXPECT_EQ(p.run().reduced.hi, std::numeric_limits<double>::infinity());
}

TEST(reference, empty_and_all_ignored) {
  index_problem empty{{}, {0, 5}, {}, {}, with(xent::reduction::mean)};
  EXPECT_TRUE(std::isnan(empty.run().reduced.hi));
  empty.opt = with(xent::reduction::sum);
  EXPECT_EQ(empty.run().reduced.hi, 0.0);
  empty.opt = with(xent::reduction::none);
  EXPECT_TRUE(empty.run().loss.empty());

  index_problem ignored{{1, 2, 3, 4, 5, 6}, {2, 3}, {-100, -100}, {}, with(xent::reduction::mean)};
  const auto r = ignored.run(true);
  EXPECT_TRUE(std::isnan(r.reduced.hi));  // 0 / 0
  for (const auto& g : r.grad) EXPECT_EQ(g.hi, 0.0);
  ignored.opt = with(xent::reduction::sum, 0.1);
  EXPECT_EQ(ignored.run().reduced.hi, 0.0);
  ignored.opt = with(xent::reduction::none);
  for (const auto& l : ignored.run().loss) EXPECT_EQ(l.hi, 0.0);

  // Counted positions of total weight 0: mean 0/0 and a NaN gradient
  // (g / W * 0), as PyTorch gives.
  index_problem zero{{1, 2, 3, 0, 0, 0}, {2, 3}, {0, 1}, {0.0f, 0.0f, 1.0f}, with(xent::reduction::mean)};
  const auto z = zero.run(true);
  EXPECT_TRUE(std::isnan(z.reduced.hi));
  for (const auto& g : z.grad) EXPECT_TRUE(std::isnan(g.hi));
}

// --- The reference against itself at twice the precision -----------------

::testing::AssertionResult agree(const exact& a, const exact& b) {
  if (std::isnan(a.hi) && std::isnan(b.hi)) return ::testing::AssertionSuccess();
  if (!std::isfinite(a.hi) || !std::isfinite(b.hi) || b.hi == 0.0) {
    if (a.hi == b.hi && a.lo == b.lo) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << xent::ref::to_string(a) << " vs " << xent::ref::to_string(b);
  }
  const double diff = std::fabs((a.hi - b.hi) + (a.lo - b.lo));  // a.hi - b.hi exact when close
  if (diff <= std::ldexp(std::fabs(b.hi), -100)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << xent::ref::to_string(a, 35) << " vs " << xent::ref::to_string(b, 35);
}

// 160 and 320 bits agree to 2^-100: 47 bits below float64's last one, so
// the float64 roundings (the tightest output dtype) agree too.
void expect_precision_independent(index_problem& p) {
  const auto a = p.run(true, 160), b = p.run(true, 320);
  auto same_f64 = [](const exact& x, const exact& y) {
    const double rx = xent::ref::round_to(x, xent::dtype::f64), ry = xent::ref::round_to(y, xent::dtype::f64);
    return (std::isnan(rx) && std::isnan(ry)) || rx == ry;
  };
  EXPECT_TRUE(agree(a.reduced, b.reduced));
  EXPECT_TRUE(same_f64(a.reduced, b.reduced));
  for (std::size_t i = 0; i < a.loss.size(); ++i) {
    EXPECT_TRUE(agree(a.loss[i], b.loss[i])) << "loss " << i;
    EXPECT_TRUE(same_f64(a.loss[i], b.loss[i])) << "loss " << i;
  }
  for (std::size_t i = 0; i < a.grad.size(); ++i) {
    EXPECT_TRUE(agree(a.grad[i], b.grad[i])) << "grad " << i;
    EXPECT_TRUE(same_f64(a.grad[i], b.grad[i])) << "grad " << i;
  }
}

// Two classes, x = [x0, x1], target 0, with x1 - x0 an exact float32
// midpoint in [128, 256): the loss is that midpoint plus log1p(e^(x0 - x1)),
// a term below 1e-55 of it, far below the working precision. Rounded to
// nearest at 160 bits it vanishes and the tie goes to even; the exact value
// lies above the midpoint, so the float32 above it is the correct rounding
// (every time, not half of the time).
TEST(reference, large_margin_loss_rounds_past_an_exact_midpoint) {
  std::uint32_t state = 2024;
  auto uniform = [&state](float lo, float hi) {
    state = state * 1664525u + 1013904223u;
    return lo + static_cast<float>(state >> 8) / 16777216.0f * (hi - lo);
  };
  int cases = 0;
  while (cases < 200) {
    const float x1 = uniform(64.0f, 127.0f), x0 = -uniform(64.0f, 127.0f);
    const double d = static_cast<double>(x1) - static_cast<double>(x0);  // exact
    const float below = static_cast<float>(d) <= d ? static_cast<float>(d) : std::nextafter(static_cast<float>(d), 0.0f);
    const float above = std::nextafter(below, 1e30f);
    if (d - below != above - d) continue;  // not a midpoint
    ++cases;
    index_problem p{{x0, x1}, {1, 2}, {0}, {}, with(xent::reduction::none)};
    const auto r = p.run();
    EXPECT_EQ(xent::ref::to_float(r.loss[0]), above) << "x = [" << x0 << ", " << x1 << "], loss "
                                                     << xent::ref::to_string(r.loss[0]);
    p.opt = with(xent::reduction::sum);
    EXPECT_EQ(xent::ref::to_float(p.run().reduced), above) << "sum";
  }
}

TEST(reference, precision_independent_on_hard_rows) {
  index_problem p{{
                      100, 0, 0, 0, 0, 0,                               // margin 100
                      0, 92, -1, 0.5f, 0, 0,                            // margin ~91.5
                      50, 50, 0, 0, 0, 0,                               // tie for the max
                      1e30f, 1e30f, -1e30f, 0, 3e29f, 1e30f,            // huge logits
                      1e-45f, -1e-45f, 1e-40f, 0, -0.0f, 1.17549435e-38f,  // subnormals
                      88.7f, -88.7f, 3.4e38f, -3.4e38f, 20, 0,          // extremes
                  },
                  {6, 6},
                  {0, 1, 1, 4, 2, 2},
                  {1.0f, 0.5f, 2.0f, 1.0f, 3.0f, 0.25f},
                  {}};
  for (const double eps : {0.0, 0.1}) {
    for (const auto red : {xent::reduction::none, xent::reduction::mean}) {
      p.opt = with(red, eps);
      expect_precision_independent(p);
    }
  }
  // One long row (C = 256000): the sum of 256k exponentials and its gradient.
  std::vector<float> x(256000);
  std::uint32_t state = 12345;
  for (auto& v : x) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(state >> 8) / 16777216.0f * 20.0f - 10.0f;
  }
  x[777] = 40.0f;  // a dominant but not overwhelming target
  index_problem big{x, {1, 256000}, {777}, {}, with(xent::reduction::sum)};
  expect_precision_independent(big);
}

TEST(reference, precision_below_64_bits_throws) {
  index_problem p{{0, 0}, {1, 2}, {0}, {}, {}};
  EXPECT_THROW(p.run(false, 63), std::invalid_argument);
  EXPECT_NO_THROW(p.run(false, 64));
}

// --- Rounding and error measures -------------------------------------------

TEST(reference_ulp, rounding_uses_lo_at_midpoints) {
  const double mid = 1.0 + std::ldexp(1.0, -24);  // halfway between two floats
  EXPECT_EQ(xent::ref::to_float({mid, 0.0}), 1.0f);  // ties to even
  EXPECT_EQ(xent::ref::to_float({mid, 1e-30}), 1.0f + std::ldexp(1.0f, -23));
  EXPECT_EQ(xent::ref::to_float({mid, -1e-30}), 1.0f);
  EXPECT_EQ(xent::ref::to_double({1.0, std::ldexp(1.0, -53)}), 1.0);
  EXPECT_EQ(xent::ref::to_double({1.0, std::ldexp(1.0, -53) + std::ldexp(1.0, -80)}), 1.0 + std::ldexp(1.0, -52));
  // Subnormal floats: 1.5 * 2^-149 ties to 2^-148 (even); a bit more rounds up too.
  EXPECT_EQ(xent::ref::to_float({std::ldexp(1.5, -149), 0.0}), std::ldexp(1.0f, -148));
  EXPECT_EQ(xent::ref::to_float({std::ldexp(1.25, -149), 1e-60}), std::ldexp(1.0f, -149));
  EXPECT_EQ(xent::ref::to_float({std::ldexp(0.5, -149), 1e-60}), std::ldexp(1.0f, -149));
  EXPECT_EQ(xent::ref::to_float({std::ldexp(0.5, -149), -1e-60}), 0.0f);
  // Overflow threshold: FLT_MAX + half an ulp, minus a little, stays finite.
  const double threshold = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);
  EXPECT_EQ(xent::ref::to_float({threshold, -1.0}), std::numeric_limits<float>::max());
  EXPECT_EQ(xent::ref::to_float({threshold, 0.0}), inf);
}

TEST(reference_ulp, ulp_error_definition) {
  using xent::ref::ulp_error;
  EXPECT_EQ(ulp_error(1.0f, {1.0, 0.0}), 0.0);
  EXPECT_EQ(ulp_error(std::nextafter(1.0f, 2.0f), {1.0, 0.0}), 1.0);
  EXPECT_EQ(ulp_error(1.0f, {1.0 + std::ldexp(1.0, -30), 0.0}), std::ldexp(1.0, -7));
  EXPECT_EQ(ulp_error(1.0f, {1.0, std::ldexp(1.0, -60)}), std::ldexp(1.0, -37));  // lo counts
  // Below 1 the ulp halves: RN(r) = 0.5 - 2^-25 has ulp 2^-25.
  EXPECT_EQ(ulp_error(0.5f, {0.5 - std::ldexp(1.0, -25), 0.0}), 1.0);
  // 0 against a tiny r: RN(r) = 0, ulp = 2^-149.
  EXPECT_DOUBLE_EQ(ulp_error(0.0f, {1e-50, 0.0}), 1e-50 / std::ldexp(1.0, -149));
  EXPECT_EQ(ulp_error(std::ldexp(1.0f, -149), {0.0, 0.0}), 1.0);
  EXPECT_EQ(ulp_error(std::ldexp(3.0f, -149), {std::ldexp(1.0, -149), 0.0}), 2.0);  // subnormals
  EXPECT_EQ(ulp_error(std::ldexp(1.0f, -126), {std::ldexp(1.0, -127), 0.0}), std::ldexp(1.0, 22));
  // r beyond float's range: ulp at emax.
  EXPECT_EQ(ulp_error(std::numeric_limits<float>::max(), {std::ldexp(1.0, 128), 0.0}), 1.0);
  // Non-finite rules.
  const double dinf = std::numeric_limits<double>::infinity(), dnan = std::nan("");
  EXPECT_EQ(ulp_error(nan, {dnan, 0.0}), 0.0);
  EXPECT_EQ(ulp_error(1.0f, {dnan, 0.0}), dinf);
  EXPECT_EQ(ulp_error(nan, {1.0, 0.0}), dinf);
  EXPECT_EQ(ulp_error(inf, {dinf, 0.0}), 0.0);
  EXPECT_EQ(ulp_error(-inf, {dinf, 0.0}), dinf);
  EXPECT_EQ(ulp_error(inf, {1.0, 0.0}), dinf);
  EXPECT_EQ(ulp_error(inf, {1e39, 0.0}), 0.0);   // finite r that rounds to inf: inf is RN(r)
  EXPECT_EQ(ulp_error(-inf, {1e39, 0.0}), dinf);
  EXPECT_EQ(ulp_error(inf, {3.4e38, 0.0}), dinf);  // rounds to FLT_MAX, not inf
  EXPECT_EQ(ulp_error(std::numeric_limits<float>::max(), {dinf, 0.0}), dinf);
  // Double results.
  EXPECT_EQ(ulp_error(1.0, {1.0, std::ldexp(1.0, -60)}), std::ldexp(1.0, -8));
  EXPECT_EQ(ulp_error(std::nextafter(1.0, 0.0), {1.0, 0.0}), 0.5);
  EXPECT_EQ(ulp_error(0.0, {std::ldexp(1.0, -1074), 0.0}), 1.0);
  EXPECT_EQ(ulp_error(dnan, {dnan, 0.0}), 0.0);
}

// Rounding once to each floating output dtype, by its own spacing.
TEST(reference_ulp, round_to_each_dtype) {
  using xent::dtype;
  using xent::ref::round_to;
  const double dinf = std::numeric_limits<double>::infinity();
  // bfloat16: 8 significant bits. 1 + 2^-8 is a midpoint: ties to even (1);
  // anything above it, if only in lo, rounds up.
  EXPECT_EQ(round_to({1.0 + std::ldexp(1.0, -8), 0.0}, dtype::bf16), 1.0);
  EXPECT_EQ(round_to({1.0 + std::ldexp(1.0, -8), 1e-30}, dtype::bf16), 1.0 + std::ldexp(1.0, -7));
  EXPECT_EQ(round_to({1.0 + 3 * std::ldexp(1.0, -8), 0.0}, dtype::bf16), 1.0 + std::ldexp(1.0, -6));  // tie: to the even 2 * 2^-7
  EXPECT_EQ(round_to({-3.14159265358979, 0.0}, dtype::bf16), -3.140625);
  // Its range is float32's: the largest finite is 0x7f7f = (2 - 2^-7) 2^127;
  // half an ulp above it overflows, the smallest subnormal is 2^-133.
  const double bf_max = std::ldexp(2.0 - std::ldexp(1.0, -7), 127);
  EXPECT_EQ(round_to({bf_max + std::ldexp(1.0, 119) - std::ldexp(1.0, 100), 0.0}, dtype::bf16), bf_max);
  EXPECT_EQ(round_to({bf_max + std::ldexp(1.0, 119), 0.0}, dtype::bf16), dinf);
  EXPECT_EQ(round_to({std::ldexp(1.0, -133), 0.0}, dtype::bf16), std::ldexp(1.0, -133));
  EXPECT_EQ(round_to({std::ldexp(1.0, -134), 0.0}, dtype::bf16), 0.0);  // tie with 0: even
  EXPECT_EQ(round_to({std::ldexp(1.0, -134), 1e-300}, dtype::bf16), std::ldexp(1.0, -133));
  // float16: 11 bits, largest finite 65504; 65520 is the midpoint to 65536
  // (not a float16) and rounds to inf; subnormals are multiples of 2^-24.
  EXPECT_EQ(round_to({65519.99, 0.0}, dtype::f16), 65504.0);
  EXPECT_EQ(round_to({65520.0, 0.0}, dtype::f16), dinf);
  EXPECT_EQ(round_to({-65520.0, 0.0}, dtype::f16), -dinf);
  EXPECT_EQ(round_to({1.0 / 3.0, 0.0}, dtype::f16), 0.333251953125);
  EXPECT_EQ(round_to({std::ldexp(1.5, -24), 0.0}, dtype::f16), std::ldexp(1.0, -23));  // tie to even
  EXPECT_EQ(round_to({std::ldexp(1.0, -25), 0.0}, dtype::f16), 0.0);
  EXPECT_EQ(round_to({std::ldexp(1.0, -25), 1e-300}, dtype::f16), std::ldexp(1.0, -24));
  EXPECT_EQ(round_to({std::ldexp(1.0, -14) - std::ldexp(1.0, -26), 0.0}, dtype::f16), std::ldexp(1.0, -14));
  // Signs, zeros and specials pass through.
  EXPECT_TRUE(std::signbit(round_to({-0.0, 0.0}, dtype::f16)));
  EXPECT_TRUE(std::signbit(round_to({-1e-30, 0.0}, dtype::f16)));
  EXPECT_TRUE(std::isnan(round_to({std::nan(""), 0.0}, dtype::bf16)));
  EXPECT_EQ(round_to({-dinf, 0.0}, dtype::f16), -dinf);
  EXPECT_THROW(round_to({1.0, 0.0}, dtype::i64), std::invalid_argument);
}

// float32 and float64 through round_to give what to_float / to_double give,
// on random pairs hi + lo (lo up to an ulp of hi: midpoints and beyond).
TEST(reference_ulp, round_to_agrees_with_to_float_and_to_double) {
  std::uint64_t state = 99;
  auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state;
  };
  for (int i = 0; i < 20000; ++i) {
    // A float or float midpoint (or a double near one), then a tiny lo.
    const float f = std::ldexp(static_cast<float>(next() >> 40) / 16777216.0f + 1.0f, static_cast<int>(next() % 280) - 150);
    double hi = static_cast<double>(f);
    if (next() & 1) hi += std::ldexp(static_cast<double>(f), -24);  // the midpoint above f
    if (next() & 1) hi = -hi;
    const int shift = static_cast<int>(next() % 80);
    const double lo = (next() & 1 ? 1.0 : -1.0) * std::ldexp(std::fabs(hi), -53 - shift);
    const exact r{hi, next() % 3 == 0 ? 0.0 : lo};
    EXPECT_EQ(xent::ref::round_to(r, xent::dtype::f32), static_cast<double>(xent::ref::to_float(r)))
        << xent::ref::to_string(r, 30);
    EXPECT_EQ(xent::ref::round_to(r, xent::dtype::f64), xent::ref::to_double(r)) << xent::ref::to_string(r, 30);
  }
}

TEST(reference_ulp, ulp_error_in_each_dtype) {
  using xent::dtype;
  using xent::ref::correctly_rounded;
  using xent::ref::ulp_error;
  // One step of each format at 1: bfloat16 2^-7, float16 2^-10.
  EXPECT_EQ(ulp_error(1.0 + std::ldexp(1.0, -7), {1.0, 0.0}, dtype::bf16), 1.0);
  EXPECT_EQ(ulp_error(1.0 + std::ldexp(1.0, -10), {1.0, 0.0}, dtype::f16), 1.0);
  EXPECT_EQ(ulp_error(1.0 + std::ldexp(1.0, -10), {1.0, 0.0}, dtype::bf16), std::ldexp(1.0, -3));
  EXPECT_EQ(ulp_error(1.0f, {1.0 + std::ldexp(1.0, -30), 0.0}), ulp_error(1.0, {1.0 + std::ldexp(1.0, -30), 0.0}, dtype::f32));
  EXPECT_EQ(ulp_error(1.0, {1.0, std::ldexp(1.0, -60)}, dtype::f64), std::ldexp(1.0, -8));
  // float16 subnormals: the spacing stays 2^-24 below 2^-14.
  EXPECT_EQ(ulp_error(0.0, {std::ldexp(1.0, -24), 0.0}, dtype::f16), 1.0);
  EXPECT_EQ(ulp_error(std::ldexp(3.0, -24), {std::ldexp(1.0, -24), 0.0}, dtype::f16), 2.0);
  // Beyond the range: 65504 against 65520 (which rounds to inf) is half an ulp of the top binade.
  EXPECT_EQ(ulp_error(65504.0, {65520.0, 0.0}, dtype::f16), 0.5);
  EXPECT_EQ(ulp_error(std::numeric_limits<double>::infinity(), {65520.0, 0.0}, dtype::f16), 0.0);
  EXPECT_TRUE(correctly_rounded(65504.0, {65519.0, 0.0}, dtype::f16));
  EXPECT_FALSE(correctly_rounded(65504.0, {65520.0, 0.0}, dtype::f16));
  EXPECT_TRUE(correctly_rounded(1.0, {1.0 + std::ldexp(1.0, -8), 0.0}, dtype::bf16));
  EXPECT_FALSE(correctly_rounded(1.0, {1.0 + std::ldexp(1.0, -8), 1e-30}, dtype::bf16));
  EXPECT_THROW(ulp_error(1.0, {1.0, 0.0}, dtype::i32), std::invalid_argument);
}

TEST(reference_ulp, bits_of_error_and_correct_rounding) {
  using xent::ref::bits_of_error;
  using xent::ref::correctly_rounded;
  const float one_up = std::nextafter(1.0f, 2.0f);
  EXPECT_EQ(bits_of_error(1.0f, {1.0, 0.0}), 0.0);
  EXPECT_EQ(bits_of_error(one_up, {1.0, 0.0}), 1.0);
  // Three floats above RN(r) = 1 (r just below 1 rounds up).
  EXPECT_EQ(bits_of_error(1.0f + 3 * std::ldexp(1.0f, -23), {std::nextafter(1.0, 0.0), 0.0}), 2.0);
  EXPECT_EQ(bits_of_error(-0.0f, {0.0, 0.0}), 0.0);
  const float tiny = std::numeric_limits<float>::denorm_min();
  EXPECT_DOUBLE_EQ(bits_of_error(-tiny, {static_cast<double>(tiny), 0.0}), std::log2(3.0));
  EXPECT_EQ(bits_of_error(nan, {std::nan(""), 0.0}), 0.0);
  EXPECT_EQ(bits_of_error(nan, {1.0, 0.0}), 32.0);
  EXPECT_EQ(bits_of_error(1.0f, {std::nan(""), 0.0}), 32.0);
  EXPECT_NEAR(bits_of_error(-inf, {std::numeric_limits<double>::infinity(), 0.0}), 32.0, 0.01);

  const double mid = 1.0 + std::ldexp(1.0, -24);
  EXPECT_TRUE(correctly_rounded(1.0f, {mid, 0.0}));
  EXPECT_FALSE(correctly_rounded(1.0f, {mid, 1e-30}));
  EXPECT_TRUE(correctly_rounded(1.0f + std::ldexp(1.0f, -23), {mid, 1e-30}));
  EXPECT_TRUE(correctly_rounded(nan, {std::nan(""), 0.0}));
  EXPECT_FALSE(correctly_rounded(nan, {1.0, 0.0}));
  EXPECT_TRUE(correctly_rounded(-0.0f, {0.0, 0.0}));
}

TEST(reference_ulp, to_string) {
  index_problem p{std::vector<float>(5, 0.0f), {1, 5}, {0}, {}, {}};
  const auto r = p.run();
  EXPECT_EQ(xent::ref::to_string(r.reduced, 21).substr(0, 20), "1.609437912434100374");
  EXPECT_EQ(xent::ref::to_string(r.reduced, 5), "1.6094");
  EXPECT_EQ(xent::ref::to_string({1e-40, 0.0}, 3), "1e-40");
  EXPECT_EQ(xent::ref::to_string({std::nan(""), 0.0}), "nan");
  EXPECT_EQ(xent::ref::to_string({-std::numeric_limits<double>::infinity(), 0.0}), "-inf");
}

}  // namespace

namespace {

bool same(const exact& a, const exact& b) {
  auto bits = [](double d) {
    std::uint64_t u;
    std::memcpy(&u, &d, sizeof u);
    return u;
  };
  return bits(a.hi) == bits(b.hi) && bits(a.lo) == bits(b.lo);
}

// compute() on threads: the same bits for any thread count (fixed chunks of
// positions, partial sums added in chunk order), every position written, the
// progress callback told about all of them, errors from a worker rethrown.
TEST(reference, threads_give_the_same_result) {
  index_problem p;
  const std::int64_t N = 203, C = 37;  // not a multiple of the chunk
  p.shape = {N, C};
  p.x.resize(static_cast<std::size_t>(N * C));
  for (std::size_t i = 0; i < p.x.size(); ++i) p.x[i] = static_cast<float>((i * 7919) % 101) * 0.173f - 8.0f;
  for (std::int64_t n = 0; n < N; ++n) p.t.push_back(n % 11 == 3 ? -100 : (n * 5) % C);
  p.opt = with(xent::reduction::mean, 0.1);
  const xent::problem pr = p.make();
  const xent::ref::result one = xent::ref::compute(pr, true);
  for (unsigned threads : {2u, 3u, 8u, 0u}) {
    xent::ref::compute_options o;
    o.threads = threads;
    std::int64_t last = -1, total = -1;
    o.progress = [&](std::int64_t done, std::int64_t all) {
      EXPECT_GE(done, last);
      last = done;
      total = all;
    };
    const xent::ref::result r = xent::ref::compute(pr, true, o);
    EXPECT_EQ(last, N) << threads;
    EXPECT_EQ(total, N) << threads;
    EXPECT_TRUE(same(r.reduced, one.reduced)) << threads << ": " << xent::ref::to_string(r.reduced) << " vs "
                                              << xent::ref::to_string(one.reduced);
    ASSERT_EQ(r.loss.size(), one.loss.size());
    ASSERT_EQ(r.grad.size(), one.grad.size());
    for (std::size_t i = 0; i < r.loss.size(); ++i) EXPECT_TRUE(same(r.loss[i], one.loss[i])) << threads << " " << i;
    std::size_t differing = 0;
    for (std::size_t i = 0; i < r.grad.size(); ++i) differing += !same(r.grad[i], one.grad[i]);
    EXPECT_EQ(differing, 0u) << threads;
  }
  // The mean is the same number as the sequential sum gives, to the double-double.
  EXPECT_GT(one.reduced.hi, 0.0);
}

}  // namespace

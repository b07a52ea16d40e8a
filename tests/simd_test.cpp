// The `simd` kernel on every Highway target this CPU supports (target in the
// test name), and `openmp`, against the accurate `stable` kernel on hard
// cases: per-sample loss and every gradient entry within 2 ulp of stable,
// reductions within 1 ulp; its row and column paths give the same bits.
// openmp: bitwise identical for 1 and 2 threads. `throughput` on every
// target: within the relaxed tier's bound of stable, bitwise identical for
// 1 and 2 threads and for strided and contiguous rows.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "hwy/targets.h"
#include "hwy/tests/hwy_gtest.h"
#include "xent/kernel.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace {

constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();

// Distance in representable floats; NaN == NaN, -0 == +0, inf only equals inf.
double ulp_distance(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : INFINITY;
  if (std::isinf(a) || std::isinf(b)) return a == b ? 0 : INFINITY;
  return static_cast<double>(std::llabs(xent::ref::ordinal(a) - xent::ref::ordinal(b)));
}

xent::tensor_view strided(float* p, std::vector<std::int64_t> shape, std::vector<std::int64_t> strides) {
  xent::tensor_view v = xent::view(p, shape);
  v.strides = std::move(strides);
  return v;
}

// One problem: logits (any strides), index or probability targets, options.
struct case_t {
  std::string name;
  std::vector<float> x;  // storage
  std::vector<std::int64_t> shape, strides;
  std::vector<std::int64_t> t;  // index targets (position shape, contiguous)
  std::vector<float> q;         // probability targets (contiguous, logits' shape)
  std::vector<float> w;
  xent::options opt;
  std::vector<float> upstream;  // none only: per position
  bool in_place = false;
  // >= 0: the gradient starts this many floats after a 64-byte boundary
  // (else wherever the allocator puts it).
  std::int64_t grad_offset = -1;
};

std::vector<std::int64_t> positions_of(const case_t& c) {
  std::vector<std::int64_t> p;
  for (std::size_t d = 0; d < c.shape.size(); ++d)
    if (d != (c.shape.size() == 1 ? 0u : 1u)) p.push_back(c.shape[d]);
  return p;
}
std::int64_t numel(const std::vector<std::int64_t>& s) {
  std::int64_t n = 1;
  for (auto e : s) n *= e;
  return n;
}

struct result {
  std::vector<float> loss;  // none: per position; else one value
  std::vector<float> grad;  // contiguous, logits' shape
};

result run(const case_t& c, const xent::implementation* impl, xent::reduction r, bool with_grad) {
  case_t k = c;  // fresh copy (in-place overwrites the logits)
  k.opt.reduce = r;
  if (!k.w.empty()) k.opt.weight = xent::view(k.w.data(), {static_cast<std::int64_t>(k.w.size())});
  const auto pos = positions_of(k);
  const xent::tensor_view logits = strided(k.x.data(), k.shape, k.strides);
  const xent::tensor_view target = k.q.empty() ? xent::view(k.t.data(), pos) : xent::view(k.q.data(), k.shape);
  result res;
  res.loss.assign(r == xent::reduction::none ? static_cast<std::size_t>(numel(pos)) : 1, -7.0f);
  const xent::tensor_view out = r == xent::reduction::none ? xent::view(res.loss.data(), pos) : xent::view(res.loss.data(), {});
  if (!with_grad) {
    xent::cross_entropy(logits, target, out, k.opt, impl);
    return res;
  }
  std::vector<float> g_storage(k.in_place ? 0 : k.x.size() + 32, -7.0f);
  float* g = g_storage.data();
  if (k.grad_offset >= 0 && !k.in_place) {
    while (reinterpret_cast<std::uintptr_t>(g) % 64 != 0) ++g;
    g += k.grad_offset;
  }
  const xent::tensor_view grad = k.in_place ? logits : strided(g, k.shape, k.strides);
  xent::tensor_view up;
  const xent::tensor_view* upp = nullptr;
  if (!k.upstream.empty() && r == xent::reduction::none) {
    up = xent::view(k.upstream.data(), pos);
    upp = &up;
  }
  xent::cross_entropy_forward_backward(logits, target, out, grad, k.opt, upp, impl);
  // Gather the gradient through the logits' strides into row-major order.
  const float* store = k.in_place ? k.x.data() : g;
  const std::int64_t n = numel(k.shape);
  res.grad.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t rem = i, off = 0;
    for (std::size_t d = k.shape.size(); d-- > 0;) {
      off += (rem % k.shape[d]) * k.strides[d];
      rem /= k.shape[d];
    }
    res.grad[i] = store[off];
  }
  return res;
}

struct worst {
  double loss = 0, grad = 0, reduced = 0;
};

// The largest distance from stable allowed (the tier's bound plus stable's
// own half ulp, rounded down to what a distance in floats can be).
struct limits {
  double loss = 2, grad = 2, reduced = 1;
};

// Compares impl with stable for none (+gradient, per-position upstream), mean and sum.
worst compare(const case_t& c, const xent::implementation* impl, limits lim = {}) {
  const auto* stable = xent::find_implementation("stable");
  worst w;
  for (bool grad : {false, true}) {
    const result a = run(c, impl, xent::reduction::none, grad), b = run(c, stable, xent::reduction::none, grad);
    for (std::size_t i = 0; i < a.loss.size(); ++i) {
      const double d = ulp_distance(a.loss[i], b.loss[i]);
      w.loss = std::max(w.loss, d);
      EXPECT_LE(d, lim.loss) << c.name << " loss at " << i << ": " << a.loss[i] << " vs stable " << b.loss[i];
    }
    for (std::size_t i = 0; i < a.grad.size(); ++i) {
      const double d = ulp_distance(a.grad[i], b.grad[i]);
      w.grad = std::max(w.grad, d);
      EXPECT_LE(d, lim.grad) << c.name << " grad at " << i << ": " << a.grad[i] << " vs stable " << b.grad[i];
      if (d > lim.grad) break;
    }
    for (auto r : {xent::reduction::mean, xent::reduction::sum}) {
      const result x = run(c, impl, r, grad), y = run(c, stable, r, grad);
      const double d = ulp_distance(x.loss[0], y.loss[0]);
      w.reduced = std::max(w.reduced, d);
      EXPECT_LE(d, lim.reduced) << c.name << " " << xent::to_string(r) << ": " << x.loss[0] << " vs stable " << y.loss[0];
      for (std::size_t i = 0; i < x.grad.size(); ++i) {
        const double e = ulp_distance(x.grad[i], y.grad[i]);
        w.grad = std::max(w.grad, e);
        EXPECT_LE(e, lim.grad) << c.name << " " << xent::to_string(r) << " grad at " << i << ": " << x.grad[i] << " vs " << y.grad[i];
        if (e > lim.grad) break;
      }
    }
  }
  return w;
}

case_t dense(std::string name, std::int64_t N, std::int64_t C, std::uint32_t seed, float scale) {
  case_t c;
  c.name = std::move(name);
  c.shape = {N, C};
  c.strides = {C, 1};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  c.x.resize(static_cast<std::size_t>(N * C));
  for (auto& v : c.x) v = nd(rng);
  std::uniform_int_distribution<std::int64_t> cls(0, C - 1);
  c.t.resize(static_cast<std::size_t>(N));
  for (auto& t : c.t) t = cls(rng);
  c.upstream.resize(static_cast<std::size_t>(N));
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  for (auto& u : c.upstream) u = ud(rng);
  return c;
}

std::vector<case_t> hard_cases() {
  std::vector<case_t> cs;
  cs.push_back(dense("normal_37x1000", 37, 1000, 1, 3.0f));
  cs.push_back(dense("tiny_C2", 64, 2, 2, 1.0f));
  cs.push_back(dense("C1", 5, 1, 3, 1.0f));
  cs.push_back(dense("odd_C_tails", 9, 37, 4, 5.0f));
  for (float margin : {20.0f, 50.0f, 100.0f}) {
    for (std::int64_t C : {2, 1000, 4099}) {
      case_t c = dense("dominant_" + std::to_string(int(margin)) + "_C" + std::to_string(C), 8, C, 5, 1.0f);
      for (std::int64_t n = 0; n < 8; ++n) {
        for (std::int64_t j = 0; j < C; ++j) c.x[n * C + j] = -std::abs(c.x[n * C + j]);
        c.x[n * C + c.t[n]] = margin + 0.3f * float(n);
        // one row: target is second, just below the max
        if (n == 3) c.x[n * C + c.t[n]] = -1e-6f;
      }
      cs.push_back(c);
    }
  }
  {
    case_t c = dense("huge_1e30", 16, 300, 6, 1.0f);
    std::mt19937 rng(7);
    for (auto& v : c.x) v = (rng() & 1 ? 1e30f : -1e30f) * (1.0f + float(rng() % 1000) * 1e-3f);
    cs.push_back(c);
    case_t d = c;
    d.name = "huge_3e38";
    for (auto& v : d.x) v = v > 0 ? 3e38f : -3e38f;
    d.x[5] = 3.1e38f;
    cs.push_back(d);
  }
  {
    // Huge weights (a = w_t / S ~ 1e20 with reduction none or sum): entries
    // e^{x - M} far below the e^-86 cut-off still have normal gradients
    // (1e20 e^-100 = 3.7e-24), computed in float64, in every vector.
    for (std::int64_t C : {100, 3000}) {
      case_t c = dense("huge_weight_far_classes_C" + std::to_string(C), 3, C, 54, 1.0f);
      std::mt19937 rng(55);
      std::uniform_real_distribution<float> u(-150.0f, -60.0f);
      for (std::int64_t n = 0; n < 3; ++n)
        for (std::int64_t j = 0; j < C; ++j) c.x[n * C + j] = j == c.t[n] ? 0.0f : u(rng);
      c.w.assign(static_cast<std::size_t>(C), 1e20f);
      cs.push_back(c);
    }
  }
  {
    case_t c = dense("near_88p7", 16, 257, 8, 1.0f);
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(80.0f, 89.0f);
    for (std::size_t i = 0; i < c.x.size(); ++i) c.x[i] = (i / 257) % 2 ? u(rng) : -u(rng);
    cs.push_back(c);
  }
  {
    case_t c = dense("spread_200", 16, 513, 10, 60.0f);  // many subnormal gradient entries
    cs.push_back(c);
  }
  {
    case_t c = dense("neg_inf_mask", 12, 700, 11, 2.0f);
    for (std::int64_t n = 0; n < 12; ++n)
      for (std::int64_t j = 0; j < 700; ++j)
        if ((j * 7 + n) % 3 == 0 && j != c.t[n]) c.x[n * 700 + j] = -inf;
    c.x[5 * 700 + c.t[5]] = -inf;  // -inf on the target: +inf loss
    cs.push_back(c);
  }
  {
    // The max scan runs four chains of vectors, then single vectors, then a
    // tail: a NaN in any of them must make the row NaN (80 distinct positions
    // of 200, on every target's vector length).
    case_t c = dense("nan_in_every_scan_chain", 80, 200, 16, 2.0f);
    for (std::int64_t n = 0; n < 80; ++n) c.x[n * 200 + (n * 41) % 200] = nan_f;
    cs.push_back(c);
  }
  {
    case_t c = dense("special_rows", 6, 100, 12, 2.0f);
    c.x[0 * 100 + 17] = nan_f;
    c.x[1 * 100 + 3] = inf;
    for (int j = 0; j < 100; ++j) c.x[2 * 100 + j] = -inf;
    c.x[4 * 100 + 99] = nan_f;
    cs.push_back(c);
  }
  {
    case_t c = dense("weights_ignore_smoothing", 40, 333, 13, 3.0f);
    std::mt19937 rng(14);
    c.w.resize(333);
    for (auto& w : c.w) w = 0.1f + float(rng() % 100) * 0.05f;
    c.opt.ignore_index = 7;
    for (std::size_t n = 0; n < c.t.size(); n += 5) c.t[n] = 7;
    c.opt.label_smoothing = 0.1;
    cs.push_back(c);
    case_t d = c;
    d.name = "weights_ignore_smoothing_1";
    d.opt.label_smoothing = 1.0;
    cs.push_back(d);
    case_t e = c;
    e.name = "weights_no_smoothing";
    e.opt.label_smoothing = 0.0;
    cs.push_back(e);
  }
  for (double eps : {0.0, 0.2}) {
    case_t c = dense("prob_targets_eps" + std::to_string(int(eps * 10)), 20, 150, 15, 2.0f);
    std::mt19937 rng(16);
    c.q.resize(c.x.size());
    for (std::int64_t n = 0; n < 20; ++n) {
      float s = 0;
      for (int j = 0; j < 150; ++j) s += c.q[n * 150 + j] = float(rng() % 1000) / 1000.0f;
      for (int j = 0; j < 150; ++j) c.q[n * 150 + j] /= s;
    }
    c.opt.label_smoothing = eps;
    c.w.assign(150, 1.5f);
    c.w[3] = 0.0f;
    cs.push_back(c);
  }
  {
    // (N, C, d1, d2) = (3, 7, 5, 4): class stride 20.
    case_t c = dense("NCd", 3 * 5 * 4, 7, 17, 2.0f);
    c.name = "NCd";
    c.shape = {3, 7, 5, 4};
    c.strides = {140, 20, 4, 1};
    c.upstream.clear();
    std::mt19937 rng(18);
    c.t.resize(60);
    for (auto& t : c.t) t = rng() % 7;
    cs.push_back(c);
    case_t d = c;
    d.name = "NCd_smoothing_weights";
    d.opt.label_smoothing = 0.3;
    d.w = {1, 2, 0.5f, 3, 1, 1, 0.25f};
    cs.push_back(d);
    case_t e = c;
    e.name = "NCd_prob";
    e.q.resize(e.x.size());
    for (auto& v : e.q) v = float(rng() % 100) / 700.0f;
    cs.push_back(e);
  }
  {
    // [B, T, C] with B=3, T=10, C=101, sliced [:, 4:] -> positions (3, 6), row stride 101, batch stride 1010.
    case_t c = dense("sliced_BTC", 30, 101, 19, 2.0f);
    c.shape = {3, 6, 101};  // class axis is dim 1 for 3-d: use (N, C, d) convention instead
    // A sliced (N, C) view: every other row of a [24, 101] buffer.
    c.shape = {12, 101};
    c.strides = {202, 1};
    c.x.resize(24 * 101);
    c.t.resize(12);
    c.upstream.resize(12);
    cs.push_back(c);
  }
  {
    case_t c = dense("in_place", 10, 2000, 20, 4.0f);
    c.in_place = true;
    cs.push_back(c);
    case_t d = c;
    d.name = "in_place_smoothing";
    d.opt.label_smoothing = 0.05;
    cs.push_back(d);
  }
  cs.push_back(dense("long_row_256000", 1, 256000, 21, 2.0f));
  {
    case_t c = dense("long_rows_dominant", 2, 70001, 22, 1.0f);
    c.x[c.t[0]] = 60.0f;
    cs.push_back(c);
  }
  return cs;
}

// --- simd on every target ----------------------------------------------------

class simd_target : public hwy::TestWithParamTarget {};

TEST_P(simd_target, dispatches_to_the_forced_target) {
  const auto* simd = xent::find_implementation("simd");
  ASSERT_NE(simd, nullptr);
  EXPECT_NE(simd->description().find(hwy::TargetName(GetParam())), std::string::npos) << simd->description();
}

TEST_P(simd_target, matches_stable_on_hard_cases) {
  const auto* simd = xent::find_implementation("simd");
  worst all;
  for (const auto& c : hard_cases()) {
    const worst w = compare(c, simd);
    all.loss = std::max(all.loss, w.loss);
    all.grad = std::max(all.grad, w.grad);
    all.reduced = std::max(all.reduced, w.reduced);
  }
  // Print the worst distances even on success (Highway's habit).
  std::printf("[%s] worst ulp vs stable: loss %.0f, grad %.0f, mean/sum %.0f\n", hwy::TargetName(GetParam()),
              all.loss, all.grad, all.reduced);
}

// The three paths of the simd kernel (rows; (N, C, d) with positions in
// lanes; few-class rows transposed into lanes) give the same bits for the
// same rows, on every target: an (N, C, d) tensor, its (N*d, C) copy and each
// row alone.
TEST_P(simd_target, row_and_column_paths_give_the_same_bits) {
  const auto* simd = xent::find_implementation("simd");
  for (const std::int64_t C : {2, 7, 21, 40, 300}) {
    const std::int64_t N = 3, D = 37, P = N * D;
    std::mt19937 gen(static_cast<std::uint32_t>(C));
    std::normal_distribution<float> normal(0.0f, 4.0f);
    case_t s;  // (N, C, D)
    s.name = "NCd C=" + std::to_string(C);
    s.shape = {N, C, D};
    s.strides = {C * D, D, 1};
    s.x.resize(static_cast<std::size_t>(P * C));
    for (auto& v : s.x) v = normal(gen);
    s.x[5] = -inf;                    // a masked class
    s.x[static_cast<std::size_t>(D + 3)] = 60.0f;  // a dominant class at one position
    s.t.resize(static_cast<std::size_t>(P));
    for (std::int64_t p = 0; p < P; ++p) s.t[p] = (p * 7) % C;
    s.t[4] = -100;  // ignored
    case_t r = s;  // (N*D, C) copy, positions in the same order
    r.shape = {P, C};
    r.strides = {C, 1};
    for (std::int64_t p = 0; p < P; ++p)
      for (std::int64_t c = 0; c < C; ++c)
        r.x[p * C + c] = s.x[(p / D) * C * D + c * D + p % D];
    const result a = run(s, simd, xent::reduction::none, true), b = run(r, simd, xent::reduction::none, true);
    for (std::int64_t p = 0; p < P; ++p) {
      case_t one = r;  // row p alone: the row path
      one.shape = {1, C};
      one.x.assign(r.x.begin() + p * C, r.x.begin() + (p + 1) * C);
      one.t = {r.t[p]};
      const result o = run(one, simd, xent::reduction::none, true);
      EXPECT_EQ(std::memcmp(&o.loss[0], &b.loss[p], sizeof(float)), 0) << s.name << " row " << p;
      EXPECT_EQ(std::memcmp(o.grad.data(), &b.grad[p * C], C * sizeof(float)), 0) << s.name << " row " << p;
    }
    ASSERT_EQ(a.loss.size(), b.loss.size());
    EXPECT_EQ(std::memcmp(a.loss.data(), b.loss.data(), a.loss.size() * sizeof(float)), 0) << s.name;
    for (std::int64_t p = 0; p < P; ++p)
      for (std::int64_t c = 0; c < C; ++c)
        ASSERT_EQ(std::memcmp(&a.grad[(p / D) * C * D + c * D + p % D], &b.grad[p * C + c], sizeof(float)), 0)
            << s.name << " position " << p << " class " << c;
  }
}

// C = 1: softmax over one class is 1, so the loss and every gradient entry
// are exactly 0, also where the gradient is evaluated as p_j (A - b_j) -
// b_j (1 - p_j) (probability targets, label smoothing): A - b_j must cancel
// exactly, which needs b_j computed the same way in vector lanes and in the
// tail on every target (the scalar target's lanes once differed from its
// tail: 6.27e-18 on the first case below, found by the slow property suite).
TEST_P(simd_target, one_class_gives_exact_zero) {
  const auto* simd = xent::find_implementation("simd");
  std::mt19937 gen(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_real_distribution<float> unit(-0.5f, 1.5f);
  std::vector<case_t> cs;
  {
    case_t c;  // the property suite's counterexample
    c.name = "n2c1_prob_eps0.1_w_g";
    c.shape = {2, 1};
    c.strides = {1, 1};
    c.x = {2.92496443f, -0.00219167257f};
    c.q = {1.0f, 0.394189894f};
    c.w = {0.26325646f};
    c.upstream = {-0.903575599f, 0.5f};
    c.opt.label_smoothing = 0.1;
    cs.push_back(c);
  }
  // Every vector length's lanes and tails: N up to a few vectors of doubles.
  for (const std::int64_t N : {1, 3, 8, 17, 40}) {
    case_t c;
    c.shape = {N, 1};
    c.strides = {1, 1};
    for (std::int64_t p = 0; p < N; ++p) {
      c.x.push_back(normal(gen));
      c.q.push_back(unit(gen));
      c.upstream.push_back(normal(gen));
    }
    c.w = {0.7f};
    for (const double eps : {0.0, 0.1, 0.37, 1.0}) {
      case_t prob = c;
      prob.name = "prob N=" + std::to_string(N) + " eps=" + std::to_string(eps);
      prob.opt.label_smoothing = eps;
      cs.push_back(prob);
      case_t idx = prob;  // index targets with smoothing share the smoothed gradient
      idx.name = "index N=" + std::to_string(N) + " eps=" + std::to_string(eps);
      idx.q.clear();
      idx.t.assign(static_cast<std::size_t>(N), 0);
      cs.push_back(idx);
    }
  }
  for (const auto& c : cs)
    for (auto r : {xent::reduction::none, xent::reduction::mean, xent::reduction::sum}) {
      const result res = run(c, simd, r, true);
      const std::string what = c.name + " " + xent::to_string(r) + " on " + hwy::TargetName(GetParam());
      for (std::size_t i = 0; i < res.loss.size(); ++i) EXPECT_EQ(res.loss[i], 0.0f) << what << " loss " << i;
      for (std::size_t i = 0; i < res.grad.size(); ++i) EXPECT_EQ(res.grad[i], 0.0f) << what << " grad " << i;
    }
}

INSTANTIATE_TEST_SUITE_P(simd, simd_target, ::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()),
                         hwy::TestParamTargetName);

// --- openmp --------------------------------------------------------------------

TEST(openmp, matches_stable_on_hard_cases) {
  const auto* omp = xent::find_implementation("openmp");
  ASSERT_NE(omp, nullptr);
  EXPECT_TRUE(omp->thread_count_independent());
  for (const auto& c : hard_cases()) compare(c, omp);
}

void expect_bitwise(const result& a, const result& b, const std::string& what) {
  ASSERT_EQ(a.loss.size(), b.loss.size());
  ASSERT_EQ(a.grad.size(), b.grad.size());
  // memcmp with a null pointer is undefined even for 0 bytes: compare only non-empty.
  if (!a.loss.empty()) {
    EXPECT_EQ(std::memcmp(a.loss.data(), b.loss.data(), a.loss.size() * 4), 0) << what;
  }
  if (!a.grad.empty()) {
    EXPECT_EQ(std::memcmp(a.grad.data(), b.grad.data(), a.grad.size() * 4), 0) << what;
  }
}

TEST(openmp, bitwise_identical_for_1_and_2_threads) {
  const auto* omp = xent::find_implementation("openmp");
  const auto* simd = xent::find_implementation("simd");
  std::vector<case_t> cs = {dense("rows_300x1000", 300, 1000, 30, 3.0f), dense("one_long_row", 1, 256000, 31, 2.0f),
                            dense("long_rows_3x100000", 3, 100000, 32, 2.0f)};
  cs.push_back(cs[1]);
  cs.back().name = "one_long_row_smoothing";
  cs.back().opt.label_smoothing = 0.1;
  const int saved = omp_get_max_threads();
  for (const auto& c : cs)
    for (auto r : {xent::reduction::none, xent::reduction::mean, xent::reduction::sum})
      for (bool grad : {false, true}) {
        omp_set_num_threads(1);
        const result one = run(c, omp, r, grad);
        omp_set_num_threads(2);
        const result two = run(c, omp, r, grad);
        const std::string what = c.name + " " + xent::to_string(r) + (grad ? " +grad" : "");
        expect_bitwise(one, two, what);
        expect_bitwise(one, run(c, simd, r, grad), what + " (vs simd)");
      }
  omp_set_num_threads(saved);
}

// --- throughput ----------------------------------------------------------------

// Rows the relaxed numerics compute (index targets, no smoothing, C > 128):
// wide spreads (terms down to the e^-86 cut-off and subnormal gradient
// entries), dominant targets, ties at the max, -inf classes, long rows in
// chunks, weights and ignored rows, strided rows and the in-place gradient;
// rows of one block (C <= 2048) as well as of many.
std::vector<case_t> relaxed_cases() {
  std::vector<case_t> cs;
  cs.push_back(dense("relaxed_normal_6x5000", 6, 5000, 40, 3.0f));
  cs.push_back(dense("relaxed_one_block_40x1000", 40, 1000, 54, 3.0f));
  cs.push_back(dense("relaxed_smallest_C_70x129", 70, 129, 55, 5.0f));
  cs.push_back(dense("relaxed_full_block_5x2048", 5, 2048, 56, 30.0f));
  {
    case_t c = dense("relaxed_one_block_dominant_8x300", 8, 300, 57, 1.0f);
    for (std::int64_t n = 0; n < 8; ++n) c.x[n * 300 + c.t[n]] = 10.0f + 8.0f * float(n);
    c.x[3 * 300 + 7] = nan_f;
    c.x[5 * 300 + (c.t[5] + 1) % 300] = c.x[5 * 300 + c.t[5]];  // a tie with the target
    cs.push_back(c);
  }
  cs.push_back(dense("relaxed_spread_4x4099", 4, 4099, 41, 40.0f));
  {
    case_t c = dense("relaxed_near_cutoff_3x6000", 3, 6000, 42, 1.0f);
    std::mt19937 rng(43);
    std::uniform_real_distribution<float> u(-87.0f, -84.0f);
    for (std::int64_t n = 0; n < 3; ++n)
      for (std::int64_t j = 0; j < 6000; ++j) c.x[n * 6000 + j] = j == c.t[n] ? 0.0f : u(rng);
    cs.push_back(c);
  }
  for (float margin : {5.0f, 20.0f, 60.0f}) {
    case_t c = dense("relaxed_dominant_" + std::to_string(int(margin)), 4, 32000, 44, 1.0f);
    for (std::int64_t n = 0; n < 4; ++n) c.x[n * 32000 + c.t[n]] = margin + float(n);
    c.x[2 * 32000 + c.t[2]] = -1e-6f;  // target just below the max
    c.x[2 * 32000 + (c.t[2] + 1) % 32000] = margin;
    cs.push_back(c);
  }
  {
    case_t c = dense("relaxed_ties_mask", 4, 3000, 45, 2.0f);
    for (std::int64_t n = 0; n < 4; ++n)
      for (std::int64_t j = 0; j < 3000; ++j) {
        if (j % 5 == 0) c.x[n * 3000 + j] = 9.0f;
        if (j % 7 == 3 && j != c.t[n]) c.x[n * 3000 + j] = -inf;
      }
    cs.push_back(c);
  }
  {
    // A zero max with ties of both signs: -0 and +0 both tie (e^0 = 1 each),
    // in rows whose max is +0, -0 only, or a target at -0.
    case_t c = dense("relaxed_signed_zero_ties", 3, 3000, 51, 1.0f);
    for (std::int64_t n = 0; n < 3; ++n)
      for (std::int64_t j = 0; j < 3000; ++j) {
        float& x = c.x[n * 3000 + j];
        x = -std::fabs(x) - 0.01f;
        if (j % 13 == 0) x = -0.0f;
        if (n != 1 && j % 11 == 0) x = 0.0f;
      }
    c.x[2 * 3000 + c.t[2]] = -0.0f;
    cs.push_back(c);
  }
  {
    // The relaxed max scan flags no NaN: a NaN must still make its row NaN
    // wherever it lies (blocks of 2048: 0, 1 and a 404-wide tail), whatever
    // its sign, and where Max forgets the lane's earlier max (a NaN after the
    // max in the same accumulator: 192 apart is the same lane of the same
    // chain on every target), in a block of -inf, of ties, of NaN only, or
    // as the target. Rows 0, 5 and 11 hold no NaN.
    constexpr std::int64_t C = 4500;
    case_t c = dense("relaxed_nan_anywhere", 12, C, 52, 2.0f);
    const float neg_nan = -nan_f;
    auto row = [&](std::int64_t n) { return c.x.begin() + n * C; };
    row(1)[0] = nan_f;
    row(2)[100] = 50.0f, row(2)[100 + 192] = nan_f;
    std::fill(row(3) + 2048, row(3) + 4096, -inf), row(3)[3000] = nan_f;
    row(4)[C - 1] = nan_f;
    std::fill(row(6) + 4096, row(6) + C, 0.0f), row(6)[4200] = nan_f;
    row(7)[3000] = neg_nan;
    std::fill(row(8), row(8) + C, nan_f);
    row(9)[c.t[9]] = nan_f;
    row(10)[2047] = inf, row(10)[2048] = nan_f;
    std::fill(row(11) + 2048, row(11) + 4096, -inf);
    cs.push_back(c);
    // A last block of one element, NaN (its max is that NaN or -inf).
    case_t d = dense("relaxed_nan_last_block_of_one", 2, 4097, 53, 2.0f);
    d.x[4096] = nan_f;
    cs.push_back(d);
  }
  {
    case_t c = dense("relaxed_weights_ignore", 12, 2500, 46, 4.0f);
    c.w.resize(2500);
    std::mt19937 rng(47);
    for (auto& w : c.w) w = 0.1f + float(rng() % 100) * 0.05f;
    c.opt.ignore_index = 11;
    for (std::size_t n = 0; n < c.t.size(); n += 4) c.t[n] = 11;
    cs.push_back(c);
  }
  {
    case_t c = dense("relaxed_strided", 6, 3000, 48, 3.0f);
    c.strides = {6000, 2};
    c.x.resize(6 * 6000);
    cs.push_back(c);
    case_t d = dense("relaxed_in_place", 5, 4000, 49, 3.0f);
    d.in_place = true;
    cs.push_back(d);
  }
  cs.push_back(dense("relaxed_long_rows_2x70001", 2, 70001, 50, 2.0f));
  return cs;
}

class throughput_target : public hwy::TestWithParamTarget {};

TEST_P(throughput_target, within_the_relaxed_tier_of_stable) {
  const auto* thr = xent::find_implementation("throughput");
  ASSERT_NE(thr, nullptr);
  EXPECT_EQ(thr->tier(), xent::tier::relaxed);
  // stable is correctly rounded: the distance to it is at most the bound plus one float.
  const double bound = xent::relaxed_tier_ulps + 1;
  worst all;
  auto cases = relaxed_cases();
  for (auto& c : hard_cases()) cases.push_back(c);  // the other paths: openmp's numerics
  for (const auto& c : cases) {
    const worst w = compare(c, thr, {bound, bound, bound});
    all.loss = std::max(all.loss, w.loss);
    all.grad = std::max(all.grad, w.grad);
    all.reduced = std::max(all.reduced, w.reduced);
  }
  std::printf("[%s] throughput worst ulp vs stable: loss %.0f, grad %.0f, mean/sum %.0f\n",
              hwy::TargetName(GetParam()), all.loss, all.grad, all.reduced);
}

// Thread count and layout change no bit: 1 and 2 threads, and a strided view
// against its contiguous copy.
TEST_P(throughput_target, bitwise_independent_of_threads_and_layout) {
  const auto* thr = xent::find_implementation("throughput");
  const int saved = omp_get_max_threads();
  for (const auto& c : relaxed_cases())
    for (auto r : {xent::reduction::none, xent::reduction::mean, xent::reduction::sum})
      for (bool grad : {false, true}) {
        omp_set_num_threads(1);
        const result one = run(c, thr, r, grad);
        omp_set_num_threads(2);
        const result two = run(c, thr, r, grad);
        const std::string what = c.name + " " + xent::to_string(r) + (grad ? " +grad" : "");
        expect_bitwise(one, two, what);
        if (c.strides.back() != 1) {
          case_t dense_copy = c;
          const std::int64_t N = c.shape[0], C = c.shape[1];
          dense_copy.strides = {C, 1};
          dense_copy.x.resize(static_cast<std::size_t>(N * C));
          for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t j = 0; j < C; ++j) dense_copy.x[n * C + j] = c.x[n * c.strides[0] + j * c.strides[1]];
          expect_bitwise(one, run(dense_copy, thr, r, grad), what + " (vs contiguous)");
        }
      }
  omp_set_num_threads(saved);
}

// The (N, C, d) layout: the column paths compute the fast numerics, so the
// relaxed rows (C > 128) take the row path there too and every position
// gets the bits of the same row stored contiguously; C <= 128 stays on the
// column paths (the fast numerics in both layouts).
TEST_P(throughput_target, class_strided_positions_equal_contiguous_rows) {
  const auto* thr = xent::find_implementation("throughput");
  for (std::int64_t C : {100, 129, 300}) {
    constexpr std::int64_t N = 3, D = 20;
    case_t rows = dense("rows_C" + std::to_string(C), N * D, C, 58, 4.0f);
    rows.x[5 * C + 3] = nan_f;
    case_t cols = rows;
    cols.name = "ncd_C" + std::to_string(C);
    cols.shape = {N, C, D};
    cols.strides = {C * D, D, 1};
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t d = 0; d < D; ++d)
        for (std::int64_t j = 0; j < C; ++j) cols.x[(n * C + j) * D + d] = rows.x[(n * D + d) * C + j];
    for (bool grad : {false, true}) {
      const result a = run(rows, thr, xent::reduction::none, grad), b = run(cols, thr, xent::reduction::none, grad);
      const std::string what = cols.name + (grad ? " +grad" : "");
      ASSERT_EQ(a.loss.size(), b.loss.size()) << what;
      EXPECT_EQ(std::memcmp(a.loss.data(), b.loss.data(), a.loss.size() * 4), 0) << what << ": losses";
      if (!grad) continue;
      std::int64_t differ = 0;
      for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t d = 0; d < D; ++d)
          for (std::int64_t j = 0; j < C; ++j)
            differ += std::memcmp(&a.grad[static_cast<std::size_t>((n * D + d) * C + j)],
                                  &b.grad[static_cast<std::size_t>((n * C + j) * D + d)], 4) != 0;
      EXPECT_EQ(differ, 0) << what << ": gradient entries differ";
    }
  }
}

// A gradient of 8 MiB or more is streamed, and a row's gradient is then
// written during the scan of the thread's next row (simd::pending_grad).
// Every row must come out bitwise as it does computed alone (a one-row
// problem writes at once), whatever its neighbours: rows that stop their
// scan early (NaN, +inf), a block of -inf, entries below the e^-86 cut-off,
// lone zero or tiny lanes, targets at block edges, ignored rows, infinite and zero upstream
// gradients (an infinite scale writes at once), factors of 2^100 and more
// (huge weights), rows that are not vector-aligned, long rows in chunks.
std::vector<case_t> streamed_cases() {
  std::vector<case_t> cs;
  for (std::int64_t C : {7008, 7001}) {
    case_t c = dense("streamed_300x" + std::to_string(C), 300, C, 60, 3.0f);
    auto row = [&](std::int64_t n) { return c.x.begin() + n * C; };
    row(3)[5] = nan_f;
    row(4)[C - 1] = nan_f;
    row(7)[100] = inf;
    std::fill(row(11), row(11) + 2048, -inf);
    std::mt19937 rng(61);
    std::normal_distribution<float> wide(0.0f, 40.0f);
    for (std::int64_t j = 0; j < C; ++j) row(13)[j] = wide(rng);
    // Lone lanes to patch in the 2nd, 3rd and 4th vector of a group of four
    // (any vector width: these offsets modulo 64 are 21, 46 and 63): 90
    // below the max in row 14 (no stored exponential, a subnormal gradient
    // entry from float64), 75 below in row 15 (a product below 2^-100).
    const float max14 = *std::max_element(row(14), row(14) + C), max15 = *std::max_element(row(15), row(15) + C);
    for (std::int64_t j : {64 * 10 + 21, 64 * 20 + 46, 64 * 30 + 63}) {
      row(14)[j] = max14 - 90.0f;
      row(15)[j] = max15 - 75.0f;
    }
    c.t[17] = 0, c.t[18] = C - 1, c.t[19] = 2048, c.t[20] = 2047;
    c.opt.ignore_index = -5;
    c.t[21] = c.t[22] = c.t[299] = -5;
    c.upstream[25] = inf, c.upstream[26] = 0.0f, c.upstream[27] = -inf;
    c.grad_offset = 0;  // 7008: every row vector-aligned; 7001: some
    cs.push_back(c);
    if (C == 7008) {
      c.name += "_unaligned";
      c.grad_offset = 1;  // no row aligned
      cs.push_back(c);
    }
  }
  {
    case_t c = dense("streamed_huge_weights_300x7008", 300, 7008, 62, 2.0f);
    c.w.assign(7008, 1.0f);
    for (std::int64_t n = 0; n < 300; n += 3) c.w[static_cast<std::size_t>(c.t[n])] = 1e35f;
    c.grad_offset = 0;
    cs.push_back(c);
  }
  cs.push_back(dense("streamed_long_rows_33x70000", 33, 70000, 63, 2.0f));
  cs.back().grad_offset = 0;
  return cs;
}

TEST_P(throughput_target, streamed_rows_equal_rows_computed_alone) {
  const auto* thr = xent::find_implementation("throughput");
  const int saved = omp_get_max_threads();
  for (const auto& c : streamed_cases()) {
    const std::int64_t N = c.shape[0], C = c.shape[1];
    ASSERT_GE(N * C * 4, std::int64_t{8} << 20) << c.name << ": too small to stream";
    for (auto r : {xent::reduction::none, xent::reduction::sum})
      for (int threads : {1, 2}) {
        omp_set_num_threads(threads);
        const result all = run(c, thr, r, true);
        for (std::int64_t n = 0; n < N; ++n) {
          case_t one = c;
          one.shape = {1, C};
          one.x.assign(c.x.begin() + n * C, c.x.begin() + (n + 1) * C);
          one.t = {c.t[static_cast<std::size_t>(n)]};
          one.upstream = {c.upstream[static_cast<std::size_t>(n)]};
          const result alone = run(one, thr, r, true);
          const std::string what = c.name + " row " + std::to_string(n) + " " + xent::to_string(r) + " " +
                                   std::to_string(threads) + " threads";
          ASSERT_EQ(std::memcmp(alone.grad.data(), all.grad.data() + n * C, static_cast<std::size_t>(C) * 4), 0)
              << what;
          if (r == xent::reduction::none) {
            ASSERT_EQ(std::memcmp(&alone.loss[0], &all.loss[static_cast<std::size_t>(n)], 4), 0) << what;
          }
        }
      }
  }
  omp_set_num_threads(saved);
}

INSTANTIATE_TEST_SUITE_P(throughput, throughput_target, ::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()),
                         hwy::TestParamTargetName);

}  // namespace

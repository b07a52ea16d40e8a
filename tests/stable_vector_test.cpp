// stable's vector path (impl/src/stable_vector.hpp) on every Highway target
// of this CPU: the exponential within the bound the rounding test assumes,
// the row max and NaN scan as the scalar scan, and the correctly rounded
// results (the same bits on every target, equal to the reference rounded
// once) on rows that exercise the vector rounding test and its fallbacks.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "stable_vector.hpp"
#include "xent/kernel.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace {

constexpr float ninf = -std::numeric_limits<float>::infinity();

// Runs f once per target this CPU has (the best first), pinned.
template <class F>
void on_every_target(F f) {
  for (const std::int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    f(std::string(hwy::TargetName(target)));
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(stable_vector, exponential_is_within_its_bound_on_every_target) {
  // Margins d = -x_j (the max is x_0 = 0, so m - x_j is exact): a dense grid
  // over [0, 760], the Cody-Waite interval ends k ln2 +- ln2/2, the
  // subnormal range and the flush threshold 745.2, random floats, -inf.
  std::vector<float> x{0.0f};
  for (int i = 0; i <= 76000; ++i) x.push_back(-static_cast<float>(i) / 100.0f);
  for (int k = 0; k <= 1080; ++k)
    for (const double off : {-0.5, 0.5}) {
      const auto v = static_cast<float>(-(k + off) * 0.6931471805599453);
      if (v < 0.0f)
        for (const float w : {v, std::nextafter(v, ninf), std::nextafter(v, 0.0f)}) x.push_back(w);
    }
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> margin(0.0f, 750.0f);
  for (int i = 0; i < 20000; ++i) x.push_back(-margin(rng));
  for (const float v : {-745.1f, -745.2f, -745.3f, -708.3f, -708.4f, -1e-30f, -1e-45f, ninf}) x.push_back(v);
  const auto C = static_cast<std::int64_t>(x.size());
  on_every_target([&](const std::string& target) {
    std::vector<double> e(x.size());
    const xent::stable_vector::row_exponentials r = xent::stable_vector::exponentials(x.data(), C, 0.0f, 0, e.data());
    EXPECT_EQ(e[0], 1.0);
    long double worst = 0.0L, sum = 0.0L;
    for (std::int64_t j = 1; j < C; ++j) {
      const long double exact = std::exp(static_cast<long double>(x[j]));  // 64-bit significand
      sum += exact;
      const long double diff = std::fabs(static_cast<long double>(e[j]) - exact);
      if (exact >= 0x1p-1022L) {
        worst = std::max(worst, diff / exact);
        ASSERT_LE(diff, xent::stable_vector::kExpError * exact) << "d = " << -x[j];
      } else {
        ASSERT_LE(diff, 0x1p-1074L) << "d = " << -x[j];  // subnormal or flushed
      }
    }
    std::printf("  %s: worst relative error of the vector exp: 2^%.2f (bound 2^%.0f)\n", target.c_str(),
                static_cast<double>(std::log2(worst)), std::log2(xent::stable_vector::kExpError));
    EXPECT_LE(std::fabs(static_cast<long double>(r.rest) - sum),
              (xent::stable_vector::sum_error(static_cast<double>(C)) + xent::stable_vector::kExpError) * sum);
    EXPECT_TRUE(r.finite_other);
  });
}

TEST(stable_vector, row_max_finds_nans_and_the_first_max_as_the_scalar_scan_does) {
  on_every_target([&](const std::string&) {
    for (std::int64_t C = 1; C <= 70; ++C) {
      std::vector<float> x(static_cast<std::size_t>(C));
      for (std::int64_t j = 0; j < C; ++j) x[j] = static_cast<float>((j * 37) % 11) - 5.0f;
      float m;
      std::int64_t k;
      // The first max: 5 at the first j with 37 j = 10 mod 11 (j = 6), or
      // the largest value of a shorter row.
      ASSERT_TRUE(xent::stable_vector::row_max(x.data(), C, m, k));
      const auto first = std::max_element(x.begin(), x.end()) - x.begin();
      EXPECT_EQ(k, first) << "C = " << C;
      EXPECT_EQ(m, x[first]);
      for (std::int64_t at = 0; at < C; ++at) {
        std::vector<float> y = x;
        y[at] = std::numeric_limits<float>::quiet_NaN();
        EXPECT_FALSE(xent::stable_vector::row_max(y.data(), C, m, k)) << "NaN at " << at << " of " << C;
      }
    }
    // -0 before +0: the first of them, itself.
    const std::vector<float> z{-1.0f, -0.0f, 0.0f, -3.0f};
    float m;
    std::int64_t k;
    ASSERT_TRUE(xent::stable_vector::row_max(z.data(), 4, m, k));
    EXPECT_EQ(k, 1);
    EXPECT_TRUE(std::signbit(m));
  });
}

// The vector rounding test: an entry F e_j is written as RN_f32 only when
// its interval |v| (a + b d_j) (+ 2^-600) holds no float32 boundary; every
// other entry is listed undecided (its whole vector, at least itself).
TEST(stable_vector, gradient_rounding_test_decides_only_intervals_without_a_boundary) {
  const double a = 0x1p-40;  // the interval's relative half-width (b = 0)
  std::vector<double> v;     // the entries' values (F = 1, e_j = v_j)
  std::vector<bool> decidable;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> exponent(-140, 120);
  for (int i = 0; i < 4000; ++i) {
    // A float32 midpoint (or a float: the far side of the grid) times 1 + r 2^-40.
    const float f = std::ldexp(1.0f + static_cast<float>(rng() % 8388608u) * 0x1p-23f, exponent(rng));
    const double mid = (static_cast<double>(f) + static_cast<double>(std::nextafter(f, INFINITY))) / 2;
    for (const double r : {0.0, 0.5, -0.5, 0.99, -0.99, 1.02, -1.02, 4.0, -4.0}) {
      v.push_back(mid * (1 + r * 0x1p-40));
      decidable.push_back(std::fabs(r) > 1.01);  // room for the bound's own widening
      v.push_back(-v.back());
      decidable.push_back(decidable.back());
    }
  }
  // Zeros and subnormals (boundaries at (k + 1/2) 2^-149), near the
  // overflow threshold (always undecided here), a NaN.
  for (const double w : {0x1p-151, 0x1.8p-149, 0x1.7p-149, 0x1p-300, 0.0, -0x1p-200, 3.4e38}) {
    v.push_back(w);
    decidable.push_back(true);
  }
  for (const double w : {0x1.ffffffp127, 0x1.fffffep127, std::nan("")}) {
    v.push_back(w);
    decidable.push_back(false);
  }
  const auto C = static_cast<std::int64_t>(v.size());
  const std::vector<float> x(v.size(), 0.0f);  // d_j = 0
  on_every_target([&](const std::string&) {
    std::vector<float> g(v.size());
    std::vector<std::int64_t> undecided(v.size());
    const std::int64_t n =
        xent::stable_vector::plain_gradient(v.data(), x.data(), C, 0.0f, 1.0, a, 0.0, g.data(), undecided.data());
    std::vector<bool> listed(v.size(), false);
    for (std::int64_t i = 0; i < n; ++i) listed[undecided[i]] = true;
    std::int64_t decided = 0;
    for (std::int64_t j = 0; j < C; ++j) {
      if (!decidable[j]) {
        ASSERT_TRUE(listed[j]) << "an interval holding a boundary was decided: v = " << v[j];
        continue;
      }
      if (listed[j]) continue;  // undecided with a neighbour in its vector
      ++decided;
      ASSERT_EQ(g[j], static_cast<float>(v[j])) << v[j];
      ASSERT_EQ(std::signbit(g[j]), std::signbit(v[j])) << v[j];
    }
    EXPECT_GT(decided, 0);
  });
}

struct row_case {
  std::string name;
  std::int64_t n, c;
  std::vector<float> x;
  std::vector<std::int64_t> t;
  float upstream;
  float weight = 1.0f;  // every class's
};

// The loss pass of smoothed and probability rows: kb the first index of the
// largest b_c (ties across lanes and in the tail), and Σ b_c, Σ_{c≠kb} b_c,
// Σ b_c d_c within their bounds of the same terms summed in long double
// (64-bit significand: its own error is far below sum_error's 2^-53); a
// -inf logit makes Σ b_c d_c (or Σ w_c (d_c + L)) +inf, not NaN.
TEST(stable_vector, mass_pass_finds_the_first_largest_mass_and_sums_within_bound) {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  constexpr double u = 0x1p-53;
  for (const std::int64_t C : {1, 2, 3, 5, 8, 13, 31, 64, 100, 1001})
  for (const bool prob : {false, true})
  for (const bool with_ninf : {false, true}) {
    if (with_ninf && C < 3) continue;
    SCOPED_TRACE("C " + std::to_string(C) + (prob ? " prob" : " index") + (with_ninf ? " -inf" : ""));
    std::vector<float> x(static_cast<std::size_t>(C)), q(x.size()), w(x.size());
    for (std::int64_t c = 0; c < C; ++c) {
      x[c] = 4.0f * unit(rng) - 2.0f;
      q[c] = unit(rng);
      w[c] = c % 4 == 3 ? -0.5f : 0.25f + unit(rng);
    }
    if (with_ninf) x[1] = ninf;
    // The largest mass three times, in different lanes and the tail.
    if (prob && C >= 3)
      for (const std::int64_t c : {C / 3, C - 1, C / 2}) {
        q[c] = 2.0f;
        w[c] = 2.0f;
      }
    xent::stable_vector::mass_pass_row r;
    r.m = *std::max_element(x.begin(), x.end());
    r.L = 0.75;
    r.one_m = 0.9;
    r.ec = 0.1 / static_cast<double>(C);
    r.one_m_d = r.one_m;
    r.ec_d = r.ec;
    r.t = C / 2;
    std::int64_t kb = 0;
    long double mass = 0, mag = 0, bd = 0, bd_mag = 0, sm = 0, sm_mag = 0;
    std::vector<double> b(x.size());
    for (std::int64_t c = 0; c < C; ++c) {
      const double qv = prob ? static_cast<double>(q[c]) : (c == r.t ? 1.0 : 0.0);
      b[c] = static_cast<double>(w[c]) * (r.one_m * qv + r.ec);
      if (b[c] > b[kb]) kb = c;
      mass += b[c];
      mag += std::fabs(b[c]);
      const double d = static_cast<double>(r.m) - static_cast<double>(x[c]);  // exact here, or +inf
      bd += static_cast<long double>(b[c]) * d;
      bd_mag += std::fabs(b[c]) * d;
      sm += static_cast<long double>(w[c]) * (d + r.L);
      sm_mag += std::fabs(w[c]) * (d + r.L);
    }
    const long double rest = mass - b[kb];
    const double n = xent::stable_vector::sum_error(static_cast<double>(C));
    on_every_target([&](const std::string&) {
      const xent::stable_vector::mass_pass_sums s =
          xent::stable_vector::mass_pass(x.data(), prob ? q.data() : nullptr, w.data(), C, r);
      EXPECT_EQ(s.kb, kb);
      EXPECT_LE(std::fabs(static_cast<long double>(s.mass) - mass), n * mag);
      EXPECT_LE(std::fabs(static_cast<long double>(s.rest) - rest), n * (mag - std::fabs(b[kb])) + u * mag);
      const long double got = prob ? s.bd : s.smooth, want = prob ? bd : sm;
      if (with_ninf) {
        EXPECT_TRUE(std::isinf(got) && got > 0) << static_cast<double>(got);
      } else {
        // Each product rounds once (and d + L once more) before the sum.
        EXPECT_LE(std::fabs(got - want), (2 * u + n) * (prob ? bd_mag : sm_mag));
      }
    });
  }
}

// Rows for the vector gradient and its fallbacks: random logits of several
// spreads (up to margins where entries are subnormal or 0), -inf logits, and
// rows of n equal logits with the rest -inf or 45 below, weight 3 and an
// upstream u = (2^23 + 1) n 2^-40, so that the entries 3 u / n of the other
// maxima are float32 midpoints (exact ties, `none`) or within e^-45 of one:
// the vector rounding test leaves them to the scalar path.
std::vector<row_case> cases() {
  std::vector<row_case> all;
  std::mt19937 rng(5);
  for (const std::int64_t c : {1, 2, 3, 7, 8, 9, 16, 17, 33, 100, 1000}) {
    for (const float spread : {3.0f, 40.0f, 400.0f}) {
      std::string name = "c";
      name += std::to_string(c);
      name += "_spread";
      name += std::to_string(static_cast<int>(spread));
      row_case rc{name, 6, c, {}, {}, 0.37f};
      std::normal_distribution<float> nd(0.0f, spread);
      for (std::int64_t i = 0; i < rc.n * c; ++i) rc.x.push_back(nd(rng));
      if (c > 2) rc.x[1] = ninf;
      for (std::int64_t p = 0; p < rc.n; ++p) rc.t.push_back(static_cast<std::int64_t>(rng() % c));
      all.push_back(rc);
    }
  }
  for (const std::int64_t equal : {2, 4, 8}) {
    for (const float below : {-ninf, 45.0f}) {
      std::string name = "ties";
      name += std::to_string(equal);
      name += std::isinf(below) ? "_ninf" : "_far";
      row_case rc{name, 4, 37, {}, {}, 0.0f};
      for (std::int64_t p = 0; p < rc.n; ++p) {
        for (std::int64_t j = 0; j < rc.c; ++j) rc.x.push_back(j < equal ? 1.5f : 1.5f - below);
        rc.t.push_back(p % 2 == 0 ? 0 : rc.c - 1);
      }
      rc.upstream = static_cast<float>((1 << 23) + 1) * static_cast<float>(equal) * 0x1p-40f;
      rc.weight = 3.0f;
      all.push_back(rc);
    }
  }
  return all;
}

// Index targets without smoothing (the plain vector pass), with smoothing,
// and probability targets with and without (the mass vector pass).
struct target_kind {
  const char* name;
  bool probability;
  double smoothing;
};
constexpr target_kind kinds[] = {
    {"index", false, 0.0}, {"index_eps0.1", false, 0.1}, {"prob", true, 0.0}, {"prob_eps0.2", true, 0.2}};

TEST(stable_vector, gradients_and_losses_are_correctly_rounded_on_every_target) {
  for (const row_case& rc : cases()) {
    // Probability rows: random (normalised in float) for random logits,
    // uniform for the rows of ties (p_j A - b_j cancels there).
    std::vector<float> q(rc.x.size());
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    for (std::int64_t p = 0; p < rc.n; ++p) {
      float sum = 0.0f;
      for (std::int64_t j = 0; j < rc.c; ++j) sum += (q[p * rc.c + j] = rc.weight == 1.0f ? unit(rng) : 1.0f);
      for (std::int64_t j = 0; j < rc.c; ++j) q[p * rc.c + j] /= sum;
    }
    // Weights: varied, or the ties rows' uniform 3.
    std::vector<float> w(static_cast<std::size_t>(rc.c), rc.weight);
    if (rc.weight == 1.0f)
      for (std::int64_t c = 0; c < rc.c; ++c) w[c] = 0.5f + 0.25f * static_cast<float>(c % 3);
    for (const target_kind& kind : kinds)
    for (const xent::reduction red : {xent::reduction::none, xent::reduction::mean}) {
      SCOPED_TRACE(rc.name + "/" + kind.name + (red == xent::reduction::none ? "/none" : "/mean"));
      xent::options o;
      o.reduce = red;
      o.label_smoothing = kind.smoothing;
      o.weight = xent::view(w.data(), {rc.c});
      const bool none = red == xent::reduction::none;
      const xent::tensor_view xv = xent::view(rc.x.data(), {rc.n, rc.c});
      const xent::tensor_view tv =
          kind.probability ? xent::view(q.data(), {rc.n, rc.c}) : xent::view(rc.t.data(), {rc.n});
      std::vector<float> up(static_cast<std::size_t>(rc.n), rc.upstream);
      std::vector<float> out(static_cast<std::size_t>(none ? rc.n : 1));
      std::vector<float> g(rc.x.size());
      const xent::tensor_view ov = none ? xent::view(out.data(), {rc.n}) : xent::view(out.data(), {});
      const xent::tensor_view uv = none ? xent::view(up.data(), {rc.n}) : xent::view(up.data(), {});
      // The reference, rounded once (320 bits: ties in these rows are exact).
      const xent::tensor_view gv = xent::view(g.data(), {rc.n, rc.c});
      const xent::problem pr = xent::make_problem(xv, tv, o, ov, &gv, &uv);
      const xent::ref::result ref = xent::ref::compute(pr, true, 320);
      std::vector<float> first_loss, first_grad;
      on_every_target([&](const std::string& target) {
        std::fill(g.begin(), g.end(), std::numeric_limits<float>::quiet_NaN());
        xent::cross_entropy_forward_backward(xv, tv, ov, gv, o, &uv, xent::find_implementation("stable"));
        if (none) {
          for (std::int64_t p = 0; p < rc.n; ++p)
            ASSERT_TRUE(xent::ref::correctly_rounded(out[p], ref.loss[p])) << target << " loss " << p;
        } else {
          ASSERT_TRUE(xent::ref::correctly_rounded(out[0], ref.reduced)) << target;
        }
        for (std::size_t i = 0; i < g.size(); ++i)
          ASSERT_TRUE(xent::ref::correctly_rounded(g[i], ref.grad[i]))
              << target << " grad " << i << ": " << g[i] << " vs " << xent::ref::to_string(ref.grad[i]);
        if (first_grad.empty()) {
          first_loss = out;
          first_grad = g;
        }
        for (std::size_t i = 0; i < g.size(); ++i)  // the same bits, -0 and +0 included
          ASSERT_EQ(std::signbit(g[i]), std::signbit(first_grad[i])) << target << " grad " << i;
      });
    }
  }
}

}  // namespace

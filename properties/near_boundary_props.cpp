// Near-boundary properties: planted cases whose exact value lies within
// 2^-40 of a float32 rounding boundary (a midpoint between two floats), or
// exactly on one, for the loss, the gradient entries and the reductions,
// checked against the reference. A correctly rounded kernel must pick the
// side the exact value is on; an evaluation that rounds a float64 (or any
// fixed-precision) value without a rounding test lands on the wrong side
// about half the time (docs/correct_rounding.md).
#include <cmath>
#include <cstdint>

#include <rapidcheck.h>

#include "property.hpp"
#include "tracker.hpp"

namespace {

using namespace xent::props;
using xent::reduction;

// A random float of the binade [2^e, 2^(e+1)) (on its grid of multiples of 2^(e-23)).
float binade_value(int e) {
  const auto k = *rc::gen::inRange<std::int64_t>(std::int64_t{1} << 23, std::int64_t{1} << 24);
  return static_cast<float>(std::ldexp(static_cast<double>(k), e - 23));
}

// Is the double v (exact) a float32 midpoint?
bool is_midpoint(double v) {
  const auto f = static_cast<float>(v);
  if (static_cast<double>(f) == v) return false;
  const float g = static_cast<double>(f) < v ? std::nextafter(f, 1e38f) : std::nextafter(f, -1e38f);
  return static_cast<double>(f) + static_cast<double>(g) == 2 * v;
}

// Losses: row p is [-b_p, a_p, a_p - M_1, ...] with target 0, so the loss is
// a_p + b_p (exact in double) plus log1p(e^{-(a+b)} + Σ e^{-M_i}) with every
// M_i >= 35: the log1p term is below 2^-40 of the loss. a and b are floats
// of one binade [2^e, 2^(e+1)): margins a + b from 128 to 2^22, so at C = 2
// the log1p term runs from e^-128 down past the double range (e^-745)
// where it underflows. `none`: every a_p + b_p is a midpoint; `sum`/`mean`
// (N a power of two, weights 1): the total Σ (a_p + b_p) is.
XENT_PROPERTY(reference_props, near_midpoint_losses_round_to_the_exact_side, 200) {
  const auto reduce = *rc::gen::element(reduction::none, reduction::sum, reduction::mean);
  const int e = *rc::gen::element(6, 7, 8, 9, 20);
  const double step_b = std::ldexp(1.0, e - 23);
  const std::int64_t n = std::int64_t{1} << *rc::gen::inRange(0, 3);
  const std::int64_t c = *rc::gen::inRange<std::int64_t>(2, 6);
  test_case t = test_case::shaped(layout::contiguous, n, c);
  t.reduce = reduce;
  t.regime = "near_midpoint_loss";
  double total = 0.0;
  for (std::int64_t p = 0; p < n; ++p) {
    float a = binade_value(e), b = binade_value(e);
    const bool last = p == n - 1;
    // Step b by its grid until the planted value is a midpoint (one in two or
    // four steps): the row's loss for `none`, the running total otherwise.
    for (int step = 0; step < 8; ++step) {
      const double planted = reduce == reduction::none ? double(a) + b : total + a + b;
      if (reduce != reduction::none && !last) break;
      if (is_midpoint(planted)) break;
      b = static_cast<float>(double(b) + step_b);
    }
    total += double(a) + b;
    t.x(p, 0) = -b;
    t.x(p, 1) = a;
    for (std::int64_t j = 2; j < c; ++j) t.x(p, j) = a - static_cast<float>(*rc::gen::inRange(35, 100));
    t.index[static_cast<std::size_t>(p)] = 0;
  }
  RC_PRE(is_midpoint(reduce == reduction::none ? double(-t.x(0, 0)) + t.x(0, 1) : total));
  case_scope scope(impl, t);
  scope.conclude(against_reference(impl, t, false));
}

// Gradient entries: n equal logits (n a power of two) and others either
// -inf (a rational row: exact ties) or M >= 40 below (a tie moved by
// e^{-M}/n, below 2^-40 of the entry). Weight 3 on the target and upstream
// K n 2^e (K odd, 3K in [2^24, 2^25)) make u w_t / n = 3K 2^e a midpoint.
XENT_PROPERTY(reference_props, near_midpoint_gradients_round_to_the_exact_side, 200) {
  // n and C powers of two keep the reference exact at ties (1/n, eps/C).
  const std::int64_t n = std::int64_t{1} << *rc::gen::inRange(0, 4);
  const std::int64_t extra = n == 1 || *rc::gen::arbitrary<bool>() ? n : 0;
  const std::int64_t c = n + extra;
  test_case t = test_case::shaped(layout::contiguous, 1, c);
  t.reduce = reduction::none;
  t.regime = "near_midpoint_gradient";
  const float v = static_cast<float>(*rc::gen::inRange(-20, 20));
  const bool minus_inf = *rc::gen::arbitrary<bool>();
  for (std::int64_t j = 0; j < c; ++j)
    t.x(0, j) = j < n ? v : minus_inf ? -INFINITY : v - static_cast<float>(*rc::gen::inRange(40, 90));
  const auto target = *rc::gen::inRange<std::int64_t>(0, c);
  t.index[0] = target;
  t.weight.assign(static_cast<std::size_t>(c), 1.0f);
  t.weight[static_cast<std::size_t>(target)] = 3.0f;
  std::int64_t k = *rc::gen::inRange<std::int64_t>((std::int64_t{1} << 24) / 3 + 1, (std::int64_t{1} << 25) / 3);
  k |= 1;
  const int e = *rc::gen::inRange(-30, 30);
  t.upstream = {static_cast<float>(std::ldexp(static_cast<double>(k * n), e))};
  // Smoothing keeps the rational structure and moves where the ties fall.
  if (*rc::gen::arbitrary<bool>()) t.eps = *rc::gen::element(0.25, 0.5);
  case_scope scope(impl, t);
  scope.conclude(against_reference(impl, t, true));
}

// Smoothed and probability-target rows whose gradient p_j A - b_j cancels
// far below the size of its terms: equal logits with near-uniform targets
// (exact zeros and small rationals) and tiny logits (|x| ~ 2^-60, p_j -
// 1/C ~ 2^-60), with `none`, `mean` and `sum`.
XENT_PROPERTY(reference_props, cancelling_gradients_are_correctly_rounded, 200) {
  // C, N and the weights powers of two: the reference (rounding to odd at
  // 160 bits) is then exact at the ties these rows produce.
  const std::int64_t c = std::int64_t{1} << *rc::gen::inRange(1, 4);
  const std::int64_t n = std::int64_t{1} << *rc::gen::inRange(0, 3);
  const bool prob = *rc::gen::arbitrary<bool>();
  test_case t = test_case::shaped(layout::contiguous, n, c, 1, 0, prob);
  t.reduce = *rc::gen::element(reduction::none, reduction::sum, reduction::mean);
  t.regime = "cancelling_gradient";
  const bool tiny = *rc::gen::arbitrary<bool>();
  for (std::int64_t p = 0; p < n; ++p) {
    for (std::int64_t j = 0; j < c; ++j) {
      t.x(p, j) = tiny ? static_cast<float>(std::ldexp(*rc::gen::inRange(-8, 9), -60)) : 1.5f;
      if (prob) t.qv(p, j) = static_cast<float>(*rc::gen::inRange(1, 4)) / static_cast<float>(c);
    }
    if (!prob) t.index[static_cast<std::size_t>(p)] = *rc::gen::inRange<std::int64_t>(0, c);
  }
  if (!prob || *rc::gen::arbitrary<bool>()) t.eps = *rc::gen::element(0.1, 0.25, 0.5);
  if (*rc::gen::arbitrary<bool>()) {
    t.weight.resize(static_cast<std::size_t>(c));
    for (auto& w : t.weight) w = static_cast<float>(std::int64_t{1} << *rc::gen::inRange(0, 3));
    // mean divides by Σ w_t, a power of two only by chance.
    if (t.reduce == reduction::mean && !prob) t.reduce = reduction::sum;
  }
  if (t.reduce == reduction::none) {
    t.upstream.resize(static_cast<std::size_t>(n));
    for (auto& u : t.upstream) u = static_cast<float>(*rc::gen::inRange(1, 7));
  }
  case_scope scope(impl, t);
  scope.conclude(against_reference(impl, t, true));
}

}  // namespace

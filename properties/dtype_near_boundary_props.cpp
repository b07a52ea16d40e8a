// Near-boundary properties of the 16-bit dtypes: planted cases whose exact
// value lies just off a bfloat16/float16 rounding boundary (a midpoint
// between two values of the dtype), for the loss, the reductions and the
// gradient entries. Two traps: a distance far below double precision (an
// evaluation without a rounding test lands on the midpoint and ties to even,
// the wrong side half the time), and a distance visible in double but far
// below float32's half ulp (a kernel that rounds to float32 first and then to
// the dtype lands on the midpoint: double rounding, RN_16(RN_32(v)) !=
// RN_16(v)). A correctly rounded kernel picks the side the exact value is on.
#include <cmath>
#include <cstdint>

#include <rapidcheck.h>

#include "property.hpp"

namespace {

using namespace xent::props;
using xent::dtype;
using xent::reduction;

// bfloat16 or float16, of those the kernel computes.
dtype drawn_sixteen_bit_type(const xent::implementation& impl) {
  const bool bf = (impl.dtypes() & xent::dtype_bfloat16_bit) != 0;
  const bool f16 = (impl.dtypes() & xent::dtype_float16_bit) != 0;
  require(bf || f16, "computes float32 logits only");
  if (bf && f16) return *rc::gen::element(dtype::bf16, dtype::f16);
  return bf ? dtype::bf16 : dtype::f16;
}

int digits(dtype t) { return t == dtype::bf16 ? 8 : 11; }

// A random value of the dtype in the binade [2^e, 2^(e+1)).
double binade_value(dtype t, int e) {
  const int d = digits(t);
  const auto k = *rc::gen::inRange<std::int64_t>(std::int64_t{1} << (d - 1), std::int64_t{1} << d);
  return std::ldexp(static_cast<double>(k), e - d + 1);
}

// Is v (exact in double) halfway between two adjacent values of the dtype?
bool is_midpoint(double v, dtype t) {
  const double r = xent::round_to(v, t);
  return r != v && xent::round_to(2 * v - r, t) == 2 * v - r;
}

// Losses: row p is [-b_p, a_p, a_p - M, ...] with target 0: the loss is
// a_p + b_p (exact) plus log1p(e^{-(a+b)} + (C - 2) e^{-M}). `none`: every
// a_p + b_p is a midpoint of the dtype; `sum`/`mean` (N a power of two,
// weights 1): the total is. With C = 2 or M = a + b the added term is below
// e^-64 of the loss (beyond double); with M = 20 or 24 it is 2^-35..2^-46 of
// it: inside double's precision, far below float32's half ulp.
XENT_PROPERTY(reference_props, sixteen_bit_near_midpoint_losses_round_to_the_exact_side, 200) {
  const dtype t = drawn_sixteen_bit_type(impl);
  const auto reduce = *rc::gen::element(reduction::none, reduction::sum, reduction::mean);
  const int e = t == dtype::bf16 ? *rc::gen::element(6, 7, 8, 9, 20, 60) : *rc::gen::element(6, 7, 8, 9, 12);
  const double step_b = std::ldexp(1.0, e - digits(t) + 1);
  const std::int64_t n = std::int64_t{1} << *rc::gen::inRange(0, 3);
  const std::int64_t c = *rc::gen::inRange<std::int64_t>(2, 6);
  const bool visible_in_double = *rc::gen::arbitrary<bool>();
  test_case k = test_case::shaped(layout::contiguous, n, c);
  k.reduce = reduce;
  k.regime = visible_in_double ? "near_midpoint_loss_2^-40" : "near_midpoint_loss_tiny";
  double total = 0.0;
  for (std::int64_t p = 0; p < n; ++p) {
    const double a = binade_value(t, e);
    double b = binade_value(t, e);
    const bool last = p == n - 1;
    // Step b on the dtype's grid until the planted value is a midpoint.
    for (int step = 0; step < 8; ++step) {
      if (reduce != reduction::none && !last) break;
      if (is_midpoint(reduce == reduction::none ? a + b : total + a + b, t)) break;
      b += step_b;
    }
    total += a + b;
    k.x(p, 0) = static_cast<float>(-b);
    k.x(p, 1) = static_cast<float>(a);
    // a - M is a value of the dtype: M is a multiple of a's grid step (at most 4 here)
    // unless e is large, where -b takes its place.
    for (std::int64_t j = 2; j < c; ++j)
      k.x(p, j) = visible_in_double && e <= 9 ? static_cast<float>(a - 4 * *rc::gen::inRange(5, 7))
                                              : static_cast<float>(-b);
    k.index[static_cast<std::size_t>(p)] = 0;
  }
  k.to_dtype(t);
  RC_PRE(is_midpoint(reduce == reduction::none ? -static_cast<double>(k.x(0, 0)) + k.x(0, 1) : total, t));
  case_scope scope(impl, k);
  scope.conclude(against_reference(impl, k, false));
}

// Gradient entries: n equal logits (n a power of two) and others either -inf
// (a rational row: exact ties) or M >= 16 below (a tie moved by about
// e^{-M}/n: 2^-23 of the entry or less, inside double's precision and below
// float32's half ulp). Weight 3 on the target and upstream K n 2^s (K odd,
// 3K in [2^d, 2^(d+1)), d the dtype's digits) make u w_t / n = 3K 2^s a
// midpoint of the dtype.
XENT_PROPERTY(reference_props, sixteen_bit_near_midpoint_gradients_round_to_the_exact_side, 200) {
  const dtype t = drawn_sixteen_bit_type(impl);
  const int d = digits(t);
  const std::int64_t n = std::int64_t{1} << *rc::gen::inRange(0, 4);
  const std::int64_t extra = n == 1 || *rc::gen::arbitrary<bool>() ? n : 0;
  const std::int64_t c = n + extra;
  test_case k = test_case::shaped(layout::contiguous, 1, c);
  k.reduce = reduction::none;
  k.regime = "near_midpoint_gradient";
  const float v = static_cast<float>(*rc::gen::inRange(-20, 20));
  const bool minus_inf = *rc::gen::arbitrary<bool>();
  for (std::int64_t j = 0; j < c; ++j)
    k.x(0, j) = j < n ? v : minus_inf ? -INFINITY : v - static_cast<float>(*rc::gen::inRange(16, 40));
  const auto target = *rc::gen::inRange<std::int64_t>(0, c);
  k.index[0] = target;
  k.weight.assign(static_cast<std::size_t>(c), 1.0f);
  k.weight[static_cast<std::size_t>(target)] = 3.0f;
  std::int64_t m = *rc::gen::inRange<std::int64_t>((std::int64_t{1} << d) / 3 + 1, (std::int64_t{1} << (d + 1)) / 3);
  m |= 1;
  // float16: the upstream K n 2^s and the entries stay inside its range.
  const int s = t == dtype::bf16 ? *rc::gen::inRange(-30, 30) : *rc::gen::inRange(-10, 2);
  k.upstream = {static_cast<float>(std::ldexp(static_cast<double>(m * n), s))};
  if (*rc::gen::arbitrary<bool>()) k.eps = *rc::gen::element(0.25, 0.5);
  k.to_dtype(t);
  case_scope scope(impl, k);
  scope.conclude(against_reference(impl, k, true));
}

}  // namespace

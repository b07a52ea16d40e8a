// The high-precision reference: the cross-entropy of a validated problem
// computed with Boost.Multiprecision over MPFR at a chosen precision, from the
// exact float inputs, rounded once at the end. Boost and MPFR stay inside
// reference/src; this header exposes plain C++ types only.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "xent/kernel/problem.hpp"
#include "xent/tensor.hpp"

namespace xent::ref {

// A real number as an unevaluated sum hi + lo of doubles (|lo| <= ulp(hi)/2):
// about 106 significant bits, enough to measure float32 and float64 errors in
// fractions of an ulp. Non-finite values: hi is NaN or +-inf and lo == 0.
struct exact {
  double hi = 0.0;
  double lo = 0.0;
  // Below 2^-968, where lo loses bits to float64's subnormal range (hi + lo
  // can then no longer tell a float64 midpoint from a value next to it): the
  // exact value rounded once to float64, taken from the high-precision value
  // itself. NaN elsewhere (hi + lo decides).
  double rn64 = std::numeric_limits<double>::quiet_NaN();
};

struct result {
  std::vector<exact> loss;  // per position, before reduction (the `none` output)
  exact reduced;            // the mean or the sum; for `none`, NaN
  // d(output)/d(logits) weighted by the problem's upstream gradient, positions
  // x classes, row-major by position (index p*C + c). Empty unless requested.
  std::vector<exact> grad;
};

inline constexpr unsigned default_precision_bits = 160;

struct compute_options {
  unsigned precision_bits = default_precision_bits;
  // Worker threads over positions (each position is independent): 0 for one
  // per core. The result is the same for any count (partial sums are kept
  // per fixed chunk of positions and added in order).
  unsigned threads = 1;
  // Called on the calling thread about every 100 ms while the workers run,
  // with the positions done so far, and once at the end.
  std::function<void(std::int64_t done, std::int64_t total)> progress;
};

// Throws std::invalid_argument if precision_bits < 64.
result compute(const problem& p, bool with_grad, unsigned precision_bits = default_precision_bits);
result compute(const problem& p, bool with_grad, const compute_options& options);

// MPFR keeps caches (constants, exp tables) per thread. A thread that called
// compute() and is about to end should call this, or the caches leak.
void release_thread_caches();

// Rounding of the exact value to nearest-even.
float to_float(const exact& r);
double to_double(const exact& r);

// Error of y against r in ulps of the float32 result (docs/design.md §3):
// |y - r| / ulp(RN(r)), ulp(R) = 2^(max(ilogb R, emin) - p + 1), computed in
// multiprecision. NaN vs NaN and equal infinities give 0; NaN vs non-NaN, or a
// non-finite y against a finite r (and vice versa), give +inf.
double ulp_error(float y, const exact& r);
double ulp_error(double y, const exact& r);

// The same for the floating dtypes a result may have (f32, f64, bf16: 8
// significant bits, f16: 11 bits with subnormals from 2^-24), each measured in
// its own ulps. round_to gives the exact value rounded once to nearest-even in
// the dtype (subnormals and overflow to inf as IEEE 754), as a double: every
// value of these formats is one. An integer dtype throws std::invalid_argument.
double round_to(const exact& r, dtype t);
double ulp_error(double y, const exact& r, dtype t);
bool correctly_rounded(double y, const exact& r, dtype t);

// Herbie's bits of error: log2(1 + number of floats between y and RN(r)).
double bits_of_error(float y, const exact& r);
// Floats in their total order as integers, with +0 and -0 the same point:
// |ordinal(a) - ordinal(b)| is the number of floats from a to b.
std::int64_t ordinal(float x);
// y == RN(r) (NaN matches NaN).
bool correctly_rounded(float y, const exact& r);

// Decimal text with `digits` significant digits ("nan", "inf", "-inf").
std::string to_string(const exact& r, int digits = 21);

}  // namespace xent::ref

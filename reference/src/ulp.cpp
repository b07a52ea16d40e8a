// Error measures of a float32/float64/bfloat16/float16 result against the
// reference value (docs/design.md §3), and the reference rounded to each.
// Differences are taken exactly in MPFR: y, hi and lo are doubles, so
// y - hi - lo fits in exact_double_sum_bits.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "mp.hpp"
#include "xent/reference.hpp"

namespace xent::ref {
namespace {

using detail::mp;
using detail::raw;

constexpr double infinity = std::numeric_limits<double>::infinity();

// Binary format parameters: p significand bits (with the hidden one),
// emin/emax the normal exponent range.
struct format {
  int p, emin, emax;
};
constexpr format binary32{24, -126, 127};
constexpr format binary64{53, -1022, 1023};
constexpr format bfloat16{8, -126, 127};  // float32's exponent range, 8 significant bits
constexpr format binary16{11, -14, 15};   // subnormals from 2^-24, largest finite 65504

format format_of(dtype t) {
  switch (t) {
    case dtype::f32: return binary32;
    case dtype::f64: return binary64;
    case dtype::bf16: return bfloat16;
    case dtype::f16: return binary16;
    case dtype::i64:
    case dtype::i32: break;
  }
  throw std::invalid_argument("xent::ref: results of dtype " + to_string(t) + " have no ulp (not a floating type)");
}

// RN(r) in format f: r divided by the spacing q = 2^(max(e, emin) - p + 1) of
// its binade (e = floor(log2 |r|); below 2^emin the subnormal spacing), rounded
// to an integer with ties to even, times q; then IEEE overflow (a result
// above the largest finite value is inf). Every step is exact in MPFR but the
// one rounding.
double round_in(const exact& r, format f) {
  if (f.p == binary64.p && !std::isnan(r.rn64)) return r.rn64;  // tiny: rounded from the full value
  if (!std::isfinite(r.hi) || (r.hi == 0.0 && r.lo == 0.0)) return r.hi;  // NaN, inf, signed zero
  mp v = detail::from_exact(r);
  // MPFR's exponent E has |v| in [2^(E-1), 2^E).
  const long e = std::max<long>(static_cast<long>(mpfr_get_exp(raw(v))) - 1, f.emin);
  mpfr_mul_2si(raw(v), raw(v), f.p - 1 - e, MPFR_RNDN);
  mpfr_rint(raw(v), raw(v), MPFR_RNDN);
  mpfr_mul_2si(raw(v), raw(v), e - (f.p - 1), MPFR_RNDN);
  const double R = mpfr_get_d(raw(v), MPFR_RNDN);  // a value of f: exact in a double
  const double largest = std::ldexp(2.0 - std::ldexp(1.0, 1 - f.p), f.emax);
  return std::fabs(R) > largest ? std::copysign(infinity, R) : R;
}

// |y - r| / ulp(R), R = RN(r) in the format; y is exact as a double.
double ulp_error_in(double y, const exact& r, double R, format f) {
  if (std::isnan(r.hi)) return std::isnan(y) ? 0.0 : infinity;
  if (std::isinf(r.hi)) return y == r.hi ? 0.0 : infinity;
  // A finite r beyond the format's range rounds to inf: then inf is the
  // correctly rounded result.
  if (!std::isfinite(y)) return y == R ? 0.0 : infinity;
  int e = f.emax;  // R overflowed: measure in ulps of the largest binade
  if (R == 0.0)
    e = f.emin;  // ilogb(0) is -inf: the subnormal spacing
  else if (std::isfinite(R))
    e = std::max(std::ilogb(R), f.emin);
  mp diff = detail::from_exact(r);
  mpfr_d_sub(raw(diff), y, raw(diff), MPFR_RNDN);  // exact
  mpfr_abs(raw(diff), raw(diff), MPFR_RNDN);
  mpfr_mul_2si(raw(diff), raw(diff), f.p - 1 - e, MPFR_RNDN);
  return mpfr_get_d(raw(diff), MPFR_RNDN);
}

}  // namespace

std::int64_t ordinal(float x) {
  const auto bits = std::bit_cast<std::uint32_t>(x);
  const auto magnitude = static_cast<std::int64_t>(bits & 0x7fffffffu);
  return (bits >> 31) ? -magnitude : magnitude;
}

double ulp_error(float y, const exact& r) {
  return ulp_error_in(static_cast<double>(y), r, static_cast<double>(to_float(r)), binary32);
}

double ulp_error(double y, const exact& r) { return ulp_error_in(y, r, to_double(r), binary64); }

double round_to(const exact& r, dtype t) { return round_in(r, format_of(t)); }

double ulp_error(double y, const exact& r, dtype t) {
  const format f = format_of(t);
  return ulp_error_in(y, r, round_in(r, f), f);
}

bool correctly_rounded(double y, const exact& r, dtype t) {
  const double R = round_to(r, t);
  return (std::isnan(y) && std::isnan(R)) || y == R;
}

double bits_of_error(float y, const exact& r) {
  const float R = to_float(r);
  if (std::isnan(y) || std::isnan(R)) return std::isnan(y) && std::isnan(R) ? 0.0 : 32.0;
  const std::int64_t distance = ordinal(y) - ordinal(R);
  return std::log2(1.0 + static_cast<double>(distance < 0 ? -distance : distance));
}

bool correctly_rounded(float y, const exact& r) {
  const float R = to_float(r);
  return (std::isnan(y) && std::isnan(R)) || y == R;
}

}  // namespace xent::ref

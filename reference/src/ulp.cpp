// Error measures of a float32/float64 result against the reference value
// (docs/design.md §3). Differences are taken exactly in MPFR: y, hi and lo are
// doubles, so y - hi - lo fits in exact_double_sum_bits.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

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

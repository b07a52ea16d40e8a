// Internal to the reference: the multiprecision number type and the few
// helpers shared by reference.cpp and ulp.cpp.
//
// Numbers are Boost.Multiprecision mpfr_float_backend<0> (RAII over mpfr_t),
// but every operation goes through mpfr_* on a number whose precision was set
// explicitly. Why: Boost 1.74 implements variable precision with a process-wide
// default that its operators rewrite temporarily (scoped_default_precision), so
// Boost arithmetic is neither thread-safe nor exact about the precision used.
#pragma once

#include <boost/multiprecision/mpfr.hpp>

#include "xent/reference.hpp"

namespace xent::ref::detail {

using mp = boost::multiprecision::number<boost::multiprecision::mpfr_float_backend<0>,
                                         boost::multiprecision::et_off>;

inline mpfr_ptr raw(mp& x) { return x.backend().data(); }
inline mpfr_srcptr raw(const mp& x) { return x.backend().data(); }

// A zero with exactly `bits` of precision.
inline mp make(mpfr_prec_t bits) {
  mp x;
  mpfr_set_prec(raw(x), bits);
  mpfr_set_zero(raw(x), 1);
  return x;
}

// Enough bits to hold any sum of a few doubles exactly: their exponents lie
// in [-1074, 1024], so 2098 bits plus carries.
inline constexpr mpfr_prec_t exact_double_sum_bits = 2240;

// hi + lo exactly.
inline mp from_exact(const exact& r) {
  mp v = make(exact_double_sum_bits);
  mpfr_set_d(raw(v), r.hi, MPFR_RNDN);
  mpfr_add_d(raw(v), raw(v), r.lo, MPFR_RNDN);
  return v;
}

}  // namespace xent::ref::detail

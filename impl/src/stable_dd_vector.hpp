// A float64 row's double-double exponentials e^{-(m - x_j)} in Highway's
// double lanes (stable_dd_vector.cpp, compiled once per instruction set and
// dispatched at run time). Each lane performs the operations of the scalar
// ddm::exp(-P::difference(m, x_j)) (double_double.cpp) in the same order,
// with fused multiply-adds where the scalar code has std::fma, so the bits
// are the scalar ones and every bound of docs/correct_rounding.md §4 holds
// as it is. Targets without a fused multiply-add instruction (SSE4, SSSE3,
// scalar) decline: there the scalar code is used.
#pragma once

#include <cstdint>

#include "double_double.hpp"

namespace xent::stable_dd_vector {

// Whether this CPU's best target evaluates exponentials() (native FMA and
// two or more double lanes).
bool available();

// e[j] = ddm::exp(-(m - x_j)) for j in [0, C) (x contiguous, m finite, no
// NaN among x): exactly the scalar expression's hi and lo. Lanes the vector
// code does not cover (x_j = -inf, m - x_j beyond 660: results near or in
// the subnormal range) are computed by the scalar expression. Call only
// where available().
void exponentials(const double* x, std::int64_t C, double m, ddm::dd* e);

}  // namespace xent::stable_dd_vector

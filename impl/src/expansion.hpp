// Exact arithmetic on floating-point expansions (Shewchuk, "Adaptive
// Precision Floating-Point Arithmetic and Fast Robust Geometric Predicates",
// Discrete Comput. Geom. 18, 1997): a value is the exact, unevaluated sum of
// nonoverlapping doubles. Sums and products by a double are exact, so a
// rational expression of the inputs and its comparison with a rounding
// boundary are decided without error. Used by `stable` for results
// that no finite-precision bound can round: exact ties and exact zeros
// (docs/correct_rounding.md §5).
#pragma once

#include <boost/container/small_vector.hpp>

#include "double_double.hpp"

namespace xent::exact {

class expansion {
 public:
  expansion() = default;
  explicit expansion(double x) { add(x); }

  // this += b (Shewchuk's GROW-EXPANSION with zero elimination).
  void add(double b);
  void add(const expansion& e);
  // this * b (SCALE-EXPANSION with zero elimination).
  expansion scaled(double b) const;
  expansion negated() const;
  // this * b, exactly (a sum of scaled copies).
  expansion times(const expansion& b) const;
  // The sign of the exact value: that of the largest component.
  int sign() const;
  // A double near the exact value (relative error ~2^-52).
  double approx() const;
  // A double-double near the exact value: the components summed from the
  // smallest in double-double, relative error below 2^-100.
  ddm::dd to_dd() const;
  // False once a product underflowed or anything overflowed: the value is
  // then no longer exact and must not be trusted.
  bool exact() const { return exact_; }

 private:
  // Increasing magnitude, nonoverlapping, no zeros. The expansions of a
  // row's exact decisions mostly hold a few components: inline storage
  // keeps each operation off the heap.
  boost::container::small_vector<double, 8> c_;
  bool exact_ = true;
};

// RN(num / den) in format fmt (float32, bfloat16, float16: a value of the
// format, carried as a float), ties to even, subnormals and overflow
// included. False when either operand is not exact (then out is unspecified).
bool round_quotient(const expansion& num, const expansion& den, float& out, const ddm::format& fmt = ddm::float32);
// The same for num/den + t with t of sign `side` (+1 or -1) and arbitrarily
// small: an exact tie goes to the neighbour on that side.
bool round_quotient_past(const expansion& num, const expansion& den, int side, float& out,
                         const ddm::format& fmt = ddm::float32);

// RN of every real in num/den + side (0, r]: the value is known to lie
// strictly on one side of num/den, by at most r.
bool round_one_sided(const expansion& num, const expansion& den, int side, double r, float& out,
                     const ddm::format& fmt = ddm::float32);

// RN of every real num / den + c + t, |t| <= r (c = c_hi + c_lo, r >= 0
// doubles), when they all round to the same value (RN is monotone: the two
// ends decide). False otherwise, or when anything is not exact.
bool round_interval(const expansion& num, const expansion& den, double c_hi, double c_lo, double r,
                    float& out, const ddm::format& fmt = ddm::float32);

// The same four for float64 results (carried as doubles).
bool round_quotient(const expansion& num, const expansion& den, double& out);
bool round_quotient_past(const expansion& num, const expansion& den, int side, double& out);
bool round_one_sided(const expansion& num, const expansion& den, int side, double r, double& out);
bool round_interval(const expansion& num, const expansion& den, double c_hi, double c_lo, double r, double& out);

}  // namespace xent::exact

#include "expansion.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "double_double.hpp"

namespace xent::exact {

namespace {

// The exponent of the lowest set bit of a finite nonzero double.
int lowest_bit(double a) {
  std::uint64_t bits;
  std::memcpy(&bits, &a, sizeof bits);
  const int biased = static_cast<int>((bits >> 52) & 0x7ff);
  std::uint64_t significand = bits & ((std::uint64_t{1} << 52) - 1);
  if (biased != 0) significand |= std::uint64_t{1} << 52;
  return (biased == 0 ? -1074 : biased - 1075) + std::countr_zero(significand);
}

// TwoProduct (hi = RN(ab), lo = ab - hi by an FMA) is exact exactly when ab
// is a multiple of 2^-1074, the smallest subnormal: the product of two odd
// significands is odd, so the lowest set bit of ab is the product of the
// operands' lowest bits, and ab (at most 106 bits) then splits into two
// doubles (below 2^-1022 it has at most 52 bits and hi holds all of it).
// This admits subnormal products of coarse operands (a bound r ~ 2^-1070
// times an integer C) that a plain magnitude threshold would refuse.
// Overflow is caught by the finiteness checks.
bool product_exact(double a, double b, double p) {
  if (a == 0.0 || b == 0.0) return true;
  return std::isfinite(p) && lowest_bit(a) + lowest_bit(b) >= -1074;
}

}  // namespace

void expansion::add(double b) {
  if (!std::isfinite(b)) {
    exact_ = false;
    return;
  }
  // In place: the i-th output is written after the i-th input is read.
  double q = b;
  std::size_t n = 0;
  for (std::size_t i = 0; i < c_.size(); ++i) {
    const ddm::dd s = ddm::two_sum(q, c_[i]);
    if (s.lo != 0.0) c_[n++] = s.lo;
    q = s.hi;
  }
  if (!std::isfinite(q)) exact_ = false;
  c_.resize(n);
  if (q != 0.0) c_.push_back(q);
}

void expansion::add(const expansion& e) {
  for (const double x : e.c_) add(x);
  exact_ = exact_ && e.exact_;
}

expansion expansion::scaled(double b) const {
  expansion r;
  r.exact_ = exact_ && std::isfinite(b);
  if (c_.empty() || b == 0.0) return r;
  auto prod = [&](double a) {
    const ddm::dd p = ddm::two_prod(a, b);
    if (!product_exact(a, b, p.hi)) r.exact_ = false;
    return p;
  };
  const ddm::dd first = prod(c_[0]);
  if (first.lo != 0.0) r.c_.push_back(first.lo);
  double q = first.hi;
  for (std::size_t i = 1; i < c_.size(); ++i) {
    const ddm::dd t = prod(c_[i]);
    const ddm::dd s = ddm::two_sum(q, t.lo);
    if (s.lo != 0.0) r.c_.push_back(s.lo);
    const ddm::dd f = ddm::fast_two_sum(t.hi, s.hi);
    if (f.lo != 0.0) r.c_.push_back(f.lo);
    q = f.hi;
  }
  if (!std::isfinite(q)) r.exact_ = false;
  if (q != 0.0) r.c_.push_back(q);
  return r;
}

expansion expansion::times(const expansion& b) const {
  expansion r;
  r.exact_ = exact_ && b.exact_;
  for (const double x : b.c_) r.add(scaled(x));
  return r;
}

expansion expansion::negated() const {
  expansion r = *this;
  for (double& x : r.c_) x = -x;
  return r;
}

int expansion::sign() const {
  if (c_.empty()) return 0;
  return c_.back() > 0.0 ? 1 : -1;
}

double expansion::approx() const {
  double s = 0.0;
  for (const double x : c_) s += x;
  return s;
}

ddm::dd expansion::to_dd() const {
  ddm::dd s{0.0};
  for (const double x : c_) s = s + x;
  return s;
}

namespace {

// The sign of num - b den, given 2b (a boundary, exactly, as a double-double;
// ±inf when there is none, NaN when it cannot be represented: then ok = false).
int compare(const expansion& num, const expansion& den, ddm::dd twice_b, bool& ok) {
  if (std::isnan(twice_b.hi)) {
    ok = false;
    return 0;
  }
  if (std::isinf(twice_b.hi)) return twice_b.hi > 0 ? -1 : 1;
  expansion d = num.scaled(2.0);
  d.add(den.scaled(-twice_b.hi));
  d.add(den.scaled(-twice_b.lo));
  ok = ok && d.exact();
  return d.sign();
}

// The algorithms for a result carried as V: float (float32, bfloat16,
// float16) or double (float64).
template <class V>
bool quotient_past(const expansion& num_in, const expansion& den_in, int side, V& out, const ddm::format& fmt) {
  if (!num_in.exact() || !den_in.exact() || den_in.sign() == 0) return false;
  // Work with den > 0.
  const bool flip = den_in.sign() < 0;
  const expansion num = flip ? num_in.negated() : num_in;
  const expansion den = flip ? den_in.negated() : den_in;
  if (num.sign() == 0) {
    // An exact zero; past it, the smallest subnormal rounds back to zero.
    out = side < 0 ? V(-0.0) : V(0.0);
    return true;
  }
  V f = ddm::round_as<V>(num.approx() / den.approx(), fmt);
  bool ok = true;
  // The approximation is within a few double ulps: one step at most is
  // needed; a few are allowed.
  for (int step = 0; step < 8 && ok; ++step) {
    const ddm::twice_boundaries b = ddm::twice_around(f, fmt);
    const int up = compare(num, den, b.above, ok);
    if (!ok) return false;
    if (up > 0) {
      f = ddm::next_up(f, fmt);
      continue;
    }
    if (up == 0) {  // a tie between f and the next value up: the even one (inf past the largest)
      const V g = ddm::next_up(f, fmt);
      out = side > 0 ? g : side < 0 ? f : ddm::even(f, fmt) ? f : g;
      return ok;
    }
    const int down = compare(num, den, b.below, ok);
    if (!ok) return false;
    if (down < 0) {
      f = ddm::next_down(f, fmt);
      continue;
    }
    if (down == 0) {
      const V g = ddm::next_down(f, fmt);
      out = side < 0 ? g : side > 0 ? f : ddm::even(f, fmt) ? f : g;
      return ok;
    }
    out = f;
    return ok;
  }
  return false;
}

template <class V>
bool one_sided(const expansion& num, const expansion& den, int side, double r, V& out, const ddm::format& fmt) {
  if (!(r >= 0.0) || !std::isfinite(r)) return false;
  V near_end, far_end;
  if (!quotient_past(num, den, side, near_end, fmt)) return false;  // side: of the value num/den
  expansion far = num;
  far.add(den.scaled(side > 0 ? r : -r));
  if (!quotient_past(far, den, 0, far_end, fmt)) return false;
  if (near_end != far_end) return false;
  out = near_end;
  return true;
}

template <class V>
bool interval(const expansion& num, const expansion& den, double c_hi, double c_lo, double r, V& out,
              const ddm::format& fmt) {
  if (!std::isfinite(c_hi) || !std::isfinite(c_lo) || !(r >= 0.0) || !std::isfinite(r)) return false;
  // num/den + c + t = (num + (c + t) den) / den: both ends exactly.
  expansion mid = num;
  mid.add(den.scaled(c_hi));
  mid.add(den.scaled(c_lo));
  if (r == 0.0) return quotient_past(mid, den, 0, out, fmt);
  const expansion spread = den.scaled(r);
  expansion lo = mid, hi = mid;
  lo.add(spread.negated());
  hi.add(spread);
  V a, b;
  if (!quotient_past(lo, den, 0, a, fmt) || !quotient_past(hi, den, 0, b, fmt)) return false;
  if (a != b) return false;  // -0 and +0 compare equal: both are the zero result
  out = a;
  return true;
}

}  // namespace

bool round_quotient(const expansion& num, const expansion& den, float& out, const ddm::format& fmt) {
  return quotient_past(num, den, 0, out, fmt);
}
bool round_quotient(const expansion& num, const expansion& den, double& out) {
  return quotient_past(num, den, 0, out, ddm::float64);
}
bool round_quotient_past(const expansion& num, const expansion& den, int side, float& out, const ddm::format& fmt) {
  return quotient_past(num, den, side, out, fmt);
}
bool round_quotient_past(const expansion& num, const expansion& den, int side, double& out) {
  return quotient_past(num, den, side, out, ddm::float64);
}
bool round_one_sided(const expansion& num, const expansion& den, int side, double r, float& out,
                     const ddm::format& fmt) {
  return one_sided(num, den, side, r, out, fmt);
}
bool round_one_sided(const expansion& num, const expansion& den, int side, double r, double& out) {
  return one_sided(num, den, side, r, out, ddm::float64);
}
bool round_interval(const expansion& num, const expansion& den, double c_hi, double c_lo, double r, float& out,
                    const ddm::format& fmt) {
  return interval(num, den, c_hi, c_lo, r, out, fmt);
}
bool round_interval(const expansion& num, const expansion& den, double c_hi, double c_lo, double r, double& out) {
  return interval(num, den, c_hi, c_lo, r, out, ddm::float64);
}

}  // namespace xent::exact

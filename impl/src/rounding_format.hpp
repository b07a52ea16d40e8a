// The binary formats `stable` rounds its results to: float32, bfloat16,
// float16 and float64. Every value of the two 16-bit formats is a float32, so
// such a result is carried as a float whatever its format; only the rounding
// (its boundaries, its neighbours, ties to even) depends on the format.
// float64 results are carried as doubles (the overloads taking a double). That keeps one
// correctly rounded code path for the three dtypes (docs/correct_rounding.md
// §7): the rounding tests ask "which value of *this* format", never "which
// float" followed by a second rounding (RN_bf16(RN_f32(v)) is not RN_bf16(v)
// when RN_f32(v) is a bfloat16 midpoint).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "sixteen_bit.hpp"
#include "xent/tensor.hpp"

namespace xent::ddm {

struct format {
  int digits;        // significand bits, the leading one included
  int min_exponent;  // exponent of the smallest normal value
  int max_exponent;  // exponent of the largest finite value
  bool is_float32() const { return digits == 24; }
  bool is_float64() const { return digits == 53; }
  // The spacing of the format's values in the binade of |v| (subnormals: the
  // smallest subnormal).
  double quantum(double v) const {
    const int e = v == 0.0 ? min_exponent : std::max(std::ilogb(v), min_exponent);
    return std::ldexp(1.0, e - digits + 1);
  }
  double largest() const { return std::ldexp(2.0 - std::ldexp(1.0, 1 - digits), max_exponent); }
};

inline constexpr format float32{24, -126, 127};
inline constexpr format bfloat16{8, -126, 127};
inline constexpr format float16{11, -14, 15};
inline constexpr format float64{53, -1022, 1023};

inline format format_of(dtype t) {
  return t == dtype::bf16 ? bfloat16 : t == dtype::f16 ? float16 : t == dtype::f64 ? float64 : float32;
}

// RN(v) in the format: ties to even, subnormals, overflow to ±inf.
inline float round(double v, const format& f) {
  if (f.is_float32() || !std::isfinite(v) || v == 0.0) return static_cast<float>(v);
  const double a = std::fabs(v);
  const double q = f.quantum(a);
  // a / q < 2^digits is exact (a power-of-two scaling); nearbyint rounds it
  // to an integer, ties to even, in the default rounding mode.
  const double r = std::nearbyint(a / q) * q;
  const double out = r > f.largest() ? std::numeric_limits<double>::infinity() : r;
  return static_cast<float>(std::copysign(out, v));
}

// The next value of the format above / below f (a value of the format).
inline float next_down(float x, const format& f);
inline float next_up(float x, const format& f) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  if (f.is_float32() || std::isnan(x)) return std::nextafter(x, inf);
  if (x == inf) return x;
  if (x == -inf) return static_cast<float>(-f.largest());
  if (x < 0.0f) return -next_down(-x, f);
  const double v = x;
  if (v == f.largest()) return inf;
  return static_cast<float>(v + f.quantum(v));  // exact: a value of the format
}
inline float next_down(float x, const format& f) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  if (f.is_float32() || std::isnan(x)) return std::nextafter(x, -inf);
  if (x == -inf) return x;
  if (x == inf) return static_cast<float>(f.largest());
  if (x <= 0.0f) return -next_up(-x, f);
  const double v = x;
  double q = f.quantum(v);
  // Below a power of two the spacing halves (except at the smallest normal,
  // where the subnormals keep it).
  if (std::ilogb(v) > f.min_exponent && v == std::ldexp(1.0, std::ilogb(v))) q /= 2;
  return static_cast<float>(v - q);
}

// Is the last significand bit of x (a value of the format) zero? Infinity
// counts as even: a tie between the largest value and overflow goes to
// infinity, as in IEEE 754.
inline bool even(float x, const format& f) {
  if (std::isinf(x) || x == 0.0f) return true;
  const double a = std::fabs(static_cast<double>(x));
  return std::fmod(a / f.quantum(a), 2.0) == 0.0;
}

// Every 16-bit midpoint (and overflow threshold) is a float32 value, and
// RN_32 is monotone: when RN_32(x) = f is not a midpoint of the 16-bit
// format, x and f lie between the same two midpoints and RN_16(x) =
// RN_16(f). The fast float32 tests decide f; only a 16-bit midpoint f needs
// the format's own tests (docs/correct_rounding.md §7).
inline bool is_midpoint(float x, const format& f) {
  if (f.is_float32() || !std::isfinite(x)) return false;
  const std::uint32_t b = std::bit_cast<std::uint32_t>(x) & 0x7fffffffu;
  if (f.digits == 8) return (b & 0xffffu) == 0x8000u;  // bfloat16: the high half of a float32
  if (b >= 0x38800000u) return (b & 0x1fffu) == 0x1000u;  // float16 normals (2^-14 up) and 65520
  const float t = std::bit_cast<float>(b) * 0x1p25f;  // subnormals: an odd multiple of 2^-25 (exact)
  return t == std::floor(t) && std::fmod(t, 2.0f) == 1.0f;
}

// RN(x) in the format, for a float x.
inline float round_float(float x, const format& f) {
  if (f.is_float32()) return x;
  return f.digits == 8 ? sixteen::widen_bf16(sixteen::narrow_bf16(x)) : sixteen::widen_f16(sixteen::narrow_f16(x));
}

// float64 (a double carrier; the format argument is float64).
inline double next_up(double x, const format&) { return std::nextafter(x, std::numeric_limits<double>::infinity()); }
inline double next_down(double x, const format&) { return std::nextafter(x, -std::numeric_limits<double>::infinity()); }
inline bool even(double x, const format&) {
  return std::isinf(x) || x == 0.0 || (std::bit_cast<std::uint64_t>(x) & 1u) == 0;
}

// RN(v) in the format, carried as V: a float (float32, bfloat16, float16) or
// a double (float64, where RN is the identity on a double).
template <class V>
V round_as(double v, const format& f) {
  if constexpr (std::is_same_v<V, double>) {
    (void)f;
    return v;
  } else {
    return round(v, f);
  }
}

}  // namespace xent::ddm

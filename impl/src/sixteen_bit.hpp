// Fast float32 <-> bfloat16/float16 conversions for the kernels' rows:
// branch-free per element (selects, which the compiler vectorises), exact
// widening, narrowing rounded once to nearest-even with subnormals, overflow
// to infinity and quiet NaNs -- the same results as xent::widen/xent::narrow
// (tests/dtype_test.cpp compares them on every 16-bit pattern and on a dense
// sample of float32 patterns with every rounding boundary).
#pragma once

#include <bit>
#include <cstdint>

#include "xent/tensor.hpp"

namespace xent::sixteen {

inline float widen_bf16(std::uint16_t h) { return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16); }

inline float widen_f16(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t em = h & 0x7fffu;  // exponent and mantissa
  // Normal: the 10 mantissa bits move up 13 places, the exponent is rebiased
  // by 127 - 15. inf/NaN: exponent all ones. Subnormal: m 2^-24, exact in float.
  const std::uint32_t normal = (em << 13) + ((127u - 15u) << 23);
  const std::uint32_t special = em > 0x7c00u ? 0x7fc00000u : 0x7f800000u;  // NaN (quiet) or inf
  const std::uint32_t subnormal = std::bit_cast<std::uint32_t>(static_cast<float>(em) * 0x1p-24f);
  const std::uint32_t bits = em >= 0x7c00u ? special : em >= 0x0400u ? normal : subnormal;
  return std::bit_cast<float>(sign | bits);
}

inline std::uint16_t narrow_bf16(float f) {
  const std::uint32_t b = std::bit_cast<std::uint32_t>(f);
  const bool nan = (b & 0x7fffffffu) > 0x7f800000u;
  // Adding 0x7fff plus the lowest kept bit carries into the kept bits exactly
  // when the dropped half is above the midpoint, or at it with an odd kept
  // bit: nearest-even; a carry out of the mantissa steps the exponent (up to inf).
  const std::uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
  return static_cast<std::uint16_t>(nan ? ((b >> 16) & 0x8000u) | 0x7fc0u : rounded);  // quiet NaN
}

inline std::uint16_t narrow_f16(float f) {
  const std::uint32_t b = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (b >> 16) & 0x8000u;
  const std::uint32_t a = b & 0x7fffffffu;  // |f|
  // Normal range: round the mantissa at bit 13 (as narrow_bf16 at bit 16),
  // then rebias; a carry steps the exponent, past 65504 to inf (0x7c00).
  const std::uint32_t r = (a + 0xfffu + ((a >> 13) & 1u)) >> 13;
  const std::uint32_t normal = r - ((127u - 15u) << 10);
  // Below 2^-14: |f| 2^24 rounded to an integer by the float addition of
  // 2^23 (nearest-even), which is the subnormal's mantissa (1024 = 2^-14).
  const float scaled = std::bit_cast<float>(a) * 0x1p24f;
  const std::uint32_t sub = static_cast<std::uint32_t>((scaled + 0x1p23f) - 0x1p23f);
  std::uint32_t bits = a < 0x38800000u ? sub : normal;  // 0x38800000: 2^-14
  bits = a >= 0x477ff000u ? 0x7c00u : bits;             // 65520 and above: inf
  bits = a > 0x7f800000u ? 0x7e00u : bits;              // NaN
  return static_cast<std::uint16_t>(sign | bits);
}

// Contiguous rows, vectorised per instruction set (sixteen_bit_rows.cpp).
void widen_contiguous(const std::uint16_t* src, float* dst, std::int64_t n, dtype t);
void narrow_contiguous(const float* src, std::uint16_t* dst, std::int64_t n, dtype t);

// n elements of a 16-bit row (element stride `stride`) widened into dst.
inline void widen_row(const std::uint16_t* src, std::int64_t stride, float* dst, std::int64_t n, dtype t) {
  if (stride == 1) return widen_contiguous(src, dst, n, t);
  for (std::int64_t i = 0; i < n; ++i) dst[i] = t == dtype::bf16 ? widen_bf16(src[i * stride]) : widen_f16(src[i * stride]);
}

// n float32 values rounded to a 16-bit dtype into a row (element stride `stride`).
inline void narrow_row(const float* src, std::uint16_t* dst, std::int64_t stride, std::int64_t n, dtype t) {
  if (stride == 1) return narrow_contiguous(src, dst, n, t);
  for (std::int64_t i = 0; i < n; ++i) dst[i * stride] = t == dtype::bf16 ? narrow_bf16(src[i]) : narrow_f16(src[i]);
}

}  // namespace xent::sixteen

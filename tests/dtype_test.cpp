// The 16-bit dtypes: widening and narrowing against independent definitions
// (every bit pattern, every rounding case), and what the front door accepts
// and refuses for bfloat16 and float16 logits.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "double_double.hpp"
#include "sixteen_bit.hpp"
#include "xent/kernel.hpp"
#include "xent/xent.hpp"

namespace {

using xent::dtype;

// float16 by its definition: (-1)^s 2^(e-15) (1 + m/1024), subnormals 2^-14 m/1024.
double float16_value(std::uint16_t b) {
  const double sign = (b & 0x8000) ? -1.0 : 1.0;
  const int e = (b >> 10) & 0x1f, m = b & 0x3ff;
  if (e == 0x1f) return m ? std::numeric_limits<double>::quiet_NaN() : sign * HUGE_VAL;
  if (e == 0) return sign * std::ldexp(m, -24);
  return sign * std::ldexp(1024 + m, e - 25);
}

TEST(dtype, every_float16_pattern_widens_to_its_value_and_narrows_back) {
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const auto bits = static_cast<std::uint16_t>(b);
    const double v = float16_value(bits);
    const float w = xent::widen(bits, dtype::f16);
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(w)) << std::hex << b;
      EXPECT_TRUE(std::isnan(xent::widen(xent::narrow(w, dtype::f16), dtype::f16)));
      continue;
    }
    ASSERT_EQ(static_cast<double>(w), v) << std::hex << b;
    ASSERT_EQ(std::signbit(w), (b & 0x8000) != 0) << std::hex << b;
    ASSERT_EQ(xent::narrow(w, dtype::f16), bits) << std::hex << b;
  }
}

TEST(dtype, every_bfloat16_pattern_widens_to_the_float32_of_its_bits_and_narrows_back) {
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const auto bits = static_cast<std::uint16_t>(b);
    const float v = std::bit_cast<float>(b << 16);
    const float w = xent::widen(bits, dtype::bf16);
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(w));
      continue;
    }
    ASSERT_EQ(std::bit_cast<std::uint32_t>(w), b << 16) << std::hex << b;
    ASSERT_EQ(xent::narrow(w, dtype::bf16), bits) << std::hex << b;
  }
}

// Between two neighbours a and b of the format: below the midpoint rounds to
// a, above to b, the midpoint itself to the even one; checked for every
// positive finite pattern and its successor (overflow: past the midpoint
// between the largest finite value and the next power of two, inf).
void check_rounding_between_neighbours(dtype t) {
  const std::uint16_t inf = t == dtype::f16 ? 0x7c00 : 0x7f80;
  for (std::uint16_t a = 0; a < inf; ++a) {
    const double va = xent::widen(a, t);
    const auto next = static_cast<std::uint16_t>(a + 1);
    // The successor of the largest finite value is 2^(emax+1) for rounding.
    const double vb = next == inf ? 2.0 * std::ldexp(1.0, std::ilogb(va)) : xent::widen(next, t);
    const double mid = va + (vb - va) / 2;  // exact in double
    const std::uint16_t even = (a & 1) ? next : a;
    ASSERT_EQ(xent::narrow(std::nextafter(mid, va), t), a) << std::hex << a;
    ASSERT_EQ(xent::narrow(std::nextafter(mid, vb), t), next) << std::hex << a;
    ASSERT_EQ(xent::narrow(mid, t), even) << std::hex << a;
    ASSERT_EQ(xent::narrow(-mid, t), static_cast<std::uint16_t>(even | 0x8000)) << std::hex << a;
  }
}

TEST(dtype, float16_rounds_to_nearest_even_with_subnormals_and_overflow) {
  check_rounding_between_neighbours(dtype::f16);
  EXPECT_EQ(xent::narrow(65519.99, dtype::f16), 0x7bff);  // below the midpoint 65520
  EXPECT_EQ(xent::narrow(65520.0, dtype::f16), 0x7c00);   // the midpoint: to even, inf
  EXPECT_EQ(xent::narrow(0x1p-25, dtype::f16), 0x0000);   // half the smallest subnormal: to even 0
  EXPECT_EQ(xent::narrow(0x1.0000000000001p-25, dtype::f16), 0x0001);
  EXPECT_EQ(xent::narrow(-0.0, dtype::f16), 0x8000);
}

TEST(dtype, bfloat16_rounds_to_nearest_even_from_double_without_double_rounding) {
  check_rounding_between_neighbours(dtype::bf16);
  // 1 + 2^-8 + 2^-30: above the midpoint of 1 and 1 + 2^-7 by less than a
  // float32 ulp; through float32 it would become the midpoint and round to 1.
  EXPECT_EQ(xent::narrow(1.0 + 0x1p-8 + 0x1p-30, dtype::bf16), 0x3f81);
  EXPECT_EQ(xent::narrow(1.0 + 0x1p-8, dtype::bf16), 0x3f80);
}

// The kernels' branch-free row conversions (impl/src/sixteen_bit.hpp) give
// what xent::widen / xent::narrow give: every 16-bit pattern; float32
// patterns with every low-bit pattern at each rounding position of both
// dtypes (bit 13 for float16, bit 16 for bfloat16), float16's subnormal
// midpoints and their neighbours, and a sample of all the others.
TEST(dtype, fast_row_conversions_agree_with_the_definitions) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    const double v = float16_value(bits);
    const float w = xent::sixteen::widen_f16(bits);
    ASSERT_EQ(std::signbit(w), (h & 0x8000u) != 0) << std::hex << h;
    if (std::isnan(v)) ASSERT_TRUE(std::isnan(w)) << std::hex << h;
    else ASSERT_EQ(static_cast<double>(w), v) << std::hex << h;
  }
  std::int64_t checked = 0;
  auto one = [&](std::uint32_t x) {
    const float f = std::bit_cast<float>(x);
    ASSERT_EQ(xent::sixteen::narrow_bf16(f), xent::narrow(f, dtype::bf16)) << std::hex << x;
    ASSERT_EQ(xent::sixteen::narrow_f16(f), xent::narrow(f, dtype::f16)) << std::hex << x;
    ++checked;
  };
  for (std::uint32_t hi = 0; hi < (1u << 19); ++hi)
    for (std::uint32_t lo : {0u, 1u, 0xfffu, 0x1000u, 0x1001u, 0x1fffu}) one((hi << 13) | lo);
  for (std::uint32_t hi = 0; hi < (1u << 16); ++hi)
    for (std::uint32_t lo : {0u, 1u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu}) one((hi << 16) | lo);
  for (int k = 0; k < 2048; ++k) {
    const float mid = static_cast<float>((k + 0.5) * 0x1p-24);  // exact
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1.0f), -mid}) one(std::bit_cast<std::uint32_t>(f));
  }
  for (std::uint64_t u = 0; u < (std::uint64_t{1} << 32); u += 4099) one(static_cast<std::uint32_t>(u));
  EXPECT_GT(checked, 4000000);
}

// The vectorised row conversions (impl/src/sixteen_bit_rows.cpp), on every
// Highway target of this CPU, give the scalar functions' bits: every 16-bit
// pattern widened, and float32 patterns around every rounding position
// narrowed (rows of odd length, so the scalar tail runs too).
TEST(dtype, vector_row_conversions_agree_on_every_target) {
  std::vector<std::uint16_t> h(0x10000 + 3);
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = static_cast<std::uint16_t>(i);
  std::vector<std::uint32_t> patterns;
  for (std::uint32_t hi = 0; hi < (1u << 16); hi += 3)
    for (std::uint32_t lo : {0u, 0x0fffu, 0x1000u, 0x1001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu})
      patterns.push_back((hi << 16) | lo);
  for (std::uint32_t hi = 0; hi < (1u << 19); hi += 5)
    for (std::uint32_t lo : {0x0fffu, 0x1000u, 0x1001u}) patterns.push_back((hi << 13) | lo);
  for (int k = 0; k < 2048; ++k) patterns.push_back(std::bit_cast<std::uint32_t>(static_cast<float>((k + 0.5) * 0x1p-24)));
  patterns.push_back(0x7f800001u);  // a signalling NaN
  std::vector<float> f(patterns.size());
  for (std::size_t i = 0; i < f.size(); ++i) f[i] = std::bit_cast<float>(patterns[i]);
  const auto n = static_cast<std::int64_t>(f.size());
  for (const std::int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (const dtype t : {dtype::bf16, dtype::f16}) {
      std::vector<float> w(h.size());
      xent::sixteen::widen_row(h.data(), 1, w.data(), static_cast<std::int64_t>(h.size()), t);
      for (std::size_t i = 0; i < h.size(); ++i) {
        const float want = t == dtype::bf16 ? xent::sixteen::widen_bf16(h[i]) : xent::sixteen::widen_f16(h[i]);
        ASSERT_EQ(std::bit_cast<std::uint32_t>(w[i]), std::bit_cast<std::uint32_t>(want))
            << hwy::TargetName(target) << " " << xent::to_string(t) << " widen " << std::hex << h[i];
      }
      std::vector<std::uint16_t> r(f.size());
      xent::sixteen::narrow_row(f.data(), r.data(), 1, n, t);
      for (std::size_t i = 0; i < f.size(); ++i)
        ASSERT_EQ(r[i], t == dtype::bf16 ? xent::sixteen::narrow_bf16(f[i]) : xent::sixteen::narrow_f16(f[i]))
            << hwy::TargetName(target) << " " << xent::to_string(t) << " narrow " << std::hex << patterns[i];
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// ---- the front door ---------------------------------------------------------

std::vector<std::uint16_t> narrowed(const std::vector<float>& v, dtype t) {
  std::vector<std::uint16_t> r;
  for (float x : v) r.push_back(xent::narrow(x, t));
  return r;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const xent::error& e) {
    return e.what();
  }
  return "no error";
}

// stable's rounding formats (rounding_format.hpp), against the conversions
// above: every finite value's neighbours are the adjacent bit patterns, its
// parity is its last bit, the midpoints round to the even neighbour and the
// doubles just off them to the near one.
TEST(dtype, rounding_formats_walk_every_16_bit_value_like_its_bit_patterns) {
  for (const dtype t : {dtype::bf16, dtype::f16}) {
    const xent::ddm::format f = xent::ddm::format_of(t);
    const float largest = xent::widen(t == dtype::bf16 ? 0x7f7f : 0x7bff, t);
    EXPECT_EQ(f.largest(), static_cast<double>(largest));
    for (std::uint32_t b = 0; b < 0x7fff; ++b) {  // +0 .. the largest finite value, and its successor
      const auto bits = static_cast<std::uint16_t>(b);
      const float x = xent::widen(bits, t);
      if (std::isinf(x) || std::isnan(x)) break;
      const float up = xent::widen(static_cast<std::uint16_t>(b + 1), t);
      SCOPED_TRACE(std::to_string(b));
      EXPECT_EQ(xent::ddm::next_up(x, f), up);
      EXPECT_EQ(xent::ddm::next_down(up, f), x);
      EXPECT_EQ(xent::ddm::next_down(-x, f), -up);
      EXPECT_EQ(xent::ddm::even(x, f), (b & 1u) == 0);
      EXPECT_EQ(xent::ddm::round(static_cast<double>(x), f), x);
      // The midpoint to the next value (overflow: to 2^(emax+1)) and just off it.
      const double mid = (static_cast<double>(x) + xent::ddm::as_wide(up, f)) / 2;
      const float even = (b & 1u) == 0 ? x : up;
      EXPECT_EQ(xent::ddm::round(mid, f), even);
      EXPECT_EQ(xent::ddm::round(std::nextafter(mid, 0.0), f), x);
      EXPECT_EQ(xent::ddm::round(std::nextafter(mid, HUGE_VAL), f), up);
      EXPECT_EQ(xent::ddm::round(-mid, f), -even);
      const xent::ddm::boundaries around = xent::ddm::around(up, f);
      EXPECT_EQ(around.below, mid);
      EXPECT_EQ(static_cast<double>(xent::ddm::round(mid, f)), xent::round_to(mid, t));
    }
  }
}

TEST(dtype, float32_only_kernels_refuse_16_bit_logits_naming_the_kernels_that_take_them) {
  const std::vector<std::uint16_t> x = narrowed({0, 1, 2, 3}, dtype::bf16);
  const std::vector<std::int64_t> t{1, 0};
  const auto* naive = xent::find_implementation("naive");
  ASSERT_NE(naive, nullptr);
  const std::string m = error_of([&] {
    xent::cross_entropy(xent::view(x.data(), dtype::bf16, {2, 2}), xent::view(t.data(), {2}), {}, naive);
  });
  EXPECT_NE(m.find("'naive' does not compute bfloat16 logits"), std::string::npos) << m;
  EXPECT_NE(m.find("stable, simd"), std::string::npos) << m;
}

TEST(dtype, outputs_and_inputs_must_have_the_logits_dtype) {
  const std::vector<std::uint16_t> x = narrowed({0, 1, 2, 3}, dtype::f16), w = narrowed({1, 2}, dtype::f16);
  const std::vector<float> w32{1, 2}, g32(4);
  const std::vector<std::int64_t> t{1, 0};
  const auto* simd = xent::find_implementation("simd");
  const auto logits = xent::view(x.data(), dtype::f16, {2, 2});
  const auto target = xent::view(t.data(), {2});
  std::uint16_t out16 = 0;
  float out32 = 0;
  xent::options o;
  o.weight = xent::view(w32.data(), {2});
  EXPECT_NE(error_of([&] { xent::cross_entropy(logits, target, xent::view(&out16, dtype::f16, {}), o, simd); })
                .find("weight must be float16, got float32"),
            std::string::npos);
  EXPECT_NE(error_of([&] { xent::cross_entropy(logits, target, xent::view(&out16, dtype::bf16, {}), {}, simd); })
                .find("out must be float16 (the logits' dtype) or float32, got bfloat16"),
            std::string::npos);
  std::vector<float> g(4);
  EXPECT_NE(error_of([&] {
              xent::cross_entropy_forward_backward(logits, target, xent::view(&out32, {}), xent::view(g.data(), {2, 2}),
                                                   {}, nullptr, simd);
            }).find("grad must be float16, got float32"),
            std::string::npos);
  // float64 logits: naive does not compute them (stable, simd, openmp and
  // throughput do: tests/float64_test.cpp, properties/float64_props.cpp).
  const double x64[4] = {0, 1, 2, 3};
  double out64 = 0.0;
  xent::tensor_view o64 = xent::view(&out64, {});
  o64.data = &out64;
  const auto* naive = xent::find_implementation("naive");
  ASSERT_NE(naive, nullptr);
  EXPECT_NE(error_of([&] { xent::cross_entropy(xent::view(x64, {2, 2}), target, o64, {}, naive); })
                .find("implementation 'naive' does not compute float64 logits"),
            std::string::npos);
  // The float-returning overload gives a float32 loss: not for float64 logits.
  EXPECT_NE(error_of([&] { xent::cross_entropy(xent::view(x64, {2, 2}), target, {}, nullptr); })
                .find("float64 logits give a float64 loss: pass an output view"),
            std::string::npos);
  // Accepted: float16 weights, a float16 or float32 loss.
  o.weight = xent::view(w.data(), dtype::f16, {2});
  xent::cross_entropy(logits, target, xent::view(&out16, dtype::f16, {}), o, simd);
  xent::cross_entropy(logits, target, xent::view(&out32, {}), o, simd);
  EXPECT_EQ(xent::widen(out16, dtype::f16), static_cast<float>(xent::round_to(out32, dtype::f16)));
  // (1 * lse(0,1) - 0 ... ) weighted mean: w_1 (lse - 1) + w_0 (lse - 2), over w_1 + w_0.
  const double l0 = std::log(std::exp(0.0) + std::exp(1.0)) - 1.0, l1 = std::log(std::exp(2.0) + std::exp(3.0)) - 2.0;
  EXPECT_NEAR(out32, (2.0 * l0 + 1.0 * l1) / 3.0, 1e-6);
}

// Every 16-bit kernel gives the float32 computation of the same values,
// rounded: bit for bit equal to rounding its own float32 result (index
// targets, C = 100 rows; the loss here is in float32 for both).
TEST(dtype, sixteen_bit_rows_give_the_float32_rows_of_the_same_values) {
  const std::int64_t N = 7, C = 100;
  std::vector<float> x(N * C);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)) * 9.0);
  std::vector<std::int64_t> t(N);
  for (std::int64_t n = 0; n < N; ++n) t[n] = (n * 13) % C;
  for (const dtype d : {dtype::bf16, dtype::f16}) {
    for (float& v : x) v = static_cast<float>(xent::round_to(v, d));
    const std::vector<std::uint16_t> x16 = narrowed(x, d);
    for (const auto* k : xent::implementations()) {
      if (!(k->dtypes() & xent::dtype_bit(d))) continue;
      std::vector<float> l32(N), g32(N * C), l16(N);
      std::vector<std::uint16_t> g16(N * C);
      xent::options o;
      o.reduce = xent::reduction::none;
      xent::cross_entropy_forward_backward(xent::view(x.data(), {N, C}), xent::view(t.data(), {N}),
                                           xent::view(l32.data(), {N}), xent::view(g32.data(), {N, C}), o, nullptr, k);
      xent::cross_entropy_forward_backward(xent::view(x16.data(), d, {N, C}), xent::view(t.data(), {N}),
                                           xent::view(l16.data(), {N}), xent::view(g16.data(), d, {N, C}), o,
                                           nullptr, k);
      for (std::int64_t i = 0; i < N; ++i) EXPECT_EQ(l16[i], l32[i]) << k->name() << " " << xent::to_string(d);
      for (std::int64_t i = 0; i < N * C; ++i)
        ASSERT_EQ(g16[i], xent::narrow(g32[i], d)) << k->name() << " " << xent::to_string(d) << " at " << i;
    }
  }
}

}  // namespace

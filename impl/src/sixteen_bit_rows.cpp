// Contiguous 16-bit rows widened to float32 and float32 rows narrowed to
// 16 bits, vectorised per instruction set (Highway, dispatched at run time).
// The lanes compute exactly what the scalar functions of sixteen_bit.hpp
// compute (same integer steps, 32-bit lanes). Highway's own PromoteTo /
// DemoteTo for these types are not used: in the version this project builds
// with, bfloat16 DemoteTo truncates, and the float16 emulation below AVX2
// neither rounds nor keeps infinities.
#include <cstdint>

#include "sixteen_bit.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "sixteen_bit_rows.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace xent {
namespace sixteen {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;
// (integer comparisons as Gt: the one this Highway version has for int32 lanes)

void WidenRowImpl(const std::uint16_t* src, float* dst, std::int64_t n, bool bf16) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<std::uint16_t, decltype(df)> du16;
  const auto N = static_cast<std::int64_t>(hn::Lanes(df));
  std::int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto h = hn::BitCast(di, hn::PromoteTo(hn::RebindToUnsigned<decltype(df)>(), hn::LoadU(du16, src + i)));
    if (bf16) {
      hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(h)), df, dst + i);
      continue;
    }
    const auto em = hn::And(h, hn::Set(di, 0x7fff));
    const auto sign = hn::ShiftLeft<16>(hn::And(h, hn::Set(di, 0x8000)));
    const auto normal = hn::Add(hn::ShiftLeft<13>(em), hn::Set(di, (127 - 15) << 23));
    const auto special = hn::IfThenElse(hn::Gt(em, hn::Set(di, 0x7c00)), hn::Set(di, 0x7fc00000),
                                        hn::Set(di, 0x7f800000));
    const auto sub = hn::BitCast(di, hn::Mul(hn::ConvertTo(df, em), hn::Set(df, 0x1p-24f)));
    const auto bits = hn::IfThenElse(hn::Gt(em, hn::Set(di, 0x7bff)), special,
                                     hn::IfThenElse(hn::Gt(em, hn::Set(di, 0x03ff)), normal, sub));
    hn::StoreU(hn::BitCast(df, hn::Or(sign, bits)), df, dst + i);
  }
  for (; i < n; ++i) dst[i] = bf16 ? widen_bf16(src[i]) : widen_f16(src[i]);
}

void NarrowRowImpl(const float* src, std::uint16_t* dst, std::int64_t n, bool bf16) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::RebindToUnsigned<decltype(df)> du;
  const hn::Rebind<std::uint16_t, decltype(df)> du16;
  const auto N = static_cast<std::int64_t>(hn::Lanes(df));
  std::int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(df, src + i);
    const auto b = hn::BitCast(du, v);
    const auto a = hn::BitCast(di, hn::And(b, hn::Set(du, 0x7fffffffu)));  // |f|, as a non-negative int
    const auto sign = hn::BitCast(di, hn::And(hn::ShiftRight<16>(b), hn::Set(du, 0x8000u)));
    const auto nan = hn::Gt(a, hn::Set(di, 0x7f800000));
    hn::Vec<decltype(di)> bits;
    if (bf16) {
      // (b + 0x7fff + lowest kept bit) >> 16, on the unsigned bits (sign included).
      const auto keep = hn::And(hn::ShiftRight<16>(b), hn::Set(du, 1u));
      const auto rounded = hn::BitCast(di, hn::ShiftRight<16>(hn::Add(hn::Add(b, hn::Set(du, 0x7fffu)), keep)));
      bits = hn::IfThenElse(nan, hn::Or(sign, hn::Set(di, 0x7fc0)), rounded);
    } else {
      const auto au = hn::BitCast(du, a);
      const auto keep = hn::And(hn::ShiftRight<13>(au), hn::Set(du, 1u));
      const auto r = hn::BitCast(di, hn::ShiftRight<13>(hn::Add(hn::Add(au, hn::Set(du, 0xfffu)), keep)));
      const auto normal = hn::Sub(r, hn::Set(di, (127 - 15) << 10));
      // Below 2^-14: |f| 2^24 rounded to an integer by adding and removing 2^23.
      const auto scaled = hn::Mul(hn::BitCast(df, a), hn::Set(df, 0x1p24f));
      const auto whole = hn::Sub(hn::Add(scaled, hn::Set(df, 0x1p23f)), hn::Set(df, 0x1p23f));
      // (whole is used only where a < 2^-14: there it is an integer in [0, 1024])
      const auto sub = hn::ConvertTo(di, hn::IfThenElse(hn::RebindMask(df, hn::Gt(hn::Set(di, 0x38800000), a)),
                                                        whole, hn::Zero(df)));
      auto m = hn::IfThenElse(hn::Gt(hn::Set(di, 0x38800000), a), sub, normal);
      m = hn::IfThenElse(hn::Gt(a, hn::Set(di, 0x477fefff)), hn::Set(di, 0x7c00), m);
      m = hn::IfThenElse(nan, hn::Set(di, 0x7e00), m);
      bits = hn::Or(sign, m);
    }
    hn::StoreU(hn::DemoteTo(du16, bits), du16, dst + i);
  }
  for (; i < n; ++i) dst[i] = bf16 ? narrow_bf16(src[i]) : narrow_f16(src[i]);
}

}  // namespace HWY_NAMESPACE
}  // namespace sixteen
}  // namespace xent
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace xent {
namespace sixteen {

HWY_EXPORT(WidenRowImpl);
HWY_EXPORT(NarrowRowImpl);

void widen_contiguous(const std::uint16_t* src, float* dst, std::int64_t n, dtype t) {
  HWY_DYNAMIC_DISPATCH(WidenRowImpl)(src, dst, n, t == dtype::bf16);
}

void narrow_contiguous(const float* src, std::uint16_t* dst, std::int64_t n, dtype t) {
  HWY_DYNAMIC_DISPATCH(NarrowRowImpl)(src, dst, n, t == dtype::bf16);
}

}  // namespace sixteen
}  // namespace xent
#endif  // HWY_ONCE

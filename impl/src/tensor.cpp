#include "xent/tensor.hpp"

#include <dlpack/dlpack.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>

#include "sixteen_bit.hpp"
#include "xent/error.hpp"

namespace xent {

std::string to_string(dtype t) {
  switch (t) {
    case dtype::f32: return "float32";
    case dtype::f64: return "float64";
    case dtype::i64: return "int64";
    case dtype::i32: return "int32";
    case dtype::bf16: return "bfloat16";
    case dtype::f16: return "float16";
  }
  return "unknown";
}

std::size_t size_of(dtype t) {
  switch (t) {
    case dtype::f32: return 4;
    case dtype::f64: return 8;
    case dtype::i64: return 8;
    case dtype::i32: return 4;
    case dtype::bf16: return 2;
    case dtype::f16: return 2;
  }
  return 0;
}

namespace {
struct float_format {
  int digits;      // significant bits
  int min_exp;     // exponent of the smallest normal number
  double largest;  // largest finite value
};
float_format format_of(dtype t) {
  switch (t) {
    case dtype::bf16: return {8, -126, 0x1.fep127};
    case dtype::f16: return {11, -14, 65504.0};
    case dtype::f32: return {24, -126, 0x1.fffffep127};
    default: throw error("dtype", "round_to: " + to_string(t) + " is not a floating dtype");
  }
}
}  // namespace

double round_to(double v, dtype t) {
  if (t == dtype::f64 || !std::isfinite(v) || v == 0.0) return v;
  const float_format f = format_of(t);
  // Scaled so that the format's last significant bit has weight 1, rounded
  // to an integer (nearest-even: the default mode), scaled back: all exact.
  const int e = std::max(std::ilogb(v), f.min_exp);
  const double r = std::ldexp(std::nearbyint(std::ldexp(v, f.digits - 1 - e)), e - f.digits + 1);
  return std::fabs(r) > f.largest ? std::copysign(HUGE_VAL, v) : r;
}

float widen(std::uint16_t bits, dtype t) {
  return t == dtype::bf16 ? sixteen::widen_bf16(bits) : sixteen::widen_f16(bits);
}

std::uint16_t narrow(double v, dtype t) {
  const std::uint16_t sign = std::signbit(v) ? 0x8000u : 0u;
  if (std::isnan(v)) return static_cast<std::uint16_t>(sign | (t == dtype::bf16 ? 0x7fc0u : 0x7e00u));
  const double r = round_to(v, t);  // exactly a value of t
  if (t == dtype::bf16) return static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(static_cast<float>(r)) >> 16);
  const double a = std::fabs(r);
  if (std::isinf(a)) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (a < 0x1p-14) return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::ldexp(a, 24)));
  const int e = std::ilogb(a);
  const auto mant = static_cast<std::uint16_t>(std::ldexp(a, 10 - e) - 1024.0);
  return static_cast<std::uint16_t>(sign | ((e + 15) << 10) | mant);
}

std::int64_t tensor_view::numel() const { return xent::numel(shape); }

std::int64_t numel(const std::vector<std::int64_t>& shape) {
  // Checked: a caller's shape may be anything until make_problem has seen it.
  std::int64_t n = 1;
  for (auto e : shape)
    if (__builtin_mul_overflow(n, e, &n))
      throw error("tensor", "shape " + xent::shape_string(shape) +
                                " has more elements than a 64-bit integer can count");
  return n;
}

bool tensor_view::is_contiguous() const { return strides == contiguous_strides(shape); }

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::ostringstream s;
  s << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

std::string tensor_view::shape_string() const { return xent::shape_string(shape); }

std::vector<std::int64_t> contiguous_strides(const std::vector<std::int64_t>& shape) {
  // Unsigned, wrapping products: a shape too large for 64 bits must not be
  // undefined behaviour here; make_problem rejects it with a clear error.
  std::vector<std::int64_t> strides(shape.size());
  std::uint64_t s = 1;
  for (std::size_t d = shape.size(); d-- > 0;) {
    strides[d] = static_cast<std::int64_t>(s);
    s *= static_cast<std::uint64_t>(shape[d]);
  }
  return strides;
}

namespace {
tensor_view make(void* data, dtype t, std::vector<std::int64_t> shape) {
  tensor_view v;
  v.data = data;
  v.type = t;
  v.strides = contiguous_strides(shape);
  v.shape = std::move(shape);
  return v;
}
}  // namespace

// Views are read or written depending on the argument they are passed as; the
// front door never writes through an input view.
tensor_view view(const float* d, std::vector<std::int64_t> s) {
  return make(const_cast<float*>(d), dtype::f32, std::move(s));
}
tensor_view view(float* d, std::vector<std::int64_t> s) { return make(d, dtype::f32, std::move(s)); }
tensor_view view(const double* d, std::vector<std::int64_t> s) {
  return make(const_cast<double*>(d), dtype::f64, std::move(s));
}
tensor_view view(const std::int64_t* d, std::vector<std::int64_t> s) {
  return make(const_cast<std::int64_t*>(d), dtype::i64, std::move(s));
}

tensor_view view(const std::uint16_t* d, dtype t, std::vector<std::int64_t> s) {
  return make(const_cast<std::uint16_t*>(d), t, std::move(s));
}
tensor_view view(std::uint16_t* d, dtype t, std::vector<std::int64_t> s) { return make(d, t, std::move(s)); }

tensor_view from_dlpack(const DLTensor& t) {
  if (t.device.device_type != kDLCPU)
    throw error("tensor", "DLPack tensor is not on the CPU (device_type " +
                              std::to_string(t.device.device_type) + ")");
  if (t.dtype.lanes != 1) throw error("tensor", "DLPack tensor with vector lanes is not supported");
  dtype type;
  const int bits = t.dtype.bits;
  if (t.dtype.code == kDLFloat && bits == 32) type = dtype::f32;
  else if (t.dtype.code == kDLFloat && bits == 64) type = dtype::f64;
  else if (t.dtype.code == kDLInt && bits == 64) type = dtype::i64;
  else if (t.dtype.code == kDLInt && bits == 32) type = dtype::i32;
  else if (t.dtype.code == kDLBfloat && bits == 16) type = dtype::bf16;
  else if (t.dtype.code == kDLFloat && bits == 16) type = dtype::f16;
  else
    throw error("tensor", "DLPack dtype code " + std::to_string(t.dtype.code) + " with " +
                              std::to_string(bits) + " bits is not supported");
  if (t.ndim < 0) throw error("tensor", "DLPack tensor has negative ndim " + std::to_string(t.ndim));
  // PyTorch and NumPy stop at 64 dimensions; a larger ndim is a corrupt
  // tensor, and copying its shape could exhaust memory.
  if (t.ndim > max_dlpack_ndim)
    throw error("tensor", "DLPack tensor has " + std::to_string(t.ndim) + " dimensions (at most " +
                              std::to_string(max_dlpack_ndim) + ")");
  if (t.ndim > 0 && !t.shape) throw error("tensor", "DLPack tensor has a null shape pointer");
  // data + byte_offset is computed as an address, never as pointer arithmetic
  // on an unknown pointer (which would be undefined when it wraps or when
  // data is null).
  const auto base = reinterpret_cast<std::uintptr_t>(t.data);
  std::uintptr_t first = 0;
  if (__builtin_add_overflow(base, t.byte_offset, &first))
    throw error("tensor", "DLPack tensor's data + byte_offset (" + std::to_string(t.byte_offset) +
                              ") wraps around the address space");
  if (!t.data && t.byte_offset != 0)
    throw error("tensor", "DLPack tensor has a null data pointer and byte_offset " +
                              std::to_string(t.byte_offset));
  tensor_view v;
  v.type = type;
  v.data = reinterpret_cast<void*>(first);
  v.shape.assign(t.shape, t.shape + t.ndim);
  v.strides = t.strides ? std::vector<std::int64_t>(t.strides, t.strides + t.ndim)
                        : contiguous_strides(v.shape);
  return v;
}

}  // namespace xent

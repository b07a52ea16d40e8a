// Tensor views: a pointer, an element type, a shape and strides (in elements).
// Views never own memory. They mirror DLPack's DLTensor so that framework
// tensors (and slices of them) can be passed without a copy.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>  // DLTensor: the ecosystem's tensor exchange struct

namespace xent {

// Element types. Logits may be float32, bfloat16 or float16 (docs/dtypes.md);
// float64 logits are refused for now.
enum class dtype { f32, f64, i64, i32, bf16, f16 };

std::string to_string(dtype t);
std::size_t size_of(dtype t);

// The 16-bit floating dtypes. Every bfloat16 and float16 value is a float32
// value, so widening is exact; narrowing rounds once, to nearest-even, with
// IEEE 754's subnormals and overflow to infinity (bfloat16: 8 significant
// bits, float32's exponent range; float16: 11 bits, subnormals from 2^-24,
// largest finite 65504). NaN stays NaN (quiet), with its sign.
float widen(std::uint16_t bits, dtype t);           // t: bf16 or f16
std::uint16_t narrow(double v, dtype t);            // t: bf16 or f16
// v rounded once to a floating dtype (f32, f64, bf16, f16), as a double.
double round_to(double v, dtype t);

struct tensor_view {
  void* data = nullptr;
  dtype type = dtype::f32;
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;  // in elements, same length as shape

  std::int64_t ndim() const { return static_cast<std::int64_t>(shape.size()); }
  std::int64_t numel() const;  // throws xent::error when the product overflows int64
  bool is_contiguous() const;  // row-major, no gaps
  std::string shape_string() const;  // "[3, 5]"
};

// The product of the extents; throws xent::error when it overflows int64.
std::int64_t numel(const std::vector<std::int64_t>& shape);

// "[3, 5]": how shapes appear in every message.
std::string shape_string(const std::vector<std::int64_t>& shape);

// Row-major strides for a shape.
std::vector<std::int64_t> contiguous_strides(const std::vector<std::int64_t>& shape);

// Contiguous views over caller-owned buffers.
tensor_view view(const float* data, std::vector<std::int64_t> shape);
tensor_view view(float* data, std::vector<std::int64_t> shape);
tensor_view view(const double* data, std::vector<std::int64_t> shape);
tensor_view view(const std::int64_t* data, std::vector<std::int64_t> shape);
// bfloat16 or float16 elements, as their 16-bit patterns.
tensor_view view(const std::uint16_t* data, dtype t, std::vector<std::int64_t> shape);
tensor_view view(std::uint16_t* data, dtype t, std::vector<std::int64_t> shape);

// A view of a DLPack tensor (CPU only; strides == NULL means contiguous;
// byte_offset honoured). Throws xent::error for devices or types we cannot read
// and for malformed tensors (negative or more than max_dlpack_ndim dimensions,
// a null shape, a byte_offset that wraps or offsets a null pointer). Extents,
// strides, sizes and alignment are checked by make_problem, as for any view.
inline constexpr std::int32_t max_dlpack_ndim = 64;
tensor_view from_dlpack(const DLTensor& t);

}  // namespace xent

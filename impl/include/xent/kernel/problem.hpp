// A validated cross-entropy problem: what the front door hands to a kernel.
//
// The front door (make_problem) checks shapes, dtypes and options once; kernels
// never re-validate. Positions are the entries of the target's shape
// (N, d1..dK) -- one softmax row each -- and every tensor reaches a position
// through its own strides, so sliced or (N,C,d..) inputs need no copy.
// Adjacent position dimensions that are contiguous for every tensor are merged,
// so the common (N,C) case has a single position dimension.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "xent/options.hpp"
#include "xent/tensor.hpp"

namespace xent {

enum class target_kind { index, probability };

struct problem {
  std::int64_t positions = 0;  // P = N*d1*..*dK (1 for (C) logits)
  std::int64_t classes = 0;    // C

  // Position space after merging contiguous dims; empty means one position.
  std::vector<std::int64_t> position_shape;

  // The logits' dtype (float32, float64, bfloat16 or float16), shared by
  // probability targets, weights, the gradient and the upstream gradient;
  // the loss's dtype is out_type: the logits' dtype, or float32 for 16-bit
  // logits. For other dtypes than float32 the float pointers below address
  // elements of that dtype: read and write them only through the typed
  // accessors (load, weight_at, upstream_at, store_grad, store_loss; for
  // float64 the *_wide ones, which return doubles). Only kernels whose
  // dtypes() has the bit see such problems (the front door refuses the
  // others).
  dtype type = dtype::f32;
  dtype out_type = dtype::f32;

  // Logits.
  const float* logits = nullptr;
  std::int64_t logits_class_stride = 1;
  std::vector<std::int64_t> logits_position_strides;

  // Targets: class indices (int64), or probabilities shaped like the logits.
  target_kind target = target_kind::index;
  const std::int64_t* target_index = nullptr;
  const float* target_prob = nullptr;
  std::int64_t target_class_stride = 1;  // probability targets only
  std::vector<std::int64_t> target_position_strides;

  // Class weights; nullptr means every weight is 1.
  const float* weight = nullptr;
  std::int64_t weight_stride = 1;

  std::int64_t ignore_index = -100;
  reduction reduce = reduction::mean;
  double label_smoothing = 0.0;

  // Outputs. loss: one scalar for mean/sum, one value per position for none.
  float* loss = nullptr;
  std::vector<std::int64_t> loss_position_strides;  // none only
  // Gradient w.r.t. the logits (forward_backward only). May alias the logits
  // exactly (same pointer and strides): every kernel reads a row fully before
  // writing its gradient.
  float* grad = nullptr;
  std::int64_t grad_class_stride = 1;
  std::vector<std::int64_t> grad_position_strides;
  // Upstream gradient: a scalar for mean/sum; for none a value per position
  // (upstream_per_position) or the scalar for every position.
  float upstream_scalar = 1.0f;
  double upstream_scalar_wide = 1.0;  // the same value, exact for float64 too
  const float* upstream = nullptr;
  std::vector<std::int64_t> upstream_position_strides;

  // Offset of position p in a tensor with the given position strides.
  std::int64_t offset(std::int64_t p, const std::vector<std::int64_t>& strides) const {
    // One position dimension (every (N, C) problem after merging): no
    // divisions, which cost more than a short row's arithmetic.
    if (position_shape.size() == 1) return p * strides[0];
    std::int64_t off = 0;
    for (std::size_t d = position_shape.size(); d-- > 0;) {
      const std::int64_t extent = position_shape[d];
      off += (p % extent) * strides[d];
      p /= extent;
    }
    return off;
  }
  // f(p, offset(p, strides)) for every position in order, without divisions.
  template <class F>
  void for_each_offset(const std::vector<std::int64_t>& strides, F&& f) const {
    if (position_shape.size() == 1) {  // every (N, C) problem: a plain loop
      const std::int64_t s = strides[0];
      for (std::int64_t p = 0; p < positions; ++p) f(p, p * s);
      return;
    }
    for_each_offset_odometer(strides, f);
  }

 private:
  // Kept out of line: inlined next to the plain loop it made GCC 12 warn
  // (-Wfree-nonheap-object) about its vector.
  template <class F>
  [[gnu::noinline]] void for_each_offset_odometer(const std::vector<std::int64_t>& strides, F& f) const {
    const std::size_t dims = position_shape.size();
    std::vector<std::int64_t> index(dims, 0);
    std::int64_t off = 0;
    for (std::int64_t p = 0; p < positions; ++p) {
      f(p, off);
      // Odometer step. `off` only ever takes offsets of elements of the view
      // (which validation bounded): stepping past the last index and then
      // back overflowed for an extent-1 dimension with a stride near 2^63,
      // which any value may have (found by fuzz_problem).
      for (std::size_t d = dims; d-- > 0;) {
        if (++index[d] < position_shape[d]) {
          off += strides[d];
          break;
        }
        off -= strides[d] * (position_shape[d] - 1);
        index[d] = 0;
      }
    }
  }

 public:
  // Element i (in elements of `t`) past base as a float: exact for float32,
  // bfloat16 and float16; float64 rounded once (exact values: load_wide).
  static float load(const void* base, std::int64_t i, dtype t) {
    if (t == dtype::f32) return static_cast<const float*>(base)[i];
    if (t == dtype::f64) return static_cast<float>(static_cast<const double*>(base)[i]);
    return widen(static_cast<const std::uint16_t*>(base)[i], t);
  }
  // The same as a double: exact for every floating dtype.
  static double load_wide(const void* base, std::int64_t i, dtype t) {
    if (t == dtype::f64) return static_cast<const double*>(base)[i];
    return static_cast<double>(load(base, i, t));
  }
  // v rounded once to `t` into element i past base.
  static void store(void* base, std::int64_t i, double v, dtype t) {
    if (t == dtype::f32) static_cast<float*>(base)[i] = static_cast<float>(v);
    else if (t == dtype::f64) static_cast<double*>(base)[i] = v;
    else static_cast<std::uint16_t*>(base)[i] = narrow(v, t);
  }
  // Element `off` of a tensor of the logits' dtype, as an address.
  template <class T>
  T* element(T* base, std::int64_t off) const {
    if (type == dtype::f32) return base + off;
    using byte = std::conditional_t<std::is_const_v<T>, const unsigned char, unsigned char>;
    return reinterpret_cast<T*>(reinterpret_cast<byte*>(base) + off * static_cast<std::int64_t>(size_of(type)));
  }
  const float* logits_row(std::int64_t p) const { return element(logits, offset(p, logits_position_strides)); }
  std::int64_t target_at(std::int64_t p) const { return target_index[offset(p, target_position_strides)]; }
  const float* target_row(std::int64_t p) const { return element(target_prob, offset(p, target_position_strides)); }
  float weight_at(std::int64_t c) const { return weight ? load(weight, c * weight_stride, type) : 1.0f; }
  double weight_wide(std::int64_t c) const { return weight ? load_wide(weight, c * weight_stride, type) : 1.0; }
  float* loss_at(std::int64_t p) const {
    const std::int64_t off = offset(p, loss_position_strides);
    if (out_type == dtype::f32) return loss + off;
    if (out_type == dtype::f64) return reinterpret_cast<float*>(reinterpret_cast<double*>(loss) + off);
    return reinterpret_cast<float*>(reinterpret_cast<std::uint16_t*>(loss) + off);
  }
  float* grad_row(std::int64_t p) const { return element(grad, offset(p, grad_position_strides)); }
  float upstream_at(std::int64_t p) const {
    return upstream ? load(upstream, offset(p, upstream_position_strides), out_type) : upstream_scalar;
  }
  double upstream_wide(std::int64_t p) const {
    return upstream ? load_wide(upstream, offset(p, upstream_position_strides), out_type) : upstream_scalar_wide;
  }
  // The loss of position p (reduction none) or the reduced loss, rounded once
  // to out_type.
  void store_loss(std::int64_t p, double v) const { store(loss_at(p), 0, v, out_type); }
  void store_reduced(double v) const { store(loss, 0, v, out_type); }
  // Class c of a gradient row (grad_row), rounded once to the logits' dtype.
  void store_grad(float* row, std::int64_t c, double v) const { store(row, c * grad_class_stride, v, type); }
  // Class c of a logits or probability row, widened.
  float load_class(const float* row, std::int64_t c, std::int64_t stride) const { return load(row, c * stride, type); }
  double load_class_wide(const float* row, std::int64_t c, std::int64_t stride) const {
    return load_wide(row, c * stride, type);
  }
  // Is position p counted (index targets: not ignore_index)?
  bool counted(std::int64_t p) const {
    return target == target_kind::probability || target_at(p) != ignore_index;
  }
};

// Validates everything and builds the problem. Throws xent::error with a
// message naming the argument, position and value. Reads the targets (bounds
// check) but writes nothing.
//   out:      the logits' dtype (or f32 for bf16/f16 logits); for mean/sum a
//             view with one element (shape () or [1]); for none a view of the
//             target's position shape.
//   grad:     nullptr for loss only; else the logits' dtype and shape.
//   upstream: out's dtype; nullptr means 1; for mean/sum one element; for
//             none one element or the position shape.
// Logits f32, f64, bf16 or f16; probability targets and weights in the logits' dtype.
problem make_problem(const tensor_view& logits, const tensor_view& target, const options& opt,
                     const tensor_view& out, const tensor_view* grad = nullptr,
                     const tensor_view* upstream = nullptr);

// The same checks without outputs (used by the reference and by tools that
// only inspect a problem). loss/grad pointers stay null.
problem make_problem(const tensor_view& logits, const tensor_view& target, const options& opt);

}  // namespace xent

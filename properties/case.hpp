// An owning test case: the logits storage and its layout, the targets, the
// options and the upstream gradient, plus the views the front door takes.
// `repro()` is the compact one-line form (benchdnn style) every failure prints:
//   n3c5_t1,3,2_mean_eps0.1_w
// followed by the values for small cases, so a shrunk counterexample can be
// pasted into a unit test.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "xent/xent.hpp"

namespace xent::props {

// How the logits sit in memory.
enum class layout {
  contiguous,  // (N, C), row-major
  strided,     // (N, C) rows of a wider buffer: row stride C + pad (a [B,T,C][:, h:] slice)
  spatial,     // (N, C, d): the class axis is dim 1, positions are (N, d)
  single,      // (C) with a 0-d target
};
std::string to_string(layout l);

struct test_case {
  layout lay = layout::contiguous;
  std::int64_t n = 1;    // batch N (1 for single)
  std::int64_t c = 1;    // classes C
  std::int64_t d = 1;    // spatial extent (spatial only)
  std::int64_t pad = 0;  // strided only: row stride is c + pad

  std::vector<float> storage;       // logits, in `lay`; padding holds a sentinel
  bool prob = false;                // probability targets (shape of the logits, contiguous)
  std::vector<std::int64_t> index;  // index targets, one per position
  std::vector<float> q;             // probability targets, contiguous in the logits' shape
  std::vector<float> weight;        // empty: no weight
  std::int64_t ignore_index = -100;
  reduction reduce = reduction::mean;
  double eps = 0.0;
  std::vector<float> upstream;      // empty: none; one value, or one per position (none)
  std::string regime;               // which logit generator filled the rows
  // The logits' dtype (probability targets and weights share it) and the
  // loss's (out_type: the same, or float32 for 16-bit logits). The values
  // above are float32 holding values of the dtype (to_dtype); the views of a
  // 16-bit case are 16-bit copies of them.
  dtype type = dtype::f32;
  dtype out_type = dtype::f32;

  // Rounds every value (logits, padding excepted, probability targets,
  // weights, upstream) once to t and makes t the case's dtype; out_type is t,
  // or float32 when f32_out. t: float32, bfloat16 or float16.
  void to_dtype(dtype t, bool f32_out = false);

  // float64 cases: the values themselves, in the layouts of storage, q,
  // weight and upstream (whose floats then hold them rounded to float32, for
  // the row contexts of bounds and for shrinking only).
  std::vector<double> storage64, q64, weight64, upstream64;
  // Makes the case float64: every value v becomes v (1 + h 2^-36), h a
  // pseudo-random 24-bit odd integer drawn from v's bits and `seed` (equal
  // values stay equal: ties, uniform rows and exact margins keep their
  // structure, now with float64's 53 bits), and the logits are scaled by
  // 2^shift (beyond float32's range: huge spreads, float64 subnormals).
  void to_float64(std::uint64_t seed, int shift);
  // The logit / probability in the case's dtype, exactly.
  double xv(std::int64_t p, std::int64_t cls) const {
    return type == dtype::f64 ? storage64[x_offset(p, cls)] : static_cast<double>(x(p, cls));
  }
  double qvv(std::int64_t p, std::int64_t cls) const {
    return type == dtype::f64 ? q64[q_offset(p, cls)] : static_cast<double>(qv(p, cls));
  }
  double wv(std::int64_t cls) const {
    if (weight.empty()) return 1.0;
    return type == dtype::f64 ? weight64[cls] : static_cast<double>(weight[cls]);
  }

  // Allocates storage for the shape; logits 0, targets 0, no options.
  static test_case shaped(layout l, std::int64_t n, std::int64_t c, std::int64_t d = 1,
                          std::int64_t pad = 0, bool prob = false);
  // Same layout and options, another batch or class count (storage reallocated
  // and zero; weight resized with 1s; upstream kept only if it still fits).
  test_case reshaped(std::int64_t n, std::int64_t c) const;

  std::int64_t positions() const { return lay == layout::spatial ? n * d : n; }
  std::int64_t elements() const { return positions() * c; }
  // Logical access by (position, class).
  std::int64_t x_offset(std::int64_t p, std::int64_t cls) const;
  float x(std::int64_t p, std::int64_t cls) const { return storage[x_offset(p, cls)]; }
  float& x(std::int64_t p, std::int64_t cls) { return storage[x_offset(p, cls)]; }
  std::int64_t q_offset(std::int64_t p, std::int64_t cls) const;
  float qv(std::int64_t p, std::int64_t cls) const { return q[q_offset(p, cls)]; }
  float& qv(std::int64_t p, std::int64_t cls) { return q[q_offset(p, cls)]; }
  float w(std::int64_t cls) const { return weight.empty() ? 1.0f : weight[cls]; }
  bool counted(std::int64_t p) const { return prob || index[p] != ignore_index; }
  float upstream_at(std::int64_t p) const {
    return upstream.empty() ? 1.0f : upstream.size() == 1 ? upstream[0] : upstream[p];
  }

  std::vector<std::int64_t> logits_shape() const;
  std::vector<std::int64_t> position_shape() const;  // the `none` output shape
  tensor_view logits_view() const;
  tensor_view target_view() const;
  const tensor_view* upstream_view(tensor_view& storage_for) const;  // nullptr when none
  options opts() const;  // views into this case: keep it alive

  std::string repro() const;  // one line + values when small
  std::string shape_tag() const;  // just the compact line

  // After an in-place call on a 16-bit case: the gradient the kernel wrote
  // over logits_view(), widened into storage.
  void widen_logits_from_view();

 private:
  // The 16-bit copies the views of a 16-bit case point into (rebuilt by each
  // view call; a case is used by one thread).
  mutable std::vector<std::uint16_t> storage16_, q16_, weight16_, upstream16_;
};

void showValue(const test_case& c, std::ostream& os);

}  // namespace xent::props

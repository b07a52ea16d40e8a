// Validation at the front door: every check happens here, once, before any
// output is written. Messages name the argument, the position and the value.
#include "xent/kernel/problem.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <sstream>

#include "xent/error.hpp"

namespace xent {
namespace {

using shape_t = std::vector<std::int64_t>;

std::string str(const shape_t& s) { return shape_string(s); }

// Sizes are checked before anything multiplies them: the element count (of
// the non-zero extents, as NumPy does, so that an empty [0, 2^62, 2^62] is no
// loophole), the byte size, and the bytes the strides reach from the data
// pointer must all fit in int64, and that range must lie inside the address
// space. After this, every product of an extent and a stride made by the
// front door and the kernels fits in int64. Data must be aligned to its
// element size (a misaligned float* is undefined behaviour in C++).
void check_view(const tensor_view& v, const char* name) {
  const std::string who(name);
  if (v.strides.size() != v.shape.size())
    throw error(name, who + " has " + std::to_string(v.shape.size()) + " dimensions but " +
                          std::to_string(v.strides.size()) + " strides");
  for (std::size_t d = 0; d < v.shape.size(); ++d)
    if (v.shape[d] < 0)
      throw error(name, who + " has a negative extent " + std::to_string(v.shape[d]) +
                            " in dimension " + std::to_string(d));
  const auto item = static_cast<std::int64_t>(size_of(v.type));
  std::int64_t count = 1, bytes = 0;
  bool empty = false;
  for (auto e : v.shape) {
    if (e == 0) empty = true;
    else if (__builtin_mul_overflow(count, e, &count))
      throw error(name, who + " of shape " + str(v.shape) +
                            " has more elements than a 64-bit integer can count");
  }
  if (__builtin_mul_overflow(count, item, &bytes))
    throw error(name, who + " of shape " + str(v.shape) + " (" + to_string(v.type) + ") has " +
                          std::to_string(count) + " elements: more bytes than a 64-bit integer can count");
  if (empty) return;  // nothing is addressed: data and strides do not matter
  if (v.data == nullptr)
    throw error(name, who + " has " + std::to_string(count) + " elements but a null data pointer");
  const auto address = reinterpret_cast<std::uintptr_t>(v.data);
  if (address % static_cast<std::uintptr_t>(item) != 0)
    throw error(name, who + " data pointer is not aligned to its " + std::to_string(item) + "-byte " +
                          to_string(v.type) + " elements");
  // Elements below and above the data pointer reached through the strides.
  std::int64_t below = 0, above = 0;
  auto too_far = [&] {
    return error(name, who + " of shape " + str(v.shape) + " with strides " + str(v.strides) +
                           " reaches further than a 64-bit integer can count (in bytes)");
  };
  for (std::size_t d = 0; d < v.shape.size(); ++d) {
    const std::int64_t s = v.strides[d];
    if (v.shape[d] == 1 || s == 0) continue;
    if (s == std::numeric_limits<std::int64_t>::min()) throw too_far();
    std::int64_t span = 0;
    if (__builtin_mul_overflow(v.shape[d] - 1, s < 0 ? -s : s, &span) ||
        __builtin_add_overflow(s < 0 ? below : above, span, s < 0 ? &below : &above))
      throw too_far();
  }
  std::int64_t reach = 0, below_bytes = 0, above_bytes = 0;
  if (__builtin_add_overflow(below, above, &reach) || __builtin_add_overflow(reach, 1, &reach) ||
      __builtin_mul_overflow(reach, item, &reach) || __builtin_mul_overflow(below, item, &below_bytes) ||
      __builtin_mul_overflow(above + 1, item, &above_bytes))
    throw too_far();
  std::uintptr_t end = 0;
  if (address < static_cast<std::uintptr_t>(below_bytes) ||
      __builtin_add_overflow(address, static_cast<std::uintptr_t>(above_bytes), &end))
    throw error(name, who + " of shape " + str(v.shape) + " with strides " + str(v.strides) +
                          " reaches outside the address space from its data pointer");
}

// Outputs must give every element its own memory, or positions overwrite one
// another (a silent wrong answer; PyTorch refuses such out= tensors too). A
// zero stride on an extent > 1 certainly shares memory; otherwise we accept
// strides that nest -- sorted by size, each larger than the span of the
// smaller ones -- which every dense buffer, slice, step slice and permutation
// has; the rare interleaved layouts that are disjoint without nesting are
// refused too, since proving them disjoint is not worth the code.
void check_distinct(const tensor_view& v, const char* name) {
  // Empty: nothing is written, and the strides are unchecked (any value).
  if (std::find(v.shape.begin(), v.shape.end(), 0) != v.shape.end()) return;
  std::vector<std::pair<std::int64_t, std::int64_t>> dims;  // (|stride|, extent)
  for (std::size_t d = 0; d < v.shape.size(); ++d) {
    if (v.shape[d] == 1) continue;
    if (v.strides[d] == 0)
      throw error(name, std::string(name) + " has stride 0 in dimension " + std::to_string(d) +
                            " of extent " + std::to_string(v.shape[d]) + " (strides " +
                            str(v.strides) + "): its elements share memory, so results would "
                            "overwrite each other");
    dims.emplace_back(v.strides[d] < 0 ? -v.strides[d] : v.strides[d], v.shape[d]);
  }
  std::sort(dims.begin(), dims.end());
  std::int64_t span = 0;  // fits: check_view bounded the sum of spans
  for (const auto& [stride, extent] : dims) {
    if (stride <= span)
      throw error(name, std::string(name) + " of shape " + str(v.shape) + " has strides " +
                            str(v.strides) + " whose elements overlap or interleave; an output "
                            "needs strides that nest (a dense buffer, or a slice or permutation "
                            "of one)");
    span += (extent - 1) * stride;
  }
}

void check_type(const tensor_view& v, dtype want, const char* name) {
  if (v.type != want)
    throw error(name, std::string(name) + " must be " + to_string(want) + ", got " +
                          to_string(v.type));
}

// [lowest, highest] byte address touched by a view; empty views touch
// nothing. Integer addresses: check_view has made sure they do not wrap.
struct byte_range {
  std::uintptr_t lo = 0, hi = 0;
  bool empty = true;
};
byte_range range_of(const tensor_view& v) {
  for (auto e : v.shape)
    if (e == 0) return {};
  std::int64_t lo = 0, hi = 0;
  for (std::size_t d = 0; d < v.shape.size(); ++d) {
    const std::int64_t span = (v.shape[d] - 1) * v.strides[d];
    (span < 0 ? lo : hi) += span;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(v.data);
  const auto size = static_cast<std::uintptr_t>(size_of(v.type));
  return {base - static_cast<std::uintptr_t>(-lo) * size,
          base + static_cast<std::uintptr_t>(hi) * size + size - 1, false};
}
bool overlap(const tensor_view& a, const tensor_view& b) {
  const auto ra = range_of(a), rb = range_of(b);
  return !ra.empty && !rb.empty && ra.lo <= rb.hi && rb.lo <= ra.hi;
}

// Position multi-index of flat position p, for messages.
std::string position_string(std::int64_t p, const shape_t& shape) {
  shape_t idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = p % shape[d];
    p /= shape[d];
  }
  return str(idx);
}

// Drops extent-1 dims and merges neighbours that are contiguous in every
// tensor, so that kernels see as few position dims as possible.
void simplify_positions(problem& pr, std::vector<shape_t*> strides) {
  // No positions: nothing is addressed, and the strides of an empty view are
  // unchecked (any value, so no arithmetic on them; found by fuzz_problem).
  if (pr.positions == 0) {
    pr.position_shape = {0};
    for (shape_t* s : strides) s->assign(1, 0);
    return;
  }
  shape_t shape;
  std::vector<shape_t> kept(strides.size());
  for (std::size_t d = 0; d < pr.position_shape.size(); ++d) {
    const std::int64_t extent = pr.position_shape[d];
    if (extent == 1) continue;
    bool merge = !shape.empty();
    for (std::size_t t = 0; merge && t < strides.size(); ++t)
      merge = kept[t].back() == (*strides[t])[d] * extent;
    if (merge) {
      shape.back() *= extent;
      for (std::size_t t = 0; t < strides.size(); ++t) kept[t].back() = (*strides[t])[d];
    } else {
      shape.push_back(extent);
      for (std::size_t t = 0; t < strides.size(); ++t) kept[t].push_back((*strides[t])[d]);
    }
  }
  pr.position_shape = std::move(shape);
  for (std::size_t t = 0; t < strides.size(); ++t) *strides[t] = std::move(kept[t]);
}

// Position strides of the logits: every dim but the class axis (dim 1; dim 0 for (C)).
shape_t without_class_axis(const shape_t& v, std::size_t class_axis) {
  shape_t r;
  for (std::size_t d = 0; d < v.size(); ++d)
    if (d != class_axis) r.push_back(v[d]);
  return r;
}

struct checked_inputs {
  problem pr;
  shape_t position_shape;  // the unsimplified (N, d1..dK), i.e. the `none` output shape
};

checked_inputs check_inputs(const tensor_view& logits, const tensor_view& target, const options& opt) {
  check_view(logits, "logits");
  check_view(target, "target");
  if (logits.type != dtype::f32 && logits.type != dtype::f64 && logits.type != dtype::bf16 &&
      logits.type != dtype::f16)
    throw error("logits", "logits must be float32, float64, bfloat16 or float16, got " + to_string(logits.type));
  if (logits.ndim() == 0)
    throw error("logits", "logits must have at least 1 dimension (the classes), got a 0-d tensor");

  problem pr;
  pr.type = logits.type;
  pr.out_type = logits.type;
  const std::size_t class_axis = logits.ndim() == 1 ? 0 : 1;
  pr.classes = logits.shape[class_axis];
  pr.logits = static_cast<const float*>(logits.data);
  pr.logits_class_stride = logits.strides[class_axis];
  const shape_t positions = without_class_axis(logits.shape, class_axis);
  pr.position_shape = positions;
  pr.logits_position_strides = without_class_axis(logits.strides, class_axis);
  pr.positions = 1;
  for (auto e : positions) pr.positions *= e;

  // Options.
  if (std::isnan(opt.label_smoothing))
    throw error("label_smoothing", "label_smoothing is NaN; it must be in [0, 1]");
  if (opt.label_smoothing < 0.0 || opt.label_smoothing > 1.0) {
    std::ostringstream m;
    m << "label_smoothing must be in [0, 1], got " << opt.label_smoothing;
    throw error("label_smoothing", m.str());
  }
  pr.label_smoothing = opt.label_smoothing;
  pr.ignore_index = opt.ignore_index;
  pr.reduce = opt.reduce;

  if (pr.classes == 0 && pr.positions > 0)
    throw error("logits", "logits " + str(logits.shape) + " have no classes (C = 0)");

  if (opt.weight) {
    const tensor_view& w = *opt.weight;
    check_view(w, "weight");
    check_type(w, pr.type, "weight");  // PyTorch: the logits' dtype
    if (w.ndim() != 1 || w.shape[0] != pr.classes)
      throw error("weight", "weight must be a 1-D tensor of length " + std::to_string(pr.classes) +
                                " (the number of classes), got shape " + str(w.shape));
    pr.weight = static_cast<const float*>(w.data);
    pr.weight_stride = w.strides[0];
  }

  // Targets: same shape as the logits and floating -> probabilities;
  // otherwise class indices of the position shape.
  const bool floating = target.type == dtype::f32 || target.type == dtype::f64 ||
                        target.type == dtype::bf16 || target.type == dtype::f16;
  if (floating && target.shape == logits.shape) {
    check_type(target, pr.type, "target");  // PyTorch: same dtype as the logits
    if (opt.ignore_index >= 0)
      throw error("ignore_index", "ignore_index (" + std::to_string(opt.ignore_index) +
                                      ") is not supported with class-probability targets");
    pr.target = target_kind::probability;
    pr.target_prob = static_cast<const float*>(target.data);
    pr.target_class_stride = target.strides[class_axis];
    pr.target_position_strides = without_class_axis(target.strides, class_axis);
  } else {
    if (target.shape != positions) {
      shape_t prob_hint = logits.shape;
      throw error("target", "target shape " + str(target.shape) + " does not match logits " +
                                str(logits.shape) + ": expected " + str(positions) +
                                " (class indices, int64) or " + str(prob_hint) +
                                " (class probabilities, " + to_string(pr.type) + ")");
    }
    if (target.type != dtype::i64)
      throw error("target", "class-index target must be int64, got " + to_string(target.type));
    pr.target = target_kind::index;
    pr.target_index = static_cast<const std::int64_t*>(target.data);
    pr.target_position_strides = target.strides;
    // Bounds: every target is a class or ignore_index. Uses the unsimplified
    // shape so the message names the caller's position.
    // A small loop body (no message built in it) that the compiler inlines:
    // this scan is a tenth of a call's time at C = 10.
    std::int64_t bad = -1, bad_t = 0;
    const std::uint64_t C = static_cast<std::uint64_t>(pr.classes);
    pr.for_each_offset(pr.target_position_strides, [&](std::int64_t p, std::int64_t off) {
      const std::int64_t t = pr.target_index[off];
      if (static_cast<std::uint64_t>(t) >= C && t != pr.ignore_index && bad < 0) bad = p, bad_t = t;
    });
    if (bad >= 0)
      throw error("target", "Target " + std::to_string(bad_t) + " is out of bounds at position " +
                                position_string(bad, positions) + " (classes 0.." +
                                std::to_string(pr.classes - 1) + ", ignore_index " +
                                std::to_string(pr.ignore_index) + ")");
  }
  return {std::move(pr), positions};
}

}  // namespace

problem make_problem(const tensor_view& logits, const tensor_view& target, const options& opt) {
  auto [pr, positions] = check_inputs(logits, target, opt);
  simplify_positions(pr, {&pr.logits_position_strides, &pr.target_position_strides});
  return pr;
}

problem make_problem(const tensor_view& logits, const tensor_view& target, const options& opt,
                     const tensor_view& out, const tensor_view* grad, const tensor_view* upstream) {
  auto [pr, positions] = check_inputs(logits, target, opt);

  check_view(out, "out");
  // A float32 loss for 16-bit logits: the loss rounded once to float32.
  const bool sixteen_bit = pr.type == dtype::bf16 || pr.type == dtype::f16;
  if (out.type != pr.type && !(out.type == dtype::f32 && sixteen_bit))
    throw error("out", "out must be " + to_string(pr.type) + " (the logits' dtype)" +
                           (sixteen_bit ? std::string(" or float32") : std::string()) + ", got " +
                           to_string(out.type));
  pr.out_type = out.type;
  if (pr.reduce == reduction::none) {
    if (out.shape != positions)
      throw error("out", "out must have the target's position shape " + str(positions) +
                             " for reduction 'none', got " + str(out.shape));
    check_distinct(out, "out");
    pr.loss_position_strides = out.strides;
  } else if (out.numel() != 1) {
    throw error("out", "out must have one element for reduction '" + to_string(pr.reduce) +
                           "', got shape " + str(out.shape));
  }
  pr.loss = static_cast<float*>(out.data);
  if (overlap(out, logits) || overlap(out, target) || (opt.weight && overlap(out, *opt.weight)))
    throw error("out", "out overlaps an input (logits, target or weight)");

  if (grad) {
    check_view(*grad, "grad");
    check_type(*grad, pr.type, "grad");
    if (grad->shape != logits.shape)
      throw error("grad", "grad must have the logits' shape " + str(logits.shape) + ", got " +
                              str(grad->shape));
    check_distinct(*grad, "grad");
    const bool in_place = grad->data == logits.data && grad->strides == logits.strides;
    if (!in_place && overlap(*grad, logits))
      throw error("grad", "grad overlaps the logits without being the same view (in-place "
                          "needs the same pointer and strides)");
    if (overlap(*grad, target) || (opt.weight && overlap(*grad, *opt.weight)) || overlap(*grad, out))
      throw error("grad", "grad overlaps the target, the weight or out");
    const std::size_t class_axis = logits.ndim() == 1 ? 0 : 1;
    pr.grad = static_cast<float*>(grad->data);
    pr.grad_class_stride = grad->strides[class_axis];
    pr.grad_position_strides = without_class_axis(grad->strides, class_axis);
  } else {
    pr.grad_position_strides.assign(positions.size(), 0);
  }

  pr.upstream_position_strides.assign(positions.size(), 0);
  if (upstream) {
    check_view(*upstream, "upstream");
    if (upstream->type != pr.out_type)
      throw error("upstream", "upstream must be " + to_string(pr.out_type) + " (out's dtype), got " +
                                  to_string(upstream->type));
    // Kernels read upstream values while writing rows: they must not share memory.
    if (overlap(*upstream, out) || (grad && overlap(*upstream, *grad)))
      throw error("upstream", "upstream overlaps out or grad");
    if (upstream->numel() == 1) {
      pr.upstream_scalar_wide = problem::load_wide(upstream->data, 0, pr.out_type);
      pr.upstream_scalar = static_cast<float>(pr.upstream_scalar_wide);  // exact but for float64
    } else if (pr.reduce == reduction::none && upstream->shape == positions) {
      pr.upstream = static_cast<const float*>(upstream->data);
      pr.upstream_position_strides = upstream->strides;
    } else {
      throw error("upstream", "upstream gradient must have one element" +
                                  std::string(pr.reduce == reduction::none
                                                  ? " or the position shape " + str(positions)
                                                  : "") +
                                  ", got shape " + str(upstream->shape));
    }
  }
  if (pr.reduce != reduction::none) pr.loss_position_strides.assign(positions.size(), 0);

  simplify_positions(pr, {&pr.logits_position_strides, &pr.target_position_strides,
                          &pr.loss_position_strides, &pr.grad_position_strides,
                          &pr.upstream_position_strides});
  return pr;
}

}  // namespace xent

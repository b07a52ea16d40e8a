// Declared capabilities (xent/kernel/capabilities.hpp): what a call needs, whether a
// declaration covers it, and both in words.
#include "xent/kernel/capabilities.hpp"

#include <vector>

namespace xent {
namespace {

std::string names(std::uint32_t bits, const std::vector<const char*>& name_of_bit, const char* none) {
  std::string s;
  for (std::size_t i = 0; i < name_of_bit.size(); ++i)
    if (bits & (1u << i)) {
      if (!s.empty()) s += ", ";
      s += name_of_bit[i];
    }
  return s.empty() ? none : s;
}

// Dense row-major (N, C) with every tensor the host passes dense as well.
bool dense_rows(const problem& p, bool with_grad) {
  const std::int64_t C = p.classes;
  if (p.positions <= 1) return p.logits_class_stride == 1;
  if (p.logits_class_stride != 1 || p.logits_position_strides[0] != C) return false;
  if (p.target == target_kind::index ? p.target_position_strides[0] != 1
                                     : p.target_class_stride != 1 || p.target_position_strides[0] != C)
    return false;
  if (p.loss && p.reduce == reduction::none && p.loss_position_strides[0] != 1) return false;
  if (with_grad && p.grad && p.grad != p.logits &&
      (p.grad_class_stride != 1 || p.grad_position_strides[0] != C))
    return false;
  if (with_grad && p.upstream && p.upstream_position_strides[0] > 1) return false;
  return true;
}

}  // namespace

capabilities capabilities::all() {
  capabilities c;
  c.layouts = XENT_PLUGIN_LAYOUT_ROWS | XENT_PLUGIN_LAYOUT_STRIDED | XENT_PLUGIN_LAYOUT_SPATIAL |
              XENT_PLUGIN_LAYOUT_SINGLE;
  c.targets = XENT_PLUGIN_TARGET_INDEX | XENT_PLUGIN_TARGET_PROBABILITY;
  c.options = XENT_PLUGIN_OPTION_WEIGHT | XENT_PLUGIN_OPTION_IGNORE_INDEX | XENT_PLUGIN_OPTION_LABEL_SMOOTHING;
  c.reductions = XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_NONE) |
                 XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_MEAN) |
                 XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_SUM);
  c.modes = XENT_PLUGIN_MODE_GRADIENT | XENT_PLUGIN_MODE_IN_PLACE;
  c.dtypes = XENT_PLUGIN_DTYPE_FLOAT32 | XENT_PLUGIN_DTYPE_BFLOAT16 | XENT_PLUGIN_DTYPE_FLOAT16 | dtype_float64_bit;
  return c;
}

capabilities capabilities::operator&(const capabilities& o) const {
  return {layouts & o.layouts, targets & o.targets,     options & o.options,
          reductions & o.reductions, modes & o.modes, dtypes & o.dtypes};
}

capabilities& capabilities::operator|=(const capabilities& o) {
  layouts |= o.layouts;
  targets |= o.targets;
  options |= o.options;
  reductions |= o.reductions;
  modes |= o.modes;
  dtypes |= o.dtypes;
  return *this;
}

std::optional<std::string> capabilities::missing(const capabilities& needed) const {
  std::string s;
  auto add = [&s](std::uint32_t bits, std::string (*name)(std::uint32_t)) {
    if (!bits) return;
    if (!s.empty()) s += ", ";
    s += name(bits);
  };
  // One position is sent as (1, C) rows to a kernel that declares rows but
  // not the (C) layout (plugin.h), so rows cover it.
  std::uint32_t layout_needed = needed.layouts;
  if ((layout_needed & XENT_PLUGIN_LAYOUT_SINGLE) &&
      (layouts & (XENT_PLUGIN_LAYOUT_ROWS | XENT_PLUGIN_LAYOUT_STRIDED)))
    layout_needed &= ~XENT_PLUGIN_LAYOUT_SINGLE;
  // Any strides include dense rows.
  if ((layout_needed & XENT_PLUGIN_LAYOUT_ROWS) && (layouts & XENT_PLUGIN_LAYOUT_STRIDED))
    layout_needed &= ~XENT_PLUGIN_LAYOUT_ROWS;
  add(layout_needed & ~layouts, layout_names);
  add(needed.targets & ~targets, target_names);
  add(needed.options & ~options, option_names);
  add(needed.reductions & ~reductions, reduction_names);
  if (const std::uint32_t m = needed.modes & ~modes) {
    if (!s.empty()) s += ", ";
    s += names(m, {"gradient", "in-place gradient"}, "");
  }
  add(needed.dtypes & ~dtypes, dtype_names);
  if (s.empty()) return std::nullopt;
  return s;
}

capabilities needs_of(const problem& p, bool with_grad) {
  capabilities n;
  if (p.position_shape.empty()) n.layouts = XENT_PLUGIN_LAYOUT_SINGLE;
  else if (p.position_shape.size() >= 2) n.layouts = XENT_PLUGIN_LAYOUT_SPATIAL;
  else n.layouts = dense_rows(p, with_grad) ? XENT_PLUGIN_LAYOUT_ROWS : XENT_PLUGIN_LAYOUT_STRIDED;
  n.targets = p.target == target_kind::index ? XENT_PLUGIN_TARGET_INDEX : XENT_PLUGIN_TARGET_PROBABILITY;
  if (p.weight) n.options |= XENT_PLUGIN_OPTION_WEIGHT;
  if (p.label_smoothing != 0.0) n.options |= XENT_PLUGIN_OPTION_LABEL_SMOOTHING;
  if (p.target == target_kind::index) {
    // p.offset, not for_each_offset: GCC 12 inlines the latter's vector here
    // and warns falsely (-Wfree-nonheap-object).
    for (std::int64_t q = 0; q < p.positions; ++q)
      if (p.target_index[p.offset(q, p.target_position_strides)] == p.ignore_index) {
        n.options |= XENT_PLUGIN_OPTION_IGNORE_INDEX;
        break;
      }
  }
  n.reductions = XENT_PLUGIN_REDUCTION_BIT(p.reduce == reduction::none   ? XENT_PLUGIN_REDUCTION_NONE
                                           : p.reduce == reduction::mean ? XENT_PLUGIN_REDUCTION_MEAN
                                                                         : XENT_PLUGIN_REDUCTION_SUM);
  if (with_grad) n.modes = XENT_PLUGIN_MODE_GRADIENT;
  // An empty batch addresses no element: equal pointers mean nothing there.
  if (with_grad && p.positions > 0 && p.grad && p.grad == p.logits) n.modes |= XENT_PLUGIN_MODE_IN_PLACE;
  n.dtypes = dtype_bit(p.type);
  return n;
}

std::string layout_names(std::uint32_t bits) {
  return names(bits, {"contiguous rows", "strided rows", "(N, C, d...)", "(C)"}, "no layout");
}
std::string target_names(std::uint32_t bits) {
  return names(bits, {"index targets", "probability targets"}, "no targets");
}
std::string option_names(std::uint32_t bits) {
  return names(bits, {"weights", "ignore_index", "label smoothing"}, "no options");
}
std::string reduction_names(std::uint32_t bits) {
  const std::string r = names(bits, {"none", "mean", "sum"}, "");
  return r.empty() ? "no reduction" : "reduction " + r;
}
std::string mode_names(std::uint32_t bits) {
  std::string s = "forward";
  if (bits & XENT_PLUGIN_MODE_GRADIENT) s += ", gradient";
  if (bits & XENT_PLUGIN_MODE_IN_PLACE) s += ", in-place gradient";
  return s;
}
std::string dtype_names(std::uint32_t bits) {
  return names(bits, {"float32", "bfloat16", "float16", "float64"}, "no dtype");
}

std::uint32_t dtype_bit(dtype t) {
  switch (t) {
    case dtype::f32: return XENT_PLUGIN_DTYPE_FLOAT32;
    case dtype::bf16: return dtype_bfloat16_bit;
    case dtype::f16: return dtype_float16_bit;
    case dtype::f64: return dtype_float64_bit;
    default: return 0;
  }
}

std::string describe(const capabilities& c) {
  std::string s = layout_names(c.layouts);
  s += "; ";
  s += target_names(c.targets);
  s += "; ";
  s += option_names(c.options);
  s += "; ";
  s += reduction_names(c.reductions);
  s += "; ";
  s += mode_names(c.modes);
  s += "; ";
  s += dtype_names(c.dtypes);
  return s;
}

}  // namespace xent

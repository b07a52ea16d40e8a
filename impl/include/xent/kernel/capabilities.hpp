// What a kernel declares it supports, and what one call needs. The bits are
// the plug-in ABI's (xent/kernel/plugin.h, "Declared capabilities"), so a plug-in's
// declaration is read as it is. A call is inside a declaration when every
// bit it needs is declared; the property suite generates cases inside it and
// the tools report which parts of the semantics their cases exercised.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "xent/kernel/plugin.h"
#include "xent/kernel/problem.hpp"

namespace xent {

// The logits dtypes' bits besides float32 (the ABI's: the 16-bit ones came
// with version 2, float64 with version 3; a plug-in of ABI version 1 takes
// float32 only).
inline constexpr std::uint32_t dtype_bfloat16_bit = XENT_PLUGIN_DTYPE_BFLOAT16;
inline constexpr std::uint32_t dtype_float16_bit = XENT_PLUGIN_DTYPE_FLOAT16;
inline constexpr std::uint32_t dtype_float64_bit = XENT_PLUGIN_DTYPE_FLOAT64;
// The bit of a logits dtype (f32, f64, bf16, f16); 0 for any other.
std::uint32_t dtype_bit(dtype t);

struct capabilities {
  std::uint32_t layouts = 0, targets = 0, options = 0, reductions = 0, modes = 0, dtypes = 0;

  // Everything the host can send.
  static capabilities all();
  // Bits in both.
  capabilities operator&(const capabilities& o) const;
  capabilities& operator|=(const capabilities& o);
  bool operator==(const capabilities&) const = default;
  // The bits of `needed` this declaration lacks, in words ("weights, label
  // smoothing"); nullopt when it covers them all.
  std::optional<std::string> missing(const capabilities& needed) const;
};

// The one bit per category a call on this problem needs (options: every
// option it uses). `with_grad`: forward_backward; in place when the gradient
// is the logits.
capabilities needs_of(const problem& p, bool with_grad);

// A declaration or a coverage in words, one phrase per category:
// "layouts: contiguous rows; targets: index; options: none; reductions: none,
// mean, sum; modes: forward, gradient; dtypes: float32".
std::string describe(const capabilities& c);
// The names of each bit, for the phrases above and for error messages.
std::string layout_names(std::uint32_t bits);
std::string target_names(std::uint32_t bits);
std::string option_names(std::uint32_t bits);
std::string reduction_names(std::uint32_t bits);
std::string mode_names(std::uint32_t bits);  // "forward" is always first
std::string dtype_names(std::uint32_t bits);

}  // namespace xent

// Quick diagnostics on a user's data: the classic "why is my loss 0 / NaN"
// causes, found before anything is computed. Each warning has a stable code
// (for JSON consumers and tests) and a one-line message.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "xent/kernel/problem.hpp"

namespace xent::cli {

struct warning {
  std::string code;     // "single_class", "not_distribution", "all_ignored", "dominant_zero_loss", ...
  std::string message;  // one line
};

// Inspects a validated problem. logits_shape is the caller's logits shape
// (positions are named by their index in it, class axis dim 1).
std::vector<warning> diagnose(const problem& pr, const std::vector<std::int64_t>& logits_shape);

}  // namespace xent::cli

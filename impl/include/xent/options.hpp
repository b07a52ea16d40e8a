// Options of torch.nn.CrossEntropyLoss, with PyTorch's defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "xent/tensor.hpp"

namespace xent {

enum class reduction { none, mean, sum };

std::string to_string(reduction r);
// "none" | "mean" | "sum"; throws xent::error otherwise.
reduction parse_reduction(const std::string& s);

struct options {
  std::optional<tensor_view> weight;  // [C], same dtype as the logits
  std::int64_t ignore_index = -100;
  reduction reduce = reduction::mean;
  double label_smoothing = 0.0;  // in [0, 1]; NaN or negative is an error (PyTorch ignores it)
};

}  // namespace xent

// Loading a user's problem from .npy files, with the conversions `xent check`
// documents (float64 -> float32 logits/probabilities/weights, int32 -> int64
// targets) and clear errors for everything else.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "xent/options.hpp"
#include "xent/tensor.hpp"

namespace xent::cli {

// A usage or input error: the command exits with status 2.
class input_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct inputs {
  std::vector<std::int64_t> logits_shape;
  std::vector<float> logits;

  bool probability = false;  // target kind
  std::vector<std::int64_t> target_shape;
  std::vector<std::int64_t> target_index;
  std::vector<float> target_prob;
  std::string target_dtype;  // as stored in the file

  std::optional<std::vector<float>> weight;

  // Conversions done while loading ("float64 logits rounded to float32 ...").
  std::vector<std::string> notes;

  tensor_view logits_view() const { return view(logits.data(), logits_shape); }
  tensor_view target_view() const {
    return probability ? view(target_prob.data(), target_shape) : view(target_index.data(), target_shape);
  }
  // Options with the weight view pointing into this object.
  options make_options(reduction r, std::int64_t ignore_index, double label_smoothing) const;
};

// Throws npy::npy_error or input_error.
inputs load_inputs(const std::string& logits_path, const std::string& target_path,
                   const std::string& weight_path /* empty: none */);

}  // namespace xent::cli

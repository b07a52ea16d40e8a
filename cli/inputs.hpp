// Loading a user's problem from .npy files, with the conversions `xent check`
// documents (float64 logits kept as given, with their probabilities and
// weights widened to float64; float64 probabilities/weights of other logits
// -> float32, rounded;
// float16 and bfloat16 -> float32, exact; int32 -> int64 targets) and clear
// errors for everything else. bfloat16 arrays are uint16 .npy files of bit
// patterns, read as such when the logits' dtype is given as bfloat16.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "npy.hpp"
#include "xent/options.hpp"
#include "xent/tensor.hpp"

namespace xent::cli {

// A usage or input error: the command exits with status 2. `argument` names
// the option at fault ("--logits"), or is empty.
class input_error : public std::runtime_error {
 public:
  explicit input_error(const std::string& message) : std::runtime_error(message) {}
  input_error(std::string argument, const std::string& message)
      : std::runtime_error(message), argument_(std::move(argument)) {}
  const std::string& argument() const noexcept { return argument_; }

 private:
  std::string argument_;
};

// Reads an array for an option (.npy, .npz, .npz:NAME); a reading error
// becomes an input_error naming the option.
npy::array read_for(const std::string& option, const std::string& path, const std::string& npz_default);

struct inputs {
  std::vector<std::int64_t> logits_shape;
  std::vector<float> logits;       // float64 logits: zeros of their size (logits64 holds them)
  dtype logits_type = dtype::f32;  // as given (f16/bf16 widened exactly into logits)
  // float64 logits as given, and the probabilities and weights that go with
  // them (widened exactly when the files hold float32 or float16).
  std::vector<double> logits64, target_prob64;
  std::optional<std::vector<double>> weight64;

  bool probability = false;  // target kind
  std::vector<std::int64_t> target_shape;
  std::vector<std::int64_t> target_index;
  std::vector<float> target_prob;
  std::string target_dtype;  // as stored in the file

  std::optional<std::vector<float>> weight;

  // Conversions done while loading ("float64 logits rounded to float32 ...").
  std::vector<std::string> notes;
  // Inputs PyTorch would not accept as they are (code, one-line message).
  struct warning {
    std::string code, message;
  };
  std::vector<warning> warnings;

  tensor_view logits_view() const {
    return logits_type == dtype::f64 ? view(logits64.data(), logits_shape) : view(logits.data(), logits_shape);
  }
  tensor_view target_view() const {
    if (!probability) return view(target_index.data(), target_shape);
    return logits_type == dtype::f64 ? view(target_prob64.data(), target_shape) : view(target_prob.data(), target_shape);
  }
  // Options with the weight view pointing into this object.
  options make_options(reduction r, std::int64_t ignore_index, double label_smoothing) const;
};

// A float32 array (float64 is rounded, with a note) for an option: the
// user's own loss or gradient. npz_default as for read_for.
struct float_array {
  std::vector<std::int64_t> shape;
  std::vector<double> values;  // exact values of `type`
  dtype type = dtype::f32;     // the dtype its values were given in (f64 kept only when wide)
};
// bf16: uint16 arrays hold bfloat16 bit patterns (--logits-dtype bfloat16).
// wide: float64 arrays keep their values (float64 logits); else they are
// rounded to float32, with a note.
float_array load_floats(const std::string& option, const std::string& path, const std::string& what,
                        const std::string& npz_default, std::vector<std::string>& notes, bool bf16 = false,
                        bool wide = false);

// Throws npy::npy_error or input_error. Paths may name .npz archives
// ("dump.npz" or "dump.npz:NAME"; see npy::read_any). bf16: as for load_floats.
inputs load_inputs(const std::string& logits_path, const std::string& target_path,
                   const std::string& weight_path /* empty: none */, bool bf16 = false);

}  // namespace xent::cli

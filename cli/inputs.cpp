#include "inputs.hpp"

#include <cmath>
#include <limits>
#include <sstream>

#include "npy.hpp"

namespace xent::cli {
namespace {

std::string shape_str(const std::vector<std::int64_t>& s) { return xent::shape_string(s); }

// float64 -> float32, round to nearest; counts values that do not survive.
std::vector<float> narrow(const std::vector<double>& v, std::int64_t& overflowed, std::int64_t& inexact) {
  std::vector<float> out(v.size());
  overflowed = inexact = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    out[i] = static_cast<float>(v[i]);
    if (std::isinf(out[i]) && std::isfinite(v[i])) ++overflowed;
    else if (static_cast<double>(out[i]) != v[i] && !std::isnan(v[i])) ++inexact;
  }
  return out;
}

std::string narrow_note(const std::string& path, const char* what, std::int64_t overflowed,
                        std::int64_t inexact) {
  std::string s = path + ": float64 " + what + " rounded to float32 (the kernels compute in float32)";
  if (inexact || overflowed) {
    s += "; " + std::to_string(inexact) + " values changed";
    if (overflowed) s += ", " + std::to_string(overflowed) + " overflowed to +-inf";
  }
  return s;
}

std::vector<float> floats(const npy::array& a, const std::string& path, const char* what,
                          std::vector<std::string>& notes) {
  if (a.type == npy::dtype::f32) return a.as_f32();
  if (a.type == npy::dtype::f64) {
    std::int64_t overflowed = 0, inexact = 0;
    auto v = narrow(a.as_f64(), overflowed, inexact);
    notes.push_back(narrow_note(path, what, overflowed, inexact));
    return v;
  }
  throw input_error(path + ": " + what + " must be float32 (or float64, rounded to float32), got " +
                    npy::to_string(a.type));
}

}  // namespace

options inputs::make_options(reduction r, std::int64_t ignore_index, double label_smoothing) const {
  options o;
  o.reduce = r;
  o.ignore_index = ignore_index;
  o.label_smoothing = label_smoothing;
  if (weight) o.weight = view(weight->data(), {static_cast<std::int64_t>(weight->size())});
  return o;
}

inputs load_inputs(const std::string& logits_path, const std::string& target_path,
                   const std::string& weight_path) {
  inputs in;
  const npy::array x = npy::read(logits_path);
  in.logits_shape = x.shape;
  in.logits = floats(x, logits_path, "logits", in.notes);

  const npy::array t = npy::read(target_path);
  in.target_shape = t.shape;
  in.target_dtype = npy::to_string(t.type);
  switch (t.type) {
    case npy::dtype::i64:
      in.target_index = t.as_i64();
      break;
    case npy::dtype::i32: {
      const auto v = t.as_i32();
      in.target_index.assign(v.begin(), v.end());
      break;
    }
    case npy::dtype::f32:
    case npy::dtype::f64: {
      if (t.shape != x.shape) {
        std::vector<std::int64_t> positions = x.shape;
        if (!positions.empty()) positions.erase(positions.begin() + (positions.size() == 1 ? 0 : 1));
        throw input_error(target_path + ": target is " + in.target_dtype + " with shape " +
                          shape_str(t.shape) + ": class indices must be integers (int64 or int32) " +
                          "of shape " + shape_str(positions) +
                          ", class probabilities must have the logits' shape " + shape_str(x.shape));
      }
      in.probability = true;
      in.target_prob = floats(t, target_path, "class-probability targets", in.notes);
      break;
    }
    case npy::dtype::b1:
      throw input_error(target_path + ": target must be int64/int32 class indices or float32 class "
                                      "probabilities, got bool");
  }

  if (!weight_path.empty()) {
    const npy::array w = npy::read(weight_path);
    in.weight = floats(w, weight_path, "weight", in.notes);
    if (w.shape.size() != 1)
      throw input_error(weight_path + ": weight must be 1-D (one value per class), got shape " +
                        shape_str(w.shape));
  }
  return in;
}

}  // namespace xent::cli

#include "inputs.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "npy.hpp"
#include "xent/kernel.hpp"
#include "xent/kernel/capabilities.hpp"

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

std::string option_of(const std::string& what) {
  if (what == "logits") return "--logits";
  if (what == "weight") return "--weight";
  if (what.find("target") != std::string::npos) return "--target";
  return "--" + what;
}

// Float values of any accepted dtype as float32, and that dtype: float16 and
// bfloat16 widen exactly, float64 is rounded (with a note saying how much
// changed). A uint16 array is bfloat16 bit patterns only when bf16 is set.
// (float64 logits keep their values: load_inputs reads them as doubles.)
std::vector<float> floats(const npy::array& a, const std::string& path, const char* what,
                          std::vector<std::string>& notes, bool bf16, dtype* type = nullptr) {
  auto set = [&](dtype t) {
    if (type) *type = t;
  };
  switch (a.type) {
    case npy::dtype::f32: set(dtype::f32); return a.as_f32();
    case npy::dtype::f64: {
      set(dtype::f32);
      std::int64_t overflowed = 0, inexact = 0;
      auto v = narrow(a.as_f64(), overflowed, inexact);
      notes.push_back(narrow_note(path, what, overflowed, inexact));
      return v;
    }
    case npy::dtype::f16: set(dtype::f16); return a.f16_as_f32();
    case npy::dtype::u16:
      if (bf16) {
        set(dtype::bf16);
        return a.bf16_bits_as_f32();
      }
      throw input_error(option_of(what), path + ": " + what + " is uint16: if these are bfloat16 bit patterns "
                                         "(NumPy has no bfloat16), say so with --logits-dtype bfloat16");
    default: break;
  }
  throw input_error(option_of(what), path + ": " + what + " must be float32, float16, bfloat16 (uint16 bit patterns "
                                     "with --logits-dtype bfloat16) or float64 (rounded to float32), got " +
                                     npy::to_string(a.type));
}

}  // namespace

npy::array read_for(const std::string& option, const std::string& path, const std::string& npz_default) {
  try {
    return npy::read_any(path, npz_default);
  } catch (const npy::npy_error& e) {
    throw input_error(option, e.what());
  }
}

float_array load_floats(const std::string& option, const std::string& path, const std::string& what,
                        const std::string& npz_default, std::vector<std::string>& notes, bool bf16, bool wide) {
  const npy::array a = read_for(option, path, npz_default);
  float_array f;
  f.shape = a.shape;
  if (wide && a.type == npy::dtype::f64) {  // float64 as given
    f.values = a.as_f64();
    f.type = dtype::f64;
    return f;
  }
  try {
    const std::vector<float> v = floats(a, path, what.c_str(), notes, bf16, &f.type);
    f.values.assign(v.begin(), v.end());
  } catch (const input_error& e) {
    throw input_error(option, e.what());
  }
  return f;
}

// Float values of any accepted dtype as doubles (exact), for float64 problems.
std::vector<double> doubles(const npy::array& a, const std::string& path, const char* what,
                            std::vector<std::string>& notes) {
  if (a.type == npy::dtype::f64) return a.as_f64();
  std::vector<std::string> ignored;  // widening to float64 is exact: nothing to say
  const std::vector<float> v = floats(a, path, what, ignored, false);
  (void)notes;
  return {v.begin(), v.end()};
}

options inputs::make_options(reduction r, std::int64_t ignore_index, double label_smoothing) const {
  options o;
  o.reduce = r;
  o.ignore_index = ignore_index;
  o.label_smoothing = label_smoothing;
  if (weight) o.weight = view(weight->data(), {static_cast<std::int64_t>(weight->size())});
  if (weight64) o.weight = view(weight64->data(), {static_cast<std::int64_t>(weight64->size())});
  return o;
}

inputs load_inputs(const std::string& logits_path, const std::string& target_path,
                   const std::string& weight_path, bool bf16) {
  inputs in;
  const npy::array x = read_for("--logits", logits_path, "logits");
  in.logits_shape = x.shape;
  if (x.type == npy::dtype::f64) {
    // float64 logits keep their values: the problem is theirs, and only
    // kernels that compute float64 see it.
    in.logits_type = dtype::f64;
    in.logits64 = x.as_f64();
    in.logits.assign(in.logits64.size(), 0.0f);
  } else {
    in.logits = floats(x, logits_path, "logits", in.notes, bf16, &in.logits_type);
  }
  if (bf16 && x.type != npy::dtype::u16)
    throw input_error("--logits-dtype", logits_path + ": --logits-dtype bfloat16 reads uint16 .npy files of "
                                        "bfloat16 bit patterns, but the logits are " + npy::to_string(x.type));
  // The registered kernels that compute the logits' dtype, for the notes.
  auto takers = [&] {
    std::string names;
    for (const implementation* k : implementations())
      if (k->dtypes() & dtype_bit(in.logits_type)) names += (names.empty() ? "" : ", ") + k->name();
    return names;
  };
  if (in.logits_type == dtype::f64)
    in.notes.push_back(logits_path + ": float64 logits: the reference is that of these values; kernels that "
                       "compute float64 logits (" + takers() + ") get them as given and return float64, the "
                       "others do not apply (rounding the logits to float32 would change the problem)");
  else if (in.logits_type != dtype::f32)
    in.notes.push_back(logits_path + ": " + to_string(in.logits_type) +
                       " logits: the reference is that of these values; kernels that compute " +
                       to_string(in.logits_type) + " logits (" + takers() + ") get them as given and return " +
                       to_string(in.logits_type) + ", the others get them widened to float32 (exact) and return "
                       "float32");

  const npy::array t = read_for("--target", target_path, "target");
  in.target_shape = t.shape;
  in.target_dtype = npy::to_string(t.type);
  switch (t.type) {
    case npy::dtype::i64:
      in.target_index = t.as_i64();
      break;
    case npy::dtype::i32: {
      const auto v = t.as_i32();
      in.target_index.assign(v.begin(), v.end());
      in.warnings.push_back(
          {"int32_target", target_path + ": int32 class indices: PyTorch's cross_entropy rejects them "
                                         "(\"expected scalar type Long but found Int\"); xent converts them to "
                                         "int64 -- use target.long() in PyTorch"});
      break;
    }
    case npy::dtype::f32:
    case npy::dtype::f64:
    case npy::dtype::f16:
    case npy::dtype::u16: {
      if (t.shape != x.shape) {
        std::vector<std::int64_t> positions = x.shape;
        if (!positions.empty()) positions.erase(positions.begin() + (positions.size() == 1 ? 0 : 1));
        throw input_error("--target", target_path + ": target is " + in.target_dtype + " with shape " +
                          shape_str(t.shape) + ": class indices must be integers (int64 or int32) " +
                          "of shape " + shape_str(positions) +
                          ", class probabilities must have the logits' shape " + shape_str(x.shape));
      }
      in.probability = true;
      if (in.logits_type == dtype::f64) in.target_prob64 = doubles(t, target_path, "class-probability targets", in.notes);
      else in.target_prob = floats(t, target_path, "class-probability targets", in.notes, bf16);
      break;
    }
    case npy::dtype::b1:
      throw input_error("--target", target_path + ": target must be int64 (or int32) class indices or float32 (or "
                                      "float64) class probabilities, got bool (bool arrays are not accepted "
                                      "anywhere: convert with .long() or .float())");
  }

  // [B, T, C] logits with [B, T] index targets: PyTorch reads the class axis
  // as dim 1 (C = T here), so the shapes do not match -- say what to do.
  if (!in.probability && x.shape.size() >= 3 && t.shape.size() + 1 == x.shape.size() &&
      std::equal(t.shape.begin(), t.shape.end(), x.shape.begin()) &&
      !std::equal(t.shape.begin() + 1, t.shape.end(), x.shape.begin() + 2)) {
    const std::int64_t C = x.shape.back();
    throw input_error("--target", target_path + ": target shape " + shape_str(t.shape) + " does not match logits " +
                      shape_str(x.shape) + ": the class axis is dim 1 (PyTorch reads these logits as N = " +
                      std::to_string(x.shape[0]) + ", C = " + std::to_string(x.shape[1]) +
                      "); for [B, T, C] logits use logits.permute(0, 2, 1) (then [B, C, T] with targets [B, T]) "
                      "or logits.reshape(-1, " + std::to_string(C) + ") with target.reshape(-1)");
  }

  if (!weight_path.empty()) {
    const npy::array w = read_for("--weight", weight_path, "weight");
    if (in.logits_type == dtype::f64) in.weight64 = doubles(w, weight_path, "weight", in.notes);
    else in.weight = floats(w, weight_path, "weight", in.notes, bf16);
    if (w.shape.size() != 1)
      throw input_error("--weight", weight_path + ": weight must be 1-D (one value per class), got shape " +
                        shape_str(w.shape));
  }
  return in;
}

}  // namespace xent::cli

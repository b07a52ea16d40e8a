// Fixed accuracy scenarios for `xent report`: deterministic fills (cli/fill.hpp)
// named by a compact problem string in benchdnn's style (n256c1000_normal_s1).
// The id names everything: shape, distribution, options, and (hashed) the
// seed, so an id printed in a repro line rebuilds the same problem. Each is
// built on demand so that large ones live only while they are measured.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "xent/options.hpp"
#include "xent/tensor.hpp"

namespace xent::reports {

struct scenario {
  std::string id;           // "n256c1000_normal_s1"
  std::string description;  // "normal logits, sigma 1, C = 1000"
  std::vector<std::int64_t> shape;  // logits, C-order
  std::vector<float> logits;
  bool probability = false;
  std::vector<std::int64_t> target_index;  // position shape
  std::vector<float> target_prob;          // logits' shape
  std::vector<float> weight;               // empty: no weight
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  // The logits' dtype. For bfloat16/float16 the values above are values of
  // the dtype (to_dtype) and the views are 16-bit copies of them; for
  // float64 the views are of the *64 vectors (the floats above then hold
  // their float32 roundings).
  dtype type = dtype::f32;
  std::vector<std::uint16_t> logits16, target_prob16, weight16;
  std::vector<double> logits64, target_prob64, weight64;

  // bfloat16/float16: rounds the logits, probabilities and weights once to t
  // and keeps 16-bit copies. float64: every finite non-zero value v becomes
  // v (1 + h 2^-36), h an odd 24-bit integer hashed from v's bits (equal
  // values stay equal, so ties and uniform rows keep their structure, now
  // with float64's 53 significant bits).
  void to_dtype(dtype t);
  std::vector<std::int64_t> position_shape() const;
  std::int64_t classes() const { return shape.size() == 1 ? shape[0] : shape[1]; }
  tensor_view logits_view() const;
  tensor_view target_view() const;
  options make_options(reduction r) const;
};

struct scenario_spec {
  std::string id;
  std::string family;       // the id without its shape: "normal_s1", "dominant_m20", ...
  std::string description;
  std::int64_t classes = 0;
  std::int64_t elements = 0;  // logits
  double scale = 0.0;         // sigma of the normal families, 0 otherwise (plots)
  dtype type = dtype::f32;    // the logits' (ids end in _bf16 / _f16 / _f64 for the others)
  std::function<scenario()> build;
};

// The C buckets every family is measured at.
const std::vector<std::int64_t>& class_buckets();

// The report's scenarios: every family at every C bucket, rows chosen per C
// (few rows for big C); quick uses fewer rows (same distributions). Then
// bfloat16, float16 and float64 versions of a few families (the float32 fill
// rounded once to the 16-bit dtype, or given float64's full significand),
// measured in ulps of their results' dtype.
std::vector<scenario_spec> report_scenarios(bool quick);

// Scenarios of either set whose id contains `filter` (each id once).
std::vector<scenario_spec> matching_scenarios(const std::string& filter);

}  // namespace xent::reports

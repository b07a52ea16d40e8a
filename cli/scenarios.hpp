// Fixed accuracy scenarios for `xent report`: deterministic fills (cli/fill.hpp)
// named by a compact problem string in benchdnn's style (n256c1000_normal_s1),
// each built on demand so that large ones live only while they are measured.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "xent/options.hpp"
#include "xent/tensor.hpp"

namespace xent::cli {

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

  std::vector<std::int64_t> position_shape() const;
  std::int64_t classes() const { return shape.size() == 1 ? shape[0] : shape[1]; }
  tensor_view logits_view() const { return view(logits.data(), shape); }
  tensor_view target_view() const;
  options make_options(reduction r) const;
};

struct scenario_spec {
  std::string id;
  std::string description;
  std::function<scenario()> build;
};

// The report's scenarios; quick uses fewer rows (same distributions).
std::vector<scenario_spec> report_scenarios(bool quick);

}  // namespace xent::cli

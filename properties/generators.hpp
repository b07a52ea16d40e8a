// Edge-biased generators. RapidCheck's default float generator almost never
// yields NaN, ±inf, subnormals, values near exp's overflow or dominant targets,
// so every case first picks a *regime* (a named way to fill logit rows) with
// rc::gen::weightedOneOf-style weights, then the shape and options; the values
// come from a seeded PRNG (one 64-bit seed per case) so that C = 256000 rows
// cost one shrinkable, not 256000.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <rapidcheck.h>

#include "case.hpp"
#include "xent/kernel/capabilities.hpp"

namespace xent::props {

enum class regime {
  normal,         // N(μ, σ²), σ log-uniform in [1e-3, 100], μ mostly 0
  huge,           // magnitudes 1e4 … 3e38 (and ±FLT_MAX) mixed with ordinary values
  near_overflow,  // around exp's limits ±88.7 and ±103.9
  tiny,           // subnormals, ±0, ±FLT_MIN
  dominant,       // one class ahead by a margin of 5 … 100 (usually the target)
  ties,           // several classes share the maximum
  neg_inf_mask,   // -inf on some classes (sometimes the target, sometimes all)
  special,        // NaN, +inf, -inf sprinkled
  uniform,        // every logit equal: loss ln C
  mixed,          // each row picks one of the above
};
std::string to_string(regime r);

// What a property wants from the case generator.
struct case_spec {
  std::vector<regime> regimes;     // empty: all of them
  bool special_values = true;      // allow neg_inf_mask and special (when regimes is empty)
  bool prob_targets = true;
  bool index_targets = true;       // false with prob_targets: probability targets only
  bool weights = true;
  double weight_chance = 0.3;      // of a case having class weights (when `weights`)
  double weight_log_span = 2.3;    // each weight e^u, u uniform in [-span, span]
  bool smoothing = true;
  bool ignore = true;              // ignore_index choices and ignored rows
  bool upstream = true;            // random upstream gradients
  bool layouts = true;             // strided and spatial layouts
  // Each of them (narrowed by the declared capabilities; `layouts` off keeps
  // contiguous only).
  bool contiguous_layout = true, strided_layout = true, spatial_layout = true;
  bool single = true;              // the (C) layout with a 0-d target
  std::vector<reduction> reductions{reduction::none, reduction::mean, reduction::sum};
  std::int64_t min_classes = 1;
  std::int64_t max_classes = 1024;
  std::int64_t max_rows = 48;
  std::int64_t max_elements = 3000;  // N·C·d: the reference costs ~3e5 exp/s
  bool vocab = false;              // C from LLM vocabularies (32000 … 256000), 1–2 rows
  bool mid_vocab = false;          // C in (2048, 6144]: rows past the column paths' limit
  bool grid = false;               // logits k/4096 with |k| < 2^24: shifts by grid values are exact
};

rc::Gen<test_case> gen_case(case_spec spec = {});

// The capabilities the implementation under test declares (nullopt: none).
// gen_case narrows every spec to them -- layouts, target kinds, weights,
// ignore_index, smoothing, reductions -- so the budget is spent where the
// kernel works. A choice the spec needs and the declaration lacks is kept:
// its cases fall outside the declaration and are skipped when the kernel
// answers UNSUPPORTED. run_property sets it for the implementation it runs.
void set_generation_limits(std::optional<capabilities> declared);
case_spec narrowed(case_spec spec, const capabilities& declared);

// The regimes whose logits are all finite.
std::vector<regime> finite_regimes();

// Fills row p of the case with the regime (values only; targets already set).
void fill_row(test_case& c, std::int64_t p, regime r, std::mt19937_64& rng);

}  // namespace xent::props

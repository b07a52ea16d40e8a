// The accuracy sweep of `xent report`: every registered implementation on
// every scenario against the multiprecision reference. The reference (the
// cost) is computed once per scenario and shared by all implementations;
// scenarios run in parallel on worker threads.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "scenarios.hpp"
#include "xent/kernel/implementation.hpp"

namespace xent::reports {

// What is measured: the per-sample loss (reduction none), the gradient of the
// per-sample loss (upstream 1) at the target class and at the other classes,
// and the mean and sum reductions.
enum class quantity { loss, grad_target, grad_other, mean, sum };
inline constexpr std::array<quantity, 5> all_quantities{quantity::loss, quantity::grad_target,
                                                        quantity::grad_other, quantity::mean, quantity::sum};
inline constexpr std::size_t quantity_count = all_quantities.size();
std::string to_string(quantity q);

// The element with the largest error: where it is and both values.
struct worst_element {
  std::int64_t position = -1, cls = -1;  // cls -1 for loss and reductions
  double got = 0.0;  // a value of the results' dtype
  std::string want;  // the reference, 10 significant digits
  double ulp = 0.0;
};

// Statistics of one quantity over one scenario. count 0: not applicable
// (grad_target with probability targets).
struct quantity_stats {
  std::int64_t count = 0;
  double max = 0.0, p99 = 0.0, median = 0.0;
  double mean_bits = 0.0;          // Herbie's bits of error, averaged
  double correctly_rounded = 0.0;  // fraction of results equal to RN(reference)
  std::int64_t special_mismatches = 0;  // NaN/inf where the reference is not (or vice versa)
  worst_element worst;
};

// A new field of cell or scenario_info also joins their encoding between
// MPI ranks (report_ranks.cpp).
struct cell {
  std::string impl, tier, scenario;
  std::string dtype = "float32";  // the results' (their ulps measure the errors)
  std::optional<std::string> outside;  // why the scenario is outside the declared domain
  std::optional<std::string> failure;  // the implementation threw or crashed (plug-ins): no figures
  // A plug-in answered UNSUPPORTED outside its declared capabilities (or it
  // declares none): no figures, and neither a failure nor a pass.
  std::optional<std::string> skipped;
  std::array<quantity_stats, quantity_count> q;
  // stable only (xent::stable_rounding_statistics over the cell's calls):
  // results rounded, results whose float64 rounding test failed (recomputed
  // in double-double), those of them decided by exact expansion arithmetic,
  // and those still undecided after every test.
  std::int64_t rounded = 0, retried = 0, exact = 0, unresolved = 0;
  const quantity_stats& operator[](quantity k) const { return q[static_cast<std::size_t>(k)]; }
};

struct scenario_info {
  std::string id, family, description;
  std::vector<std::int64_t> shape;
  std::int64_t classes = 0;
  double scale = 0.0;
  double seconds = 0.0;  // reference + implementations
};

struct sweep_options {
  std::vector<scenario_spec> scenarios;
  std::vector<std::string> impls;  // empty: every supported implementation
  unsigned threads = 0;            // 0: hardware concurrency
  bool progress = false;           // a progress line on stderr
};

struct sweep_result {
  std::vector<scenario_info> scenarios;  // in the order given
  std::vector<cell> cells;               // scenario-major, registry order within
  double seconds = 0.0;
};

sweep_result run_sweep(const sweep_options& o);

// The implementations a sweep measures, in registry order: the supported
// ones, only those named when `names` is not empty.
std::vector<const implementation*> sweep_implementations(const std::vector<std::string>& names);

// One-line repro of a cell's worst element, benchdnn style:
// "--impl=simd n64c1000_dominant_m20 p17 c3 grad_other: got 1.5e-09 want 1.49e-09 (2.3 ulp)".
std::string repro(const cell& c, quantity q);

}  // namespace xent::reports

namespace xent::reports {

// The tier's bound in ulps for a quantity (docs/design.md §3); NaN where the tier
// states none in ulps (standard's loss and gradient are absolute criteria,
// naive has none). "Accurate" allows 0.5 ulp "+ tiny": 0.501 here.
double tier_bound(const std::string& tier, quantity q);
// Does v exceed the bound (false when there is none)?
inline bool exceeds(double v, double bound) { return bound == bound && !(v <= bound); }
// Outside the cell's tier for quantity q: the ulp bound, and for the
// correctly_rounded tier also any result that is not RN(reference).
inline bool outside_tier(const cell& c, quantity q) {
  return c[q].count &&
         (exceeds(c[q].max, tier_bound(c.tier, q)) || (c.tier == "correctly_rounded" && c[q].correctly_rounded < 1.0));
}

}  // namespace xent::reports

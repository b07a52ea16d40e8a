// Writers of `xent report`: report.md (headline table first, then the
// details, plots, context and examples) and report.json (everything).
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "examples.hpp"
#include "plots.hpp"
#include "report_baseline.hpp"
#include "report_bench.hpp"
#include "report_context.hpp"
#include "report_sweep.hpp"

namespace xent::reports {

struct report_data {
  const sweep_result& sweep;
  const bench_data& bench;
  const context_list& context;
  const plot_set& plots;
  const std::vector<examples::outcome>& examples;
  const gate_result* gate = nullptr;  // with --check-baseline
  std::string baseline_path;
  bool quick = false;
  double seconds = 0.0;
};

std::string report_markdown(const report_data& d);
// report.md's performance section (report_performance.cpp): every benchmark
// case by shape, the Highway kernels per target.
void performance_section(std::ostringstream& md, const report_data& d);
nlohmann::ordered_json report_json(const report_data& d);

}  // namespace xent::reports

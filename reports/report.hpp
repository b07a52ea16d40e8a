// `xent report`: the accuracy sweep of every registered implementation
// against the multiprecision reference (report_sweep.hpp), benchmarks
// (bench/xent_bench, report_bench.hpp), plots (plots.hpp), the examples;
// writes report.md, report.json and SVGs into --out and prints the Markdown.
// With --check-baseline, the CI accuracy gate (report_baseline.hpp): exit
// status 1 when an error grew. The command's options are parsed in
// cli/report_command.cpp.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace xent::reports {

struct report_args {
  bool quick = false;
  bool quiet = false;
  std::string out = "reports/out";
  bool no_bench = false;
  bool no_examples = false;
  std::string bench_json;  // read instead of running the benchmarks
  std::string bench_bin;   // default: bench/xent_bench next to this build
  std::string check_baseline, write_baseline;
  std::string filter;               // scenario ids containing this (either set)
  std::vector<std::string> impls;   // only these implementations
  unsigned threads = 0;             // sweep worker threads (0: all cores)
  // Registered by the command's main before run_report (main links them).
  std::vector<std::string> plugins;  // plug-in libraries to add to the report
  bool no_torch = false;             // leave LibTorch (when built) out
  // Pins Highway dispatch (simd, openmp) to this target, e.g. "AVX2", for
  // the accuracy sweep: a baseline valid on every host is the maximum over
  // the targets (--merge-baseline). Empty: the best one.
  std::string simd_target;
  bool merge_baseline = false;  // --write-baseline keeps the larger of the file's and the measured
};

// `setup` (loading plug-ins, say) runs first, among the checks that end the
// command before anything is measured. Under mpirun every rank calls this:
// the ranks share the accuracy sweep (report_ranks.hpp), rank 0 writes the
// report, and the benchmarks are refused (--no-bench or --bench-json).
int run_report(const report_args& args, const std::function<void()>& setup = {});

}  // namespace xent::reports

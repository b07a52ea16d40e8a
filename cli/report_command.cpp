#include "report_command.hpp"

#include <CLI/CLI.hpp>

namespace xent::cli {

CLI::App* add_report_command(CLI::App& app, reports::report_args& a) {
  CLI::App* c = app.add_subcommand(
      "report", "Accuracy of every implementation against the reference (scenario x C bucket), benchmarks, "
                "plots and the examples; writes report.md, report.json and SVGs");
  c->add_flag("--quick", a.quick, "fewer rows per scenario and the quick benchmark set (CI, < 2 min)");
  c->add_flag("--quiet", a.quiet, "no progress on stderr");
  c->add_option("--out", a.out, "output directory (default reports/out)");
  c->add_flag("--no-bench", a.no_bench, "skip the benchmarks");
  c->add_flag("--no-examples", a.no_examples, "skip the examples (focused reruns of a repro)");
  c->add_option("--bench-json", a.bench_json, "read this xent_bench JSON instead of running the benchmarks");
  c->add_option("--bench-bin", a.bench_bin, "the xent_bench binary (default: bench/xent_bench of this build)");
  c->add_option("--check-baseline", a.check_baseline,
                "accuracy gate: exit 1 when a measured maximum exceeds this baseline file");
  c->add_option("--write-baseline", a.write_baseline, "write the measured maxima as a baseline file");
  c->add_option("--filter", a.filter, "only scenarios whose id contains this (from the quick and the full set)");
  c->add_option("--impl", a.impls, "only these implementations (comma-separated or repeated)")->delimiter(',');
  c->add_option("--threads", a.threads, "worker threads of the accuracy sweep (default: all cores)");
  c->add_option("--plugin", a.plugins, "add this plug-in library (xent/kernel/plugin.h) to the report (repeatable)");
  c->add_flag("--no-torch", a.no_torch, "leave LibTorch out of the accuracy sweep");
  c->add_option("--simd-target", a.simd_target,
                "pin simd, openmp and throughput to this Highway target in the accuracy sweep (e.g. AVX2; default: the best "
                "this CPU has)");
  c->add_flag("--merge-baseline", a.merge_baseline,
              "with --write-baseline: keep, per entry, the larger of the file's and the measured value (a baseline "
              "over every Highway target: one run per --simd-target)");
  return c;
}

}  // namespace xent::cli

// GCC 12 warns falsely (-Wrestrict) on "literal" + std::string concatenations.
#pragma GCC diagnostic ignored "-Wrestrict"
#include "report.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "inputs.hpp"
#include "plots.hpp"
#include "report_baseline.hpp"
#include "report_bench.hpp"
#include "report_context.hpp"
#include "report_ranks.hpp"
#include "simd_target.hpp"
#include "report_sweep.hpp"
#include "report_write.hpp"
#include "xent/kernel.hpp"
#include "xent/xent.hpp"

namespace xent::reports {

using cli::input_error;

namespace {

namespace fs = std::filesystem;

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  f.close();
  if (!f) throw input_error(path.string() + ": cannot write");
}

}  // namespace

int run_report(const report_args& a, const std::function<void()>& setup) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  // Under mpirun the ranks measure different scenarios: `mpi` computes as the
  // only rank of each process, as it does in one process (xent/kernel/mpi.hpp).
  const mpi::single_rank_scope mpi_alone;
  const bool ranks = mpi::launched();
  const bool root = mpi::rank() == 0;
  const bool progress = root && !a.quiet && ::isatty(STDERR_FILENO);

  // Setup: everything that can fail before the sweep, and no collective. Under
  // mpirun the ranks then agree, so that none waits in a collective for one
  // that failed.
  baseline allowed, merged;
  std::vector<std::string> all_targets;
  sweep_options so;
  std::exception_ptr setup_failure;
  try {
    if (setup) setup();
    if (root) {  // the one that writes (the others' hosts may lack the directory and the files)
      std::error_code ec;
      fs::create_directories(a.out, ec);
      if (ec) throw input_error(a.out + ": cannot create the output directory: " + ec.message());
    }
    for (const auto& name : a.impls)
      if (!find_implementation(name)) throw input_error("unknown implementation '" + name + "'");
    if (ranks && !a.no_bench && a.bench_json.empty())
      throw input_error("under mpirun, xent report splits the accuracy sweep over the ranks but does not run the "
                        "benchmarks (they need the host to themselves, and mpirun binds each rank to its cores): "
                        "add --no-bench, or --bench-json FILE with the results of a run of its own "
                        "(./run bench, or xent report without mpirun)");
    if (root && !a.check_baseline.empty()) allowed = read_baseline(a.check_baseline);
    if (a.merge_baseline && a.write_baseline.empty()) throw input_error("--merge-baseline needs --write-baseline FILE");
    if (root && a.merge_baseline && fs::exists(a.write_baseline)) merged = read_baseline(a.write_baseline);
    all_targets = simd_targets();
    if (!a.simd_target.empty()) {
      pin_simd_target(a.simd_target);
      if (root && !a.quiet) std::cerr << "report: simd, openmp and throughput pinned to Highway " << a.simd_target << "\n";
    }
    so.scenarios = a.filter.empty() ? report_scenarios(a.quick) : matching_scenarios(a.filter);
    if (so.scenarios.empty()) throw input_error("no scenario id contains '" + a.filter + "'");
    so.impls = a.impls;
    so.threads = a.threads;
    so.progress = progress;
  } catch (...) {
    setup_failure = std::current_exception();
  }
  if (ranks) agree_on_setup(setup_failure, setup_failure ? std::string() : sweep_fingerprint(so));
  else if (setup_failure) std::rethrow_exception(setup_failure);
  if (ranks && !so.threads) so.threads = sweep_threads_per_rank();  // a collective: after the agreement

  std::vector<std::size_t> per_rank;
  std::optional<sweep_result> measured = ranks ? run_sweep_over_ranks(so, &per_rank) : run_sweep(so);
  if (!measured) return 0;  // a rank other than 0: its share is with rank 0, which writes the report
  const sweep_result& sweep = *measured;
  if (progress)
    std::cerr << "report: accuracy sweep, " << sweep.scenarios.size() << " scenarios in "
              << static_cast<int>(sweep.seconds + 0.5) << " s\n";

  bench_data bench;
  if (!a.bench_json.empty()) bench = read_bench(a.bench_json);
  else if (a.no_bench) bench.note = "not measured (--no-bench)";
  else
    bench = run_bench(a.bench_bin.empty() ? default_bench_binary() : a.bench_bin, a.quick,
                      (fs::path(a.out) / "bench.json").string(), (fs::path(a.out) / "bench.log").string(), progress);

  const std::vector<examples::outcome> ex = a.no_examples ? std::vector<examples::outcome>{} : examples::run_all();
  context_list context = report_context(bench.context);
  if (ranks) {
    std::string v = std::to_string(per_rank.size());
    v += per_rank.size() == 1 ? " MPI rank" : " MPI ranks";
    v += " (scenarios per rank:";
    for (std::size_t r = 0; r < per_rank.size(); ++r) {
      v += r ? ", " : " ";
      v += std::to_string(per_rank[r]);
    }
    v += ")";
    context.emplace_back("accuracy sweep split over", v);
  }
  if (!a.simd_target.empty())
    for (auto& [key, value] : context)
      if (key == "Highway targets") {
        value = simd_targets().front() + " (pinned by --simd-target; this CPU has ";
        for (std::size_t i = 0; i < all_targets.size(); ++i) value += (i ? ", " : "") + all_targets[i];
        value += ")";
      }
  const plot_set plots = make_plots(a.out, sweep, bench);

  gate_result gate;
  if (!a.check_baseline.empty()) gate = check_baseline(allowed, sweep);
  report_data d{sweep, bench, context, plots, ex, a.check_baseline.empty() ? nullptr : &gate, a.check_baseline,
                a.quick, std::chrono::duration<double>(clock::now() - start).count()};
  const std::string md = report_markdown(d);
  write_file(fs::path(a.out) / "report.md", md);
  write_file(fs::path(a.out) / "report.json", report_json(d).dump(2) + "\n");
  std::cout << md << std::flush;
  if (!a.quiet) std::cerr << "report: wrote " << (fs::path(a.out) / "report.md").string() << ", report.json and plots\n";

  if (!a.write_baseline.empty()) {
    baseline b = measured_baseline(sweep);
    for (const auto& [impl, m] : merged)
      for (const auto& [q, v] : m) {
        auto& slot = b[impl][q];
        slot = std::max(slot, v);
      }
    write_file(a.write_baseline, format_baseline(b, sweep));
    std::cerr << "report: wrote the measured baseline to " << a.write_baseline << "\n";
  }
  int status = 0;
  bool examples_ok = true;
  for (const auto& e : ex) examples_ok = examples_ok && e.passed;
  if (!examples_ok) {
    std::cerr << "xent: error: an example failed (see the Examples section)\n";
    status = 1;
  }
  for (const auto& c : sweep.cells)
    if (c.failure) {
      std::cerr << "xent: error: " << c.impl << " failed on " << c.scenario << ": " << *c.failure << "\n";
      status = 1;
    }
  if (!a.check_baseline.empty()) {
    for (const auto& n : gate.notes) std::cerr << "xent: note: " << n << "\n";
    if (gate.improved()) {
      std::cerr << "xent: accuracy improved against " << a.check_baseline << " on this host:\n";
      for (const auto& i : gate.improvements) std::cerr << "  " << i << "\n";
      std::cerr << "xent: note: the file holds the maximum over every Highway target (AVX3, AVX2, SSE4, ...), "
                   "not this host's table: regenerate it with `./run baseline` (on a host with the most targets) "
                   "and review the diff\n";
    }
    for (const auto& f : gate.failures) std::cerr << "xent: accuracy regression: " << f << "\n";
    if (!gate.failures.empty()) {
      std::cerr << "xent: error: the accuracy gate failed (" << gate.failures.size() << " above " << a.check_baseline
                << ")\n";
      status = 1;
    } else if (!a.quiet) {
      std::cerr << "report: accuracy gate passed (" << a.check_baseline << ")\n";
    }
  }
  return status;
}

}  // namespace xent::reports

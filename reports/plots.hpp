// The report's plots, drawn by gnuplot (a subprocess running a generated
// script; the .gp files stay next to the SVGs): ulp error vs logit scale per
// implementation, GB/s vs C with the roofline, thread scaling, and worst ulp
// error against the fraction of the CE roofline (accuracy against speed).
#pragma once

#include <string>
#include <vector>

#include "report_bench.hpp"
#include "report_sweep.hpp"

namespace xent::reports {

struct plot {
  std::string file;   // "accuracy_vs_scale.svg", relative to the output directory
  std::string title;
};

struct plot_set {
  std::vector<plot> plots;
  std::vector<std::string> notes;  // gnuplot missing, a plot skipped and why
};

plot_set make_plots(const std::string& out_dir, const sweep_result& sweep, const bench_data& bench);

}  // namespace xent::reports

// `xent report`: the accuracy table of every registered implementation
// against the multiprecision reference on fixed scenarios, plus the examples.
// Writes report.md and report.json into --out and prints the Markdown.
// (A later issue adds benchmarks and plots: they join as further sections.)
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace xent::cli {

struct report_args {
  bool quick = false;
  std::string out = "reports/out";
};

CLI::App* add_report_command(CLI::App& app, report_args& args);
int run_report(const report_args& args);

}  // namespace xent::cli

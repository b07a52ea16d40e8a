// `xent check`: run implementations and the reference on the user's .npy data.
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace xent::cli {

struct check_args {
  std::string logits, target, weight;
  std::int64_t ignore_index = -100;
  std::string reduction = "mean";
  double label_smoothing = 0.0;
  std::string impl = "all";
  std::string grad_out;
  bool json = false;
};

// Adds the subcommand and its options (bound to args).
CLI::App* add_check_command(CLI::App& app, check_args& args);
// Runs it; returns the exit status. Throws on input errors (the caller maps
// them to exit status 2).
int run_check(const check_args& args);

}  // namespace xent::cli

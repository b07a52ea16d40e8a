// `xent check`: the multiprecision reference on the user's .npy data, next to
// the user's own results (--loss, --grad), plug-ins (--plugin) and registered
// implementations (--impl); each result's error in ulps, summarised, and an
// optional bound (--max-ulp, --tier) that decides the exit status.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace xent::cli {

struct check_args {
  std::string logits, target, weight;
  std::string logits_dtype;  // --logits-dtype: "bfloat16" reads uint16 bit patterns ("" : the file's dtype)
  std::int64_t ignore_index = -100;
  std::string reduction = "mean";
  double label_smoothing = 0.0;
  std::vector<std::string> impls;    // --impl a,b (empty: the default set)
  std::vector<std::string> plugins;  // --plugin lib.so (repeatable)
  std::string loss, grad;            // --loss, --grad: the user's own results
  std::string grad_out;
  double max_ulp = -1.0;  // --max-ulp (negative: not given)
  std::string tier;       // --tier
  unsigned threads = 0;   // --threads for the reference (0: one per core)
  std::size_t worst = 5;  // --worst: positions listed per result
  bool json = false;
};

// Exit statuses of every command (documented in --help and the README).
inline constexpr int exit_ok = 0;
inline constexpr int exit_bound_exceeded = 1;  // check's bound, verify's verdict, report's gate
inline constexpr int exit_usage = 2;           // usage or input error

// Adds the subcommand and its options (bound to args).
CLI::App* add_check_command(CLI::App& app, check_args& args);
// Runs it; returns the exit status. Throws on input errors (the caller maps
// them to exit status 2).
int run_check(const check_args& args);

}  // namespace xent::cli

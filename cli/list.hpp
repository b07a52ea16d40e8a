// `xent list`: the implementation registry.
#pragma once

namespace CLI {
class App;
}

namespace xent::cli {

struct list_args {
  bool json = false;
  bool simd_targets = false;  // only the Highway targets, one per line
};

CLI::App* add_list_command(CLI::App& app, list_args& args);
int run_list(const list_args& args);

}  // namespace xent::cli

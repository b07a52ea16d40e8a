// `xent verify --plugin lib.so [--tier T]`: the property suite and an accuracy
// sweep on a kernel that is not ours (a plug-in, see xent/plugin.h, or any
// registered implementation with --impl), each property in a child process so
// that a crashing kernel is a failure with its shrunk repro, not a dead tool.
// Exit status 0 only when every property of the (declared or given) tier holds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "xent/implementation.hpp"
#include "xent/plugin_loader.hpp"

namespace CLI {
class App;
}

namespace xent::cli {

struct verify_args {
  std::vector<std::string> plugins;  // --plugin (repeatable)
  std::vector<std::string> impls;    // --impl: registered implementations (e.g. torch, stable)
  std::string tier;                  // --tier: judge as if it declared this tier
  std::vector<std::string> only;     // --property: run only these (name or suite/name)
  double scale = 1.0;                // --scale: multiplies every property's case budget
  std::uint64_t seed = 20240611;     // --seed (RC_PARAMS, when set, wins)
  double timeout_s = 900;            // --timeout: per property (a hang is a failure)
  bool sweep = true;                 // --no-sweep
  bool fork = true;                  // --no-fork: in-process (debugging; a crash kills xent)
  bool verbose = false;              // worst errors of passing properties too
};

CLI::App* add_verify_command(CLI::App& app, verify_args& args);
int run_verify(const verify_args& args);

// The hook for `xent report --plugin PATH...` (and any other command): loads
// each plug-in into the registry before the command iterates it. With
// isolation::per_call (the default here) every call into a plug-in runs in a
// forked child: a crash or hang surfaces as xent::plugins::plugin_crash (a
// std::runtime_error naming the signal), which the caller catches per
// implementation and reports as a failed cell instead of dying. Throws
// xent::error when a library cannot be loaded (usage error, exit status 2).
std::vector<const implementation*> load_plugins(
    const std::vector<std::string>& paths,
    plugins::isolation isolate = plugins::isolation::per_call);

}  // namespace xent::cli

// `xent verify --plugin lib.so [--tier T]`: the property suite and an accuracy
// sweep on a kernel that is not ours (a plug-in, see xent/kernel/plugin.h, or any
// registered implementation with --impl), each property in a child process so
// that a crashing kernel is a failure with its shrunk repro, not a dead tool.
// Exit status 0 only when every property of the (declared or given) tier holds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "xent/kernel/implementation.hpp"
#include "registry.hpp"  // load_plugins

namespace CLI {
class App;
}

namespace xent::cli {

struct verify_args {
  std::vector<std::string> plugins;  // --plugin (repeatable)
  std::vector<std::string> impls;    // --impl: registered implementations (e.g. torch, stable)
  std::string python;                // --python module:function (through the Python module's plug-in)
  std::string tier;                  // --tier: judge as if it declared this tier
  std::vector<std::string> only;     // --property: run only these (name or suite/name)
  double scale = 1.0;                // --scale: multiplies every property's case budget
  std::uint64_t seed = 20240611;     // --seed (RC_PARAMS, when set, wins)
  double timeout_s = 900;            // --timeout: per property (a hang is a failure)
  bool sweep = true;                 // --no-sweep
  bool fork = true;                  // --no-fork: in-process (debugging; a crash kills xent)
  bool verbose = false;              // worst errors of passing properties too
  std::string known_deviations;      // --known-deviations: a peer's list (torch), none, or "" (by what is verified)
};

CLI::App* add_verify_command(CLI::App& app, verify_args& args);
int run_verify(const verify_args& args);

}  // namespace xent::cli

// One set of implementations for every command (list, check, verify, report):
// ours, the peers built in (LibTorch as `torch`), and plug-ins loaded from the
// command line. Peers are external implementations under test, marked as
// such (implementation::peer()) and never part of a default set.
#pragma once

#include <string>
#include <vector>

#include "xent/kernel/implementation.hpp"
#include "xent/plugin_loader.hpp"

namespace xent::cli {

// Registers the peers this xent was built with (LibTorch: `torch`). Every
// command calls it before it looks at the registry; idempotent.
void register_peers();

// Loads each plug-in into the registry. With isolation::per_call (the
// default here) every call into a plug-in runs in a forked child: a crash or
// hang surfaces as xent::plugins::plugin_crash (a std::runtime_error naming
// the signal), which the caller catches per implementation. Throws
// xent::error when a library cannot be loaded (usage error, exit status 2).
std::vector<const implementation*> load_plugins(
    const std::vector<std::string>& paths,
    plugins::isolation isolate = plugins::isolation::per_call);

// "implementation" (ours), "peer", or "plug-in PATH".
std::string origin_of(const implementation& impl);

// A registered implementation by name, for an option (--impl): an
// input_error naming the known ones when there is none, or when this CPU
// cannot run it.
const implementation& find_for_cli(const std::string& option, const std::string& name);

// `xent check`'s default: our supported implementations at the accurate and
// fast tiers (naive's out-of-domain rows and the peers only when asked for).
std::vector<const implementation*> default_check_set();

}  // namespace xent::cli

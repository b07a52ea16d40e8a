// Loading plug-ins (xent/kernel/plugin.h) into the registry. A loaded plug-in is an
// ordinary xent::implementation: the property suite, the report and `xent
// check` use it like a built-in kernel.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include "xent/child_process.hpp"  // signal_name
#include "xent/error.hpp"
#include "xent/kernel/implementation.hpp"
#include "xent/kernel/plugin.h"

namespace xent::plugins {

// How calls into the plug-in are protected.
enum class isolation {
  none,      // called directly: a crash in the plug-in crashes the caller
  per_call,  // each call runs in a forked child; a crash or hang becomes a
             // plugin_crash exception with the signal (slower: one fork per call)
};

struct load_options {
  isolation isolate = isolation::none;
  // Verify or report the plug-in as if it declared this tier (`--tier`).
  std::optional<xent::tier> tier_override;
  // per_call only: a call that takes longer is killed and reported.
  double call_timeout_s = 120.0;
};

// The plug-in returned an error code (its message is in what()). Like every
// failure of the library, an xent::error (argument "plugin").
class plugin_error : public xent::error {
 public:
  explicit plugin_error(const std::string& message) : xent::error("plugin", message) {}
};

// The plug-in returned XENT_PLUGIN_ERROR_UNSUPPORTED for a call outside its
// declared capabilities (or it declares none): the caller skips the case and
// counts it. Inside the declaration the same status is a plain plugin_error.
class plugin_unsupported : public plugin_error {
 public:
  using plugin_error::plugin_error;
};

// A per_call child died by a signal, exited early or hung.
class plugin_crash : public plugin_error {
 public:
  using plugin_error::plugin_error;
};

// dlopen()s the library, checks the ABI version and the descriptor, and
// registers an implementation named after the plug-in. Throws xent::error
// (missing file, missing symbol, ABI mismatch, invalid descriptor, name
// already registered). The library stays loaded for the process's lifetime.
const implementation& load_plugin(const std::string& path, const load_options& options = {});

// The checks load_plugin applies to the descriptor a plug-in returns, without
// dlopen: NULL, ABI version, struct_size, a name of at most max_name_length
// letters, digits and "_.+-" (read with strnlen, so an unterminated name is an
// error, not a read past its end), a description without control characters
// of at most max_description_length bytes, both entry points, a known tier,
// thread_count_independent 0 or 1, and, when struct_size holds them, the
// declared capabilities (no unknown bits, no empty layout, target, reduction
// or dtype mask, in-place only with the gradient). Throws xent::error ("plug-in PATH: why").
inline constexpr std::size_t max_name_length = 64;
inline constexpr std::size_t max_description_length = 1024;
void validate_descriptor(const xent_plugin* descriptor, const std::string& path);

// Is this implementation a loaded plug-in? (nullptr-safe)
bool is_plugin(const implementation* impl);
// The path a plug-in was loaded from (empty for other implementations).
std::string plugin_path(const implementation& impl);
// Switches the protection of a loaded plug-in (no-op for other implementations).
void set_isolation(const implementation& impl, isolation isolate);

}  // namespace xent::plugins

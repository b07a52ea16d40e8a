// The checks a plug-in's descriptor must pass before anything else reads it.
// They live apart from the dlopen loader (plugin_loader.cpp) so that they can
// be tested and fuzzed on descriptors built in memory (fuzz/fuzz_plugin.cpp).
#include <cstdio>
#include <cstring>
#include <string>

#include "xent/error.hpp"
#include "xent/kernel/capabilities.hpp"
#include "xent/kernel/plugin.h"
#include "xent/plugin_loader.hpp"

namespace xent::plugins {
namespace {

// Character classes for the two strings of a descriptor. A name is read
// through a pointer into the plug-in's memory: it is bounded with strnlen (an
// unterminated name must not make us read on into whatever follows it), and
// it must be a short word of letters, digits and "_.+-" because it becomes a
// registry key, a test name, an `XENT_IMPL=` value, a Markdown table cell and
// a command-line argument (`--impl`); anything else is rejected with a
// message that shows the offending byte. A description is free text shown on
// one line: any byte but the ASCII control characters (UTF-8 is fine).
bool name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '+' || c == '-';
}
bool description_char(unsigned char c) { return c >= 0x20 && c != 0x7f; }

std::string byte_string(unsigned char c) {
  if (c >= 0x21 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
  return buf;
}

std::string hex(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

// The appended capability fields (plugin.h, "Declared capabilities"). A
// declaration the host cannot honour is refused rather than half-used: an
// unknown bit may mean a feature this host does not know about.
template <class Fail>
void validate_capabilities(const xent_plugin& d, Fail fail) {
  if (d.declared == 0) return;
  if (d.declared != 1) fail("declared = " + std::to_string(d.declared) + " (0: no declaration, 1: the masks hold)");
  capabilities all = capabilities::all();
  // The dtypes a descriptor's version knows: the 16-bit bits came with
  // version 2, float64 with version 3.
  if (d.abi_version < 3) all.dtypes &= ~dtype_float64_bit;
  if (d.abi_version < 2) all.dtypes = XENT_PLUGIN_DTYPE_FLOAT32;
  auto check = [&](const char* field, std::uint32_t value, std::uint32_t known, bool may_be_empty) {
    if (value & ~known)
      fail(std::string("declares unknown ") + field + " bits " + hex(value & ~known) + " (known: " + hex(known) +
           ")");
    if (!may_be_empty && value == 0) fail(std::string("declares no ") + field + " (the mask is 0)");
  };
  check("layouts", d.layouts, all.layouts, false);
  check("targets", d.targets, all.targets, false);
  check("options", d.options, all.options, true);
  check("reductions", d.reductions, all.reductions, false);
  check("modes", d.modes, all.modes, true);
  check("dtypes", d.dtypes, all.dtypes, false);
  if (d.dtypes != 0 && !(d.dtypes & XENT_PLUGIN_DTYPE_FLOAT32))
    fail("declares dtypes without float32 (" + hex(d.dtypes) + "; every plug-in computes float32)");
  if ((d.modes & XENT_PLUGIN_MODE_IN_PLACE) && !(d.modes & XENT_PLUGIN_MODE_GRADIENT))
    fail("declares the in-place gradient without the gradient (modes " + hex(d.modes) + ")");
  if (d.reserved_capabilities != 0)
    fail("reserved_capabilities is " + std::to_string(d.reserved_capabilities) + " (must be 0)");
}

}  // namespace

void validate_descriptor(const xent_plugin* d, const std::string& path) {
  auto fail = [&](const std::string& why) { throw error("plugin", "plug-in " + path + ": " + why); };
  if (!d)
    fail("refuses ABI versions " + std::to_string(XENT_PLUGIN_ABI_VERSION) + " to " +
         std::to_string(XENT_PLUGIN_ABI_VERSION_OLDEST) + " (returned NULL)");
  if (d->abi_version < XENT_PLUGIN_ABI_VERSION_OLDEST || d->abi_version > XENT_PLUGIN_ABI_VERSION)
    fail("built for ABI version " + std::to_string(d->abi_version) + ", this xent speaks " +
         std::to_string(XENT_PLUGIN_ABI_VERSION_OLDEST) + " to " + std::to_string(XENT_PLUGIN_ABI_VERSION) +
         " (rebuild it against this xent/kernel/plugin.h)");
  // Plug-ins built before the capability fields were appended are smaller
  // and declare nothing; their struct_size stops at `declared`.
  if (d->struct_size < XENT_PLUGIN_SIZE_WITHOUT_CAPABILITIES)
    fail("descriptor too small (" + std::to_string(d->struct_size) + " bytes, need at least " +
         std::to_string(XENT_PLUGIN_SIZE_WITHOUT_CAPABILITIES) + ")");
  if (d->struct_size > XENT_PLUGIN_SIZE_WITHOUT_CAPABILITIES && d->struct_size < sizeof(xent_plugin))
    fail("descriptor of " + std::to_string(d->struct_size) + " bytes ends inside the capability fields (" +
         std::to_string(XENT_PLUGIN_SIZE_WITHOUT_CAPABILITIES) + " without them, " +
         std::to_string(sizeof(xent_plugin)) + " with them)");
  if (!d->name || !*d->name) fail("descriptor has no name");
  const std::size_t name_len = strnlen(d->name, max_name_length + 1);
  if (name_len > max_name_length)
    fail("name is longer than " + std::to_string(max_name_length) + " bytes (or not NUL-terminated)");
  for (std::size_t i = 0; i < name_len; ++i) {
    const auto c = static_cast<unsigned char>(d->name[i]);
    if (!name_char(c))
      fail("name contains " + byte_string(c) + " at offset " + std::to_string(i) +
           " (a name is letters, digits and _ . + - only)");
  }
  if (d->description) {
    const std::size_t len = strnlen(d->description, max_description_length + 1);
    if (len > max_description_length)
      fail("description of '" + std::string(d->name) + "' is longer than " +
           std::to_string(max_description_length) + " bytes (or not NUL-terminated)");
    for (std::size_t i = 0; i < len; ++i) {
      const auto c = static_cast<unsigned char>(d->description[i]);
      if (!description_char(c))
        fail("description of '" + std::string(d->name) + "' contains the control character " +
             byte_string(c) + " at offset " + std::to_string(i));
    }
  }
  if (!d->forward || !d->forward_backward) fail("descriptor lacks forward or forward_backward");
  if (d->tier < XENT_PLUGIN_TIER_ACCURATE || d->tier > XENT_PLUGIN_TIER_RELAXED)
    fail("declares an unknown tier " + std::to_string(d->tier) +
         " (0 accurate, 1 fast, 4 relaxed, 2 standard, 3 naive)");
  if (d->thread_count_independent != 0 && d->thread_count_independent != 1)
    fail("declares thread_count_independent = " + std::to_string(d->thread_count_independent) +
         " (0 or 1)");
  if (d->struct_size >= sizeof(xent_plugin)) validate_capabilities(*d, fail);
}

}  // namespace xent::plugins

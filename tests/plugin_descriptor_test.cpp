// xent::plugins::validate_descriptor: every malformed descriptor a plug-in
// can return gets an xent::error that names the plug-in and the problem,
// without reading past a name or description that is not NUL-terminated.
// (Cases found by fuzz/fuzz_plugin.cpp land here too.)
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xent/error.hpp"
#include "xent/plugin.h"
#include "xent/plugin_loader.hpp"

namespace {

int32_t fwd(const DLTensor*, const DLTensor*, const DLTensor*, const xent_plugin_options*, char*, size_t) {
  return 0;
}
int32_t fwd_bwd(const DLTensor*, const DLTensor*, const DLTensor*, const DLTensor*, const DLTensor*,
                const xent_plugin_options*, char*, size_t) {
  return 0;
}

xent_plugin good() {
  return {XENT_PLUGIN_ABI_VERSION, sizeof(xent_plugin), "my_kernel-2.1+avx", "a kernel: ünïcode ok",
          XENT_PLUGIN_TIER_FAST, 1, fwd, fwd_bwd};
}

// The message of the xent::error for `d` ("" when accepted).
std::string error_of(const xent_plugin* d) {
  try {
    xent::plugins::validate_descriptor(d, "lib.so");
  } catch (const xent::error& e) {
    EXPECT_EQ(e.argument(), "plugin");
    return e.what();
  }
  return "";
}

#define EXPECT_REJECTED(d, fragment)                                   \
  do {                                                                 \
    const std::string m_ = error_of(d);                                \
    EXPECT_NE(m_.find("plug-in lib.so: "), std::string::npos) << m_;   \
    EXPECT_NE(m_.find(fragment), std::string::npos) << m_;             \
  } while (0)

TEST(plugin_descriptor, a_good_one_is_accepted) {
  const xent_plugin d = good();
  EXPECT_EQ(error_of(&d), "");
  xent_plugin d2 = good();
  d2.description = nullptr;  // optional
  d2.struct_size = sizeof(xent_plugin) + 16;  // a newer plug-in with more fields
  EXPECT_EQ(error_of(&d2), "");
}

TEST(plugin_descriptor, header_fields) {
  EXPECT_REJECTED(nullptr, "returned NULL");
  xent_plugin d = good();
  d.abi_version = 7;
  EXPECT_REJECTED(&d, "built for ABI version 7");
  d = good();
  d.struct_size = 8;
  EXPECT_REJECTED(&d, "descriptor too small (8 bytes");
  d = good();
  d.forward = nullptr;
  EXPECT_REJECTED(&d, "lacks forward or forward_backward");
  d = good();
  d.forward_backward = nullptr;
  EXPECT_REJECTED(&d, "lacks forward or forward_backward");
  d = good();
  d.tier = 4;
  EXPECT_REJECTED(&d, "unknown tier 4");
  d.tier = -1;
  EXPECT_REJECTED(&d, "unknown tier -1");
  d = good();
  d.thread_count_independent = 2;
  EXPECT_REJECTED(&d, "thread_count_independent = 2 (0 or 1)");
}

TEST(plugin_descriptor, names) {
  xent_plugin d = good();
  d.name = nullptr;
  EXPECT_REJECTED(&d, "has no name");
  d.name = "";
  EXPECT_REJECTED(&d, "has no name");
  // Not NUL-terminated within the limit: strnlen stops at max + 1 bytes, so
  // the buffer needs to be no longer than that.
  const std::vector<char> long_name(xent::plugins::max_name_length + 1, 'a');
  d.name = long_name.data();
  EXPECT_REJECTED(&d, "longer than 64 bytes (or not NUL-terminated)");
  const std::string exactly(xent::plugins::max_name_length, 'b');
  d.name = exactly.c_str();
  EXPECT_EQ(error_of(&d), "");
  d.name = "two words";
  EXPECT_REJECTED(&d, "name contains byte 0x20 at offset 3");
  d.name = "line\nbreak";
  EXPECT_REJECTED(&d, "name contains byte 0x0a at offset 4");
  d.name = "a|b";  // would break the report's Markdown table
  EXPECT_REJECTED(&d, "name contains '|' at offset 1");
  d.name = "caf\xc3\xa9";
  EXPECT_REJECTED(&d, "name contains byte 0xc3 at offset 3");
}

TEST(plugin_descriptor, descriptions) {
  xent_plugin d = good();
  d.description = "tab\there";
  EXPECT_REJECTED(&d, "description of 'my_kernel-2.1+avx' contains the control character byte 0x09 at offset 3");
  d.description = "bell\x7f";
  EXPECT_REJECTED(&d, "control character byte 0x7f at offset 4");
  const std::vector<char> unterminated(xent::plugins::max_description_length + 1, 'x');
  d.description = unterminated.data();
  EXPECT_REJECTED(&d, "longer than 1024 bytes (or not NUL-terminated)");
}

}  // namespace

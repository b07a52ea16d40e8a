// xent::plugins::validate_descriptor: every malformed descriptor a plug-in
// can return gets an xent::error that names the plug-in and the problem,
// without reading past a name or description that is not NUL-terminated.
// (Cases found by fuzz/fuzz_plugin.cpp land here too.)
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xent/error.hpp"
#include "xent/kernel/plugin.h"
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
  xent_plugin d{};  // the capability fields zero: no declaration
  d.abi_version = XENT_PLUGIN_ABI_VERSION;
  d.struct_size = sizeof(xent_plugin);
  d.name = "my_kernel-2.1+avx";
  d.description = "a kernel: ünïcode ok";
  d.tier = XENT_PLUGIN_TIER_FAST;
  d.thread_count_independent = 1;
  d.forward = fwd;
  d.forward_backward = fwd_bwd;
  return d;
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
  EXPECT_REJECTED(&d, "built for ABI version 7, this xent speaks 1 to 3");
  d.abi_version = 0;
  EXPECT_REJECTED(&d, "built for ABI version 0");
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
  d.tier = XENT_PLUGIN_TIER_RELAXED;
  EXPECT_EQ(error_of(&d), "");  // the relaxed tier
  d.tier = 5;
  EXPECT_REJECTED(&d, "unknown tier 5");
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

// ---- declared capabilities (the fields appended after forward_backward) ----

namespace {

xent_plugin declaring() {
  xent_plugin d = good();
  d.declared = 1;
  d.layouts = XENT_PLUGIN_LAYOUT_ROWS;
  d.targets = XENT_PLUGIN_TARGET_INDEX;
  d.options = 0;
  d.reductions = XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_MEAN);
  d.modes = XENT_PLUGIN_MODE_GRADIENT;
  d.dtypes = XENT_PLUGIN_DTYPE_FLOAT32;
  return d;
}

}  // namespace

TEST(plugin_descriptor, capabilities_are_optional) {
  // A plug-in built before the fields existed: its struct ends at `declared`.
  xent_plugin d = good();
  d.struct_size = static_cast<std::uint32_t>(XENT_PLUGIN_SIZE_WITHOUT_CAPABILITIES);
  d.declared = 77;  // beyond its struct_size: never read
  EXPECT_EQ(error_of(&d), "");
  d = declaring();
  EXPECT_EQ(error_of(&d), "");
  d.struct_size = static_cast<std::uint32_t>(XENT_PLUGIN_SIZE_WITHOUT_CAPABILITIES + 4);
  EXPECT_REJECTED(&d, "ends inside the capability fields");
}

TEST(plugin_descriptor, capability_masks) {
  xent_plugin d = declaring();
  d.declared = 2;
  EXPECT_REJECTED(&d, "declared = 2");
  d = declaring();
  d.layouts = 0x30;
  EXPECT_REJECTED(&d, "unknown layouts bits 0x30");
  d = declaring();
  d.targets = 0;
  EXPECT_REJECTED(&d, "declares no targets");
  d = declaring();
  d.options = 0x8;
  EXPECT_REJECTED(&d, "unknown options bits 0x8");
  d = declaring();
  d.reductions = 0;
  EXPECT_REJECTED(&d, "declares no reductions");
  d = declaring();
  d.modes = XENT_PLUGIN_MODE_IN_PLACE;
  EXPECT_REJECTED(&d, "in-place gradient without the gradient");
  d = declaring();
  d.dtypes = 0;
  EXPECT_REJECTED(&d, "declares no dtypes");
  d = declaring();
  d.dtypes = XENT_PLUGIN_DTYPE_BFLOAT16;
  EXPECT_REJECTED(&d, "declares dtypes without float32 (0x2;");
  d = declaring();
  d.dtypes = 0x11;
  EXPECT_REJECTED(&d, "unknown dtypes bits 0x10");
  // ABI 2: the 16-bit dtypes; ABI 3: float64; a version-1 descriptor
  // declares float32 alone, a version-2 one no float64.
  d = declaring();
  d.dtypes = XENT_PLUGIN_DTYPE_FLOAT32 | XENT_PLUGIN_DTYPE_BFLOAT16 | XENT_PLUGIN_DTYPE_FLOAT16 |
             XENT_PLUGIN_DTYPE_FLOAT64;
  EXPECT_EQ(error_of(&d), "");
  d.abi_version = 2;
  EXPECT_REJECTED(&d, "unknown dtypes bits 0x8");
  d.dtypes = XENT_PLUGIN_DTYPE_FLOAT32 | XENT_PLUGIN_DTYPE_BFLOAT16 | XENT_PLUGIN_DTYPE_FLOAT16;
  EXPECT_EQ(error_of(&d), "");
  d.abi_version = 1;
  EXPECT_REJECTED(&d, "unknown dtypes bits 0x6");
  d.dtypes = XENT_PLUGIN_DTYPE_FLOAT32;
  EXPECT_EQ(error_of(&d), "");
  d = declaring();
  d.reserved_capabilities = 1;
  EXPECT_REJECTED(&d, "reserved_capabilities is 1");
}

TEST(capabilities, what_a_call_needs_and_what_a_declaration_lacks) {
  std::vector<float> x(6 * 4, 0.5f);
  std::vector<std::int64_t> t{0, 1, 2, 3, 0, 1};
  std::vector<float> w(4, 1.0f);
  xent::options o;
  o.reduce = xent::reduction::sum;
  // Dense (6, 4) rows, index targets, no option in use.
  xent::problem p = xent::make_problem(xent::view(x.data(), {6, 4}), xent::view(t.data(), {6}), o);
  xent::capabilities n = xent::needs_of(p, false);
  EXPECT_EQ(n.layouts, XENT_PLUGIN_LAYOUT_ROWS);
  EXPECT_EQ(n.targets, XENT_PLUGIN_TARGET_INDEX);
  EXPECT_EQ(n.options, 0u);
  EXPECT_EQ(n.reductions, XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_SUM));
  EXPECT_EQ(n.modes, 0u);
  // Every other row of a (6, 4) buffer: (3, 4) with row stride 8: strided.
  xent::tensor_view every_other = xent::view(x.data(), {3, 4});
  every_other.strides = {8, 1};
  p = xent::make_problem(every_other, xent::view(t.data(), {3}), o);
  EXPECT_EQ(xent::needs_of(p, false).layouts, XENT_PLUGIN_LAYOUT_STRIDED);
  // (2, 4, 3): spatial. One (4) row: single.
  p = xent::make_problem(xent::view(x.data(), {2, 4, 3}), xent::view(t.data(), {2, 3}), o);
  EXPECT_EQ(xent::needs_of(p, false).layouts, XENT_PLUGIN_LAYOUT_SPATIAL);
  p = xent::make_problem(xent::view(x.data(), {4}), xent::view(t.data(), {}), o);
  EXPECT_EQ(xent::needs_of(p, false).layouts, XENT_PLUGIN_LAYOUT_SINGLE);
  // Options in use: weight, smoothing, and ignore_index only when a target equals it.
  o.weight = xent::view(w.data(), {4});
  o.label_smoothing = 0.1;
  o.ignore_index = 3;
  p = xent::make_problem(xent::view(x.data(), {6, 4}), xent::view(t.data(), {6}), o);
  n = xent::needs_of(p, true);
  EXPECT_EQ(n.options, XENT_PLUGIN_OPTION_WEIGHT | XENT_PLUGIN_OPTION_LABEL_SMOOTHING |
                           XENT_PLUGIN_OPTION_IGNORE_INDEX);
  EXPECT_EQ(n.modes, XENT_PLUGIN_MODE_GRADIENT);
  o.ignore_index = 9;  // no target equals it
  p = xent::make_problem(xent::view(x.data(), {6, 4}), xent::view(t.data(), {6}), o);
  EXPECT_EQ(xent::needs_of(p, false).options & XENT_PLUGIN_OPTION_IGNORE_INDEX, 0u);

  // A rows-only declaration lacks what this call needs, in words.
  const xent_plugin d = declaring();
  xent::capabilities decl{d.layouts, d.targets, d.options, d.reductions, d.modes, d.dtypes};
  const auto missing = decl.missing(n);
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(*missing, "weights, ignore_index, label smoothing, reduction sum");
  // One position is covered by rows (sent as (1, C)); dense rows by any strides.
  xent::capabilities single;
  single.layouts = XENT_PLUGIN_LAYOUT_SINGLE;
  EXPECT_FALSE(decl.missing(single).has_value());
  xent::capabilities strided_only;
  strided_only.layouts = XENT_PLUGIN_LAYOUT_STRIDED;
  xent::capabilities rows;
  rows.layouts = XENT_PLUGIN_LAYOUT_ROWS;
  EXPECT_FALSE(strided_only.missing(rows).has_value());
  EXPECT_EQ(rows.missing(strided_only).value_or(""), "strided rows");
  EXPECT_FALSE(xent::capabilities::all().missing(n).has_value());
}

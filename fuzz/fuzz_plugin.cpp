// Fuzzes the plug-in descriptor checks (xent::plugins::validate_descriptor)
// with descriptors built from the input: abi_version, struct_size, tier, the
// thread flag, null or present entry points, name/description bytes, and
// the appended capability fields (struct_size with or without them).
// The strings live in buffers exactly one byte longer than the checks may
// read (max length + 1), filled from the input with or without a NUL, so
// AddressSanitizer catches a check that reads past its bound. An accepted
// descriptor must satisfy what the checks promise; a rejected one must get an
// xent::error naming the plug-in.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "xent/error.hpp"
#include "xent/kernel/capabilities.hpp"
#include "xent/kernel/plugin.h"
#include "xent/plugin_loader.hpp"

namespace {

#define FUZZ_ASSERT(cond, what)                                                     \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "fuzz_plugin: assertion failed: %s: %s\n", #cond, what); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

int32_t fwd(const DLTensor*, const DLTensor*, const DLTensor*, const xent_plugin_options*, char*, size_t) {
  return 0;
}
int32_t fwd_bwd(const DLTensor*, const DLTensor*, const DLTensor*, const DLTensor*, const DLTensor*,
                const xent_plugin_options*, char*, size_t) {
  return 0;
}

// A string of at most `cap` bytes from the input in a buffer of cap + 1
// bytes; terminated only when the input says so.
std::unique_ptr<char[]> fuzz_string(FuzzedDataProvider& in, std::size_t cap) {
  std::unique_ptr<char[]> buf(new char[cap + 1]);
  const std::string s = in.ConsumeRandomLengthString(cap + 1);
  std::memset(buf.get(), 'x', cap + 1);
  std::memcpy(buf.get(), s.data(), s.size());
  if (s.size() <= cap && in.ConsumeIntegral<std::uint8_t>() < 224) buf[s.size()] = '\0';
  return buf;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const auto flags = in.ConsumeIntegral<std::uint8_t>();
  xent_plugin d{};
  d.abi_version = flags & 1          ? in.ConsumeIntegral<std::uint32_t>()
                  : in.ConsumeBool() ? XENT_PLUGIN_ABI_VERSION_OLDEST
                                     : XENT_PLUGIN_ABI_VERSION;
  d.struct_size = flags & 2 ? in.ConsumeIntegral<std::uint32_t>()
                  : in.ConsumeBool() ? static_cast<std::uint32_t>(sizeof(xent_plugin))
                                     : static_cast<std::uint32_t>(XENT_PLUGIN_SIZE_WITHOUT_CAPABILITIES);
  // Capabilities: mostly valid-looking masks (small values), sometimes any bits.
  const auto cap_flags = in.ConsumeIntegral<std::uint8_t>();
  auto mask = [&](int bit) {
    return cap_flags & (1 << bit) ? in.ConsumeIntegral<std::uint32_t>() : in.ConsumeIntegralInRange<std::uint32_t>(0, 15);
  };
  d.declared = cap_flags & 0x80 ? in.ConsumeIntegral<std::uint32_t>() : in.ConsumeBool();
  d.layouts = mask(0);
  d.targets = mask(1);
  d.options = mask(2);
  d.reductions = mask(3);
  d.modes = mask(4);
  d.dtypes = mask(5);
  d.reserved_capabilities = cap_flags & 0x40 ? in.ConsumeIntegral<std::uint32_t>() : 0;
  d.tier = flags & 4 ? in.ConsumeIntegral<std::int32_t>() : in.ConsumeIntegralInRange<std::int32_t>(0, 4);
  d.thread_count_independent = flags & 8 ? in.ConsumeIntegral<std::int32_t>() : in.ConsumeBool();
  d.forward = flags & 16 ? nullptr : fwd;
  d.forward_backward = flags & 32 ? nullptr : fwd_bwd;
  const auto name = fuzz_string(in, xent::plugins::max_name_length);
  const auto description = fuzz_string(in, xent::plugins::max_description_length);
  d.name = flags & 64 ? nullptr : name.get();
  d.description = flags & 128 ? nullptr : description.get();
  const xent_plugin* pd = in.ConsumeIntegral<std::uint8_t>() == 0 ? nullptr : &d;
  try {
    xent::plugins::validate_descriptor(pd, "fuzz.so");
  } catch (const xent::error& e) {
    const std::string m = e.what();
    FUZZ_ASSERT(e.argument() == "plugin", m.c_str());
    FUZZ_ASSERT(m.rfind("plug-in fuzz.so: ", 0) == 0, m.c_str());
    return 0;
  }
  // Accepted: the promises of validate_descriptor.
  FUZZ_ASSERT(pd && d.abi_version >= XENT_PLUGIN_ABI_VERSION_OLDEST && d.abi_version <= XENT_PLUGIN_ABI_VERSION &&
                  (d.struct_size == XENT_PLUGIN_SIZE_WITHOUT_CAPABILITIES || d.struct_size >= sizeof(xent_plugin)),
              "header");
  if (d.struct_size >= sizeof(xent_plugin) && d.declared != 0) {
    const xent::capabilities all = xent::capabilities::all();
    FUZZ_ASSERT(d.declared == 1 && d.reserved_capabilities == 0, "declared flag");
    FUZZ_ASSERT(d.layouts && !(d.layouts & ~all.layouts) && d.targets && !(d.targets & ~all.targets) &&
                    !(d.options & ~all.options) && d.reductions && !(d.reductions & ~all.reductions) &&
                    !(d.modes & ~all.modes) && (d.dtypes & XENT_PLUGIN_DTYPE_FLOAT32) && !(d.dtypes & ~all.dtypes),
                "capability masks");
    FUZZ_ASSERT(!(d.modes & XENT_PLUGIN_MODE_IN_PLACE) || (d.modes & XENT_PLUGIN_MODE_GRADIENT), "in-place mode");
    FUZZ_ASSERT(d.abi_version != 1 || d.dtypes == XENT_PLUGIN_DTYPE_FLOAT32, "ABI 1 declares float32 only");
  }
  FUZZ_ASSERT(d.forward && d.forward_backward, "entry points");
  FUZZ_ASSERT(d.tier >= 0 && d.tier <= 4 && (d.thread_count_independent == 0 || d.thread_count_independent == 1),
              "tier or flag");
  const std::size_t n = strnlen(d.name, xent::plugins::max_name_length + 1);
  FUZZ_ASSERT(n >= 1 && n <= xent::plugins::max_name_length, "name length");
  for (std::size_t i = 0; i < n; ++i) {
    const char c = d.name[i];
    FUZZ_ASSERT((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '+' || c == '-',
                "name character");
  }
  if (d.description) {
    const std::size_t m = strnlen(d.description, xent::plugins::max_description_length + 1);
    FUZZ_ASSERT(m <= xent::plugins::max_description_length, "description length");
    for (std::size_t i = 0; i < m; ++i) {
      const auto c = static_cast<unsigned char>(d.description[i]);
      FUZZ_ASSERT(c >= 0x20 && c != 0x7f, "description character");
    }
  }
  return 0;
}

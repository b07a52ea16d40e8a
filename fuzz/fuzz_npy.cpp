// Fuzzes the hand-written .npy reader (cli/npy.cpp) on arbitrary bytes.
// Contract: parse() returns a consistent array or throws npy_error with a
// message that names the file; nothing else escapes (libFuzzer reports any
// other exception, crash, leak or undefined behaviour). A parsed array
// survives serialize() -> parse() unchanged, and its typed accessor works.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "npy.hpp"

#define FUZZ_ASSERT(cond, what)                                                  \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "fuzz_npy: assertion failed: %s: %s\n", #cond, what); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace xent::npy;
  array a;
  try {
    a = parse(std::span<const unsigned char>(data, size), "fuzz.npy");
  } catch (const npy_error& e) {
    const std::string m = e.what();
    FUZZ_ASSERT(m.rfind("fuzz.npy: ", 0) == 0, m.c_str());
    FUZZ_ASSERT(m.find('\n') == std::string::npos, m.c_str());
    return 0;
  }
  FUZZ_ASSERT(a.shape.size() <= 32, "more than 32 dimensions");
  const std::int64_t n = a.numel();  // UBSan: must not overflow
  FUZZ_ASSERT(n >= 0, "negative element count");
  FUZZ_ASSERT(static_cast<std::uint64_t>(n) * size_of(a.type) == a.bytes.size(), "bytes do not match the shape");
  const auto again = parse(serialize(a), "round-trip.npy");
  FUZZ_ASSERT(again.type == a.type && again.shape == a.shape && again.bytes == a.bytes, "round trip");
  switch (a.type) {
    case dtype::f32: FUZZ_ASSERT(a.as_f32().size() == static_cast<std::size_t>(n), "as_f32"); break;
    case dtype::f64: FUZZ_ASSERT(a.as_f64().size() == static_cast<std::size_t>(n), "as_f64"); break;
    case dtype::i32: FUZZ_ASSERT(a.as_i32().size() == static_cast<std::size_t>(n), "as_i32"); break;
    case dtype::i64: FUZZ_ASSERT(a.as_i64().size() == static_cast<std::size_t>(n), "as_i64"); break;
    case dtype::b1: break;
    case dtype::f16: FUZZ_ASSERT(a.f16_as_f32().size() == static_cast<std::size_t>(n), "f16_as_f32"); break;
    case dtype::u16: FUZZ_ASSERT(a.bf16_bits_as_f32().size() == static_cast<std::size_t>(n), "bf16"); break;
  }
  return 0;
}

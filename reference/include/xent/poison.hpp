// Poisoned outputs: every output buffer a verification harness hands to a
// kernel (property suite, accuracy sweep, `xent verify`, golden tests, the
// bench's pre-timing check) is filled first with a sentinel that no kernel
// computes, and every element must come back with other bits. A kernel that
// forgets a write (say the zero gradient of an ignored row, trusting a zeroed
// buffer) is then caught, as it would be wrong on a `torch.empty` buffer or
// reused memory.
//
// The sentinel changes from call to call and rotates through kinds that catch
// different faults:
//   - NaN payloads (a signalling NaN, a negative quiet NaN, each with a random
//     payload): arithmetic never creates them (it gives the default NaN or
//     passes an input's NaN on), and a kernel that accumulates into its output
//     (`out += ...`) turns a finite result into NaN;
//   - large garbage of either sign (|v| in [2^125, 2^127), random mantissa):
//     a kernel that combines with what it finds (`max(out, v)`, `out += v`)
//     returns a wrong finite value instead of a NaN that might match a NaN
//     result.
// An element is "unwritten" when its bits equal the sentinel's. A legitimate
// result can only share them by a 2^-20 (garbage) coincidence in the binade
// of the logits' extremes, never for NaN payloads.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace xent::poison {

struct sentinel {
  std::uint32_t bits = 0;
  float value() const { return std::bit_cast<float>(bits); }
  // "NaN 0x7fa3c5e1" or "-1.70141173e+38 (0xfeffc5e1)".
  std::string describe() const;
};

// The next sentinel of this process (thread-safe; the sequence is fixed, so
// a rerun with the same calls sees the same sentinels).
sentinel next();

void fill(std::span<float> buf, sentinel s);
// A fresh sentinel, filled in; returns it.
inline sentinel fill(std::span<float> buf) {
  const sentinel s = next();
  fill(buf, s);
  return s;
}

// Indices whose bits are still the sentinel's.
std::vector<std::size_t> unwritten(std::span<const float> buf, sentinel s);

// "3 of 15 gradient elements never written (still the sentinel NaN 0x7fa3c5e1): [0, 1], [2, 4], [2, 5]"
// `name_of` turns an index into its position text (default "[i]"); lists at
// most `max_listed` of them. Empty when every element was written.
std::string unwritten_message(const std::string& what, std::span<const float> buf, sentinel s,
                              const std::function<std::string(std::size_t)>& name_of = {},
                              std::size_t max_listed = 5);

}  // namespace xent::poison

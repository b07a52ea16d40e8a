#include "xent/poison.hpp"

#include <atomic>
#include <cstdio>

namespace xent::poison {
namespace {

// SplitMix64: a well-mixed word from a counter.
std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

constexpr std::uint32_t exponent_mask = 0x7f800000u, quiet_bit = 0x00400000u, sign_bit = 0x80000000u;

bool is_nan(std::uint32_t bits) { return (bits & exponent_mask) == exponent_mask && (bits & 0x007fffffu); }

}  // namespace

std::string sentinel::describe() const {
  char b[64];
  if (is_nan(bits)) std::snprintf(b, sizeof b, "NaN 0x%08x", bits);
  else std::snprintf(b, sizeof b, "%.9g (0x%08x)", static_cast<double>(value()), bits);
  return b;
}

sentinel next() {
  static std::atomic<std::uint64_t> counter{0};
  const std::uint64_t k = counter.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t r = mix(k);
  // Payload bits, never all zero; and never the bits of the default NaN.
  const auto payload = static_cast<std::uint32_t>(r >> 32) & 0x003fffffu;
  sentinel s;
  switch (k % 4) {
    case 0:  // signalling NaN (quiet bit clear, payload non-zero)
      s.bits = exponent_mask | (payload | 0x00012345u);
      break;
    case 1:  // negative quiet NaN with a payload
      s.bits = sign_bit | exponent_mask | quiet_bit | (payload | 0x00054321u);
      break;
    default: {  // garbage of either sign: exponent 125 or 126 (|v| in [2^125, 2^127))
      const std::uint32_t exponent = (125u + 127u + static_cast<std::uint32_t>(r & 1u)) << 23;
      const std::uint32_t sign = (k % 4 == 2) ? sign_bit : 0u;
      s.bits = sign | exponent | ((static_cast<std::uint32_t>(r >> 8) & 0x007fffffu) | 0x00000101u);
      break;
    }
  }
  return s;
}

void fill(std::span<float> buf, sentinel s) {
  const float v = s.value();
  for (float& x : buf) x = v;
}

std::vector<std::size_t> unwritten(std::span<const float> buf, sentinel s) {
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < buf.size(); ++i)
    if (std::bit_cast<std::uint32_t>(buf[i]) == s.bits) idx.push_back(i);
  return idx;
}

std::string unwritten_message(const std::string& what, std::span<const float> buf, sentinel s,
                              const std::function<std::string(std::size_t)>& name_of, std::size_t max_listed) {
  const std::vector<std::size_t> idx = unwritten(buf, s);
  if (idx.empty()) return {};
  std::string m = std::to_string(idx.size());
  m += " of ";
  m += std::to_string(buf.size());
  m += ' ';
  m += what;
  m += " never written (still the sentinel ";
  m += s.describe();
  m += "):";
  for (std::size_t i = 0; i < idx.size() && i < max_listed; ++i) {
    m += i ? ", " : " ";
    if (name_of) {
      m += name_of(idx[i]);
    } else {
      m += '[';
      m += std::to_string(idx[i]);
      m += ']';
    }
  }
  if (idx.size() > max_listed) m += ", …";
  return m;
}

}  // namespace xent::poison

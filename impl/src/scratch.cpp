// Scratch kept by every thread that ran a kernel, between calls: a fresh
// multi-megabyte vector per call pays its page faults every time, which costs
// more than the kernel itself for (N, C, d) inputs with small C, and a fresh
// row buffer per row would do the same for every row of a fused call.
//
// A buffer that cannot be allocated is an xent::error naming it and its size.
// Kernels take all their scratch before they write any output (simd_row.hpp
// row_engine::reserve, the loops' reserve step), so such an error leaves the
// outputs untouched.
#include <cstdint>
#include <limits>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "scratch.hpp"
#include "xent/cross_entropy.hpp"
#include "xent/error.hpp"

namespace xent {
namespace {

struct thread_scratch {
  std::vector<double> positions[2];  // position_scratch
  std::vector<float> rows[simd::kRowSlots];  // simd::row_scratch
  std::vector<double> stable_rows[4];        // stable_row_scratch
};

std::mutex registry_mutex;
std::set<thread_scratch*>& registry() {
  static std::set<thread_scratch*> all;
  return all;
}

thread_scratch& mine() {
  struct holder {
    thread_scratch s;
    holder() {
      const std::lock_guard<std::mutex> lock(registry_mutex);
      registry().insert(&s);
    }
    ~holder() {
      const std::lock_guard<std::mutex> lock(registry_mutex);
      registry().erase(&s);
    }
  };
  thread_local holder h;
  return h.s;
}

const char* const position_names[2] = {"the per-position losses", "the per-position weights"};
const char* const row_names[simd::kRowSlots] = {
    "a gathered logits row", "a gathered target row", "a gradient row",
    "a row's stored exponentials (values)", "a row's stored exponentials (rounding errors)",
    "a row's block maxima", "a row's stored exponentials (second set)", "a row's block maxima (second set)"};
const char* const stable_row_names[4] = {"a row's exponentials (double)",
                                         "a row's exponentials (double-double)",
                                         "a row's undecided gradient entries (indices)",
                                         "a row's exponentials (double, libm)"};

std::size_t held_bytes(const thread_scratch& t) {
  std::size_t bytes = 0;
  for (const auto& b : t.positions) bytes += b.capacity() * sizeof(double);
  for (const auto& b : t.rows) bytes += b.capacity() * sizeof(float);
  for (const auto& b : t.stable_rows) bytes += b.capacity() * sizeof(double);
  return bytes;
}

[[noreturn]] void allocation_failed(const char* what, const char* type, std::size_t size,
                                    std::int64_t n) {
  const auto un = static_cast<unsigned long long>(n);
  const std::string bytes = un > std::numeric_limits<std::size_t>::max() / size
                                ? "more than " + std::to_string(std::numeric_limits<std::size_t>::max()) + " bytes"
                                : std::to_string(un * size) + " bytes";
  throw error("scratch", "out of memory: cannot allocate " + bytes + " of scratch for " + what + " (" +
                             std::to_string(n) + " " + type + "s; this thread holds " +
                             std::to_string(held_bytes(mine())) +
                             " bytes of scratch already, xent::release_scratch() frees it)");
}

// Exactly n elements (resize alone may take twice the old size), grown only.
template <class T>
T* grown(std::vector<T>& b, std::int64_t n, const char* what, const char* type) {
  if (b.size() < static_cast<std::size_t>(n)) {
    try {
      b.reserve(static_cast<std::size_t>(n));
    } catch (const std::bad_alloc&) {
      allocation_failed(what, type, sizeof(T), n);
    } catch (const std::length_error&) {
      allocation_failed(what, type, sizeof(T), n);
    }
    b.resize(static_cast<std::size_t>(n));
  }
  return b.data();
}

}  // namespace

double* position_scratch(int slot, std::int64_t n) {
  return grown(mine().positions[slot], n, position_names[slot], "double");
}

double* stable_row_scratch(int slot, std::int64_t n) {
  return grown(mine().stable_rows[slot], n, stable_row_names[slot], "double");
}

namespace simd {
float* row_scratch(int slot, std::int64_t n) { return grown(mine().rows[slot], n, row_names[slot], "float"); }
}  // namespace simd

std::size_t scratch_bytes() {
  const std::lock_guard<std::mutex> lock(registry_mutex);
  std::size_t bytes = 0;
  for (const thread_scratch* t : registry()) bytes += held_bytes(*t);
  return bytes;
}

void release_scratch() {
  const std::lock_guard<std::mutex> lock(registry_mutex);
  for (thread_scratch* t : registry()) {
    for (auto& b : t->positions) std::vector<double>().swap(b);
    for (auto& b : t->rows) std::vector<float>().swap(b);
    for (auto& b : t->stable_rows) std::vector<double>().swap(b);
  }
}

}  // namespace xent

// Scratch kept by every thread that ran a kernel, between calls: a fresh
// multi-megabyte vector per call pays its page faults every time, which costs
// more than the kernel itself for (N, C, d) inputs with small C, and a fresh
// row buffer per row would do the same for every row of a fused call.
#include <cstdint>
#include <mutex>
#include <set>
#include <vector>

#include "row_driver.hpp"
#include "simd_row.hpp"
#include "xent/cross_entropy.hpp"

namespace xent {
namespace {

struct thread_scratch {
  std::vector<double> positions[2];  // position_scratch
  std::vector<float> rows[simd::kRowSlots];  // simd::row_scratch
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

template <class T>
T* grown(std::vector<T>& b, std::int64_t n) {
  if (b.size() < static_cast<std::size_t>(n)) b.resize(static_cast<std::size_t>(n));
  return b.data();
}

}  // namespace

double* position_scratch(int slot, std::int64_t n) { return grown(mine().positions[slot], n); }

namespace simd {
float* row_scratch(int slot, std::int64_t n) { return grown(mine().rows[slot], n); }
}  // namespace simd

std::size_t scratch_bytes() {
  const std::lock_guard<std::mutex> lock(registry_mutex);
  std::size_t bytes = 0;
  for (const thread_scratch* t : registry()) {
    for (const auto& b : t->positions) bytes += b.capacity() * sizeof(double);
    for (const auto& b : t->rows) bytes += b.capacity() * sizeof(float);
  }
  return bytes;
}

void release_scratch() {
  const std::lock_guard<std::mutex> lock(registry_mutex);
  for (thread_scratch* t : registry()) {
    for (auto& b : t->positions) std::vector<double>().swap(b);
    for (auto& b : t->rows) std::vector<float>().swap(b);
  }
}

}  // namespace xent

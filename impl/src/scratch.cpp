// Per-position scratch kept on the calling thread between calls: a fresh
// multi-megabyte vector per call pays its page faults every time, which costs
// more than the kernel itself for (N, C, d) inputs with small C.
#include <cstdint>
#include <vector>

#include "row_driver.hpp"
#include "xent/cross_entropy.hpp"

namespace xent {
namespace {

std::vector<double>* buffers() {
  thread_local std::vector<double> b[2];
  return b;
}

}  // namespace

double* position_scratch(int slot, std::int64_t n) {
  std::vector<double>& b = buffers()[slot];
  if (b.size() < static_cast<std::size_t>(n)) b.resize(static_cast<std::size_t>(n));
  return b.data();
}

std::size_t scratch_bytes() {
  return (buffers()[0].capacity() + buffers()[1].capacity()) * sizeof(double);
}

void release_scratch() {
  for (int i = 0; i < 2; ++i) std::vector<double>().swap(buffers()[i]);
}

}  // namespace xent

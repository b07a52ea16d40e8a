// The compute floor of a float32 cross-entropy (compute_floor.cpp): max scan,
// value-only e^(x - m), float sum, on L1-resident rows. Its rate, with the
// memory rooflines of probes.hpp, gives every case's CE roofline:
//   CE roofline (elements/s) = min(memory roofline / bytes per element,
//                                  floor rate at the same thread count).
#pragma once

#include <cstddef>
#include <cstdint>

namespace xent_bench {

// One row's max + sum of e^(x - m) on the dispatched Highway target (n a
// multiple of 64).
float compute_floor_row(const float* x, std::size_t n);

// Elements per second over `threads` OpenMP threads, each on its own
// L1-resident row for about `seconds`.
double compute_floor_pass(int threads, double seconds);

// The best rate recorded for `threads` (by the probe benchmarks), or a short
// measurement made on the spot, on the best Highway target (target 0) or
// pinned to `target`.
void record_floor(int threads, double elements_per_second, std::int64_t target = 0);
double compute_floor(int threads, std::int64_t target = 0);

}  // namespace xent_bench

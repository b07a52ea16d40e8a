// Per-thread scratch pools, kept between calls (scratch.cpp; counted by
// xent::scratch_bytes, freed by xent::release_scratch). Contents are
// unspecified: callers write every element they read.
#pragma once

#include <cstdint>

namespace xent {

// n doubles per position. Slot 0: losses, slot 1: weights.
double* position_scratch(int slot, std::int64_t n);

// The stable kernel's row buffers: slot 0 the exponentials (double), slot 1
// their double-double form (2n doubles), slot 2 the indices of gradient
// entries the vector rounding test left undecided (n int64 in n doubles),
// slot 3 the exponentials again from libm (their retry).
double* stable_row_scratch(int slot, std::int64_t n);

namespace simd {
// The simd and openmp kernels' row buffers (simd_row.hpp). Slots:
// kRowV2, kRowBlockMax2: the second set of a thread whose previous row's
// gradient is still being written from the first (pending_grad).
enum : int { kRowX, kRowQ, kRowG, kRowV, kRowE, kRowBlockMax, kRowV2, kRowBlockMax2, kRowSlots };
float* row_scratch(int slot, std::int64_t n);
}  // namespace simd

}  // namespace xent

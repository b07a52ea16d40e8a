// The OpenMP driver of the row and column passes (openmp_kernel.cpp), shared
// by `openmp` (fast numerics) and `throughput` (relaxed numerics).
#pragma once

#include "xent/kernel/problem.hpp"

namespace xent {
namespace simd {
enum class numerics;  // simd_row.hpp
}

// Loss (and gradient when with_grad) on omp_get_max_threads() threads;
// bitwise the same result for any thread count.
void run_openmp(const problem& pr, bool with_grad, simd::numerics num);

}  // namespace xent

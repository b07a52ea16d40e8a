// Built-in kernels, one source file each; the registry lists them in this order.
#pragma once

#include <memory>
#include <vector>

#include "xent/kernel/implementation.hpp"
#include "xent/kernel/problem.hpp"

namespace xent {

// float64 logits in simd, openmp and throughput (docs/dtypes.md): stable's
// double-double row model (exponentials in double lanes), each result
// rounded once without stable's rounding tests, rows on `threads` OpenMP
// threads (1: serial); the same bits for any thread count (stable_kernel.cpp).
void run_float64_rounded_once(const problem& pr, bool with_grad, int threads);

std::unique_ptr<implementation> make_stable_kernel();
std::unique_ptr<implementation> make_naive_kernel();
std::unique_ptr<implementation> make_simd_kernel();
std::unique_ptr<implementation> make_openmp_kernel();
std::unique_ptr<implementation> make_throughput_kernel();
#ifdef XENT_HAVE_MPI
std::unique_ptr<implementation> make_mpi_kernel();  // mpi_kernel.cpp (XENT_WITH_MPI)
#endif

inline std::vector<std::unique_ptr<implementation>> make_builtin_kernels() {
  std::vector<std::unique_ptr<implementation>> v;
  v.push_back(make_stable_kernel());
  v.push_back(make_naive_kernel());
  v.push_back(make_simd_kernel());
  v.push_back(make_openmp_kernel());
  v.push_back(make_throughput_kernel());
#ifdef XENT_HAVE_MPI
  v.push_back(make_mpi_kernel());
#endif
  return v;
}

}  // namespace xent

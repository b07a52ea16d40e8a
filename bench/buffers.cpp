#include "buffers.hpp"

#include <omp.h>
#include <sys/mman.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

namespace xent_bench {
namespace {

constexpr std::size_t huge_page = std::size_t{2} << 20;

std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in (0, 1], never 0 (log below).
double unit(std::uint64_t r) { return (static_cast<double>(r >> 11) + 1.0) * 0x1.0p-53; }

}  // namespace

template <class T>
buffer<T>::buffer(std::size_t n) : n_(n) {
  const std::size_t bytes = (n * sizeof(T) + huge_page - 1) / huge_page * huge_page;
  void* p = std::aligned_alloc(huge_page, bytes ? bytes : huge_page);
  if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);
#endif
  char* c = static_cast<char*>(p);
  // First touch with the same static split the kernels use.
#pragma omp parallel for schedule(static) num_threads(omp_get_num_procs())
  for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(bytes / huge_page); ++i)
    std::memset(c + static_cast<std::size_t>(i) * huge_page, 0, huge_page);
  p_.reset(static_cast<T*>(p));
}

template <class T>
void buffer<T>::deleter::operator()(T* p) const {
  std::free(p);
}

template class buffer<float>;
template class buffer<std::int64_t>;
template class buffer<double>;
template class buffer<std::uint16_t>;

void fill_normal(float* x, std::size_t n, std::uint64_t seed, float sigma) {
  const std::uint64_t key = splitmix64(seed);
  const auto pairs = static_cast<std::ptrdiff_t>((n + 1) / 2);
#pragma omp parallel for schedule(static) num_threads(omp_get_num_procs())
  for (std::ptrdiff_t i = 0; i < pairs; ++i) {
    // Box-Muller on two counter-based uniforms.
    const auto k = static_cast<std::uint64_t>(i);
    const double r = std::sqrt(-2.0 * std::log(unit(splitmix64(key ^ (2 * k)))));
    const double a = 6.283185307179586 * unit(splitmix64(key ^ (2 * k + 1)));
    const std::size_t j = 2 * static_cast<std::size_t>(i);
    x[j] = static_cast<float>(sigma * r * std::cos(a));
    if (j + 1 < n) x[j + 1] = static_cast<float>(sigma * r * std::sin(a));
  }
}

void fill_targets(std::int64_t* t, std::size_t n, std::int64_t C, std::uint64_t seed) {
  const std::uint64_t key = splitmix64(~seed);
#pragma omp parallel for schedule(static) num_threads(omp_get_num_procs())
  for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(n); ++i) {
    const std::uint64_t r = splitmix64(key ^ static_cast<std::uint64_t>(i)) >> 32;
    t[i] = static_cast<std::int64_t>((r * static_cast<std::uint64_t>(C)) >> 32);
  }
}

}  // namespace xent_bench

// Fixed-order pairwise summation in double: accurate (error grows with log n,
// not n) and the order depends only on n, never on how the values were
// produced -- so reductions are identical for any thread count.
#pragma once

#include <cstddef>

namespace xent {

inline double pairwise_sum(const double* v, std::size_t n) {
  if (n <= 8) {
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += v[i];
    return s;
  }
  const std::size_t half = n / 2;
  return pairwise_sum(v, half) + pairwise_sum(v + half, n - half);
}

}  // namespace xent

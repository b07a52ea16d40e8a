// How often `stable` needed its fallbacks (docs/correct_rounding.md): counts
// of the calling thread since it started or since the last reset.
#pragma once

#include <cstdint>

namespace xent {

struct rounding_statistics {
  // float32 results rounded: losses, gradient entries, reductions.
  std::uint64_t results = 0;
  // Results whose float64 evaluation was too close to a rounding boundary
  // for its error bound and were recomputed (in double-double, or exactly).
  std::uint64_t retried = 0;
  // Of those, results decided exactly (expansion arithmetic): after the
  // double-double interval still held a boundary, or at once where the row
  // is rational (every logit its maximum or -inf: its entries' exact ties
  // and zeros are what the float64 test leaves; docs/correct_rounding.md §5).
  std::uint64_t exact = 0;
  // Results still undecided after every test: rounded as the double-double
  // value, RN(hi + lo) (docs/correct_rounding.md §5, §6).
  std::uint64_t unresolved = 0;
};

rounding_statistics stable_rounding_statistics();
void reset_stable_rounding_statistics();

}  // namespace xent

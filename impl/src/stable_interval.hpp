// float64's last resort in `stable` (docs/correct_rounding.md §8): a result
// that neither the double-double test nor the exact split decides -- one in
// or near float64's subnormal range, where double-double has no relative
// accuracy left, or one that cancels below it (logits a few subnormal units
// apart) -- is evaluated in interval arithmetic (MPFI over MPFR: every
// operation's result encloses the exact one) at 128, 256, ... 4096 bits,
// until both ends of the interval round to the same float64 (Ziv's strategy
// with a rigorous enclosure). An exact float64 midpoint is never decided
// this way: the exact split handles those first.
#pragma once

#include <cstdint>
#include <memory>

#include "xent/kernel/problem.hpp"

namespace xent::stable_interval {

class evaluator {
 public:
  explicit evaluator(const problem& pr);
  ~evaluator();
  evaluator(const evaluator&) = delete;
  evaluator& operator=(const evaluator&) = delete;

  // RN to float64 of the loss of counted position p, of gradient entry
  // (p, j) for the given upstream value, and of the mean/sum; false when
  // 4096 bits leave it undecided. x: row p's logits, contiguous (a copy
  // where an in-place gradient overwrites them); the reduction reads the
  // problem's logits.
  bool loss(std::int64_t p, const double* x, double& out) const;
  bool gradient(std::int64_t p, const double* x, std::int64_t j, double upstream, double& out) const;
  bool reduction(double& out) const;

 private:
  struct state;
  std::unique_ptr<state> s_;
};

}  // namespace xent::stable_interval

// The bound each accuracy tier promises, per quantity (docs/design.md §3):
//
// | tier     | loss (per position)          | each gradient entry          | mean/sum |
// |----------|------------------------------|------------------------------|----------|
// | correctly_rounded | RN(reference)       | RN(reference)                | RN(ref.) |
// | accurate | 0.501 ulp                    | 1 ulp                        | 1 ulp    |
// | fast     | 2 ulp                        | 2 ulp                        | 1 ulp    |
// | relaxed  | 256 ulp                      | 256 ulp                      | 256 ulp  |
// | standard | |y-r| <= 4u max(1,|lse|) K   | |y-r| <= 4u max(1,|lse|) K S | 2 ulp    |
//   (standard: plus one ulp of the result for its own rounding; reductions
//    also carry the per-sample bounds: + Σ_p bound_p / D)
// | naive    | |y-r| <= 2u (C+8)(1+G) K     | recorded, no bound           | recorded |
//
// correctly_rounded (docs/correct_rounding.md): y == RN(r) for every loss,
// gradient entry and reduction, NaN matching NaN; no cancellation allowance.
// ulps are those of the float32 result against the multiprecision reference
// (xent::ref::ulp_error). "0.5 ulp + tiny" is 0.501: a kernel that computes in
// float64 and rounds once to float32 is off by at most 0.5 ulp plus the float64
// error (2^-53 relative per operation, ~C·2^-53 for row sums, i.e. < 1e-3
// float ulp for C <= 256000); 0.501 leaves room for that double rounding and
// nothing else.
//
// Absolute criteria (tiers whose loss is computed as lse - x_t in float32,
// e.g. PyTorch): u = 2^-24; lse is the row's log-sum-exp; K is the row's
// coefficient mass Σ_c |w_c q'_c| (index targets: (1-ε)|w_t| + (ε/C) Σ_c |w_c|),
// which multiplies every log-probability error; S = |upstream / D| is the
// gradient's scale. Each gradient entry is S (p_j Σ w q' - w_j q'_j); p_j has
// an absolute error of about u |lse| when computed as exp(x_j - lse), so
// 4u max(1,|lse|) K S bounds it absolutely (entries far below it are not
// checked relatively: that is what "absolute criterion" means).
// naive (float32 textbook, no shift): the float32 sum of C exponentials has a
// relative error up to (C-1)u, log turns it into an absolute one, -log p_c
// adds u·G with G = max over classes with non-zero coefficient of lse - x_c,
// and the float32 sum over classes of the smoothed terms adds up to C·u·G·K:
// 2u (C+8)(1+G) K covers the three with a factor 2 to spare.
// Only inside its declared domain; gradient and reductions carry no promise
// (the table's "—"), so their errors are printed, never asserted.
#pragma once

#include <cstdint>
#include <string>

#include "xent/kernel/implementation.hpp"

namespace xent::props {

enum class quantity { loss, gradient, reduction };
std::string to_string(quantity q);

// What the absolute criteria need to know about the row (or the reduction).
struct row_context {
  double lse = 0.0;    // log Σ_c exp x_c
  double gap = 0.0;    // max over classes with non-zero coefficient of lse - x_c
  double coeff = 1.0;  // K
  double scale = 1.0;  // S (gradient only)
  std::int64_t classes = 1;
  // The unit roundoff of the computation's dtype (2^-24 for float32; 2^-8
  // bfloat16, 2^-11 float16): the absolute criteria scale with it.
  double unit = 0x1p-24;
};

struct bound {
  // rounded: the result must equal the reference rounded once to float32
  // (value 0.5: the ulp error that implies, for tolerances built from it).
  enum kind_t { ulps, absolute, rounded, none } kind = none;
  double value = 0.0;  // ulps, or the absolute tolerance
  std::string describe() const;
};

bound bound_for(tier t, quantity q, const row_context& ctx);

inline constexpr double unit_roundoff = 0x1p-24;

}  // namespace xent::props

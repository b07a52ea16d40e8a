// Running a kernel on a test case, the reference on the same case, and the
// comparison of the two under the kernel's tier.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "case.hpp"
#include "tiers.hpp"
#include "xent/reference.hpp"

namespace xent::props {

struct outputs {
  // Values of the case's dtypes (out_type, type), as doubles (exact).
  std::vector<double> loss;  // `none`: one per position; mean/sum: one value
  std::vector<double> grad;  // positions x C in logical (p, c) order; empty for forward
};

// Through the front door (validation included), with `impl`. The output
// buffers are poisoned first (xent/poison.hpp): an element the kernel leaves
// unwritten throws unwritten_output, which fails the property.
outputs run(const implementation& impl, const test_case& c, bool with_grad);
// forward_backward with the gradient written over (a copy of) the logits:
// grad is the logits view itself, so nothing can be poisoned there and a
// kernel that writes a row's gradient before it has read the row is caught by
// comparing with run().
outputs run_in_place(const implementation& impl, const test_case& c);
// The same bits in every loss and gradient element (NaN matches NaN, whatever
// its payload): how an in-place gradient is compared with a separate one.
bool same_bits(const outputs& a, const outputs& b);

struct unwritten_output : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The validated problem without outputs (for outside_domain).
problem inspect(const test_case& c);
// The reference result (grad weighted by the case's upstream gradient).
ref::result reference(const test_case& c, bool with_grad);
// The same at a chosen working precision.
ref::result reference(const test_case& c, bool with_grad, unsigned bits);

// D of docs/design.md §2 (Σ weights of counted positions, positions, or 1).
double denominator(const test_case& c);
row_context context(const test_case& c, std::int64_t p);
// The gradient scale |upstream / D| at position p.
double grad_scale(const test_case& c, std::int64_t p);

// The spacing of float32 numbers at |y| (subnormal spacing at and below FLT_MIN).
double ulp_of(double y);
// The same for a floating dtype (f32, bf16, f16).
double ulp_of(double y, dtype t);

struct comparison {
  double ulps = 0.0;  // error against the reference in float32 ulps
  bool ok = true;     // within the tier's bound (true when the tier has none)
  bound limit;
};
// `cancellation`: an absolute error the tier's ulp bound is allowed on top
// (gradient entries that are a true difference of two terms; see
// cancellation_allowance), 0 for none.
// `type`: the result's dtype; ulps and roundings are that dtype's (values
// of 16-bit dtypes arrive widened to float32, exactly).
comparison compare(tier t, quantity q, double y, const ref::exact& r, const row_context& ctx,
                   double cancellation = 0.0, dtype type = dtype::f32);

// With label smoothing or probability targets each gradient entry is
// S (p_j A - b_j), b_j = w_j q'_j, A = Σ b: a difference of two terms that
// cancel where p_j is near b_j / A (the smoothed optimum). Evaluated in
// float64, the computed terms carry 2^-53 of their own size, so near exact
// cancellation no float64 kernel can promise ulps of the (tiny) result: the
// accurate and fast tiers allow 2^-50 S (C p_j A + |b_j|) absolute on top of
// their ulp bound there. Zero for index targets without smoothing (no
// difference is taken: docs/design.md §3's formulas avoid it).
double cancellation_allowance(const test_case& c, std::int64_t p, std::int64_t j,
                              const row_context& ctx);

// Tiers with absolute per-sample criteria (standard) carry them through the
// reduction: Σ_p bound_p / D on top of the reduction's ulp bound; 0 otherwise.
double reduction_allowance(tier t, const test_case& c, const std::vector<row_context>& ctx);

// Do two results of the same true value agree, if each is within the tier's
// bound? (metamorphic relations: no reference needed). Non-finite values must
// be identical; NaN matches NaN. `cancellation`: each side's allowance on top
// of the tier bound (cancellation_allowance).
bool agree(tier t, quantity q, double a, double b, const row_context& ctx, double cancellation = 0.0);

// Bound violations of one case, as readable lines.
struct findings {
  std::vector<std::string> failures;  // the first 20
  std::size_t count = 0;
  void fail(std::string s) {
    if (count++ < 20) failures.push_back(std::move(s));
  }
  bool ok() const { return count == 0; }
  std::string text(std::size_t max_lines = 6) const;
};

// Runs impl (forward, and forward_backward when with_grad) and compares
// every loss, the reduction and every gradient entry with the reference;
// records the worst errors in the tracker.
findings against_reference(const implementation& impl, const test_case& c, bool with_grad);

std::string fmt(double v);  // %.9g, or %.17g for a double that is not a float

}  // namespace xent::props

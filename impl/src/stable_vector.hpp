// The float64 common path of the `stable` kernel in Highway's double lanes
// (stable_vector.cpp, compiled once per instruction set and dispatched at
// run time): the row's exponentials and their compensated sum, and the
// gradient entries of index targets without smoothing with their rounding
// test. Every value comes with the rigorous error bound that the rounding
// test of docs/correct_rounding.md §1 needs; what a vector cannot decide is
// left to the kernel's scalar path, so the results are the same correctly
// rounded bits on every target.
#pragma once

#include <cstdint>

namespace xent::stable_vector {

// Relative error of the vector e^{-d} (d >= 0) where the result is normal;
// where it is subnormal or flushed to 0 (d > 745.2), the absolute error is
// at most 2^-1074 (docs/correct_rounding.md §3.1).
constexpr double kExpError = 0x1p-47;

// Bound of the lane-wise compensated sum of n nonnegative terms, relative to
// the sum: u + 2 ((n + 128) u)^2 (§3.1a).
double sum_error(double n);

struct row_exponentials {
  double rest = 0.0;          // Σ_{j≠k} e_j, compensated
  double rho = 0.0;           // Σ_{j≠k} e_j min(m - x_j, 2^11): the gaps' rounding in the bound
  bool finite_other = false;  // some x_j, j ≠ k, is finite
};

// Whether the vector exponentials beat libm's on a row of C classes: this
// CPU's target has 4 or more double lanes (on SSE4 and scalar targets they
// do not) and the row has at least kVectorExpMinClasses. A short row is a
// chain of a vector or two whose latency (the polynomial's Horner steps)
// nothing overlaps, where libm's independent scalar calls pipeline: measured
// on AVX-512, loss + gradient, C = 10: 1.25x slower in vectors, C = 14: 1.1x,
// C = 16: 1.2x faster, C = 64: 2x faster (docs/correct_rounding.md).
inline constexpr std::int64_t kVectorExpMinClasses = 16;
bool vector_exponentials_pay(std::int64_t C);

// x: the row (C contiguous floats, no NaN, max m = x[k] finite). Writes
// e[j] = e^{-(m - x_j)} (e[k] = 1, 0 for x_j = -inf) and returns their sums.
row_exponentials exponentials(const float* x, std::int64_t C, float m, std::int64_t k, double* e);

// The row's max m and the first index k of it; false when the row holds a
// NaN (then m and k are unspecified).
bool row_max(const float* x, std::int64_t C, float& m, std::int64_t& k);

// Gradient entries v_j = F e_j of a row (index target, no smoothing, the
// target entry excepted), each within |v_j| (a + b min(m - x_j, 2^11)) of the
// exact value: g[j] = RN_f32(v_j) where the rounding test proves it. The
// entries it cannot decide (an interval that holds a float32 boundary, a
// result near the overflow threshold, a NaN: whole vectors of them) are
// listed in `undecided` (room for C) for the scalar path; returns how many.
std::int64_t plain_gradient(const double* e, const float* x, std::int64_t C, float m, double F, double a,
                            double b, float* g, std::int64_t* undecided);

// A smoothed or probability-target row's constants for mass_gradient: the
// row model's (docs/correct_rounding.md §3.4) and the scale's.
struct mass_row {
  float m = 0.0f;          // the row max
  double S = 1.0, E_S = 0.0;
  double mass = 0.0, E_mass = 0.0;      // A = Σ b_c and its bound
  double one_m = 1.0, ec = 0.0;         // 1 - eps and eps / C as computed
  double one_m_d = 1.0, ec_d = 0.0;     // their magnitudes for the bounds
  double fexp = kExpError;              // the exponentials' relative error
  std::int64_t t = -1;                  // the index target where q is null
  double s1 = 1.0, rel1 = 0.0;          // the scale's high part, its relative error
};

// Gradient entries s1 (p_j (A - b_j) - b_j (1 - p_j)) of such a row with
// row_model's bounds, tested and written as plain_gradient does. q: the
// row's target probabilities (contiguous), or null for index targets; w:
// the class weights (contiguous), or null for 1. The entries of the max k
// and of the largest mass kb are written with placeholder values and must
// be recomputed by the caller (their formulas differ); what the test left
// undecided is listed.
std::int64_t mass_gradient(const double* e, const float* x, const float* q, const float* w, std::int64_t C,
                           const mass_row& r, float* g, std::int64_t* undecided);

// A smoothed or probability-target row's pass for its loss (row_model<double>::loss,
// docs/correct_rounding.md §3.3): the sums below in lanes, each lane's compensated
// (TwoSum) sums added once more, compensated, in lane order (bound
// sum_error(C) relative to the sum of the terms' magnitudes, as §3.1a).
struct mass_pass_row {
  float m = 0.0f;                   // the row max
  double L = 0.0;                   // log1p(rest) (index targets' smoothed sum)
  double one_m = 1.0, ec = 0.0;     // 1 - eps and eps / C as computed
  double one_m_d = 1.0, ec_d = 0.0; // their magnitudes for the bounds
  std::int64_t t = -1;              // the index target where q is null
};
struct mass_pass_sums {
  // b_c = w_c (one_m q_c + ec), beta_c = |w_c| (|one_m_d q_c| + ec_d), d_c = m - x_c.
  double bd = 0.0, b1 = 0.0;             // Σ b_c d_c (compensated), Σ beta_c d_c
  double smooth = 0.0, aw = 0.0, dw = 0.0, w1 = 0.0, sum_w = 0.0;  // Σ w_c (d_c + L) (compensated),
                                         // Σ |w_c| (d_c + L), Σ |w_c| d_c, Σ |w_c|, Σ w_c
  double mass = 0.0, rest = 0.0;         // Σ b_c, Σ_{c≠kb} b_c (compensated)
  double b0 = 0.0, b0_rest = 0.0;        // Σ beta_c, Σ_{c≠kb} beta_c
  std::int64_t kb = 0;                   // the first index of the largest b_c
};

// Whether this CPU's target has 2 or more double lanes (with one, the
// scalar pass and max scan of row_model are faster: measured on the SCALAR
// target).
bool mass_pass_pays();

// x: the row (C contiguous floats, no NaN, max m); q: the target
// probabilities (contiguous), or null for the index target t; w: the class
// weights (contiguous), or null for 1.
mass_pass_sums mass_pass(const float* x, const float* q, const float* w, std::int64_t C, const mass_pass_row& r);

}  // namespace xent::stable_vector

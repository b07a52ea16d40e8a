// The row passes of the `simd` and `openmp` kernels (max scan, sums of
// exponentials, target masses, gradients), compiled once per instruction set
// by Google Highway and dispatched at run time (simd_row_passes.cpp; the
// per-target vector operations they share with the column kernel are in
// simd_vector_ops-inl.h). Every pass works on a contiguous piece of one
// softmax row ("chunk"); the row logic that combines them is in simd_row.hpp.
//
// Numerics (docs/design.md §3, `fast` tier):
//  - e^{x - m} is computed in float32 with the rounding error of x - m carried
//    (TwoSum) into a Cody-Waite reduction, a degree-7 polynomial (Estrin) and
//    the rounding error of the result carried separately: val + err is within
//    about 2^-25 of e^{x - m} (the two roundings of expm1 dominate).
//  - Sums of exponentials are accumulated in float64 lanes (err in float32).
//  - Lanes equal to the block max are counted as ties (they contribute exactly
//    1) so that `rest` = Σ_{j≠k} e^{x_j - m} never needs S - 1.
//  - Terms below e^-86 are dropped by the fast pass; the row code recomputes
//    `rest` exactly (float64 exp) when it is below 2^-40, where they could matter.
#pragma once

#include <cstdint>
#include <limits>

namespace xent::simd {

// `rest` below this is recomputed with float64 exps (the fast pass drops
// terms below e^-86, which can only matter for such a tiny sum).
constexpr double kTinyRest = 0x1p-40;

// The block of the block-online passes, in floats (8 KB: stays in L1
// between the max scan and the exponentials).
constexpr std::int64_t kStatsBlock = 2048;

// Float lanes of the widest vector of any target (AVX-512: 16; SVE: up to
// 64): the size of per-lane buffers in code that is not compiled per target.
constexpr std::int64_t kMaxLanes = 64;

// Block-online statistics of a chunk: max M, ties = #{j : x_j = M},
// rest = Σ_{x_j < M} e^{x_j - M} (terms below e^-86·M's scale dropped),
// nan = a NaN was seen. An empty or all -inf chunk has max = -inf.
struct chunk_stats {
  float max = -std::numeric_limits<float>::infinity();
  double ties = 0.0;
  double rest = 0.0;
  bool nan = false;
};

// Merges b into a (fixed order: a then b). Uses one float64 exp per merge.
void merge_chunk_stats(chunk_stats& a, const chunk_stats& b);

chunk_stats scan_chunk(const float* x, std::int64_t n);

// Σ_{x_j != M} e^{x_j - M} with float64 exp (the exact fallback for tiny rest).
double rest_exact(const float* x, std::int64_t n, float M);

// Σ_j w_j (M - x_j) in float64 (w == nullptr: every w_j = 1).
double weighted_gap(const float* x, const float* w, std::int64_t n, float M);

// Probability targets: q'_j = omeps*q_j + epsc, wq_j = w_j q'_j;
// *gap_sum = Σ wq_j (M - x_j), *mass = Σ wq_j (float64).
void prob_sums(const float* x, const float* q, const float* w, std::int64_t n, float M,
               double omeps, double epsc, double* gap_sum, double* mass);

// scan_chunk() that also writes e^{x_j - bm} of every element as v[j] + e[j] (0
// where x_j - bm < kLowest or x_j = -inf) and each 2048-float block's max bm
// in bmax[block] (room for ceil(n / 2048)), for grad_stored.
chunk_stats scan_chunk_store(const float* x, std::int64_t n, float* v, float* e, float* bmax);

// g_j = a * e^{x_j - M} from scan_chunk_store's output (no second exponential):
// a e^{bm - M} (v_j + e_j) in float32 with the factor split in two floats;
// lanes with v_j = 0 give a signed zero, or float64 from x_j where the result
// is subnormal but not negligible; |a| >= 2^100: float64 from x throughout.
// special >= 0: g[special] = special_value instead. stream: non-temporal
// stores (g must not alias x).
void grad_stored(const float* x, const float* v, const float* e, const float* bmax, float* g,
                 std::int64_t n, float M, double a, std::int64_t special, float special_value, bool stream);

// The relaxed tier's versions (`throughput`, docs/throughput_kernel.md):
// e^{x - bm} by a value-only exponential (x - bm rounded, no error terms),
// float32 sums in runs of at most 32 vectors per accumulator added to a
// float64 sum. scan_chunk_store_relaxed writes only v (no error terms);
// grad_stored_relaxed reads only v. Same contracts otherwise.
chunk_stats scan_chunk_relaxed(const float* x, std::int64_t n);
void grad_stored_relaxed(const float* x, const float* v, const float* bmax, float* g, std::int64_t n,
                         float M, double a, std::int64_t special, float special_value, bool stream);

// A row's gradient still to be written: grad_stored_relaxed's arguments
// (stream on), written one kStatsBlock at a time while the scan of the
// thread's next row runs (scan_chunk_store_relaxed's `job`). Its
// non-temporal stores then overlap that scan's reads instead of following
// them: one thread's reads and writes are each bound by how many misses it
// keeps in flight, not by the memory bus. Same values as writing at once.
struct pending_grad {
  const float* x = nullptr;  // the row's logits (read only in rare lanes)
  const float* v = nullptr;
  const float* bmax = nullptr;
  float* g = nullptr;
  std::int64_t n = 0, done = 0;
  float M = 0.0f;
  double a = 0.0;
  std::int64_t special = -1;
  float special_value = 0.0f;
  bool active() const { return done < n; }
};
// job (may be null): one block of it is written per block scanned.
chunk_stats scan_chunk_store_relaxed(const float* x, std::int64_t n, float* v, float* bmax,
                                     pending_grad* job = nullptr);
// Writes what is left of job, fences the non-temporal stores, empties it.
void finish_pending_grad(pending_grad& job);

// Target masses of a smoothed or probability row (a piece of it):
// b_j = w_j (omeps q_j + epsc) (w null: w_j = 1; q null: q_j = 0), except
// b[special] = special_b when special is in [0, n) (index targets: the target).
// total = A = Σ b, max = the largest b, rest = Σ b without one largest (summed
// without a subtraction, so A - b_max does not cancel). Mergeable in order.
struct mass_stats {
  double total = 0.0;
  double max = -std::numeric_limits<double>::infinity();
  double rest = 0.0;
  bool any = false;
};
void merge_mass_stats(mass_stats& a, const mass_stats& b);
mass_stats target_mass(const float* q, const float* w, std::int64_t n, double omeps, double epsc,
                       std::int64_t special, double special_b);

// Row constants of the smoothed / probability gradient (see grad_smoothed).
struct smooth_row {
  float M;           // row max
  double rest;       // Σ_{j≠k} e^{x_j - M}, k one argmax (ties included)
  double sum;        // S = 1 + rest
  double mass;       // A
  double mass_max;   // the largest b
  double mass_rest;  // A without one largest b
  double omeps, epsc, scale;
};
// g_j = scale [p_j (A - b_j) - b_j (1 - p_j)] in float64 lanes, b as in
// target_mass, with 1 - p_j = (x_j == M ? rest : S - e_j) / S and
// A - b_j = (b_j == max b ? mass_rest : A - b_j): both factors without
// cancellation (the stable kernel's form).
void grad_smoothed(const float* x, const float* w, const float* q, float* g, std::int64_t n,
                   const smooth_row& k, std::int64_t special, double special_b);

// log1p and exp in float64, by the vector functions the column kernel uses
// (the row code calls these so that both give the same bits).
double log1p_f64(double x);
double exp_f64(double x);

// Name of the Highway target that dynamic dispatch currently selects.
const char* active_target_name();

}  // namespace xent::simd

// Where the simd kernel's cycles go: the exponential pass over one
// L1-resident row, built up step by step from the kernel's own per-target
// pieces (simd_vector_ops-inl.h), compiled for this CPU only. Prints cycles per
// vector of floats, the clock estimated from a dependent integer-add chain.
// Not part of the default build: cmake --build --preset release --target exp_ablation
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "hwy/highway.h"
#include "simd_vector_ops-inl.h"

namespace hn = hwy::HWY_NAMESPACE;
namespace ks = xent::simd::HWY_NAMESPACE;
using ks::DF;
using ks::VF;

enum class stage { value, with_error, with_masks, with_f64_sum, kernel_step };

template <stage S>
__attribute__((noinline)) double pass(const float* x, std::int64_t n, float M) {
  const DF d;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
  const VF m = hn::Set(d, M), neg_m = hn::Set(d, -M);
  VF fsum = hn::Zero(d), errs = hn::Zero(d);
  ks::Acc acc;
  std::int64_t ties = 0;
  for (std::int64_t i = 0; i + N <= n; i += N) {
    const VF v = hn::LoadU(d, x + i);
    VF s, val, err;
    if constexpr (S == stage::kernel_step) {  // the kernel's own step
      hn::Mask<DF> keep, tie;
      ks::ExpTerms(d, v, m, neg_m, acc, errs, val, err, keep, tie);
      ties += static_cast<std::int64_t>(hn::CountTrue(d, tie));
      continue;
    }
    ks::ExpShifted(d, v, m, neg_m, s, val, err);
    if constexpr (S == stage::value) {  // err unused: the compiler drops it
      fsum = hn::Add(fsum, val);
      continue;
    }
    if constexpr (S == stage::with_error) {
      fsum = hn::Add(fsum, val);
      errs = hn::Add(errs, err);
      continue;
    }
    const auto tie = hn::Eq(v, m);
    const auto keep = hn::AndNot(tie, ks::Kept(d, s));
    ties += static_cast<std::int64_t>(hn::CountTrue(d, tie));
    if constexpr (S == stage::with_masks) {
      fsum = hn::Add(fsum, hn::IfThenElseZero(keep, val));
      errs = hn::Add(errs, hn::IfThenElseZero(keep, err));
    } else {
      acc.add(hn::IfThenElseZero(keep, val));
      errs = hn::Add(errs, hn::IfThenElseZero(keep, err));
    }
  }
  return acc.sum() + ks::SumF(d, fsum) + ks::SumF(d, errs) + static_cast<double>(ties);
}

double clock_hz() {  // one dependent add per cycle
  std::int64_t n = 400000000, v = 0;
  const auto t0 = std::chrono::steady_clock::now();
  asm volatile("1: add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n sub $4, %1\n jnz 1b"
               : "+r"(v), "+r"(n));
  return 4e8 / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int main() {
  const std::int64_t C = 8192;
  std::vector<float> x(static_cast<std::size_t>(C));
  std::mt19937 gen(1);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (auto& v : x) v = normal(gen);
  const float M = *std::max_element(x.begin(), x.end());
  const double hz = clock_hz();
  const double lanes = static_cast<double>(hn::Lanes(DF()));
  std::printf("target %s, %g lanes, clock ~%.2f GHz; cycles per vector of %g floats:\n",
              hwy::TargetName(HWY_TARGET), lanes, hz / 1e9, lanes);
  auto run = [&](const char* what, auto f) {
    double best = 1e9, sink = 0;
    for (int r = 0; r < 30; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int k = 0; k < 200; ++k) sink += f(x.data(), C, M);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("  %-58s %5.1f  (checksum %.6g)\n", what, best * hz / (200.0 * C / lanes), sink);
  };
  run("exp with x - m carried, value only, float sum", pass<stage::value>);
  run("+ the result's rounding error carried", pass<stage::with_error>);
  run("+ kept-lane masks and tie count", pass<stage::with_masks>);
  run("+ float64 accumulation (the kernel's operations)", pass<stage::with_f64_sum>);
  run("the kernel's step (ExpTerms), for comparison", pass<stage::kernel_step>);
}

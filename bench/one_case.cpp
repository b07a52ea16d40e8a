// One implementation on one problem, timed the way A/B comparisons of a
// kernel change need on a shared, noisy machine: the best of `calls` timings
// (each of a batch of calls lasting at least 0.2 ms, per call) by thread CPU
// time (WALL=1: wall time, for thread counts above 1), printed as
// ms, ns per row and logits per second. Build two libraries (before, after),
// link this against each and alternate the two binaries a few times, taking
// each one's best: Google Benchmark's medians of back-to-back repetitions
// moved by +-30 % between runs of one binary on such hosts.
//
// OpenMP kernels (openmp, throughput) take OMP_NUM_THREADS threads, by
// default every core, while the thread CPU clock counts the calling thread
// only: time them with OMP_NUM_THREADS=1, or with WALL=1.
//
//   one_case IMPL N C [f|g|i] [calls]     f loss, g loss + gradient, i in place
//   XD=D one_case ...                     logits [N, C, D], targets [N, D]
//   TARGET=AVX2 one_case ...              Highway pinned to that target
//   HUGE=1 one_case ...                   logits and gradient on 2 MiB pages, as xent_bench
//                                         allocates them (the default: 4 KiB pages)
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "hwy/targets.h"
#include "xent/kernel/implementation.hpp"
#include "xent/xent.hpp"

namespace {

double now() {
  timespec t;
  clock_gettime(std::getenv("WALL") ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// n floats, on transparent huge pages when HUGE is set (as bench/buffers.cpp).
struct floats {
  float* p = nullptr;
  std::vector<float> small;
  explicit floats(std::size_t n) {
    if (!std::getenv("HUGE")) {
      small.resize(n);
      p = small.data();
      return;
    }
    constexpr std::size_t huge = std::size_t{1} << 21;
    const std::size_t bytes = (n * sizeof(float) + huge - 1) / huge * huge;
    p = static_cast<float*>(std::aligned_alloc(huge, bytes));
    if (!p) {
      std::fprintf(stderr, "one_case: out of memory\n");
      std::exit(2);
    }
    madvise(p, bytes, MADV_HUGEPAGE);
  }
  ~floats() {
    if (small.empty()) std::free(p);
  }
  floats(const floats&) = delete;
  floats& operator=(const floats&) = delete;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: one_case IMPL N C [f|g|i] [calls]\n");
    return 2;
  }
  const std::string name = argv[1], mode = argc > 4 ? argv[4] : "f";
  const std::int64_t N = std::atoll(argv[2]), C = std::atoll(argv[3]);
  const std::int64_t D = std::getenv("XD") ? std::atoll(std::getenv("XD")) : 1;
  const int calls = argc > 5 ? std::atoi(argv[5]) : 30;
  const xent::implementation* impl = xent::find_implementation(name);
  if (!impl || N < 1 || C < 1 || D < 1 || calls < 1 || (mode != "f" && mode != "g" && mode != "i")) {
    std::fprintf(stderr, "one_case: bad arguments (unknown implementation or non-positive size)\n");
    return 2;
  }
  if (const char* want = std::getenv("TARGET")) {
    std::int64_t bits = 0;
    for (const std::int64_t t : hwy::SupportedAndGeneratedTargets())
      if (std::string(hwy::TargetName(t)) == want) bits = t;
    if (bits == 0) {
      std::fprintf(stderr, "one_case: target %s is not supported here\n", want);
      return 2;
    }
    hwy::SetSupportedTargetsForTest(bits);
  }
  const std::size_t count = static_cast<std::size_t>(N * C * D);
  floats xs(count), gs(count);
  float* x = xs.p;
  float* g = gs.p;
  std::vector<std::int64_t> t(static_cast<std::size_t>(N * D));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (std::size_t i = 0; i < count; ++i) x[i] = normal(rng);
  std::fill(g, g + count, 0.0f);
  for (auto& v : t) v = static_cast<std::int64_t>(rng() % static_cast<std::uint32_t>(C));
  std::vector<std::int64_t> ls{N, C}, ts{N};
  if (D > 1) ls.push_back(D), ts.push_back(D);
  float out = 0.0f;
  const auto L = xent::view(x, ls), G = xent::view(mode == "i" ? x : g, ls);
  const auto T = xent::view(t.data(), ts);
  const auto O = xent::view(&out, {});
  auto call = [&] {
    if (mode == "f") xent::cross_entropy(L, T, O, {}, impl);
    else xent::cross_entropy_forward_backward(L, T, O, G, {}, nullptr, impl);
  };
  // Each timing covers a batch of calls lasting at least 0.2 ms: reading
  // the thread CPU clock is a system call here (about a microsecond on a
  // virtual machine), as long as a whole call on a small shape.
  std::int64_t batch = 1;
  for (int i = 0; i < 3; ++i) call();  // first calls: scratch allocation, target dispatch
  for (;;) {
    const double t0 = now();
    for (std::int64_t i = 0; i < batch; ++i) call();
    if (now() - t0 >= 2e-4 || batch >= (std::int64_t{1} << 20)) break;
    batch *= 2;
  }
  double best = 1e30;
  for (int i = 0; i < calls; ++i) {
    const double t0 = now();
    for (std::int64_t k = 0; k < batch; ++k) call();
    best = std::min(best, (now() - t0) / static_cast<double>(batch));
  }
  const double rows = static_cast<double>(N * D);
  std::printf("%s [%lld,%lld,%lld] %s: %.3f ms  %.2f ns/row  %.3f G logits/s\n", name.c_str(),
              static_cast<long long>(N), static_cast<long long>(C), static_cast<long long>(D), mode.c_str(),
              best * 1e3, best * 1e9 / rows, rows * static_cast<double>(C) / best / 1e9);
}

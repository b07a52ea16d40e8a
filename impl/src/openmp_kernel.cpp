// `openmp`: the simd row kernel on several threads. Rows (for (N, C, d...)
// layouts: groups of positions, simd_column.hpp) are split statically over
// threads; a long row (C >= simd::kLongRow) with fewer rows than threads
// has its fixed column chunks spread over the threads instead. Every row's
// result depends only on the row (chunking by C alone, chunks merged in
// order), and the batch reduction runs on one thread over the per-row losses
// in the shared fixed pairwise order: results are bitwise identical for any
// thread count (and to the `simd` kernel's). OMP_NUM_THREADS is honoured.
// An exception must not leave an OpenMP region (the process would end):
// scratch is taken on every thread of the team before anything is written,
// and whatever is thrown inside a region is caught and rethrown after it.
#include <omp.h>

#include <exception>

#include "kernels.hpp"
#include "openmp_run.hpp"
#include "row_driver.hpp"
#include "simd_column.hpp"
#include "simd_row.hpp"

namespace xent {
namespace {

// Below this many logits, threads cost more than they bring: fast numerics
// take about 25 us for 2^16 logits on one AVX-512 thread, and two threads
// save some of it; relaxed rows take 12 us, and two threads took longer
// ([64,1024]: 12.1 us on one, 16.7 on two), so they need twice the work.
constexpr std::int64_t kMinParallel = std::int64_t{1} << 16;
constexpr std::int64_t kMinParallelRelaxed = std::int64_t{1} << 17;

// Runs reserve() on every thread of one team, then (when it succeeded on
// all of them) f(i) for i in [0, n) split statically over the same threads
// (the threads that compute are the ones whose scratch was taken), then
// finish() on each. The first exception of any thread is rethrown after the
// region; a failed reserve means nothing was written.
struct omp_loop {
  template <class F, class R>
  void operator()(std::int64_t n, F&& f, R&& reserve) const {
    (*this)(n, f, reserve, [] {});
  }
  template <class F, class R, class E>
  void operator()(std::int64_t n, F&& f, R&& reserve, E&& finish) const {
    std::exception_ptr failure;
    bool reserved = true;
    auto keep = [&] {
#pragma omp critical(xent_omp_failure)
      if (!failure) failure = std::current_exception();
    };
#pragma omp parallel
    {
      try {
        reserve();
      } catch (...) {
        keep();
#pragma omp atomic write
        reserved = false;
      }
#pragma omp barrier
      bool go;
#pragma omp atomic read
      go = reserved;
      if (go) {
#pragma omp for schedule(static) nowait
        for (std::int64_t i = 0; i < n; ++i) {
          try {
            f(i);
          } catch (...) {
            keep();
          }
        }
        try {
          finish();
        } catch (...) {
          keep();
        }
      }
    }
    if (failure) std::rethrow_exception(failure);
  }
  template <class F>
  void operator()(std::int64_t n, F&& f) const {
    (*this)(n, f, [] {});
  }
};

}  // namespace

void run_openmp(const problem& pr, bool with_grad, simd::numerics num) {
  const std::int64_t threads = omp_get_max_threads();
  // The rows row_engine computes with relaxed numerics (float32 index targets
  // without smoothing, C > kRelaxedAbove); float64 and the rest keep openmp's.
  const bool relaxed_rows = num == simd::numerics::relaxed && pr.type != dtype::f64 &&
                            pr.target == target_kind::index && pr.label_smoothing == 0.0 &&
                            pr.classes > simd::kRelaxedAbove;
  const bool parallel =
      threads > 1 && pr.positions * pr.classes >= (relaxed_rows ? kMinParallelRelaxed : kMinParallel);
  if (pr.type == dtype::f64)
    return run_float64_rounded_once(pr, with_grad, parallel ? static_cast<int>(threads) : 1);
  if (const auto mode = simd::column_path(pr, with_grad, num); mode != simd::column_mode::none) {
    if (parallel) simd::run_columns(pr, with_grad, mode, omp_loop{});
    else simd::run_columns(pr, with_grad, mode, serial_loop{});
    return;
  }
  const simd::row_engine engine(pr, with_grad, num);
  auto reserve = [&] { engine.reserve(with_grad); };
  // A row's chunks on the calling thread (serial_loop) or on the team (omp_loop).
  auto row_with = [&engine](auto chunk_loop) {
    return [&engine, chunk_loop](std::int64_t p, float* g, double scale) { return engine.row(p, g, scale, chunk_loop); };
  };
  // Whole rows per thread: a row may leave its gradient to be written during
  // the thread's next row (simd::pending_grad), the last one by finish.
  auto deferring_row = [&engine](std::int64_t p, float* g, double scale) {
    return engine.row(p, g, scale, serial_loop{}, &simd::row_engine::thread_pending_grad());
  };
  auto finish = [] { simd::finish_pending_grad(simd::row_engine::thread_pending_grad()); };
  if (!parallel) {
    run_positions(pr, with_grad, serial_loop{}, reserve, deferring_row, finish);
  } else if (pr.positions >= threads || engine.chunks() == 1) {
    run_positions(pr, with_grad, omp_loop{}, reserve, deferring_row, finish);
  } else {  // long rows: their buffers are the calling thread's, chunks on the team
    run_positions(pr, with_grad, serial_loop{}, reserve, row_with(omp_loop{}));
  }
}

namespace {

class openmp_kernel final : public implementation {
 public:
  std::string name() const override { return "openmp"; }
  std::string description() const override {
    return "simd row kernel on " + std::to_string(omp_get_max_threads()) +
           " OpenMP threads (static rows; long rows in fixed column chunks), "
           "thread-count-independent results";
  }
  xent::tier tier() const override { return tier::fast; }
  // 16-bit logits: rows widened into float32 buffers, the loss and gradient
  // rounded once to their dtype (docs/dtypes.md).
  std::uint32_t dtypes() const override {
    return XENT_PLUGIN_DTYPE_FLOAT32 | dtype_bfloat16_bit | dtype_float16_bit | dtype_float64_bit;
  }
  std::string domain() const override { return "all inputs"; }
  bool thread_count_independent() const override { return true; }
  void forward(const problem& p) const override { run_openmp(p, false, simd::numerics::fast); }
  void forward_backward(const problem& p) const override { run_openmp(p, true, simd::numerics::fast); }
};

}  // namespace

std::unique_ptr<implementation> make_openmp_kernel() { return std::make_unique<openmp_kernel>(); }

}  // namespace xent

// `throughput`: the openmp kernel with the relaxed tier's numerics for rows
// of index targets without smoothing and more than simd::kRelaxedAbove
// (128) classes: a value-only exponential and float32 sums
// in short runs flushed into float64 (simd_row_passes.hpp). Other rows keep
// the fast numerics. The bound and its proof: docs/throughput_kernel.md.
// Results are bitwise identical for any thread count and layout, as openmp's.
#include <omp.h>

#include "kernels.hpp"
#include "openmp_run.hpp"
#include "simd_row.hpp"

namespace xent {
namespace {

class throughput_kernel final : public implementation {
 public:
  std::string name() const override { return "throughput"; }
  std::string description() const override {
    return "Highway " + std::string(simd::active_target_name()) + " on " +
           std::to_string(omp_get_max_threads()) +
           " OpenMP threads: value-only float32 exp, float32 sums in runs of 32 vectors flushed to "
           "float64, log1p form, fused gradient (index targets with C > 128; other rows as openmp)";
  }
  xent::tier tier() const override { return tier::relaxed; }
  // 16-bit logits: rows widened into float32 buffers, the loss and gradient
  // rounded once to their dtype; float64: run_float64_rounded_once, as
  // openmp (docs/dtypes.md).
  std::uint32_t dtypes() const override {
    return XENT_PLUGIN_DTYPE_FLOAT32 | dtype_bfloat16_bit | dtype_float16_bit | dtype_float64_bit;
  }
  std::string domain() const override { return "all inputs"; }
  void forward(const problem& p) const override { run_openmp(p, false, simd::numerics::relaxed); }
  void forward_backward(const problem& p) const override { run_openmp(p, true, simd::numerics::relaxed); }
};

}  // namespace

std::unique_ptr<implementation> make_throughput_kernel() { return std::make_unique<throughput_kernel>(); }

}  // namespace xent

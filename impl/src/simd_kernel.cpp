// `simd`: one-pass block-online kernel, vectorised with Google Highway and
// dispatched at run time to the best instruction set of this CPU (AVX-512,
// AVX2, SSE4, SSSE3 or scalar). Numerics in simd_row_passes.hpp, row logic in
// simd_row.hpp, (N, C, d...) layouts with positions in lanes in
// simd_column.hpp; positions, ignore_index and the batch reduction are the
// shared row driver's.
#include "kernels.hpp"
#include "row_driver.hpp"
#include "simd_column.hpp"
#include "simd_row.hpp"

namespace xent {
namespace {

class simd_kernel final : public implementation {
 public:
  std::string name() const override { return "simd"; }
  std::string description() const override {
    return std::string("Highway ") + simd::active_target_name() +
           ": one-pass block-online max/sum, float32 exp carrying x-m rounding, float64 "
           "accumulation, log1p form, pairwise batch reduction; (N,C,d) and rows of <= 128 "
           "classes with positions in vector lanes (same bits)";
  }
  xent::tier tier() const override { return tier::fast; }
  // 16-bit logits: rows widened into float32 buffers, the loss and gradient
  // rounded once to their dtype; float64: run_float64_rounded_once
  // (docs/dtypes.md).
  std::uint32_t dtypes() const override {
    return XENT_PLUGIN_DTYPE_FLOAT32 | dtype_bfloat16_bit | dtype_float16_bit | dtype_float64_bit;
  }
  std::string domain() const override { return "all inputs"; }
  void forward(const problem& p) const override { run(p, false); }
  void forward_backward(const problem& p) const override { run(p, true); }

 private:
  static void run(const problem& p, bool with_grad) {
    if (p.type == dtype::f64) return run_float64_rounded_once(p, with_grad, 1);
    if (const auto mode = simd::column_path(p, with_grad); mode != simd::column_mode::none)
      return simd::run_columns(p, with_grad, mode, serial_loop{});
    const simd::row_engine engine(p, with_grad);
    engine.reserve(with_grad);
    run_positions(p, with_grad, serial_loop{}, [] {},
                  [&](std::int64_t pos, float* g, double scale) { return engine.row(pos, g, scale, serial_loop{}); });
  }
};

}  // namespace

std::unique_ptr<implementation> make_simd_kernel() { return std::make_unique<simd_kernel>(); }

}  // namespace xent

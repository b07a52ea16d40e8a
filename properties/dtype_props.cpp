// 16-bit logits (bfloat16, float16; docs/dtypes.md): the tier's bounds, the
// same numbers as for float32, in ulps of each result's dtype, against the
// reference computed from the 16-bit inputs. Kernels that compute float32
// only are skipped (not applicable), never passed.
#include <cmath>
#include <cstdint>
#include <random>

#include "generators.hpp"
#include "property.hpp"

namespace {

using namespace xent::props;
using xent::dtype;
using xent::props::regime;

// A case of every regime and option with its values rounded to a 16-bit
// dtype the kernel computes; a quarter of them with a float32 loss (not for
// peers: PyTorch computes the loss in the logits' dtype).
// Drawn as one value, so that a counterexample prints the 16-bit case.
test_case sixteen_bit_case(const xent::implementation& impl, case_spec s = {}) {
  require((impl.dtypes() & (xent::dtype_bfloat16_bit | xent::dtype_float16_bit)) != 0,
          "computes float32 logits only");
  const test_case c = *rc::gen::apply(
      [peer = impl.peer()](test_case k, dtype t, int out) {
        k.to_dtype(t, out == 0 && !peer);
        return k;
      },
      gen_case(s), rc::gen::element(dtype::bf16, dtype::f16), rc::gen::inRange(0, 4));
  RC_PRE((impl.dtypes() & xent::dtype_bit(c.type)) != 0);
  return c;
}

// Loss, reduction and every gradient entry against the reference.
XENT_PROPERTY(reference_props, sixteen_bit_within_tier, 200) {
  const test_case c = sixteen_bit_case(impl);
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, *rc::gen::arbitrary<bool>()));
}

// Finite logits of ordinary size (no NaN/inf, no magnitudes near the
// largest finite value): every regime where a kernel has no excuse, so that
// a peer's deviations with special values or overflow (listed for it) cannot
// hide its accuracy on the values of everyday training.
XENT_PROPERTY(reference_props, sixteen_bit_ordinary_values_within_tier, 200) {
  case_spec s;
  s.regimes = {regime::normal, regime::near_overflow, regime::tiny, regime::dominant, regime::ties, regime::uniform};
  const test_case c = sixteen_bit_case(impl, s);
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, *rc::gen::arbitrary<bool>()));
}

// float16's edges: logits near its largest finite value 65504 (spreads that
// overflow float16's range, inputs rounded to infinity) and in its subnormal
// range; losses and gradient entries that underflow or overflow it.
XENT_PROPERTY(reference_props, float16_range_edges_within_tier, 100) {
  require((impl.dtypes() & xent::dtype_float16_bit) != 0, "computes no float16 logits");
  case_spec s;
  s.max_classes = 64;
  const test_case c = *rc::gen::apply(
      [](test_case k, double scale, std::uint32_t seed) {
        std::mt19937 rng(seed);
        std::uniform_real_distribution<double> u(-1.0, 1.0);
        for (std::int64_t p = 0; p < k.positions(); ++p)
          for (std::int64_t j = 0; j < k.c; ++j) k.x(p, j) = static_cast<float>(u(rng) * scale);
        k.regime = "f16_edges";
        k.to_dtype(dtype::f16);
        return k;
      },
      gen_case(s), rc::gen::element(60000.0, 0x1p-20, 0x1p-14, 1000.0), rc::gen::arbitrary<std::uint32_t>());
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, true));
}

// The in-place gradient of a 16-bit case has the bits of the separate one.
XENT_PROPERTY(metamorphic_props, sixteen_bit_in_place_matches_separate, 100) {
  const test_case c = sixteen_bit_case(impl);
  RC_ASSERT(same_bits(run(impl, c, true), run_in_place(impl, c)));
}

}  // namespace

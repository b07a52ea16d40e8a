// float64 logits (docs/dtypes.md): the tier's bounds, the same numbers as for
// float32, in ulps of float64, against the reference computed from the
// float64 inputs. Kernels that compute no float64 are skipped (not
// applicable), never passed.
#include <omp.h>

#include <cstdint>

#include "generators.hpp"
#include "property.hpp"

namespace {

using namespace xent::props;
using xent::dtype;
using xent::props::regime;

// How far the logits are scaled (2^shift): mostly not at all; else within
// float32's reach, down among float64's subnormals (spreads of ~2^-1074, logits
// that become 0), or up near float64's largest values (spreads that overflow,
// losses of 10^300).
rc::Gen<int> gen_shift() {
  return rc::gen::weightedOneOf<int>({{4, rc::gen::just(0)},
                                      {2, rc::gen::inRange(-60, 61)},
                                      {1, rc::gen::inRange(-1100, -990)},
                                      {1, rc::gen::inRange(850, 891)}});
}

// A case of every regime and option made float64 (test_case::to_float64):
// 53-bit values keeping the regime's structure (ties stay ties). Drawn as one
// value, so that a counterexample prints the float64 case.
test_case float64_case(const xent::implementation& impl, case_spec s, rc::Gen<int> shift) {
  require((impl.dtypes() & xent::dtype_float64_bit) != 0, "computes no float64 logits");
  return *rc::gen::apply(
      [](test_case k, std::uint64_t seed, int sh) {
        k.to_float64(seed, sh);
        return k;
      },
      gen_case(s), rc::gen::arbitrary<std::uint64_t>(), std::move(shift));
}

// Loss, reduction and every gradient entry against the reference.
XENT_PROPERTY(reference_props, float64_within_tier, 200) {
  const test_case c = float64_case(impl, {}, gen_shift());
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, *rc::gen::arbitrary<bool>()));
}

// Finite logits of ordinary size, unscaled: the values of everyday use.
XENT_PROPERTY(reference_props, float64_ordinary_values_within_tier, 200) {
  case_spec s;
  s.regimes = {regime::normal, regime::near_overflow, regime::tiny, regime::dominant, regime::ties, regime::uniform};
  const test_case c = float64_case(impl, s, rc::gen::just(0));
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, *rc::gen::arbitrary<bool>()));
}

// The in-place gradient of a float64 case has the bits of the separate one.
XENT_PROPERTY(metamorphic_props, float64_in_place_matches_separate, 100) {
  const test_case c = float64_case(impl, {}, gen_shift());
  RC_ASSERT(same_bits(run(impl, c, true), run_in_place(impl, c)));
}

// Implementations that declare thread-count independence: the same float64
// bits for 1 and 2 threads (sizes above the single-thread threshold).
XENT_PROPERTY(contract_props, float64_thread_count_independent, 12) {
  require(impl.thread_count_independent(), "it does not declare thread-count independence");
  case_spec s;
  s.max_elements = 1 << 19;
  s.max_rows = 4096;
  s.min_classes = 64;
  const test_case c = float64_case(impl, s, gen_shift());
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = run(impl, c, true);
  omp_set_num_threads(2);
  const auto two = run(impl, c, true);
  omp_set_num_threads(saved);
  RC_ASSERT(same_bits(one, two));
}

}  // namespace

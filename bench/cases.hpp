// What is measured: shapes, modes and one benchmark case per
// (implementation | LibTorch, shape, mode, threads[, Highway target]), named
// `impl/shape/mode/tN` (e.g. `stable/n4096c32000/fwd/t2`); a case pinned to a
// Highway target other than the CPU's best names it after the implementation,
// as the property suite does: `simd_avx2/n4096c32000/fwd/t2`.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "probes.hpp"
#include "xent/kernel/implementation.hpp"
#include "xent/tensor.hpp"

namespace xent_bench {

inline constexpr std::uint64_t seed = 7;
inline constexpr float logit_sigma = 2.0f;

struct shape_spec {
  std::string name;                // oneDNN benchdnn style: n4096c32000, n8c21h256w256; n4096c32000_bf16
  std::vector<std::int64_t> dims;  // logits, class axis 1
  // The logits' dtype: float32, or bfloat16/float16 (the gradient too; the
  // loss is float32, the extension for 16-bit logits, so that every case's
  // loss is checked alike).
  xent::dtype type = xent::dtype::f32;
  std::size_t element_bytes() const { return xent::size_of(type); }
  std::int64_t classes() const { return dims[1]; }
  std::int64_t elements() const;
  std::int64_t positions() const { return elements() / classes(); }
  std::vector<std::int64_t> target_dims() const;  // dims without the class axis
};
shape_spec make_shape(std::vector<std::int64_t> dims);

// The same shape with 16-bit logits ("_bf16", "_f16" appended to the name).
shape_spec with_dtype(const shape_spec& s, xent::dtype t);

// A shape of bench/shapes.txt and the modes it adds to fwd and fwdbwd.
struct shape_plan {
  shape_spec shape;
  bool reductions = false;  // also fwd_sum and fwd_none
  bool inplace = false;     // also fwdbwd_inplace
  bool targets = false;     // also on every other Highway target (fwd, fwdbwd)
  std::vector<xent::dtype> dtypes;  // also fwd and fwdbwd with logits of these 16-bit dtypes
};
// The shapes of one set ("quick", "default") in a shape list (the format of
// bench/shapes.txt), in order. Throws std::runtime_error naming the line of
// a malformed entry.
std::vector<shape_plan> read_shape_list(std::string_view text, std::string_view set);

// fwd: loss only, mean; fwd_sum / fwd_none: the other reductions;
// fwdbwd: loss (mean) + gradient into a separate buffer;
// fwdbwd_inplace: the gradient overwrites the logits.
enum class mode { fwd, fwd_sum, fwd_none, fwdbwd, fwdbwd_inplace };
std::string to_string(mode m);
bool writes_grad(mode m);

struct bench_case {
  bool libtorch = false;                       // the LibTorch peer, not a registered implementation
  const xent::implementation* impl = nullptr;  // the registered implementation (null for the peer)
  shape_spec shape;
  mode m = mode::fwd;
  int threads = 1;
  // A Highway target the call is pinned to; 0: the CPU's best. For a peer
  // (xent_bench --peers-at, capped_peers.hpp): the instruction set the
  // process capped it at, which names it and picks its compute floor.
  std::int64_t target = 0;
  std::string impl_name() const;  // "libtorch" for the peer; "simd_avx2" when pinned, "libtorch_avx2" when capped
  std::string name() const;
};

// The benchmark body of a case: verifies against the reference kernel and
// measures peak extra memory once (untimed, also the warm-up), then times.
void run_case(benchmark::State& state, const bench_case& c);
// The shape of a measured case by its benchmark name ("" for other names).
std::string case_shape(const std::string& name);
// vs_torch and vs_onednn of a measured case (each peer's median time over the
// case's, on the same shape, mode and threads; LibTorch against in-place's
// fwdbwd): the reporter calls it once every implementation of the case's
// shape has run, so every case gets both ratios whatever the order.
void add_peer_ratios(const std::string& name, benchmark::UserCounters& counters);
void run_probe(benchmark::State& state, probe_kind k, int threads);
// The compute floor (compute_floor.hpp) pinned to a Highway target (0: the
// best one); elements_per_second. The best target's rate is recorded as the
// floor of every case at that thread count.
void run_floor_probe(benchmark::State& state, std::int64_t target, int threads);
// 0 (the best target) and every other target this CPU supports; the name
// suffix of each ("" for the best, "_avx2", ...).
std::vector<std::int64_t> floor_targets();
std::string floor_suffix(std::int64_t target);

// Elements per second of one untimed call on a [256, 4096] problem, one
// thread: used to keep the scalar kernels off shapes they would need minutes
// for.
double calibrate(const xent::implementation& impl, bool grad);

// "name: message" of every case that was skipped with an error (a mismatch
// against the reference or an exception), in name order.
std::vector<std::string> case_errors();
// The names of the cases measured so far (the filter may leave some out).
std::vector<std::string> measured_cases();

// The implementation outputs are checked against ("stable").
const xent::implementation& reference_implementation();

}  // namespace xent_bench

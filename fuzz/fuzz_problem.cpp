// Fuzzes the front door's validation (xent::make_problem, xent::from_dlpack)
// with shapes, strides, dtypes, pointers and options decoded from the input.
//
// Every tensor gets its own heap allocation of exactly the bytes its view
// reaches, as computed here independently in 128-bit arithmetic, so that
// AddressSanitizer reports any access outside it. The target asserts:
//   - a view whose element count, byte size or strided reach overflows int64,
//     that has a negative extent, a misaligned or (when not empty) null data
//     pointer is rejected with an xent::error -- never accepted, never a crash;
//   - an accepted problem has the position and class counts of the shapes,
//     and every element it addresses (logits, target, weight, loss, grad,
//     upstream; after the merging of position dimensions) is exactly the
//     element of the caller's view at the same index: so inside the
//     allocation;
//   - output elements are distinct and do not overlap the inputs (except an
//     in-place gradient);
//   - the `stable` and `naive` kernels then run on it (forward and, with a
//     gradient, forward_backward) without touching anything else.
// Anything other than xent::error escaping is a crash (libFuzzer aborts).
#include <fuzzer/FuzzedDataProvider.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "kernels.hpp"
#include "xent/error.hpp"
#include "xent/kernel/problem.hpp"
#include "xent/tensor.hpp"

namespace {

using i128 = __int128;
using shape_t = std::vector<std::int64_t>;
constexpr i128 int64_max = std::numeric_limits<std::int64_t>::max();
constexpr i128 backed_limit = 1 << 16;  // bytes we allocate for one view
constexpr std::int64_t walk_limit = 1 << 14;  // elements we check address by address

// The decoded call, printed when an assertion fails.
std::string context;

#define FUZZ_ASSERT(cond, ...)                                             \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "fuzz_problem: assertion failed: %s: ", #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                   \
      std::fprintf(stderr, "\n%s", context.c_str());                       \
      std::abort();                                                        \
    }                                                                      \
  } while (0)

std::string describe(const char* name, const xent::tensor_view& v) {
  return std::string(name) + ": " + xent::to_string(v.type) + " shape " + xent::shape_string(v.shape) +
         " strides " + xent::shape_string(v.strides) + " data " +
         std::to_string(reinterpret_cast<std::uintptr_t>(v.data)) + "\n";
}

// A page nothing may read: the data of views too large to allocate.
const char* guard_page() {
  static void* p = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return static_cast<const char*>(p);
}

constexpr xent::dtype dtypes[] = {xent::dtype::f32, xent::dtype::f64, xent::dtype::i64, xent::dtype::i32,
                                  xent::dtype::bf16, xent::dtype::f16};

std::int64_t special_extent(FuzzedDataProvider& in) {
  static constexpr std::int64_t table[] = {0, 1, 2, 3, 5, 7, 16, 33, 1 << 20, std::int64_t{1} << 31,
                                           std::int64_t{1} << 32, std::int64_t{1} << 40,
                                           std::int64_t{1} << 62, std::numeric_limits<std::int64_t>::max(),
                                           -1, std::numeric_limits<std::int64_t>::min()};
  const auto mode = in.ConsumeIntegral<std::uint8_t>();
  if (mode < 200) return mode % 5;  // mostly small
  if (mode < 250) return table[mode % std::size(table)];
  return in.ConsumeIntegral<std::int64_t>();
}

shape_t random_shape(FuzzedDataProvider& in, int max_ndim) {
  shape_t s(in.ConsumeIntegralInRange<int>(0, max_ndim));
  for (auto& e : s) e = special_extent(in);
  return s;
}

shape_t decode_strides(FuzzedDataProvider& in, const shape_t& shape) {
  const auto n = shape.size();
  shape_t st(n);
  const auto mode = in.ConsumeIntegral<std::uint8_t>() % 8;
  // Contiguous strides of a (possibly padded) buffer, computed in wrapping
  // arithmetic (shapes may be huge).
  std::uint64_t s = 1;
  for (std::size_t d = n; d-- > 0;) {
    st[d] = static_cast<std::int64_t>(s);
    std::uint64_t e = static_cast<std::uint64_t>(shape[d]);
    if (mode == 1) e += in.ConsumeIntegralInRange<std::uint64_t>(0, 3);  // padding
    s *= e;
  }
  switch (mode) {
    case 0:
    case 1: break;
    case 2:  // permuted
      for (std::size_t i = n; i > 1; --i) std::swap(st[i - 1], st[in.ConsumeIntegralInRange<std::size_t>(0, i - 1)]);
      break;
    case 3:  // some dims negated, some zero
      for (auto& x : st) {
        const auto k = in.ConsumeIntegral<std::uint8_t>() % 4;
        if (k == 1) x = static_cast<std::int64_t>(0 - static_cast<std::uint64_t>(x));
        if (k == 2) x = 0;
      }
      break;
    case 4:  // small arbitrary
      for (auto& x : st) x = in.ConsumeIntegralInRange<std::int64_t>(-8, 8);
      break;
    default:  // arbitrary, huge included
      for (auto& x : st) x = in.ConsumeBool() ? special_extent(in) : in.ConsumeIntegral<std::int64_t>();
      break;
  }
  return st;
}

// One tensor: its view, its allocation, and what we know about it.
struct tensor {
  xent::tensor_view view;
  std::unique_ptr<unsigned char[]> storage;
  std::size_t storage_bytes = 0;
  bool must_reject = false;  // oversize, negative extent, misaligned, null
  bool backed = false;       // every element lies in `storage`
  bool empty = false;
  i128 count = 1;            // elements (product of the non-zero extents when not empty)
  const char* why = "";
};

// The lowest and highest element index (relative to data) a view reaches.
void reach(const shape_t& shape, const shape_t& strides, i128& lo, i128& hi) {
  lo = hi = 0;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    const i128 span = static_cast<i128>(shape[d] - 1) * strides[d];
    (span < 0 ? lo : hi) += span;
  }
}

tensor make_tensor(FuzzedDataProvider& in, shape_t shape, xent::dtype type) {
  tensor t;
  t.view.type = in.ConsumeIntegral<std::uint8_t>() < 240 ? type : dtypes[in.ConsumeIntegral<std::uint8_t>() % 5];
  t.view.strides = decode_strides(in, shape);
  t.view.shape = std::move(shape);
  const auto& s = t.view.shape;
  const i128 item = static_cast<i128>(xent::size_of(t.view.type));
  i128 nonzero = 1;
  bool negative = false, huge = false;
  for (auto e : s) {
    if (e < 0) negative = true;
    else if (e == 0) t.empty = true;
    else if (!huge) {
      nonzero *= e;
      if (nonzero * item > int64_max) huge = true;
    }
  }
  t.count = t.empty ? 0 : nonzero;
  i128 lo = 0, hi = 0;
  if (!negative && !huge && !t.empty) {
    reach(s, t.view.strides, lo, hi);
    if ((hi - lo + 1) * item > int64_max) huge = true;
  }
  if (negative || huge) {
    t.must_reject = true;
    t.why = negative ? "negative extent" : "size or reach overflows int64";
  }
  const auto pointer_mode = in.ConsumeIntegral<std::uint8_t>();
  if (negative || huge || t.empty || (hi - lo + 1) * item > backed_limit) {
    // Not allocated: empty views may point anywhere (even null), others at a
    // page that faults when read.
    t.view.data = pointer_mode < 16 ? nullptr : const_cast<char*>(guard_page()) + 2048;
    if (t.view.data == nullptr && !t.empty && !negative) {
      t.must_reject = true;
      t.why = "null data";
    }
    return t;
  }
  const std::size_t misalign = pointer_mode >= 248 ? pointer_mode % 4 + 1 : 0;
  t.storage_bytes = static_cast<std::size_t>((hi - lo + 1) * item) + misalign;
  t.storage.reset(new unsigned char[t.storage_bytes]);
  // Contents: a pattern seeded by one byte (the fuzz input is for shapes).
  const auto seed = in.ConsumeIntegral<std::uint8_t>();
  for (std::size_t i = 0; i < t.storage_bytes; ++i) t.storage[i] = static_cast<unsigned char>(i * 37 + seed);
  t.view.data = t.storage.get() + misalign + static_cast<std::size_t>(-lo * item);
  t.backed = true;
  if (pointer_mode < 8) {
    t.view.data = nullptr;
    t.must_reject = true;
    t.why = "null data";
  } else if (misalign && misalign % static_cast<std::size_t>(item) != 0) {
    t.must_reject = true;
    t.why = "misaligned";
  }
  return t;
}

// Index targets: mostly valid classes or ignore_index, so that deep paths run.
void fill_targets(FuzzedDataProvider& in, tensor& t, std::int64_t C, std::int64_t ignore) {
  if (!t.backed || t.view.type != xent::dtype::i64 || !t.view.data) return;
  auto* p = reinterpret_cast<unsigned char*>(t.view.data);
  const auto* begin = t.storage.get();
  // Every aligned int64 slot of the allocation that the view's data can reach.
  const std::size_t first = static_cast<std::size_t>(p - begin) % 8;
  for (std::size_t off = first; off + 8 <= t.storage_bytes; off += 8) {
    const auto k = off < 64 * 8 ? in.ConsumeIntegral<std::uint8_t>() : static_cast<std::uint8_t>(off * 13);
    std::int64_t v = k < 200 ? (C > 0 ? k % C : 0) : k < 230 ? ignore : in.ConsumeIntegral<std::int64_t>();
    std::memcpy(t.storage.get() + off, &v, 8);
  }
}

void fill_floats(tensor& t) {  // finite, moderate values so the kernels run their usual paths
  if (!t.backed || t.view.type != xent::dtype::f32 || !t.view.data) return;
  for (std::size_t off = 0; off + 4 <= t.storage_bytes; off += 4) {
    float v = 0.0f;
    std::memcpy(&v, t.storage.get() + off, 4);
    if (!std::isfinite(v) || std::fabs(v) > 1e4f) v = static_cast<float>(off % 17) * 0.25f - 2.0f;
    std::memcpy(t.storage.get() + off, &v, 4);
  }
}

// Routes a view through a DLPack tensor (shape and strides arrays sized
// exactly ndim, byte_offset, a fuzzed dtype/device now and then) and checks
// what from_dlpack makes of it. nullopt when from_dlpack rejects it.
std::optional<xent::tensor_view> via_dlpack(FuzzedDataProvider& in, const xent::tensor_view& v) {
  const std::size_t n = v.shape.size();
  std::unique_ptr<std::int64_t[]> shape(new std::int64_t[n ? n : 1]), strides(new std::int64_t[n ? n : 1]);
  std::copy(v.shape.begin(), v.shape.end(), shape.get());
  std::copy(v.strides.begin(), v.strides.end(), strides.get());
  DLTensor t{};
  t.device = {kDLCPU, 0};
  t.ndim = static_cast<std::int32_t>(n);
  t.shape = shape.get();
  // NULL strides mean contiguous: only for views that are (the allocation
  // was sized for the view's own strides).
  t.strides = in.ConsumeBool() || v.strides != xent::contiguous_strides(v.shape) ? strides.get() : nullptr;
  switch (v.type) {
    case xent::dtype::f32: t.dtype = {kDLFloat, 32, 1}; break;
    case xent::dtype::f64: t.dtype = {kDLFloat, 64, 1}; break;
    case xent::dtype::i64: t.dtype = {kDLInt, 64, 1}; break;
    case xent::dtype::i32: t.dtype = {kDLInt, 32, 1}; break;
    case xent::dtype::bf16: t.dtype = {kDLBfloat, 16, 1}; break;
    case xent::dtype::f16: t.dtype = {kDLFloat, 16, 1}; break;
  }
  const auto offset = in.ConsumeIntegralInRange<std::uint64_t>(0, 64);
  const auto address = reinterpret_cast<std::uintptr_t>(v.data);
  t.data = v.data && address >= offset ? reinterpret_cast<void*>(address - offset) : v.data;
  t.byte_offset = v.data && address >= offset ? offset : 0;
  const auto mutate = in.ConsumeIntegral<std::uint8_t>();
  bool corrupt = false;
  if (mutate >= 240) {
    corrupt = true;
    switch (mutate % 8) {
      case 0: t.device.device_type = kDLCUDA; break;
      case 1: t.dtype.lanes = 4; break;
      case 2: t.dtype.bits = 8; t.dtype.code = kDLFloat; break;  // float8: no such dtype here
      case 3: t.dtype.code = 6; break;  // bool
      case 4: t.ndim = -1; break;
      case 5: t.ndim = 1 << 20; break;  // a shape array that is not there
      case 6: if (n) t.shape = nullptr; else corrupt = false; break;
      case 7: t.byte_offset = std::numeric_limits<std::uint64_t>::max() - 3; break;
    }
  }
  try {
    xent::tensor_view r = xent::from_dlpack(t);
    FUZZ_ASSERT(!corrupt, "from_dlpack accepted corruption %d", mutate % 8);
    FUZZ_ASSERT(r.type == v.type && r.shape == v.shape && r.data == v.data, "from_dlpack changed the view");
    FUZZ_ASSERT(r.strides == v.strides, "from_dlpack strides");
    return r;
  } catch (const xent::error&) {
    return std::nullopt;
  }
}

// Row-major multi-index of flat position p in `shape`.
shape_t unflatten(std::int64_t p, const shape_t& shape) {
  shape_t idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = p % shape[d];
    p /= shape[d];
  }
  return idx;
}

const unsigned char* element(const tensor& t, const shape_t& idx) {
  std::int64_t off = 0;
  for (std::size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.view.strides[d];
  const auto* p = static_cast<const unsigned char*>(t.view.data) + off * static_cast<std::int64_t>(xent::size_of(t.view.type));
  FUZZ_ASSERT(p >= t.storage.get() && p + xent::size_of(t.view.type) <= t.storage.get() + t.storage_bytes,
              "element outside its allocation");
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const auto flags = in.ConsumeIntegral<std::uint16_t>();
  const bool with_grad = flags & 1, with_weight = flags & 2, with_upstream = flags & 4,
             prob = flags & 8, in_place = flags & 16, dlpack_logits = flags & 32,
             dlpack_target = flags & 64;

  // Options.
  xent::options opt;
  opt.reduce = static_cast<xent::reduction>(in.ConsumeIntegralInRange<int>(0, 2));
  static constexpr double eps_table[] = {0.0, 0.1, 1.0, 0.5, -0.1, 1.5, NAN, INFINITY, -0.0, 1e-300};
  const auto eps_mode = in.ConsumeIntegral<std::uint8_t>();
  opt.label_smoothing = eps_mode < 240 ? eps_table[eps_mode % std::size(eps_table)] : in.ConsumeFloatingPoint<double>();
  const bool eps_ok = !std::isnan(opt.label_smoothing) && opt.label_smoothing >= 0.0 && opt.label_smoothing <= 1.0;

  // Logits: a random shape; the rest derived from it, then perhaps mutated.
  tensor logits = make_tensor(in, random_shape(in, 4), xent::dtype::f32);
  const shape_t& ls = logits.view.shape;
  const std::size_t class_axis = ls.size() == 1 ? 0 : 1;
  shape_t positions;
  for (std::size_t d = 0; d < ls.size(); ++d)
    if (d != class_axis) positions.push_back(ls[d]);
  const std::int64_t C = ls.empty() ? 0 : ls[class_axis];
  static constexpr std::int64_t ignore_table[] = {-100, 0, 1, -1, 2, std::numeric_limits<std::int64_t>::min()};
  const auto ii = in.ConsumeIntegral<std::uint8_t>();
  opt.ignore_index = ii < 250 ? ignore_table[ii % std::size(ignore_table)] : C;
  auto maybe = [&](shape_t s) { return in.ConsumeIntegral<std::uint8_t>() < 240 ? s : random_shape(in, 4); };

  tensor target = make_tensor(in, maybe(prob ? ls : positions), prob ? xent::dtype::f32 : xent::dtype::i64);
  tensor weight;
  if (with_weight) weight = make_tensor(in, maybe({C}), xent::dtype::f32);
  shape_t out_shape = opt.reduce == xent::reduction::none ? positions : shape_t{};
  if (opt.reduce != xent::reduction::none && in.ConsumeBool()) out_shape = {1};
  tensor out = make_tensor(in, maybe(out_shape), xent::dtype::f32);
  tensor grad, upstream;
  if (with_grad && !in_place) grad = make_tensor(in, maybe(ls), xent::dtype::f32);
  if (with_grad && with_upstream)
    upstream = make_tensor(in, maybe(opt.reduce == xent::reduction::none && in.ConsumeBool() ? positions : shape_t{}),
                           xent::dtype::f32);
  fill_targets(in, target, C, opt.ignore_index);
  fill_floats(logits);
  fill_floats(weight);
  fill_floats(upstream);
  if (prob) fill_floats(target);

  // Skip what would only be slow: validation reads every index target, and a
  // huge (or unallocated) target that passes the size checks is legitimate.
  if (target.view.type == xent::dtype::i64 && !target.empty && !target.must_reject &&
      (!target.backed || target.count > walk_limit))
    return 0;

  xent::tensor_view lv = logits.view, tv = target.view;
  if (dlpack_logits) {
    auto r = via_dlpack(in, lv);
    if (!r) return 0;
    lv = *r;
  }
  if (dlpack_target) {
    auto r = via_dlpack(in, tv);
    if (!r) return 0;
    tv = *r;
  }
  if (with_weight) opt.weight = weight.view;
  const xent::tensor_view& gv = in_place ? logits.view : grad.view;
  const tensor& gt = in_place ? logits : grad;

  context = "flags " + std::to_string(flags) + " reduction " + xent::to_string(opt.reduce) + " ignore_index " +
            std::to_string(opt.ignore_index) + " label_smoothing " + std::to_string(opt.label_smoothing) + "\n" +
            describe("logits", lv) + describe("target", tv) + describe("out", out.view) +
            (with_weight ? describe("weight", weight.view) : "") + (with_grad ? describe("grad", gv) : "") +
            (with_grad && with_upstream ? describe("upstream", upstream.view) : "");
  xent::problem pr;
  try {
    pr = xent::make_problem(lv, tv, opt, out.view, with_grad ? &gv : nullptr,
                            with_grad && with_upstream ? &upstream.view : nullptr);
  } catch (const xent::error&) {
    return 0;  // a clear error: fine (unit tests check the messages)
  }

  // Accepted: nothing that must be rejected was passed.
  const tensor* passed[] = {&logits, &target, with_weight ? &weight : nullptr, &out,
                            with_grad ? &gt : nullptr, with_grad && with_upstream ? &upstream : nullptr};
  const char* names[] = {"logits", "target", "weight", "out", "grad", "upstream"};
  for (std::size_t i = 0; i < std::size(passed); ++i)
    if (passed[i]) FUZZ_ASSERT(!passed[i]->must_reject, "%s accepted: %s", names[i], passed[i]->why);
  FUZZ_ASSERT(eps_ok, "label_smoothing %g accepted", opt.label_smoothing);
  FUZZ_ASSERT(pr.classes == C, "classes %lld, expected %lld", (long long)pr.classes, (long long)C);
  i128 P = 1;
  for (auto e : positions) P *= e;
  FUZZ_ASSERT(pr.positions == P, "positions %lld", (long long)pr.positions);

  // Walk every element of an accepted, allocated problem.
  for (const tensor* t : passed)
    if (t && !t->backed && !t->empty) return 0;
  // Both factors at least 1: an empty batch may still have 2^40 classes whose
  // (stride-0, one-element) weight the walk below would visit one by one.
  if (static_cast<i128>(std::max<std::int64_t>(pr.positions, 1)) * std::max<std::int64_t>(pr.classes, 1) >
      walk_limit)
    return 0;
  // (address, bytes); inputs also say whether the element is a logit.
  std::vector<std::pair<const unsigned char*, std::size_t>> outputs;
  std::vector<std::tuple<const unsigned char*, std::size_t, bool>> inputs;
  auto at = [](const void* p) { return static_cast<const unsigned char*>(p); };
  // Element sizes: the logits' dtype (bfloat16/float16 problems address
  // 16-bit elements) and the loss's.
  const std::size_t bytes = xent::size_of(pr.type), out_bytes = xent::size_of(pr.out_type);
  for (std::int64_t p = 0; p < pr.positions; ++p) {
    const shape_t pos = unflatten(p, positions);
    auto with_class = [&](std::int64_t c) {
      shape_t idx = pos;
      if (!ls.empty()) idx.insert(idx.begin() + static_cast<std::ptrdiff_t>(std::min(idx.size(), class_axis)), c);
      return idx;
    };
    for (std::int64_t c = 0; c < pr.classes; ++c) {
      const auto idx = with_class(c);
      const auto* x = at(pr.element(pr.logits_row(p), c * pr.logits_class_stride));
      FUZZ_ASSERT(x == element(logits, idx), "logits element (%lld, %lld) misplaced", (long long)p, (long long)c);
      inputs.emplace_back(x, bytes, true);
      if (pr.target == xent::target_kind::probability) {
        const auto* q = at(pr.element(pr.target_row(p), c * pr.target_class_stride));
        FUZZ_ASSERT(q == element(target, idx), "target element misplaced");
        inputs.emplace_back(q, bytes, false);
      }
      if (pr.grad) {
        const auto* g = at(pr.element(pr.grad_row(p), c * pr.grad_class_stride));
        FUZZ_ASSERT(g == element(gt, idx), "grad element misplaced");
        outputs.emplace_back(g, bytes);
      }
    }
    if (pr.target == xent::target_kind::index) {
      const auto* y = at(pr.target_index + pr.offset(p, pr.target_position_strides));
      FUZZ_ASSERT(y == element(target, pos), "target index misplaced");
      inputs.emplace_back(y, 8, false);
    }
    if (pr.reduce == xent::reduction::none) {
      const auto* l = at(pr.loss_at(p));
      FUZZ_ASSERT(l == element(out, pos), "loss element misplaced");
      outputs.emplace_back(l, out_bytes);
    }
    if (pr.upstream) {
      const auto* u = at(pr.upstream) + pr.offset(p, pr.upstream_position_strides) * static_cast<std::int64_t>(out_bytes);
      FUZZ_ASSERT(u == element(upstream, pos), "upstream misplaced");
      inputs.emplace_back(u, out_bytes, false);
    }
  }
  if (pr.reduce != xent::reduction::none) {
    FUZZ_ASSERT(at(pr.loss) == element(out, shape_t(out.view.shape.size(), 0)), "scalar loss misplaced");
    outputs.emplace_back(at(pr.loss), out_bytes);
  }
  if (pr.weight)
    for (std::int64_t c = 0; c < pr.classes; ++c) {
      const auto* w = at(pr.element(pr.weight, c * pr.weight_stride));
      FUZZ_ASSERT(w == element(weight, {c}), "weight misplaced");
      inputs.emplace_back(w, bytes, false);
    }
  // Outputs: distinct, and apart from the inputs (the in-place gradient
  // excepted: it is its own logits element).
  std::sort(outputs.begin(), outputs.end());
  for (std::size_t i = 1; i < outputs.size(); ++i)
    FUZZ_ASSERT(outputs[i - 1].first + outputs[i - 1].second <= outputs[i].first, "two outputs share memory");
  std::sort(inputs.begin(), inputs.end());
  for (const auto& [o, ob] : outputs) {
    auto it = std::lower_bound(inputs.begin(), inputs.end(), std::make_tuple(o + ob, std::size_t{0}, false));
    while (it != inputs.begin()) {
      --it;
      const auto& [a, ab, is_logit] = *it;
      if (a + 8 <= o) break;  // inputs are at most 8 bytes
      const bool same_logit = in_place && is_logit && a == o;
      FUZZ_ASSERT(a + ab <= o || same_logit, "an output overlaps an input");
    }
  }

  // Run kernels on it: AddressSanitizer checks every access. stable takes
  // every dtype (a 16-bit problem through its float32 copy), naive float32
  // only; the vector kernels are not in this build (see CMakeLists.txt).
  static const auto stable = xent::make_stable_kernel();
  static const auto naive = xent::make_naive_kernel();
  for (const auto* k : {stable.get(), naive.get()}) {
    if (!(k->dtypes() & xent::dtype_bit(pr.type))) continue;
    if (with_grad) k->forward_backward(pr);
    else k->forward(pr);
  }
  return 0;
}

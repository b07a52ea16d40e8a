// Contracts: malformed inputs get the documented error and leave every output
// untouched; the special-value rules of docs/design.md §2; all-ignored and empty
// batches; C = 1; bitwise repeatability and thread-count independence.
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "generators.hpp"
#include "property.hpp"
#include "tracker.hpp"

namespace {

using namespace xent::props;
using xent::reduction;
using xent::tensor_view;

constexpr float sentinel = 12345.5f;

struct corruption {
  const char* name;
  const char* argument;  // xent::error::argument()
  const char* phrase;    // must appear in the message
};

// Each malformed input of docs/design.md §2 and the front door's documentation.
const corruption corruptions[] = {
    {"target out of range", "target", "out of bounds at position"},
    {"target shape", "target", "does not match"},
    {"target dtype", "target", "int64"},
    {"weight length", "weight", "length"},
    {"weight 2-D", "weight", "1-D"},
    {"label_smoothing > 1", "label_smoothing", "[0, 1]"},
    {"label_smoothing < 0", "label_smoothing", "[0, 1]"},
    {"label_smoothing NaN", "label_smoothing", "NaN"},
    {"ignore_index with probabilities", "ignore_index", "probability"},
    {"out shape", "out", "out"},
    {"grad shape", "grad", "grad"},
    {"upstream shape", "upstream", "upstream"},
    {"logits 0-d", "logits", "dimension"},
};

XENT_PROPERTY(contract_props, malformed_inputs_raise_and_write_nothing, 300) {
  case_spec s;
  s.max_elements = 256;
  const auto c = *gen_case(s);
  const auto which = *rc::gen::inRange<std::size_t>(0, std::size(corruptions));
  const corruption& k = corruptions[which];
  test_case m = c;
  const bool none = c.reduce == reduction::none;
  std::vector<float> out(static_cast<std::size_t>(c.positions() + 2), sentinel);
  std::vector<float> grad(static_cast<std::size_t>(c.elements() + 2), sentinel);
  std::vector<double> f64_targets(static_cast<std::size_t>(c.positions()), 0.0);
  std::vector<float> wide_weight(static_cast<std::size_t>(c.c + 1), 1.0f);
  std::vector<std::int64_t> long_target(static_cast<std::size_t>(c.positions() + 1), 0);
  std::vector<float> up(static_cast<std::size_t>(c.positions() + 2), 1.0f);
  tensor_view logits = m.logits_view(), target = m.target_view();
  tensor_view outv = none ? xent::view(out.data(), c.position_shape()) : xent::view(out.data(), {});
  tensor_view gradv = xent::view(grad.data(), c.logits_shape());
  tensor_view upv;
  const tensor_view* upp = m.upstream_view(upv);
  xent::options opt = m.opts();
  std::string applies;  // why this corruption does not apply to this case
  const std::string name = k.name;
  if (name == "target out of range") {
    if (c.prob) applies = "probability targets";
    else {
      const auto p = *rc::gen::inRange<std::int64_t>(0, c.positions());
      const std::vector<std::int64_t> bads{c.c, c.c + 7, -1, -101, std::numeric_limits<std::int64_t>::min()};
      const auto bad = *rc::gen::elementOf(bads);
      if (bad == c.ignore_index) applies = "the bad value is ignore_index";
      m.index[p] = bad;
    }
  } else if (name == "target shape") {
    if (c.prob) applies = "probability targets";
    else target = xent::view(long_target.data(), {c.positions() + 1});
  } else if (name == "target dtype") {
    if (c.prob) applies = "probability targets";
    else target = xent::view(f64_targets.data(), c.position_shape());
  } else if (name == "weight length") {
    opt.weight = xent::view(wide_weight.data(), {c.c + 1});
  } else if (name == "weight 2-D") {
    opt.weight = xent::view(wide_weight.data(), {1, c.c});
  } else if (name == "label_smoothing > 1") {
    opt.label_smoothing = *rc::gen::element(1.0000001, 1.5, std::numeric_limits<double>::infinity());
  } else if (name == "label_smoothing < 0") {
    opt.label_smoothing = *rc::gen::element(-1e-9, -0.5, -std::numeric_limits<double>::infinity());
  } else if (name == "label_smoothing NaN") {
    opt.label_smoothing = std::numeric_limits<double>::quiet_NaN();
  } else if (name == "ignore_index with probabilities") {
    if (!c.prob) applies = "index targets";
    else opt.ignore_index = *rc::gen::inRange<std::int64_t>(0, 3);
  } else if (name == "out shape") {
    outv = none ? xent::view(out.data(), {c.positions() + 1}) : xent::view(out.data(), {2});
  } else if (name == "grad shape") {
    gradv = xent::view(grad.data(), {c.elements() + 1});
  } else if (name == "upstream shape") {
    upv = xent::view(up.data(), {c.positions() + 2});
    upp = &upv;
  } else if (name == "logits 0-d") {
    logits = xent::view(m.storage.data(), {});
  }
  RC_PRE(applies.empty());
  const auto logits_before = m.storage;
  const bool fused_only = name == "grad shape" || name == "upstream shape";
  for (int fused = fused_only ? 1 : 0; fused < 2; ++fused) {
    std::string got;
    try {
      if (fused) xent::cross_entropy_forward_backward(logits, target, outv, gradv, opt, upp, &impl);
      else xent::cross_entropy(logits, target, outv, opt, &impl);
      got = "no error";
    } catch (const xent::error& e) {
      if (e.argument() != k.argument) got = "argument '" + e.argument() + "'";
      else if (std::string(e.what()).find(k.phrase) == std::string::npos) got = "message without '" + std::string(k.phrase) + "'";
      if (!got.empty()) got += ": " + std::string(e.what());
    } catch (const std::exception& e) {
      got = std::string("not a xent::error: ") + e.what();
    }
    if (!got.empty()) RC_FAIL(std::string(k.name) + (fused ? " (fused)" : "") + ": " + got);
    for (float v : out) RC_ASSERT(std::bit_cast<std::uint32_t>(v) == std::bit_cast<std::uint32_t>(sentinel));
    for (float v : grad) RC_ASSERT(std::bit_cast<std::uint32_t>(v) == std::bit_cast<std::uint32_t>(sentinel));
    RC_ASSERT(std::memcmp(logits_before.data(), m.storage.data(), m.storage.size() * sizeof(float)) == 0);
  }
}

// docs/design.md §2 special values, per counted row (index targets, no weight):
// NaN or +inf anywhere -> NaN; every logit -inf -> NaN; -inf on the target ->
// +inf; -inf elsewhere -> finite, or +inf when ε > 0. Ignored rows give 0.
XENT_PROPERTY(contract_props, special_values_follow_pytorch, 300) {
  case_spec s;
  s.regimes = {regime::special, regime::neg_inf_mask};
  s.weights = s.prob_targets = false;
  s.reductions = {reduction::none};
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  findings f;
  const auto o = run(impl, c, false);
  for (std::int64_t p = 0; p < c.positions(); ++p) {
    const double l = o.loss[p];
    const std::string at = "row " + std::to_string(p) + ": ";
    if (!c.counted(p)) {
      if (l != 0.0f) f.fail(at + "ignored row has loss " + fmt(l));
      continue;
    }
    bool nan_or_pinf = false, all_neg_inf = true, some_neg_inf = false;
    for (std::int64_t j = 0; j < c.c; ++j) {
      const float v = c.x(p, j);
      nan_or_pinf |= std::isnan(v) || v == std::numeric_limits<float>::infinity();
      all_neg_inf &= v == -std::numeric_limits<float>::infinity();
      some_neg_inf |= v == -std::numeric_limits<float>::infinity();
    }
    const bool target_neg_inf = c.x(p, c.index[p]) == -std::numeric_limits<float>::infinity();
    const char* want;
    bool ok;
    if (nan_or_pinf || all_neg_inf) want = "NaN", ok = std::isnan(l);
    else if (target_neg_inf && c.eps == 1.0) continue;  // (1-ε)·inf: PyTorch's 0·inf is NaN; not specified
    else if (target_neg_inf || (some_neg_inf && c.eps > 0.0)) want = "+inf", ok = l == std::numeric_limits<float>::infinity();
    else want = "finite", ok = std::isfinite(l);
    if (!ok) f.fail(at + "loss " + fmt(l) + ", docs/design.md §2 says " + want);
  }
  scope.conclude(f);
}

// Every target ignored: mean NaN, sum 0, none zeros, gradient zeros. Empty
// batch (N = 0): mean NaN, sum 0, none empty.
XENT_PROPERTY(contract_props, all_ignored_and_empty, 200) {
  case_spec s;
  s.prob_targets = false;
  s.single = false;
  const auto c0 = *gen_case(s);
  const bool empty = *rc::gen::weightedElement<bool>({{3, false}, {1, true}});
  test_case c = empty ? c0.reshaped(0, c0.c) : c0;
  if (!empty) std::fill(c.index.begin(), c.index.end(), c.ignore_index);
  if (empty && c.upstream.size() > 1) c.upstream.clear();
  case_scope scope(impl, c);
  findings f;
  for (int fused = 0; fused < 2; ++fused) {
    const auto o = run(impl, c, fused == 1);
    const std::string via = fused ? " (forward_backward)" : "";
    if (c.reduce == reduction::mean && !std::isnan(o.loss[0])) f.fail("mean " + fmt(o.loss[0]) + via + ", want NaN");
    if (c.reduce == reduction::sum && !(o.loss[0] == 0.0f)) f.fail("sum " + fmt(o.loss[0]) + via + ", want 0");
    if (c.reduce == reduction::none)
      for (double l : o.loss)
        if (l != 0.0f) f.fail("none " + fmt(l) + via + ", want 0");
    for (double g : o.grad)
      if (g != 0.0f) {
        f.fail("gradient " + fmt(g) + ", want 0");
        break;
      }
  }
  scope.conclude(f);
}

// C = 1: the loss is exactly 0 (index targets, and float targets of the
// logits' shape, the classic "regression targets" bug), gradient 0.
XENT_PROPERTY(contract_props, one_class_gives_zero, 100) {
  case_spec s;
  s.regimes = finite_regimes();
  s.min_classes = s.max_classes = 1;
  s.ignore = false;
  const auto c = *gen_case(s);
  RC_PRE(denominator(c) != 0.0);  // mean over zero total weight is 0/0 = NaN, not a C = 1 fact
  case_scope scope(impl, c);
  findings f;
  const auto o = run(impl, c, true);
  for (double l : o.loss)
    if (l != 0.0f) f.fail("loss " + fmt(l) + ", want 0");
  for (double g : o.grad)
    if (g != 0.0f) f.fail("gradient " + fmt(g) + ", want 0");
  scope.conclude(f);
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

// The gradient written over the logits (grad is the logits view itself, as
// PyTorch users do with `out=` buffers and fused in-place steps) equals the
// gradient written into a separate buffer: a kernel must read a row
// completely before it writes the row's gradient. Bitwise for kernels that
// declare layout independence; within the tier for the others.
XENT_PROPERTY(contract_props, in_place_gradient_matches, 150) {
  const auto c = *gen_case({});
  case_scope scope(impl, c);
  const auto a = run(impl, c, true), b = run_in_place(impl, c);
  findings f;
  const bool bitwise = impl.layout_independent();
  auto same = [&](double x, double y) {
    return std::bit_cast<std::uint64_t>(x) == std::bit_cast<std::uint64_t>(y) || (std::isnan(x) && std::isnan(y));
  };
  for (std::size_t i = 0; i < a.loss.size(); ++i) {
    const bool ok = bitwise ? same(a.loss[i], b.loss[i])
                            : (c.reduce == reduction::none
                                   ? agree(impl.tier(), quantity::loss, a.loss[i], b.loss[i],
                                           context(c, static_cast<std::int64_t>(i)))
                                   : agree(impl.tier(), quantity::reduction, a.loss[i], b.loss[i], {}));
    if (!ok) f.fail("loss[" + std::to_string(i) + "]: separate buffer " + fmt(a.loss[i]) + ", in place " + fmt(b.loss[i]));
  }
  for (std::int64_t p = 0; p < c.positions(); ++p) {
    const row_context ctx = context(c, p);
    for (std::int64_t j = 0; j < c.c; ++j) {
      const auto i = static_cast<std::size_t>(p * c.c + j);
      const bool ok = bitwise ? same(a.grad[i], b.grad[i])
                              : agree(impl.tier(), quantity::gradient, a.grad[i], b.grad[i], ctx,
                                      cancellation_allowance(c, p, j, ctx));
      if (!ok)
        f.fail("grad[" + std::to_string(p) + "," + std::to_string(j) + "]: separate buffer " + fmt(a.grad[i]) +
               ", in place " + fmt(b.grad[i]) + (bitwise ? " (bitwise equality declared)" : ""));
    }
  }
  scope.conclude(f, "in-place gradient differs from the separate-buffer gradient");
}

// Repeated calls give bitwise identical results.
XENT_PROPERTY(contract_props, repeated_calls_bitwise_identical, 200) {
  const auto c = *gen_case({});
  const auto a = run(impl, c, true), b = run(impl, c, true);
  const auto l1 = run(impl, c, false), l2 = run(impl, c, false);
  RC_ASSERT(same_bits(a.loss, b.loss));
  RC_ASSERT(same_bits(a.grad, b.grad));
  RC_ASSERT(same_bits(l1.loss, l2.loss));
}

// Implementations that declare it give bitwise identical results for 1 and 2
// threads (sizes above any single-thread threshold, long rows included).
XENT_PROPERTY(contract_props, thread_count_independent, 12) {
  require(impl.thread_count_independent(), "it does not declare thread-count independence");
  case_spec s;
  s.max_elements = 1 << 21;
  s.max_rows = 4096;
  s.vocab = *rc::gen::weightedElement<bool>({{2, false}, {1, true}});
  s.min_classes = 64;
  const auto c = *gen_case(s);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = run(impl, c, true);
  omp_set_num_threads(2);
  const auto two = run(impl, c, true);
  omp_set_num_threads(saved);
  RC_ASSERT(same_bits(one.loss, two.loss));
  RC_ASSERT(same_bits(one.grad, two.grad));
}

// The same logical case (values, targets, options, positions in order) in
// another memory layout. Spatial: (1, C, P), or (N, C, P/N) from a spatial case.
test_case relayout(const test_case& c, layout to) {
  const std::int64_t P = c.positions();
  test_case r = to == layout::spatial ? test_case::shaped(layout::spatial, 1, c.c, P, 0, c.prob)
                                      : test_case::shaped(to, P, c.c, 1, to == layout::strided ? 3 : 0, c.prob);
  for (std::int64_t p = 0; p < P; ++p)
    for (std::int64_t j = 0; j < c.c; ++j) {
      r.x(p, j) = c.x(p, j);
      if (c.prob) r.qv(p, j) = c.qv(p, j);
    }
  if (!c.prob) r.index = c.index;
  r.weight = c.weight;
  r.ignore_index = c.ignore_index;
  r.reduce = c.reduce;
  r.eps = c.eps;
  r.upstream = c.upstream;
  r.regime = c.regime;
  return r;
}

// Implementations that declare it give bitwise identical results for the
// same values in any layout: a strided view, an (N, C, d) tensor and its
// contiguous (N*d, C) copy, and a row alone or in a batch (our kernels take
// different paths for these).
XENT_PROPERTY(contract_props, layout_independent, 200) {
  require(impl.layout_independent(), "it does not declare layout independence");
  const auto c = *gen_case({});
  const auto to = *rc::gen::element(layout::contiguous, layout::strided, layout::spatial);
  const test_case r = relayout(c, to);
  RC_LOG() << "relaid out as " << to_string(to) << ": " << r.shape_tag() << "\n";
  const auto a = run(impl, c, true), b = run(impl, r, true);
  RC_ASSERT(same_bits(a.loss, b.loss));
  RC_ASSERT(same_bits(a.grad, b.grad));
  const auto la = run(impl, c, false), lb = run(impl, r, false);
  RC_ASSERT(same_bits(la.loss, lb.loss));
  // A row alone (a batch of one takes the row path) gives the bits it gets
  // in the batch (which may take a column path).
  if (c.reduce != reduction::none) return;
  const auto p0 = *rc::gen::inRange<std::int64_t>(0, c.positions());
  test_case one = test_case::shaped(layout::contiguous, 1, c.c, 1, 0, c.prob);
  for (std::int64_t j = 0; j < c.c; ++j) {
    one.x(0, j) = c.x(p0, j);
    if (c.prob) one.qv(0, j) = c.qv(p0, j);
  }
  if (!c.prob) one.index = {c.index[static_cast<std::size_t>(p0)]};
  one.weight = c.weight;
  one.ignore_index = c.ignore_index;
  one.reduce = c.reduce;
  one.eps = c.eps;
  if (!c.upstream.empty()) one.upstream = {c.upstream_at(p0)};
  const auto o = run(impl, one, true);
  RC_ASSERT(std::bit_cast<std::uint64_t>(o.loss[0]) ==
            std::bit_cast<std::uint64_t>(a.loss[static_cast<std::size_t>(p0)]));
  RC_ASSERT(std::memcmp(o.grad.data(), a.grad.data() + p0 * c.c, o.grad.size() * sizeof(double)) == 0);
}

}  // namespace

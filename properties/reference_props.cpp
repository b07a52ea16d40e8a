// Reference-based properties: every output within the implementation's tier
// of the multiprecision reference (docs/design.md §3, §5).
#include <algorithm>
#include <cmath>
#include <limits>

#include "generators.hpp"
#include "property.hpp"
#include "tracker.hpp"

namespace {

using namespace xent::props;
using xent::reduction;

// Per-position losses (`none`), every regime, every option.
XENT_PROPERTY(reference_props, loss_within_tier, 300) {
  case_spec s;
  s.reductions = {reduction::none};
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, false));
}

// Every gradient entry (`none` with per-position upstream gradients).
XENT_PROPERTY(reference_props, gradient_within_tier, 300) {
  case_spec s;
  s.reductions = {reduction::none};
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, true));
}

// mean and sum, loss-only and fused; the gradient carries the 1/D scale.
XENT_PROPERTY(reference_props, reduction_within_tier, 300) {
  case_spec s;
  s.reductions = {reduction::mean, reduction::sum};
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, true));
}

// Label smoothing, weights, ignore_index in range and probability targets
// (each case has at least one of them) against the formulas of docs/design.md §2.
XENT_PROPERTY(reference_props, options_within_tier, 300) {
  case_spec s;
  s.special_values = false;
  const auto c = *gen_case(s);
  RC_PRE(c.eps > 0.0 || !c.weight.empty() || c.prob || c.ignore_index >= 0);
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, true));
}

// Class weights from 1e-20 to 1e20 (every reduction, fused): the gradient
// scale w_t / S moves far from 1, so entries whose e^{x - M} is far below
// the kernels' cut-offs still have normal values, and others turn subnormal.
XENT_PROPERTY(reference_props, wide_weights_within_tier, 150) {
  case_spec s;
  s.special_values = false;  // NaN/inf rows: the other properties
  s.weight_chance = 1.0;
  s.weight_log_span = 46.0;
  const auto c = *gen_case(s);
  RC_PRE(!c.weight.empty());
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, true));
}

// One-hot-dominant logits, margin M in [5, 100]: 0 <= L <= (C-1) e^{-M}, the
// loss is 0 only where the true loss rounds to 0, and accurate/fast tiers keep
// relative accuracy (the ulp bound) for the loss and the target gradient entry.
XENT_PROPERTY(reference_props, dominant_target_keeps_relative_accuracy, 300) {
  case_spec s;
  s.regimes = {xent::props::regime::dominant};
  s.prob_targets = s.weights = s.smoothing = s.ignore = s.upstream = false;
  s.min_classes = 2;
  s.reductions = {reduction::none};
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  findings f = against_reference(impl, c, true);
  const auto o = run(impl, c, false);
  const auto r = reference(c, false);
  for (std::int64_t p = 0; p < c.positions(); ++p) {
    const std::int64_t t = c.index[p];
    double others = -std::numeric_limits<double>::infinity();
    for (std::int64_t j = 0; j < c.c; ++j)
      if (j != t) others = std::max(others, static_cast<double>(c.x(p, j)));
    const double margin = static_cast<double>(c.x(p, t)) - others;
    if (!(margin >= 5.0)) continue;  // the dominant class is not the target in this row
    const double upper = static_cast<double>(c.c - 1) * std::exp(-margin);
    const double l = o.loss[p];
    const std::string at = "row " + std::to_string(p) + " (margin " + fmt(margin) + ")";
    // The true loss is in [0, upper]; the kernel may be off by its tier's loss bound.
    const bound lim = bound_for(impl.tier(), quantity::loss, context(c, p));
    const double tol = lim.kind == bound::absolute ? lim.value : lim.value * ulp_of(upper);
    if (!(l >= 0.0f) || l > upper * (1 + 1e-12) + tol)
      f.fail(at + ": loss " + fmt(l) + " outside [0, (C-1)e^-M = " + fmt(upper) + "]");
    const bool ulp_tier = impl.tier() == xent::tier::correctly_rounded || impl.tier() == xent::tier::accurate ||
                          impl.tier() == xent::tier::fast || impl.tier() == xent::tier::relaxed;
    if (ulp_tier && l == 0.0f && xent::ref::to_float(r.loss[p]) != 0.0f)
      f.fail(at + ": loss is 0 but the true loss " + xent::ref::to_string(r.loss[p], 9) + " is not");
  }
  scope.conclude(f);
}

// All logits equal (any value, huge ones included): the loss is ln C.
XENT_PROPERTY(reference_props, uniform_logits_give_ln_C, 150) {
  case_spec s;
  s.regimes = {xent::props::regime::uniform};
  s.prob_targets = s.weights = s.ignore = s.upstream = false;
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  findings f = against_reference(impl, c, c.reduce == reduction::none);
  const auto r = reference(c, false);
  const double lnC = std::log(static_cast<double>(c.c)) *
                     (c.reduce == reduction::sum ? static_cast<double>(c.positions()) : 1.0);
  const double ref_value = xent::ref::to_double(c.reduce == reduction::none ? r.loss[0] : r.reduced);
  if (c.positions() > 0 && std::isfinite(ref_value) && std::fabs(ref_value - lnC) > 1e-14 * std::max(1.0, lnC))
    f.fail("reference gives " + fmt(ref_value) + " for uniform logits, ln C (times N for sum) = " + fmt(lnC));
  scope.conclude(f);
}

// C = 2: the loss equals log1p(exp(x_o - x_t)) (evaluated stably in double,
// far more accurate than a float32 ulp).
XENT_PROPERTY(reference_props, two_classes_match_log1p_exp, 300) {
  case_spec s;
  s.regimes = finite_regimes();
  s.min_classes = s.max_classes = 2;
  s.prob_targets = s.weights = s.smoothing = s.ignore = s.upstream = false;
  s.reductions = {reduction::none};
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  findings f = against_reference(impl, c, true);
  const auto o = run(impl, c, false);
  for (std::int64_t p = 0; p < c.positions(); ++p) {
    const std::int64_t t = c.index[p];
    const double d = static_cast<double>(c.x(p, 1 - t)) - static_cast<double>(c.x(p, t));
    const double closed = d > 0 ? d + std::log1p(std::exp(-d)) : std::log1p(std::exp(d));
    // The closed form is a float64 value, not exact: correct rounding is
    // judged against the reference (against_reference above), here 0.5 ulp + tiny.
    const xent::tier judged = impl.tier() == xent::tier::correctly_rounded ? xent::tier::accurate : impl.tier();
    const auto cmp = compare(judged, quantity::loss, o.loss[p], {closed, 0.0}, context(c, p));
    if (!cmp.ok)
      f.fail("row " + std::to_string(p) + ": loss " + fmt(o.loss[p]) + " vs log1p(exp(" + fmt(d) +
             ")) = " + fmt(closed) + " (" + fmt(cmp.ulps) + " ulp, allowed " + cmp.limit.describe() + ")");
  }
  scope.conclude(f);
}

// LLM vocabularies (32000 … 256000 classes, 1–2 rows): loss, gradient and
// reduction within the tier (fast tier: "all regimes incl. C = 256k").
XENT_PROPERTY(reference_props, llm_vocab_within_tier, 6) {
  case_spec s;
  s.vocab = true;
  s.regimes = {regime::normal, regime::dominant, regime::ties, regime::near_overflow, regime::normal};
  s.layouts = s.single = false;
  s.prob_targets = false;
  s.reductions = {reduction::none, reduction::mean};
  s.max_elements = 512000;
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, true));
}

// Rows of 2049 … 6144 classes (past the column paths; `throughput` computes
// them with its relaxed numerics), every regime, option, layout and
// reduction: loss, gradient and reduction within the tier.
XENT_PROPERTY(reference_props, mid_vocab_within_tier, 40) {
  case_spec s;
  s.mid_vocab = true;
  s.max_elements = 16384;
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  scope.conclude(against_reference(impl, c, true));
}

}  // namespace

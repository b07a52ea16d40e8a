// Metamorphic properties: relations between outputs of related inputs, judged
// with the tier's bound on each side (no reference needed), plus the
// reference-free facts of docs/design.md §5 (signs, bounds, Σ g = 0) and finite
// differences of the reference loss against the kernel's gradient.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "generators.hpp"
#include "property.hpp"
#include "tracker.hpp"

namespace {

using namespace xent::props;
using xent::reduction;

row_context widest(row_context a, const row_context& b) {
  a.lse = std::max(std::fabs(a.lse), std::fabs(b.lse));
  a.gap = std::max(a.gap, b.gap);
  a.coeff = std::max(a.coeff, b.coeff);
  a.scale = std::max(a.scale, b.scale);
  a.classes = std::max(a.classes, b.classes);
  return a;
}

void copy_row(const test_case& a, std::int64_t p, test_case& b, std::int64_t q) {
  for (std::int64_t j = 0; j < a.c; ++j) {
    b.x(q, j) = a.x(p, j);
    if (a.prob) b.qv(q, j) = a.qv(p, j);
  }
  if (!a.prob) b.index[q] = a.index[p];
  if (a.upstream.size() > 1) {
    b.upstream.resize(static_cast<std::size_t>(b.positions()), 1.0f);
    b.upstream[q] = a.upstream[p];
  }
}

// Rows [from, to) of a, as a case of its own (same layout and options).
test_case rows(const test_case& a, std::int64_t from_n, std::int64_t to_n) {
  test_case b = a.reshaped(to_n - from_n, a.c);
  b.weight = a.weight;
  const std::int64_t per = a.positions() / std::max<std::int64_t>(1, a.n);  // d
  for (std::int64_t p = from_n * per; p < to_n * per; ++p) copy_row(a, p, b, p - from_n * per);
  return b;
}

std::string at(std::int64_t p, std::int64_t j = -1) {
  std::string s = "[";
  s += std::to_string(p);
  if (j >= 0) {
    s += ',';
    s += std::to_string(j);
  }
  s += ']';
  return s;
}

// Compares per-position losses and gradients of two runs that must agree.
void compare_runs(const xent::implementation& impl, const test_case& c, const outputs& a, const outputs& b,
                  findings& f, const std::string& label, const std::vector<std::int64_t>* class_map = nullptr,
                  const test_case* other = nullptr) {
  const auto t = impl.tier();
  const std::int64_t P = c.positions();
  for (std::int64_t p = 0; p < P && c.reduce == reduction::none; ++p) {
    const row_context ctx = other ? widest(context(c, p), context(*other, p)) : context(c, p);
    if (!agree(t, quantity::loss, a.loss[p], b.loss[p], ctx))
      f.fail(label + " loss" + at(p) + ": " + fmt(a.loss[p]) + " vs " + fmt(b.loss[p]));
  }
  if (c.reduce != reduction::none && !agree(t, quantity::reduction, a.loss[0], b.loss[0], {}))
    f.fail(label + " " + to_string(c.reduce) + ": " + fmt(a.loss[0]) + " vs " + fmt(b.loss[0]));
  if (a.grad.empty() || b.grad.empty()) return;
  const std::int64_t Cb = other ? other->c : c.c;
  for (std::int64_t p = 0; p < P; ++p) {
    const row_context ctx = other ? widest(context(c, p), context(*other, p)) : context(c, p);
    for (std::int64_t j = 0; j < c.c; ++j) {
      const std::int64_t k = class_map ? (*class_map)[j] : j;
      const double ga = a.grad[p * c.c + j], gb = b.grad[p * Cb + k];
      double cancel = cancellation_allowance(c, p, j, ctx);
      if (other) cancel = std::max(cancel, cancellation_allowance(*other, p, k, ctx));
      if (!agree(t, quantity::gradient, ga, gb, ctx, cancel))
        f.fail(label + " grad" + at(p, j) + ": " + fmt(ga) + " vs " + fmt(gb));
    }
  }
}

// x + s for a grid shift s: exact in float, so the softmax is unchanged.
XENT_PROPERTY(metamorphic_props, shift_invariance, 300) {
  case_spec s;
  s.grid = true;
  const auto c = *gen_case(s);
  const double shift = *rc::gen::inRange(-262144, 262145) / 4096.0;  // |s| <= 64, on the grid
  test_case shifted = c;
  for (std::int64_t p = 0; p < c.positions(); ++p)
    for (std::int64_t j = 0; j < c.c; ++j) shifted.x(p, j) = static_cast<float>(c.x(p, j) + shift);
  case_scope scope(impl, c);
  case_scope scope2(impl, shifted);
  findings f;
  compare_runs(impl, c, run(impl, c, true), run(impl, shifted, true), f, "shift " + fmt(shift), nullptr, &shifted);
  (scope.inside() ? scope2 : scope).conclude(f);
}

// Permuting the classes (logits, weights, probability targets) with the target
// moved along permutes the gradient and leaves the loss unchanged.
XENT_PROPERTY(metamorphic_props, class_permutation, 300) {
  case_spec s;
  s.reductions = {reduction::none, reduction::mean};
  const auto c = *gen_case(s);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(c.c));
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 g(*rc::gen::arbitrary<std::uint64_t>());
  std::shuffle(perm.begin(), perm.end(), g);
  test_case q = c;
  for (std::int64_t p = 0; p < c.positions(); ++p) {
    for (std::int64_t j = 0; j < c.c; ++j) {
      q.x(p, perm[j]) = c.x(p, j);
      if (c.prob) q.qv(p, perm[j]) = c.qv(p, j);
    }
    if (!c.prob && c.index[p] >= 0 && c.index[p] < c.c) q.index[p] = perm[c.index[p]];
  }
  if (!c.weight.empty())
    for (std::int64_t j = 0; j < c.c; ++j) q.weight[perm[j]] = c.weight[j];
  // An in-range ignore_index names a target value: it moves with the classes.
  if (!c.prob && c.ignore_index >= 0 && c.ignore_index < c.c) q.ignore_index = perm[c.ignore_index];
  case_scope scope(impl, c);
  findings f;
  compare_runs(impl, c, run(impl, c, true), run(impl, q, true), f, "permuted", &perm, &q);
  scope.conclude(f);
}

// Extra classes of -inf (ε = 0, index targets) change neither the loss nor the
// other gradient entries, and their own gradient is exactly 0.
XENT_PROPERTY(metamorphic_props, neg_inf_classes_change_nothing, 300) {
  case_spec s;
  s.special_values = false;
  s.smoothing = s.prob_targets = s.ignore = false;
  const auto c = *gen_case(s);
  const std::int64_t extra = *rc::gen::inRange<std::int64_t>(1, 5);
  std::mt19937_64 g(*rc::gen::arbitrary<std::uint64_t>());
  // Where the original classes go in the widened row.
  std::vector<bool> is_new(static_cast<std::size_t>(c.c + extra), false);
  for (std::int64_t k = 0; k < extra;) {
    const auto i = std::uniform_int_distribution<std::int64_t>(0, c.c + extra - 1)(g);
    if (!is_new[i]) is_new[i] = true, ++k;
  }
  std::vector<std::int64_t> map;
  for (std::int64_t i = 0; i < c.c + extra; ++i)
    if (!is_new[i]) map.push_back(i);
  test_case w = c.reshaped(c.n, c.c + extra);
  if (!c.weight.empty())
    for (std::int64_t i = 0; i < c.c + extra; ++i) w.weight[i] = 0.5f + static_cast<float>(i % 3);
  for (std::int64_t p = 0; p < c.positions(); ++p) {
    for (std::int64_t i = 0; i < c.c + extra; ++i) w.x(p, i) = -std::numeric_limits<float>::infinity();
    for (std::int64_t j = 0; j < c.c; ++j) {
      w.x(p, map[j]) = c.x(p, j);
      if (!c.weight.empty()) w.weight[map[j]] = c.weight[j];
    }
    w.index[p] = c.index[p] >= 0 ? map[c.index[p]] : c.index[p];
  }
  w.upstream = c.upstream;
  case_scope scope(impl, c);
  findings f;
  const auto a = run(impl, c, true), b = run(impl, w, true);
  compare_runs(impl, c, a, b, f, "with -inf classes", &map, &w);
  for (std::int64_t p = 0; p < c.positions(); ++p)
    for (std::int64_t i = 0; i < w.c; ++i)
      if (is_new[i] && b.grad[p * w.c + i] != 0.0f && !std::isnan(b.grad[p * w.c + i]))
        f.fail("grad of the -inf class" + at(p, i) + " is " + fmt(b.grad[p * w.c + i]) + ", not 0");
  scope.conclude(f);
}

// sum over a batch = sum over its two halves; with sum, each row's gradient
// does not depend on the other rows.
XENT_PROPERTY(metamorphic_props, batch_split_concat, 300) {
  case_spec s;
  s.single = false;
  s.reductions = {reduction::sum};
  const auto c = *gen_case(s);
  RC_PRE(c.n >= 2);
  const std::int64_t k = *rc::gen::inRange<std::int64_t>(1, c.n);
  const test_case a = rows(c, 0, k), b = rows(c, k, c.n);
  case_scope scope(impl, c);
  findings f;
  const auto whole = run(impl, c, true), oa = run(impl, a, true), ob = run(impl, b, true);
  const double S = whole.loss[0], Sa = oa.loss[0], Sb = ob.loss[0];
  const double parts = static_cast<double>(Sa) + static_cast<double>(Sb);
  const bound lim = bound_for(impl.tier(), quantity::reduction, {});
  if (lim.kind == bound::ulps && std::isfinite(S) && std::isfinite(parts)) {
    const double tol = lim.value * (ulp_of(S) + ulp_of(Sa) + ulp_of(Sb));
    if (std::fabs(S - parts) > tol)
      f.fail("sum " + fmt(S) + " vs " + fmt(Sa) + " + " + fmt(Sb) + " (split at row " + std::to_string(k) + ")");
  } else if (lim.kind == bound::ulps && std::isnan(S) != std::isnan(parts)) {
    f.fail("sum " + fmt(S) + " vs parts " + fmt(parts));
  }
  outputs joined;
  joined.loss = {S};
  joined.grad = oa.grad;
  joined.grad.insert(joined.grad.end(), ob.grad.begin(), ob.grad.end());
  outputs w2 = whole;
  w2.loss = {S};
  compare_runs(impl, c, w2, joined, f, "split");
  scope.conclude(f);
}

// Duplicating the batch keeps the mean and halves every gradient entry.
XENT_PROPERTY(metamorphic_props, duplicated_batch_keeps_mean, 300) {
  case_spec s;
  s.single = false;
  s.reductions = {reduction::mean};
  const auto c = *gen_case(s);
  test_case dup = c.reshaped(2 * c.n, c.c);
  dup.weight = c.weight;
  const std::int64_t P = c.positions();
  for (std::int64_t p = 0; p < P; ++p) {
    copy_row(c, p, dup, p);
    copy_row(c, p, dup, p + P);
  }
  case_scope scope(impl, c);
  findings f;
  const auto a = run(impl, c, true);
  auto b = run(impl, dup, true);
  b.grad.resize(a.grad.size());
  for (std::size_t i = 0; i < b.grad.size(); ++i) {
    const double half = b.grad[i];
    b.grad[i] = 2.0f * half;  // exact (no overflow at these magnitudes)
    // Below FLT_MIN the halved entry had a rounding of its own: 2 RN(g/2) is
    // within 2^-149 of RN(g), not always equal to it.
    if (std::fabs(half) < std::numeric_limits<float>::min() && std::fabs(b.grad[i] - a.grad[i]) <= 0x1p-149f)
      b.grad[i] = a.grad[i];
  }
  compare_runs(impl, c, a, b, f, "duplicated");
  scope.conclude(f);
}

// Unweighted, ε = 0, index targets: Σ_j g_j = 0 in each counted row, within
// the sum of the entries' allowed errors.
XENT_PROPERTY(metamorphic_props, gradient_rows_sum_to_zero, 300) {
  require(bound_for(impl.tier(), quantity::gradient, {}).kind != bound::none,
          "the " + xent::to_string(impl.tier()) + " tier promises no gradient bound");
  case_spec s;
  s.regimes = finite_regimes();
  s.weights = s.smoothing = s.prob_targets = false;
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  findings f;
  const auto o = run(impl, c, true);
  for (std::int64_t p = 0; p < c.positions(); ++p) {
    if (!c.counted(p)) continue;
    const row_context ctx = context(c, p);
    const bound lim = bound_for(impl.tier(), quantity::gradient, ctx);
    double sum = 0.0, tol = 0.0;
    for (std::int64_t j = 0; j < c.c; ++j) {
      const double gj = o.grad[p * c.c + j];
      sum += gj;
      tol += lim.kind == bound::ulps ? lim.value * ulp_of(gj) : lim.value;
    }
    tol *= 1.001;
    if (std::isfinite(sum) && std::fabs(sum) > tol + 0x1p-149)
      f.fail("row " + std::to_string(p) + ": Σ_j g_j = " + fmt(sum) + " (allowed " + fmt(tol) + ")");
  }
  scope.conclude(f);
}

// Unweighted, ε = 0, upstream 1, none or sum: g_t in [-1, 0], g_j in [0, 1].
XENT_PROPERTY(metamorphic_props, gradient_signs_and_range, 300) {
  case_spec s;
  s.weights = s.smoothing = s.prob_targets = s.upstream = false;
  s.special_values = false;
  s.regimes = finite_regimes();
  s.regimes.push_back(regime::neg_inf_mask);
  s.reductions = {reduction::none, reduction::sum};
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  findings f;
  const auto o = run(impl, c, true);
  for (std::int64_t p = 0; p < c.positions(); ++p)
    for (std::int64_t j = 0; j < c.c; ++j) {
      const double gj = o.grad[p * c.c + j];
      if (std::isnan(gj)) continue;  // undefined rows (all -inf) are §2's business
      const bool target = c.counted(p) && c.index[p] == j;
      const bool ok = target ? (gj >= -1.0f && gj <= 0.0f) : (gj >= 0.0f && gj <= 1.0f);
      if (!ok) f.fail("grad" + at(p, j) + (target ? " (target)" : "") + " = " + fmt(gj) + " out of range");
    }
  scope.conclude(f);
}

// Non-negative weights and targets: every loss is NaN, +inf or >= +0 (never -0).
XENT_PROPERTY(metamorphic_props, loss_nonnegative, 300) {
  const auto c = *gen_case({});
  case_scope scope(impl, c);
  findings f;
  const auto o = run(impl, c, false);
  for (std::size_t i = 0; i < o.loss.size(); ++i) {
    const double l = o.loss[i];
    if (!std::isnan(l) && (l < 0.0f || std::signbit(l))) f.fail("loss" + at(static_cast<std::int64_t>(i)) + " = " + fmt(l));
  }
  scope.conclude(f);
}

// Unweighted, ε = 0: max_j x_j - x_t <= L <= max_j x_j - x_t + ln C.
XENT_PROPERTY(metamorphic_props, loss_bounds, 300) {
  case_spec s;
  s.regimes = finite_regimes();
  s.weights = s.smoothing = s.prob_targets = false;
  s.reductions = {reduction::none};
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  findings f;
  const auto o = run(impl, c, false);
  for (std::int64_t p = 0; p < c.positions(); ++p) {
    if (!c.counted(p)) continue;
    double m = -std::numeric_limits<double>::infinity();
    for (std::int64_t j = 0; j < c.c; ++j) m = std::max(m, static_cast<double>(c.x(p, j)));
    const double gap = m - static_cast<double>(c.x(p, c.index[p]));
    const double lo = gap, hi = gap + std::log(static_cast<double>(c.c));
    const double l = o.loss[p];
    const bound lim = bound_for(impl.tier(), quantity::loss, context(c, p));
    // A correctly rounded loss is within half an ulp of the true one.
    const bool in_ulps = lim.kind == bound::ulps || lim.kind == bound::rounded;
    const double tol = (in_ulps ? lim.value * ulp_of(l) : lim.value) + 1e-15 * std::fabs(hi);
    if (!(l >= lo - tol && l <= hi + tol))
      f.fail("row " + std::to_string(p) + ": loss " + fmt(l) + " outside [" + fmt(lo) + ", " + fmt(hi) + "]");
  }
  scope.conclude(f);
}

// One-hot probability targets equal index targets (unweighted, any ε).
XENT_PROPERTY(metamorphic_props, soft_one_hot_equals_index, 300) {
  case_spec s;
  s.weights = s.prob_targets = s.ignore = false;
  // A -inf logit makes q_c lp_c = 0 * -inf = NaN for probability targets
  // (PyTorch's semantics), where index targets never touch it: not the same.
  s.regimes = finite_regimes();
  const auto c = *gen_case(s);
  test_case q = test_case::shaped(c.lay, c.n, c.c, c.d, c.pad, true);
  q.storage = c.storage;
  q.reduce = c.reduce;
  q.eps = c.eps;
  q.upstream = c.upstream;
  q.regime = c.regime;
  for (std::int64_t p = 0; p < c.positions(); ++p) q.qv(p, c.index[p]) = 1.0f;
  case_scope scope(impl, c);
  findings f;
  compare_runs(impl, c, run(impl, c, true), run(impl, q, true), f, "one-hot", nullptr, &q);
  scope.conclude(f);
}

// Central differences of the reference loss (logits on a grid, h = 2^-10,
// exact perturbations) agree with the kernel's gradient within the tier's
// gradient bound plus the O(h^2) truncation (<= h^2 K S).
XENT_PROPERTY(metamorphic_props, finite_differences_agree, 200) {
  case_spec s;
  s.grid = true;
  s.max_classes = 16;
  s.max_rows = 4;
  const auto c = *gen_case(s);
  case_scope scope(impl, c);
  findings f;
  const auto o = run(impl, c, true);
  const double h = 0x1p-10;
  std::mt19937_64 g(*rc::gen::arbitrary<std::uint64_t>());
  for (int k = 0; k < 3; ++k) {
    const std::int64_t p = std::uniform_int_distribution<std::int64_t>(0, c.positions() - 1)(g);
    const std::int64_t j = std::uniform_int_distribution<std::int64_t>(0, c.c - 1)(g);
    auto loss_at = [&](double dx) {
      test_case e = c;
      e.x(p, j) = static_cast<float>(c.x(p, j) + dx);
      const auto r = reference(e, false);
      const auto& v = c.reduce == reduction::none ? r.loss[p] : r.reduced;
      return std::pair{v.hi * static_cast<double>(c.upstream_at(p)), v.lo * static_cast<double>(c.upstream_at(p))};
    };
    const auto [ph, pl] = loss_at(h);
    const auto [mh, ml] = loss_at(-h);
    const double fd = ((ph - mh) + (pl - ml)) / (2 * h);
    const double gj = o.grad[p * c.c + j];
    const row_context ctx = context(c, p);
    const bound lim = bound_for(impl.tier(), quantity::gradient, ctx);
    if (lim.kind == bound::none) continue;
    const double tol = (lim.kind == bound::ulps ? lim.value * ulp_of(gj) : lim.value) + h * h * ctx.coeff * ctx.scale;
    if (std::isfinite(fd) && !(std::fabs(gj - fd) <= tol))
      f.fail("grad" + at(p, j) + " = " + fmt(gj) + ", central difference " + fmt(fd) + " (allowed " + fmt(tol) + ")");
  }
  scope.conclude(f);
}

}  // namespace

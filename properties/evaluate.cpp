#include "evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "tracker.hpp"
#include "xent/poison.hpp"

namespace xent::props {

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

std::string findings::text(std::size_t max_lines) const {
  std::ostringstream s;
  for (std::size_t i = 0; i < failures.size() && i < max_lines; ++i) s << "  " << failures[i] << '\n';
  if (count > max_lines) s << "  … " << count << " violations in all\n";
  return s.str();
}

namespace {

// Logical (p, c) order from a buffer contiguous in the logits' shape.
std::vector<float> logical_grad(const test_case& c, const std::vector<float>& g) {
  const test_case shape =
      test_case::shaped(c.lay == layout::strided ? layout::contiguous : c.lay, c.n, c.c, c.d);
  std::vector<float> v(g.size());
  for (std::int64_t p = 0; p < c.positions(); ++p)
    for (std::int64_t j = 0; j < c.c; ++j) v[p * c.c + j] = g[shape.x_offset(p, j)];
  return v;
}

std::string position_name(const test_case& c, std::size_t i) {
  return "loss[" + (c.reduce == reduction::none ? std::to_string(i) : to_string(c.reduce)) + "]";
}

// Throws unwritten_output when a poisoned element came back with its sentinel.
void require_written(const implementation& impl, const test_case& c, const std::vector<float>& loss,
                     poison::sentinel ls, const std::vector<float>* grad, poison::sentinel gs) {
  std::string m = poison::unwritten_message("loss elements", loss, ls,
                                            [&](std::size_t i) { return position_name(c, i); });
  if (grad) {
    const std::string g = poison::unwritten_message("gradient elements", *grad, gs, [&](std::size_t i) {
      return "grad[" + std::to_string(i / static_cast<std::size_t>(c.c)) + "," +
             std::to_string(i % static_cast<std::size_t>(c.c)) + "]";
    });
    if (!g.empty()) m += (m.empty() ? "" : "; ") + g;
  }
  if (!m.empty())
    throw unwritten_output(impl.name() + (grad ? " (forward_backward)" : " (forward)") + ": " + m +
                           " -- the output buffers were poisoned before the call; a kernel must write "
                           "every element (real buffers are not zeroed)");
}

// A call that returned: its needs join the tracker's coverage. One position
// reaches a kernel declaring rows but not (C) as (1, C) rows (plugin.h).
void record_exercised(const implementation& impl, capabilities needs) {
  const auto declared = impl.declared_capabilities();
  if (declared && (needs.layouts & XENT_PLUGIN_LAYOUT_SINGLE) && !(declared->layouts & XENT_PLUGIN_LAYOUT_SINGLE))
    needs.layouts = XENT_PLUGIN_LAYOUT_ROWS;
  tracker::get().exercised(needs);
}

}  // namespace

outputs run(const implementation& impl, const test_case& c, bool with_grad) {
  outputs o;
  const bool none = c.reduce == reduction::none;
  o.loss.resize(static_cast<std::size_t>(none ? c.positions() : 1));
  const poison::sentinel ls = poison::fill(o.loss);
  const tensor_view out = none ? view(o.loss.data(), c.position_shape()) : view(o.loss.data(), {});
  const options opt = c.opts();
  if (!with_grad) {
    cross_entropy(c.logits_view(), c.target_view(), out, opt, &impl);
    require_written(impl, c, o.loss, ls, nullptr, {});
    record_exercised(impl, needs_of(inspect(c), false));
    return o;
  }
  std::vector<float> g(static_cast<std::size_t>(c.elements()));
  const poison::sentinel gs = poison::fill(g);
  tensor_view up;
  cross_entropy_forward_backward(c.logits_view(), c.target_view(), out,
                                 view(g.data(), c.logits_shape()), opt, c.upstream_view(up), &impl);
  // Back to logical (p, c) order; the grad buffer is contiguous in the logits' shape.
  o.grad = logical_grad(c, g);
  require_written(impl, c, o.loss, ls, &o.grad, gs);
  record_exercised(impl, needs_of(inspect(c), true));
  return o;
}

outputs run_in_place(const implementation& impl, const test_case& c) {
  test_case k = c;  // its logits become the gradient
  outputs o;
  const bool none = c.reduce == reduction::none;
  o.loss.resize(static_cast<std::size_t>(none ? c.positions() : 1));
  const poison::sentinel ls = poison::fill(o.loss);
  const tensor_view out = none ? view(o.loss.data(), c.position_shape()) : view(o.loss.data(), {});
  const options opt = k.opts();
  tensor_view up;
  const tensor_view x = k.logits_view();
  cross_entropy_forward_backward(x, k.target_view(), out, x, opt, k.upstream_view(up), &impl);
  require_written(impl, c, o.loss, ls, nullptr, {});
  capabilities needs = needs_of(inspect(c), true);
  needs.modes |= XENT_PLUGIN_MODE_IN_PLACE;
  record_exercised(impl, needs);
  o.grad.resize(static_cast<std::size_t>(c.elements()));
  for (std::int64_t p = 0; p < c.positions(); ++p)
    for (std::int64_t j = 0; j < c.c; ++j) o.grad[p * c.c + j] = k.x(p, j);
  return o;
}

problem inspect(const test_case& c) { return make_problem(c.logits_view(), c.target_view(), c.opts()); }

ref::result reference(const test_case& c, bool with_grad, unsigned bits) {
  // The full make_problem (scratch outputs) carries the upstream gradient.
  const bool none = c.reduce == reduction::none;
  std::vector<float> out(static_cast<std::size_t>(none ? c.positions() : 1));
  std::vector<float> g(static_cast<std::size_t>(c.elements()));
  const tensor_view o = none ? view(out.data(), c.position_shape()) : view(out.data(), {});
  const tensor_view gv = view(g.data(), c.logits_shape());
  tensor_view up;
  const problem pr = make_problem(c.logits_view(), c.target_view(), c.opts(), o, with_grad ? &gv : nullptr,
                                  c.upstream_view(up));
  return ref::compute(pr, with_grad, bits);
}

ref::result reference(const test_case& c, bool with_grad) {
  return reference(c, with_grad, ref::default_precision_bits);
}

namespace {

// Judging a correctly rounded kernel, the reference's own precision can be
// the limit: a gradient entry that cancels 2^-129 of its terms (subnormal
// logits) sits ~2^-380 from a midpoint, far below 160 bits. On any
// disagreement the reference is recomputed once at 1216 bits (Ziv's
// strategy on the judge's side); what still disagrees is a failure.
constexpr unsigned escalated_bits = 1216;

bool disagrees(const ref::result& r, const std::vector<outputs>& outs, const test_case& c) {
  for (std::size_t pass = 0; pass < outs.size(); ++pass) {
    const outputs& o = outs[pass];
    if (c.reduce == reduction::none) {
      for (std::size_t p = 0; p < o.loss.size() && p < r.loss.size(); ++p)
        if (!ref::correctly_rounded(o.loss[p], r.loss[p])) return true;
    } else if (!o.loss.empty() && !ref::correctly_rounded(o.loss[0], r.reduced)) {
      return true;
    }
    if (pass == 1)
      for (std::size_t i = 0; i < o.grad.size() && i < r.grad.size(); ++i)
        if (!ref::correctly_rounded(o.grad[i], r.grad[i])) return true;
  }
  return false;
}

}  // namespace

double denominator(const test_case& c) {
  if (c.reduce != reduction::mean) return 1.0;
  if (c.prob) return static_cast<double>(c.positions());
  double w = 0.0;
  for (std::int64_t p = 0; p < c.positions(); ++p)
    if (c.counted(p)) w += c.w(c.index[p]);
  return w;
}

double grad_scale(const test_case& c, std::int64_t p) {
  const double up = c.upstream_at(p);
  return std::fabs(up / denominator(c));
}

row_context context(const test_case& c, std::int64_t p) {
  row_context ctx;
  ctx.classes = c.c;
  double m = -std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j < c.c; ++j) m = std::max(m, static_cast<double>(c.x(p, j)));
  if (std::isfinite(m)) {
    double s = 0.0;
    for (std::int64_t j = 0; j < c.c; ++j) s += std::exp(static_cast<double>(c.x(p, j)) - m);
    ctx.lse = m + std::log(s);
  } else {
    ctx.lse = m;
  }
  const double eps = c.eps, C = static_cast<double>(c.c);
  auto coeff = [&](std::int64_t j) {
    if (c.prob) return std::fabs(c.w(j) * ((1.0 - eps) * c.qv(p, j) + eps / C));
    const double onehot = c.index[p] == j ? 1.0 - eps : 0.0;
    return std::fabs(c.w(j)) * (onehot + eps / C);
  };
  ctx.coeff = 0.0;
  ctx.gap = 0.0;
  for (std::int64_t j = 0; j < c.c; ++j) {
    const double k = coeff(j);
    ctx.coeff += k;
    if (k != 0.0) ctx.gap = std::max(ctx.gap, ctx.lse - static_cast<double>(c.x(p, j)));
  }
  ctx.scale = c.counted(p) ? grad_scale(c, p) : 0.0;
  return ctx;
}

double ulp_of(double y) {
  y = std::fabs(y);
  if (!(y >= static_cast<double>(std::numeric_limits<float>::min()))) return 0x1p-149;
  return std::ldexp(1.0, std::ilogb(y) - 23);
}

double cancellation_allowance(const test_case& c, std::int64_t p, std::int64_t j,
                              const row_context& ctx) {
  if (!c.prob && c.eps == 0.0) return 0.0;
  const double C = static_cast<double>(c.c);
  const double q = c.prob ? c.qv(p, j) : (c.index[p] == j ? 1.0 : 0.0);
  const double b = c.w(j) * ((1.0 - c.eps) * q + c.eps / C);
  const double pj = std::exp(static_cast<double>(c.x(p, j)) - ctx.lse);
  const double terms = ctx.scale * (C * pj * ctx.coeff + std::fabs(b));
  return std::isfinite(terms) ? 0x1p-50 * terms : 0.0;
}

double reduction_allowance(tier t, const test_case& c, const std::vector<row_context>& ctx) {
  if (t != tier::standard) return 0.0;
  double sum = 0.0;
  for (std::int64_t p = 0; p < c.positions(); ++p)
    if (c.counted(p)) sum += bound_for(t, quantity::loss, ctx[p]).value;
  const double d = std::fabs(denominator(c));
  return d > 0.0 ? sum / d : sum;
}

comparison compare(tier t, quantity q, float y, const ref::exact& r, const row_context& ctx,
                   double cancellation) {
  comparison cmp;
  cmp.ulps = ref::ulp_error(y, r);
  cmp.limit = bound_for(t, q, ctx);
  if (cmp.limit.kind == bound::none) return cmp;
  if (!std::isfinite(y) || !std::isfinite(r.hi)) {
    cmp.ok = cmp.ulps == 0.0;
  } else if (cmp.limit.kind == bound::rounded) {
    cmp.ok = ref::correctly_rounded(y, r);
  } else if (cmp.limit.kind == bound::ulps) {
    cmp.ok = cmp.ulps <= cmp.limit.value ||
             std::fabs((static_cast<double>(y) - r.hi) - r.lo) <= cancellation;
  } else {
    // The absolute criterion bounds the error of the computed lse and x_t;
    // the result's own rounding comes on top (one ulp of the result).
    const double err = std::fabs((static_cast<double>(y) - r.hi) - r.lo);
    cmp.ok = cmp.ulps <= 1.0 || err <= cmp.limit.value + ulp_of(r.hi);
  }
  return cmp;
}

bool agree(tier t, quantity q, float a, float b, const row_context& ctx, double cancellation) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (!std::isfinite(a) || !std::isfinite(b) || a == b) return a == b;
  // Equal values agree whatever the bound (an ignored row's 0 beside a NaN
  // logit has no finite bound).
  const bound lim = bound_for(t, q, ctx);
  if (lim.kind == bound::none) return true;
  if (lim.kind == bound::rounded) return false;  // one true value has one rounding: a == b
  double tol;
  if (lim.kind == bound::ulps) {
    tol = 2.0 * lim.value * std::max(ulp_of(a), ulp_of(b)) + 2.0 * cancellation;
  } else {
    tol = 2.0 * lim.value + std::max(ulp_of(a), ulp_of(b));
  }
  return std::fabs(static_cast<double>(a) - static_cast<double>(b)) <= tol;
}

namespace {

struct worst_in_case {
  double ulps = -1.0;
  std::string where;
  void see(double u, const std::string& w) {
    if (u > ulps) {
      ulps = u;
      where = w;
    }
  }
};

std::string describe(const char* what, float y, const ref::exact& r, const comparison& cmp) {
  // A bound computed from a row with NaN/inf logits is itself NaN or inf:
  // say what that means instead of printing "abs -nan".
  const std::string allowed =
      cmp.limit.kind != bound::none && !std::isfinite(cmp.limit.value)
          ? "no finite bound: the row's log-sum-exp is not finite (NaN/inf logits), so only the exact special "
            "value (NaN for NaN, the same infinity) passes"
          : "allowed " + cmp.limit.describe();
  return std::string(what) + ": got " + fmt(y) + ", reference " + ref::to_string(r, 12) + " (" +
         fmt(cmp.ulps) + " ulp; " + allowed + ")";
}

}  // namespace

findings against_reference(const implementation& impl, const test_case& c, bool with_grad) {
  findings f;
  const tier t = impl.tier();
  // The kernel first: a case it refuses (UNSUPPORTED, skipped) costs no reference.
  std::vector<outputs> outs;
  for (int pass = 0; pass < (with_grad ? 2 : 1); ++pass) outs.push_back(run(impl, c, pass == 1));
  ref::result r = reference(c, with_grad);
  if (t == tier::correctly_rounded && disagrees(r, outs, c)) r = reference(c, with_grad, escalated_bits);
  const std::int64_t P = c.positions(), C = c.c;
  std::vector<row_context> ctx(static_cast<std::size_t>(P));
  for (std::int64_t p = 0; p < P; ++p) ctx[p] = context(c, p);
  tracker& tr = tracker::get();

  for (int pass = 0; pass < (with_grad ? 2 : 1); ++pass) {
    const bool grad_pass = pass == 1;
    const outputs& o = outs[static_cast<std::size_t>(pass)];
    const char* via = grad_pass ? " (forward_backward)" : "";
    worst_in_case wl, wr, wg;
    if (c.reduce == reduction::none) {
      for (std::int64_t p = 0; p < P; ++p) {
        const auto cmp = compare(t, quantity::loss, o.loss[p], r.loss[p], ctx[p]);
        const std::string where = "loss[" + std::to_string(p) + "]" + via;
        wl.see(cmp.ulps, where);
        if (!cmp.ok) f.fail(describe(where.c_str(), o.loss[p], r.loss[p], cmp));
      }
    } else {
      row_context rc;  // reductions are judged in ulps (or not at all)
      const auto cmp = compare(t, quantity::reduction, o.loss[0], r.reduced, rc,
                               reduction_allowance(t, c, ctx));
      const std::string where = to_string(c.reduce) + via;
      wr.see(cmp.ulps, where);
      if (!cmp.ok) f.fail(describe(where.c_str(), o.loss[0], r.reduced, cmp));
      // Per-position losses are still judged: through the reference's `none` values
      // only when the kernel exposes them, which mean/sum does not.
    }
    if (grad_pass) {
      for (std::int64_t p = 0; p < P; ++p)
        for (std::int64_t j = 0; j < C; ++j) {
          const std::size_t i = static_cast<std::size_t>(p * C + j);
          const auto cmp = compare(t, quantity::gradient, o.grad[i], r.grad[i], ctx[p],
                                   cancellation_allowance(c, p, j, ctx[p]));
          const bool is_target = !c.prob && c.index[p] == j;
          if (cmp.ulps > wg.ulps)
            wg.see(cmp.ulps, "grad[" + std::to_string(p) + "," + std::to_string(j) + "]" +
                                 (is_target ? " (target)" : ""));
          if (!cmp.ok) {
            const std::string where = "grad[" + std::to_string(p) + "," + std::to_string(j) + "]" +
                                      (is_target ? " (target)" : "");
            f.fail(describe(where.c_str(), o.grad[i], r.grad[i], cmp));
          }
        }
    }
    if (wl.ulps >= 0) tr.note("loss", wl.ulps, c, wl.where);
    if (wr.ulps >= 0) tr.note("reduction", wr.ulps, c, wr.where);
    if (wg.ulps >= 0) tr.note("gradient", wg.ulps, c, wg.where);
  }
  return f;
}

}  // namespace xent::props

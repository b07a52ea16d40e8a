#include "evaluate.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <sstream>

#include "tracker.hpp"
#include "xent/poison.hpp"

namespace xent::props {

std::string fmt(double v) {
  char b[32];
  // 9 digits identify a float; a double that is not one needs 17.
  const bool is_float = !std::isfinite(v) || static_cast<double>(static_cast<float>(v)) == v;
  std::snprintf(b, sizeof b, is_float ? "%.9g" : "%.17g", v);
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
std::vector<double> logical_grad(const test_case& c, const std::vector<double>& g) {
  const test_case shape =
      test_case::shaped(c.lay == layout::strided ? layout::contiguous : c.lay, c.n, c.c, c.d);
  std::vector<double> v(g.size());
  for (std::int64_t p = 0; p < c.positions(); ++p)
    for (std::int64_t j = 0; j < c.c; ++j) v[p * c.c + j] = g[shape.x_offset(p, j)];
  return v;
}

std::string position_name(const test_case& c, std::size_t i) {
  return "loss[" + (c.reduce == reduction::none ? std::to_string(i) : to_string(c.reduce)) + "]";
}

// A call that returned: its needs join the tracker's coverage. One position
// reaches a kernel declaring rows but not (C) as (1, C) rows (plugin.h).
void record_exercised(const implementation& impl, capabilities needs) {
  const auto declared = impl.declared_capabilities();
  if (declared && (needs.layouts & XENT_PLUGIN_LAYOUT_SINGLE) && !(declared->layouts & XENT_PLUGIN_LAYOUT_SINGLE))
    needs.layouts = XENT_PLUGIN_LAYOUT_ROWS;
  tracker::get().exercised(needs);
}


// Output buffers of a case's dtype, poisoned: float32 ones through
// xent/poison.hpp; 16-bit and float64 ones with a signalling-NaN pattern of
// the dtype that no kernel computes (computed NaNs are quiet), varied per
// call.
class output_buffer {
 public:
  output_buffer(dtype t, std::size_t n) : type_(t) {
    if (t == dtype::f32) {
      f32_.resize(n);
      sentinel_ = poison::fill(f32_);
    } else if (t == dtype::f64) {
      const std::uint64_t bits = poison::next().bits;
      // float64 signalling NaNs: exponent all ones, quiet bit clear, payload nonzero.
      pattern64_ = 0x7ff0000000000000ull | (std::uint64_t{bits} << 12) | 0x5a5ull;
      if (bits & 0x100000u) pattern64_ |= 0x8000000000000000ull;
      f64_.assign(n, pattern64_);
    } else {
      const std::uint32_t bits = poison::next().bits;
      // bfloat16 signalling NaNs 0x7f81..0x7fbf, float16's 0x7c01..0x7dff.
      pattern_ = static_cast<std::uint16_t>(t == dtype::bf16 ? 0x7f81u + bits % 0x3fu : 0x7c01u + bits % 0x1ffu);
      if (bits & 0x100000u) pattern_ |= 0x8000u;
      b16_.assign(n, pattern_);
    }
  }
  tensor_view make_view(std::vector<std::int64_t> shape) {
    if (type_ == dtype::f32) return view(f32_.data(), std::move(shape));
    if (type_ == dtype::f64) {
      tensor_view v = view(reinterpret_cast<const double*>(f64_.data()), std::move(shape));
      v.data = f64_.data();
      return v;
    }
    return view(b16_.data(), type_, std::move(shape));
  }
  // The values as doubles (exact).
  std::vector<double> values() const {
    if (type_ == dtype::f32) return {f32_.begin(), f32_.end()};
    if (type_ == dtype::f64) {
      std::vector<double> v(f64_.size());
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::bit_cast<double>(f64_[i]);
      return v;
    }
    std::vector<double> v(b16_.size());
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = widen(b16_[i], type_);
    return v;
  }
  // Indices whose bits are still the sentinel's, as poison::unwritten_message
  // words them.
  std::string unwritten(const std::string& what, const std::function<std::string(std::size_t)>& name_of) const {
    if (type_ == dtype::f32) return poison::unwritten_message(what, f32_, sentinel_, name_of);
    std::vector<std::size_t> idx;
    const bool wide = type_ == dtype::f64;
    const std::size_t n = wide ? f64_.size() : b16_.size();
    for (std::size_t i = 0; i < n; ++i)
      if (wide ? f64_[i] == pattern64_ : b16_[i] == pattern_) idx.push_back(i);
    if (idx.empty()) return {};
    char hex[24];
    if (wide) std::snprintf(hex, sizeof hex, "0x%016llx", static_cast<unsigned long long>(pattern64_));
    else std::snprintf(hex, sizeof hex, "0x%04x", pattern_);
    std::string m = std::to_string(idx.size()) + " of " + std::to_string(n) + " " + what +
                    " never written (still the " + to_string(type_) + " sentinel NaN " + hex + "): ";
    for (std::size_t k = 0; k < idx.size() && k < 8; ++k) m += (k ? ", " : "") + name_of(idx[k]);
    return m;
  }

 private:
  dtype type_;
  std::vector<float> f32_;
  poison::sentinel sentinel_;
  std::vector<std::uint16_t> b16_;
  std::uint16_t pattern_ = 0;
  std::vector<std::uint64_t> f64_;  // bit patterns: a copy as double could quiet the sentinel
  std::uint64_t pattern64_ = 0;
};

void require_written(const implementation& impl, const test_case& c, const output_buffer& loss,
                     const output_buffer* grad) {
  std::string m = loss.unwritten("loss elements", [&](std::size_t i) { return position_name(c, i); });
  if (grad) {
    const test_case shape =
        test_case::shaped(c.lay == layout::strided ? layout::contiguous : c.lay, c.n, c.c, c.d);
    std::vector<std::string> names(static_cast<std::size_t>(c.elements()));
    for (std::int64_t p = 0; p < c.positions(); ++p)
      for (std::int64_t j = 0; j < c.c; ++j)
        names[static_cast<std::size_t>(shape.x_offset(p, j))] = "grad[" + std::to_string(p) + "," + std::to_string(j) + "]";
    const std::string g = grad->unwritten("gradient elements", [&](std::size_t i) { return names[i]; });
    if (!g.empty()) m += (m.empty() ? "" : "; ") + g;
  }
  if (!m.empty())
    throw unwritten_output(impl.name() + (grad ? " (forward_backward)" : " (forward)") + ": " + m +
                           " -- the output buffers were poisoned before the call; a kernel must write "
                           "every element (real buffers are not zeroed)");
}

}  // namespace

outputs run(const implementation& impl, const test_case& c, bool with_grad) {
  outputs o;
  const bool none = c.reduce == reduction::none;
  output_buffer loss(c.out_type, static_cast<std::size_t>(none ? c.positions() : 1));
  const tensor_view out = none ? loss.make_view(c.position_shape()) : loss.make_view({});
  const options opt = c.opts();
  if (!with_grad) {
    cross_entropy(c.logits_view(), c.target_view(), out, opt, &impl);
    require_written(impl, c, loss, nullptr);
    o.loss = loss.values();
    record_exercised(impl, needs_of(inspect(c), false));
    return o;
  }
  output_buffer g(c.type, static_cast<std::size_t>(c.elements()));
  tensor_view up;
  cross_entropy_forward_backward(c.logits_view(), c.target_view(), out, g.make_view(c.logits_shape()), opt,
                                 c.upstream_view(up), &impl);
  require_written(impl, c, loss, &g);
  o.loss = loss.values();
  // Back to logical (p, c) order; the grad buffer is contiguous in the logits' shape.
  o.grad = logical_grad(c, g.values());
  record_exercised(impl, needs_of(inspect(c), true));
  return o;
}

outputs run_in_place(const implementation& impl, const test_case& c) {
  test_case k = c;  // its logits become the gradient
  outputs o;
  const bool none = c.reduce == reduction::none;
  output_buffer loss(c.out_type, static_cast<std::size_t>(none ? c.positions() : 1));
  const tensor_view out = none ? loss.make_view(c.position_shape()) : loss.make_view({});
  const options opt = k.opts();
  tensor_view up;
  const tensor_view x = k.logits_view();
  cross_entropy_forward_backward(x, k.target_view(), out, x, opt, k.upstream_view(up), &impl);
  require_written(impl, c, loss, nullptr);
  o.loss = loss.values();
  k.widen_logits_from_view();
  capabilities needs = needs_of(inspect(c), true);
  needs.modes |= XENT_PLUGIN_MODE_IN_PLACE;
  record_exercised(impl, needs);
  o.grad.resize(static_cast<std::size_t>(c.elements()));
  for (std::int64_t p = 0; p < c.positions(); ++p)
    for (std::int64_t j = 0; j < c.c; ++j) o.grad[p * c.c + j] = k.xv(p, j);
  return o;
}

bool same_bits(const outputs& a, const outputs& b) {
  auto same = [](const std::vector<double>& x, const std::vector<double>& y) {
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (std::bit_cast<std::uint64_t>(x[i]) != std::bit_cast<std::uint64_t>(y[i]) &&
          !(std::isnan(x[i]) && std::isnan(y[i])))
        return false;
    return true;
  };
  return same(a.loss, b.loss) && same(a.grad, b.grad);
}

problem inspect(const test_case& c) { return make_problem(c.logits_view(), c.target_view(), c.opts()); }

ref::result reference(const test_case& c, bool with_grad, unsigned bits) {
  // The full make_problem (scratch outputs) carries the upstream gradient.
  const bool none = c.reduce == reduction::none;
  output_buffer out(c.out_type, static_cast<std::size_t>(none ? c.positions() : 1));
  output_buffer g(c.type, static_cast<std::size_t>(c.elements()));
  const tensor_view o = none ? out.make_view(c.position_shape()) : out.make_view({});
  const tensor_view gv = g.make_view(c.logits_shape());
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
constexpr unsigned escalated_bits_float64 = 4480;

bool disagrees(const ref::result& r, const std::vector<outputs>& outs, const test_case& c) {
  for (std::size_t pass = 0; pass < outs.size(); ++pass) {
    const outputs& o = outs[pass];
    if (c.reduce == reduction::none) {
      for (std::size_t p = 0; p < o.loss.size() && p < r.loss.size(); ++p)
        if (!ref::correctly_rounded(static_cast<double>(o.loss[p]), r.loss[p], c.out_type)) return true;
    } else if (!o.loss.empty() && !ref::correctly_rounded(static_cast<double>(o.loss[0]), r.reduced, c.out_type)) {
      return true;
    }
    if (pass == 1)
      for (std::size_t i = 0; i < o.grad.size() && i < r.grad.size(); ++i)
        if (!ref::correctly_rounded(static_cast<double>(o.grad[i]), r.grad[i], c.type)) return true;
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
  for (std::int64_t j = 0; j < c.c; ++j) m = std::max(m, c.xv(p, j));
  if (std::isfinite(m)) {
    double s = 0.0;
    for (std::int64_t j = 0; j < c.c; ++j) s += std::exp(c.xv(p, j) - m);
    ctx.lse = m + std::log(s);
  } else {
    ctx.lse = m;
  }
  const double eps = c.eps, C = static_cast<double>(c.c);
  auto coeff = [&](std::int64_t j) {
    if (c.prob) return std::fabs(c.wv(j) * ((1.0 - eps) * c.qvv(p, j) + eps / C));
    const double onehot = c.index[p] == j ? 1.0 - eps : 0.0;
    return std::fabs(c.wv(j)) * (onehot + eps / C);
  };
  ctx.coeff = 0.0;
  ctx.gap = 0.0;
  for (std::int64_t j = 0; j < c.c; ++j) {
    const double k = coeff(j);
    ctx.coeff += k;
    if (k != 0.0) ctx.gap = std::max(ctx.gap, ctx.lse - c.xv(p, j));
  }
  ctx.scale = c.counted(p) ? grad_scale(c, p) : 0.0;
  ctx.unit = c.type == dtype::bf16   ? 0x1p-8
             : c.type == dtype::f16 ? 0x1p-11
             : c.type == dtype::f64 ? 0x1p-53
                                    : unit_roundoff;
  return ctx;
}

double ulp_of(double y) { return ulp_of(y, dtype::f32); }

double ulp_of(double y, dtype t) {
  // significant bits and the exponent of the smallest normal number
  const int digits = t == dtype::bf16 ? 8 : t == dtype::f16 ? 11 : t == dtype::f64 ? 53 : 24;
  const int min_exp = t == dtype::f16 ? -14 : t == dtype::f64 ? -1022 : -126;
  y = std::fabs(y);
  if (!(y >= std::ldexp(1.0, min_exp))) return std::ldexp(1.0, min_exp - digits + 1);
  return std::ldexp(1.0, std::ilogb(y) - digits + 1);
}

double cancellation_allowance(const test_case& c, std::int64_t p, std::int64_t j,
                              const row_context& ctx) {
  if (!c.prob && c.eps == 0.0) return 0.0;
  const double C = static_cast<double>(c.c);
  const double q = c.prob ? c.qv(p, j) : (c.index[p] == j ? 1.0 : 0.0);
  const double b = c.w(j) * ((1.0 - c.eps) * q + c.eps / C);
  const double pj = std::exp(c.xv(p, j) - ctx.lse);
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

comparison compare(tier t, quantity q, double y, const ref::exact& r, const row_context& ctx,
                   double cancellation, dtype type) {
  comparison cmp;
  const bool f32 = type == dtype::f32;
  cmp.ulps = f32 ? ref::ulp_error(static_cast<float>(y), r) : ref::ulp_error(y, r, type);
  cmp.limit = bound_for(t, q, ctx);
  if (cmp.limit.kind == bound::none) return cmp;
  if (!std::isfinite(y) || !std::isfinite(r.hi)) {
    cmp.ok = cmp.ulps == 0.0;
  } else if (cmp.limit.kind == bound::rounded) {
    cmp.ok = f32 ? ref::correctly_rounded(static_cast<float>(y), r) : ref::correctly_rounded(y, r, type);
  } else if (cmp.limit.kind == bound::ulps) {
    cmp.ok = cmp.ulps <= cmp.limit.value ||
             std::fabs((static_cast<double>(y) - r.hi) - r.lo) <= cancellation;
  } else {
    // The absolute criterion bounds the error of the computed lse and x_t;
    // the result's own rounding comes on top (one ulp of the result).
    const double err = std::fabs((static_cast<double>(y) - r.hi) - r.lo);
    cmp.ok = cmp.ulps <= 1.0 || err <= cmp.limit.value + ulp_of(r.hi, type);
  }
  return cmp;
}

bool agree(tier t, quantity q, double a, double b, const row_context& ctx, double cancellation) {
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

std::string describe(const char* what, double y, const ref::exact& r, const comparison& cmp) {
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
  // float64: logits a few subnormal units apart cancel to 2^-2100 of the
  // terms; a last escalation covers float64's whole exponent range.
  if (t == tier::correctly_rounded && c.type == dtype::f64 && disagrees(r, outs, c))
    r = reference(c, with_grad, escalated_bits_float64);
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
        const auto cmp = compare(t, quantity::loss, o.loss[p], r.loss[p], ctx[p], 0.0, c.out_type);
        const std::string where = "loss[" + std::to_string(p) + "]" + via;
        wl.see(cmp.ulps, where);
        if (!cmp.ok) f.fail(describe(where.c_str(), o.loss[p], r.loss[p], cmp));
      }
    } else {
      row_context rc;  // reductions are judged in ulps (or not at all)
      const auto cmp = compare(t, quantity::reduction, o.loss[0], r.reduced, rc,
                               reduction_allowance(t, c, ctx), c.out_type);
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
                                   cancellation_allowance(c, p, j, ctx[p]), c.type);
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
    // 16-bit cases are measured in their dtype's ulps: kept apart.
    const std::string in = c.type == dtype::f32 ? "" : " (" + to_string(c.type) + ")";
    if (wl.ulps >= 0) tr.note("loss" + in, wl.ulps, c, wl.where);
    if (wr.ulps >= 0) tr.note("reduction" + in, wr.ulps, c, wr.where);
    if (wg.ulps >= 0) tr.note("gradient" + in, wg.ulps, c, wg.where);
  }
  return f;
}

}  // namespace xent::props

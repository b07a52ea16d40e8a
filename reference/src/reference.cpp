// The reference: PyTorch's cross-entropy (docs/design.md §2) in multiprecision,
// from the exact float inputs, with the stable formulas of §3 so that even a
// loss of 1e-40 keeps full relative accuracy. Working precision rounds to odd
// (see odd()); one rounding, at the end, to a double-double.
#include "xent/reference.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "mp.hpp"

namespace xent::ref {
namespace {

using detail::make;
using detail::mp;
using detail::raw;

constexpr auto rn = MPFR_RNDN;  // the final roundings to double and float only
constexpr auto rz = MPFR_RNDZ;

// Every working-precision operation rounds to odd: toward zero, then an
// inexact result gets its last bit set (moved one ulp away from zero when it
// was even). Why: round-to-nearest at 160 bits turns "a float32 midpoint plus
// a term below 2^-160 of it" -- the loss (m - x_t) + log1p(e^-M) of a large
// margin M, where m - x_t is often an exact midpoint -- into the midpoint
// itself, and the final rounding then ties to even: one ulp wrong. A value
// rounded to odd is never a short number (a float32/float64 value or
// midpoint) unless it is exact, so every later rounding to 53 or 24 bits
// falls on the side of the exact value (Boldo & Melquiond, "Emulation of FMA
// and correctly rounded sums: proved algorithms using rounding to odd", 2008).
// An underflow to 0 becomes the smallest number of the (widened) exponent
// range, on the exact value's side.
void odd(mpfr_ptr x, int ternary) {
  if (ternary == 0 || mpfr_nan_p(x) || mpfr_inf_p(x)) return;
  if (!mpfr_zero_p(x) && mpfr_min_prec(x) == mpfr_get_prec(x)) return;  // last bit already 1
  if (ternary < 0) mpfr_nextabove(x);  // the exact value lies above x
  else mpfr_nextbelow(x);
}

// The difference of two floats is a multiple of 2^-149 below 2^129 in
// magnitude: 278 bits hold it exactly, whatever the working precision; that
// of two doubles a multiple of 2^-1074 below 2^1025: 2099 bits.
mpfr_prec_t difference_bits(dtype t) { return t == dtype::f64 ? 2112 : 280; }
// The exact parts of split_grad (products and sums of the inputs: weights,
// probabilities, 1 - eps, C, k, the upstream value) at this precision: every
// bit of such a product of floats lies within 2^-1200..2^1000; of doubles
// within 2^-4400..2^3200 (each factor spans 2^-1074..2^1024).
mpfr_prec_t exact_part_bits(dtype t) { return t == dtype::f64 ? 7680 : 1280; }

// Positions per unit of work (and per partial sum) of compute().
constexpr std::int64_t reference_chunk = 16;

// MPFR's exponent range is per thread: widen it for the call so that
// e^(x - m) with x - m near -6.8e38 underflows only where nothing measurable
// is lost, then restore the caller's range.
class exponent_range_guard {
 public:
  exponent_range_guard() : emin_(mpfr_get_emin()), emax_(mpfr_get_emax()) {
    mpfr_set_emin(mpfr_get_emin_min());
    mpfr_set_emax(mpfr_get_emax_max());
  }
  ~exponent_range_guard() {
    mpfr_set_emin(emin_);
    mpfr_set_emax(emax_);
  }
  exponent_range_guard(const exponent_range_guard&) = delete;
  exponent_range_guard& operator=(const exponent_range_guard&) = delete;

 private:
  mpfr_exp_t emin_, emax_;
};

// Double-double rounding of v; `scratch` needs prec(v) bits (v - RN(v) is
// then exact). lo is rounded to odd as well: rounded to nearest it could
// become exactly half an ulp of hi when v lies within 2^-106 of a float64
// midpoint, and hi + lo would then tie where v does not (to_double, and the
// float64 rounding of round_to, read hi + lo).
exact to_exact(mpfr_srcptr v, mp& scratch) {
  const double hi = mpfr_get_d(v, rn);
  if (!std::isfinite(hi)) return {hi, 0.0};  // NaN, inf, or beyond double's range
  odd(raw(scratch), mpfr_sub_d(raw(scratch), v, hi, rz));
  thread_local mp lo = make(53);
  odd(raw(lo), mpfr_set(raw(lo), raw(scratch), rz));
  exact r{hi, mpfr_get_d(raw(lo), rn)};  // exact unless lo is below double's normal range
  // hi is RN(v) itself (MPFR rounds to float64's subnormals correctly, to
  // their reduced precision); lo may not tell the side of a midpoint there.
  if (std::fabs(hi) < 0x1p-968) r.rn64 = hi;
  return r;
}

// One softmax row in the stable form: m the row max at index k,
// e_j = e^(x_j - m), rest = sum_{j != k} e_j, so that
//   -lp_c = (m - x_c) + log1p(rest),  p_j = e_j / (1 + rest).
// Each exponential is computed once and kept for the gradient.
class softmax_row {
 public:
  softmax_row(const problem& p, mpfr_prec_t bits)
      : p_(p), x_(static_cast<std::size_t>(p.classes)), diff_(make(difference_bits(p.type))),
        rest_(make(bits)), log1p_rest_(make(bits)), inv_sum_(make(bits)), tmp_(make(bits)) {
    e_.reserve(x_.size());
    for (std::size_t c = 0; c < x_.size(); ++c) e_.push_back(make(bits));
  }

  // Reads position n. False when the row's loss is NaN whatever the target:
  // a NaN or +inf logit, or every logit -inf (PyTorch's max shift gives NaN).
  bool load(std::int64_t n) {
    const float* row = p_.logits_row(n);
    k_ = -1;
    for (std::size_t c = 0; c < x_.size(); ++c) {
      const double v = p_.load_class_wide(row, static_cast<std::int64_t>(c), p_.logits_class_stride);
      if (std::isnan(v) || v == std::numeric_limits<double>::infinity()) return false;
      x_[c] = v;
      if (k_ < 0 || v > x_[static_cast<std::size_t>(k_)]) k_ = static_cast<std::int64_t>(c);
    }
    mpfr_set_zero(raw(rest_), 1);
    mpfr_set_zero(raw(log1p_rest_), 1);
    odd(raw(inv_sum_), mpfr_set_ui(raw(inv_sum_), 1, rz));
    if (k_ < 0) return true;  // no classes: every sum is empty
    max_ = x_[static_cast<std::size_t>(k_)];
    if (max_ == -std::numeric_limits<double>::infinity()) return false;
    for (std::size_t c = 0; c < x_.size(); ++c) {
      if (static_cast<std::int64_t>(c) == k_) {
        odd(raw(e_[c]), mpfr_set_ui(raw(e_[c]), 1, rz));
        continue;
      }
      odd(raw(diff_), mpfr_set_d(raw(diff_), x_[c], rz));
      odd(raw(diff_), mpfr_sub_d(raw(diff_), raw(diff_), max_, rz));  // exact; -inf stays -inf
      odd(raw(e_[c]), mpfr_exp(raw(e_[c]), raw(diff_), rz));
      odd(raw(rest_), mpfr_add(raw(rest_), raw(rest_), raw(e_[c]), rz));
    }
    odd(raw(log1p_rest_), mpfr_log1p(raw(log1p_rest_), raw(rest_), rz));
    odd(raw(inv_sum_), mpfr_add_ui(raw(inv_sum_), raw(rest_), 1, rz));
    odd(raw(inv_sum_), mpfr_ui_div(raw(inv_sum_), 1, raw(inv_sum_), rz));
    return true;
  }

  // out = -lp_t = (m - x_t) + log1p(rest): no cancellation as the loss -> 0.
  void neg_log_prob(std::int64_t t, mp& out) {
    set_max_minus_x(t);
    odd(raw(out), mpfr_add(raw(out), raw(diff_), raw(log1p_rest_), rz));
  }

  // out = -sum_c a_c lp_c = sum_c a_c (m - x_c) + a_sum log1p(rest), where
  // a_sum = sum_c a_c. A -inf logit with a_c = 0 gives 0 * inf = NaN, as
  // PyTorch's -(lp * a).sum() does.
  void weighted_neg_log_probs(const std::vector<mp>& a, const mp& a_sum, mp& out) {
    mpfr_set_zero(raw(out), 1);
    for (std::size_t c = 0; c < x_.size(); ++c) {
      set_max_minus_x(static_cast<std::int64_t>(c));
      odd(raw(tmp_), mpfr_mul(raw(tmp_), raw(a[c]), raw(diff_), rz));
      odd(raw(out), mpfr_add(raw(out), raw(out), raw(tmp_), rz));
    }
    odd(raw(tmp_), mpfr_mul(raw(tmp_), raw(a_sum), raw(log1p_rest_), rz));
    odd(raw(out), mpfr_add(raw(out), raw(out), raw(tmp_), rz));
  }

  // out = p_j.
  void prob(std::int64_t j, mp& out) const {
    odd(raw(out), mpfr_mul(raw(out), raw(e_[static_cast<std::size_t>(j)]), raw(inv_sum_), rz));
  }

  // out = 1 - p_t, as sum_{j != t} p_j (never 1 - p_t, which cancels).
  void prob_complement(std::int64_t t, mp& out) {
    if (t == k_) {
      odd(raw(out), mpfr_mul(raw(out), raw(rest_), raw(inv_sum_), rz));
      return;
    }
    // 1 + (rest - e_t): e_t is one of rest's terms, and the 1 (from e_k)
    // dominates whatever the subtraction loses.
    odd(raw(tmp_), mpfr_sub(raw(tmp_), raw(rest_), raw(e_[static_cast<std::size_t>(t)]), rz));
    odd(raw(tmp_), mpfr_add_ui(raw(tmp_), raw(tmp_), 1, rz));
    odd(raw(out), mpfr_mul(raw(out), raw(tmp_), raw(inv_sum_), rz));
  }

 private:
  void set_max_minus_x(std::int64_t c) {
    odd(raw(diff_), mpfr_set_d(raw(diff_), max_, rz));
    odd(raw(diff_), mpfr_sub_d(raw(diff_), raw(diff_), x_[static_cast<std::size_t>(c)], rz));  // exact
  }

  const problem& p_;
  std::vector<double> x_;  // the row, gathered from its class stride (every dtype exactly)
  std::int64_t k_ = -1;
  double max_ = 0.0;
  std::vector<mp> e_;
  mp diff_, rest_, log1p_rest_, inv_sum_, tmp_;
};

// Everything compute() needs besides the row: constants of the problem and
// reused temporaries (no allocation per element).
struct engine {
  engine(const problem& pr, bool grad, mpfr_prec_t b)
      : p(pr), with_grad(grad), C(pr.classes),
        smooth(pr.label_smoothing > 0.0), probability(pr.target == target_kind::probability),
        row(pr, b), one_minus_eps(make(b)), eps_over_c(make(b)), w_sum(make(b)),
        denominator(make(b)), a_sum(make(b)), l(make(b)), s(make(b)), loss(make(b)),
        sum_l(make(b)), sum_s(make(b)), coef(make(b)), base(make(b)), pj(make(b)), g(make(b)),
        gj(make(b)), tmp(make(b)), scratch(make(b + 2)) {
    odd(raw(one_minus_eps), mpfr_set_ui(raw(one_minus_eps), 1, rz));
    odd(raw(one_minus_eps), mpfr_sub_d(raw(one_minus_eps), raw(one_minus_eps), pr.label_smoothing, rz));
    if (C > 0) {
      odd(raw(eps_over_c), mpfr_set_d(raw(eps_over_c), pr.label_smoothing, rz));
      odd(raw(eps_over_c), mpfr_div_si(raw(eps_over_c), raw(eps_over_c), static_cast<long>(C), rz));
    }
    for (std::int64_t c = 0; c < C; ++c) {
      w.push_back(make(b));
      odd(raw(w.back()), mpfr_set_d(raw(w.back()), pr.weight_wide(c), rz));
      odd(raw(w_sum), mpfr_add(raw(w_sum), raw(w_sum), raw(w.back()), rz));
      if (probability) a.push_back(make(b));
    }
    set_denominator();
  }

  // D of the mean: W = sum of the counted targets' weights (index targets),
  // or the number of positions (probability targets). 1 otherwise.
  void set_denominator() {
    if (p.reduce != reduction::mean) {
      odd(raw(denominator), mpfr_set_ui(raw(denominator), 1, rz));
    } else if (probability) {
      odd(raw(denominator), mpfr_set_si(raw(denominator), static_cast<long>(p.positions), rz));
    } else {
      mpfr_set_zero(raw(denominator), 1);
      for (std::int64_t n = 0; n < p.positions; ++n)
        if (p.counted(n))
          odd(raw(denominator), mpfr_add(raw(denominator), raw(denominator),
                   raw(w[static_cast<std::size_t>(p.target_at(n))]), rz));
    }
  }

  // a_c = w_c q'_c with q' = (1 - eps) q + eps / C, and their sum.
  void load_target_row(std::int64_t n) {
    const float* q = p.target_row(n);
    mpfr_set_zero(raw(a_sum), 1);
    for (std::int64_t c = 0; c < C; ++c) {
      mp& ac = a[static_cast<std::size_t>(c)];
      odd(raw(ac), mpfr_set_d(raw(ac), p.load_class_wide(q, c, p.target_class_stride), rz));
      if (smooth) {
        odd(raw(ac), mpfr_mul(raw(ac), raw(ac), raw(one_minus_eps), rz));
        odd(raw(ac), mpfr_add(raw(ac), raw(ac), raw(eps_over_c), rz));
      }
      odd(raw(ac), mpfr_mul(raw(ac), raw(ac), raw(w[static_cast<std::size_t>(c)]), rz));
      odd(raw(a_sum), mpfr_add(raw(a_sum), raw(a_sum), raw(ac), rz));
    }
  }

  // Loss of a counted position: l (and s) for the reductions, `loss` for none.
  void position_loss(std::int64_t n, bool finite) {
    if (!finite) {
      mpfr_set_nan(raw(l));
      mpfr_set_nan(raw(s));
      mpfr_set_nan(raw(loss));
      return;
    }
    if (probability) {
      row.weighted_neg_log_probs(a, a_sum, l);
      odd(raw(loss), mpfr_set(raw(loss), raw(l), rz));
      return;
    }
    const auto t = static_cast<std::size_t>(p.target_at(n));
    row.neg_log_prob(static_cast<std::int64_t>(t), l);
    odd(raw(l), mpfr_mul(raw(l), raw(l), raw(w[t]), rz));
    if (!smooth) {  // PyTorch computes no smoothing term at all here
      odd(raw(loss), mpfr_set(raw(loss), raw(l), rz));
      return;
    }
    row.weighted_neg_log_probs(w, w_sum, s);
    odd(raw(loss), mpfr_mul(raw(loss), raw(l), raw(one_minus_eps), rz));
    odd(raw(tmp), mpfr_mul(raw(tmp), raw(s), raw(eps_over_c), rz));
    odd(raw(loss), mpfr_add(raw(loss), raw(loss), raw(tmp), rz));
  }

  // Every gradient entry of a row with finite inputs, as one exact
  // rational part plus a remainder without cancellation. With the k logits
  // equal to the maximum m (ê_c = 1 there), e_c = e^{x_c - m} elsewhere,
  // S = k + Σ_{ê=0} e_c, C a_c = w_c ((1-eps) C q_c + eps), CA = Σ C a_c:
  //   g_j = [up (ê_j CA - k C a_j) + up CA X_j / S] / (k C D),
  //   X_j = -Σ_{ê=0} e_c (ê_j = 1),  k e_j (ê_j = 0)
  // (g_j = s (p_j A - a_j), s = up / D). The first term is exact at 1280
  // bits, the second has no cancellation; their sum is rounded to odd
  // with room to spare and divided once (exact_part_bits: exact for float64
  // inputs too). An exact float32 midpoint (ties of
  // equal logits, ε/C, 1/k and 1/D included) thus stays a midpoint, and one
  // moved by e^{-800} is moved to the right side: the general path's
  // roundings of ε/C, 1/S and g/D can break such ties either way. False when
  // anything is not finite (the general path keeps PyTorch's 0·inf cases).
  bool split_grad(std::int64_t n, exact* dst) {
    const float* x = p.logits_row(n);
    const std::int64_t xs = p.logits_class_stride;
    double m = -std::numeric_limits<double>::infinity();
    for (std::int64_t c = 0; c < C; ++c) m = std::max(m, p.load_class_wide(x, c, xs));
    if (!std::isfinite(m)) return false;
    const double g_in = p.reduce == reduction::none ? p.upstream_wide(n) : p.upstream_scalar_wide;
    if (!std::isfinite(g_in)) return false;
    const mpfr_prec_t b = mpfr_get_prec(raw(gj));
    const mpfr_prec_t hp = exact_part_bits(p.type);
    mp t = make(hp), ca = make(hp), num = make(hp), den = make(hp), sum_off = make(b), e = make(b),
       xs_ = make(b), rem = make(b), total = make(hp + 64), r = make(b);
    std::vector<mp> cac;
    std::vector<char> top(static_cast<std::size_t>(C), 0);
    double k = 0;
    mpfr_set_zero(raw(sum_off), 1);
    const float* q = probability ? p.target_row(n) : nullptr;
    const std::int64_t tgt = probability ? -1 : p.target_at(n);
    mpfr_set_zero(raw(ca), 1);
    for (std::int64_t c = 0; c < C; ++c) {
      const double w_c = p.weight_wide(c);
      const double q_c = probability ? p.load_class_wide(q, c, p.target_class_stride) : (c == tgt ? 1.0 : 0.0);
      if (!std::isfinite(w_c) || !std::isfinite(q_c) || std::isnan(p.load_class_wide(x, c, xs))) return false;
      cac.push_back(make(hp));
      mpfr_ptr v = raw(cac.back());
      odd(v, mpfr_set_d(v, q_c, rz));
      odd(v, mpfr_mul_si(v, v, static_cast<long>(C), rz));
      mpfr_set_ui(raw(t), 1, rz);
      odd(raw(t), mpfr_sub_d(raw(t), raw(t), p.label_smoothing, rz));
      odd(v, mpfr_mul(v, v, raw(t), rz));
      odd(v, mpfr_add_d(v, v, p.label_smoothing, rz));
      odd(v, mpfr_mul_d(v, v, w_c, rz));
      odd(raw(ca), mpfr_add(raw(ca), raw(ca), v, rz));
      if (p.load_class_wide(x, c, xs) == m) {
        top[static_cast<std::size_t>(c)] = 1;
        k += 1;
      } else {
        odd(raw(e), mpfr_set_d(raw(e), p.load_class_wide(x, c, xs), rz));
        odd(raw(e), mpfr_sub_d(raw(e), raw(e), m, rz));
        odd(raw(e), mpfr_exp(raw(e), raw(e), rz));
        odd(raw(sum_off), mpfr_add(raw(sum_off), raw(sum_off), raw(e), rz));
      }
    }
    // D exactly.
    if (p.reduce != reduction::mean) {
      mpfr_set_ui(raw(den), 1, rz);
    } else if (probability) {
      mpfr_set_si(raw(den), static_cast<long>(p.positions), rz);
    } else {
      mpfr_set_zero(raw(den), 1);
      for (std::int64_t i = 0; i < p.positions; ++i)
        if (p.counted(i)) odd(raw(den), mpfr_add_d(raw(den), raw(den), p.weight_wide(p.target_at(i)), rz));
    }
    if (mpfr_zero_p(raw(den)) || !mpfr_number_p(raw(den))) return false;
    odd(raw(den), mpfr_mul_d(raw(den), raw(den), k * static_cast<double>(C), rz));
    // S = k + Σ off e (working precision, no cancellation).
    mp S = make(b);
    odd(raw(S), mpfr_add_d(raw(S), raw(sum_off), k, rz));
    for (std::int64_t j = 0; j < C; ++j) {
      const bool on_top = top[static_cast<std::size_t>(j)] != 0;
      // Exact part up (ê_j CA - k C a_j).
      if (on_top) odd(raw(num), mpfr_set(raw(num), raw(ca), rz));
      else mpfr_set_zero(raw(num), 1);
      odd(raw(t), mpfr_mul_d(raw(t), raw(cac[static_cast<std::size_t>(j)]), k, rz));
      odd(raw(num), mpfr_sub(raw(num), raw(num), raw(t), rz));
      odd(raw(num), mpfr_mul_d(raw(num), raw(num), g_in, rz));
      // Remainder up CA X_j / S.
      if (on_top) {
        odd(raw(xs_), mpfr_neg(raw(xs_), raw(sum_off), rz));
      } else {
        odd(raw(xs_), mpfr_set_d(raw(xs_), p.load_class_wide(x, j, xs), rz));
        odd(raw(xs_), mpfr_sub_d(raw(xs_), raw(xs_), m, rz));
        odd(raw(xs_), mpfr_exp(raw(xs_), raw(xs_), rz));
        odd(raw(xs_), mpfr_mul_d(raw(xs_), raw(xs_), k, rz));
      }
      odd(raw(rem), mpfr_mul(raw(rem), raw(ca), raw(xs_), rz));
      odd(raw(rem), mpfr_mul_d(raw(rem), raw(rem), g_in, rz));
      odd(raw(rem), mpfr_div(raw(rem), raw(rem), raw(S), rz));
      odd(raw(total), mpfr_add(raw(total), raw(num), raw(rem), rz));
      odd(raw(r), mpfr_div(raw(r), raw(total), raw(den), rz));
      dst[j] = to_exact(raw(r), scratch);
    }
    return true;
  }

  // Gradient row of a counted position, times coef = g / D.
  void position_grad(std::int64_t n, bool finite, std::vector<exact>& out) {
    exact* dst = out.data() + n * C;
    if (!finite) {
      for (std::int64_t j = 0; j < C; ++j) dst[j] = {std::numeric_limits<double>::quiet_NaN(), 0.0};
      return;
    }
    if (split_grad(n, dst)) return;
    odd(raw(g), mpfr_set_d(raw(g), p.reduce == reduction::none ? p.upstream_wide(n) : p.upstream_scalar_wide, rz));
    odd(raw(coef), mpfr_div(raw(coef), raw(g), raw(denominator), rz));
    if (probability) {
      // p_j sum_c a_c - a_j
      for (std::int64_t j = 0; j < C; ++j) {
        row.prob(j, pj);
        odd(raw(pj), mpfr_mul(raw(pj), raw(pj), raw(a_sum), rz));
        odd(raw(pj), mpfr_sub(raw(pj), raw(pj), raw(a[static_cast<std::size_t>(j)]), rz));
        odd(raw(pj), mpfr_mul(raw(pj), raw(pj), raw(coef), rz));
        dst[j] = to_exact(raw(pj), scratch);
      }
      return;
    }
    // (1-eps) w_t (p_j - [j == t]) + (eps/C)(p_j sum_c w_c - w_j)
    const std::int64_t t = p.target_at(n);
    odd(raw(base), mpfr_set(raw(base), raw(w[static_cast<std::size_t>(t)]), rz));
    if (smooth) odd(raw(base), mpfr_mul(raw(base), raw(base), raw(one_minus_eps), rz));
    for (std::int64_t j = 0; j < C; ++j) {
      row.prob(j, pj);
      if (j == t) {
        row.prob_complement(t, gj);
        odd(raw(gj), mpfr_mul(raw(gj), raw(gj), raw(base), rz));
        odd(raw(gj), mpfr_neg(raw(gj), raw(gj), rz));
      } else {
        odd(raw(gj), mpfr_mul(raw(gj), raw(pj), raw(base), rz));
      }
      if (smooth) {
        odd(raw(tmp), mpfr_mul(raw(tmp), raw(pj), raw(w_sum), rz));
        odd(raw(tmp), mpfr_sub(raw(tmp), raw(tmp), raw(w[static_cast<std::size_t>(j)]), rz));
        odd(raw(tmp), mpfr_mul(raw(tmp), raw(tmp), raw(eps_over_c), rz));
        odd(raw(gj), mpfr_add(raw(gj), raw(gj), raw(tmp), rz));
      }
      odd(raw(gj), mpfr_mul(raw(gj), raw(gj), raw(coef), rz));
      dst[j] = to_exact(raw(gj), scratch);
    }
  }

  // Mean or sum, in PyTorch's order of operations (which decides 0*inf cases).
  exact reduced() {
    if (p.reduce == reduction::none) return {std::numeric_limits<double>::quiet_NaN(), 0.0};
    if (p.reduce == reduction::mean) odd(raw(sum_l), mpfr_div(raw(sum_l), raw(sum_l), raw(denominator), rz));
    if (smooth && !probability) {
      if (p.reduce == reduction::mean) odd(raw(sum_s), mpfr_div(raw(sum_s), raw(sum_s), raw(denominator), rz));
      odd(raw(sum_l), mpfr_mul(raw(sum_l), raw(sum_l), raw(one_minus_eps), rz));
      odd(raw(sum_s), mpfr_mul(raw(sum_s), raw(sum_s), raw(eps_over_c), rz));
      odd(raw(sum_l), mpfr_add(raw(sum_l), raw(sum_l), raw(sum_s), rz));
    }
    return to_exact(raw(sum_l), scratch);
  }

  // Positions [begin, end): per-position losses (and gradient rows) into
  // `out`, and the chunk's sums of l and s into sum_l / sum_s.
  void run_range(std::int64_t begin, std::int64_t end, result& out) {
    mpfr_set_zero(raw(sum_l), 1);
    mpfr_set_zero(raw(sum_s), 1);
    for (std::int64_t n = begin; n < end; ++n) {
      // Ignored positions are masked out by PyTorch (loss 0, even over NaN
      // logits); their gradient is 0 too.
      if (!p.counted(n)) continue;
      const bool finite = row.load(n);
      if (probability && finite) load_target_row(n);
      position_loss(n, finite);
      odd(raw(sum_l), mpfr_add(raw(sum_l), raw(sum_l), raw(l), rz));
      if (smooth && !probability) odd(raw(sum_s), mpfr_add(raw(sum_s), raw(sum_s), raw(s), rz));
      out.loss[static_cast<std::size_t>(n)] = to_exact(raw(loss), scratch);
      if (with_grad) position_grad(n, finite, out.grad);
    }
  }

  const problem& p;
  const bool with_grad;
  const std::int64_t C;
  const bool smooth, probability;
  softmax_row row;
  std::vector<mp> w, a;  // class weights; per-row coefficients w_c q'_c
  mp one_minus_eps, eps_over_c, w_sum, denominator, a_sum;
  mp l, s, loss, sum_l, sum_s;
  mp coef, base, pj, g, gj, tmp, scratch;
};

}  // namespace

result compute(const problem& p, bool with_grad, unsigned precision_bits) {
  compute_options o;
  o.precision_bits = precision_bits;
  return compute(p, with_grad, o);
}

result compute(const problem& p, bool with_grad, const compute_options& o) {
  if (o.precision_bits < 64)
    throw std::invalid_argument("xent::ref::compute: precision_bits must be at least 64, got " +
                                std::to_string(o.precision_bits));
  const auto bits = static_cast<mpfr_prec_t>(o.precision_bits);
  result out;
  out.loss.assign(static_cast<std::size_t>(p.positions), exact{});
  if (with_grad) out.grad.assign(static_cast<std::size_t>(p.positions * p.classes), exact{});

  // Positions in fixed chunks, each chunk's sums kept apart and added in
  // chunk order at the end: the same result for any number of threads.
  const std::int64_t chunks = (p.positions + reference_chunk - 1) / reference_chunk;
  std::vector<mp> chunk_l, chunk_s;
  for (std::int64_t k = 0; k < chunks; ++k) {
    chunk_l.push_back(make(bits));
    chunk_s.push_back(make(bits));
  }
  std::atomic<std::int64_t> next{0}, done{0};
  std::atomic<bool> stop{false};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&](bool own_thread) {
    try {
      exponent_range_guard range;
      engine e(p, with_grad, bits);
      for (std::int64_t k; !stop.load(std::memory_order_relaxed) && (k = next++) < chunks;) {
        const std::int64_t begin = k * reference_chunk;
        const std::int64_t end = std::min(p.positions, begin + reference_chunk);
        e.run_range(begin, end, out);
        odd(raw(chunk_l[static_cast<std::size_t>(k)]), mpfr_set(raw(chunk_l[static_cast<std::size_t>(k)]), raw(e.sum_l), rz));
        odd(raw(chunk_s[static_cast<std::size_t>(k)]), mpfr_set(raw(chunk_s[static_cast<std::size_t>(k)]), raw(e.sum_s), rz));
        done += end - begin;
      }
    } catch (...) {
      stop = true;
      const std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
    if (own_thread) release_thread_caches();
  };

  unsigned threads = o.threads == 0 ? std::max(1u, std::thread::hardware_concurrency()) : o.threads;
  threads = static_cast<unsigned>(std::min<std::int64_t>(threads, std::max<std::int64_t>(chunks, 1)));
  if (threads <= 1 && !o.progress) {
    work(false);
  } else {
    std::vector<std::thread> pool;
    for (unsigned i = 0; i < threads; ++i) pool.emplace_back(work, true);
    if (o.progress) {
      // The caller's thread reports; the workers compute.
      while (done.load() < p.positions && !stop.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        o.progress(done.load(), p.positions);
      }
    }
    for (auto& t : pool) t.join();
    if (o.progress && !failure) o.progress(p.positions, p.positions);
  }
  if (failure) std::rethrow_exception(failure);

  exponent_range_guard range;
  engine e(p, with_grad, bits);
  for (std::int64_t k = 0; k < chunks; ++k) {
    odd(raw(e.sum_l), mpfr_add(raw(e.sum_l), raw(e.sum_l), raw(chunk_l[static_cast<std::size_t>(k)]), rz));
    odd(raw(e.sum_s), mpfr_add(raw(e.sum_s), raw(e.sum_s), raw(chunk_s[static_cast<std::size_t>(k)]), rz));
  }
  out.reduced = e.reduced();
  return out;
}

void release_thread_caches() { mpfr_free_cache2(MPFR_FREE_LOCAL_CACHE); }

float to_float(const exact& r) {
  // Rounding hi alone could double-round when hi is a float midpoint.
  if (r.lo == 0.0 || !std::isfinite(r.hi)) return static_cast<float>(r.hi);
  return mpfr_get_flt(raw(detail::from_exact(r)), rn);
}

double to_double(const exact& r) {
  if (!std::isnan(r.rn64)) return r.rn64;
  if (r.lo == 0.0 || !std::isfinite(r.hi)) return r.hi;
  return mpfr_get_d(raw(detail::from_exact(r)), rn);
}

std::string to_string(const exact& r, int digits) {
  if (std::isnan(r.hi)) return "nan";
  if (std::isinf(r.hi)) return r.hi > 0 ? "inf" : "-inf";
  const mp v = detail::from_exact(r);
  char* text = nullptr;
  if (mpfr_asprintf(&text, "%.*Rg", digits < 1 ? 1 : digits, raw(v)) < 0)
    throw std::runtime_error("xent::ref::to_string: mpfr_asprintf failed");
  std::string s(text);
  mpfr_free_str(text);
  return s;
}

}  // namespace xent::ref

#include "stable_interval.hpp"

#include <mpfi.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <vector>

namespace xent::stable_interval {

namespace {

constexpr mpfr_prec_t precisions[] = {128, 256, 512, 1024, 2048, 4096};

// An interval of a chosen precision (RAII over mpfi_t).
class iv {
 public:
  explicit iv(mpfr_prec_t bits) { mpfi_init2(v_, bits); }
  ~iv() { mpfi_clear(v_); }
  iv(const iv&) = delete;
  iv& operator=(const iv&) = delete;
  mpfi_ptr operator*() { return v_; }
  mpfi_srcptr operator*() const { return v_; }

 private:
  mpfi_t v_;
};

// MPFR's exponent range is per thread: widen it for the evaluation (e^(x-m)
// of spreads near 10^308 must not be flushed to a bound of 0 that loses
// the side), then restore the caller's.
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

// RN to float64 when both ends of r round to the same double (RN is
// monotone: then every real in r does, the exact value included).
bool decide(mpfi_srcptr r, double& out) {
  if (mpfi_nan_p(r)) return false;
  mpfr_t lo, hi;
  mpfr_init2(lo, mpfi_get_prec(r));
  mpfr_init2(hi, mpfi_get_prec(r));
  mpfi_get_left(lo, r);
  mpfi_get_right(hi, r);
  const double a = mpfr_get_d(lo, MPFR_RNDN), b = mpfr_get_d(hi, MPFR_RNDN);
  mpfr_clear(lo);
  mpfr_clear(hi);
  if (std::bit_cast<std::uint64_t>(a) != std::bit_cast<std::uint64_t>(b)) return false;
  out = a;
  return true;
}

}  // namespace

struct evaluator::state {
  const problem& pr;
  // D (the mean's denominator) exactly: a sum of doubles fits 2240 bits for
  // fewer than 2^100 positions.
  mpfr_t D;

  explicit state(const problem& p) : pr(p) {
    mpfr_init2(D, 2240);
    if (pr.reduce != reduction::mean) {
      mpfr_set_ui(D, 1, MPFR_RNDN);
    } else if (pr.target == target_kind::probability) {
      mpfr_set_si(D, static_cast<long>(pr.positions), MPFR_RNDN);
    } else {
      mpfr_set_zero(D, 1);
      pr.for_each_offset(pr.target_position_strides, [&](std::int64_t, std::int64_t off) {
        const std::int64_t t = pr.target_index[off];
        if (t != pr.ignore_index) mpfr_add_d(D, D, pr.weight_wide(t), MPFR_RNDN);  // exact
      });
    }
  }
  ~state() { mpfr_clear(D); }

  // One row's exponentials, S and A at one precision (gradient()).
  struct row_level {
    row_level(std::int64_t C, mpfr_prec_t bits) : e(static_cast<std::size_t>(C)), S(bits), A(bits) {
      for (auto& v : e) mpfi_init2(&v, bits);
    }
    ~row_level() {
      for (auto& v : e) mpfi_clear(&v);
    }
    row_level(const row_level&) = delete;
    row_level& operator=(const row_level&) = delete;
    std::vector<__mpfi_struct> e;
    iv S, A;
    bool ok = false;
  };
  std::int64_t row_p = -1;
  std::vector<std::unique_ptr<row_level>> levels;

  // b_c = w_c ((1 - eps) q_c + eps / C) into r.
  void mass(std::int64_t p, std::int64_t c, mpfi_ptr r) const {
    const double q = pr.target == target_kind::probability
                         ? pr.load_class_wide(pr.target_row(p), c, pr.target_class_stride)
                         : (c == pr.target_at(p) ? 1.0 : 0.0);
    iv t(mpfi_get_prec(r));
    mpfi_set_d(r, q);
    mpfi_set_d(*t, pr.label_smoothing);
    mpfi_ui_sub(*t, 1, *t);  // 1 - eps
    mpfi_mul(r, r, *t);
    mpfi_set_d(*t, pr.label_smoothing);
    mpfi_div_si(*t, *t, static_cast<long>(pr.classes));
    mpfi_add(r, r, *t);
    mpfi_mul_d(r, r, pr.weight_wide(c));
  }

  // Row p's logits: x (contiguous) when given, else read from the problem.
  void gather(std::int64_t p, const double* x, std::vector<double>& xs) const {
    const float* r = pr.logits_row(p);
    xs.resize(static_cast<std::size_t>(pr.classes));
    for (std::int64_t c = 0; c < pr.classes; ++c)
      xs[static_cast<std::size_t>(c)] = x ? x[c] : pr.load_class_wide(r, c, pr.logits_class_stride);
  }

  // The row's max m (finite), e_j = e^(x_j - m) into e, S = Σ e_j, and
  // L = log1p(Σ_{j≠k} e_j). False for a row without a finite max.
  bool row(const std::vector<double>& xs, double& m, std::int64_t& k, std::vector<__mpfi_struct>& e, mpfi_ptr S,
           mpfi_ptr L) const {
    const std::int64_t C = pr.classes;
    m = -std::numeric_limits<double>::infinity();
    k = 0;
    for (std::int64_t c = 0; c < C; ++c) {
      if (xs[static_cast<std::size_t>(c)] > m) m = xs[static_cast<std::size_t>(c)], k = c;
    }
    if (!std::isfinite(m)) return false;
    mpfi_set_ui(L, 0);
    for (std::int64_t c = 0; c < C; ++c) {
      mpfi_ptr ec = &e[static_cast<std::size_t>(c)];
      if (c == k) {
        mpfi_set_ui(ec, 1);
        continue;
      }
      mpfi_set_d(ec, xs[static_cast<std::size_t>(c)]);  // -inf: e^-inf = 0 exactly
      mpfi_sub_d(ec, ec, m);
      mpfi_exp(ec, ec);
      mpfi_add(L, L, ec);
    }
    mpfi_add_ui(S, L, 1);
    mpfi_log1p(L, L);
    return true;
  }

  // The loss of position p at `bits` into r: Σ_c b_c (m - x_c) + A L
  // (classes with b_c = 0 contribute nothing, -inf logits included).
  bool loss(std::int64_t p, const std::vector<double>& xs, mpfr_prec_t bits, mpfi_ptr r) const {
    const std::int64_t C = pr.classes;
    std::vector<__mpfi_struct> e(static_cast<std::size_t>(C));
    for (auto& v : e) mpfi_init2(&v, bits);
    iv S(bits), L(bits), b(bits), A(bits), t(bits);
    double m;
    std::int64_t k;
    bool ok = row(xs, m, k, e, *S, *L);
    if (ok) {
      mpfi_set_ui(r, 0);
      mpfi_set_ui(*A, 0);
      for (std::int64_t c = 0; c < C && ok; ++c) {
        mass(p, c, *b);
        if (mpfi_is_zero(*b)) continue;
        mpfi_add(*A, *A, *b);
        mpfi_set_d(*t, m);
        mpfi_sub_d(*t, *t, xs[static_cast<std::size_t>(c)]);
        mpfi_mul(*t, *t, *b);
        mpfi_add(r, r, *t);
      }
      mpfi_mul(*t, *A, *L);
      mpfi_add(r, r, *t);
    }
    for (auto& v : e) mpfi_clear(&v);
    return ok;
  }
};

evaluator::evaluator(const problem& pr) : s_(std::make_unique<state>(pr)) {}
evaluator::~evaluator() = default;

bool evaluator::loss(std::int64_t p, const double* x, double& out) const {
  const exponent_range_guard guard;
  std::vector<double> xs;
  s_->gather(p, x, xs);
  for (const mpfr_prec_t bits : precisions) {
    iv r(bits);
    if (!s_->loss(p, xs, bits, *r)) return false;
    if (decide(*r, out)) return true;
  }
  return false;
}

bool evaluator::gradient(std::int64_t p, const double* x, std::int64_t j, double upstream, double& out) const {
  const exponent_range_guard guard;
  state& st = *s_;
  const std::int64_t C = st.pr.classes;
  // A row's entries fall back together (subnormal rows): its exponentials,
  // S and A are kept per precision for the next entry of the same row.
  if (st.row_p != p) {
    st.row_p = p;
    st.levels.clear();
  }
  for (std::size_t level = 0; level < std::size(precisions); ++level) {
    const mpfr_prec_t bits = precisions[level];
    if (level == st.levels.size()) {
      st.levels.push_back(std::make_unique<state::row_level>(C, bits));
      state::row_level& r = *st.levels.back();
      std::vector<double> xs;
      st.gather(p, x, xs);
      iv L(bits), b(bits);
      double m;
      std::int64_t k;
      r.ok = st.row(xs, m, k, r.e, *r.S, *L);
      mpfi_set_ui(*r.A, 0);
      for (std::int64_t c = 0; c < C && r.ok; ++c) {
        st.mass(p, c, *b);
        mpfi_add(*r.A, *r.A, *b);
      }
    }
    const state::row_level& r = *st.levels[level];
    if (!r.ok) return false;
    // g_j = (upstream / D) (p_j A - b_j), p_j = e_j / S.
    iv b(bits), g(bits), s(bits);
    st.mass(p, j, *b);
    mpfi_div(*g, &r.e[static_cast<std::size_t>(j)], *r.S);
    mpfi_mul(*g, *g, *r.A);
    mpfi_sub(*g, *g, *b);
    mpfi_set_d(*s, upstream);
    mpfi_div_fr(*s, *s, st.D);
    mpfi_mul(*g, *g, *s);
    if (decide(*g, out)) return true;
  }
  return false;
}

bool evaluator::reduction(double& out) const {
  const exponent_range_guard guard;
  const problem& pr = s_->pr;
  std::vector<double> xs;
  for (const mpfr_prec_t bits : precisions) {
    iv total(bits), l(bits);
    mpfi_set_ui(*total, 0);
    for (std::int64_t p = 0; p < pr.positions; ++p) {
      if (!pr.counted(p)) continue;
      s_->gather(p, nullptr, xs);
      if (!s_->loss(p, xs, bits, *l)) return false;
      mpfi_add(*total, *total, *l);
    }
    mpfi_div_fr(*total, *total, s_->D);
    if (decide(*total, out)) return true;
  }
  return false;
}

}  // namespace xent::stable_interval

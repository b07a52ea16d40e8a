// `stable`: max-shifted, correctly rounded (docs/correct_rounding.md;
// formulas of docs/design.md §3, Blanchard, Higham & Higham 2021):
//   loss   = (m - x_t) + log1p(Σ_{j≠k} e^{x_j - m}),  m = x_k the row max
//   1 - p_t = Σ_{j≠t} p_j, never computed as a difference
// Ziv's strategy: every float32 result is first evaluated in double (in
// Highway's double lanes where it can: stable_vector.hpp) together
// with a rigorous bound on its error; when the interval [v - err, v + err]
// holds no float32 rounding boundary, RN(v) is the exact value rounded once.
// Otherwise the row is re-evaluated in double-double (bound ~2^-90 relative)
// and tested again; what still fails is resolved as an exact boundary (§5).
// The batch reduction is the exact sum of the per-position losses (not of
// their float32 roundings), accumulated in double-double in position order.
#include <algorithm>
#include <cmath>
#include <exception>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "double_double.hpp"
#include "expansion.hpp"
#include "kernels.hpp"
#include "row_driver.hpp"
#include "scratch.hpp"
#include "stable_interval.hpp"
#include "stable_dd_vector.hpp"
#include "stable_vector.hpp"
#include "xent/kernel/statistics.hpp"
#include "xent/kernel/widened_problem.hpp"

namespace xent {

namespace {

using ddm::dd;
using ddm::hi;

constexpr double nan = std::numeric_limits<double>::quiet_NaN();
constexpr double inf = std::numeric_limits<double>::infinity();
// Absolute error floor added to every bound: covers underflow in e^{x-m} and
// in double-double low parts, whatever scale multiplies them (§3.5).
constexpr double eta = 0x1p-600;

thread_local rounding_statistics counts;

// Per-precision error constants (docs/correct_rounding.md §2, §4): `op` per
// arithmetic operation, `fexp`/`flog` of e^{-d} and log1p, `gap` of the
// difference m - x_j (exact in double-double), and the summation bound.
template <class T>
struct prec;
template <>
struct prec<double> {
  static constexpr double op = 0x1p-53;
  static constexpr double fexp = 0x1p-51;  // libm exp: assumed <= 2 ulp (glibc: < 1)
  static constexpr double flog = 0x1p-51;  // libm log1p and log: assumed <= 2 ulp (glibc: < 1)
  static constexpr double gap = 0x1p-53;
  // Compensated (TwoSum) summation of n terms: u|s| + 2 (n u)^2 Σ|t| (Higham 4.3).
  static double sum(double n) { return 0x1p-53 + 2.0 * (n * 0x1p-53) * (n * 0x1p-53); }
  static double difference(float m, float x) { return static_cast<double>(m) - static_cast<double>(x); }
  static double exp_neg(double d) { return std::exp(-d); }
  static double log1p(double r) { return std::log1p(r); }
};
template <>
struct prec<dd> {
  static constexpr double op = 0x1p-101;  // every double-double operation: <= 15u^2 + 56u^3
  static constexpr double fexp = 0x1p-96;
  static constexpr double flog = 0x1p-89;
  static constexpr double gap = 0.0;
  static double sum(double n) { return n * 0x1p-103; }
  template <class X>  // float or double inputs: exact either way
  static dd difference(X m, X x) {
    const double d = static_cast<double>(m) - static_cast<double>(x);
    if (!std::isfinite(d)) return {d, 0.0};
    return ddm::two_sum(static_cast<double>(m), -static_cast<double>(x));  // exact
  }
  static dd exp_neg(dd d) { return ddm::exp(-d); }
  static dd log1p(dd r) { return ddm::log1p(r); }
};

// Compensated accumulation in double; plain double-double addition in dd.
template <class T>
struct accumulator {
  T s{};
  void add(T x) { s = s + x; }
  T value() const { return s; }
};
template <>
struct accumulator<double> {
  double s = 0.0, c = 0.0;
  void add(double x) {
    const dd t = ddm::two_sum(s, x);
    s = t.hi;
    c += t.lo;
  }
  double value() const { return std::isfinite(s) ? s + c : s; }  // c is NaN after an infinity
};

// One softmax row and its targets in precision T, every quantity with a
// bound on its absolute error (docs/correct_rounding.md §3). X: the
// inputs' type, float (float32, or 16-bit widened) or double (float64, with
// T = dd only: §8).
template <class T, class X = float>
class row_model {
  using P = prec<T>;

 public:
  // x: the row (stride xs); e: scratch for C exponentials.
  // libm: the exponentials from libm even where the vector path would
  // take them (a tighter bound for the results the vector one leaves).
  row_model(const problem& pr, std::int64_t p, const X* x, std::int64_t xs, T* e, bool libm = false)
      : pr_(pr), x_(x), xs_(xs), C_(pr.classes), e_(e), libm_(libm) {
    static_assert(std::is_same_v<X, float> || std::is_same_v<T, dd>, "float64 inputs need double-double");
    index_ = pr.target == target_kind::index;
    t_ = index_ ? pr.target_at(p) : -1;
    q_ = index_ ? nullptr : reinterpret_cast<const X*>(pr.target_row(p));
    qs_ = pr.target_class_stride;
    eps_ = pr.label_smoothing;
    one_m_ = T(1.0) - T(eps_);
    ec_ = T(eps_) / T(static_cast<double>(C_));
    one_m_d_ = std::fabs(1.0 - eps_);
    ec_d_ = eps_ / static_cast<double>(C_);
    plain_ = index_ && eps_ == 0.0;
    defined_ = stats();
  }

  bool defined() const { return defined_; }
  // The exact Σ_{j≠k} e^{x_j - m} is > 0 but every term underflowed: the
  // computed log1p(rest) is 0 while the exact one is positive. Then the
  // exact loss lies strictly on the side of its coefficient of L (§5).
  double underflow_side() const {
    return finite_other_ && hi(rest_) == 0.0 ? coef_L_ : 0.0;
  }
  bool plain() const { return plain_; }
  bool vectorized() const { return vector_; }
  // The exponentials came from the vector path (bound kExpError).
  bool vector_exponentials() const { return vector_ && fexp_ == stable_vector::kExpError; }
  std::int64_t target_class() const { return t_; }
  std::int64_t max_class() const { return k_; }
  std::int64_t mass_max_class() const { return kb_; }
  const X* target_probabilities() const { return q_; }
  std::int64_t target_stride() const { return qs_; }

  // A smoothed or probability-target row's constants for the vector pass
  // (after prepare_masses; stable_vector::mass_gradient).
  stable_vector::mass_row mass_constants(double s1, double rel1) const {
    stable_vector::mass_row r;
    r.m = m_;
    r.S = hi(S_);
    r.E_S = E_S_;
    r.mass = hi(mass_);
    r.E_mass = E_mass_;
    r.one_m = hi(one_m_);
    r.ec = hi(ec_);
    r.one_m_d = one_m_d_;
    r.ec_d = ec_d_;
    r.fexp = fexp_;
    r.t = index_ ? t_ : -1;
    r.s1 = s1;
    r.rel1 = rel1;
    return r;
  }
  // L = log1p(Σ_{j≠k} e^{x_j - m}) and its error bound; whether every term
  // underflowed while the exact L is positive.
  T log_term() const { return L_; }
  double log_term_error() const { return E_L_; }
  bool log_underflowed() const { return finite_other_ && hi(rest_) == 0.0; }
  // The exact L is > 0: some logit other than the max is finite.
  bool log_positive() const { return finite_other_; }

  T loss(double& err) {
    coef_L_ = plain_ ? w(t_) : 0.0;
    if (plain_) return target_term(err);
    // One pass over the classes: the loss's sums and the gradient's masses.
    pass_sums s;
    bool lanes = false;
    if constexpr (std::is_same_v<T, double> && std::is_same_v<X, float>) {
      const float* weights = lane_weights();
      lanes = vector_ && (index_ || qs_ == 1) && (weights || !pr_.weight) && stable_vector::mass_pass_pays();
      if (lanes) s = lane_pass(weights);
    }
    if (!lanes) s = scalar_pass();
    const double n = s.sum_bound, lh = hi(L_);
    if (index_) {
      // PyTorch's form (1-eps) l + (eps/C) s, kept so that 0 * inf gives its NaN.
      const double e_smooth = P::gap * s.dw + E_L_ * s.w1 + (2 * P::op + n) * s.aw;
      double e_lt;
      const T lt = target_term(e_lt);
      coef_L_ = one_m_d_ * w(t_) + ec_d_ * s.sum_w;
      err = 2 * (one_m_d_ * e_lt + ec_d_ * e_smooth + 4 * P::op * (one_m_d_ * std::fabs(hi(lt)) + ec_d_ * s.aw));
      return one_m_ * lt + ec_ * s.smooth;
    }
    const T A = mass_;
    coef_L_ = hi(A);
    err = 2 * ((6 * P::op + P::gap + n) * s.b1 + std::fabs(hi(A)) * E_L_ + lh * (5 * P::op + n) * s.b0 +
               2 * P::op * (s.b1 + s.b0 * lh));
    return s.bd + A * L_;
  }

 private:
  // A smoothed or probability row's sums for its loss (docs/correct_rounding.md
  // §3.4): index targets Σ w_c (d_c + L) (compensated), Σ|w_c| (d_c + L),
  // Σ|w_c| d_c, Σ|w_c|, Σ w_c; probability targets Σ b_c d_c (compensated),
  // Σ beta_c d_c, Σ beta_c; and the summation's relative bound.
  struct pass_sums {
    T smooth{}, bd{};
    double aw = 0.0, dw = 0.0, w1 = 0.0, sum_w = 0.0, b1 = 0.0, b0 = 0.0;
    double sum_bound = 0.0;
  };

  // In class order; the masses too (set_masses).
  pass_sums scalar_pass() {
    pass_sums s;
    accumulator<T> smooth, bd;
    masses m;
    for (std::int64_t c = 0; c < C_; ++c) {
      const T d = c == k_ ? T(0.0) : gap(c);
      const double dh = hi(d);
      const T bc = b(c);
      const double be = beta(c);
      if (index_) {
        const double wc = w(c);
        smooth.add(T(wc) * (d + L_));
        s.aw += std::fabs(wc) * (dh + hi(L_));
        s.dw += std::fabs(wc) * dh;
        s.w1 += std::fabs(wc);
        s.sum_w += wc;
      } else {
        bd.add(bc * d);
        s.b1 += be * dh;
      }
      m.add(c, bc, be);
    }
    s.smooth = smooth.value();
    s.bd = bd.value();
    s.b0 = m.b0;
    s.sum_bound = P::sum(static_cast<double>(C_));
    finish_masses(m);
    return s;
  }

  // The same in double lanes (contiguous rows, stable_vector::mass_pass),
  // with the lanes' summation bound sum_error(C) (§3.4).
  pass_sums lane_pass(const float* weights) {
    stable_vector::mass_pass_row in;
    in.m = m_;
    in.L = hi(L_);
    in.one_m = hi(one_m_);
    in.ec = hi(ec_);
    in.one_m_d = one_m_d_;
    in.ec_d = ec_d_;
    in.t = t_;
    const stable_vector::mass_pass_sums r =
        stable_vector::mass_pass(x_, index_ ? nullptr : q_, weights, C_, in);
    const double n = stable_vector::sum_error(static_cast<double>(C_));
    set_masses(r.mass, r.rest, r.kb, r.b0, r.b0_rest, n);
    return {r.smooth, r.bd, r.aw, r.dw, r.w1, r.sum_w, r.b1, r.b0, n};
  }

 public:
  // The class weights as a contiguous float32 array, or null (every weight
  // 1, or strided / another dtype: then the scalar pass).
  const float* lane_weights() const {
    if constexpr (std::is_same_v<X, float>)
      if (pr_.weight && pr_.weight_stride == 1 && pr_.type == dtype::f32) return pr_.weight;
    return nullptr;
  }

  // Smoothed or probability targets: A = Σ b_c and A - b_kb without
  // cancellation (kb the largest b). Call before gradient() there; loss()
  // has them already (its own pass over the classes computes them too).
  void prepare_masses() {
    if (masses_ready_) return;
    masses m;
    for (std::int64_t c = 0; c < C_; ++c) m.add(c, b(c), beta(c));
    finish_masses(m);
  }

  // A plain row's gradient entries but the target's, in double lanes
  // (vectorized() rows only; docs/correct_rounding.md §3.4): v_j = F e_j with
  // F = RN(RN(s1 w_t) / S), relative error rel_e(j) + E_S/S + rel1 (that of
  // s1) + 3 roundings, doubled as every bound here. Writes what its rounding
  // test decides; returns how many entries it left in `undecided`.
  std::int64_t vector_gradient(double s1, double rel1, float* g, std::int64_t* undecided) const {
    const double S = hi(S_);
    const double F = (s1 * w(t_)) / S;
    const double a = 2 * (fexp_ + E_S_ / S + rel1 + 4 * P::op);
    return stable_vector::plain_gradient(e_, x_, C_, m_, F, a, 2 * 1.01 * P::gap, g, undecided);
  }

  // d l / d x_j before the scale (upstream / D).
  T gradient(std::int64_t j, double& err) const {
    const double s = hi(S_), rs = E_S_ / s;
    if (plain_) {
      const double wt = w(t_);
      if (j != t_) {
        const T v = T(wt) * (e_[j] / S_);
        err = 2 * std::fabs(hi(v)) * (rel_e(j) + rs + 2 * P::op);
        return v;
      }
      const T others = t_ == k_ ? rest_ : S_ - e_[t_];
      const double e_o = t_ == k_ ? E_rest_ : E_S_ + rel_e(t_) * hi(e_[t_]) + P::op * hi(others);
      const T v = -(T(wt) * (others / S_));
      err = 2 * (std::fabs(wt) * e_o / s + std::fabs(hi(v)) * (rs + 2 * P::op));
      return v;
    }
    // p_j A - b_j = p_j (A - b_j) - b_j (1 - p_j), both factors without
    // cancellation; what remains is the true difference of the two terms.
    const T ej = e_[j];
    const double re = rel_e(j);
    const T nj = j == k_ ? rest_ : S_ - ej;
    const double e_nj = j == k_ ? E_rest_ : E_S_ + re * hi(ej) + P::op * std::fabs(hi(nj));
    const T bj = b(j);
    const double be = beta(j);
    const T anj = j == kb_ ? mass_rest_ : mass_ - bj;
    const double e_anj = (j == kb_ ? E_mass_rest_ : E_mass_) + P::op * std::fabs(hi(anj)) + 5 * P::op * be;
    const T pj = ej / S_;
    const T t1 = pj * anj;
    const double e1 = hi(pj) * e_anj + std::fabs(hi(t1)) * (re + rs + 2 * P::op);
    const T t2 = bj * (nj / S_);
    const double e2 = (5 * P::op * be * std::fabs(hi(nj)) + std::fabs(hi(bj)) * e_nj) / s +
                      std::fabs(hi(t2)) * (rs + 2 * P::op);
    const T v = t1 - t2;
    err = 2 * (e1 + e2 + P::op * std::fabs(hi(v)));
    return v;
  }

 private:
  double w(std::int64_t c) const {
    if constexpr (std::is_same_v<X, double>) return pr_.weight_wide(c);
    else return static_cast<double>(pr_.weight_at(c));
  }
  X xf(std::int64_t c) const { return x_[c * xs_]; }
  T gap(std::int64_t c) const { return P::difference(m_, xf(c)); }
  // m - x_j in double for bounds; beyond 2^11 e^{-d} is below every floor.
  double gap_d(std::int64_t c) const {
    const double d = static_cast<double>(m_) - static_cast<double>(xf(c));  // not NaN: m is finite
    return d < 0x1p11 ? d : 0x1p11;
  }
  // Relative error of the computed e_j (exact 1 for the max).
  double rel_e(std::int64_t j) const { return j == k_ ? 0.0 : fexp_ + 1.01 * P::gap * gap_d(j); }
  double qv(std::int64_t c) const {
    return index_ ? (c == t_ ? 1.0 : 0.0) : static_cast<double>(q_[c * qs_]);
  }
  T b(std::int64_t c) const { return T(w(c)) * (one_m_ * T(qv(c)) + ec_); }
  // |b_c| <= beta_c, and the computed b_c is within 5 op beta_c of b_c.
  double beta(std::int64_t c) const { return std::fabs(w(c)) * (std::fabs(one_m_d_ * qv(c)) + ec_d_); }

  // w_t (m - x_t + log1p(rest)).
  T target_term(double& err) const {
    const double wt = w(t_);
    const T gt = t_ == k_ ? T(0.0) : gap(t_);
    const double g = hi(gt);
    err = 2 * std::fabs(wt) * (1.01 * P::gap * g + E_L_ + 2 * P::op * (g + hi(L_)));
    return T(wt) * (gt + L_);
  }

  // Σ b_c, Σ_{c≠kb} b_c (kb the first largest b) and their beta sums, in
  // class order.
  struct masses {
    accumulator<T> mass, rest;
    std::int64_t kb = 0;
    T bk{};
    double b0 = 0.0, b0_rest = 0.0;  // Σ beta_c, and over c ≠ kb
    double beta_k = 0.0;
    void add(std::int64_t c, T bc, double be) {
      if (c == 0) {
        bk = bc;
        beta_k = be;
      } else if (hi(bc) > hi(bk)) {
        rest.add(bk);
        b0_rest += beta_k;
        kb = c;
        bk = bc;
        beta_k = be;
      } else {
        rest.add(bc);
        b0_rest += be;
      }
      mass.add(bc);
      b0 += be;
    }
  };
  void finish_masses(const masses& m) {
    set_masses(m.mass.value(), m.rest.value(), m.kb, m.b0, m.b0_rest, P::sum(static_cast<double>(C_)));
  }
  // sum_bound: the summation's relative bound.
  void set_masses(T mass, T rest, std::int64_t kb, double b0, double b0_rest, double sum_bound) {
    kb_ = kb;
    mass_ = mass;
    mass_rest_ = rest;
    const double k = 2 * (5 * P::op + sum_bound);
    E_mass_ = k * b0;
    E_mass_rest_ = k * b0_rest;
    masses_ready_ = true;
  }

  bool vector_max() const {
    return std::is_same_v<X, float> && xs_ == 1 && C_ >= 32 && stable_vector::mass_pass_pays();
  }

  bool stats() {
    if constexpr (std::is_same_v<T, double>) {
      // Contiguous rows take the vector gradient passes; their exponentials
      // come from the vector path where it has 4 or more double lanes and
      // the row 16 classes or more, from libm otherwise (on SSE4 and scalar
      // targets, and on short rows, libm's exp is faster).
      vector_ = xs_ == 1;
      if (vector_ && !libm_ && stable_vector::vector_exponentials_pay(C_)) return vector_stats();
    }
    X m = -std::numeric_limits<X>::infinity();
    std::int64_t k = 0;
    if (!vector_max()) {
      for (std::int64_t j = 0; j < C_; ++j) {
        const X v = xf(j);
        if (std::isnan(v)) return false;
        if (v > m) {
          m = v;
          k = j;
        }
      }
    } else if constexpr (std::is_same_v<X, float>) {
      // Contiguous float32 rows of 32 classes or more on targets with 2 or
      // more double lanes: the vector max scan, which picks the same (first)
      // index as the loop above (on shorter rows its set-up costs more than
      // it saves; in one lane it is a tenth slower than the loop).
      if (!stable_vector::row_max(x_, C_, m, k)) return false;
    }
    if (std::isinf(m)) return false;  // +inf: inf - inf; -inf: every class impossible
    m_ = m;
    k_ = k;
    if (k == 0 && equal_logits()) return true;
    // float64 rows: the same exponentials in double lanes where this CPU
    // has them with fused multiply-adds (the same bits, stable_dd_vector.hpp).
    bool lanes = false;
    if constexpr (std::is_same_v<X, double>) {
      lanes = xs_ == 1 && stable_dd_vector::available();
      if (lanes) stable_dd_vector::exponentials(x_, C_, m, e_);
    }
    accumulator<T> rest;
    double rho = 0.0;  // Σ e_j d_j: the double path's rounding of m - x_j
    for (std::int64_t j = 0; j < C_; ++j) {
      if (j == k) {
        e_[j] = T(1.0);
        continue;
      }
      const T e = lanes ? e_[j] : P::exp_neg(gap(j));
      e_[j] = e;
      finite_other_ = finite_other_ || std::isfinite(xf(j));
      rest.add(e);
      if constexpr (P::gap != 0.0) rho += hi(e) * gap_d(j);
    }
    rest_ = rest.value();
    finish_stats(P::sum(static_cast<double>(C_)), rho);
    return true;
  }

  // A row whose logits all equal its max (a zero-initialised output layer):
  // every e^{x_j - m} is 1 and rest = C - 1, exactly, without the C calls to
  // exp (a test per element in that loop cost rows of distinct logits on
  // SSE4 a fifth of their time). Other rows with k = 0 stop at the first
  // logit that differs, almost always the second.
  bool equal_logits() {
    for (std::int64_t j = 1; j < C_; ++j)
      if (xf(j) != m_) return false;
    for (std::int64_t j = 0; j < C_; ++j) e_[j] = T(1.0);
    finite_other_ = C_ > 1;
    rest_ = T(static_cast<double>(C_ - 1));  // exact: an integer below 2^53
    finish_stats(P::sum(static_cast<double>(C_)), 0.0);
    return true;
  }

  // The same in double lanes (contiguous rows): Highway's exponential with
  // its own bound, and a lane-wise compensated sum (stable_vector.hpp).
  bool vector_stats() {
    float m;
    std::int64_t k;
    if (!stable_vector::row_max(x_, C_, m, k) || std::isinf(m)) return false;
    m_ = m;
    k_ = k;
    fexp_ = stable_vector::kExpError;
    const stable_vector::row_exponentials r = stable_vector::exponentials(x_, C_, m, k, e_);
    finite_other_ = r.finite_other;
    rest_ = r.rest;
    finish_stats(stable_vector::sum_error(static_cast<double>(C_)), r.rho);
    return true;
  }

  // E_rest (sum_bound: the summation's relative bound), S, L and their bounds.
  void finish_stats(double sum_bound, double rho) {
    const double r = hi(rest_), n = static_cast<double>(C_);
    // n 2^-1070 bounds the terms that underflowed. It is subnormal, and an
    // operation with a subnormal result takes a microcode assist on many
    // x86 cores (a tenth of a 10-class row's time): above 2^-900 the bound
    // is raised by a relative 2^-50 instead, which exceeds n 2^-1070 after
    // its own rounding (a 2^-50 - ulp(a)/2 >= 2^-951) for any n.
    const double a = 2 * ((sum_bound + fexp_) * r + 1.01 * P::gap * rho);
    E_rest_ = a >= 0x1p-900 ? a * (1 + 0x1p-50) : a + n * 0x1p-1070;
    S_ = rest_ + 1.0;
    E_S_ = E_rest_ + P::op * hi(S_);
    // From rest >= 1/8 on, log(S) (glibc's log is about three times faster
    // than its log1p) within the log bound of L plus 1.01 u for S's rounding
    // (|log(S(1 + δ)) - log S|; L >= log 1.125 > 0.117 there, so at most
    // 8.7 u relative); below, log1p keeps L's relative accuracy as rest -> 0.
    double e_s = 0.0;
    if constexpr (std::is_same_v<T, double>) {
      if (r >= 0.125 && std::isfinite(r)) {
        L_ = std::log(S_);
        e_s = 1.01 * P::op;
      } else {
        L_ = P::log1p(rest_);
      }
    } else {
      L_ = P::log1p(rest_);
    }
    E_L_ = E_rest_ < 0.25 ? 2 * (E_rest_ / (hi(S_) * (1 - E_rest_)) + e_s + P::flog * hi(L_)) : inf;
  }

  const problem& pr_;
  const X* x_;
  std::int64_t xs_, C_;
  T* e_;
  bool index_ = true, plain_ = true, defined_ = false, finite_other_ = false;
  bool vector_ = false;      // a contiguous row in double: the vector gradient passes apply
  bool libm_ = false;        // libm's exponentials were asked for
  double fexp_ = P::fexp;    // their relative error
  double coef_L_ = 0.0;
  std::int64_t t_ = -1;
  const X* q_ = nullptr;
  std::int64_t qs_ = 1;
  double eps_ = 0.0, one_m_d_ = 1.0, ec_d_ = 0.0;
  T one_m_{}, ec_{};
  X m_ = 0;
  std::int64_t k_ = 0;
  T rest_{}, S_{}, L_{};
  double E_rest_ = 0.0, E_S_ = 0.0, E_L_ = 0.0;
  T mass_{}, mass_rest_{};
  std::int64_t kb_ = 0;
  double E_mass_ = 0.0, E_mass_rest_ = 0.0;
  bool masses_ready_ = false;
};

// Rounds v (error <= err) to format f; false when undecided. A 16-bit
// result goes through the fast float32 tests first: RN_16 of their decision
// unless it is a 16-bit midpoint (rounding_format.hpp, is_midpoint), then
// through the format's own test.
bool try_round(double v, double err, float& out, const ddm::format& f) {
  float r;
  const bool decided = ddm::round_fast(v, err + eta, r) || ddm::round_checked(v, 0.0, err + eta, r);
  if (decided && !ddm::is_midpoint(r, f)) {
    out = ddm::round_float(r, f);
    return true;
  }
  return !f.is_float32() && ddm::round_checked(v, 0.0, err + eta, out, f);
}
bool try_round(dd v, double err, float& out, const ddm::format& f) {
  float r;
  const bool decided = ddm::round_checked(v.hi, v.lo, err + eta, r);
  if (decided && !ddm::is_midpoint(r, f)) {
    out = ddm::round_float(r, f);
    return true;
  }
  return !f.is_float32() && ddm::round_checked(v.hi, v.lo, err + eta, out, f);
}

// float64 results (§8): the double-double test against float64's boundaries.
bool try_round(dd v, double err, double& out, const ddm::format&) {
  return ddm::round_checked(v.hi, v.lo, err + eta, out);
}

// The exact last resort's roundings for a result carried as a float (its
// format fmt) or as a double (float64).
bool exact_interval(const exact::expansion& num, const exact::expansion& den, double c_hi, double c_lo, double r,
                    float& out, const ddm::format& f) {
  return exact::round_interval(num, den, c_hi, c_lo, r, out, f);
}
bool exact_interval(const exact::expansion& num, const exact::expansion& den, double c_hi, double c_lo, double r,
                    double& out, const ddm::format&) {
  return exact::round_interval(num, den, c_hi, c_lo, r, out);
}
bool exact_one_sided(const exact::expansion& num, const exact::expansion& den, int side, double r, float& out,
                     const ddm::format& f) {
  return exact::round_one_sided(num, den, side, r, out, f);
}
bool exact_one_sided(const exact::expansion& num, const exact::expansion& den, int side, double r, double& out,
                     const ddm::format&) {
  return exact::round_one_sided(num, den, side, r, out);
}

// After a vector pass (float32 decisions, the undecided entries listed):
// every decided entry rounded to the 16-bit format, those whose float32
// result is a 16-bit midpoint listed too. Returns the new list's length.
std::int64_t to_sixteen_bit(float* g, std::int64_t C, std::int64_t* undecided, std::int64_t n, const ddm::format& f) {
  for (std::int64_t i = 0; i < n; ++i) g[undecided[i]] = std::numeric_limits<float>::quiet_NaN();  // recomputed
  std::int64_t m = n;
  for (std::int64_t j = 0; j < C; ++j) {
    if (ddm::is_midpoint(g[j], f)) undecided[m++] = j;
    else g[j] = ddm::round_float(g[j], f);
  }
  return m;
}

// The gradient's scale upstream / D, in double-double with its relative error.
struct scale_t {
  double upstream = 1.0;
  dd value;
  double rel = 0.0;  // relative error of value (double-double)
  bool finite = true;
};

// D of docs/design.md §2 as a double-double with an absolute error bound: the
// weights of the counted positions summed in position order.
struct denominator_t {
  dd value{1.0};
  double err = 0.0;
};

denominator_t denominator(const problem& pr) {
  denominator_t d;
  if (pr.reduce != reduction::mean) return d;
  if (pr.target == target_kind::probability) {
    d.value = dd(static_cast<double>(pr.positions));  // exact below 2^53
    return d;
  }
  if (!pr.weight) {  // every weight 1: D counts the positions not ignored, exactly
    std::int64_t n = 0;
    pr.for_each_offset(pr.target_position_strides, [&](std::int64_t, std::int64_t off) {
      n += pr.target_index[off] != pr.ignore_index;
    });
    d.value = dd(static_cast<double>(n));  // exact below 2^53
    return d;
  }
  dd s{0.0};
  double abs_sum = 0.0;
  pr.for_each_offset(pr.target_position_strides, [&](std::int64_t, std::int64_t off) {
    const std::int64_t t = pr.target_index[off];
    if (t == pr.ignore_index) return;
    const double wt = pr.weight_wide(t);
    s = s + wt;
    abs_sum += std::fabs(wt);
  });
  d.value = s;
  d.err = 2 * static_cast<double>(pr.positions) * 0x1p-104 * abs_sum;
  return d;
}

// D exactly, as an expansion; computed on first use only (rational rows that
// fail both rounding tests are rare).
class exact_denominator {
 public:
  explicit exact_denominator(const problem& pr) : pr_(pr) {}
  const exact::expansion& get() {
    if (value_) return *value_;
    exact::expansion d(1.0);
    if (pr_.reduce == reduction::mean) {
      if (pr_.target == target_kind::probability) {
        d = exact::expansion(static_cast<double>(pr_.positions));
      } else {
        d = exact::expansion();
        pr_.for_each_offset(pr_.target_position_strides, [&](std::int64_t, std::int64_t off) {
          const std::int64_t t = pr_.target_index[off];
          if (t != pr_.ignore_index) d.add(pr_.weight_wide(t));
        });
      }
    }
    value_ = std::move(d);
    return *value_;
  }

 private:
  const problem& pr_;
  std::optional<exact::expansion> value_;
};

// C b_c = w_c ((1-eps) q_c C + eps) as exact expansions, b_c the target
// mass of class c (docs/correct_rounding.md §5), and their sum C A. X: the
// probabilities' type (float, or double for float64 problems).
template <class X = float>
class exact_masses {
 public:
  exact_masses(const problem& pr, std::int64_t p) : pr_(pr), Cd_(static_cast<double>(pr.classes)) {
    const dd om = ddm::two_sum(1.0, -pr.label_smoothing);  // 1 - eps exactly
    om_hi_ = om.hi;
    om_lo_ = om.lo;
    eps_ = pr.label_smoothing;
    if (pr.target == target_kind::index) {
      t_ = pr.target_at(p);
    } else {
      q_ = reinterpret_cast<const X*>(pr.target_row(p));
      qs_ = pr.target_class_stride;
    }
    for (std::int64_t c = 0; c < pr.classes; ++c) ca_.add(cb(c));
  }
  exact::expansion cb(std::int64_t c) const {
    const double w = pr_.weight_wide(c);
    // w_c q_c: one double for floats, an exact product of doubles as an expansion.
    const exact::expansion wqc = exact::expansion(w).scaled(qv(c)).scaled(Cd_);
    exact::expansion r = wqc.scaled(om_hi_);
    r.add(wqc.scaled(om_lo_));
    r.add(exact::expansion(eps_).scaled(w));
    return r;
  }
  const exact::expansion& ca() const { return ca_; }

 private:
  double qv(std::int64_t c) const {
    return q_ == nullptr ? (c == t_ ? 1.0 : 0.0) : static_cast<double>(q_[c * qs_]);
  }
  const problem& pr_;
  double Cd_;
  double om_hi_ = 1.0, om_lo_ = 0.0, eps_ = 0.0;
  std::int64_t t_ = -1;
  const X* q_ = nullptr;
  std::int64_t qs_ = 1;
  exact::expansion ca_;
};

// The last resort for a gradient entry (docs/correct_rounding.md §5.2).
// With K the classes within 0.0108 of the maximum m (n >= 1 of them),
// ê_c = [c ∈ K], em_c = e^{x_c - m} - ê_c and S = n + Σ em, the entry is
// exactly g_j = s (p_j A - b_j) = R_j + δ_j with
//   R_j = s (ê_j A - n b_j) / n                     rational: exact expansions
//   δ_j = s A (n em_j - ê_j Σ em) / (n S)           double-double, bounded
// (s = upstream / D, A = Σ b_c, b_c = w_c((1-eps) q_c + eps/C)). Whatever
// cancels in p_j A - b_j (near-uniform q, equal or tiny logits) cancels
// in R_j without error; δ_j is small where that matters and known to
// ~2^-90 of its own size, em_c = expm1(x_c - m) on K keeping tiny logit
// differences. The entry rounds when R_j + [δ - E, δ + E] lies between two
// boundaries; exact ties (E = 0: rational rows) are decided exactly.
// X: the logits' type (float, or double for float64 problems: §8), which is
// also the type that carries the rounded result.
template <class X = float>
class split_gradient {
 public:
  split_gradient(const problem& pr, std::int64_t p, const X* x, const scale_t& sc, const exact::expansion& D)
      : pr_(pr), x_(x), Cd_(static_cast<double>(pr.classes)), sc_(sc), mass_(pr, p) {
    const std::int64_t C = pr.classes;
    X m = x[0];
    for (std::int64_t c = 1; c < C; ++c) m = std::fmax(m, x[c]);
    m_ = m;
    in_k_.assign(static_cast<std::size_t>(C), 0);
    em_.assign(static_cast<std::size_t>(C), dd(0.0));
    e_em_.assign(static_cast<std::size_t>(C), 0.0);
    dd neg{0.0}, pos{0.0};
    double e_neg = 0.0, e_pos = 0.0;
    for (std::int64_t c = 0; c < C; ++c) {
      const auto i = static_cast<std::size_t>(c);
      if (std::isinf(x[c])) continue;  // -inf: e = 0 exactly, outside K
      const dd y = ddm::two_sum(static_cast<double>(x[c]), -static_cast<double>(m));  // exact, <= 0
      if (y.hi > -0.0108) {
        in_k_[i] = 1;
        y_max_ = std::fmax(y_max_, -y.hi);
        n_ += 1.0;
        em_[i] = y.hi == 0.0 ? dd(0.0) : ddm::expm1(y);  // an equal logit: expm1(0) = 0 exactly
        e_em_[i] = 0x1p-90 * std::fabs(em_[i].hi) + 0x1p-1000;
        neg = neg + em_[i];
        e_neg += e_em_[i];
      } else {
        em_[i] = ddm::exp(y);
        e_em_[i] = 0x1p-94 * em_[i].hi + 0x1p-1000;
        pos = pos + em_[i];
        e_pos += e_em_[i];
      }
    }
    k_at_max_ = true;
    all_in_k_ = true;
    for (std::int64_t c = 0; c < C; ++c) {
      const auto i = static_cast<std::size_t>(c);
      if (in_k_[i]) k_at_max_ = k_at_max_ && x[c] == m;
      else all_in_k_ = all_in_k_ && std::isinf(x[c]);
    }
    // Every logit m or -inf: every em is exactly 0 (not merely underflowed).
    rational_ = k_at_max_ && all_in_k_;
    pos_ = pos;
    e_pos_ = e_pos;
    sum_em_ = pos + neg;
    e_sum_ = 2 * (e_neg + e_pos + Cd_ * 0x1p-103 * (std::fabs(neg.hi) + pos.hi) + 0x1p-101 * std::fabs(sum_em_.hi));
    S_ = sum_em_ + n_;
    e_S_ = e_sum_ + 0x1p-101 * S_.hi;
    A_ = mass_.ca().to_dd() / Cd_;
    den_ = D.scaled(n_).scaled(Cd_);
  }

  bool round(std::int64_t j, X& out, const ddm::format& f) const {
    if (!sc_.finite || !std::isfinite(S_.hi) || !std::isfinite(A_.hi) || !(S_.hi - e_S_ > 0.5)) return false;
    const auto i = static_cast<std::size_t>(j);
    const double ek = in_k_[i] ? 1.0 : 0.0;
    // R_j's numerator upstream (ê_j CA - n C b_j); its denominator n C D.
    exact::expansion num = ek != 0.0 ? mass_.ca() : exact::expansion();
    num.add(mass_.cb(j).scaled(-n_));
    num = num.scaled(sc_.upstream);
    // A rational row (every logit m or -inf) has em = 0 exactly: δ = 0, E = 0,
    // and the entry is R_j, ties included (before any series: every entry of
    // such a row is a tie the float64 test leaves here).
    if (rational_) return exact_interval(num, den_, 0.0, 0.0, 0.0, out, f);
    // δ_j and its bound. X = n em_j - ê_j Σ em; an entry off K has em_j =
    // e_j (exactly 0 for -inf: then δ = 0 exactly).
    dd Xj;
    double e_X;
    if (!in_k_[i]) {
      if (std::isinf(x_[j])) return exact_interval(num, den_, 0.0, 0.0, 0.0, out, f);
      Xj = em_[i] * n_;
      e_X = n_ * e_em_[i] + 0x1p-101 * n_ * em_[i].hi;
    } else if (!series(j, Xj, e_X)) {
      return false;
    }
    const dd sa = sc_.value * A_;
    const dd delta = sa * Xj / (S_ * n_);
    const double s_lo = S_.hi - e_S_;
    const double e_delta = 2 * (std::fabs(sa.hi) * e_X / (n_ * s_lo) +
                                std::fabs(delta.hi) * (sc_.rel + 0x1p-98 + e_S_ / s_lo + 6 * 0x1p-101)) +
                           eta;
    if (exact_interval(num, den_, delta.hi, delta.lo, e_delta, out, f)) return true;
    // K at the maximum exactly, finite classes off K: δ has a known sign
    // (X = -Σ_{i∉K} e_i < 0 on K, n e_j > 0 off K), however small it is.
    if (k_at_max_) {
      const int sign_x = in_k_[i] ? -1 : 1;
      const int sign_s = sc_.value.hi > 0 ? 1 : sc_.value.hi < 0 ? -1 : 0;
      const int side = sign_x * sign_s * mass_.ca().sign();
      if (side == 0) return exact_interval(num, den_, 0.0, 0.0, 0.0, out, f);
      return exact_one_sided(num, den_, side, std::fabs(delta.hi) + e_delta, out, f);
    }
    if (all_in_k_) return round_series(j, num, delta, out, f);
    return false;
  }

 private:
  // X = n em_j - Σ em for j in K, where the first-order terms of
  // em_i = expm1(y_i) (y_i = x_i - m, exact) may cancel to any depth (a
  // tiny logit equal to the row's mean): X = Σ_k P_k / k! - Σ_{i∉K} e_i with
  // P_k = n y_j^k - Σ_{i∈K} y_i^k exact expansions, summed until the
  // series' tail 2n y^(k+1)/(k+1)! / (1 - y) is below 2^-110 of what is summed.
  bool series(std::int64_t j, dd& Xj, double& e_X) const {
    const dd dj = ddm::two_sum(static_cast<double>(x_[j]), -static_cast<double>(m_));
    exact::expansion yj(dj.lo);
    yj.add(dj.hi);
    exact::expansion pwj = yj;  // y_j^k
    dd sum{0.0};
    double abs_terms = 0.0, fact = 1.0, tail = 0.0;
    for (int k = 1; k <= 80; ++k) {
      if (k > 1) {
        fact *= k;  // exact up to 18!, then within 2^-53 per step: counted in the bound below
        pwj = pwj.times(yj);
      }
      exact::expansion P = pwj.scaled(n_);
      P.add(power_sum(k).negated());
      if (!P.exact()) return false;
      const dd term = P.to_dd() / fact;
      sum = sum + term;
      abs_terms += std::fabs(term.hi);
      tail = 2 * n_ * std::pow(y_max_, k + 1) / (fact * (k + 1)) / (1 - y_max_);
      if (tail < 0x1p-110 * std::fabs(sum.hi) || tail == 0.0) break;
    }
    // Each term within 2^-98 of itself (exact P, its double-double, the
    // division, k! beyond 18 within 80 u), the sum within 2^-101 per step.
    Xj = sum - pos_;
    e_X = 0x1p-96 * abs_terms + tail + e_pos_ + 0x1p-101 * (std::fabs(sum.hi) + pos_.hi) + 0x1p-1000;
    return std::isfinite(Xj.hi);
  }

  // Every finite class in K (a row of tiny logit differences): the sign of
  // g_j - b for a boundary b decided exactly (§5.2):
  //   g_j - b = [(N - b Den) S + upstream CA X] / (Den S),  Den = n C D,
  // with S = n + Σ_k Q_k / k!, X = Σ_k P_k / k! (Q_k = Σ_{i∈K} y_i^k,
  // P_k = n y_j^k - Q_k), truncated at K terms and multiplied by K! (exact
  // integers K!/k! for K <= 18), the tails bounded by n T and 2n T,
  // T = y^{K+1}/(K+1)! / (1 - y), y = max |y_i|.
  bool round_series(std::int64_t j, const exact::expansion& num, dd approx, X& out,
                    const ddm::format& fmt) const {
    build_powers();
    const auto jj = static_cast<std::size_t>(j);
    const exact::expansion up_ca = mass_.ca().scaled(sc_.upstream);
    if (!up_ca.exact()) return false;
    // sign of g_j - b: +1, -1, or 0 when undecided at every K.
    // b2 = 2b, a double-double (ddm::twice_around); 2 (g_j - b) is decided.
    auto sign_at = [&](dd b2) -> int {
      exact::expansion r = num.scaled(2.0);
      r.add(den_.scaled(-b2.hi));
      r.add(den_.scaled(-b2.lo));
      double fact = 1.0;
      for (std::size_t k = 1; k < powers_.size(); ++k) {
        fact *= static_cast<double>(k);  // exact: k <= 18
        exact::expansion fs(n_ * fact), fx;
        double w = fact;  // K!/k!, from k = 1 (K!/1!) down
        for (std::size_t i = 1; i <= k; ++i) {
          w = fact;
          for (std::size_t t = 2; t <= i; ++t) w /= static_cast<double>(t);  // exact: divides K! evenly
          fs.add(q_[i].scaled(w));
          exact::expansion pk = powers_[i][jj].scaled(n_);
          pk.add(q_[i].negated());
          fx.add(pk.scaled(w));
        }
        exact::expansion v = r.times(fs);
        v.add(up_ca.times(fx).scaled(2.0));
        if (!v.exact()) return 0;
        const double tail = std::pow(y_max_, static_cast<double>(k + 1)) / (fact * static_cast<double>(k + 1)) /
                            (1 - y_max_) * fact;
        // Both terms doubled with r (r = 2 (N - b Den)): the X tail is 2 (2n T).
        const double bound = (std::fabs(r.approx()) * n_ * tail + std::fabs(up_ca.approx()) * 4 * n_ * tail) *
                             (1 + 0x1p-40);
        if (std::fabs(v.approx()) * (1 - 0x1p-40) > bound) return v.sign() * den_.sign();
      }
      return 0;
    };
    X f = ddm::round_as<X>(num.approx() / den_.approx() + approx.hi, fmt);
    for (int step = 0; step < 4; ++step) {
      const ddm::twice_boundaries b = ddm::twice_around(f, fmt);
      if (std::isnan(b.above.hi)) return false;
      const int up = std::isinf(b.above.hi) ? -1 : sign_at(b.above);
      if (up == 0) return false;
      if (up > 0) {
        f = ddm::next_up(f, fmt);
        continue;
      }
      const int down = std::isinf(b.below.hi) ? 1 : sign_at(b.below);
      if (down == 0) return false;
      if (down < 0) {
        f = ddm::next_down(f, fmt);
        continue;
      }
      out = f;
      return true;
    }
    return false;
  }

  // Q_k = Σ_{c∈K} y_c^k for series(), extended to k on demand and kept for
  // the row: summing the row again for each undecided entry made a row with
  // many of them quadratic in C (a row of ~10^6 tiny differences ran for
  // minutes).
  const exact::expansion& power_sum(int k) const {
    const auto Cs = static_cast<std::size_t>(pr_.classes);
    if (sums_.empty()) {
      sums_.resize(1);  // k = 0: unused
      last_powers_.assign(Cs, exact::expansion());
      for (std::size_t c = 0; c < Cs; ++c) {
        if (!in_k_[c]) continue;
        const dd d = ddm::two_sum(static_cast<double>(x_[c]), -static_cast<double>(m_));
        exact::expansion y(d.lo);
        y.add(d.hi);
        last_powers_[c] = y;
      }
      bases_ = last_powers_;
    }
    while (sums_.size() <= static_cast<std::size_t>(k)) {
      const bool first = sums_.size() == 1;
      exact::expansion q;
      for (std::size_t c = 0; c < Cs; ++c) {
        if (!in_k_[c]) continue;
        if (!first) last_powers_[c] = last_powers_[c].times(bases_[c]);
        q.add(last_powers_[c]);
      }
      sums_.push_back(q);
    }
    return sums_[static_cast<std::size_t>(k)];
  }
  mutable std::vector<exact::expansion> sums_, last_powers_, bases_;

  // powers_[k][c] = y_c^k for c in K (k = 1..18) and q_[k] = Σ_{c∈K} y_c^k.
  void build_powers() const {
    if (!powers_.empty()) return;
    const std::int64_t C = pr_.classes;
    const auto Cs = static_cast<std::size_t>(C);
    powers_.assign(19, std::vector<exact::expansion>(Cs));
    q_.assign(19, exact::expansion());
    for (std::size_t c = 0; c < Cs; ++c) {
      if (!in_k_[c]) continue;
      const dd d = ddm::two_sum(static_cast<double>(x_[c]), -static_cast<double>(m_));
      exact::expansion y(d.lo);
      y.add(d.hi);
      powers_[1][c] = y;
      for (std::size_t k = 2; k <= 18; ++k) powers_[k][c] = powers_[k - 1][c].times(y);
      for (std::size_t k = 1; k <= 18; ++k) q_[k].add(powers_[k][c]);
    }
  }

  mutable std::vector<std::vector<exact::expansion>> powers_;
  mutable std::vector<exact::expansion> q_;
  bool k_at_max_ = false, all_in_k_ = false;

  const problem& pr_;
  const X* x_;
  X m_ = 0;
  double y_max_ = 0.0;
  dd pos_{0.0};
  double e_pos_ = 0.0;
  double Cd_;
  const scale_t& sc_;
  exact_masses<X> mass_;
  exact::expansion den_;
  std::vector<char> in_k_;
  std::vector<dd> em_;
  std::vector<double> e_em_;
  double n_ = 0.0, e_sum_ = 0.0, e_S_ = 0.0;
  bool rational_ = false;
  dd sum_em_{0.0}, S_{0.0}, A_{0.0};
};

// The last resort for a loss (docs/correct_rounding.md §5.1): with d_c =
// m - x_c (exact) and L = log1p(Σ_{j≠k} e^{x_j - m}), the loss is exactly
// Σ_c b_c d_c + A L: the first sum is rational (C times it, `num`, an exact
// expansion), A L a double-double `al` within `err`. False when the row has
// an infinite gap (an infinite loss is exact already) or L underflowed.
struct loss_parts {
  exact::expansion num;
  dd al{0.0};
  double err = 0.0;
  // L underflowed in double-double: A L lies in sign(A) (0, err], strictly
  // off zero (every e^{x_j - m} < 2^-1075 but positive).
  bool one_sided = false;
  // The sign of A L when L > 0 is known (0 otherwise), whether or not L
  // underflowed: A L then lies in side (0, bound()] (§5.1).
  int side = 0;
  double bound() const { return (std::fabs(al.hi) + std::fabs(al.lo) + err) * (1 + 0x1p-50); }
};
template <class Model, class X>
bool split_loss(const problem& pr, std::int64_t p, const X* x, std::int64_t xs, const Model& r2,
                loss_parts& out) {
  const exact_masses<X> mass(pr, p);
  X m = x[0];
  for (std::int64_t c = 1; c < pr.classes; ++c) m = std::fmax(m, x[c * xs]);
  for (std::int64_t c = 0; c < pr.classes; ++c) {
    const X v = x[c * xs];
    if (std::isinf(v)) {
      // A -inf logit without target mass adds nothing (b_c d_c = 0 in the
      // exact loss); with mass the loss is inf, exact already.
      if (v < 0 && mass.cb(c).sign() == 0) continue;
      return false;
    }
    const dd d = ddm::two_sum(static_cast<double>(m), -static_cast<double>(v));  // exact
    exact::expansion de(d.lo);
    de.add(d.hi);
    out.num.add(mass.cb(c).times(de));
  }
  const double Cd = static_cast<double>(pr.classes);
  const dd A = mass.ca().to_dd() / Cd;
  out.side = r2.log_positive() ? mass.ca().sign() : 0;
  if (out.side == 0) {  // A = 0 or L = 0 (no other logit, C = 1): A L is exactly 0
    out.al = dd(0.0);
    out.err = 0.0;
    return out.num.exact();
  }
  if (r2.log_underflowed()) {
    // 0 < L <= Σ_{j≠k} e^{x_j - m} < C 2^-1075 (ddm::exp gives 0 only below that).
    out.one_sided = true;
    out.al = dd(0.0);
    // |A| C 2^-1075 with margin; ldexp may round the subnormal down by half a unit.
    out.err = std::ldexp(std::fabs(A.hi) * Cd * 2 + 2, -1074) + 0x1p-1074;
    return out.num.exact();
  }
  const dd L = r2.log_term();
  out.al = A * L;
  out.err = 2 * (std::fabs(A.hi) * r2.log_term_error() + std::fabs(out.al.hi) * (0x1p-98 + 2 * 0x1p-101)) + eta;
  return out.num.exact() && std::isfinite(out.al.hi);
}

scale_t make_scale(double upstream, const denominator_t& d) {
  scale_t s;
  s.upstream = upstream;
  if (d.value.hi == 0.0 || !std::isfinite(upstream)) {
    s.value = dd(upstream / d.value.hi);
    s.finite = std::isfinite(s.value.hi);
    return s;
  }
  s.value = dd(upstream) / d.value;
  const double dabs = std::fabs(d.value.hi);
  s.rel = prec<dd>::op + (d.err < dabs / 2 ? 2 * d.err / dabs : inf);
  return s;
}

class stable_kernel final : public implementation {
 public:
  std::string name() const override { return "stable"; }
  std::string description() const override {
    return "max-shifted, log1p form; correctly rounded (float64 in Highway's double lanes with error "
           "bounds, double-double fallback, exact last resort), exact-sum batch reduction";
  }
  // Every result is the exact value rounded once (docs/correct_rounding.md).
  xent::tier tier() const override { return tier::correctly_rounded; }
  std::string domain() const override { return "all inputs"; }
  // Each dtype's results are its own correctly rounded values.
  std::uint32_t dtypes() const override {
    return XENT_PLUGIN_DTYPE_FLOAT32 | dtype_bfloat16_bit | dtype_float16_bit | dtype_float64_bit;
  }
  void forward(const problem& p) const override { run(p, false); }
  void forward_backward(const problem& p) const override { run(p, true); }

 private:
  struct buffers {
    double* e = nullptr;   // C doubles
    dd* e2 = nullptr;      // C double-doubles
    float* copy = nullptr; // C floats: the row, kept while its gradient is written (in place)
    std::int64_t* undecided = nullptr;  // C indices: entries the vector rounding test left
    double* e_libm = nullptr;           // C doubles: the row's exponentials from libm (their retry)
    float* q = nullptr;                 // C floats: a strided target row, gathered
    const float* w = nullptr;           // the class weights, contiguous (null: every weight 1)
  };

  static float rounded_loss(const problem& pr, std::int64_t p, row_model<double>& r1,
                            const float* x, std::int64_t xs, const buffers& b, const ddm::format& fmt) {
    double e1;
    const double v1 = r1.loss(e1);
    float out;
    ++counts.results;
    if (try_round(v1, e1, out, fmt)) return out;
    ++counts.retried;
    row_model<dd> r2(pr, p, x, xs, b.e2);
    double e2;
    const dd v2 = r2.loss(e2);
    if (try_round(v2, e2, out, fmt)) return out;
    loss_parts parts;
    const exact::expansion c_exp(static_cast<double>(pr.classes));
    if (split_loss(pr, p, x, xs, r2, parts) &&
        (parts.one_sided ? exact_one_sided(parts.num, c_exp, parts.side, parts.err, out, fmt)
                         : exact_interval(parts.num, c_exp, parts.al.hi, parts.al.lo, parts.err, out, fmt) ||
                               // A tiny L (margin > ~415) is below its bound's absolute floor eta, so the
                               // interval reaches past zero; the sign of A L still decides (§5.1).
                               (parts.side != 0 &&
                                exact_one_sided(parts.num, c_exp, parts.side, parts.bound(), out, fmt)))) {
      ++counts.exact;
      return out;
    }
    ++counts.unresolved;
    const double side = r2.underflow_side();
    return ddm::resolve(v2.hi, v2.lo + (side == 0.0 ? 0.0 : std::copysign(0x1p-1074, side)), fmt);
  }

  // Every logit of the contiguous row x equal to its maximum or -inf.
  static bool rational_row(const float* x, std::int64_t C) {
    float m = -std::numeric_limits<float>::infinity();
    for (std::int64_t c = 0; c < C; ++c) {
      if (std::isinf(x[c]) && x[c] < 0) continue;
      if (m == -std::numeric_limits<float>::infinity()) m = x[c];
      else if (x[c] != m) return false;  // NaN included
    }
    return true;
  }

  // The entries the float64 rounding test left (undecided[0, n)): libm's
  // exponentials, double-double, then the exact split. Apart from
  // write_gradient because its state is large and almost never needed: GCC
  // zero-fills a std::optional's storage, which cost a tenth of a 10-class
  // row when it sat in every row's frame.
  [[gnu::noinline]] static void retry_gradient(const problem& pr, std::int64_t p, row_model<double>& r1,
                                               const float* x, const scale_t& sc, float* g, const buffers& b,
                                               exact_denominator& exact_d, const ddm::format& fmt,
                                               const std::int64_t* undecided, std::int64_t n) {
    const std::int64_t gs = pr.grad_class_stride;
    const double s1 = sc.value.hi;
    const double rel1 = sc.rel + prec<double>::op;
    std::optional<row_model<double>> r1b;
    std::optional<row_model<dd>> r2;
    std::optional<split_gradient<>> split;
    // A rational row (every logit the max or -inf: equal logits, as at a
    // zero-initialised output layer) has rational entries, and what the
    // float64 test leaves there are exact ties of float32 (midpoints) that
    // no approximation decides: straight to the exact split (§5.2).
    const bool rational = rational_row(x, pr.classes);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t j = undecided[i];
      float out;
      ++counts.retried;
      if (rational) {
        if (!split) split.emplace(pr, p, x, sc, exact_d.get());
        if (split->round(j, out, fmt)) {
          ++counts.exact;
          g[j * gs] = out;
          continue;
        }
      }
      if (r1.vector_exponentials() && !rational) {
        // The row again in double with libm's exponentials (bound 2^-51
        // instead of 2^-47): a few times cheaper than double-double, and it
        // decides most of what the vector bound left.
        if (!r1b) {
          r1b.emplace(pr, p, x, 1, b.e_libm, true);
          if (!r1b->plain()) r1b->prepare_masses();
        }
        double e1;
        const double v1 = s1 * r1b->gradient(j, e1);
        if (try_round(v1, 2 * (std::fabs(s1) * e1 + std::fabs(v1) * (rel1 + prec<double>::op)), out, fmt)) {
          g[j * gs] = out;
          continue;
        }
      }
      if (!r2) {
        r2.emplace(pr, p, x, 1, b.e2);
        if (!r2->plain()) r2->prepare_masses();
      }
      double f0;
      const dd w0 = r2->gradient(j, f0);
      const dd w = sc.value * w0;
      const double f = 2 * (std::fabs(sc.value.hi) * f0 + std::fabs(w.hi) * (sc.rel + prec<dd>::op));
      if (try_round(w, f, out, fmt)) {
        g[j * gs] = out;
        continue;
      }
      if (!split) split.emplace(pr, p, x, sc, exact_d.get());
      if (split->round(j, out, fmt)) {
        ++counts.exact;
        g[j * gs] = out;
        continue;
      }
      ++counts.unresolved;
      g[j * gs] = ddm::resolve(w.hi, w.lo, fmt);
    }
  }

  // Writes the row's gradient (scale = upstream / D); x is the row's copy.
  static void write_gradient(const problem& pr, std::int64_t p, row_model<double>& r1, const float* x,
                             const scale_t& sc, float* g, const buffers& b, exact_denominator& exact_d,
                             const ddm::format& fmt) {
    const std::int64_t C = pr.classes, gs = pr.grad_class_stride;
    if (!r1.plain()) r1.prepare_masses();
    const double s1 = sc.value.hi;
    const double rel1 = sc.rel + prec<double>::op;
    counts.results += static_cast<std::uint64_t>(C);
    // Entries the float64 test leaves are gathered at the front of
    // b.undecided (never ahead of the vector pass's list, which is read in
    // order) and retried after the row.
    std::int64_t left = 0;
    auto entry = [&](std::int64_t j) {
      double e0;
      const double v0 = r1.gradient(j, e0);
      float out;
      if (!sc.finite) {  // D = 0 or a non-finite upstream: the scale's inf/NaN decides
        g[j * gs] = static_cast<float>(s1 * v0);
        return;
      }
      const double v = s1 * v0;
      const double e = 2 * (std::fabs(s1) * e0 + std::fabs(v) * (rel1 + prec<double>::op));
      if (try_round(v, e, out, fmt)) g[j * gs] = out;
      else b.undecided[left++] = j;
    };
    auto retry = [&] {
      if (left > 0) retry_gradient(pr, p, r1, x, sc, g, b, exact_d, fmt, b.undecided, left);
    };
    // The vector rounding tests decide float32 results; a 16-bit format
    // takes them through to_sixteen_bit.
    const bool vector = r1.vectorized() && sc.finite && gs == 1;
    if (r1.plain() && vector) {
      // The vector pass first; the target entry and what it left undecided
      // take the scalar path below.
      std::int64_t n = r1.vector_gradient(s1, rel1, g, b.undecided);
      if (!fmt.is_float32()) n = to_sixteen_bit(g, C, b.undecided, n, fmt);
      for (std::int64_t i = 0; i < n; ++i)
        if (b.undecided[i] != r1.target_class()) entry(b.undecided[i]);
      entry(r1.target_class());
      retry();
      return;
    }
    if (!r1.plain() && vector) {
      // The same for smoothed and probability targets; the max k and the
      // largest mass kb have their own formulas (scalar).
      const float* q = r1.target_probabilities();
      if (q && r1.target_stride() != 1) {
        for (std::int64_t c = 0; c < C; ++c) b.q[c] = q[c * r1.target_stride()];
        q = b.q;
      }
      const std::int64_t k = r1.max_class(), kb = r1.mass_max_class();
      std::int64_t n =
          stable_vector::mass_gradient(b.e, x, q, b.w, C, r1.mass_constants(s1, rel1), g, b.undecided);
      if (!fmt.is_float32()) n = to_sixteen_bit(g, C, b.undecided, n, fmt);
      for (std::int64_t i = 0; i < n; ++i)
        if (b.undecided[i] != k && b.undecided[i] != kb) entry(b.undecided[i]);
      entry(k);
      if (kb != k) entry(kb);
      retry();
      return;
    }
    for (std::int64_t j = 0; j < C; ++j) entry(j);
    retry();
  }

  // The formats the results are rounded to: the loss's and the gradient's.
  struct formats {
    ddm::format loss = ddm::float32, grad = ddm::float32;
  };

  // A 16-bit problem: its inputs widened (exactly) into a float32 copy, the
  // float32 algorithm run on the copy with every result rounded once to its
  // own dtype, and the results (values of that dtype) stored. The copy costs
  // 4 bytes per logit, and as much again for the gradient: `stable` is the
  // oracle, not the fast path (docs/dtypes.md).
  static void run(const problem& pr, bool with_grad) {
    if (pr.type == dtype::f32) return run_float(pr, with_grad, {});
    if (pr.type == dtype::f64) return run_double(pr, with_grad);
    const widened_problem w(pr, with_grad);
    run_float(w.get(), with_grad, {ddm::format_of(pr.out_type), ddm::format_of(pr.type)});
    w.store(pr);
  }

  static void run_float(const problem& pr, bool with_grad, const formats& fmt) {
    const std::int64_t C = pr.classes, P = pr.positions;
    const bool none = pr.reduce == reduction::none;
    // All scratch before any output is written.
    // No row, no row scratch: an empty batch may have any C.
    const std::int64_t row = P > 0 ? C : 0;
    buffers b;
    b.e = stable_row_scratch(0, row);
    b.e2 = reinterpret_cast<dd*>(stable_row_scratch(1, 2 * row));
    b.copy = simd::row_scratch(simd::kRowX, row);
    if (with_grad) {
      b.undecided = reinterpret_cast<std::int64_t*>(stable_row_scratch(2, row));
      b.e_libm = stable_row_scratch(3, row);
      b.q = simd::row_scratch(simd::kRowQ, row);
      b.w = pr.weight;
      if (pr.weight && pr.weight_stride != 1) {
        float* w = simd::row_scratch(simd::kRowG, row);
        for (std::int64_t c = 0; c < row; ++c) w[c] = pr.weight[c * pr.weight_stride];
        b.w = w;
      }
    }
    double* losses = none ? nullptr : position_scratch(0, P);
    double* bounds = none ? nullptr : position_scratch(1, P);
    const denominator_t D = denominator(pr);
    exact_denominator exact_d(pr);

    // Row p, copied when the gradient overwrites the logits (in place) or
    // the row is strided (the vector path reads contiguous rows).
    const bool in_place = with_grad && pr.grad == pr.logits;
    auto row_of = [&](std::int64_t p, std::int64_t& xs) -> const float* {
      const float* x = pr.logits_row(p);
      xs = pr.logits_class_stride;
      if (!in_place && xs == 1) return x;
      for (std::int64_t c = 0; c < C; ++c) b.copy[c] = x[c * xs];
      xs = 1;
      return b.copy;
    };
    auto nan_row = [&](float* g) {
      for (std::int64_t j = 0; j < C; ++j) g[j * pr.grad_class_stride] = static_cast<float>(nan);
    };

    if (none) {
      for (std::int64_t p = 0; p < P; ++p) {
        float* g = with_grad ? pr.grad_row(p) : nullptr;
        if (!pr.counted(p)) {
          if (g) zero_row(pr, g);  // ignored rows contribute nothing, NaN logits included
          *pr.loss_at(p) = 0.0f;
          continue;
        }
        std::int64_t xs;
        const float* x = row_of(p, xs);
        row_model<double> r1(pr, p, x, xs, b.e);
        if (!r1.defined()) {
          *pr.loss_at(p) = static_cast<float>(nan);
          if (g) nan_row(g);
          continue;
        }
        *pr.loss_at(p) = rounded_loss(pr, p, r1, x, xs, b, fmt.loss);
        if (g)
          gradient(pr, p, r1, x, make_scale(static_cast<double>(pr.upstream_at(p)), D), g, b, exact_d, fmt.grad);
      }
      return;
    }

    // mean/sum: the reduction may need the rows again in double-double, so
    // an in-place gradient waits for it (a second pass); otherwise each row's
    // gradient is written with its loss (the scale upstream / D is known).
    const scale_t sc = make_scale(static_cast<double>(pr.upstream_scalar), D);
    const bool one_pass = with_grad && !in_place;
    for (std::int64_t p = 0; p < P; ++p) {
      losses[p] = 0.0;
      bounds[p] = 0.0;
      float* g = one_pass ? pr.grad_row(p) : nullptr;
      if (!pr.counted(p)) {
        if (g) zero_row(pr, g);
        continue;
      }
      std::int64_t xs;
      const float* x = row_of(p, xs);
      row_model<double> r1(pr, p, x, xs, b.e);
      if (!r1.defined()) {
        losses[p] = nan;
        if (g) nan_row(g);
        continue;
      }
      losses[p] = r1.loss(bounds[p]);
      if (g) gradient(pr, p, r1, x, sc, g, b, exact_d, fmt.grad);
    }
    write_reduction(pr, losses, bounds, D, b, fmt.loss);
    if (!with_grad || one_pass) return;
    for (std::int64_t p = 0; p < P; ++p) {
      float* g = pr.grad_row(p);
      if (!pr.counted(p)) {
        zero_row(pr, g);
        continue;
      }
      std::int64_t xs;
      const float* x = row_of(p, xs);
      row_model<double> r1(pr, p, x, xs, b.e);
      if (!r1.defined()) {
        nan_row(g);
        continue;
      }
      gradient(pr, p, r1, x, sc, g, b, exact_d, fmt.grad);
    }
  }

  // A float64 problem (docs/correct_rounding.md §8): every row in
  // double-double from the start (row_model<dd, double>: the float64
  // evaluation's 2^-47 would leave nothing to round with), each result tested
  // against float64's boundaries; what fails goes to the exact last resort
  // with double inputs (split_loss, split_gradient), what that leaves is
  // counted unresolved and rounded as RN(hi + lo).
  static void run_double(const problem& pr, bool with_grad) {
    const std::int64_t C = pr.classes, P = pr.positions;
    const bool none = pr.reduce == reduction::none;
    const std::int64_t row = P > 0 ? C : 0;
    dd* e2 = reinterpret_cast<dd*>(stable_row_scratch(1, 2 * row));
    auto* copy = reinterpret_cast<double*>(stable_row_scratch(0, row));
    const denominator_t D = denominator(pr);
    exact_denominator exact_d(pr);
    // The interval last resort, made on first use (it reads the logits: an
    // in-place gradient is written only after the losses).
    std::optional<stable_interval::evaluator> iv;
    auto interval = [&]() -> const stable_interval::evaluator& {
      if (!iv) iv.emplace(pr);
      return *iv;
    };
    const bool in_place = with_grad && pr.grad == pr.logits;
    // Row p, contiguous (split_gradient reads it so) and kept while an
    // in-place gradient overwrites it.
    auto row_of = [&](std::int64_t p) -> const double* {
      const auto* x = reinterpret_cast<const double*>(pr.logits_row(p));
      const std::int64_t xs = pr.logits_class_stride;
      if (!in_place && xs == 1) return x;
      for (std::int64_t c = 0; c < C; ++c) copy[c] = x[c * xs];
      return copy;
    };
    auto fill_row = [&](float* g, double v) {
      for (std::int64_t j = 0; j < C; ++j) pr.store_grad(g, j, v);
    };
    if (none) {
      for (std::int64_t p = 0; p < P; ++p) {
        float* g = with_grad ? pr.grad_row(p) : nullptr;
        if (!pr.counted(p)) {
          pr.store_loss(p, 0.0);
          if (g) zero_row(pr, g);
          continue;
        }
        const double* x = row_of(p);
        row_model<dd, double> r(pr, p, x, 1, e2);
        pr.store_loss(p, r.defined() ? rounded_loss64(pr, p, r, x, interval) : nan);
        if (!g) continue;
        if (!r.defined()) fill_row(g, nan);
        else gradient64(pr, p, r, x, make_scale(pr.upstream_wide(p), D), g, exact_d, interval);
      }
      return;
    }
    // mean/sum: the reduction first (it reads the logits, which an in-place
    // gradient overwrites), then the gradient rows.
    double out = nan;
    ++counts.results;
    if (!reduction_is_nan(pr, D) && !reduce_in_double_double<double>(pr, D, e2, ddm::float64, out)) {
      if (interval().reduction(out)) ++counts.exact;
      else ++counts.unresolved;
    }
    pr.store_reduced(out);
    const scale_t scalar_scale = make_scale(pr.upstream_scalar_wide, D);
    if (!with_grad) return;
    for (std::int64_t p = 0; p < P; ++p) {
      float* g = pr.grad_row(p);
      if (!pr.counted(p)) {
        zero_row(pr, g);
        continue;
      }
      const double* x = row_of(p);
      row_model<dd, double> r(pr, p, x, 1, e2);
      if (!r.defined()) fill_row(g, nan);
      else gradient64(pr, p, r, x, scalar_scale, g, exact_d, interval);
    }
  }

  // float64 for simd, openmp and throughput (their fast and relaxed tiers,
  // docs/dtypes.md): the double-double row model of run_double, each result
  // RN(hi + lo) without the rounding tests — within 0.5 ulp plus the model's
  // bound (~2^-90 relative; near a cancelling smoothed gradient, the tiers'
  // absolute allowance) — in one pass per row (its loss before its gradient,
  // so in place too), rows on `threads` OpenMP threads. The reduction sums
  // the rows' double-double losses in position order: the bits do not
  // depend on the thread count.
 public:
  static void run_double_rounded_once(const problem& pr, bool with_grad, int threads) {
    const std::int64_t C = pr.classes, P = pr.positions;
    const bool none = pr.reduce == reduction::none;
    const denominator_t D = denominator(pr);
    const scale_t scalar_scale = make_scale(pr.upstream_scalar_wide, D);
    std::vector<dd> losses(none ? 0 : static_cast<std::size_t>(P));
    const bool copy_rows = (with_grad && pr.grad == pr.logits) || pr.logits_class_stride != 1;
    auto row = [&](std::int64_t p) {
      float* g = with_grad ? pr.grad_row(p) : nullptr;
      if (!pr.counted(p)) {
        if (none) pr.store_loss(p, 0.0);
        if (g) zero_row(pr, g);
        return;
      }
      dd* e2 = reinterpret_cast<dd*>(stable_row_scratch(1, 2 * C));
      const auto* x = reinterpret_cast<const double*>(pr.logits_row(p));
      if (copy_rows) {
        auto* copy = reinterpret_cast<double*>(stable_row_scratch(0, C));
        for (std::int64_t c = 0; c < C; ++c) copy[c] = x[c * pr.logits_class_stride];
        x = copy;
      }
      row_model<dd, double> r(pr, p, x, 1, e2);
      double e;
      const dd l = r.defined() ? r.loss(e) : dd(nan);
      if (none) pr.store_loss(p, ddm::resolve64(l.hi, l.lo));
      else losses[static_cast<std::size_t>(p)] = l;
      if (!g) return;
      if (!r.defined()) {
        for (std::int64_t j = 0; j < C; ++j) pr.store_grad(g, j, nan);
        return;
      }
      const scale_t sc = none ? make_scale(pr.upstream_wide(p), D) : scalar_scale;
      const infinite_scale_row fix = infinite_scale_classes(pr, p, sc.value.hi);
      if (!r.plain()) r.prepare_masses();
      for (std::int64_t j = 0; j < C; ++j) {
        double f0;
        const dd w0 = r.gradient(j, f0);
        if (!sc.finite) {
          pr.store_grad(g, j, sc.value.hi * w0.hi);
          continue;
        }
        const dd w = sc.value * w0;
        pr.store_grad(g, j, ddm::resolve64(w.hi, w.lo));
      }
      if (!fix.classes.empty()) infinite_scale_fix(pr, fix, g, pr.grad_class_stride);
    };
    if (threads <= 1) {
      for (std::int64_t p = 0; p < P; ++p) row(p);
    } else {
      std::exception_ptr failure;
#pragma omp parallel for schedule(static) num_threads(threads)
      for (std::int64_t p = 0; p < P; ++p) {
        try {
          row(p);
        } catch (...) {
#pragma omp critical(xent_float64_failure)
          if (!failure) failure = std::current_exception();
        }
      }
      if (failure) std::rethrow_exception(failure);
    }
    if (none) return;
    dd total{0.0};
    for (std::int64_t p = 0; p < P; ++p)
      if (pr.counted(p)) total = total + losses[static_cast<std::size_t>(p)];
    double out = nan;
    if (!reduction_is_nan(pr, D)) {
      if (!std::isfinite(total.hi) || D.value.hi == 0.0) out = total.hi / D.value.hi;
      else {
        const dd v = pr.reduce == reduction::mean ? total / D.value : total;
        out = ddm::resolve64(v.hi, v.lo);
      }
    }
    pr.store_reduced(out);
  }

 private:
  template <class Interval>
  static double rounded_loss64(const problem& pr, std::int64_t p, row_model<dd, double>& r, const double* x,
                               Interval& interval) {
    double e;
    const dd v = r.loss(e);
    double out;
    ++counts.results;
    if (try_round(v, e, out, ddm::float64)) return out;
    ++counts.retried;
    loss_parts parts;
    const exact::expansion c_exp(static_cast<double>(pr.classes));
    if (split_loss(pr, p, x, 1, r, parts) &&
        (parts.one_sided ? exact_one_sided(parts.num, c_exp, parts.side, parts.err, out, ddm::float64)
                         : exact_interval(parts.num, c_exp, parts.al.hi, parts.al.lo, parts.err, out, ddm::float64) ||
                               (parts.side != 0 &&
                                exact_one_sided(parts.num, c_exp, parts.side, parts.bound(), out, ddm::float64)))) {
      ++counts.exact;
      return out;
    }
    if (interval().loss(p, x, out)) {
      ++counts.exact;
      return out;
    }
    ++counts.unresolved;
    return ddm::resolve64(v.hi, v.lo);
  }

  // A float64 row's gradient (scale = upstream / D); x contiguous.
  template <class Interval>
  static void gradient64(const problem& pr, std::int64_t p, row_model<dd, double>& r, const double* x,
                         const scale_t& sc, float* g, exact_denominator& exact_d, Interval& interval) {
    const infinite_scale_row fix = infinite_scale_classes(pr, p, sc.value.hi);
    const std::int64_t C = pr.classes;
    if (!r.plain()) r.prepare_masses();
    std::optional<split_gradient<double>> split;
    counts.results += static_cast<std::uint64_t>(C);
    for (std::int64_t j = 0; j < C; ++j) {
      double f0;
      const dd w0 = r.gradient(j, f0);
      if (!sc.finite) {  // D = 0 or a non-finite upstream: the scale's inf/NaN decides
        pr.store_grad(g, j, sc.value.hi * w0.hi);
        continue;
      }
      const dd w = sc.value * w0;
      const double f = 2 * (std::fabs(sc.value.hi) * f0 + std::fabs(w.hi) * (sc.rel + prec<dd>::op));
      double out;
      if (try_round(w, f, out, ddm::float64)) {
        pr.store_grad(g, j, out);
        continue;
      }
      ++counts.retried;
      if (!split) split.emplace(pr, p, x, sc, exact_d.get());
      if (split->round(j, out, ddm::float64) || interval().gradient(p, x, j, sc.upstream, out)) {
        ++counts.exact;
        pr.store_grad(g, j, out);
        continue;
      }
      ++counts.unresolved;
      pr.store_grad(g, j, ddm::resolve64(w.hi, w.lo));
    }
    if (!fix.classes.empty()) infinite_scale_fix(pr, fix, g, pr.grad_class_stride);
  }

  // write_gradient, then the entries an infinite scale makes ±inf where the
  // computed unscaled value underflowed (row_driver.hpp).
  static void gradient(const problem& pr, std::int64_t p, row_model<double>& r1, const float* x, const scale_t& s,
                       float* g, const buffers& b, exact_denominator& exact_d, const ddm::format& fmt) {
    const infinite_scale_row fix = infinite_scale_classes(pr, p, s.value.hi);
    write_gradient(pr, p, r1, x, s, g, b, exact_d, fmt);
    if (!fix.classes.empty()) infinite_scale_fix(pr, fix, g, pr.grad_class_stride);
  }

  // PyTorch divides the two smoothing terms by W separately: with W = 0 the
  // (1-eps) part is 0/0 whatever the smoothing part is.
  static bool reduction_is_nan(const problem& pr, const denominator_t& D) {
    return pr.reduce == reduction::mean && D.value.hi == 0.0 && pr.target == target_kind::index &&
           pr.label_smoothing > 0.0;
  }

  // total (within err of the exact Σ_p l_p) divided by D for mean, rounded
  // once into out when the rounding test decides; else out = RN(value).
  template <class V>
  static bool finish_reduction(const problem& pr, const denominator_t& D, dd total, double err, V& out,
                               const ddm::format& fmt) {
    if (!std::isfinite(total.hi) || D.value.hi == 0.0) {
      out = static_cast<V>(total.hi / D.value.hi);
      return true;
    }
    const dd v = pr.reduce == reduction::mean ? total / D.value : total;
    const double dabs = std::fabs(D.value.hi);
    const double rel_d = pr.reduce == reduction::mean ? (D.err < dabs / 2 ? 2 * D.err / dabs : inf) : 0.0;
    const double e = 2 * (err / dabs + std::fabs(v.hi) * (rel_d + prec<dd>::op));
    if (try_round(v, e, out, fmt)) return true;
    if constexpr (std::is_same_v<V, double>) out = ddm::resolve64(v.hi, v.lo);
    else out = ddm::resolve(v.hi, v.lo, fmt);
    return false;
  }

  // The exact Σ_p l_p (divided by D for mean), rounded once: the float64
  // losses with their bounds summed in double-double in position order; if
  // the total is too close to a boundary, every loss again in double-double.
  static void write_reduction(const problem& pr, const double* losses, const double* bounds,
                              const denominator_t& D, const buffers& b, const ddm::format& fmt) {
    const std::int64_t P = pr.positions;
    if (reduction_is_nan(pr, D)) {
      pr.store_reduced(nan);
      return;
    }
    const double n = static_cast<double>(P);
    dd total{0.0};
    double err = 0.0, abs_sum = 0.0;
    for (std::int64_t p = 0; p < P; ++p) {
      total = total + losses[p];
      err += bounds[p];
      abs_sum += std::fabs(losses[p]);
    }
    err = 2 * (err + n * 0x1p-103 * abs_sum);
    float out;
    ++counts.results;
    if (finish_reduction(pr, D, total, err, out, fmt)) {
      *pr.loss = out;
      return;
    }
    ++counts.retried;
    if (!reduce_in_double_double<float>(pr, D, b.e2, fmt, out)) ++counts.unresolved;
    *pr.loss = out;
  }

  // Every counted row's loss in double-double (X: the logits' type), summed
  // in position order and rounded once; what the rounding test leaves goes to
  // the exact split of every row (§5.1), what that leaves is counted
  // unresolved (out: RN of the double-double total).
  template <class X>
  static bool reduce_in_double_double(const problem& pr, const denominator_t& D, dd* e2, const ddm::format& fmt,
                                      X& out) {
    const std::int64_t P = pr.positions;
    const double n = static_cast<double>(P);
    dd total{0.0};
    double err = 0.0, abs_sum = 0.0;
    for (std::int64_t p = 0; p < P; ++p) {
      if (!pr.counted(p)) continue;
      const X* x = reinterpret_cast<const X*>(pr.logits_row(p));
      row_model<dd, X> r2(pr, p, x, pr.logits_class_stride, e2);
      if (!r2.defined()) {  // a NaN loss (float32: unreachable, the float64 total was NaN)
        total = total + nan;
        continue;
      }
      double e;
      const dd l = r2.loss(e);
      total = total + l;
      err += e;
      abs_sum += std::fabs(l.hi);
    }
    err = 2 * (err + n * 0x1p-101 * abs_sum);
    if (finish_reduction(pr, D, total, err, out, fmt)) return true;
    if constexpr (std::is_same_v<X, double>) ++counts.retried;  // float32: counted at the float64 pass
    // The exact split of every row (§5.1): Σ_p num_p / C + Σ_p A_p L_p, made
    // only now (a second pass: most reductions never need it, and a float64
    // one starts here).
    loss_parts sum_parts;
    bool split_ok = std::isfinite(total.hi);
    double al_abs = 0.0;
    int all_side = 0;  // the common sign of the rows' nonzero A L (0: none, or mixed signs)
    bool mixed = false;
    for (std::int64_t p = 0; p < P && split_ok; ++p) {
      if (!pr.counted(p)) continue;
      const X* x = reinterpret_cast<const X*>(pr.logits_row(p));
      row_model<dd, X> r2(pr, p, x, pr.logits_class_stride, e2);
      loss_parts parts;
      split_ok = split_loss(pr, p, x, pr.logits_class_stride, r2, parts);
      if (split_ok && parts.one_sided) {  // (0, err] inside the closed [err/2 ± err/2]
        parts.al = dd(parts.side * parts.err / 2);
        parts.err /= 2;
        parts.err *= 1 + 0x1p-50;
      }
      if (split_ok) {
        if (parts.side != 0 && all_side != 0 && parts.side != all_side) mixed = true;
        if (parts.side != 0) all_side = parts.side;
        sum_parts.num.add(parts.num);
        sum_parts.al = sum_parts.al + parts.al;
        sum_parts.err += parts.err;
        al_abs += std::fabs(parts.al.hi);
      }
    }
    if (split_ok && D.value.hi != 0.0 && std::isfinite(total.hi)) {
      // (Σ num_p) / (C D) + (Σ A_p L_p) / D, D exact.
      exact::expansion d_exact = exact_denominator(pr).get();
      const dd d_dd = d_exact.to_dd();
      const dd c = sum_parts.al / d_dd;
      // Every A_p L_p exactly 0 (A_p = 0, or C = 1): the total is N / (C D) exactly.
      const bool all_zero = !mixed && all_side == 0;
      const double r = all_zero ? 0.0
                                : 2 * ((sum_parts.err + n * 0x1p-101 * al_abs) / std::fabs(d_dd.hi) +
                                       std::fabs(c.hi) * (0x1p-98 + 0x1p-101)) + eta;
      X split_out;
      const exact::expansion den = d_exact.scaled(static_cast<double>(pr.classes));
      // As for one row: when every A_p L_p has the same sign, their sum lies
      // in that side (0, Σ bound] / D, however small the L_p. The factor 2
      // covers the rounding of the two plain sums (n u relative) and of the
      // division; the bound is then widened to a power of two of at least
      // 2^-900, which keeps it (the far end only moves further out) and makes
      // den r exact whatever den's lowest bit (a non-dyadic D of weights).
      const double bound = 2 * (al_abs + sum_parts.err) / std::fabs(d_dd.hi);
      const double one_sided_r =
          std::isfinite(bound) ? std::ldexp(1.0, std::max(bound > 0 ? std::ilogb(bound) + 1 : -900, -900)) : bound;
      const int side = mixed ? 0 : all_side * (d_dd.hi > 0 ? 1 : -1);
      if (exact_interval(sum_parts.num, den, c.hi, c.lo, r, split_out, fmt) ||
          (side != 0 && exact_one_sided(sum_parts.num, den, side, one_sided_r, split_out, fmt))) {
        ++counts.exact;
        out = split_out;
        return true;
      }
    }
    return false;
  }
};

}  // namespace

rounding_statistics stable_rounding_statistics() { return counts; }
void reset_stable_rounding_statistics() { counts = {}; }

std::unique_ptr<implementation> make_stable_kernel() { return std::make_unique<stable_kernel>(); }

void run_float64_rounded_once(const problem& pr, bool with_grad, int threads) {
  stable_kernel::run_double_rounded_once(pr, with_grad, threads);
}

}  // namespace xent

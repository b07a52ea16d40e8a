// The mutants' row math is written here (test code): the stable formulas of
// docs/design.md §3 with one switch per planted bug, and a small driver for the
// batch (ignore_index, denominator, upstream, reduction).
#include "mutants.hpp"

#include <cmath>
#include <limits>
#include <memory>

#include "xent/kernel.hpp"
#include "xent/xent.hpp"

namespace xent::props {
namespace {

enum class flaw {
  none,                  // the control: the same code without a planted bug
  target_off_by_one,     // reads the logit of class t + 1
  no_max_shift,          // Σ exp(x_j) unshifted: overflows, loses the dominant-target loss
  pt_minus_one,          // target gradient as p_t - 1: cancels to 0 for dominant targets
  mean_over_n,           // mean divided by the number of counted rows, not Σ weights
  ignored_counted,       // ignored rows counted in the mean's denominator
  smoothing_on_ignored,  // ignored rows still get the ε/C smoothing term
  grad_missing_inv_w,    // mean gradient without the 1/W scale
  f32_sequential_sum,    // Σ exp accumulated sequentially in float32
  skips_ignored_writes,  // leaves the zero loss and gradient of ignored rows unwritten
  no_rounding_test,      // claims correct rounding but rounds its float64 value without a
                         // rounding test: one ulp off when that value is on the wrong side
                         // of a nearby float32 midpoint
  relaxed_pt_minus_one,  // pt_minus_one, declared at the relaxed tier (256 ulp)
  relaxed_f32_log,       // relaxed tier: log of the float32 sum 1 + rest instead of
                         // log1p(rest): the dominant-target loss rounds to m - x_t
  narrows_toward_zero,   // 16-bit results truncated instead of rounded to nearest
  float16_saturates,     // float16 results beyond 65504 clamped to 65504 instead of inf
  rounds_twice,          // claims correct rounding for 16-bit logits: `stable`'s correctly
                         // rounded float32 results, then rounded to the dtype (wrong when
                         // the float32 result is a bfloat16/float16 midpoint)
  float64_via_float32,   // float64 logits read as their float32 roundings (a kernel that
                         // converts its input), results stored as float64 (tier fast)
};

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

class mutant final : public implementation {
 public:
  mutant(flaw f, std::string name, std::string what) : f_(f), name_(std::move(name)), what_(std::move(what)) {}
  std::string name() const override { return name_; }
  std::string description() const override { return "planted mutant: " + what_; }
  xent::tier tier() const override {
    if (f_ == flaw::f32_sequential_sum || f_ == flaw::float64_via_float32) return tier::fast;
    if (f_ == flaw::relaxed_pt_minus_one || f_ == flaw::relaxed_f32_log) return tier::relaxed;
    return f_ == flaw::no_rounding_test || f_ == flaw::rounds_twice ? tier::correctly_rounded : tier::accurate;
  }
  std::string domain() const override { return "all inputs"; }
  // float64: the control (its float64 problems go to `stable`, so that the
  // float64 properties hold for it) and the mutant planted there.
  std::uint32_t dtypes() const override {
    const bool f64 = f_ == flaw::none || f_ == flaw::float64_via_float32;
    return XENT_PLUGIN_DTYPE_FLOAT32 | dtype_bfloat16_bit | dtype_float16_bit | (f64 ? dtype_float64_bit : 0u);
  }
  void forward(const problem& p) const override { run(p, false); }
  void forward_backward(const problem& p) const override { run(p, true); }

 private:
  // v rounded to t into element i past base, with the 16-bit flaws.
  void put(void* base, std::int64_t i, double v, dtype t) const {
    problem::store(base, i, v, t);
    if (t == dtype::f32 || t == dtype::f64 || std::isnan(v)) return;
    auto& bits = static_cast<std::uint16_t*>(base)[i];
    if (f_ == flaw::narrows_toward_zero && (bits & 0x7fffu) != 0 && std::fabs(widen(bits, t)) > std::fabs(v))
      --bits;  // one step toward zero (sign and magnitude)
    if (f_ == flaw::float16_saturates && t == dtype::f16 && (bits & 0x7fffu) == 0x7c00u) --bits;  // 65504
  }
  void put_grad(const problem& pr, float* g, std::int64_t j, double v) const {
    put(g, j * pr.grad_class_stride, v, pr.type);
  }

  // Loss of position p (weights and smoothing included); writes scale * dl/dx.
  double row(const problem& pr, std::int64_t p, float* g, double scale, bool ignored) const {
    const std::int64_t C = pr.classes, xs = pr.logits_class_stride;
    const float* x = pr.logits_row(p);
    auto X = [&](std::int64_t j) { return static_cast<double>(pr.load_class(x, j, xs)); };
    double m = -std::numeric_limits<double>::infinity();
    std::int64_t k = 0;
    bool undefined = false;
    for (std::int64_t j = 0; j < C; ++j) {
      if (std::isnan(X(j))) undefined = true;
      if (X(j) > m) m = X(j), k = j;
    }
    if (undefined || std::isinf(m)) {
      if (g)
        for (std::int64_t j = 0; j < C; ++j) put_grad(pr, g, j, nan);
      return nan;
    }
    double rest = 0.0;
    if (f_ == flaw::f32_sequential_sum) {
      float r = 0.0f;
      for (std::int64_t j = 0; j < C; ++j)
        if (j != k) r += std::exp(static_cast<float>(X(j) - m));
      rest = r;
    } else {
      for (std::int64_t j = 0; j < C; ++j)
        if (j != k) rest += std::exp(X(j) - m);
    }
    double log_sum = std::log1p(rest), sum = 1.0 + rest;
    if (f_ == flaw::relaxed_f32_log) log_sum = std::log(static_cast<float>(sum));
    if (f_ == flaw::no_max_shift) {  // lse = log Σ e^{x_j}; written as m + log_sum below
      double s = 0.0;
      for (std::int64_t j = 0; j < C; ++j) s += std::exp(X(j));
      log_sum = std::log(s) - m;
      sum = s / std::exp(m);
    }
    auto gap = [&](std::int64_t j) {
      return f_ == flaw::no_max_shift ? (m + log_sum) - X(j) - log_sum : m - X(j);
    };
    auto w = [&](std::int64_t j) { return static_cast<double>(pr.weight_at(j)); };
    const double eps = pr.label_smoothing, eps_c = eps / static_cast<double>(C);
    double weight_total = 0.0;
    for (std::int64_t j = 0; j < C; ++j) weight_total += w(j);

    if (pr.target == target_kind::probability) {
      const float* q = pr.target_row(p);
      auto qp = [&](std::int64_t j) {
        return (1 - eps) * static_cast<double>(pr.load_class(q, j, pr.target_class_stride)) + eps_c;
      };
      double loss = 0.0, mass = 0.0;
      for (std::int64_t j = 0; j < C; ++j) loss += w(j) * qp(j) * gap(j), mass += w(j) * qp(j);
      loss += mass * log_sum;
      if (g)
        for (std::int64_t j = 0; j < C; ++j)
          put_grad(pr, g, j, static_cast<float>(scale * (std::exp(-gap(j)) / sum * mass - w(j) * qp(j))));
      return loss;
    }
    double smooth = 0.0;
    for (std::int64_t j = 0; j < C; ++j) smooth += w(j) * (gap(j) + log_sum);
    if (ignored) return eps_c * smooth;  // smoothing_on_ignored only reaches here
    std::int64_t t = pr.target_at(p);
    if (f_ == flaw::target_off_by_one) t = (t + 1) % C;
    const double wt = w(t);
    double loss = wt * (gap(t) + log_sum);
    if (f_ == flaw::no_max_shift) loss = wt * ((m + log_sum) - X(t));
    if (eps > 0.0) loss = (1 - eps) * loss + eps_c * smooth;
    if (g) {
      const double e_t = std::exp(-gap(t));
      const double others = t == k ? rest : sum - e_t;
      for (std::int64_t j = 0; j < C; ++j) {
        const double pj = std::exp(-gap(j)) / sum;
        double v;
        const bool minus_one = f_ == flaw::pt_minus_one || f_ == flaw::relaxed_pt_minus_one;
        if (j == t) v = minus_one ? (1 - eps) * wt * (pj - 1.0) : -(1 - eps) * wt * (others / sum);
        else v = (1 - eps) * wt * pj;
        if (eps > 0.0) v += eps_c * (pj * weight_total - w(j));
        put_grad(pr, g, j, static_cast<float>(scale * v));
      }
    }
    return loss;
  }

  void run(const problem& pr, bool with_grad) const {
    if (f_ == flaw::rounds_twice) return round_twice(pr, with_grad);
    if (pr.type == dtype::f64 && f_ != flaw::float64_via_float32) {  // the control's float64
      const implementation* stable = find_implementation("stable");
      return with_grad ? stable->forward_backward(pr) : stable->forward(pr);
    }
    double D = 1.0;
    if (pr.reduce == reduction::mean) {
      D = 0.0;
      for (std::int64_t p = 0; p < pr.positions; ++p) {
        if (pr.target == target_kind::probability) D += 1.0;
        else if (pr.counted(p)) D += f_ == flaw::mean_over_n ? 1.0 : static_cast<double>(pr.weight_at(pr.target_at(p)));
        else if (f_ == flaw::ignored_counted) D += 1.0;
      }
    }
    const double inv = f_ == flaw::grad_missing_inv_w ? 1.0 : 1.0 / D;
    double total = 0.0;
    for (std::int64_t p = 0; p < pr.positions; ++p) {
      float* g = with_grad ? pr.grad_row(p) : nullptr;
      double l = 0.0;
      if (pr.counted(p)) {
        l = row(pr, p, g, static_cast<double>(pr.upstream_at(p)) * inv, false);
      } else {
        if (g && f_ != flaw::skips_ignored_writes)
          for (std::int64_t j = 0; j < pr.classes; ++j) put_grad(pr, g, j, 0.0);
        if (f_ == flaw::smoothing_on_ignored && pr.label_smoothing > 0.0) l = row(pr, p, nullptr, 0.0, true);
      }
      if (pr.reduce == reduction::none) {
        // The planted bug trusts the caller's buffer to hold zeros already.
        if (pr.counted(p) || f_ != flaw::skips_ignored_writes) put(pr.loss_at(p), 0, l, pr.out_type);
      } else {
        total += l;
      }
    }
    if (pr.reduce == reduction::sum) put(pr.loss, 0, total, pr.out_type);
    if (pr.reduce == reduction::mean) put(pr.loss, 0, total / D, pr.out_type);
  }

  // float32 problems go to `stable` as they are; a 16-bit one goes as a
  // float32 problem whose results are then rounded to the dtype.
  static void round_twice(const problem& pr, bool with_grad) {
    const implementation* stable = find_implementation("stable");
    if (pr.type == dtype::f32) {
      with_grad ? stable->forward_backward(pr) : stable->forward(pr);
      return;
    }
    const widened_problem w(pr, with_grad);
    with_grad ? stable->forward_backward(w.get()) : stable->forward(w.get());
    w.store(pr);
  }

  flaw f_;
  std::string name_, what_;
};

}  // namespace

const std::vector<mutant_info>& register_mutants() {
  static const std::vector<mutant_info> list = [] {
    const std::pair<flaw, mutant_info> all[] = {
        {flaw::none, {mutant_control, "nothing (the control)"}},
        {flaw::target_off_by_one, {"mutant_target_off_by_one", "target off by one"}},
        {flaw::no_max_shift, {"mutant_no_max_shift", "no max shift"}},
        {flaw::pt_minus_one, {"mutant_pt_minus_one", "target gradient as p_t - 1 (cancellation)"}},
        {flaw::mean_over_n, {"mutant_mean_over_n", "mean divided by N instead of the sum of weights"}},
        {flaw::ignored_counted, {"mutant_ignored_counted", "ignored rows counted in the mean"}},
        {flaw::smoothing_on_ignored, {"mutant_smoothing_on_ignored", "label smoothing applied to ignored rows"}},
        {flaw::grad_missing_inv_w, {"mutant_grad_missing_inv_w", "mean gradient missing the 1/W scale"}},
        {flaw::f32_sequential_sum, {"mutant_f32_sequential_sum", "float32 sequential accumulation (tier fast)"}},
        {flaw::skips_ignored_writes,
         {"mutant_skips_ignored_writes", "ignored rows' zero loss and gradient left unwritten"}},
        {flaw::no_rounding_test,
         {"mutant_no_rounding_test", "declares correct rounding, rounds float64 values without a rounding test"}},
        {flaw::relaxed_pt_minus_one,
         {"mutant_relaxed_pt_minus_one", "target gradient as p_t - 1 (cancellation; tier relaxed)"}},
        {flaw::relaxed_f32_log,
         {"mutant_relaxed_f32_log", "log of the float32 sum instead of log1p of the rest (tier relaxed)"}},
        {flaw::narrows_toward_zero,
         {"mutant_narrows_toward_zero", "bfloat16/float16 results truncated instead of rounded to nearest"}},
        {flaw::float16_saturates,
         {"mutant_float16_saturates", "float16 results beyond 65504 clamped to 65504 instead of inf"}},
        {flaw::rounds_twice,
         {"mutant_rounds_twice",
          "declares correct rounding; 16-bit results rounded to float32 first, then to the dtype"}},
        {flaw::float64_via_float32,
         {"mutant_float64_via_float32", "float64 logits computed from their float32 roundings (tier fast)"}},
    };
    std::vector<mutant_info> v;
    for (const auto& [f, info] : all) {
      register_implementation(std::make_unique<mutant>(f, info.name, info.planted));
      if (f != flaw::none) v.push_back(info);
    }
    return v;
  }();
  return list;
}

}  // namespace xent::props

#include "diagnostics.hpp"

#include <cmath>
#include <sstream>

namespace xent::cli {
namespace {

using shape_t = std::vector<std::int64_t>;

std::string shape_str(const shape_t& s) {
  std::ostringstream o;
  o << '[';
  for (std::size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

// Names flat position p of the caller's position shape: "row 3" for (N,C)
// logits, "position [n, d1]" for (N,C,d..), "the row" for (C).
class position_namer {
 public:
  explicit position_namer(const shape_t& logits_shape) {
    for (std::size_t d = 0; d < logits_shape.size(); ++d)
      if (logits_shape.size() == 1 || d != 1) shape_.push_back(logits_shape[d]);
    if (logits_shape.size() == 1) shape_.clear();
  }
  std::string operator()(std::int64_t p) const {
    if (shape_.empty()) return "the only row";
    if (shape_.size() == 1) return "row " + std::to_string(p);
    shape_t idx(shape_.size());
    for (std::size_t d = shape_.size(); d-- > 0;) {
      idx[d] = p % shape_[d];
      p /= shape_[d];
    }
    return "position " + shape_str(idx);
  }
  const char* noun(std::int64_t count) const {
    if (shape_.size() <= 1) return count == 1 ? "row" : "rows";
    return count == 1 ? "position" : "positions";
  }

 private:
  shape_t shape_;
};

// A list of positions, at most `shown` of them named.
struct position_list {
  std::vector<std::int64_t> items;
  std::int64_t count = 0;
  void add(std::int64_t p) {
    if (items.size() < 5) items.push_back(p);
    ++count;
  }
  std::string describe(const position_namer& name) const {
    std::string s = std::to_string(count) + " " + name.noun(count) + " (";
    for (std::size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + name(items[i]);
    if (count > static_cast<std::int64_t>(items.size()))
      s += ", and " + std::to_string(count - static_cast<std::int64_t>(items.size())) + " more";
    return s + ")";
  }
};

std::string num(double v) {
  std::ostringstream o;
  o.precision(7);
  o << v;
  return o.str();
}

}  // namespace

std::vector<warning> diagnose(const problem& pr, const std::vector<std::int64_t>& logits_shape) {
  std::vector<warning> out;
  const position_namer name(logits_shape);
  const std::int64_t C = pr.classes;
  const std::string shape = shape_str(logits_shape);

  if (pr.positions == 0) {
    out.push_back({"empty", "the input is empty (logits " + shape +
                                ", 0 positions): mean is NaN, sum is 0, none is empty"});
    return out;
  }

  if (C == 1)
    out.push_back({"single_class",
                   "C = 1 (logits " + shape +
                       "): the loss is identically 0 -- softmax over one class is 1, so "
                       "log_softmax is 0 whatever the logits (and the gradient is 0)"});

  // Probability targets that are not distributions: usually class indices or
  // regression values stored as floats (PyTorch issue #137188).
  if (pr.target == target_kind::probability) {
    position_list bad_rows;
    std::int64_t negatives = 0, first_negative = -1;
    double first_sum = 0.0;
    for (std::int64_t p = 0; p < pr.positions; ++p) {
      const float* q = pr.target_row(p);
      double sum = 0.0;
      for (std::int64_t c = 0; c < C; ++c) {
        const double v = q[c * pr.target_class_stride];
        if (v < 0.0 && negatives++ == 0) first_negative = p;
        sum += v;
      }
      if (!(std::fabs(sum - 1.0) <= 1e-3)) {
        if (bad_rows.count == 0) first_sum = sum;
        bad_rows.add(p);
      }
    }
    if (bad_rows.count > 0 || negatives > 0) {
      std::string m = "target has the logits' shape " + shape +
                      " and a floating dtype, so it is treated as class probabilities -- did you "
                      "mean class indices (int64, shape " +
                      shape_str([&] {
                        shape_t s = logits_shape;
                        s.erase(s.begin() + (s.size() == 1 ? 0 : 1));
                        return s;
                      }()) +
                      ")? ";
      if (bad_rows.count > 0)
        m += bad_rows.describe(name) + " do not sum to 1 (" + name(bad_rows.items[0]) + " sums to " +
             num(first_sum) + ")";
      if (negatives > 0)
        m += std::string(bad_rows.count > 0 ? "; " : "") + std::to_string(negatives) +
             " entries are negative (first in " + name(first_negative) + ")";
      out.push_back({"not_distribution", m});
    }
  }

  // Nothing counted: the mean is 0/0.
  if (pr.target == target_kind::index) {
    std::int64_t counted = 0;
    double weight = 0.0;
    for (std::int64_t p = 0; p < pr.positions; ++p)
      if (pr.counted(p)) {
        ++counted;
        weight += pr.weight_wide(pr.target_at(p));
      }
    if (counted == 0)
      out.push_back({"all_ignored", "all " + std::to_string(pr.positions) +
                                        " targets equal ignore_index (" +
                                        std::to_string(pr.ignore_index) +
                                        "): the mean is NaN (0/0), the sum is 0 and the gradient "
                                        "is 0 (PyTorch issue #70348)"});
    else if (weight == 0.0)
      out.push_back({"zero_weight", "every counted target has class weight 0: the mean is NaN (0/0)"});
  }

  // Dominant targets: PyTorch's float32 log_softmax (lse - x_t, the
  // `standard` tier) rounds a loss below ~ulp(lse)/2 to exactly 0 -- and the
  // target's gradient with it -- while the true loss is positive (PyTorch
  // issue #11752). Evidence: both values for the first such row.
  if (pr.target == target_kind::index && pr.label_smoothing == 0.0) {
    position_list zero_rows;
    float first_f32 = 0.0f;
    double first_true = 0.0;
    for (std::int64_t p = 0; p < pr.positions; ++p) {
      if (!pr.counted(p)) continue;
      const float* x = pr.logits_row(p);
      const std::int64_t t = pr.target_at(p);
      float m = -INFINITY;
      std::int64_t k = 0;
      bool finite = true;
      for (std::int64_t c = 0; c < C; ++c) {
        const float v = x[c * pr.logits_class_stride];
        finite = finite && std::isfinite(v);
        if (v > m) {
          m = v;
          k = c;
        }
      }
      if (!finite || C < 2) continue;
      float s32 = 0.0f;
      double rest = 0.0;  // sum over j != k of e^(x_j - m), in double
      for (std::int64_t c = 0; c < C; ++c) {
        const float v = x[c * pr.logits_class_stride];
        s32 += std::exp(v - m);
        if (c != k) rest += std::exp(static_cast<double>(v) - static_cast<double>(m));
      }
      const float xt = x[t * pr.logits_class_stride];
      const float loss_f32 = (m + std::log(s32)) - xt;
      const double loss_true = (static_cast<double>(m) - static_cast<double>(xt)) + std::log1p(rest);
      if (loss_f32 == 0.0f && loss_true > 0.0) {
        if (zero_rows.count == 0) {
          first_f32 = loss_f32;
          first_true = loss_true;
        }
        zero_rows.add(p);
      }
    }
    if (zero_rows.count)
      out.push_back({"dominant_zero_loss",
                     "the target dominates in " + zero_rows.describe(name) +
                         ": a float32 lse - x_t formula (PyTorch's log_softmax, the `standard` tier) gives loss " +
                         num(first_f32) + " in " + name(zero_rows.items[0]) + " while the true loss is " +
                         num(first_true) +
                         " (the target's gradient is then 0 as well; the accurate and fast kernels keep it; "
                         "PyTorch issue #11752)"});
  }

  // Non-finite logits, by the rule each follows (docs/design.md section 2).
  position_list nan_rows, pinf_rows, all_minf_rows, target_minf_rows, smooth_minf_rows;
  std::int64_t ignored_nonfinite = 0;
  const bool smoothing = pr.label_smoothing > 0.0;
  for (std::int64_t p = 0; p < pr.positions; ++p) {
    const float* x = pr.logits_row(p);
    bool has_nan = false, has_pinf = false, all_minf = true, any_minf = false, target_minf = false;
    for (std::int64_t c = 0; c < C; ++c) {
      const float v = x[c * pr.logits_class_stride];
      if (std::isnan(v)) has_nan = true;
      else if (v == INFINITY) has_pinf = true;
      if (v == -INFINITY) {
        any_minf = true;
        if (pr.target == target_kind::index ? pr.counted(p) && pr.target_at(p) == c
                                            : pr.target_row(p)[c * pr.target_class_stride] != 0.0f)
          target_minf = true;
      } else {
        all_minf = false;
      }
    }
    if (!pr.counted(p)) {
      if (has_nan || has_pinf || all_minf) ++ignored_nonfinite;
      continue;
    }
    if (has_nan) nan_rows.add(p);
    else if (has_pinf) pinf_rows.add(p);
    else if (all_minf) all_minf_rows.add(p);
    else if (target_minf) target_minf_rows.add(p);
    else if (any_minf && smoothing) smooth_minf_rows.add(p);
  }
  // What a bad row does to the reduced loss.
  auto tail = [&](const char* what) {
    return pr.reduce == reduction::none ? std::string()
                                        : " (and so the " + to_string(pr.reduce) + " is " + what + ")";
  };
  if (nan_rows.count)
    out.push_back({"nan_logits", "logits contain NaN in " + nan_rows.describe(name) +
                                     ": their loss is NaN" + tail("NaN")});
  if (pinf_rows.count)
    out.push_back({"inf_logits", "logits contain +inf in " + pinf_rows.describe(name) +
                                     ": their loss is NaN (inf - inf)" + tail("NaN")});
  if (all_minf_rows.count)
    out.push_back({"all_minus_inf", "every logit is -inf in " + all_minf_rows.describe(name) +
                                        ": their loss is NaN" + tail("NaN")});
  if (target_minf_rows.count)
    out.push_back({"target_minus_inf",
                   "the target class has logit -inf in " + target_minf_rows.describe(name) +
                       ": their loss is +inf" + tail("+inf")});
  if (smooth_minf_rows.count)
    out.push_back({"smoothing_minus_inf",
                   "-inf logits with label_smoothing > 0 in " + smooth_minf_rows.describe(name) +
                       ": smoothing puts mass on every class, so their loss is +inf" + tail("+inf")});
  if (ignored_nonfinite)
    out.push_back({"ignored_nonfinite", std::to_string(ignored_nonfinite) +
                                            " ignored positions have NaN/+inf logits: they are "
                                            "skipped, so the loss stays finite"});
  return out;
}

}  // namespace xent::cli

#include "check.hpp"

#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include "diagnostics.hpp"
#include "format.hpp"
#include "inputs.hpp"
#include "npy.hpp"
#include "registry.hpp"
#include "tiers.hpp"
#include "xent/kernel.hpp"
#include "xent/kernel/mpi.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace xent::cli {
namespace {

using json = nlohmann::ordered_json;
using shape_t = std::vector<std::int64_t>;
using props::quantity;

std::string shape_str(const shape_t& s) { return xent::shape_string(s); }

shape_t position_shape(const shape_t& logits_shape) {
  shape_t s = logits_shape;
  if (!s.empty()) s.erase(s.begin() + (s.size() == 1 ? 0 : 1));
  return s;
}

// Index of logits element (position p, class c) in a C-order buffer of the
// logits' shape: p = n * D + k for (N, C, d..) with D = d1 * .. * dK.
std::int64_t element_index(const shape_t& shape, std::int64_t p, std::int64_t c) {
  if (shape.size() <= 1) return c;
  std::int64_t D = 1;
  for (std::size_t d = 2; d < shape.size(); ++d) D *= shape[d];
  const std::int64_t C = shape[1];
  return ((p / D) * C + c) * D + p % D;
}

// The multi-index of flat C-order index i in `shape`.
shape_t index_of(const shape_t& shape, std::int64_t i) {
  shape_t idx(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] > 0 ? i % shape[d] : 0;
    if (shape[d] > 0) i /= shape[d];
  }
  return idx;
}

// "[1, 3]"
std::string index_text(const shape_t& shape, std::int64_t i) { return shape_str(index_of(shape, i)); }

std::string one_line_text(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// ---- the bound: --max-ulp and/or --tier -----------------------------------------

std::optional<tier> parse_tier(const std::string& s) {
  if (s.empty()) return std::nullopt;
  for (tier t : {tier::correctly_rounded, tier::accurate, tier::fast, tier::relaxed, tier::standard, tier::naive})
    if (to_string(t) == s) return t;
  throw input_error("--tier",
                    "unknown tier '" + s + "' (correctly_rounded, accurate, fast, relaxed, standard, naive)");
}

// What the tier table (properties/tiers.hpp) needs about each position of
// the problem, as the property suite computes it (properties/evaluate.cpp).
class contexts {
 public:
  explicit contexts(const problem& pr) : pr_(pr) {
    if (pr.reduce == reduction::mean) {
      if (pr.target == target_kind::probability) {
        D_ = static_cast<double>(pr.positions);
      } else {
        D_ = 0.0;
        for (std::int64_t p = 0; p < pr.positions; ++p)
          if (pr.counted(p)) D_ += pr.weight_wide(pr.target_at(p));
      }
    }
    rows_.reserve(static_cast<std::size_t>(pr.positions));
    for (std::int64_t p = 0; p < pr.positions; ++p) rows_.push_back(make(p));
  }
  const props::row_context& operator[](std::int64_t p) const { return rows_[static_cast<std::size_t>(p)]; }

  // The absolute error a gradient entry may have on top of an ulp bound where
  // it is a true difference (smoothing, probability targets).
  double cancellation(std::int64_t p, std::int64_t j) const {
    const problem& pr = pr_;
    if (pr.target == target_kind::index && pr.label_smoothing == 0.0) return 0.0;
    const props::row_context& ctx = rows_[static_cast<std::size_t>(p)];
    const double C = static_cast<double>(pr.classes), eps = pr.label_smoothing;
    const double q = pr.target == target_kind::probability
                         ? pr.load_class_wide(pr.target_row(p), j, pr.target_class_stride)
                         : (pr.counted(p) && pr.target_at(p) == j ? 1.0 : 0.0);
    const double b = pr.weight_wide(j) * ((1.0 - eps) * q + eps / C);
    const double pj = std::exp(pr.load_class_wide(pr.logits_row(p), j, pr.logits_class_stride) - ctx.lse);
    const double terms = ctx.scale * (C * pj * ctx.coeff + std::fabs(b));
    return std::isfinite(terms) ? 0x1p-50 * terms : 0.0;
  }

  // Σ_p bound_p / D: what a tier with absolute per-sample bounds carries into
  // the reduction.
  double reduction_allowance(tier t) const {
    if (t != tier::standard) return 0.0;
    double sum = 0.0;
    for (std::int64_t p = 0; p < pr_.positions; ++p)
      if (pr_.counted(p)) sum += props::bound_for(t, quantity::loss, rows_[static_cast<std::size_t>(p)]).value;
    const double d = std::fabs(D_);
    return d > 0.0 ? sum / d : sum;
  }

 private:
  props::row_context make(std::int64_t p) const {
    const problem& pr = pr_;
    props::row_context ctx;
    ctx.classes = pr.classes;
    const float* x = pr.logits_row(p);
    auto xv = [&](std::int64_t j) { return pr.load_class_wide(x, j, pr.logits_class_stride); };
    double m = -std::numeric_limits<double>::infinity();
    for (std::int64_t j = 0; j < pr.classes; ++j) m = std::max(m, xv(j));
    if (std::isfinite(m)) {
      double s = 0.0;
      for (std::int64_t j = 0; j < pr.classes; ++j) s += std::exp(xv(j) - m);
      ctx.lse = m + std::log(s);
    } else {
      ctx.lse = m;
    }
    const double eps = pr.label_smoothing, C = static_cast<double>(pr.classes);
    ctx.coeff = 0.0;
    ctx.gap = 0.0;
    for (std::int64_t j = 0; j < pr.classes; ++j) {
      double k;
      if (pr.target == target_kind::probability) {
        k = std::fabs(pr.weight_wide(j) * ((1.0 - eps) * pr.load_class_wide(pr.target_row(p), j, pr.target_class_stride) + eps / C));
      } else {
        const double onehot = pr.counted(p) && pr.target_at(p) == j ? 1.0 - eps : 0.0;
        k = std::fabs(pr.weight_wide(j)) * (onehot + eps / C);
      }
      ctx.coeff += k;
      if (k != 0.0) ctx.gap = std::max(ctx.gap, ctx.lse - xv(j));
    }
    ctx.scale = pr.counted(p) ? std::fabs(1.0 / D_) : 0.0;  // upstream 1
    return ctx;
  }

  const problem& pr_;
  double D_ = 1.0;
  std::vector<props::row_context> rows_;
};

struct bound_spec {
  double max_ulp = -1.0;  // negative: none
  std::optional<tier> t;
  const contexts* ctx = nullptr;  // set when t is

  bool active() const { return max_ulp >= 0.0 || t.has_value(); }
  std::string describe() const {
    std::string s;
    if (max_ulp >= 0.0) s = "max " + ulp_text(max_ulp) + " ulp";
    if (t) s += (s.empty() ? "" : " and ") + ("the " + to_string(*t) + " tier's bounds");
    return s;
  }
  // Is y (ulps from r) within the bound? p, j locate it (-1 when not a
  // per-position or per-entry value).
  bool within(quantity q, double y, const ref::exact& r, double ulps, std::int64_t p, std::int64_t j) const {
    if (max_ulp >= 0.0 && !(ulps <= max_ulp)) return false;
    if (!t) return true;
    const props::row_context none{};
    const props::row_context& rc = p >= 0 ? (*ctx)[p] : none;
    const props::bound b = props::bound_for(*t, q, rc);
    if (b.kind == props::bound::none) return true;
    if (!std::isfinite(y) || !std::isfinite(r.hi)) return ulps == 0.0;
    const double err = std::fabs((y - r.hi) - r.lo);
    double extra = 0.0;
    if (q == quantity::gradient && p >= 0 && j >= 0) extra = ctx->cancellation(p, j);
    if (q == quantity::reduction) extra = ctx->reduction_allowance(*t);
    if (b.kind == props::bound::ulps) return ulps <= b.value || err <= extra;
    // The absolute criterion plus one ulp of the result's own dtype (err / ulps).
    return ulps <= 1.0 || err <= b.value + err / ulps;
  }
};

// ---- errors of one result, summarised -----------------------------------------

struct element_error {
  std::int64_t index = 0;  // flat C-order index in the result's shape
  double value = 0.0;  // exact for every dtype
  ref::exact reference;
  double ulps = 0.0;
};

struct summary {
  std::int64_t count = 0;
  double max = 0.0, p99 = 0.0, median = 0.0;
  double correctly_rounded = 1.0;  // fraction
  std::int64_t over = 0;           // elements beyond the bound
  std::optional<element_error> first_over;
  std::vector<element_error> worst;  // largest errors first, non-zero only
};

// Accumulates (value, reference) pairs of one result.
// Errors are in ulps of `type`, the dtype the values were given in (a
// float16 or bfloat16 value is exact as a float).
class collector {
 public:
  collector(const bound_spec& b, quantity q, std::size_t keep, dtype type = dtype::f32)
      : bound_(b), q_(q), keep_(keep), type_(type) {}
  void add(std::int64_t index, double y, const ref::exact& r, std::int64_t p = -1, std::int64_t j = -1) {
    const double u = ref::ulp_error(y, r, type_);
    ulps_.push_back(u);
    if (ref::correctly_rounded(y, r, type_)) ++cr_;
    const element_error e{index, y, r, u};
    if (bound_.active() && !bound_.within(q_, y, r, u, p, j) && over_++ == 0) first_over_ = e;
    if (u > 0.0) {
      worst_.push_back(e);
      if (worst_.size() > 4 * keep_ + 64) trim();
    }
  }
  summary finish() {
    summary s;
    s.count = static_cast<std::int64_t>(ulps_.size());
    s.over = over_;
    s.first_over = first_over_;
    trim();
    s.worst = worst_;
    if (ulps_.empty()) return s;
    const double n = static_cast<double>(ulps_.size());
    s.correctly_rounded = static_cast<double>(cr_) / n;
    s.max = *std::max_element(ulps_.begin(), ulps_.end());
    s.median = nearest_rank(ulps_, 0.5);
    s.p99 = nearest_rank(ulps_, 0.99);
    return s;
  }

 private:
  void trim() {
    auto by_error = [](const element_error& a, const element_error& b) {
      return a.ulps != b.ulps ? a.ulps > b.ulps : a.index < b.index;
    };
    const std::size_t k = std::min(keep_, worst_.size());
    std::partial_sort(worst_.begin(), worst_.begin() + static_cast<std::ptrdiff_t>(k), worst_.end(), by_error);
    worst_.resize(k);
  }
  const bound_spec& bound_;
  quantity q_;
  std::size_t keep_;
  dtype type_;
  std::vector<double> ulps_;
  std::int64_t cr_ = 0, over_ = 0;
  std::optional<element_error> first_over_;
  std::vector<element_error> worst_;
};

// One checked result: the user's loss or gradient, or an implementation's loss.
struct checked {
  std::string name;    // "your loss", "stable", ...
  std::string origin;  // "--loss PATH", "implementation", "peer", "plug-in PATH"
  std::string tier;    // declared tier ("" for the user's results)
  quantity q = quantity::loss;
  shape_t shape;       // of the values ({} for a scalar)
  std::vector<double> values;  // of `type`, exactly
  std::optional<std::string> outside;  // outside the implementation's declared domain
  std::optional<std::string> failed;   // the implementation threw or crashed
  summary s;
  dtype type = dtype::f32;             // of the values: ulps are this dtype's
  std::optional<std::string> not_applicable = {};  // it does not compute the logits' dtype (float64)
  bool ok(const bound_spec& b) const { return !failed && (!b.active() || s.over == 0); }
};

// "3 values: min .. max .., first [a, b, c]"
std::string values_text(const std::vector<double>& v) {
  if (v.empty()) return "0 values";
  double lo = NAN, hi = NAN;
  bool any_nan = false;
  for (double x : v) {
    if (std::isnan(x)) {
      any_nan = true;
      continue;
    }
    if (std::isnan(lo) || x < lo) lo = x;
    if (std::isnan(hi) || x > hi) hi = x;
  }
  std::string s = std::to_string(v.size()) + " values: min " + float_text(lo) + ", max " + float_text(hi);
  if (any_nan) s += " (some NaN)";
  s += ", first [";
  for (std::size_t i = 0; i < std::min<std::size_t>(v.size(), 4); ++i) s += (i ? ", " : "") + float_text(v[i]);
  return s + (v.size() > 4 ? ", ...]" : "]");
}

// The reference rounded once to dtype t.
std::vector<double> rounded(const std::vector<ref::exact>& r, dtype t) {
  std::vector<double> v;
  v.reserve(r.size());
  for (const auto& e : r) v.push_back(ref::round_to(e, t));
  return v;
}

json numbers(const std::vector<double>& v) {
  json a = json::array();
  for (double x : v) a.push_back(json_number(x));
  return a;
}

json numbers(const std::vector<ref::exact>& v) {
  json a = json::array();
  for (const auto& x : v) a.push_back(json_number(ref::to_double(x)));
  return a;
}

std::string percent(double f) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100.0 * f);
  return b;
}

// ---- the implementations to run -----------------------------------------------

std::vector<const implementation*> choose(const std::vector<std::string>& names) {
  if (names.empty()) return default_check_set();
  std::vector<const implementation*> out;
  auto add = [&](const implementation* i) {
    if (std::find(out.begin(), out.end(), i) == out.end()) out.push_back(i);
  };
  for (const auto& name : names) {
    if (name == "none") continue;
    if (name == "all") {
      for (auto* i : implementations())
        if (i->supported()) add(i);
      continue;
    }
    if (name == "default") {
      add(&default_implementation());
      continue;
    }
    add(&find_for_cli("--impl", name));
  }
  return out;
}

// ---- paths written later, checked now ---------------------------------------------

void check_writable(const std::string& option, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string head = path + ": cannot write (" + option + "): ";
  if (fs::is_directory(path, ec)) throw input_error(option, head + "is a directory");
  if (fs::exists(path, ec)) {
    if (::access(path.c_str(), W_OK) != 0) throw input_error(option, head + std::strerror(errno));
    return;
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  // EEXIST: another process made it since exists() (under mpirun every rank
  // checks, and each creates and removes its probe): writable is the answer.
  if (fd < 0 && errno == EEXIST && ::access(path.c_str(), W_OK) == 0) return;
  if (fd < 0) throw input_error(option, head + std::strerror(errno));
  ::close(fd);
  ::unlink(path.c_str());
}

// ---- progress of the reference ---------------------------------------------------

// A line on stderr once the reference has run for `after` seconds
// (XENT_PROGRESS_AFTER, default 2): rewritten in place on a terminal, every
// 10 s otherwise; with an estimate of the time left.
class progress_line {
 public:
  progress_line() : start_(clock::now()), tty_(::isatty(2) != 0) {
    if (const char* e = std::getenv("XENT_PROGRESS_AFTER"); e && *e) after_ = std::atof(e);
  }
  void operator()(std::int64_t done, std::int64_t total) {
    const double t = seconds(clock::now() - start_);
    if (t < after_) return;
    const bool finished = done >= total;
    if (!finished && shown_ && t - last_ < (tty_ ? 0.25 : 10.0)) return;
    last_ = t;
    std::ostringstream o;
    o << "xent: reference: " << done << " of " << total << " positions ("
      << fmt(100.0 * static_cast<double>(done) / static_cast<double>(std::max<std::int64_t>(total, 1)), "%.0f")
      << "%), " << fmt(t, "%.1f") << " s";
    if (finished) o << ", done";
    else if (done > 0) o << ", about " << fmt(t * static_cast<double>(total - done) / static_cast<double>(done), "%.0f") << " s left";
    std::string line = o.str();
    if (tty_) {
      const std::size_t width = line.size();
      if (line.size() < width_) line.append(width_ - line.size(), ' ');
      width_ = width;
      std::cerr << '\r' << line << (finished ? "\n" : "") << std::flush;
    } else {
      std::cerr << line << "\n" << std::flush;
    }
    shown_ = true;
  }

 private:
  using clock = std::chrono::steady_clock;
  static double seconds(clock::duration d) { return std::chrono::duration<double>(d).count(); }
  clock::time_point start_;
  bool tty_;
  double after_ = 2.0, last_ = 0.0;
  bool shown_ = false;
  std::size_t width_ = 0;
};

json summary_json(const checked& c, const shape_t& shape, const bound_spec& b) {
  json w = json::array();
  for (const auto& e : c.s.worst)
    w.push_back({{"index", shape.empty() ? json::array() : json(index_of(shape, e.index))},
                 {"value", json_number(e.value)},
                 {"reference", json_number(ref::to_double(e.reference))},
                 {"ulp", json_number(e.ulps)}});
  json j = {{"count", c.s.count},
            {"max_ulp", json_number(c.s.max)},
            {"p99_ulp", json_number(c.s.p99)},
            {"median_ulp", json_number(c.s.median)},
            {"correctly_rounded", c.s.correctly_rounded},
            {"dtype", to_string(c.type)},
            {"worst", w}};
  if (b.active()) {
    j["beyond_bound"] = c.s.over;
    j["within_bound"] = c.ok(b);
  }
  return j;
}

}  // namespace

CLI::App* add_check_command(CLI::App& app, check_args& a) {
  CLI::App* c = app.add_subcommand(
      "check",
      "Compute the multiprecision reference on .npy data and measure results against it in ulps: your own "
      "(--loss, --grad), a plug-in's (--plugin) and registered implementations' (--impl). Exit status: 0 ok, "
      "1 a result exceeds --max-ulp/--tier, 2 usage or input error");
  c->add_option("--logits", a.logits,
                "logits: (C), (N,C) or (N,C,d1..dK), class axis dim 1, float32, float64, float16 or bfloat16 "
                "(kernels that compute the dtype get it as given, the others float32: 16-bit widened exactly; "
                "float64 only for kernels that compute it); .npy, .npz (the array 'logits', or the only one) or "
                "FILE.npz:NAME")
      ->required();
  c->add_option("--logits-dtype", a.logits_dtype,
                "bfloat16: the .npy files hold bfloat16 bit patterns as uint16 (NumPy has no bfloat16; e.g. "
                "t.view(torch.int16).numpy().view(np.uint16)): the logits, and weights, probabilities and your "
                "--loss/--grad wherever they are uint16. Other dtypes are read from the file")
      ->check(CLI::IsMember({"bfloat16"}));
  c->add_option("--target", a.target,
                "targets: int64 class indices of the position shape (int32 is converted, with a warning), or "
                "float class probabilities of the logits' shape")
      ->required();
  c->add_option("--weight", a.weight, "class weights .npy: [C], the logits' dtype (float32 for 16-bit logits)");
  c->add_option("--ignore-index", a.ignore_index, "target value to ignore (default -100)");
  c->add_option("--reduction", a.reduction, "none | mean | sum (default mean)");
  c->add_option("--label-smoothing", a.label_smoothing, "label smoothing in [0, 1] (default 0)");
  c->add_option("--loss", a.loss,
                "YOUR loss to check: a scalar (the mean or sum of --reduction) or one value per position "
                "(reduction none), float32 (or float16/bfloat16, or float64 for float64 logits: measured in ulps of "
                "that dtype)")
      ->type_name("FILE");
  c->add_option("--grad", a.grad,
                "YOUR gradient d(loss)/d(logits) to check, the logits' shape, float32 (or float16/bfloat16): of the --reduction's "
                "loss with upstream 1 (for none: of loss.sum())")
      ->type_name("FILE");
  c->add_option("--plugin", a.plugins, "a kernel library (xent/kernel/plugin.h) to check as well (repeatable)")
      ->type_name("LIB.so");
  c->add_option("--impl", a.impls,
                "implementations to run, comma-separated: names from `xent list` (peers such as torch "
                "included), 'all' (every supported one), 'default' (the library's default), 'none'. "
                "Default: ours at the correctly rounded, accurate and fast tiers (naive and peers only when asked)")
      ->delimiter(',');
  c->add_option("--max-ulp", a.max_ulp,
                "exit 1 when any checked result (yours, a plug-in's, an implementation's) has an element "
                "more than this many ulps from the reference")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--tier", a.tier,
                "exit 1 when any checked result exceeds this tier's bounds (accurate, fast, relaxed, standard, naive; "
                "the table of docs/design.md section 3)")
      ->check(CLI::IsMember({"accurate", "fast", "relaxed", "standard", "naive"}));
  c->add_option("--grad-out", a.grad_out,
                "write d(loss)/d(logits) of the first --impl (else the default implementation), upstream 1, to "
                "this float32 .npy");
  c->add_option("--worst", a.worst, "list this many worst elements per checked result (default 5)");
  c->add_option("--threads", a.threads, "threads for the reference (default: one per core)");
  c->add_flag("--json", a.json, "print one JSON document on stdout (errors too: {\"error\": {...}})");
  return c;
}

// 16-bit logits as given: kernels that compute the dtype get 16-bit views
// and a loss of that dtype (PyTorch's semantics); the others get the same
// values widened to float32 (exact) and return float32. Only when every
// floating input (probabilities, weights) is a value of the logits' dtype:
// otherwise narrowing would change the problem, and every kernel gets the
// widened values (with a note).
struct sixteen_bit_inputs {
  dtype type = dtype::f32;  // f32: not in use
  std::vector<std::uint16_t> logits, prob, weight;
  tensor_view x, t;
  options opt;

  sixteen_bit_inputs(const inputs& in, const options& widened, std::vector<std::string>& notes) {
    const dtype d = in.logits_type;
    if (d != dtype::bf16 && d != dtype::f16) return;
    auto exact = [d](const std::vector<float>& v) {
      for (float e : v)
        if (!std::isnan(e) && round_to(e, d) != static_cast<double>(e)) return false;
      return true;
    };
    if (!exact(in.target_prob) || (in.weight && !exact(*in.weight))) {
      notes.push_back("the probabilities or weights are not all " + to_string(d) +
                      " values: every implementation gets the float32 values (none computes in " + to_string(d) + ")");
      return;
    }
    type = d;
    auto narrowed = [d](const std::vector<float>& v) {
      std::vector<std::uint16_t> r(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) r[i] = narrow(v[i], d);
      return r;
    };
    logits = narrowed(in.logits);
    prob = narrowed(in.target_prob);
    x = view(logits.data(), d, in.logits_shape);
    t = in.probability ? view(prob.data(), d, in.target_shape) : in.target_view();
    opt = widened;
    if (in.weight) {
      weight = narrowed(*in.weight);
      opt.weight = view(weight.data(), d, {static_cast<std::int64_t>(weight.size())});
    }
  }
  // Does `impl` get the 16-bit inputs?
  bool native_for(const implementation& impl) const {
    return type != dtype::f32 && (impl.dtypes() & dtype_bit(type)) != 0;
  }
  static std::vector<double> widened(const std::vector<std::uint16_t>& v, dtype d) {
    std::vector<double> r(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) r[i] = widen(v[i], d);
    return r;
  }
};

int run_check(const check_args& a) {
  // Everything is read and validated before anything is computed.
  const reduction red = parse_reduction(a.reduction);
  bound_spec bound;
  bound.max_ulp = a.max_ulp;
  bound.t = parse_tier(a.tier);

  std::vector<const implementation*> chosen = choose(a.impls);
  for (const implementation* p : load_plugins(a.plugins)) chosen.push_back(p);

  const bool bf16 = a.logits_dtype == "bfloat16";
  const inputs in = load_inputs(a.logits, a.target, a.weight, bf16);
  std::vector<std::string> notes = in.notes;
  const options opt = in.make_options(red, a.ignore_index, a.label_smoothing);
  const sixteen_bit_inputs s16(in, opt, notes);
  const tensor_view x = in.logits_view(), t = in.target_view();
  // Validates shapes, bounds and options.
  const problem pr = make_problem(x, t, opt);
  const bool none = red == reduction::none;
  const shape_t positions = position_shape(in.logits_shape);

  std::optional<float_array> user_loss, user_grad;
  bool user_loss_scalar = false;
  if (!a.loss.empty()) {
    user_loss = load_floats("--loss", a.loss, "loss", "loss", notes, bf16, in.logits_type == dtype::f64);
    const std::int64_t n = numel(user_loss->shape);
    if (n == pr.positions && (none || n != 1)) {
      user_loss_scalar = false;
    } else if (n == 1 && !none) {
      user_loss_scalar = true;
    } else if (n == 1 && none) {
      throw input_error("--loss", a.loss + ": one value, but --reduction none gives one loss per position (" +
                                      shape_str(positions) +
                                      "): pass the --reduction your loss was computed with (mean or sum)");
    } else {
      throw input_error("--loss", a.loss + ": shape " + shape_str(user_loss->shape) +
                                      " is neither a scalar (the mean or sum) nor one value per position " +
                                      shape_str(positions) + " (reduction none)");
    }
  }
  if (!a.grad.empty()) {
    user_grad = load_floats("--grad", a.grad, "gradient", "grad", notes, bf16, in.logits_type == dtype::f64);
    if (user_grad->shape != in.logits_shape)
      throw input_error("--grad", a.grad + ": gradient shape " + shape_str(user_grad->shape) +
                                      " is not the logits' shape " + shape_str(in.logits_shape));
  }
  if (!a.grad_out.empty()) check_writable("--grad-out", a.grad_out);
  const implementation* grad_impl = nullptr;
  if (!a.grad_out.empty()) {
    if (!a.impls.empty() && !chosen.empty()) grad_impl = chosen.front();
    else if (!a.plugins.empty()) grad_impl = chosen.back();
    else grad_impl = &default_implementation();  // the most accurate: computes every dtype
  }

  std::vector<warning> warnings;
  for (const auto& w : in.warnings) warnings.push_back({w.code, w.message});
  for (auto& w : diagnose(pr, in.logits_shape)) warnings.push_back(std::move(w));
  if (!a.json) {
    for (const auto& n : notes) std::cerr << "xent: note: " << n << "\n";
    for (const auto& w : warnings) std::cerr << "xent: warning: " << w.message << "\n";
  }

  // The reference: per position, on threads, with a progress line on long runs.
  ref::compute_options ro;
  ro.threads = a.threads;
  progress_line progress;
  ro.progress = [&progress](std::int64_t done, std::int64_t total) { progress(done, total); };
  const ref::result r = ref::compute(pr, grad_impl != nullptr || user_grad.has_value(), ro);

  std::optional<contexts> ctx;
  if (bound.t) {
    ctx.emplace(pr);
    bound.ctx = &*ctx;
  }

  std::vector<checked> results;
  const quantity loss_q = none ? quantity::loss : quantity::reduction;
  // The user's results.
  if (user_loss) {
    checked c{"your loss", "--loss " + a.loss, "", user_loss_scalar ? quantity::reduction : quantity::loss,
              user_loss_scalar ? shape_t{} : positions, user_loss->values, {}, {}, {}, user_loss->type};
    collector col(bound, c.q, a.worst, c.type);
    if (user_loss_scalar) col.add(0, c.values[0], r.reduced);
    else
      for (std::int64_t p = 0; p < pr.positions; ++p)
        col.add(p, c.values[static_cast<std::size_t>(p)], r.loss[static_cast<std::size_t>(p)], p);
    c.s = col.finish();
    results.push_back(std::move(c));
  }
  if (user_grad) {
    checked c{"your gradient", "--grad " + a.grad, "", quantity::gradient, in.logits_shape, user_grad->values,
              {}, {}, {}, user_grad->type};
    collector col(bound, quantity::gradient, a.worst, c.type);
    for (std::int64_t p = 0; p < pr.positions; ++p)
      for (std::int64_t j = 0; j < pr.classes; ++j) {
        const std::int64_t i = element_index(in.logits_shape, p, j);
        col.add(i, c.values[static_cast<std::size_t>(i)], r.grad[static_cast<std::size_t>(p * pr.classes + j)], p, j);
      }
    c.s = col.finish();
    results.push_back(std::move(c));
  }
  // Implementations and plug-ins: the loss.
  const std::size_t first_impl = results.size();
  for (const implementation* impl : chosen) {
    checked c{impl->name(), origin_of(*impl), to_string(impl->tier()), loss_q, none ? positions : shape_t{},
              {}, impl->outside_domain(pr), {}, {}};
    c.values.assign(none ? static_cast<std::size_t>(pr.positions) : 1, 0.0f);
    if (in.logits_type == dtype::f64 && !(impl->dtypes() & dtype_bit(dtype::f64))) {
      // Rounding float64 logits to float32 would change the problem.
      c.not_applicable = "computes no float64 logits";
      results.push_back(std::move(c));
      continue;
    }
    try {
      if (s16.native_for(*impl)) {
        std::vector<std::uint16_t> out(c.values.size());
        cross_entropy(s16.x, s16.t, view(out.data(), s16.type, c.shape), s16.opt, impl);
        c.values = sixteen_bit_inputs::widened(out, s16.type);
        c.type = s16.type;
      } else if (in.logits_type == dtype::f64) {
        cross_entropy(x, t, view(c.values.data(), c.shape), opt, impl);
        c.type = dtype::f64;
      } else {
        std::vector<float> out(c.values.size());
        cross_entropy(x, t, view(out.data(), c.shape), opt, impl);
        c.values.assign(out.begin(), out.end());
      }
    } catch (const std::exception& e) {
      c.failed = e.what();
    }
    collector col(bound, loss_q, a.worst, c.type);
    if (!c.failed) {
      if (none)
        for (std::int64_t p = 0; p < pr.positions; ++p)
          col.add(p, c.values[static_cast<std::size_t>(p)], r.loss[static_cast<std::size_t>(p)], p);
      else
        col.add(0, c.values[0], r.reduced);
    }
    c.s = col.finish();
    results.push_back(std::move(c));
  }
  // The gradient written with --grad-out.
  std::optional<checked> grad_out;
  if (grad_impl) {
    checked c{grad_impl->name(), origin_of(*grad_impl), to_string(grad_impl->tier()), quantity::gradient,
              in.logits_shape, std::vector<double>(in.logits.size(), 0.0), {}, {}, {}};
    std::vector<float> loss(none ? static_cast<std::size_t>(pr.positions) : 1, 0.0f), g32;
    std::vector<double> loss64(loss.size());
    std::vector<std::uint16_t> g16;
    try {
      if (s16.native_for(*grad_impl)) {
        g16.resize(c.values.size());
        cross_entropy_forward_backward(s16.x, s16.t, view(loss.data(), none ? positions : shape_t{}),
                                       view(g16.data(), s16.type, in.logits_shape), s16.opt, nullptr, grad_impl);
        c.values = sixteen_bit_inputs::widened(g16, s16.type);
        c.type = s16.type;
      } else if (in.logits_type == dtype::f64) {
        cross_entropy_forward_backward(x, t, view(loss64.data(), none ? positions : shape_t{}),
                                       view(c.values.data(), in.logits_shape), opt, nullptr, grad_impl);
        c.type = dtype::f64;
      } else {
        g32.resize(c.values.size());
        cross_entropy_forward_backward(x, t, view(loss.data(), none ? positions : shape_t{}),
                                       view(g32.data(), in.logits_shape), opt, nullptr, grad_impl);
        c.values.assign(g32.begin(), g32.end());
      }
    } catch (const std::exception& e) {
      c.failed = e.what();
    }
    collector col(bound, quantity::gradient, a.worst, c.type);
    if (!c.failed) {
      for (std::int64_t p = 0; p < pr.positions; ++p)
        for (std::int64_t j = 0; j < pr.classes; ++j) {
          const std::int64_t i = element_index(in.logits_shape, p, j);
          col.add(i, c.values[static_cast<std::size_t>(i)], r.grad[static_cast<std::size_t>(p * pr.classes + j)], p, j);
        }
      if (mpi::rank() == 0)  // one writer under mpirun; a 16-bit gradient in its dtype (bfloat16: uint16 bit patterns)
        npy::write(a.grad_out, c.type == dtype::f32   ? npy::make(g32, in.logits_shape)
                               : c.type == dtype::f64 ? npy::make(c.values, in.logits_shape)
                                                      : npy::make(g16, in.logits_shape,
                                                                  c.type == dtype::bf16 ? npy::dtype::u16 : npy::dtype::f16));
    }
    c.s = col.finish();
    grad_out = std::move(c);
  }

  bool all_ok = true;
  for (const auto& c : results) all_ok = all_ok && c.ok(bound);
  if (grad_out) all_ok = all_ok && grad_out->ok(bound);
  const int status = all_ok ? exit_ok : exit_bound_exceeded;
  const std::string default_note =
      a.impls.empty() ? "the default set: our implementations at the correctly rounded, accurate and fast tiers (--impl all adds "
                        "naive and peers such as torch)"
                      : "";

  const std::string target_desc =
      shape_str(in.target_shape) + " " + in.target_dtype +
      (in.probability ? " (class probabilities)" : " (class indices)");
  if (a.json) {
    json j;
    j["logits"] = {{"shape", in.logits_shape}, {"dtype", to_string(in.logits_type)}};
    j["target"] = {{"shape", in.target_shape},
                   {"dtype", in.target_dtype},
                   {"kind", in.probability ? "probability" : "index"}};
    j["weight"] = in.weight     ? json{{"shape", {in.weight->size()}}}
                  : in.weight64 ? json{{"shape", {in.weight64->size()}}}
                                : json(nullptr);
    j["reduction"] = to_string(red);
    j["ignore_index"] = a.ignore_index;
    j["label_smoothing"] = a.label_smoothing;
    j["reference"] = none ? numbers(r.loss) : json(json_number(ref::to_double(r.reduced)));
    j["reference_text"] = none ? json(nullptr) : json(ref::to_string(r.reduced));
    j["ulp"] = "errors are in units in the last place (ulp) of each result's dtype (an implementation's "
               "`dtype`: the logits' for kernels that compute 16-bit logits, float32 for the others, which get "
               "the widened values; yours as given): |y - r| / ulp(RN(r)), r the multiprecision reference "
               "rounded once to that dtype; at most 0.5 means correctly rounded";
    if (user_loss || user_grad) {
      json yours = json::object();
      for (std::size_t i = 0; i < first_impl; ++i) {
        const checked& c = results[i];
        json s = summary_json(c, c.shape, bound);
        s["path"] = c.q == quantity::gradient ? a.grad : a.loss;
        s["kind"] = c.q == quantity::gradient ? "gradient" : c.q == quantity::reduction ? to_string(red) : "per_position";
        yours[c.q == quantity::gradient ? "grad" : "loss"] = s;
      }
      j["yours"] = yours;
    }
    json impls = json::object();
    for (std::size_t i = first_impl; i < results.size(); ++i) {
      const checked& c = results[i];
      json e = {{"tier", c.tier}, {"origin", c.origin}, {"dtype", to_string(c.type)}};
      e["loss"] = c.failed || c.not_applicable ? json(nullptr) : none ? numbers(c.values) : json_number(c.values[0]);
      e["not_applicable"] = c.not_applicable ? json(*c.not_applicable) : json(nullptr);
      e["max_ulp"] = json_number(c.s.max);
      e["outside_domain"] = c.outside ? json(*c.outside) : json(nullptr);
      e["error"] = c.failed ? json(*c.failed) : json(nullptr);
      e["errors"] = summary_json(c, c.shape, bound);
      impls[c.name] = e;
    }
    j["implementations"] = impls;
    j["default_implementations"] = a.impls.empty();
    if (grad_out) {
      j["gradient"] = {{"implementation", grad_out->name},
                       {"path", a.grad_out},
                       {"shape", in.logits_shape},
                       {"max_ulp", json_number(grad_out->s.max)},
                       {"error", grad_out->failed ? json(*grad_out->failed) : json(nullptr)},
                       {"errors", summary_json(*grad_out, in.logits_shape, bound)}};
    }
    if (bound.active())
      j["bound"] = {{"max_ulp", bound.max_ulp >= 0.0 ? json(bound.max_ulp) : json(nullptr)},
                    {"tier", bound.t ? json(to_string(*bound.t)) : json(nullptr)},
                    {"exceeded", !all_ok}};
    json ws = json::array();
    for (const auto& w : warnings) ws.push_back({{"code", w.code}, {"message", w.message}});
    j["warnings"] = ws;
    j["notes"] = notes;
    j["status"] = status;
    std::cout << j.dump() << "\n";
    return status;
  }

  // The dtype the reference is shown in: float64 for float64 logits (the
  // problem is theirs), else float32.
  const dtype ref_type = in.logits_type == dtype::f64 ? dtype::f64 : dtype::f32;
  std::cout << "logits " << shape_str(in.logits_shape) << " " << to_string(in.logits_type) << ", target "
            << target_desc
            << ", reduction " << to_string(red);
  if (in.weight) std::cout << ", weight [" << in.weight->size() << "]";
  if (!in.probability) std::cout << ", ignore_index " << a.ignore_index;
  if (a.label_smoothing != 0.0) std::cout << ", label_smoothing " << a.label_smoothing;
  std::cout << "\n";
  if (none)
    std::cout << "reference: " << values_text(rounded(r.loss, ref_type)) << "\n";
  else
    std::cout << "reference: " << ref::to_string(r.reduced) << " (" << to_string(ref_type) << " "
              << float_text(ref::round_to(r.reduced, ref_type)) << ")\n";

  auto pad = [](std::string s, std::size_t n) {
    if (s.size() < n) s.append(n - s.size(), ' ');
    return s;
  };
  auto bound_mark = [&](const checked& c) -> std::string {
    if (c.failed || !bound.active()) return "";
    return c.s.over == 0 ? "  within bound" : "  EXCEEDS bound";
  };
  auto describe_worst = [&](const checked& c) {
    std::string s;
    for (const auto& e : c.s.worst) {
      s += "    " + (c.shape.empty() ? std::string("value") : index_text(c.shape, e.index)) + ": " +
           float_text(e.value) + ", reference " + ref::to_string(e.reference, 12) + " (" + ulp_text(e.ulps) +
           " ulp)\n";
    }
    return s;
  };
  // The user's results, each with its distribution and worst elements.
  for (std::size_t i = 0; i < first_impl; ++i) {
    const checked& c = results[i];
    std::cout << "\n" << c.name << " (" << c.origin << ", " << (c.shape.empty() ? "the " + to_string(red) : shape_str(c.shape))
              << (c.type == dtype::f32 ? "" : ", " + to_string(c.type) + " ulps") << "): ";
    if (c.shape.empty()) std::cout << float_text(c.values[0]) << ", ";
    std::cout << "max " << ulp_text(c.s.max) << " ulp, p99 " << ulp_text(c.s.p99) << ", median "
              << ulp_text(c.s.median) << ", " << percent(c.s.correctly_rounded) << " correctly rounded"
              << bound_mark(c) << "\n";
    if (bound.active() && c.s.over > 0)
      std::cout << "  " << c.s.over << " of " << c.s.count << " beyond " << bound.describe() << "\n";
    if (!c.s.worst.empty()) std::cout << "  worst:\n" << describe_worst(c);
  }

  if (first_impl < results.size()) {
    std::size_t width = 16;
    for (std::size_t i = first_impl; i < results.size(); ++i) width = std::max(width, results[i].name.size() + 2);
    std::cout << "\n" << pad("implementation", width) << pad("tier", 19) << pad("max ulp", 9) << "loss\n";
    for (std::size_t i = first_impl; i < results.size(); ++i) {
      const checked& c = results[i];
      std::cout << pad(c.name, width) << pad(c.tier, 19);
      if (c.failed) {
        std::cout << pad("-", 9) << "FAILED: " << one_line_text(*c.failed) << "\n";
        continue;
      }
      if (c.not_applicable) {
        std::cout << pad("-", 9) << "n/a: " << *c.not_applicable << "\n";
        continue;
      }
      std::cout << pad(ulp_text(c.s.max), 9) << (none ? values_text(c.values) : float_text(c.values[0]));
      if (c.origin != "implementation") std::cout << "  (" << c.origin << ")";
      if (in.logits_type != dtype::f32)
        std::cout << (c.type == in.logits_type ? "  [" + to_string(c.type) + " out, " + to_string(c.type) + " ulps]"
                                               : std::string("  [float32: computes float32 logits only]"));
      if (c.outside) std::cout << "  (outside its domain: " << *c.outside << ")";
      std::cout << bound_mark(c) << "\n";
    }
    if (!default_note.empty()) std::cout << "(implementations: " << default_note << ")\n";
  }
  if (grad_out) {
    if (grad_out->failed)
      std::cout << "gradient of " << grad_out->name << ": FAILED: " << one_line_text(*grad_out->failed) << "\n";
    else
      std::cout << "gradient of " << grad_out->name << " (upstream 1) written to " << a.grad_out << " "
                << shape_str(in.logits_shape) << " " << to_string(grad_out->type)
                << (grad_out->type == dtype::bf16 ? " (uint16 bit patterns)" : "") << ", max ulp "
                << ulp_text(grad_out->s.max)
                << bound_mark(*grad_out) << "\n";
  }
  std::cout << "ulp: units in the last place of the result's dtype (float32 unless said), |y - r| / ulp(RN(r)) "
               "against the multiprecision reference r; at most 0.5 means correctly rounded (docs/design.md "
               "section 3)\n";
  if (bound.active())
    std::cout << (all_ok ? "PASSED: every checked result within " : "FAILED: a checked result exceeds ")
              << bound.describe() << "\n";
  return status;
}

}  // namespace xent::cli

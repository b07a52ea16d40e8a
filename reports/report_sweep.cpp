// GCC 12 warns falsely (-Wrestrict) on "literal" + std::string concatenations.
#pragma GCC diagnostic ignored "-Wrestrict"
#include "report_sweep.hpp"

#include "xent/plugin_loader.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cmath>
#include <exception>
#include <iostream>
#include <mutex>
#include <numeric>
#include <thread>

#include "format.hpp"
#include "xent/kernel.hpp"
#include "xent/poison.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace xent::reports {

using cli::float_text;
using cli::fmt;
using cli::nearest_rank;
using cli::ulp_text;

std::string to_string(quantity q) {
  switch (q) {
    case quantity::loss: return "loss";
    case quantity::grad_target: return "grad_target";
    case quantity::grad_other: return "grad_other";
    case quantity::mean: return "mean";
    case quantity::sum: return "sum";
  }
  return "?";
}

double tier_bound(const std::string& tier, quantity q) {
  constexpr double none = std::numeric_limits<double>::quiet_NaN();
  const bool reduction = q == quantity::mean || q == quantity::sum;
  const bool loss = q == quantity::loss;
  if (tier == "correctly_rounded") return 0.5;  // and every result RN(reference): CR 100 %
  if (tier == "accurate") return reduction ? 1.0 : loss ? 0.501 : 1.0;
  if (tier == "fast") return reduction ? 1.0 : 2.0;
  if (tier == "relaxed") return xent::relaxed_tier_ulps;
  if (tier == "standard") return reduction ? 2.0 : none;
  return none;
}

std::string repro(const cell& c, quantity q) {
  // Appended piece by piece: GCC 12 warns falsely on "lit" + std::string.
  const quantity_stats& s = c[q];
  std::string r = "--impl=";
  r += c.impl;
  r += ' ';
  r += c.scenario;
  if (s.worst.position >= 0) {
    r += " p";
    r += std::to_string(s.worst.position);
  }
  if (s.worst.cls >= 0) {
    r += " c";
    r += std::to_string(s.worst.cls);
  }
  r += ' ';
  r += to_string(q);
  r += ": got ";
  r += float_text(s.worst.got);
  r += " want ";
  r += s.worst.want;
  r += " (";
  r += ulp_text(s.worst.ulp);
  r += " ulp)";
  return r;
}

namespace {

// Herbie's bits of error: log2(1 + the number of values of the results'
// dtype between y and RN(r)).
double bits_of_error(double y, const ref::exact& r, dtype t) {
  if (t == dtype::f32) return ref::bits_of_error(static_cast<float>(y), r);
  const double want = ref::round_to(r, t);
  const double all_wrong = t == dtype::f64 ? 64.0 : 16.0;
  if (std::isnan(y) || std::isnan(want)) return std::isnan(y) && std::isnan(want) ? 0.0 : all_wrong;
  // Patterns in their total order (sign-magnitude to a line, +0 = -0).
  auto ordinal = [t](double v) -> double {
    if (t == dtype::f64) {
      const auto b = std::bit_cast<std::uint64_t>(v);
      const auto m = static_cast<double>(b & 0x7fffffffffffffffull);
      return (b >> 63) ? -m : m;
    }
    const std::uint16_t b = narrow(v, t);
    const std::int32_t m = b & 0x7fff;
    return (b & 0x8000) ? -m : m;
  };
  return std::log2(1.0 + std::abs(ordinal(y) - ordinal(want)));
}

// Errors of one quantity, element by element, in ulps of the results' dtype.
class accumulator {
 public:
  explicit accumulator(dtype t) : t_(t) {}
  // y: a value of the dtype (float32 and 16-bit results widened: exact).
  void add(double y, const ref::exact& r, std::int64_t p, std::int64_t c) {
    const float f = static_cast<float>(y);
    const double e = t_ == dtype::f32 ? ref::ulp_error(f, r) : ref::ulp_error(y, r, t_);
    ulps_.push_back(e);
    bits_ += bits_of_error(y, r, t_);
    if (t_ == dtype::f32 ? ref::correctly_rounded(f, r) : ref::correctly_rounded(y, r, t_)) ++cr_;
    if (std::isinf(e)) ++special_;
    if (ulps_.size() == 1 || e > worst_.ulp) {
      worst_ = {p, c, y, {}, e};
      worst_ref_ = r;
    }
  }
  quantity_stats finish() {
    quantity_stats s;
    s.count = static_cast<std::int64_t>(ulps_.size());
    if (ulps_.empty()) return s;
    const double n = static_cast<double>(ulps_.size());
    s.mean_bits = bits_ / n;
    s.correctly_rounded = static_cast<double>(cr_) / n;
    s.special_mismatches = special_;
    s.worst = worst_;
    s.worst.want = ref::to_string(worst_ref_, 10);
    s.max = worst_.ulp;
    s.median = nearest_rank(ulps_, 0.5);
    s.p99 = nearest_rank(ulps_, 0.99);
    return s;
  }

 private:
  dtype t_;
  std::vector<double> ulps_;
  double bits_ = 0.0;
  std::int64_t cr_ = 0, special_ = 0;
  worst_element worst_;
  ref::exact worst_ref_;
};

// hi + lo accumulated without loss (Knuth's TwoSum): the reductions are
// sums of the reference's per-position double-double values, exact to ~2^-100
// relative, so the reference runs once per scenario (with the gradient).
struct dd_sum {
  double hi = 0.0, lo = 0.0;
  void add(double v) {
    const double s = hi + v;
    const double bp = s - hi;
    lo += (hi - (s - bp)) + (v - bp);
    hi = s;
  }
  void add(const ref::exact& e) {
    if (!std::isfinite(e.hi)) {
      hi += e.hi;
      return;
    }
    add(e.hi);
    add(e.lo);
  }
  ref::exact value() const {
    if (!std::isfinite(hi)) return {hi, 0.0};
    const double s = hi + lo;
    return {s, lo - (s - hi)};
  }
  // (hi + lo) / (d.hi + d.lo), to ~2^-100 relative.
  ref::exact divided(const ref::exact& d) const {
    const ref::exact v = value();
    const double q1 = v.hi / d.hi;
    if (!std::isfinite(q1) || d.hi == 0.0) return {q1, 0.0};
    const double r = std::fma(-q1, d.hi, v.hi) + v.lo - q1 * d.lo;
    const double q2 = r / d.hi;
    const double s = q1 + q2;
    return {s, q2 - (s - q1)};
  }
};

// Element (p, c) of a C-order (N, C, d..) buffer.
std::int64_t element_index(const std::vector<std::int64_t>& shape, std::int64_t p, std::int64_t c) {
  if (shape.size() <= 1) return c;
  std::int64_t D = 1;
  for (std::size_t d = 2; d < shape.size(); ++d) D *= shape[d];
  return ((p / D) * shape[1] + c) * D + p % D;
}

// The results of one implementation on a scenario, as doubles (float32 and
// 16-bit results widened: exact), and what it left unwritten.
struct results {
  std::vector<double> loss, grad;
  double mean = 0.0, sum = 0.0;
  std::string unwritten;
};

// Position text "[p, c]" of element k of a C-order (N, C, d..) buffer.
std::string element_name(const scenario& s, std::size_t k) {
  const auto i = static_cast<std::int64_t>(k);
  std::int64_t D = 1;
  for (std::size_t d = 2; d < s.shape.size(); ++d) D *= s.shape[d];
  const std::int64_t C = s.classes(), p = (i / (C * D)) * D + i % D, cls = (i / D) % C;
  return "[" + std::to_string(p) + ", " + std::to_string(cls) + "]";
}

void append(std::string& to, const std::string& part) {
  if (!part.empty()) to += (to.empty() ? "" : "; ") + part;
}

// float32: every output buffer poisoned first (xent/poison.hpp): an element
// the kernel does not write fails the cell.
results run_float32(const scenario& s, const implementation* impl) {
  const tensor_view x = s.logits_view(), t = s.target_view();
  std::vector<float> loss(s.logits.size() / static_cast<std::size_t>(s.classes())), grad(s.logits.size());
  float mean = 0.0f, sum = 0.0f;
  results o;
  const poison::sentinel ls = poison::fill(loss), gs = poison::fill(grad);
  cross_entropy_forward_backward(x, t, view(loss.data(), s.position_shape()), view(grad.data(), s.shape),
                                 s.make_options(reduction::none), nullptr, impl);
  append(o.unwritten, poison::unwritten_message("losses (reduction none)", loss, ls));
  append(o.unwritten, poison::unwritten_message("gradient elements", grad, gs,
                                                [&](std::size_t i) { return element_name(s, i); }));
  const poison::sentinel ms = poison::fill({&mean, 1});
  cross_entropy(x, t, view(&mean, {}), s.make_options(reduction::mean), impl);
  append(o.unwritten, poison::unwritten_message("mean", {&mean, 1}, ms));
  const poison::sentinel ss = poison::fill({&sum, 1});
  cross_entropy(x, t, view(&sum, {}), s.make_options(reduction::sum), impl);
  append(o.unwritten, poison::unwritten_message("sum", {&sum, 1}, ss));
  o.loss.assign(loss.begin(), loss.end());
  o.grad.assign(grad.begin(), grad.end());
  o.mean = mean;
  o.sum = sum;
  return o;
}

// The "never written" text of the 16-bit and float64 runners: how many
// elements still hold the sentinel, and the first.
template <class T>
std::string unwritten_text(const scenario& s, const std::string& what, const std::vector<T>& v, T sentinel,
                           bool named) {
  std::size_t n = 0;
  std::string first;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (std::memcmp(&v[i], &sentinel, sizeof(T)) == 0 && n++ == 0)
      first = named ? element_name(s, i) : "[" + std::to_string(i) + "]";
  if (n == 0) return std::string();
  char bits[24];
  if constexpr (sizeof(T) == 2) std::snprintf(bits, sizeof bits, "0x%04x", static_cast<unsigned>(sentinel));
  else std::snprintf(bits, sizeof bits, "0x%016llx", static_cast<unsigned long long>(std::bit_cast<std::uint64_t>(sentinel)));
  return std::to_string(n) + " of " + std::to_string(v.size()) + " " + what + " never written (still the sentinel NaN " +
         bits + "), first " + first;
}

// float64: results in float64, the buffers poisoned with a float64
// signalling NaN (a pattern no arithmetic makes).
results run_float64(const scenario& s, const implementation* impl) {
  const tensor_view x = s.logits_view(), t = s.target_view();
  const std::uint32_t random = poison::next().bits;
  const double sentinel = std::bit_cast<double>((random >> 31 ? 0x8000000000000000ull : 0ull) | 0x7ff0000000000000ull |
                                                (1ull + random % 0x7ffffu));
  const std::size_t P = s.logits64.size() / static_cast<std::size_t>(s.classes());
  results o;
  o.loss.assign(P, sentinel);
  o.grad.assign(s.logits64.size(), sentinel);
  o.mean = o.sum = sentinel;
  cross_entropy_forward_backward(x, t, view(o.loss.data(), s.position_shape()), view(o.grad.data(), s.shape),
                                 s.make_options(reduction::none), nullptr, impl);
  cross_entropy(x, t, view(&o.mean, {}), s.make_options(reduction::mean), impl);
  cross_entropy(x, t, view(&o.sum, {}), s.make_options(reduction::sum), impl);
  append(o.unwritten, unwritten_text(s, "losses (reduction none)", o.loss, sentinel, false));
  append(o.unwritten, unwritten_text(s, "gradient elements", o.grad, sentinel, true));
  append(o.unwritten, unwritten_text(s, "mean", std::vector<double>{o.mean}, sentinel, false));
  append(o.unwritten, unwritten_text(s, "sum", std::vector<double>{o.sum}, sentinel, false));
  return o;
}

// bfloat16/float16: results in the logits' dtype (PyTorch's), the buffers
// poisoned with a signalling NaN of the dtype (a pattern no rounding makes).
results run_sixteen_bit(const scenario& s, const implementation* impl) {
  const tensor_view x = s.logits_view(), t = s.target_view();
  const std::uint32_t random = poison::next().bits;
  const std::uint16_t sentinel = static_cast<std::uint16_t>(
      (random >> 31 ? 0x8000u : 0u) |
      (s.type == dtype::bf16 ? 0x7f80u | (1u + random % 0x3fu) : 0x7c00u | (1u + random % 0x1ffu)));
  const std::size_t P = s.logits.size() / static_cast<std::size_t>(s.classes());
  std::vector<std::uint16_t> loss(P, sentinel), grad(s.logits.size(), sentinel);
  std::uint16_t mean = sentinel, sum = sentinel;
  cross_entropy_forward_backward(x, t, view(loss.data(), s.type, s.position_shape()),
                                 view(grad.data(), s.type, s.shape), s.make_options(reduction::none), nullptr, impl);
  cross_entropy(x, t, view(&mean, s.type, {}), s.make_options(reduction::mean), impl);
  cross_entropy(x, t, view(&sum, s.type, {}), s.make_options(reduction::sum), impl);
  results o;
  append(o.unwritten, unwritten_text(s, "losses (reduction none)", loss, sentinel, false));
  append(o.unwritten, unwritten_text(s, "gradient elements", grad, sentinel, true));
  append(o.unwritten, unwritten_text(s, "mean", std::vector<std::uint16_t>{mean}, sentinel, false));
  append(o.unwritten, unwritten_text(s, "sum", std::vector<std::uint16_t>{sum}, sentinel, false));
  auto widened = [&](const std::vector<std::uint16_t>& v) {
    std::vector<double> w(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) w[i] = widen(v[i], s.type);
    return w;
  };
  o.loss = widened(loss);
  o.grad = widened(grad);
  o.mean = widen(mean, s.type);
  o.sum = widen(sum, s.type);
  return o;
}

std::vector<cell> measure(const scenario& s, const std::vector<const implementation*>& impls) {
  const tensor_view x = s.logits_view(), t = s.target_view();
  const options none = s.make_options(reduction::none);
  const problem pr = make_problem(x, t, none);
  const ref::result r = ref::compute(pr, true);
  const std::int64_t P = pr.positions, C = pr.classes;

  // The reductions from the per-position reference values (docs/design.md §2:
  // mean divides by W = sum of the counted targets' weights, or by the
  // number of positions for probability targets).
  // W in double-double: a sum of float64 weights is not exact in double.
  dd_sum total, W;
  for (std::int64_t p = 0; p < P; ++p) {
    total.add(r.loss[static_cast<std::size_t>(p)]);
    if (pr.target == target_kind::probability) W.add(1.0);
    else if (pr.counted(p)) W.add(pr.weight_wide(pr.target_at(p)));
  }
  const ref::exact ref_sum = total.value();
  const ref::exact ref_mean = W.value().hi == 0.0 ? ref::exact{std::nan(""), 0.0} : total.divided(W.value());

  std::vector<cell> cells;
  for (const implementation* impl : impls) {
    // A scenario is measured on the kernels that compute its dtype.
    if (!(impl->dtypes() & dtype_bit(s.type))) continue;
    cell c;
    c.impl = impl->name();
    c.tier = to_string(impl->tier());
    c.scenario = s.id;
    c.dtype = to_string(s.type);
    c.outside = impl->outside_domain(pr);
    results o;
    reset_stable_rounding_statistics();  // this worker thread's counts
    try {
      o = s.type == dtype::f32   ? run_float32(s, impl)
          : s.type == dtype::f64 ? run_float64(s, impl)
                                 : run_sixteen_bit(s, impl);
    } catch (const plugins::plugin_unsupported& e) {
      c.skipped = e.what();
      cells.push_back(std::move(c));
      continue;
    } catch (const std::exception& e) {
      // A plug-in that fails or crashes (run in a child process) is reported, not fatal.
      c.failure = e.what();
      cells.push_back(std::move(c));
      continue;
    }
    if (!o.unwritten.empty()) {
      c.failure = "output never written: " + o.unwritten +
                  " (output buffers are poisoned before each call; real buffers are not zeroed)";
      cells.push_back(std::move(c));
      continue;
    }

    const rounding_statistics rs = stable_rounding_statistics();
    c.rounded = static_cast<std::int64_t>(rs.results);
    c.retried = static_cast<std::int64_t>(rs.retried);
    c.exact = static_cast<std::int64_t>(rs.exact);
    c.unresolved = static_cast<std::int64_t>(rs.unresolved);
    accumulator a_loss(s.type), a_gt(s.type), a_go(s.type), a_mean(s.type), a_sum(s.type);
    for (std::int64_t p = 0; p < P; ++p) {
      if (!pr.counted(p)) continue;
      a_loss.add(o.loss[static_cast<std::size_t>(p)], r.loss[static_cast<std::size_t>(p)], p, -1);
      const std::int64_t target = s.probability ? -1 : pr.target_at(p);
      for (std::int64_t k = 0; k < C; ++k)
        (k == target ? a_gt : a_go)
            .add(o.grad[static_cast<std::size_t>(element_index(s.shape, p, k))],
                 r.grad[static_cast<std::size_t>(p * C + k)], p, k);
    }
    a_mean.add(o.mean, ref_mean, -1, -1);
    a_sum.add(o.sum, ref_sum, -1, -1);
    c.q = {a_loss.finish(), a_gt.finish(), a_go.finish(), a_mean.finish(), a_sum.finish()};
    cells.push_back(std::move(c));
  }
  return cells;
}

}  // namespace

std::vector<const implementation*> sweep_implementations(const std::vector<std::string>& names) {
  std::vector<const implementation*> impls;
  for (const implementation* i : implementations())
    if (i->supported() && (names.empty() || std::find(names.begin(), names.end(), i->name()) != names.end()))
      impls.push_back(i);
  return impls;
}

sweep_result run_sweep(const sweep_options& o) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const std::vector<const implementation*> impls = sweep_implementations(o.impls);

  const std::size_t n = o.scenarios.size();
  sweep_result res;
  res.scenarios.resize(n);
  std::vector<std::vector<cell>> cells(n);
  // Largest first, so that the last scenarios to finish are small ones.
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return o.scenarios[a].elements > o.scenarios[b].elements;
  });

  std::atomic<std::size_t> next{0};
  std::mutex mu;  // guards done, error and the progress line
  std::size_t done = 0;
  std::exception_ptr error;
  auto worker = [&] {
    for (std::size_t k; (k = next.fetch_add(1)) < n;) {
      const std::size_t i = order[k];
      const scenario_spec& spec = o.scenarios[i];
      try {
        const auto t0 = clock::now();
        const scenario s = spec.build();
        cells[i] = measure(s, impls);
        res.scenarios[i] = {s.id, spec.family, s.description, s.shape, spec.classes, spec.scale,
                            std::chrono::duration<double>(clock::now() - t0).count()};
      } catch (...) {
        std::lock_guard lock(mu);
        if (!error) error = std::current_exception();
        next = n;  // stop the others early
        return;
      }
      std::lock_guard lock(mu);
      ++done;
      if (o.progress)
        std::cerr << "\r\033[Kreport: accuracy " << done << "/" << n << " scenarios, "
                  << fmt(std::chrono::duration<double>(clock::now() - start).count(), "%.0f") << " s ("
                  << spec.id << ")" << std::flush;
    }
  };
  unsigned threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(n, 1)));
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i)
    pool.emplace_back([&] {
      worker();
      ref::release_thread_caches();
    });
  worker();
  for (auto& t : pool) t.join();
  if (o.progress) std::cerr << "\r\033[K" << std::flush;
  if (error) std::rethrow_exception(error);
  for (auto& c : cells) res.cells.insert(res.cells.end(), c.begin(), c.end());
  res.seconds = std::chrono::duration<double>(clock::now() - start).count();
  return res;
}

}  // namespace xent::reports

#include "cases.hpp"

#include <omp.h>

#include <hwy/targets.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "buffers.hpp"
#include "compute_floor.hpp"
#include "memory.hpp"
#include "xent/kernel.hpp"
#include "xent/poison.hpp"
#include "xent/xent.hpp"

#ifdef XENT_HAVE_TORCH
#include "torch_implementation.hpp"
#endif
#ifdef XENT_BENCH_HAVE_ONEDNN
#include "onednn_implementation.hpp"
#endif

namespace xent_bench {
namespace {

namespace poison = xent::poison;

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Tolerances of the pre-timing check: loose enough for the naive and
// standard tiers on these well-conditioned inputs, tight enough to catch a
// wrong mean denominator, a missing row or an off-by-one target.
constexpr double loss_rtol = 1e-3;
constexpr double loss_atol = 1e-5;
constexpr double grad_rtol = 1e-3;
constexpr double grad_atol_of_max = 1e-5;  // times max |reference gradient|

// The inputs of the shape being measured and the reference results. The
// benchmarks of one shape are registered together, so one workspace lives
// at a time (the LLM shapes need ~0.5 GB per N×C buffer).
struct workspace {
  shape_spec shape;
  buffer<float> logits;
  buffer<std::int64_t> target;
  buffer<float> grad;  // fwdbwd output; the in-place modes work on it
  std::vector<float> rows;

  bool have_reference = false;
  buffer<float> ref_grad;  // gradient of the mean
  std::vector<float> ref_rows;
  double ref_mean = 0.0, ref_sum = 0.0, ref_grad_max = 0.0;

  // 16-bit shapes: the logits rounded to the dtype live in `logits` (what the
  // reference computes from) and, as 16-bit patterns, in logits16 (what the
  // kernels read); the gradient goes to grad16.
  buffer<std::uint16_t> logits16, grad16;
  // float64 shapes: the float32 fill with float64's full significand in
  // logits64 (what the kernels read; `logits` holds their float32 roundings,
  // which the reference computes from: within the checks' tolerances), the
  // gradient in grad64, the losses in rows64.
  buffer<double> logits64, grad64;
  std::vector<double> rows64;

  explicit workspace(const shape_spec& s)
      : shape(s),
        logits(static_cast<std::size_t>(s.elements())),
        target(static_cast<std::size_t>(s.positions())),
        grad(static_cast<std::size_t>(s.elements())),
        rows(static_cast<std::size_t>(s.positions())) {
    fill_normal(logits.data(), logits.size(), seed, logit_sigma);
    fill_targets(target.data(), target.size(), s.classes(), seed);
    if (s.type == xent::dtype::f64) {
      logits64 = buffer<double>(logits.size());
      grad64 = buffer<double>(logits.size());
      rows64.resize(rows.size());
      const auto n = static_cast<std::ptrdiff_t>(logits.size());
      float* x = logits.data();
      double* x64 = logits64.data();
#pragma omp parallel for
      for (std::ptrdiff_t i = 0; i < n; ++i) {
        // v (1 + k 2^-40), k in [-2^11, 2^11): every significand bit used.
        const auto k = static_cast<double>((static_cast<std::uint64_t>(i) * 0x9e3779b97f4a7c15ull) >> 52) - 2048.0;
        x64[i] = static_cast<double>(x[i]) * (1.0 + k * 0x1p-40);
        x[i] = static_cast<float>(x64[i]);
      }
    } else if (s.type != xent::dtype::f32) {
      logits16 = buffer<std::uint16_t>(logits.size());
      grad16 = buffer<std::uint16_t>(logits.size());
      const auto n = static_cast<std::ptrdiff_t>(logits.size());
      float* x = logits.data();
      std::uint16_t* x16 = logits16.data();
#pragma omp parallel for
      for (std::ptrdiff_t i = 0; i < n; ++i) {
        x16[i] = xent::narrow(x[i], s.type);
        x[i] = xent::widen(x16[i], s.type);
      }
    }
  }

  // What the kernels read and write: float32, or the 16-bit buffers.
  xent::tensor_view logits_view() const {
    if (shape.type == xent::dtype::f64) return xent::view(logits64.data(), shape.dims);
    return shape.type == xent::dtype::f32 ? xent::view(logits.data(), shape.dims)
                                          : xent::view(logits16.data(), shape.type, shape.dims);
  }
  xent::tensor_view grad_view() const {
    if (shape.type == xent::dtype::f64) return xent::view(grad64.data(), shape.dims);
    return shape.type == xent::dtype::f32 ? xent::view(grad.data(), shape.dims)
                                          : xent::view(grad16.data(), shape.type, shape.dims);
  }
  // The gradient just written, as float32 (16-bit: widened into grad;
  // float64: rounded into grad).
  const float* grad_values() {
    if (shape.type == xent::dtype::f64) {
      const auto n = static_cast<std::ptrdiff_t>(grad.size());
#pragma omp parallel for
      for (std::ptrdiff_t i = 0; i < n; ++i) grad.data()[i] = static_cast<float>(grad64.data()[i]);
    } else if (shape.type != xent::dtype::f32) {
      const auto n = static_cast<std::ptrdiff_t>(grad.size());
#pragma omp parallel for
      for (std::ptrdiff_t i = 0; i < n; ++i) grad.data()[i] = xent::widen(grad16.data()[i], shape.type);
    }
    return grad.data();
  }
  xent::tensor_view target_view() const { return xent::view(target.data(), shape.target_dims()); }
};

std::unique_ptr<workspace>& current() {
  static std::unique_ptr<workspace> ws;
  return ws;
}

// The probes' buffer, allocated and touched once for all probes, freed when
// the first case needs its memory.
buffer<float>& probe_buffer() {
  static buffer<float> b;
  return b;
}

workspace& workspace_for(const shape_spec& s) {
  auto& ws = current();
  if (!ws || ws->shape.name != s.name) {
    ws.reset();  // free the previous shape first
    probe_buffer() = buffer<float>();
    ws = std::make_unique<workspace>(s);
  }
  return *ws;
}

// Reference results from the reference kernel, split over the first
// dimension in chunks run in parallel (the scalar kernel would take seconds
// per LLM shape otherwise). One call gives everything: reduction none with
// upstream 1/positions yields the per-position losses and the gradient of
// the mean (no weights, nothing ignored: the mean's denominator is P).
void compute_reference(workspace& ws) {
  if (ws.have_reference) return;
  const shape_spec& s = ws.shape;
  ws.ref_grad = buffer<float>(static_cast<std::size_t>(s.elements()));
  ws.ref_rows.assign(static_cast<std::size_t>(s.positions()), 0.0f);
  const std::int64_t n = s.dims[0];
  const std::int64_t per_n = s.elements() / n;           // elements per first index
  const std::int64_t pos_per_n = s.positions() / n;      // positions per first index
  const std::int64_t chunks = std::min<std::int64_t>(n, 64);
  const float upstream = static_cast<float>(1.0 / static_cast<double>(s.positions()));
  const xent::implementation& ref = reference_implementation();
  xent::options o;
  o.reduce = xent::reduction::none;
  std::string failure;
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, omp_get_num_procs()))
  for (std::int64_t k = 0; k < chunks; ++k) {
    const std::int64_t n0 = n * k / chunks, n1 = n * (k + 1) / chunks;
    std::vector<std::int64_t> d = s.dims, td = s.target_dims();
    d[0] = td[0] = n1 - n0;
    try {
      const xent::tensor_view up = xent::view(&upstream, {});
      xent::cross_entropy_forward_backward(
          xent::view(ws.logits.data() + n0 * per_n, d), xent::view(ws.target.data() + n0 * pos_per_n, td),
          xent::view(ws.ref_rows.data() + n0 * pos_per_n, td), xent::view(ws.ref_grad.data() + n0 * per_n, d),
          o, &up, &ref);
    } catch (const std::exception& e) {
#pragma omp critical
      failure = e.what();
    }
  }
  if (!failure.empty()) throw std::runtime_error("reference failed: " + failure);
  double sum = 0.0, gmax = 0.0;
  for (float r : ws.ref_rows) sum += r;
  const float* g = ws.ref_grad.data();
  const auto e = static_cast<std::ptrdiff_t>(s.elements());
#pragma omp parallel for reduction(max : gmax)
  for (std::ptrdiff_t i = 0; i < e; ++i) gmax = std::max(gmax, static_cast<double>(std::fabs(g[i])));
  ws.ref_sum = sum;
  ws.ref_mean = sum / static_cast<double>(s.positions());
  ws.ref_grad_max = gmax;
  ws.have_reference = true;
}

std::string repro(const bench_case& c) {
  return " [repro: xent_bench --benchmark_filter='^" + c.name() + "$'; seed " + std::to_string(seed) +
         ", logits ~ N(0, " + std::to_string(logit_sigma).substr(0, 3) + "), targets uniform]";
}

// 16-bit shapes: LibTorch returns a loss of the logits' dtype, within a few
// of its ulps (2^-8 relative for bfloat16); ours return float32.
double loss_rtol_of(const bench_case& c) {
  return c.shape.type == xent::dtype::bf16 ? 0x1p-6 : c.shape.type == xent::dtype::f16 ? 0x1p-9 : loss_rtol;
}

std::string check_scalar(const char* what, double got, double want, const bench_case& c) {
  if (std::fabs(got - want) <= loss_rtol_of(c) * std::fabs(want) + loss_atol) return {};
  std::ostringstream m;
  m.precision(9);
  m << "mismatch vs reference " << reference_implementation().name() << ": " << what << " = " << got
    << ", reference " << want << repro(c);
  return m.str();
}

std::string check_rows(const std::vector<float>& got, const workspace& ws, const bench_case& c) {
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double y = got[i], r = ws.ref_rows[i];
    if (!(std::fabs(y - r) <= loss_rtol_of(c) * std::fabs(r) + loss_atol)) {
      std::ostringstream m;
      m.precision(9);
      m << "mismatch vs reference " << reference_implementation().name() << ": loss[" << i << "] = " << y
        << ", reference " << r << repro(c);
      return m.str();
    }
  }
  return {};
}

std::string check_grad(const float* g, const workspace& ws, const bench_case& c) {
  const float* r = ws.ref_grad.data();
  // 16-bit gradients: ours are within half an ulp of the dtype (2^-9,
  // 2^-12 relative), but LibTorch's bfloat16 gradient is the exponential of a
  // log-probability rounded to bfloat16: a few % off on small entries
  // (measured: 2 % at C = 8192). The check only has to catch gross errors
  // (a wrong scale, a missing row, a wrong target): 1/16 relative for
  // bfloat16, 2^-7 for float16, plus 2^-8 of the largest entry.
  const bool b16 = ws.shape.type != xent::dtype::f32;
  const double atol = (b16 ? 0x1p-8 : grad_atol_of_max) * ws.ref_grad_max;
  const double rtol = ws.shape.type == xent::dtype::bf16 ? 0x1p-4
                      : ws.shape.type == xent::dtype::f16 ? 0x1p-7
                                                           : grad_rtol;
  const auto e = static_cast<std::ptrdiff_t>(ws.shape.elements());
  std::ptrdiff_t first_bad = e;
#pragma omp parallel for reduction(min : first_bad)
  for (std::ptrdiff_t i = 0; i < e; ++i) {
    const double d = std::fabs(static_cast<double>(g[i]) - r[i]);
    if (!(d <= rtol * std::fabs(static_cast<double>(r[i])) + atol)) first_bad = std::min(first_bad, i);
  }
  if (first_bad == e) return {};
  std::ostringstream m;
  m.precision(9);
  m << "mismatch vs reference " << reference_implementation().name() << ": grad[" << first_bad
    << "] = " << g[first_bad] << ", reference " << r[first_bad] << repro(c);
  return m.str();
}

struct case_record {
  bool done = false;
  std::string error;
  std::int64_t peak_extra = 0;
};

std::map<std::string, case_record>& records() {
  static std::map<std::string, case_record> m;
  return m;
}

// Seconds per call of the runs of one case. Google Benchmark calls a case
// with growing iteration counts until a run lasts the minimum time; only the
// runs with the final (largest) count are reported, so only they count here.
class timings {
 public:
  void add(std::int64_t iterations, double seconds_per_call) {
    if (iterations > iterations_) {
      iterations_ = iterations;
      v_.clear();
    }
    if (iterations == iterations_) v_.push_back(seconds_per_call);
  }
  double median() const {
    std::vector<double> v(v_);
    std::sort(v.begin(), v.end());
    const std::size_t h = v.size() / 2;
    return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
  }

 private:
  std::int64_t iterations_ = 0;
  std::vector<double> v_;
};

// The peer's runs, per "shape/mode/tN".
std::map<std::string, timings>& torch_times() {
  static std::map<std::string, timings> m;
  return m;
}

// oneDNN's runs (the `onednn` implementation), per "shape/mode/tN".
std::map<std::string, timings>& onednn_times() {
  static std::map<std::string, timings> m;
  return m;
}

// What add_peer_ratios needs of a measured case, by name.
struct case_peers {
  std::string shape, torch_key, onednn_key;
  bool torch = false, onednn = false;  // the case is that peer itself
  double elements = 0.0;
};
std::map<std::string, case_peers>& peer_keys() {
  static std::map<std::string, case_peers> m;
  return m;
}

// Every case's runs, by name: the one-thread time is the base of the
// thread-scaling counter.
std::map<std::string, timings>& case_times() {
  static std::map<std::string, timings> m;
  return m;
}

// The peer counterpart of a mode: in-place is compared with LibTorch's
// forward+backward (the step it replaces).
std::string peer_key(const bench_case& c) {
  const mode m = c.m == mode::fwdbwd_inplace ? mode::fwdbwd : c.m;
  return c.shape.name + "/" + to_string(m) + "/t" + std::to_string(c.threads);
}

double roofline(const bench_case& c) {
  switch (c.m) {
    case mode::fwd:
    case mode::fwd_sum:
    case mode::fwd_none: return roofline_read(c.threads);
    case mode::fwdbwd: return roofline_fused(c.threads);
    case mode::fwdbwd_inplace: return roofline_inplace(c.threads);
  }
  return 0.0;
}

// The bytes a mode must move (docs/design.md §6): the logits once, plus the
// gradient once when it is written. Targets and losses (O(N)) are left out.
double bytes_per_call(const bench_case& c) {
  const double b = static_cast<double>(c.shape.element_bytes()) * static_cast<double>(c.shape.elements());
  return writes_grad(c.m) ? 2.0 * b : b;
}

// The untimed first calls (check + memory), then the timed loop. `clear`
// drops results a previous call left allocated, so that a measured call
// starts from the state a timed one would free anyway.
template <class Call, class Check, class Clear>
void measure(benchmark::State& st, const bench_case& c, Call&& call, Check&& check, Clear&& clear) {
  case_record& rec = records()[c.name()];
  if (!rec.done) {
    rec.done = true;
    try {
      roofline(c);  // run a missing probe now, not between timings (run_case measured the floor)
      const auto t0 = clock_type::now();
      auto measured_call = [&] {
        clear();
        xent::release_scratch();  // kept between calls: count it where it is allocated
#ifdef XENT_BENCH_HAVE_ONEDNN
        xent::peers::release_onednn_buffers();  // the same for oneDNN's P x C buffers
#endif
        memory_window w;
#ifdef XENT_HAVE_TORCH
        if (c.libtorch) xent::peers::libtorch::reset_storage_peak();
        call();
        rec.peak_extra = w.peak_extra_bytes(c.libtorch ? xent::peers::libtorch::storage_peak_extra_bytes() : 0);
#else
        call();
        rec.peak_extra = w.peak_extra_bytes();
#endif
      };
      measured_call();
      const double first = seconds_since(t0);
      rec.error = check();
      // Measure memory again on a warm call (lazy initialisation, code pages
      // and thread stacks belong to the first one) unless calls are slow.
      if (rec.error.empty() && first < 2.0) measured_call();
    } catch (const std::exception& e) {
      rec.error = std::string("error: ") + e.what() + repro(c);
    }
  }
  if (!rec.error.empty()) {
    st.SkipWithError(rec.error.c_str());
    return;
  }
  const auto t0 = clock_type::now();
  for (auto _ : st) {
    call();
    benchmark::ClobberMemory();
  }
  const double per_call = seconds_since(t0) / static_cast<double>(st.iterations());
  const double bytes = bytes_per_call(c);
  const double elements = static_cast<double>(c.shape.elements());
  // Rates from the wall clock (GB's own rates would use the main thread's
  // CPU time, wrong for two threads, and UseRealTime() would append
  // "/real_time" to the names).
  st.counters["bytes_per_second"] = bytes / per_call;
  st.counters["items_per_second"] = elements / per_call;
  st.counters["roofline_fraction"] = bytes / per_call / roofline(c);
  // The CE roofline in elements/s: the memory roofline or the compute floor,
  // whichever is lower (compute_floor.hpp).
  // A pinned case is held to the floor on its own target: what a CPU whose
  // best target that is could reach.
  const double ce_roofline = std::min(roofline(c) / (bytes / elements), compute_floor(c.threads, c.target));
  st.counters["ce_roofline_fraction"] = elements / per_call / ce_roofline;
  st.counters["peak_extra_bytes"] = static_cast<double>(rec.peak_extra);
  st.counters["extra_per_NxC"] =
      static_cast<double>(rec.peak_extra) / (static_cast<double>(c.shape.element_bytes()) * elements);
  const auto iterations = static_cast<std::int64_t>(st.iterations());
  case_times()[c.name()].add(iterations, per_call);
  if (c.threads > 1) {
    bench_case one = c;
    one.threads = 1;
    if (auto it = case_times().find(one.name()); it != case_times().end())
      st.counters["vs_t1"] = it->second.median() / per_call;  // thread scaling
  }
  // vs_torch and vs_onednn are set by add_peer_ratios once every
  // implementation of the shape has run (whichever order they ran in).
  // oneDNN runs every mode (in place included), so its key is the case's own.
  const std::string own_key = c.shape.name + "/" + to_string(c.m) + "/t" + std::to_string(c.threads);
  const bool is_onednn = !c.libtorch && c.impl->name() == "onednn";
  if (c.libtorch) torch_times()[peer_key(c)].add(iterations, per_call);
  if (is_onednn) onednn_times()[own_key].add(iterations, per_call);
  peer_keys()[c.name()] = {c.shape.name, peer_key(c), own_key, c.libtorch, is_onednn, elements};
}

void run_xent(benchmark::State& st, const bench_case& c, workspace& ws) {
  const xent::implementation* impl = c.impl;
  xent::options o;
  o.reduce = c.m == mode::fwd_sum ? xent::reduction::sum
             : c.m == mode::fwd_none ? xent::reduction::none
                                     : xent::reduction::mean;
  // float64 logits: the loss is float64 (loss64, rows64), checked as float32.
  const bool f64 = ws.shape.type == xent::dtype::f64;
  float loss = 0.0f;
  double loss64 = 0.0;
  const xent::tensor_view x = ws.logits_view(), t = ws.target_view();
  const xent::tensor_view scalar = f64 ? xent::view(&loss64, {}) : xent::view(&loss, {});
  const xent::tensor_view rows = f64 ? xent::view(ws.rows64.data(), c.shape.target_dims())
                                     : xent::view(ws.rows.data(), c.shape.target_dims());
  const xent::tensor_view g = ws.grad_view();
  // float64: outputs filled with a quiet NaN no kernel writes for these
  // finite logits, so an unwritten value fails the checks below.
  const double nan64 = std::numeric_limits<double>::quiet_NaN();
  auto poison64 = [&](bool rows_too, bool grad_too) {
    loss64 = nan64;
    if (rows_too) std::fill(ws.rows64.begin(), ws.rows64.end(), nan64);
    if (grad_too) std::fill_n(ws.grad64.data(), ws.grad64.size(), nan64);
  };
  auto from64 = [&] {  // the float64 results as float32, for the checks
    if (!f64) return;
    loss = static_cast<float>(loss64);
    for (std::size_t i = 0; i < ws.rows.size(); ++i) ws.rows[i] = static_cast<float>(ws.rows64[i]);
  };
  // The untimed calls get poisoned outputs (xent/poison.hpp): an element the
  // kernel does not write fails the case before anything is timed.
  poison::sentinel loss_s, rows_s, grad_s;
  auto unwritten = [&](bool rows_too, bool grad_too) {
    if (f64) {  // poisoned with NaN: what stayed NaN fails the value checks
      from64();
      return std::string();
    }
    std::string m = rows_too ? "" : poison::unwritten_message("loss", {&loss, 1}, loss_s);
    if (rows_too) m += poison::unwritten_message("per-position losses", ws.rows, rows_s);
    if (grad_too && ws.shape.type == xent::dtype::f32)  // (16-bit gradients: filled with NaN, checked below)
      m += poison::unwritten_message("gradient elements", {ws.grad.data(), ws.grad.size()}, grad_s);
    return m.empty() ? m : "output never written: " + m + repro(c);
  };
  switch (c.m) {
    case mode::fwd:
    case mode::fwd_sum:
      measure(
          st, c, [&] { xent::cross_entropy(x, t, scalar, o, impl); },
          [&] {
            if (std::string e = unwritten(false, false); !e.empty()) return e;
            compute_reference(ws);
            return check_scalar(c.m == mode::fwd ? "loss (mean)" : "loss (sum)", loss,
                                c.m == mode::fwd ? ws.ref_mean : ws.ref_sum, c);
          },
          [&] {
            if (f64) poison64(false, false);
            else loss_s = poison::fill({&loss, 1});
          });
      break;
    case mode::fwd_none:
      measure(
          st, c, [&] { xent::cross_entropy(x, t, rows, o, impl); },
          [&] {
            if (std::string e = unwritten(true, false); !e.empty()) return e;
            compute_reference(ws);
            return check_rows(ws.rows, ws, c);
          },
          [&] {
            if (f64) poison64(true, false);
            else rows_s = poison::fill(ws.rows);
          });
      break;
    case mode::fwdbwd:
      measure(
          st, c, [&] { xent::cross_entropy_forward_backward(x, t, scalar, g, o, nullptr, impl); },
          [&] {
            if (std::string e = unwritten(false, true); !e.empty()) return e;
            compute_reference(ws);
            std::string e = check_scalar("loss (mean)", loss, ws.ref_mean, c);
            return e.empty() ? check_grad(ws.grad_values(), ws, c) : e;
          },
          [&] {
            if (f64) return poison64(false, true);
            loss_s = poison::fill({&loss, 1});
            // 16-bit: a NaN pattern no kernel writes for these finite logits,
            // so an unwritten element fails check_grad.
            if (ws.shape.type != xent::dtype::f32) std::fill_n(ws.grad16.data(), ws.grad16.size(), std::uint16_t{0x7e01});
            else grad_s = poison::fill({ws.grad.data(), ws.grad.size()});
          });
      break;
    case mode::fwdbwd_inplace: {
      // The logits live in the gradient buffer and are overwritten each call;
      // later calls see earlier gradients as logits (same cost, finite values).
      // Only the loss can be poisoned here.
      if (!records()[c.name()].done)
        std::memcpy(ws.grad.data(), ws.logits.data(), ws.logits.bytes());
      measure(
          st, c, [&] { xent::cross_entropy_forward_backward(g, t, scalar, g, o, nullptr, impl); },
          [&] {
            if (std::string e = unwritten(false, false); !e.empty()) return e;
            compute_reference(ws);
            std::string e = check_scalar("loss (mean)", loss, ws.ref_mean, c);
            return e.empty() ? check_grad(ws.grad.data(), ws, c) : e;
          },
          [&] { loss_s = poison::fill({&loss, 1}); });
      break;
    }
  }
}

#ifdef XENT_HAVE_TORCH
void run_torch(benchmark::State& st, const bench_case& c, workspace& ws) {
  const std::string red = c.m == mode::fwd_sum ? "sum" : c.m == mode::fwd_none ? "none" : "mean";
  xent::peers::libtorch::session s(ws.logits_view().data, c.shape.type, c.shape.dims, ws.target.data(), red,
                                   writes_grad(c.m));
  measure(
      st, c, [&] { s.run(); },
      [&]() -> std::string {
        compute_reference(ws);
        if (c.m == mode::fwd_none) {
          if (s.loss_numel() != c.shape.positions()) return "libtorch returned a wrong number of losses";
          s.loss(ws.rows.data());
          return check_rows(ws.rows, ws, c);
        }
        float loss = 0.0f;
        s.loss(&loss);
        std::string e = check_scalar(c.m == mode::fwd_sum ? "loss (sum)" : "loss (mean)", loss,
                                     c.m == mode::fwd_sum ? ws.ref_sum : ws.ref_mean, c);
        if (!e.empty() || !writes_grad(c.m)) return e;
        s.grad(ws.grad.data());
        return check_grad(ws.grad.data(), ws, c);
      },
      [&] { s.clear(); });
}
#endif

}  // namespace

std::int64_t shape_spec::elements() const {
  std::int64_t e = 1;
  for (auto d : dims) e *= d;
  return e;
}

std::vector<std::int64_t> shape_spec::target_dims() const {
  std::vector<std::int64_t> t(dims);
  t.erase(t.begin() + 1);
  return t;
}

shape_spec with_dtype(const shape_spec& s, xent::dtype t) {
  shape_spec r = s;
  r.type = t;
  r.name += t == xent::dtype::bf16 ? "_bf16" : t == xent::dtype::f16 ? "_f16" : "_f64";
  return r;
}

shape_spec make_shape(std::vector<std::int64_t> dims) {
  static const char* const extra[4][3] = {{}, {"d"}, {"h", "w"}, {"d", "h", "w"}};
  std::string name = "n" + std::to_string(dims[0]) + "c" + std::to_string(dims[1]);
  const std::size_t k = dims.size() - 2;
  for (std::size_t i = 0; i < k; ++i)
    name += (k < 4 ? extra[k][i] : "d") + std::to_string(dims[2 + i]);
  return {name, std::move(dims)};
}

std::vector<shape_plan> read_shape_list(std::string_view text, std::string_view set) {
  std::vector<shape_plan> plan;
  std::istringstream in{std::string(text)};
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::string line_set, dims_text;
    if (!(words >> line_set)) continue;  // blank or comment
    auto bad = [&](const std::string& why) {
      std::string msg = "shape list line ";
      msg += std::to_string(number);
      msg += ": ";
      msg += why;
      return std::runtime_error(msg);
    };
    if (!(words >> dims_text)) throw bad("no dims");
    std::string not_dims = "dims '";
    not_dims += dims_text;
    not_dims += "' are not NxC[xd...]";
    std::vector<std::int64_t> dims;
    for (std::size_t pos = 0; pos <= dims_text.size();) {
      const std::size_t x = std::min(dims_text.find('x', pos), dims_text.size());
      const std::string extent = dims_text.substr(pos, x - pos);
      if (extent.empty() || extent.find_first_not_of("0123456789") != std::string::npos)
        throw bad(not_dims);
      dims.push_back(std::stoll(extent));
      pos = x + 1;
    }
    if (dims.size() < 2) throw bad(not_dims);
    shape_plan p;
    p.shape = make_shape(std::move(dims));
    for (std::string option; words >> option;) {
      if (option == "reductions") p.reductions = true;
      else if (option == "inplace") p.inplace = true;
      else if (option == "targets") p.targets = true;
      else if (option == "bf16") p.dtypes.push_back(xent::dtype::bf16);
      else if (option == "f16") p.dtypes.push_back(xent::dtype::f16);
      else if (option == "f64") p.dtypes.push_back(xent::dtype::f64);
      else {
        std::string why = "unknown option '";
        why += option;
        why += "'";
        throw bad(why);
      }
    }
    if (line_set == set) plan.push_back(std::move(p));
  }
  return plan;
}

std::string to_string(mode m) {
  switch (m) {
    case mode::fwd: return "fwd";
    case mode::fwd_sum: return "fwd_sum";
    case mode::fwd_none: return "fwd_none";
    case mode::fwdbwd: return "fwdbwd";
    case mode::fwdbwd_inplace: return "fwdbwd_inplace";
  }
  return "?";
}

bool writes_grad(mode m) { return m == mode::fwdbwd || m == mode::fwdbwd_inplace; }

std::string bench_case::impl_name() const {
  return (libtorch ? std::string("libtorch") : impl->name()) + floor_suffix(target);
}

std::string bench_case::name() const {
  return impl_name() + "/" + shape.name + "/" + to_string(m) + "/t" + std::to_string(threads);
}

std::string case_shape(const std::string& name) {
  const auto it = peer_keys().find(name);
  return it == peer_keys().end() ? std::string() : it->second.shape;
}

void add_peer_ratios(const std::string& name, benchmark::UserCounters& counters) {
  const auto k = peer_keys().find(name);
  const auto rate = counters.find("items_per_second");
  if (k == peer_keys().end() || !(k->second.elements > 0.0) || rate == counters.end() ||
      !(rate->second.value > 0.0))
    return;
  const double per_call = k->second.elements / rate->second.value;
  if (!k->second.torch)
    if (auto it = torch_times().find(k->second.torch_key); it != torch_times().end())
      counters["vs_torch"] = it->second.median() / per_call;
  if (!k->second.onednn)
    if (auto it = onednn_times().find(k->second.onednn_key); it != onednn_times().end())
      counters["vs_onednn"] = it->second.median() / per_call;
}

std::vector<std::string> case_errors() {
  std::vector<std::string> v;
  for (const auto& [name, rec] : records())
    if (!rec.error.empty()) v.push_back(name + ": " + rec.error);
  return v;
}

std::vector<std::string> measured_cases() {
  std::vector<std::string> v;
  for (const auto& [name, t] : case_times()) v.push_back(name);
  return v;
}

const xent::implementation& reference_implementation() {
  const xent::implementation* r = xent::find_implementation("stable");
  return r ? *r : xent::default_implementation();
}

// Highway dispatch pinned to one target for the duration of a case (as the
// property suite pins it); 0 leaves the CPU's best.
class pinned_target {
 public:
  explicit pinned_target(std::int64_t target) : target_(target) {
    if (target_) hwy::SetSupportedTargetsForTest(target_);
  }
  ~pinned_target() {
    if (target_) hwy::SetSupportedTargetsForTest(0);
  }
  pinned_target(const pinned_target&) = delete;
  pinned_target& operator=(const pinned_target&) = delete;

 private:
  std::int64_t target_;
};

void run_case(benchmark::State& st, const bench_case& c) {
  peer_keys()[c.name()].shape = c.shape.name;  // also for a case that fails: the reporter groups by shape
  workspace& ws = workspace_for(c.shape);
  compute_floor(c.threads, c.target);  // measured unpinned (it pins itself), before any timing
  roofline(c);  // a missing bandwidth probe, unpinned: the machine's best target
  omp_set_num_threads(c.threads);
  if (!c.libtorch) {
    const pinned_target pin(c.target);
    run_xent(st, c, ws);
    return;
  }
#ifdef XENT_HAVE_TORCH
  xent::peers::libtorch::set_threads(c.threads);
  run_torch(st, c, ws);
#else
  st.SkipWithError("built without LibTorch");
#endif
}

void run_probe(benchmark::State& st, probe_kind k, int threads) {
  const std::size_t n = probe_bytes / sizeof(float);
  buffer<float>& buf = probe_buffer();
  if (buf.size() != n) {
    buf = buffer<float>(n);
    fill_normal(buf.data(), n, 1, 1.0f);
  }
  probe_pass(k, buf.data(), n, threads);  // warm (threads, TLB)
  const double bytes = probe_pass_bytes(k, n);
  double total = 0.0, best = 0.0;
  for (auto _ : st) {
    const auto t0 = clock_type::now();
    benchmark::DoNotOptimize(probe_pass(k, buf.data(), n, threads));
    const double s = seconds_since(t0);
    total += s;
    best = std::max(best, bytes / s);
  }
  st.counters["bytes_per_second"] = bytes * static_cast<double>(st.iterations()) / total;
  // The roofline is the best single pass: the machine's limit, not its
  // average under whatever else runs (a pass is tens of milliseconds).
  st.counters["best_bytes_per_second"] = best;
  record_probe(k, threads, best);
}

void run_floor_probe(benchmark::State& st, std::int64_t target, int threads) {
  if (target) hwy::SetSupportedTargetsForTest(target);
  double rate = 0.0;
  for (auto _ : st) rate = compute_floor_pass(threads, 0.3);
  if (target) hwy::SetSupportedTargetsForTest(0);
  record_floor(threads, rate, target);
  st.counters["elements_per_second"] = rate;
  st.counters["elements_per_second_per_thread"] = rate / threads;
}

std::vector<std::int64_t> floor_targets() {
  std::vector<std::int64_t> v{0};
  const auto all = hwy::SupportedAndGeneratedTargets();  // best first
  for (std::size_t i = 1; i < all.size(); ++i) v.push_back(all[i]);
  return v;
}

std::string floor_suffix(std::int64_t target) {
  if (!target) return "";
  std::string s = "_";
  for (const char* c = hwy::TargetName(target); *c; ++c) s += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
  return s;
}

double calibrate(const xent::implementation& impl, bool grad) {
  const shape_spec s = make_shape({256, 4096});
  std::vector<float> x(static_cast<std::size_t>(s.elements())), g(grad ? x.size() : 0);
  std::vector<std::int64_t> t(static_cast<std::size_t>(s.positions()));
  fill_normal(x.data(), x.size(), seed, logit_sigma);
  fill_targets(t.data(), t.size(), s.classes(), seed);
  float loss = 0.0f;
  omp_set_num_threads(1);
  auto call = [&] {
    if (grad)
      xent::cross_entropy_forward_backward(xent::view(x.data(), s.dims), xent::view(t.data(), {256}),
                                           xent::view(&loss, {}), xent::view(g.data(), s.dims), {}, nullptr,
                                           &impl);
    else
      xent::cross_entropy(xent::view(x.data(), s.dims), xent::view(t.data(), {256}), xent::view(&loss, {}),
                          {}, &impl);
  };
  try {
    call();  // warm
    double best = 0.0;
    for (int i = 0; i < 3; ++i) {  // best of 3: the machine may be shared
      const auto t0 = clock_type::now();
      call();
      best = std::max(best, static_cast<double>(s.elements()) / seconds_since(t0));
    }
    return best;
  } catch (const std::exception&) {
    return 0.0;  // the case itself will report the error
  }
}

}  // namespace xent_bench

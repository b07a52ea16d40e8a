// The cost of correct rounding: today's `stable` against the float64-only
// `stable` it replaced (its row function, copied below, on the same row
// driver), in the same process, with the fallback rates of
// xent::stable_rounding_statistics; best of N by thread CPU time, the two
// alternated (seconds() below). Not built
// by default:
//   cmake --build --preset release --target stable_rounding
//   build/release/bench/stable_rounding [repetitions [scenario substring]]
//   TARGET=SSE4 build/release/bench/stable_rounding ...   the per-target table for that target only
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <time.h>

#include "hwy/targets.h"
#include "kernels.hpp"
#include "row_driver.hpp"
#include "xent/kernel.hpp"
#include "xent/xent.hpp"

// ---- the float64 `stable` before correct rounding (commit ec60fd0) ----
namespace old_stable {
using namespace xent;
namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

struct row_stats {
  double max = 0.0;       // m
  std::int64_t argmax = 0;
  double rest = 0.0;      // Σ_{j≠k} e^{x_j - m}
  bool undefined = false; // a NaN or +inf logit, or every logit -inf: loss and gradient NaN
};

row_stats stats(const float* x, std::int64_t C, std::int64_t stride) {
  row_stats s;
  float m = -std::numeric_limits<float>::infinity();
  std::int64_t k = 0;
  for (std::int64_t j = 0; j < C; ++j) {
    const float v = x[j * stride];
    if (std::isnan(v)) {
      s.undefined = true;
      return s;
    }
    if (v > m) {
      m = v;
      k = j;
    }
  }
  if (std::isinf(m)) {  // +inf: inf - inf; -inf: every class impossible
    s.undefined = true;
    return s;
  }
  s.max = m;
  s.argmax = k;
  double rest = 0.0;
  for (std::int64_t j = 0; j < C; ++j)
    if (j != k) rest += std::exp(static_cast<double>(x[j * stride]) - s.max);
  s.rest = rest;
  return s;
}

double row(const problem& pr, std::int64_t p, float* g, double scale) {
  const std::int64_t C = pr.classes;
  const float* x = pr.logits_row(p);
  const std::int64_t xs = pr.logits_class_stride;
  const row_stats st = stats(x, C, xs);
  const std::int64_t gs = pr.grad_class_stride;
  if (st.undefined) {
    if (g)
      for (std::int64_t j = 0; j < C; ++j) g[j * gs] = static_cast<float>(nan);
    return nan;
  }
  const double m = st.max;
  const double log_sum = std::log1p(st.rest);  // lse - m
  const double sum = 1.0 + st.rest;            // Σ e^{x_j - m}
  const double eps = pr.label_smoothing;
  const double eps_c = eps / static_cast<double>(C);
  auto w = [&](std::int64_t c) { return static_cast<double>(pr.weight_at(c)); };
  auto gap = [&](std::int64_t c) { return m - static_cast<double>(x[c * xs]); };  // >= 0

  const bool index = pr.target == target_kind::index;
  const std::int64_t t = index ? pr.target_at(p) : -1;
  if (index && eps == 0.0) {
    const double wt = w(t);
    const double loss = wt * (gap(t) + log_sum);  // before g overwrites x (in-place)
    if (g) {
      // 1 - p_t as Σ_{j≠t} p_j: for t the argmax it is exactly `rest`.
      const double others = t == st.argmax ? st.rest : sum - std::exp(-gap(t));
      for (std::int64_t j = 0; j < C; ++j) {
        const double v = j == t ? -wt * (others / sum) : wt * (std::exp(-gap(j)) / sum);
        g[j * gs] = static_cast<float>(scale * v);
      }
    }
    return loss;
  }

  // Smoothed or probability targets: the loss is Σ_c b_c (lse - x_c) with
  // b_c = w_c q'_c, q' = (1-eps) q + eps/C (q one-hot at t for index targets).
  const float* q = index ? nullptr : pr.target_row(p);
  const std::int64_t qs = pr.target_class_stride;
  auto b = [&](std::int64_t c) {
    const double qc = index ? (c == t ? 1.0 : 0.0) : static_cast<double>(q[c * qs]);
    return w(c) * ((1.0 - eps) * qc + eps_c);
  };
  double loss = 0.0;
  double mass = 0.0;       // A = Σ_c b_c
  double mass_rest = 0.0;  // Σ_{c≠kb} b_c, kb the largest b: A - b_kb without cancellation
  std::int64_t kb = 0;
  for (std::int64_t c = 0; c < C; ++c) {
    const double bc = b(c);
    if (bc > b(kb)) {
      mass_rest += b(kb);
      kb = c;
    } else if (c != kb) {
      mass_rest += bc;
    }
    mass += bc;
  }
  if (index) {
    // PyTorch's form (1-eps) l + (eps/C) s, kept so that 0 * inf gives its NaN.
    double smooth = 0.0;  // Σ_c w_c (lse - x_c), each term >= 0: no cancellation
    for (std::int64_t c = 0; c < C; ++c) smooth += w(c) * (gap(c) + log_sum);
    loss = (1.0 - eps) * (w(t) * (gap(t) + log_sum)) + eps_c * smooth;
  } else {
    for (std::int64_t c = 0; c < C; ++c) loss += b(c) * gap(c);
    loss += mass * log_sum;
  }
  if (g) {
    // d l / d x_j = p_j A - b_j = p_j (A - b_j) - b_j (1 - p_j), both factors
    // without cancellation: 1 - p_j = Σ_{i≠j} e_i / S, A - b_j from mass_rest.
    // What remains is the true difference of the two terms.
    for (std::int64_t j = 0; j < C; ++j) {
      const double e_j = std::exp(-gap(j));
      const double not_j = j == st.argmax ? st.rest : sum - e_j;
      const double bj = b(j);
      const double mass_not_j = j == kb ? mass_rest : mass - bj;
      const double v = (e_j / sum) * mass_not_j - bj * (not_j / sum);
      g[j * gs] = static_cast<float>(scale * v);
    }
  }
  return loss;
}

class kernel final : public implementation {
 public:
  std::string name() const override { return "stable_f64"; }
  std::string description() const override { return "stable before correct rounding"; }
  xent::tier tier() const override { return tier::accurate; }
  std::string domain() const override { return "all inputs"; }
  void forward(const problem& p) const override { run_rows(p, false, row); }
  void forward_backward(const problem& p) const override { run_rows(p, true, row); }
};

}  // namespace
}  // namespace old_stable

namespace {

struct scenario {
  const char* name;
  std::int64_t n, c;
  bool grad, prob;
  double eps;
  xent::reduction reduce;
  double spread;  // logits ~ N(0, spread)
};

// CPU time of this thread: both kernels run on one thread, and on a shared
// machine wall time would count the other processes' share of the core.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// One call of impl on the scenario's inputs, in thread CPU seconds.
double call_once(const xent::implementation& impl, const scenario& s, const std::vector<float>& x,
                 const std::vector<std::int64_t>& t, const std::vector<float>& q) {
  static std::vector<float> out, g;
  out.resize(static_cast<std::size_t>(s.reduce == xent::reduction::none ? s.n : 1));
  g.resize(x.size());
  const xent::tensor_view xv = xent::view(x.data(), {s.n, s.c});
  const xent::tensor_view tv = s.prob ? xent::view(q.data(), {s.n, s.c}) : xent::view(t.data(), {s.n});
  const xent::tensor_view ov =
      s.reduce == xent::reduction::none ? xent::view(out.data(), {s.n}) : xent::view(out.data(), {});
  xent::options o;
  o.reduce = s.reduce;
  o.label_smoothing = s.eps;
  const double t0 = cpu_seconds();
  if (s.grad)
    xent::cross_entropy_forward_backward(xv, tv, ov, xent::view(g.data(), {s.n, s.c}), o, nullptr, &impl);
  else
    xent::cross_entropy(xv, tv, ov, o, &impl);
  return cpu_seconds() - t0;
}

// Best of reps calls of each implementation, the two alternated (a shared
// host's slow spells then hit both alike, not one of them); each timed call
// follows an untimed one of the same implementation, so that it finds its
// own data and scratch in the caches, as in a loop of calls.
std::pair<double, double> seconds(const xent::implementation& first, const xent::implementation& second,
                                  const scenario& s, const std::vector<float>& x, const std::vector<std::int64_t>& t,
                                  const std::vector<float>& q, int reps) {
  double a = std::numeric_limits<double>::infinity(), b = a;
  for (int r = 0; r < reps; ++r) {
    call_once(first, s, x, t, q);
    a = std::min(a, call_once(first, s, x, t, q));
    call_once(second, s, x, t, q);
    b = std::min(b, call_once(second, s, x, t, q));
  }
  return {a, b};
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 5;
  const std::string filter = argc > 2 ? argv[2] : "";
  const xent::implementation& now = *xent::find_implementation("stable");
  const old_stable::kernel before;
  const scenario all[] = {
      {"[4096,1000] loss mean", 4096, 1000, false, false, 0.0, xent::reduction::mean, 3.0},
      {"[4096,1000] loss+grad mean", 4096, 1000, true, false, 0.0, xent::reduction::mean, 3.0},
      {"[4096,1000] loss+grad none", 4096, 1000, true, false, 0.0, xent::reduction::none, 3.0},
      {"[64,32000] loss+grad mean", 64, 32000, true, false, 0.0, xent::reduction::mean, 3.0},
      {"[65536,10] loss+grad mean", 65536, 10, true, false, 0.0, xent::reduction::mean, 3.0},
      {"[4096,1000] eps 0.1 loss+grad", 4096, 1000, true, false, 0.1, xent::reduction::mean, 3.0},
      {"[4096,1000] prob loss+grad", 4096, 1000, true, true, 0.0, xent::reduction::mean, 3.0},
      {"[4096,1000] dominant loss+grad", 4096, 1000, true, false, 0.0, xent::reduction::none, 30.0},
      // Equal logits (spread 0): rational rows, exact zeros and ties (§5.2).
      {"[4096,1000] equal logits eps 0.1 loss+grad", 4096, 1000, true, false, 0.1, xent::reduction::mean, 0.0},
      {"[4096,100] equal logits prob loss+grad none", 4096, 100, true, true, 0.0, xent::reduction::none, 0.0},
  };
  struct inputs {
    const scenario* s;
    std::vector<float> x, q;
    std::vector<std::int64_t> t;
  };
  std::vector<inputs> runs;
  for (const scenario& s : all) {
    if (std::string(s.name).find(filter) == std::string::npos) continue;
    inputs in{&s, {}, {}, {}};
    std::mt19937_64 rng(42);
    std::normal_distribution<float> nd(0.0f, static_cast<float>(s.spread > 0.0 ? s.spread : 1.0));
    std::uniform_real_distribution<float> ud(0.0f, 1.0f);
    in.x.resize(static_cast<std::size_t>(s.n * s.c));
    for (auto& v : in.x) v = s.spread > 0.0 ? nd(rng) : 0.0f;
    in.t.resize(static_cast<std::size_t>(s.n));
    for (auto& v : in.t) v = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(s.c));
    if (s.prob) {
      in.q.resize(in.x.size());
      for (std::int64_t p = 0; p < s.n; ++p) {
        float sum = 0.0f;
        for (std::int64_t j = 0; j < s.c; ++j) sum += (in.q[p * s.c + j] = ud(rng));
        for (std::int64_t j = 0; j < s.c; ++j) in.q[p * s.c + j] /= sum;
      }
    }
    runs.push_back(std::move(in));
  }

  const std::vector<std::int64_t> all_targets = hwy::SupportedAndGeneratedTargets();  // best first
  std::vector<std::int64_t> targets;  // those of the per-target table
  for (const std::int64_t t : all_targets)
    if (!std::getenv("TARGET") || std::string(hwy::TargetName(t)) == std::getenv("TARGET")) targets.push_back(t);
  if (targets.empty()) {
    std::fprintf(stderr, "stable_rounding: this CPU has no Highway target %s\n", std::getenv("TARGET"));
    return 2;
  }
  std::printf("stable's vector path on %s (the best Highway target of this CPU)\n\n", hwy::TargetName(all_targets.front()));
  std::printf("| scenario | results | float64 test failed | left to the exact test | exact (§5) | unresolved | old stable ms | stable ms | ratio |\n");
  std::printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  double total_old = 0.0, total_new = 0.0;
  for (const inputs& in : runs) {
    const scenario& s = *in.s;
    xent::reset_stable_rounding_statistics();
    call_once(now, s, in.x, in.t, in.q);
    const xent::rounding_statistics st = xent::stable_rounding_statistics();
    const auto [a, b] = seconds(before, now, s, in.x, in.t, in.q, reps);
    total_old += a;
    total_new += b;
    const double n = static_cast<double>(std::max<std::uint64_t>(st.results, 1));
    std::printf("| %s | %llu | %.3g %% | %.3g %% | %llu | %llu | %.2f | %.2f | %.2f |\n", s.name,
                static_cast<unsigned long long>(st.results), 100.0 * static_cast<double>(st.retried) / n,
                100.0 * static_cast<double>(st.exact + st.unresolved) / n,
                static_cast<unsigned long long>(st.exact), static_cast<unsigned long long>(st.unresolved), 1e3 * a,
                1e3 * b, b / a);
  }
  std::printf("| all | | | | | | %.2f | %.2f | %.2f |\n", 1e3 * total_old, 1e3 * total_new, total_new / total_old);

  // The same ratios with stable pinned to each Highway target of this CPU
  // (what a machine whose best target that is would see; old stable is
  // scalar and measured again beside it).
  std::printf("\nstable / old stable, pinned to each target:\n\n| scenario |");
  for (const std::int64_t target : targets) std::printf(" %s |", hwy::TargetName(target));
  std::printf("\n|---|");
  for (std::size_t i = 0; i < targets.size(); ++i) std::printf("--:|");
  std::printf("\n");
  std::vector<double> old_sum(targets.size()), new_sum(targets.size());
  for (const inputs& in : runs) {
    std::printf("| %s |", in.s->name);
    for (std::size_t i = 0; i < targets.size(); ++i) {
      hwy::SetSupportedTargetsForTest(targets[i]);
      const auto [a, b] = seconds(before, now, *in.s, in.x, in.t, in.q, reps);
      old_sum[i] += a;
      new_sum[i] += b;
      std::printf(" %.2f |", b / a);
      std::fflush(stdout);
    }
    std::printf("\n");
  }
  hwy::SetSupportedTargetsForTest(0);
  std::printf("| all |");
  for (std::size_t i = 0; i < targets.size(); ++i) std::printf(" %.2f |", new_sum[i] / old_sum[i]);
  std::printf("\n");
  return 0;
}

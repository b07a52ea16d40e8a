// xent_bench: every registered implementation next to LibTorch and the
// machine's memory bandwidth, in one process (see bench/README.md).
//
//   xent_bench [--quick] [--no-torch] [--no-onednn] [--no-capped-peers] [Google Benchmark flags...]
#include <benchmark/benchmark.h>
#include <omp.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_config.hpp"
#include "capped_peers.hpp"
#include "cases.hpp"
#include "highway_dispatch.hpp"
#include "memory.hpp"
#include "xent/build_info.hpp"
#include "xent/kernel.hpp"
#include "xent/xent.hpp"
#ifdef XENT_BENCH_HAVE_ONEDNN
#include "onednn_implementation.hpp"
#endif

#ifdef XENT_HAVE_TORCH
#include "torch_implementation.hpp"
#endif
#ifdef XENT_BENCH_HAVE_HWY
#include <hwy/highway.h>
#include <hwy/targets.h>
#endif

namespace xent_bench {
namespace {

struct settings {
  bool quick = false;
  bool torch = true;
  bool onednn = true;
  // --peers-at=TARGET: this process is the child that measures the peers
  // capped at TARGET (capped_peers.hpp); null: the main run.
  const isa_cap* peers_at = nullptr;
  bool capped_peers = true;  // the main run starts that child (where it means something)
  int omp_max_threads = 1;  // at start, before any case sets its own count
  double busy_elsewhere = -1.0;
};

// Per-call time above which an implementation at under a quarter of the
// fastest one's rate (and not dispatching on Highway) is treated as slow on a
// shape: one thread, loss and fused modes only.
constexpr double slow_call_s = 0.25;
// Above this a case is not run at all (listed in the context as skipped).
constexpr double max_call_s = 20.0;

void usage() {
  std::cout << "xent_bench [--quick] [--no-torch] [--no-onednn] [--no-capped-peers] [Google Benchmark flags]\n"
               "  --quick     tiny shapes only (CI smoke, < 1 min); min time 0.1 s, 1 repetition\n"
               "  --no-torch  leave the LibTorch peer out\n"
               "  --no-onednn leave the oneDNN peer (implementation onednn) out\n"
               "  --no-capped-peers  on a CPU above AVX2, do not measure the peers again capped at AVX2\n"
               "              (by default a second process does, after this run: onednn_avx2/..., libtorch_avx2/...)\n"
               "  --peers-at=avx2    only the peers, capped at that instruction set (what that process runs)\n"
               "  default     all shapes of docs/design.md §6 (bench/shapes.txt), 3 repetitions (medians), min time 0.2 s\n"
               "  names       impl/shape/mode/tN, e.g. stable/n4096c32000/fwd/t2;\n"
               "              simd_avx2/n4096c32000/fwd/t2: pinned to a Highway target (shapes marked 'targets')\n"
               "              probe/{read,ntwrite,rmw,copy}/tN for the bandwidth probes\n"
               "  JSON        --benchmark_out=FILE --benchmark_out_format=json\n\n";
}

// list += sep + item (written out: GCC 12 warns falsely on "lit" + std::string&&).
void append(std::string& list, const std::string& item, const char* sep = ",") {
  if (!list.empty()) list += sep;
  list += item;
}

// The revision of the checked-out tree when the sources are there, else the
// one recorded at configure time.
std::string git_revision() {
  const auto r = xent::build_info::git_revision(XENT_BENCH_SOURCE_DIR);
  if (!r) return XENT_BENCH_GIT_REVISION;
  std::string rev = r->hash;
  if (r->modified) rev += "-dirty";
  return rev;
}

// CPUs kept busy by other processes over half a second (from /proc/stat
// minus this process): two-thread results mean little when this is near 1
// on a 2-core machine. Negative when unreadable.
double cpus_busy_elsewhere() {
  auto read = [](long long& busy, long long& self) {
    busy = self = -1;
    if (std::FILE* f = std::fopen("/proc/stat", "r")) {
      long long v[8] = {};
      if (std::fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3], &v[4],
                      &v[5], &v[6], &v[7]) == 8)
        busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];  // all but idle and iowait
      std::fclose(f);
    }
    if (std::FILE* f = std::fopen("/proc/self/stat", "r")) {
      char buf[1024];
      if (std::fgets(buf, sizeof buf, f)) {
        const char* p = std::strrchr(buf, ')');
        long long ut = 0, st = 0;
        // fields after the command: state ppid pgrp session tty tpgid flags
        // minflt cminflt majflt cmajflt utime stime
        if (p && std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st) == 2)
          self = ut + st;
      }
      std::fclose(f);
    }
  };
  long long b0, s0, b1, s1;
  read(b0, s0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  read(b1, s1);
  if (b0 < 0 || s0 < 0 || b1 < 0 || s1 < 0) return -1.0;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  return static_cast<double>((b1 - b0) - (s1 - s0)) / hz / 0.5;
}

void add_context(const settings& s, const std::string& skipped, const std::string& highway) {
  using benchmark::AddCustomContext;
  AddCustomContext("xent_version", XENT_BENCH_XENT_VERSION);
  AddCustomContext("git_revision", git_revision());
  AddCustomContext("compiler", xent::build_info::compiler());
  AddCustomContext("build_type", XENT_BENCH_BUILD_TYPE);
  AddCustomContext("cxx_flags", XENT_BENCH_CXX_FLAGS);
  AddCustomContext("benchmark_library", XENT_BENCH_BENCHMARK_VERSION);
  AddCustomContext("openmp", std::to_string(_OPENMP));
  AddCustomContext("omp_max_threads", std::to_string(s.omp_max_threads));
  AddCustomContext("hardware_threads", std::to_string(std::thread::hardware_concurrency()));
  AddCustomContext("set", s.quick ? "quick" : "default");
  if (s.busy_elsewhere >= 0.0) {
    char busy[32];
    std::snprintf(busy, sizeof busy, "%.2f", s.busy_elsewhere);
    AddCustomContext("cpus_busy_elsewhere_at_start", busy);
  }
  AddCustomContext("fill", "logits ~ N(0, 2) as float32, targets uniform in [0, C), seed " +
                               std::to_string(seed) + ", counter-based (thread-count independent)");
  AddCustomContext("reference", reference_implementation().name() +
                                    " (each output checked before timing; mismatch = skipped with error)");
  AddCustomContext("probe_buffer_bytes", std::to_string(probe_bytes));
  AddCustomContext("compute_floor",
                   "probe/floor/tN: max scan + value-only e^(x-m) (degree-5 polynomial, no carried error) + float "
                   "sum on a 4096-logit L1-resident row per thread, best Highway target (probe/floor_<target>/tN: "
                   "pinned); ce_roofline_fraction = items_per_second / min(roofline / bytes per element, floor at "
                   "the same thread count)");
  AddCustomContext("roofline",
                   "fwd*: N*C*4 bytes vs read probe; fwdbwd: N*C*8 bytes vs copy probe (read + NT write in one loop); "
                   "fwdbwd_inplace: N*C*8 bytes vs rmw probe; probe value = its best single pass "
                   "(best_bytes_per_second) over all repetitions");
  AddCustomContext("memory", std::string("peak_extra_bytes = max(counting operator new [+ LibTorch's CPU "
                                         "allocator, counted, for the peer], VmHWM - VmRSS") +
                                 (memory_window::rss_reset_works() ? "" : " [unavailable: no clear_refs]") +
                                 ") over a warm call, beyond caller-owned inputs and outputs "
                                 "(LibTorch's includes the gradient tensor autograd allocates; ours "
                                 "includes the per-position scratch kept between calls, released "
                                 "before the measured call)");
  std::string impls;
  for (const xent::implementation* i : xent::implementations()) {
    append(impls, i->name());
    AddCustomContext("impl." + i->name(), xent::to_string(i->tier()) + (i->supported() ? "" : " (unsupported)") +
                                              "; " + i->description());
  }
  AddCustomContext("implementations", impls);
  AddCustomContext("highway_implementations", highway.empty() ? "none" : highway);
  AddCustomContext("pinned_cases",
                   "IMPL_<target>/shape/mode/tN: IMPL pinned to that Highway target (hwy::SetSupportedTargetsForTest) "
                   "for the implementations in highway_implementations, fwd and fwdbwd with the most threads on the "
                   "shapes marked 'targets' in shapes.txt; ce_roofline_fraction against the floor on that target "
                   "(probe/floor_<target>/tN); unpinned cases run on the best target (first of hwy_cpu_targets)");
  AddCustomContext("skipped", skipped.empty() ? "none" : skipped);
#ifdef XENT_HAVE_TORCH
  AddCustomContext("libtorch", s.torch ? xent::peers::torch_version() + "; " + xent::peers::libtorch::parallel_info() : "disabled");
  // The peers pick their own instruction set (not Highway's pinning):
  // recorded, so that a pinned case's ratio says what it was compared with.
  if (s.torch) {
    const char* cap = std::getenv("ATEN_CPU_CAPABILITY");
    AddCustomContext("libtorch_isa", cap && *cap ? std::string("ATEN_CPU_CAPABILITY=") + cap
                                                 : std::string("ATen's choice, ATEN_CPU_CAPABILITY unset "
                                                               "(avx512 on a CPU with AVX-512, else avx2)"));
  }
#else
  AddCustomContext("libtorch", "not built");
#endif
#ifdef XENT_BENCH_HAVE_ONEDNN
  AddCustomContext("onednn", s.onednn ? xent::peers::onednn_version() + " (implementation onednn; vs_onednn = its median "
                                        "time / the case's, same shape, mode and threads)"
                                      : "disabled");
  if (s.onednn) AddCustomContext("onednn_isa", xent::peers::onednn_isa());
#else
  AddCustomContext("onednn", "not built");
#endif
#ifdef XENT_BENCH_HAVE_HWY
  std::string targets;
  for (std::int64_t t : hwy::SupportedAndGeneratedTargets())
    append(targets, hwy::TargetName(t));
  AddCustomContext("hwy_version", std::to_string(HWY_MAJOR) + "." + std::to_string(HWY_MINOR));
  AddCustomContext("hwy_cpu_targets", targets);  // best first
#endif
}

benchmark::TimeUnit unit_for(const shape_spec& s) {
  const auto e = s.elements();
  return e >= 1000000 ? benchmark::kMillisecond : e >= 10000 ? benchmark::kMicrosecond : benchmark::kNanosecond;
}

void add(const bench_case& c, bool slow) {
  auto* b = benchmark::RegisterBenchmark(c.name().c_str(),
                                         [c](benchmark::State& st) { run_case(st, c); });
  // Wall-clock time decides the iteration count (two threads; the machine
  // may be shared). The counters are computed from the wall clock too.
  b->Unit(unit_for(c.shape))->UseRealTime();
  if (slow) b->Iterations(1)->Repetitions(1);
}

// Google Benchmark appends "/real_time", "/iterations:1", "/repeats:1" to
// the names of benchmarks with those settings; the names stay
// impl/shape/mode/tN (parseable, the same for every case) by dropping them
// before they reach a reporter (console or JSON file alike). The runs of a
// shape are held until the next shape starts (or the end), then get their
// peer ratios (add_peer_ratios): every implementation of the shape has run.
template <class Base>
class clean_names final : public Base {
 public:
  using Base::Base;
  void ReportRuns(const std::vector<benchmark::BenchmarkReporter::Run>& runs) override {
    for (benchmark::BenchmarkReporter::Run r : runs) {
      r.run_name.time_type.clear();
      r.run_name.iterations.clear();
      r.run_name.repetitions.clear();
      r.run_name.min_time.clear();
      const std::string shape = case_shape(r.run_name.str());
      if (shape != held_shape_) flush();
      held_shape_ = shape;
      held_.push_back(std::move(r));
    }
    if (held_shape_.empty()) flush();  // probes: nothing to wait for
  }
  void Finalize() override {
    flush();
    Base::Finalize();
  }

 private:
  void flush() {
    if (held_.empty()) return;
    for (auto& r : held_)
      if (r.run_type == benchmark::BenchmarkReporter::Run::RT_Iteration || r.aggregate_name == "mean" ||
          r.aggregate_name == "median")
        add_peer_ratios(r.run_name.str(), r.counters);
    Base::ReportRuns(held_);
    held_.clear();
  }
  std::string held_shape_;
  std::vector<benchmark::BenchmarkReporter::Run> held_;
};

std::string flag_value(const std::vector<std::string>& args, const std::string& flag, std::string fallback) {
  for (const auto& a : args)
    if (a.rfind(flag + "=", 0) == 0) fallback = a.substr(flag.size() + 1);
  return fallback;
}

// A reporter for --benchmark_format / --benchmark_out_format ("console" or
// "json"); nullptr (Google Benchmark's own, names not cleaned) otherwise.
std::unique_ptr<benchmark::BenchmarkReporter> make_reporter(const std::string& format, bool display,
                                                            const std::vector<std::string>& args) {
  if (format == "json") return std::make_unique<clean_names<benchmark::JSONReporter>>();
  if (format != "console") return nullptr;
  int opts = benchmark::ConsoleReporter::OO_None;
  if (display) {
    const std::string color = flag_value(args, "--benchmark_color", "auto");
    const char* term = std::getenv("TERM");
    if (color == "true" || color == "yes" ||
        (color == "auto" && isatty(STDOUT_FILENO) && term && std::string_view(term) != "dumb"))
      opts |= benchmark::ConsoleReporter::OO_Color;
    const std::string tab = flag_value(args, "--benchmark_counters_tabular", "false");
    if (tab == "true" || tab == "1" || tab == "yes") opts |= benchmark::ConsoleReporter::OO_Tabular;
  }
  return std::make_unique<clean_names<benchmark::ConsoleReporter>>(
      static_cast<benchmark::ConsoleReporter::OutputOptions>(opts));
}

// What register_all leaves for the context: the cases left out and why, the
// implementations that dispatch on Highway.
struct registration {
  std::string skipped, highway;
};

registration register_all(const settings& s) {
  std::vector<int> threads{1};
  if (std::thread::hardware_concurrency() >= 2 || omp_get_num_procs() >= 2) threads.push_back(2);

  // The child of capped_peers.hpp: the peers alone, capped at one target
  // (named after it, its floor the floor there), on the shapes marked
  // `targets`, loss and fused, the most threads -- where the pinned cases of
  // the main run are. Its probes run on demand.
  std::int64_t cap_target = 0;
  if (s.peers_at) {
    for (std::int64_t t : floor_targets())
      if (t && floor_suffix(t) == std::string("_") + s.peers_at->target) cap_target = t;
    if (!cap_target)
      throw std::runtime_error(std::string("--peers-at=") + s.peers_at->target +
                               ": not a target of this CPU below its best one (the peers pick the best themselves)");
  }
  const bool peers_only = cap_target != 0;

  for (probe_kind k : {probe_kind::read, probe_kind::nt_write, probe_kind::rmw, probe_kind::copy})
    for (int t : threads) {
      if (peers_only) break;
      const std::string name = "probe/" + to_string(k) + "/t" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), [k, t](benchmark::State& st) { run_probe(st, k, t); })
          ->Unit(benchmark::kMillisecond);
    }
  // The compute floor per thread count: probe/floor/tN on the best Highway
  // target (the one the kernels dispatch to), probe/floor_<target>/tN pinned
  // to each other one.
  for (std::int64_t target : floor_targets())
    for (int t : threads) {
      if (peers_only) break;
      const std::string name = "probe/floor" + floor_suffix(target) + "/t" + std::to_string(t);
      benchmark::RegisterBenchmark(name.c_str(), [target, t](benchmark::State& st) { run_floor_probe(st, target, t); })
          ->Unit(benchmark::kMillisecond)
          ->Iterations(1);
    }

  const std::vector<shape_plan> plan = read_shape_list(shape_list, s.quick ? "quick" : "default");

  // Calibrate every supported implementation once (untimed, tiny).
  struct impl_plan {
    const xent::implementation* impl;
    double fwd_rate, fused_rate;  // elements/s, one thread, cache-resident
    bool highway;                 // follows a pinned Highway target
  };
  std::vector<impl_plan> impls;
  std::string skipped;
  auto note = [&](const std::string& what) { append(skipped, what, "; "); };
  // Peers (oneDNN) first: every case of ours then finds their time for
  // its vs_ counter.
  std::vector<const xent::implementation*> registered = xent::implementations();
  std::stable_partition(registered.begin(), registered.end(), [](const xent::implementation* i) { return i->peer(); });
  for (const xent::implementation* i : registered) {
    if (!i->supported()) {
      note(i->name() + " (not supported by this CPU)");
      continue;
    }
    impls.push_back({i, calibrate(*i, false), calibrate(*i, true), !i->peer() && dispatches_on_highway(*i)});
  }
  double best_fwd = 0.0, best_fused = 0.0;
  for (const impl_plan& ip : impls) {
    best_fwd = std::max(best_fwd, ip.fwd_rate);
    best_fused = std::max(best_fused, ip.fused_rate);
  }

  // Each shape in float32 with its modes, then in each other dtype it lists
  // (bf16, f16, f64): loss and fused loss + gradient, by the kernels that
  // compute it.
  std::vector<std::pair<shape_plan, bool>> typed_plan;  // (shape, float32)
  for (const shape_plan& p : plan) {
    typed_plan.push_back({p, true});
    for (xent::dtype t : p.dtypes) {
      shape_plan q;
      q.shape = with_dtype(p.shape, t);
      typed_plan.push_back({q, false});
    }
  }
  for (const auto& [p, float32] : typed_plan) {
    if (peers_only && (!float32 || !p.targets)) continue;
    std::vector<mode> modes{mode::fwd};
    if (p.reductions) modes.insert(modes.end(), {mode::fwd_sum, mode::fwd_none});
    modes.push_back(mode::fwdbwd);
    if (p.inplace) modes.push_back(mode::fwdbwd_inplace);
    if (peers_only) modes = {mode::fwd, mode::fwdbwd};
    const std::uint32_t wanted = xent::dtype_bit(p.shape.type);
#ifdef XENT_HAVE_TORCH
    // The peer first (the ratios are set once the whole shape has run);
    // LibTorch computes float32, bfloat16 and float64 (float16's log_softmax
    // is not implemented on the CPU).
    if (s.torch && p.shape.type != xent::dtype::f16)
      for (mode m : modes)
        if (m != mode::fwdbwd_inplace)
          for (int t : threads)
            if (!peers_only || t == threads.back())
              add({.libtorch = true, .shape = p.shape, .m = m, .threads = t, .target = cap_target}, false);
#endif
    // Pinned to every other Highway target (the best one is the unpinned
    // case): loss and fused modes with the most threads, on the shapes
    // marked `targets`.
    struct variant {
      const impl_plan* ip;
      std::int64_t target;
    };
    std::vector<variant> variants;
    for (const impl_plan& ip : impls)
      if (peers_only) {
        if (ip.impl->peer()) variants.push_back({&ip, cap_target});
      } else if (ip.impl->dtypes() & wanted) variants.push_back({&ip, 0});
      else if (!float32)
        note(ip.impl->name() + "/" + p.shape.name + " (computes no " + xent::to_string(p.shape.type) + " logits)");
    if (p.targets && !peers_only)
      for (const impl_plan& ip : impls)
        if (ip.highway)
          for (std::int64_t target : floor_targets())
            if (target) variants.push_back({&ip, target});
    for (const auto& [ipp, target] : variants)
      for (mode m : modes) {
        const impl_plan& ip = *ipp;
        if (target && m != mode::fwd && m != mode::fwdbwd) continue;
        const std::string what = ip.impl->name() + floor_suffix(target) + "/" + p.shape.name + "/" + to_string(m);
        const double rate = writes_grad(m) ? ip.fused_rate : ip.fwd_rate;
        const double est = rate > 0.0 ? static_cast<double>(p.shape.elements()) / rate : 0.0;
        // Slow is relative to the kernels under test, not an absolute time:
        // on a slower host the fast kernels (and the peers) are still
        // measured at every thread count on the LLM shapes; only those at
        // less than a quarter of the fastest rate are cut down. The Highway
        // kernels never are: a faster kernel joining the registry must not
        // push them off the fused two-thread LLM cases.
        const double best = writes_grad(m) ? best_fused : best_fwd;
        const bool slow = !ip.highway && est > slow_call_s && rate < 0.25 * best;
        if (est > max_call_s || (slow && (m == mode::fwd_sum || m == mode::fwd_none || m == mode::fwdbwd_inplace))) {
          char secs[32];
          std::snprintf(secs, sizeof secs, " (~%.2f s per call)", est);
          note(what + secs);
          continue;
        }
        for (int t : threads) {
          if (target && t != threads.back()) continue;  // pinned: the most threads only (the time budget)
          if (slow && t != 1) {
            // A capped peer runs only where the pinned cases do (the most threads).
            note(what + "/t" + std::to_string(t) + (peers_only ? " (slow: not measured capped)" : " (slow: one thread only)"));
            continue;
          }
          add({.impl = ip.impl, .shape = p.shape, .m = m, .threads = t, .target = target}, slow);
        }
      }
  }
  std::string highway;
  for (const impl_plan& ip : impls)
    if (ip.highway) append(highway, ip.impl->name());
  return {skipped, highway};
}

bool has_flag(const std::vector<std::string>& args, std::string_view flag) {
  for (const auto& a : args)
    if (a.rfind(flag, 0) == 0) return true;
  return false;
}

// After the main run on a CPU whose best target is above AVX2: the peers
// again, capped at AVX2, in a child process (capped_peers.hpp), where a case
// pinned to AVX2 was measured and a peer takes part. "" or what failed.
std::string measure_capped_peers(const settings& s, const std::vector<std::string>& args,
                                 const std::string& highway) {
  bool peers = false;
#ifdef XENT_HAVE_TORCH
  peers = peers || s.torch;
#endif
#ifdef XENT_BENCH_HAVE_ONEDNN
  peers = peers || s.onednn;
#endif
  if (!s.capped_peers || !peers || highway.empty()) return "";
  std::vector<std::string> impls;
  for (std::size_t b = 0, e; b < highway.size(); b = e + 1) {
    e = highway.find(',', b);
    if (e == std::string::npos) e = highway.size();
    impls.push_back(highway.substr(b, e - b));
  }
  const isa_cap& cap = *find_isa_cap("avx2");
  const std::string filter = capped_peer_filter(cap, measured_cases(), impls);
  if (filter.empty()) return "";  // nothing pinned to AVX2 ran (the CPU's best target, or filtered out)
  std::vector<std::string> pass;
  if (s.quick) pass.push_back("--quick");
  if (!s.torch) pass.push_back("--no-torch");
  if (!s.onednn) pass.push_back("--no-onednn");
  for (const char* flag : {"--benchmark_repetitions", "--benchmark_min_time", "--benchmark_display_aggregates_only",
                           "--benchmark_report_aggregates_only", "--benchmark_color"})
    for (const auto& a : args)
      if (a.rfind(std::string(flag) + "=", 0) == 0) pass.push_back(a);
  const std::string out = flag_value(args, "--benchmark_out", "");
  const bool json = !out.empty() && flag_value(args, "--benchmark_out_format", "json") == "json";
  const bool console = flag_value(args, "--benchmark_format", "console") == "console";
  if (!console && !json) return "";  // no output would show them (JSON on stdout holds this run only)
  if (console) std::cout << "\nThe peers again, capped at AVX2 (a second process; --no-capped-peers skips it):\n" << std::flush;
  return run_capped_peers(cap, filter, pass, console, json ? out : "");
}

}  // namespace
}  // namespace xent_bench

int main(int argc, char** argv) {
  using namespace xent_bench;
  settings s;
  s.omp_max_threads = omp_get_max_threads();
  std::vector<std::string> args{argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--quick") s.quick = true;
    else if (a == "--no-torch") s.torch = false;
    else if (a == "--no-onednn") s.onednn = false;
    else if (a == "--no-capped-peers") s.capped_peers = false;
    else if (a.rfind("--peers-at=", 0) == 0) {
      s.peers_at = find_isa_cap(a.substr(11));
      if (!s.peers_at) {
        std::cerr << "xent_bench: " << a << ": no cap known for that target (known: " << known_isa_caps() << ")\n";
        return 2;
      }
      // Before either peer starts: both read their cap once per process.
      apply_isa_cap(*s.peers_at);
    } else {
      if (a == "--help" || a == "-h") usage();
      args.emplace_back(a);
    }
  }
  // Defaults the command line can override.
  if (!has_flag(args, "--benchmark_repetitions"))
    args.push_back(s.quick ? "--benchmark_repetitions=1" : "--benchmark_repetitions=3");
  if (!has_flag(args, "--benchmark_min_time"))
    args.push_back(s.quick ? "--benchmark_min_time=0.1" : "--benchmark_min_time=0.2");
  if (!has_flag(args, "--benchmark_display_aggregates_only") && !has_flag(args, "--benchmark_report_aggregates_only"))
    args.push_back("--benchmark_display_aggregates_only=true");

  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  int n = static_cast<int>(cargs.size());
  cargs.push_back(nullptr);
  benchmark::Initialize(&n, cargs.data());
  if (benchmark::ReportUnrecognizedArguments(n, cargs.data())) return 1;

  s.busy_elsewhere = cpus_busy_elsewhere();
  if (s.busy_elsewhere > 0.25)
    std::cerr << "xent_bench: warning: other processes keep " << s.busy_elsewhere
              << " CPUs busy; multi-thread results will be distorted\n";
#ifdef XENT_BENCH_HAVE_ONEDNN
  if (s.onednn) xent::peers::register_onednn();
#endif
  registration r;
  try {
    r = register_all(s);
  } catch (const std::exception& e) {
    std::cerr << "xent_bench: " << e.what() << "\n";
    return 2;
  }
  add_context(s, r.skipped, r.highway);
  auto display = make_reporter(flag_value(args, "--benchmark_format", "console"), true, args);
  std::unique_ptr<benchmark::BenchmarkReporter> file;
  if (!flag_value(args, "--benchmark_out", "").empty())
    file = make_reporter(flag_value(args, "--benchmark_out_format", "json"), false, args);
  if (display && (file || flag_value(args, "--benchmark_out", "").empty()))
    benchmark::RunSpecifiedBenchmarks(display.get(), file.get());
  else
    benchmark::RunSpecifiedBenchmarks();  // csv: Google Benchmark's reporters
  benchmark::Shutdown();
  // Everything was measured and written; a case that could not be (wrong
  // answer, error) still fails the run, so CI sees it.
  const auto errors = case_errors();
  for (const auto& e : errors) std::cerr << "xent_bench: FAILED " << e << "\n";
  const std::string capped = s.peers_at ? "" : measure_capped_peers(s, args, r.highway);
  if (!capped.empty()) std::cerr << "xent_bench: FAILED " << capped << "\n";
  return errors.empty() && capped.empty() ? 0 : 1;
}

// Benchmark results for `xent report`: runs bench/xent_bench (or reads the
// JSON of an earlier run) and extracts what the report shows: GB/s, the
// fraction of the bandwidth probe, the ratio to LibTorch, thread scaling.
// Names are bench/README.md's impl/shape/mode/tN; a case pinned to a Highway
// target names it after the implementation (simd_avx2/...).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace xent::reports {

struct bench_point {
  std::string impl, shape, mode;  // "simd", "n4096c32000", "fwd"; "simd_avx2" when pinned
  std::string kernel;             // the implementation without a target suffix: "simd"
  std::string target;             // the Highway target it ran on ("AVX2"); empty: it does not dispatch on Highway
  bool pinned = false;            // run pinned to a target other than the CPU's best
  bool capped = false;            // a peer capped at `target` ("onednn_avx2": xent_bench's capped peers)
  int threads = 1;
  std::int64_t classes = 0, elements = 0;
  double bytes_per_second = 0.0;
  double roofline_fraction = 0.0, ce_roofline_fraction = 0.0, vs_torch = 0.0, vs_onednn = 0.0,
         vs_t1 = 0.0;  // NaN when absent
  double peak_extra_bytes = 0.0, extra_per_nxc = 0.0;  // NaN when absent
};

struct bench_data {
  bool available = false;
  std::string source;  // the JSON file read
  std::string note;    // why not available, or warnings (failed cases)
  std::vector<bench_point> points;  // medians where there are repetitions
  std::map<int, double> probe_read;  // bytes/s by thread count
  nlohmann::ordered_json context;    // the JSON's context block
  std::vector<std::string> targets;  // the CPU's Highway targets, best first (context hwy_cpu_targets)
  std::vector<std::string> highway_impls;  // implementations that dispatch on Highway (measured per target)

  // The point for (impl, shape, mode, threads), or nullptr.
  const bench_point* find(const std::string& impl, const std::string& shape, const std::string& mode,
                          int threads) const;
  int max_threads() const;
  // p's speed-up over `peer` ("libtorch" or "onednn"; 1 for the peer itself):
  // for a case pinned below the best target, over that peer capped at the
  // same target when the run measured it (same shape, mode and threads),
  // else the bench's own ratio (the peer at its own choice). NaN: absent.
  double vs_peer(const bench_point& p, const std::string& peer) const;
  // Whether vs_peer compares p with a peer capped at p's target.
  bool capped_peer_for(const bench_point& p, const std::string& peer) const;
  // The headline shape: n4096c32000 when measured, else the largest fwd shape.
  std::string headline_shape() const;
};

// Parses a Google Benchmark JSON file written by xent_bench.
bench_data read_bench(const std::string& json_path);

// Runs `binary [--quick] --benchmark_out=json_path` (console output to
// log_path) and reads the result; unavailable with a note when the binary is
// missing or writes nothing.
bench_data run_bench(const std::string& binary, bool quick, const std::string& json_path,
                     const std::string& log_path, bool progress);

// bench/xent_bench next to this executable's directory (build/release/cli/xent
// -> build/release/bench/xent_bench).
std::string default_bench_binary();

}  // namespace xent::reports

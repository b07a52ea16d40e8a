// GCC 12 warns falsely (-Wrestrict) on "literal" + std::string concatenations.
#pragma GCC diagnostic ignored "-Wrestrict"
#include "report_bench.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>

#include "inputs.hpp"

namespace xent::reports {

using cli::input_error;

namespace {

namespace fs = std::filesystem;
constexpr double absent = std::numeric_limits<double>::quiet_NaN();

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep) out.emplace_back();
    else out.back().push_back(c);
  }
  return out;
}

// "n4096c32000" -> (C, N*C); "n8c21h256w256" -> (21, 8*21*256*256); a
// dtype suffix ("n4096c32000_bf16") is not part of the extents.
std::pair<std::int64_t, std::int64_t> parse_shape(const std::string& name) {
  const std::string s = name.substr(0, name.find('_'));
  std::int64_t classes = 0, elements = 1;
  for (std::size_t i = 0; i < s.size();) {
    const char key = s[i++];
    std::size_t j = i;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j == i) return {0, 0};
    const std::int64_t v = std::stoll(s.substr(i, j - i));
    if (key == 'c') classes = v;
    elements *= v;
    i = j;
  }
  return {classes, elements};
}

// A context entry as a list ("a,b,c"); empty for "none" or when absent.
std::vector<std::string> context_list_of(const nlohmann::ordered_json& ctx, const char* key) {
  const auto it = ctx.find(key);
  if (it == ctx.end() || !it->is_string() || it->get<std::string>().empty() || it->get<std::string>() == "none")
    return {};
  return split(it->get<std::string>(), ',');
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The kernel and Highway target of a case from its implementation name: a
// Highway implementation runs on the best target, IMPL_<target> pinned to
// that one; anything else on none.
void set_target(bench_point& p, const bench_data& d) {
  p.kernel = p.impl;
  if (d.targets.empty()) return;
  for (const std::string& h : d.highway_impls) {
    if (p.impl == h) {
      p.target = d.targets.front();
      return;
    }
    for (std::size_t i = 1; i < d.targets.size(); ++i)
      if (p.impl == h + "_" + lower(d.targets[i])) {
        p.kernel = h;
        p.target = d.targets[i];
        p.pinned = true;
        return;
      }
  }
  // A peer capped at a target below the best (xent_bench --peers-at).
  for (const char* peer : {"libtorch", "onednn"})
    for (std::size_t i = 1; i < d.targets.size(); ++i)
      if (p.impl == peer + ("_" + lower(d.targets[i]))) {
        p.kernel = peer;
        p.target = d.targets[i];
        p.pinned = p.capped = true;
        return;
      }
}

const bench_point* capped_point(const bench_data& d, const bench_point& p, const std::string& peer) {
  if (!p.pinned || p.capped || p.kernel == peer) return nullptr;
  return d.find(peer + "_" + lower(p.target), p.shape, p.mode, p.threads);
}

double number(const nlohmann::json& b, const char* key) {
  auto it = b.find(key);
  return it != b.end() && it->is_number() ? it->get<double>() : absent;
}

}  // namespace

const bench_point* bench_data::find(const std::string& impl, const std::string& shape, const std::string& mode,
                                    int threads) const {
  for (const auto& p : points)
    if (p.impl == impl && p.shape == shape && p.mode == mode && p.threads == threads) return &p;
  return nullptr;
}

bool bench_data::capped_peer_for(const bench_point& p, const std::string& peer) const {
  return capped_point(*this, p, peer) != nullptr;
}

double bench_data::vs_peer(const bench_point& p, const std::string& peer) const {
  if (p.kernel == peer) return 1.0;
  if (const bench_point* q = capped_point(*this, p, peer)) return p.bytes_per_second / q->bytes_per_second;
  return peer == "libtorch" ? p.vs_torch : p.vs_onednn;
}

int bench_data::max_threads() const {
  int t = 1;
  for (const auto& p : points) t = std::max(t, p.threads);
  return t;
}

std::string bench_data::headline_shape() const {
  std::string best;
  std::int64_t most = -1;
  for (const auto& p : points) {
    if (p.shape == "n4096c32000" && p.mode == "fwd") return p.shape;
    if (p.mode == "fwd" && p.elements > most) {
      most = p.elements;
      best = p.shape;
    }
  }
  return best;
}

bench_data read_bench(const std::string& path) {
  bench_data d;
  d.source = path;
  std::ifstream f(path);
  if (!f) throw input_error(path + ": cannot open the benchmark JSON");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw input_error(path + ": not a benchmark JSON: " + e.what());
  }
  if (!j.contains("benchmarks") || !j["benchmarks"].is_array())
    throw input_error(path + ": not a Google Benchmark JSON (no \"benchmarks\" array)");
  if (j.contains("context")) d.context = j["context"];
  d.targets = context_list_of(d.context, "hwy_cpu_targets");
  d.highway_impls = context_list_of(d.context, "highway_implementations");

  // Median aggregates where there are repetitions, else the single run (or
  // the median of the runs).
  std::map<std::string, std::vector<nlohmann::json>> runs;
  std::map<std::string, nlohmann::json> medians;
  std::vector<std::string> order;
  for (const auto& b : j["benchmarks"]) {
    const std::string name = b.value("run_name", b.value("name", ""));
    if (!runs.count(name) && !medians.count(name)) order.push_back(name);
    if (b.value("run_type", "") == "aggregate") {
      if (b.value("aggregate_name", "") == "median") medians[name] = b;
    } else if (!b.contains("error_occurred") || !b["error_occurred"].get<bool>()) {
      runs[name].push_back(b);
    }
  }
  for (const std::string& name : order) {
    nlohmann::json b;
    if (medians.count(name)) b = medians[name];
    else if (!runs[name].empty()) {
      auto& v = runs[name];
      std::sort(v.begin(), v.end(), [](const auto& x, const auto& y) {
        return x.value("bytes_per_second", 0.0) < y.value("bytes_per_second", 0.0);
      });
      b = v[v.size() / 2];
    } else {
      continue;
    }
    const auto parts = split(name, '/');
    if (parts.size() == 3 && parts[0] == "probe" && parts[1] == "read" && parts[2].size() > 1) {
      double best = number(b, "best_bytes_per_second");
      if (std::isnan(best)) best = number(b, "bytes_per_second");
      d.probe_read[std::atoi(parts[2].c_str() + 1)] = best;
      continue;
    }
    if (parts.size() != 4 || parts[3].size() < 2 || parts[3][0] != 't') continue;
    bench_point p;
    p.impl = parts[0];
    p.shape = parts[1];
    p.mode = parts[2];
    p.threads = std::atoi(parts[3].c_str() + 1);
    std::tie(p.classes, p.elements) = parse_shape(p.shape);
    p.bytes_per_second = number(b, "bytes_per_second");
    p.roofline_fraction = number(b, "roofline_fraction");
    p.ce_roofline_fraction = number(b, "ce_roofline_fraction");
    p.vs_torch = number(b, "vs_torch");
    p.vs_onednn = number(b, "vs_onednn");
    p.vs_t1 = number(b, "vs_t1");
    p.peak_extra_bytes = number(b, "peak_extra_bytes");
    p.extra_per_nxc = number(b, "extra_per_NxC");
    set_target(p, d);
    if (!std::isnan(p.bytes_per_second)) d.points.push_back(p);
  }
  d.available = !d.points.empty();
  if (!d.available) d.note = path + " holds no xent_bench results";
  return d;
}

std::string default_bench_binary() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "bench/xent_bench";
  return (self.parent_path().parent_path() / "bench" / "xent_bench").string();
}

bench_data run_bench(const std::string& binary, bool quick, const std::string& json_path,
                     const std::string& log_path, bool progress) {
  bench_data d;
  if (::access(binary.c_str(), X_OK) != 0) {
    d.note = "benchmark binary " + binary + " not found (build the xent_bench target, or pass --bench-json FILE)";
    return d;
  }
  std::error_code ec;
  fs::remove(json_path, ec);
  const std::string cmd = "'" + binary + "'" + (quick ? " --quick" : "") + " --benchmark_out='" + json_path +
                          "' --benchmark_out_format=json >'" + log_path + "' 2>&1";
  if (progress)
    std::cerr << "report: benchmarks (" << fs::path(binary).filename().string() << (quick ? " --quick" : "")
              << ", log in " << log_path << ") ..." << std::flush;
  const int status = std::system(cmd.c_str());
  if (progress) std::cerr << " done\n";
  if (!fs::exists(json_path)) {
    d.note = "the benchmark wrote no JSON (exit status " + std::to_string(status) + "; see " + log_path + ")";
    return d;
  }
  d = read_bench(json_path);
  if (status != 0)
    d.note = "xent_bench exited with status " + std::to_string(status) +
             " (a case failed its output check or errored; see " + log_path + ")";
  return d;
}

}  // namespace xent::reports

// GCC 12 warns falsely (-Wrestrict) on "literal" + std::string concatenations.
#pragma GCC diagnostic ignored "-Wrestrict"
#include "report_context.hpp"

#include <sys/utsname.h>

#include <CLI/Version.hpp>
#include <boost/version.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <hwy/highway.h>
#include <hwy/targets.h>
#include <map>
#include <mpfr.h>
#include <thread>

#include "xent/build_info.hpp"
#include "xent/reference.hpp"

namespace xent::reports {
namespace {

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

// First value of each key in /proc/cpuinfo.
std::map<std::string, std::string> cpuinfo() {
  std::map<std::string, std::string> m;
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string k = line.substr(0, colon);
    while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.pop_back();
    std::string v = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    m.emplace(k, v);
  }
  return m;
}

std::string isa(const std::string& flags) {
  std::string out;
  for (const char* f : {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile"})
    if ((" " + flags + " ").find(std::string(" ") + f + " ") != std::string::npos) out += (out.empty() ? "" : " ") + std::string(f);
  return out;
}

std::string caches() {
  namespace fs = std::filesystem;
  std::string out;
  for (int i = 0; i < 8; ++i) {
    const std::string d = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i);
    if (!fs::exists(d)) break;
    const std::string type = read_line(d + "/type");
    out += (out.empty() ? "" : ", ") + std::string("L") + read_line(d + "/level") +
           (type == "Data" ? "d" : type == "Instruction" ? "i" : "") + " " + read_line(d + "/size");
    const std::string shared = read_line(d + "/shared_cpu_list");
    if (!shared.empty() && shared.find_first_of(",-") != std::string::npos) out += " (shared " + shared + ")";
  }
  return out.empty() ? "unknown" : out;
}

std::string hwy_targets() {
  std::string out;
  for (std::int64_t t : hwy::SupportedAndGeneratedTargets()) out += (out.empty() ? "" : ", ") + std::string(hwy::TargetName(t));
  return out + " (best first)";
}

std::string git_revision() {
  const auto r = build_info::git_revision(XENT_SOURCE_DIR);
  if (!r) return "unknown";
  std::string rev = r->hash;
  if (r->modified) rev += " (modified)";
  return rev;
}

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

}  // namespace

context_list report_context(const nlohmann::ordered_json& bench) {
  auto ci = cpuinfo();
  context_list c;
  c.emplace_back("date", utc_now());
  c.emplace_back("git revision", git_revision());
  c.emplace_back("CPU", ci.count("model name") ? ci["model name"] : "unknown");
  c.emplace_back("ISA", isa(ci["flags"]));
  c.emplace_back("Highway targets", hwy_targets());
  c.emplace_back("hardware threads", std::to_string(std::thread::hardware_concurrency()) +
                                         (ci.count("cpu cores") ? " (" + ci["cpu cores"] + " cores per socket)" : ""));
  c.emplace_back("caches", caches());
  utsname u{};
  if (::uname(&u) == 0) c.emplace_back("kernel", std::string(u.sysname) + " " + u.release + " " + u.machine);
  c.emplace_back("compiler", build_info::compiler());
  c.emplace_back("reference", "MPFR " + std::string(MPFR_VERSION_STRING) + " via Boost " +
                                  std::to_string(BOOST_VERSION / 100000) + "." +
                                  std::to_string(BOOST_VERSION / 100 % 1000) + ", " +
                                  std::to_string(ref::default_precision_bits) + " bits");
  c.emplace_back("Highway", std::to_string(HWY_MAJOR) + "." + std::to_string(HWY_MINOR) + "." +
                                std::to_string(HWY_PATCH));
  c.emplace_back("CLI11, nlohmann_json", std::string(CLI11_VERSION) + ", " +
                                             std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                                             std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
                                             std::to_string(NLOHMANN_JSON_VERSION_PATCH));
  if (bench.is_object()) {
    for (const char* k : {"libtorch", "benchmark_library", "cxx_flags", "cpus_busy_elsewhere_at_start", "set"})
      if (bench.contains(k) && bench[k].is_string()) c.emplace_back(std::string("bench ") + k, bench[k].get<std::string>());
  }
  return c;
}

}  // namespace xent::reports

#include "capped_peers.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

extern char** environ;

namespace xent_bench {
namespace {

constexpr isa_cap caps[] = {
    {"avx2", "AVX2", "avx2"},  // oneDNN's AVX2 kernels, ATen's avx2 build of its own
};

std::string join(const std::set<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : "|") + i;
  return s;
}

nlohmann::ordered_json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  return nlohmann::ordered_json::parse(f);
}

// Appends the child's results to the main run's JSON, and says in its
// context what they are.
void merge(const isa_cap& cap, const std::string& main_path, const std::string& child_path) {
  nlohmann::ordered_json main = read_json(main_path);
  const nlohmann::ordered_json child = read_json(child_path);
  auto& ctx = main["context"];
  const auto& cctx = child.at("context");
  std::string what = std::string("onednn_") + cap.target + "/..., libtorch_" + cap.target +
                     "/...: the peers capped at " + cap.onednn + " (ONEDNN_MAX_CPU_ISA=" + cap.onednn +
                     ", ATEN_CPU_CAPABILITY=" + cap.aten + ") in a second process (xent_bench --peers-at=" +
                     cap.target + ") run after this one, on the shapes and modes of the cases pinned to " +
                     cap.target + "; their probes and compute floor measured there";
  if (cctx.contains("onednn_isa")) what += "; oneDNN there: " + cctx["onednn_isa"].get<std::string>();
  if (cctx.contains("libtorch_isa")) what += "; LibTorch there: " + cctx["libtorch_isa"].get<std::string>();
  ctx[std::string("peers_at_") + cap.target] = what;
  if (cctx.contains("skipped"))
    ctx[std::string("peers_at_") + cap.target + "_skipped"] = cctx["skipped"];
  for (const auto& b : child.at("benchmarks")) main["benchmarks"].push_back(b);
  const std::string tmp = main_path + ".merging";
  {
    std::ofstream out(tmp);
    out << main.dump(2) << "\n";
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, main_path);
}

}  // namespace

const isa_cap* find_isa_cap(std::string_view target) {
  for (const isa_cap& c : caps)
    if (target == c.target) return &c;
  return nullptr;
}

std::string known_isa_caps() {
  std::string s;
  for (const isa_cap& c : caps) s += (s.empty() ? "" : ", ") + std::string(c.target);
  return s;
}

void apply_isa_cap(const isa_cap& cap) {
  ::setenv("ONEDNN_MAX_CPU_ISA", cap.onednn, 1);
  ::setenv("ATEN_CPU_CAPABILITY", cap.aten, 1);
}

std::string capped_peer_filter(const isa_cap& cap, const std::vector<std::string>& measured,
                               const std::vector<std::string>& highway_impls) {
  std::set<std::string> shapes, modes;
  for (const std::string& name : measured) {  // impl/shape/mode/tN
    const auto a = name.find('/'), b = name.find('/', a + 1), c = b == std::string::npos ? b : name.find('/', b + 1);
    if (c == std::string::npos) continue;
    for (const std::string& h : highway_impls)
      if (name.compare(0, a, h + "_" + cap.target) == 0) {
        shapes.insert(name.substr(a + 1, b - a - 1));
        modes.insert(name.substr(b + 1, c - b - 1));
      }
  }
  if (shapes.empty()) return "";
  return std::string("^(onednn|libtorch)_") + cap.target + "/(" + join(shapes) + ")/(" + join(modes) + ")/t";
}

std::string run_capped_peers(const isa_cap& cap, const std::string& filter, const std::vector<std::string>& pass,
                             bool console, const std::string& json_out) {
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) return "cannot find this executable (/proc/self/exe): " + ec.message();
  const std::string child_json = json_out.empty() ? "" : json_out + "." + cap.target + ".json";
  std::vector<std::string> args{self, std::string("--peers-at=") + cap.target, "--benchmark_filter=" + filter,
                                "--benchmark_format=console"};
  args.insert(args.end(), pass.begin(), pass.end());
  if (!child_json.empty()) {
    args.push_back("--benchmark_out=" + child_json);
    args.push_back("--benchmark_out_format=json");
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!console) posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return "cannot start " + self + " --peers-at=" + cap.target;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string problem;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    problem = std::string("the run with the peers capped at ") + cap.target +
              (WIFEXITED(status) ? " exited with status " + std::to_string(WEXITSTATUS(status))
                                 : " was killed by signal " + std::to_string(WTERMSIG(status)));
  if (!child_json.empty() && std::filesystem::exists(child_json)) {
    try {
      merge(cap, json_out, child_json);
    } catch (const std::exception& e) {
      problem += (problem.empty() ? "" : "; ") + std::string("merging ") + child_json + ": " + e.what();
    }
    std::filesystem::remove(child_json, ec);
  } else if (!child_json.empty() && problem.empty()) {
    problem = "the run with the peers capped at " + std::string(cap.target) + " wrote no JSON";
  }
  return problem;
}

}  // namespace xent_bench

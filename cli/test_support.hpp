// Shared by the tests that run the `xent` binary: a scratch directory per
// test process and a runner that captures stdout, stderr and the exit status.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace xent::cli_test {

struct run_result {
  int status = -1;
  std::string out, err;
};

// A fresh directory under the system temp dir, named after the test binary and
// the process (ctest runs tests in parallel processes).
inline std::filesystem::path scratch_dir(const std::string& prefix) {
  namespace fs = std::filesystem;
  const fs::path p = fs::temp_directory_path() / (prefix + "_" + std::to_string(::getpid()));
  fs::create_directories(p);
  return p;
}

// Runs `xent ARGS` (XENT_CLI_PATH); stderr goes through a file in `dir`.
inline run_result run_xent(const std::string& args, const std::filesystem::path& dir) {
  const std::string err = (dir / "stderr.txt").string();
  const std::string cmd = std::string(XENT_CLI_PATH) + " " + args + " 2>" + err;
  run_result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err);
  std::stringstream s;
  s << e.rdbuf();
  r.err = s.str();
  return r;
}

}  // namespace xent::cli_test

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
#include <utility>
#include <vector>
#include <cstdint>

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

// Runs `ENV xent ARGS` (XENT_CLI_PATH; env: "NAME=value " assignments or
// empty); stderr goes through a file in `dir`.
inline run_result run_xent_env(const std::string& env, const std::string& args, const std::filesystem::path& dir) {
  const std::string err = (dir / "stderr.txt").string();
  const std::string cmd = env + std::string(XENT_CLI_PATH) + " " + args + " 2>" + err;
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

inline run_result run_xent(const std::string& args, const std::filesystem::path& dir) {
  return run_xent_env("", args, dir);
}

// A zip archive of uncompressed members, as np.savez writes (.npz).
inline std::vector<unsigned char> zip_stored(
    const std::vector<std::pair<std::string, std::vector<unsigned char>>>& members) {
  auto crc32 = [](const std::vector<unsigned char>& d) {
    std::uint32_t c = 0xffffffffu;
    for (unsigned char b : d) {
      c ^= b;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
  };
  std::vector<unsigned char> out, dir;
  auto put = [](std::vector<unsigned char>& v, std::uint64_t x, int n) {
    for (int i = 0; i < n; ++i) v.push_back(static_cast<unsigned char>(x >> (8 * i)));
  };
  for (const auto& [name, data] : members) {
    const std::uint32_t crc = crc32(data), offset = static_cast<std::uint32_t>(out.size());
    const auto size = static_cast<std::uint32_t>(data.size());
    put(out, 0x04034b50, 4);
    put(out, 20, 2), put(out, 0, 2), put(out, 0, 2), put(out, 0, 2), put(out, 0, 2);
    put(out, crc, 4), put(out, size, 4), put(out, size, 4);
    put(out, name.size(), 2), put(out, 0, 2);
    out.insert(out.end(), name.begin(), name.end());
    out.insert(out.end(), data.begin(), data.end());
    put(dir, 0x02014b50, 4);
    put(dir, 20, 2), put(dir, 20, 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 2);
    put(dir, crc, 4), put(dir, size, 4), put(dir, size, 4);
    put(dir, name.size(), 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 4);
    put(dir, offset, 4);
    dir.insert(dir.end(), name.begin(), name.end());
  }
  const auto dir_offset = static_cast<std::uint32_t>(out.size());
  out.insert(out.end(), dir.begin(), dir.end());
  put(out, 0x06054b50, 4);
  put(out, 0, 2), put(out, 0, 2), put(out, members.size(), 2), put(out, members.size(), 2);
  put(out, dir.size(), 4), put(out, dir_offset, 4), put(out, 0, 2);
  return out;
}

}  // namespace xent::cli_test

#include "xent/build_info.hpp"

#include <cstdio>

namespace xent::build_info {
namespace {

// The command's standard output without trailing newlines; empty when it
// cannot be run.
std::string run_command(const std::string& cmd) {
  std::string out;
  if (std::FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace

std::optional<revision> git_revision(const std::string& source_dir) {
  std::string git = "git -C '";
  git += source_dir;
  git += "' ";
  revision r;
  r.hash = run_command(git + "rev-parse --short HEAD 2>/dev/null");
  if (r.hash.empty()) return std::nullopt;
  r.modified = !run_command(git + "status --porcelain --untracked-files=no 2>/dev/null").empty();
  return r;
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace xent::build_info

// Build facts for the benchmark's and the report's context blocks.
#pragma once

#include <optional>
#include <string>

namespace xent::build_info {

struct revision {
  std::string hash;       // short commit hash
  bool modified = false;  // tracked files differ from the commit
};

// The revision checked out at source_dir, asked of git at run time;
// nullopt when git or the sources are not there.
std::optional<revision> git_revision(const std::string& source_dir);

// Compiler name and version, e.g. "gcc 12.2.0".
std::string compiler();

}  // namespace xent::build_info

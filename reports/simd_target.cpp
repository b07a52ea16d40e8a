#include "simd_target.hpp"

#include <hwy/targets.h>

#include <cctype>
#include <cstdint>

#include "inputs.hpp"

namespace xent::reports {

using cli::input_error;

namespace {

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::vector<std::string> simd_targets() {
  std::vector<std::string> out;
  for (const std::int64_t t : hwy::SupportedAndGeneratedTargets()) out.emplace_back(hwy::TargetName(t));
  return out;
}

void pin_simd_target(const std::string& name) {
  std::string known;
  for (const std::int64_t t : hwy::SupportedAndGeneratedTargets()) {
    const std::string n = hwy::TargetName(t);
    if (upper(name) == n) {
      hwy::SetSupportedTargetsForTest(t);
      return;
    }
    known += (known.empty() ? "" : ", ");
    known += n;
  }
  throw input_error("--simd-target: '" + name + "' is not a Highway target this CPU supports (supported here: " +
                    known + ")");
}

}  // namespace xent::reports

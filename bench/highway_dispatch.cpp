#include "highway_dispatch.hpp"

#include <hwy/targets.h>

#include <cstdint>
#include <exception>
#include <vector>

#include "xent/xent.hpp"

namespace xent_bench {

bool dispatches_on_highway(const xent::implementation& impl) {
  const auto targets = hwy::SupportedAndGeneratedTargets();  // best first
  if (targets.size() < 2) return false;
  constexpr std::int64_t rows = 4, classes = 256;
  std::vector<float> x(static_cast<std::size_t>(rows * classes));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 37) * 0.25f - 4.0f;
  std::vector<std::int64_t> t{0, 5, 77, 255};
  float loss = 0.0f;
  // Pinning to the best target changes no result; it leaves the chosen
  // target uninitialised until the next dynamic dispatch.
  hwy::SetSupportedTargetsForTest(targets.front());
  hwy::GetChosenTarget().DeInit();
  bool dispatched = false;
  try {
    xent::cross_entropy(xent::view(x.data(), {rows, classes}), xent::view(t.data(), {rows}), xent::view(&loss, {}),
                        {}, &impl);
    dispatched = hwy::GetChosenTarget().IsInitialized();
  } catch (const std::exception&) {
    // Not measured per target; the bench's own cases report the error.
  }
  hwy::SetSupportedTargetsForTest(0);
  return dispatched;
}

}  // namespace xent_bench

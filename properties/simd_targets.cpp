// The `simd` and `throughput` kernels pinned to each other Highway target this
// CPU supports (AVX2, SSE4, ... when AVX-512 is the best; the best one is the
// plain kernel), registered in the property suite only, so that every
// property runs on every instruction set: simd_avx2, throughput_sse4, ... in
// the test names.
#include <cctype>
#include <memory>
#include <string>

#include "hwy/targets.h"
#include "xent/kernel.hpp"
#include "xent/xent.hpp"

namespace {

// Forces dispatch to one target for the duration of a call.
struct pinned {
  explicit pinned(std::int64_t target) { hwy::SetSupportedTargetsForTest(target); }
  ~pinned() { hwy::SetSupportedTargetsForTest(0); }
  pinned(const pinned&) = delete;
  pinned& operator=(const pinned&) = delete;
};

class simd_on_target final : public xent::implementation {
 public:
  simd_on_target(const xent::implementation& simd, std::int64_t target) : simd_(simd), target_(target) {
    name_ = simd.name() + "_";
    for (const char* c = hwy::TargetName(target); *c; ++c)
      name_ += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
  }
  std::string name() const override { return name_; }
  std::string description() const override {
    const pinned p(target_);
    return simd_.description() + " (pinned)";
  }
  xent::tier tier() const override { return simd_.tier(); }
  std::string domain() const override { return simd_.domain(); }
  std::optional<std::string> outside_domain(const xent::problem& p) const override {
    return simd_.outside_domain(p);
  }
  bool thread_count_independent() const override { return simd_.thread_count_independent(); }
  bool layout_independent() const override { return simd_.layout_independent(); }
  std::uint32_t dtypes() const override { return simd_.dtypes(); }
  void forward(const xent::problem& p) const override {
    const pinned pin(target_);
    simd_.forward(p);
  }
  void forward_backward(const xent::problem& p) const override {
    const pinned pin(target_);
    simd_.forward_backward(p);
  }

 private:
  const xent::implementation& simd_;
  std::int64_t target_;
  std::string name_;
};

const bool registered = [] {
  const auto targets = hwy::SupportedAndGeneratedTargets();  // best first
  for (const char* kernel : {"simd", "throughput"}) {
    const xent::implementation* impl = xent::find_implementation(kernel);
    if (!impl) return false;
    for (std::size_t i = 1; i < targets.size(); ++i)
      xent::register_implementation(std::make_unique<simd_on_target>(*impl, targets[i]));
  }
  return true;
}();

}  // namespace

// Which implementations follow a pinned Highway target, found by calling
// them rather than listed: the bench measures those on every target.
#pragma once

#include "xent/kernel/implementation.hpp"

namespace xent_bench {

// After hwy::SetSupportedTargetsForTest, Highway's chosen target stays
// uninitialised until some HWY_DYNAMIC_DISPATCH runs (the check Highway's own
// per-target tests make): true when one call of `impl` on a small problem
// dispatched. Such an implementation follows a pinned target; scalar kernels
// and peers do not. False when the CPU has a single target (nothing to pin)
// or the call throws.
bool dispatches_on_highway(const xent::implementation& impl);

}  // namespace xent_bench

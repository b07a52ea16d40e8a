// Pinning Highway dispatch to one target for the rest of the process, so that
// the accuracy of simd and openmp can be measured (and gated) per instruction
// set on a CPU that has several: AVX2, SSE4, ... on an AVX-512 host.
#pragma once

#include <string>
#include <vector>

namespace xent::reports {

// The Highway targets this CPU supports and this build generated, best first
// (Highway's names: AVX3, AVX2, SSE4, ...).
std::vector<std::string> simd_targets();

// `name` as Highway spells it (case-insensitive): AVX3, AVX2, SSE4, SSSE3,
// EMU128 or SCALAR. Throws input_error naming the targets this CPU supports
// (and this build generated) when it is not one of them.
void pin_simd_target(const std::string& name);

}  // namespace xent::reports

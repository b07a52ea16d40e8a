// LibTorch's cross_entropy as an external implementation under test ("torch",
// tier standard). No torch type crosses this header: only
// torch_implementation.cpp pays LibTorch's compile time.
#pragma once

#include <string>

namespace xent::peers {

// Adds "torch" to the registry (idempotent). Available only when the
// xent::torch_peer target exists (XENT_WITH_TORCH=ON and LibTorch found).
void register_torch();

// "1.13.1"
std::string torch_version();

}  // namespace xent::peers

// Registers LibTorch's implementation before main() in binaries that link
// this object (the property test's instantiation reads the registry after
// static initialisation).
#include "torch_implementation.hpp"

namespace {
[[maybe_unused]] const bool registered = (xent::peers::register_torch(), true);
}  // namespace

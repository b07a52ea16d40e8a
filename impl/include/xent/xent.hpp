// Umbrella header: the user API (tensors, options, errors, the loss). The
// kernel interface (problem, the implementations and their registry,
// capabilities, the plug-in ABI) is xent/kernel.hpp.
#pragma once

#include "xent/cross_entropy.hpp"
#include "xent/error.hpp"
#include "xent/options.hpp"
#include "xent/tensor.hpp"

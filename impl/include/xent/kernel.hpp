// Umbrella header of the kernel interface: what a kernel receives (problem),
// the implementations and their registry, declared capabilities, the plug-in
// ABI, the `stable` kernel's rounding statistics, the float32 view of a
// 16-bit problem (widened_problem) and the `mpi` kernel's process side. Tools
// that iterate kernels include it; a caller of the loss needs only
// xent/xent.hpp.
#pragma once

#include "xent/kernel/capabilities.hpp"
#include "xent/kernel/implementation.hpp"
#include "xent/kernel/mpi.hpp"
#include "xent/kernel/plugin.h"
#include "xent/kernel/problem.hpp"
#include "xent/kernel/statistics.hpp"
#include "xent/kernel/widened_problem.hpp"

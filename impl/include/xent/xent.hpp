// Umbrella header.
#pragma once

#include "xent/cross_entropy.hpp"
#include "xent/error.hpp"
#include "xent/kernel/implementation.hpp"
#include "xent/kernel/problem.hpp"
#include "xent/kernel/statistics.hpp"
#include "xent/options.hpp"
#include "xent/tensor.hpp"

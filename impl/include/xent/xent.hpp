// Umbrella header.
#pragma once

#include "xent/cross_entropy.hpp"
#include "xent/error.hpp"
#include "xent/implementation.hpp"
#include "xent/options.hpp"
#include "xent/problem.hpp"
#include "xent/statistics.hpp"
#include "xent/tensor.hpp"

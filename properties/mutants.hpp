// Planted mutants: deliberately broken kernels, registered (through
// xent::register_implementation) only in the mutant test binary. Each one is
// the stable algorithm with one classic bug; the suite must catch every one,
// or a property is missing.
#pragma once

#include <string>
#include <vector>

namespace xent::props {

struct mutant_info {
  std::string name;     // registered implementation name, "mutant_…"
  std::string planted;  // the bug, in words
};

// The unmutated control, registered with the mutants: a property counts as
// catching a mutant only if it passes on the control with the same seed (so a
// weakness the mutants share with their base is not mistaken for a catch).
inline constexpr const char* mutant_control = "mutant_control";

// Registers the mutants (and the control) on first call; returns the mutants
// in a fixed order.
const std::vector<mutant_info>& register_mutants();

}  // namespace xent::props

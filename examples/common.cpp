#include <exception>
#include <iostream>

#include "examples.hpp"

namespace xent::examples {

bool outcome::expect(bool ok, const std::string& claim) {
  if (!ok) {
    passed = false;
    say("FAILED: " + claim);
  }
  return ok;
}

int outcome::finish() const {
  std::cout << name << ": " << title << "\n";
  for (const auto& l : lines) std::cout << l << "\n";
  std::cout << (passed ? "PASS" : "FAIL") << "\n";
  return passed ? 0 : 1;
}

outcome guarded(outcome (*example)(), const char* name) {
  try {
    return example();
  } catch (const std::exception& e) {
    outcome o;
    o.name = name;
    o.title = "(threw an exception)";
    o.expect(false, std::string("unexpected exception: ") + e.what());
    return o;
  }
}

int main_of(outcome (*example)()) { return guarded(example, "example").finish(); }

double mean_ulp_bound(tier t) {
  switch (t) {
    case tier::correctly_rounded: return 0.5;
    case tier::accurate: return 1.0;
    case tier::fast: return 1.0;
    case tier::relaxed: return 256.0;
    case tier::standard: return 2.0;
    case tier::naive: return 16.0;
  }
  return 0.0;
}

}  // namespace xent::examples

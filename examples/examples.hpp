// The classic examples as functions: each computes its result with every
// supported implementation and the reference, records what it prints and
// whether its claims held. The executables (classic, char_lm, zero_loss)
// print one and exit 0/1; `xent report` prints them all in its Examples
// section.
#pragma once

#include <string>
#include <vector>

#include "xent/kernel/implementation.hpp"

namespace xent::examples {

struct outcome {
  std::string name;   // "classic"
  std::string title;  // one line
  bool passed = true;
  std::vector<std::string> lines;

  void say(std::string line) { lines.push_back(std::move(line)); }
  // Records a claim; a false one fails the example and says why.
  bool expect(bool ok, const std::string& claim);
  // Prints the lines and the verdict; returns the exit status (0 = passed).
  int finish() const;
};

outcome classic();    // [3,5] zero logits, targets [1,3,2] -> ln 5; random logits
outcome char_lm();    // [B,T,C][:, h:] as a strided view vs view(-1, C)
outcome zero_loss();  // why a loss is exactly 0: C = 1, float targets as probabilities

// Every example; one that throws becomes a failed outcome with the message.
std::vector<outcome> run_all();
// Runs one example; an exception becomes a failed outcome.
outcome guarded(outcome (*example)(), const char* name);
// main() of an example executable: runs it, prints it, returns 0 or 1.
int main_of(outcome (*example)());

// Largest error in ulps the example accepts for a mean reduction, by tier
// (docs/design.md §3; naive has no bound, the examples allow a loose one inside
// its domain).
double mean_ulp_bound(tier t);

}  // namespace xent::examples

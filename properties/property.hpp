// The table of properties and how one is run against one implementation.
//
// A property is a RapidCheck body that draws its cases with `*gen` (so a
// failing case is shrunk and printed through showValue) and checks one
// implementation. XENT_PROPERTY both defines the body and adds it to the
// table; the GoogleTest harness (property_test.cpp) instantiates every
// property for every registered implementation, and the mutant test
// (mutant_test.cpp) runs the same table silently against planted bugs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <rapidcheck.h>

#include "case.hpp"
#include "evaluate.hpp"
#include "xent/kernel/implementation.hpp"

namespace xent::props {

struct property {
  std::string suite;  // reference_props | metamorphic_props | contract_props
  std::string name;
  int budget;         // cases in the default run (the reference costs ~3e5 exp/s)
  void (*body)(const implementation&);
};

std::vector<property>& property_table();
bool add_property(property p);
std::vector<const property*> properties_of(const std::string& suite);

// Sets the tracker's domain state for one case: nullopt when the case is
// inside the implementation's declared domain.
class case_scope {
 public:
  case_scope(const implementation& impl, const test_case& c);
  bool inside() const { return !reason_; }
  // Inside: fails the RapidCheck case when `f` has violations. Outside: records
  // what broke and discards the case (it is neither a pass nor a failure).
  void conclude(const findings& f, const std::string& what = "") const;

 private:
  const test_case* case_;
  std::optional<std::string> reason_;
};

// Discards every case, with the reason, when the property does not apply to
// the implementation (the harness reports it as skipped, not passed).
void require(bool applicable, const std::string& why);

struct run_mode {
  bool silent = false;   // no output, no reproduce line (mutant hunting)
  bool shrink = true;
  double scale = 1.0;    // multiplies the budget (XENT_PROPERTY_SCALE in the environment)
  // An RC_PARAMS value ("seed=… reproduce=…") to replay instead of the
  // configured run: its reproduce entry for this property's id replays that
  // one case; without one, the property runs at its seed.
  std::string replay;
};

// The seed of a run: $XENT_PROPERTY_SEED when set (CI's moving seed; it wins
// over RC_PARAMS's seed but not over a reproduce line), else RC_PARAMS's.
std::uint64_t configured_seed();

struct run_result {
  rc::detail::TestResult result = rc::detail::SuccessResult{0, {}};
  std::string id;        // RapidCheck test id: suite/name/implementation
  int max_success = 0;
  std::uint64_t seed = 0;
  std::string reproduce;  // RC_PARAMS value that replays a failure
};

run_result run_property(const property& p, const implementation& impl, const run_mode& mode);

}  // namespace xent::props

// Defines a property body `void(const xent::implementation& impl)` and adds it
// to the table.
#define XENT_PROPERTY(suite, name, budget)                                                      \
  static void suite##__##name(const ::xent::implementation& impl);                              \
  [[maybe_unused]] static const bool suite##__##name##_added =                                  \
      ::xent::props::add_property({#suite, #name, budget, &suite##__##name});                   \
  static void suite##__##name([[maybe_unused]] const ::xent::implementation& impl)

// Worst errors seen while a property runs (printed even when it passes), and
// what happened outside an implementation's declared domain (recorded, never
// asserted, never counted as a pass). One tracker per process; the harness
// resets it before each property and prints it after.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "case.hpp"
#include "xent/kernel/capabilities.hpp"

namespace xent::props {

class tracker {
 public:
  static tracker& get();
  void reset();
  // The case being checked is outside the implementation's domain (reason),
  // or inside (nullopt). Errors noted meanwhile go to the outside table.
  void set_outside(std::optional<std::string> reason) { outside_ = std::move(reason); }
  const std::optional<std::string>& outside() const { return outside_; }

  // An error in ulps for a named quantity ("loss", "gradient", ...).
  void note(const std::string& what, double ulps, const test_case& c, const std::string& detail);
  // A case outside the domain finished; `broke` lists what failed there.
  void record_outside(const test_case& c, const std::vector<std::string>& broke);

  // The property does not apply to this implementation (e.g. its tier
  // promises nothing for the quantity): every case is discarded.
  void set_not_applicable(std::string why) { not_applicable_ = std::move(why); }
  const std::string& not_applicable() const { return not_applicable_; }

  // A plug-in answered UNSUPPORTED outside its declaration (or declares
  // none): the case is skipped and counted, never passed.
  void record_unsupported(const std::string& message);
  long unsupported_cases() const { return unsupported_cases_; }
  const std::string& first_unsupported() const { return first_unsupported_; }
  // A kernel call that returned, with what it needed: the coverage.
  void exercised(const capabilities& needs) { exercised_ |= needs; }
  const capabilities& coverage() const { return exercised_; }

  long outside_cases() const { return outside_cases_; }
  long outside_broken() const { return outside_broken_; }
  std::string summary() const;

 private:
  struct worst {
    double ulps = -1.0;
    long count = 0;
    std::string repro, detail;
  };
  std::map<std::string, worst> inside_tab_, outside_tab_;
  std::optional<std::string> outside_;
  long outside_cases_ = 0, outside_broken_ = 0;
  std::string outside_example_;
  std::string not_applicable_;
  long unsupported_cases_ = 0;
  std::string first_unsupported_;
  capabilities exercised_;
};

}  // namespace xent::props

// Each planted mutant must be caught by at least one property; the test names
// every property that catches it, with the first counterexample. Checks run
// silently, without shrinking.
#include <gtest/gtest.h>

#include <rapidcheck/gtest.h>

#include <iostream>

#include "mutants.hpp"
#include "property.hpp"
#include "tracker.hpp"

namespace {

using namespace xent::props;

class mutants : public ::testing::TestWithParam<mutant_info> {};

TEST_P(mutants, is_caught) {
  const mutant_info& m = GetParam();
  const xent::implementation* impl = xent::find_implementation(m.name);
  ASSERT_NE(impl, nullptr) << m.name << " is not registered";
  const xent::implementation* control = xent::find_implementation(mutant_control);
  ASSERT_NE(control, nullptr);
  std::vector<std::string> shared;  // properties that fail on the control too
  std::vector<std::string> caught;
  run_mode mode;
  mode.silent = true;
  mode.shrink = false;
  for (const char* suite : {"metamorphic_props", "contract_props", "reference_props"})
    for (const property* p : properties_of(suite)) {
      tracker::get().reset();
      const run_result r = run_property(*p, *impl, mode);
      if (r.result.is<rc::detail::FailureResult>()) {
        if (!run_property(*p, *control, mode).result.is<rc::detail::SuccessResult>()) {
          shared.push_back(p->name);
          continue;
        }
        const auto& fail = r.result.get<rc::detail::FailureResult>();
        if (caught.empty()) {
          std::cout << "[ mutant ] " << m.name << " (" << m.planted << ") first caught by " << p->suite
                    << "/" << p->name << " after " << fail.numSuccess << " passing cases:\n  "
                    << fail.description.substr(0, 600) << '\n';
          for (const auto& [name, value] : fail.counterExample)
            std::cout << "  " << name << ": " << value.substr(0, 300) << '\n';
        }
        caught.push_back(p->name);
      }
    }
  for (const auto& n : shared) std::cout << "  (" << n << " fails on the control too: not counted)\n";
  std::cout << "[ mutant ] " << m.name << " caught by " << caught.size() << " properties:";
  for (const auto& n : caught) std::cout << ' ' << n;
  std::cout << '\n';
  EXPECT_FALSE(caught.empty()) << m.name << " (" << m.planted << ") survived every property: a property is missing";
}

INSTANTIATE_TEST_SUITE_P(planted, mutants, ::testing::ValuesIn(register_mutants()),
                         [](const ::testing::TestParamInfo<mutant_info>& mi) { return mi.param.name; });

}  // namespace

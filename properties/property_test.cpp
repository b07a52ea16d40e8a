// Every property of the table for every registered implementation, one
// GoogleTest (and one ctest entry) each: <suite>.check/<property>__<implementation>.
// Prints the seed, the case budget and the worst errors even on success; on
// failure the shrunk case (compact repro) and the RC_PARAMS line that replays it.
#include <gtest/gtest.h>

#include <rapidcheck/gtest.h>

#include <iostream>
#include <sstream>
#include <tuple>

#include "property.hpp"
#include "tracker.hpp"

namespace {

using namespace xent::props;
using param = std::tuple<const xent::implementation*, const property*>;

void run_one(const param& p) {
  const auto& [impl, prop] = p;
  if (!impl->supported()) GTEST_SKIP() << impl->name() << " is not supported on this CPU";
  tracker::get().reset();
  const run_result r = run_property(*prop, *impl, {});
  const tracker& tr = tracker::get();
  std::cout << "[ property ] " << r.id << " (tier " << xent::to_string(impl->tier()) << "): seed "
            << r.seed << ", up to " << r.max_success << " cases\n"
            << tr.summary();
  using namespace rc::detail;
  if (r.result.is<SuccessResult>()) {
    const auto& s = r.result.get<SuccessResult>();
    std::cout << "  passed " << s.numSuccess << " cases\n";
    if (s.numSuccess == 0) GTEST_SKIP() << "no case ran (reproduce mode for another test)";
    return;
  }
  if (r.result.is<GaveUpResult>()) {
    // Every case was outside the implementation's domain, or the property does
    // not apply: a skip with the record, never a pass.
    std::ostringstream why;
    if (!tr.not_applicable().empty()) why << "not applicable to " << impl->name() << ": " << tr.not_applicable();
    else if (tr.outside_cases() > 0)
      why << "too few cases inside the declared domain of " << impl->name() << " ("
          << tr.outside_cases() << " outside, broke in " << tr.outside_broken() << ")";
    if (!why.str().empty()) GTEST_SKIP() << why.str();
    std::ostringstream msg;
    printResultMessage(r.result, msg);
    FAIL() << msg.str();
  }
  std::ostringstream msg;
  printResultMessage(r.result, msg);
  if (!r.reproduce.empty())
    msg << "\nReplay: RC_PARAMS=\"" << r.reproduce << "\""
        << "\nKeep it (every run replays properties/regressions.txt first): add the line\n  " << r.id << " "
        << r.reproduce;
  FAIL() << msg.str();
}

std::string name_of(const ::testing::TestParamInfo<param>& pi) {
  return std::get<1>(pi.param)->name + "__" + std::get<0>(pi.param)->name();
}

#define XENT_SUITE(suite)                                                                 \
  class suite : public ::testing::TestWithParam<param> {};                                \
  TEST_P(suite, check) { run_one(GetParam()); }                                           \
  INSTANTIATE_TEST_SUITE_P(all, suite,                                                    \
                           ::testing::Combine(::testing::ValuesIn(xent::implementations()), \
                                              ::testing::ValuesIn(properties_of(#suite))),  \
                           name_of)

XENT_SUITE(reference_props);
XENT_SUITE(metamorphic_props);
XENT_SUITE(contract_props);

}  // namespace

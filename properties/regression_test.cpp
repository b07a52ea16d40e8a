// Failures found at any seed, kept: properties/regressions.txt holds one line
// per failure that a run (CI's moving seed, a slow run, a user's seed) found,
// and every run replays them (Hypothesis's example database, with RapidCheck's
// reproduce strings). The suite only grows: a fixed bug stays tested by the
// exact case that exposed it.
//
// A line:   <suite>/<property>/<implementation> <RC_PARAMS value> [# note]
// e.g. the "Replay:" line a failing property prints. Each entry runs twice:
// the recorded case (its reproduce string; exact while the generators are
// unchanged), then the property's default budget at the recorded seed (which
// still explores the neighbourhood if a generator changed since).
#include <gtest/gtest.h>

#include <rapidcheck/gtest.h>

#include <cctype>
#include <fstream>
#include <iostream>
#include <sstream>

#include <rapidcheck/detail/Configuration.h>

#include "hwy/targets.h"
#include "property.hpp"
#include "tracker.hpp"

#ifndef XENT_REGRESSIONS_FILE
#error "XENT_REGRESSIONS_FILE must name properties/regressions.txt"
#endif

namespace {

using namespace xent::props;

struct entry {
  int line = 0;
  std::string id, suite, property_name, impl_name, params, note;
};

std::vector<entry> load() {
  std::vector<entry> v;
  std::ifstream in(XENT_REGRESSIONS_FILE);
  if (!in) throw std::runtime_error("cannot read " + std::string(XENT_REGRESSIONS_FILE));
  std::string text;
  for (int n = 1; std::getline(in, text); ++n) {
    entry e;
    e.line = n;
    if (const auto hash = text.find('#'); hash != std::string::npos) {
      e.note = text.substr(hash + 1);
      text.resize(hash);
    }
    std::istringstream s(text);
    if (!(s >> e.id)) continue;  // blank or comment
    std::string word;
    while (s >> word) e.params += (e.params.empty() ? "" : " ") + word;
    const auto a = e.id.find('/'), b = e.id.rfind('/');
    if (a == std::string::npos || a == b)
      throw std::runtime_error(std::string(XENT_REGRESSIONS_FILE) + ":" + std::to_string(n) +
                               ": expected <suite>/<property>/<implementation>, got '" + e.id + "'");
    e.suite = e.id.substr(0, a);
    e.property_name = e.id.substr(a + 1, b - a - 1);
    e.impl_name = e.id.substr(b + 1);
    if (e.params.find("seed=") == std::string::npos)
      throw std::runtime_error(std::string(XENT_REGRESSIONS_FILE) + ":" + std::to_string(n) + ": no seed= in '" +
                               text + "'");
    v.push_back(e);
  }
  return v;
}

const std::vector<entry>& entries() {
  static const std::vector<entry> v = load();
  return v;
}

// simd_<target> is registered for every target but the best, which is `simd`.
const xent::implementation* find_impl(const std::string& name) {
  if (const auto* i = xent::find_implementation(name)) return i;
  const auto targets = hwy::SupportedAndGeneratedTargets();
  if (targets.empty()) return nullptr;
  std::string best = "simd_";
  for (const char* c = hwy::TargetName(targets[0]); *c; ++c)
    best += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
  return name == best ? xent::find_implementation("simd") : nullptr;
}

std::string outcome(const run_result& r) {
  std::ostringstream m;
  rc::detail::printResultMessage(r.result, m);
  return m.str();
}

class regressions : public ::testing::TestWithParam<std::size_t> {};

TEST_P(regressions, replay) {
  const entry& e = entries()[GetParam()];
  const property* prop = nullptr;
  for (const auto& p : property_table())
    if (p.suite == e.suite && p.name == e.property_name) prop = &p;
  ASSERT_NE(prop, nullptr) << XENT_REGRESSIONS_FILE << ":" << e.line << ": no property " << e.suite << "/"
                           << e.property_name;
  const xent::implementation* impl = find_impl(e.impl_name);
  if (!impl || !impl->supported())
    GTEST_SKIP() << e.impl_name << " is not available on this machine (entry of line " << e.line << ")";
  std::cout << "[ regression ] " << e.id << " " << e.params << (e.note.empty() ? "" : "  #" + e.note) << "\n";

  run_mode exact;
  exact.replay = e.params;
  tracker::get().reset();
  const run_result a = run_property(*prop, *impl, exact);
  EXPECT_FALSE(a.result.is<rc::detail::FailureResult>())
      << "the recorded case fails again:\n" << outcome(a) << "\nReplay: RC_PARAMS=\"" << e.params << "\"";

  run_mode around;
  around.replay = "seed=" + std::to_string(rc::detail::configFromString(e.params).testParams.seed);
  tracker::get().reset();
  const run_result b = run_property(*prop, *impl, around);
  EXPECT_FALSE(b.result.is<rc::detail::FailureResult>())
      << "fails at the recorded seed:\n" << outcome(b) << "\nReplay: RC_PARAMS=\"" << b.reproduce << "\"";
  std::cout << "  recorded case and " << b.max_success << " cases at seed " << b.seed << ": "
            << (HasFailure() ? "FAILED" : "passed") << "\n";
}

std::vector<std::size_t> indices() {
  std::vector<std::size_t> v;
  for (std::size_t i = 0; i < entries().size(); ++i) v.push_back(i);
  return v;
}

INSTANTIATE_TEST_SUITE_P(recorded, regressions, ::testing::ValuesIn(indices()),
                         [](const ::testing::TestParamInfo<std::size_t>& i) {
                           std::string n = "line" + std::to_string(entries()[i.param].line) + "_" + entries()[i.param].id;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace

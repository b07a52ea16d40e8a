#include "property.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <unordered_map>

#include <rapidcheck/detail/Configuration.h>
#include <rapidcheck/detail/TestListenerAdapter.h>

#include "generators.hpp"
#include "tracker.hpp"
#include "xent/plugin_loader.hpp"

namespace xent::props {

std::vector<property>& property_table() {
  static std::vector<property> t;
  return t;
}

bool add_property(property p) {
  property_table().push_back(std::move(p));
  return true;
}

std::vector<const property*> properties_of(const std::string& suite) {
  std::vector<const property*> v;
  for (const auto& p : property_table())
    if (p.suite == suite) v.push_back(&p);
  return v;
}

case_scope::case_scope(const implementation& impl, const test_case& c)
    : case_(&c), reason_(impl.outside_domain(inspect(c))) {
  tracker::get().set_outside(reason_);
}

void case_scope::conclude(const findings& f, const std::string& what) const {
  if (reason_) {
    tracker::get().record_outside(*case_, f.failures);
    RC_DISCARD("outside the declared domain: " + *reason_);
  }
  if (!f.ok()) RC_FAIL((what.empty() ? "" : what + "\n") + f.text());
}

void require(bool applicable, const std::string& why) {
  if (applicable) return;
  tracker::get().set_not_applicable(why);
  RC_DISCARD("not applicable: " + why);
}

std::uint64_t configured_seed() {
  const rc::detail::Configuration& cfg = rc::detail::configuration();
  const char* seed = std::getenv("XENT_PROPERTY_SEED");
  if (!seed || !*seed || !cfg.reproduce.empty()) return cfg.testParams.seed;
  char* end = nullptr;
  const std::uint64_t v = std::strtoull(seed, &end, 10);
  if (*end != '\0')
    throw std::invalid_argument(std::string("XENT_PROPERTY_SEED must be a decimal integer, got '") + seed + "'");
  return v;
}

run_result run_property(const property& p, const implementation& impl, const run_mode& mode) {
  using namespace rc::detail;
  const Configuration& cfg = configuration();
  TestParams params = cfg.testParams;
  params.seed = configured_seed();
  std::unordered_map<std::string, Reproduce> replay;
  if (!mode.replay.empty()) {
    const Configuration c = configFromString(mode.replay, cfg);
    params.seed = c.testParams.seed;
    replay = c.reproduce;
  }
  // RC_PARAMS max_success, when given, wins; otherwise each property has its
  // own budget, scaled for the slow variants.
  const char* env = std::getenv("RC_PARAMS");
  if (!(env && std::string(env).find("max_success") != std::string::npos)) {
    double scale = mode.scale;
    if (const char* s = std::getenv("XENT_PROPERTY_SCALE")) scale *= std::atof(s);
    params.maxSuccess = std::max(1, static_cast<int>(std::lround(p.budget * scale)));
  }
  if (!mode.shrink) params.disableShrinking = true;

  TestMetadata md;
  md.id = p.suite + "/" + p.name + "/" + impl.name();
  md.description = md.id;
  auto body = [&p, &impl] {
    try {
      p.body(impl);
    } catch (const plugins::plugin_unsupported& e) {
      // Outside the kernel's declaration (the loader decided): skipped and
      // counted; inside it the loader throws a plain failure instead.
      tracker::get().record_unsupported(e.what());
      RC_DISCARD(std::string("unsupported: ") + e.what());
    }
  };
  set_generation_limits(impl.declared_capabilities());

  run_result r;
  r.id = md.id;
  r.max_success = params.maxSuccess;
  r.seed = params.seed;
  if (mode.silent || !mode.replay.empty()) {
    TestListenerAdapter quiet;
    r.result = checkProperty(toProperty(body), md, params, quiet, replay);
  } else {
    r.result = checkProperty(toProperty(body), md, params);
  }
  if (r.result.is<FailureResult>()) {
    Configuration c;
    c.testParams.seed = params.seed;
    c.reproduce[md.id] = r.result.get<FailureResult>().reproduce;
    r.reproduce = configToMinimalString(c);
  }
  return r;
}

}  // namespace xent::props

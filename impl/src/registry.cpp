// The registry: our kernels first, then whatever registers itself (test-only
// kernels, external peers, plug-ins).
#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "kernels.hpp"
#include "xent/error.hpp"
#include "xent/kernel/implementation.hpp"

namespace xent {
namespace {

struct registry {
  std::vector<std::unique_ptr<implementation>> owned;
  std::vector<const implementation*> list;
  registry() {
    for (auto& k : make_builtin_kernels()) add(std::move(k));
  }
  const implementation& add(std::unique_ptr<implementation> impl) {
    if (std::any_of(list.begin(), list.end(),
                    [&](const implementation* i) { return i->name() == impl->name(); }))
      throw error("implementation", "an implementation named '" + impl->name() +
                                        "' is already registered");
    owned.push_back(std::move(impl));
    list.push_back(owned.back().get());
    return *owned.back();
  }
};

registry& the_registry() {
  static registry r;
  return r;
}

std::string known_names() {
  std::string s;
  for (auto* i : implementations()) s += (s.empty() ? "" : ", ") + i->name();
  return s;
}

}  // namespace

std::string to_string(tier t) {
  switch (t) {
    case tier::correctly_rounded: return "correctly_rounded";
    case tier::accurate: return "accurate";
    case tier::fast: return "fast";
    case tier::relaxed: return "relaxed";
    case tier::standard: return "standard";
    case tier::naive: return "naive";
  }
  return "unknown";
}

const std::vector<const implementation*>& implementations() { return the_registry().list; }

const implementation* find_implementation(std::string_view name) {
  for (auto* i : implementations())
    if (i->name() == name) return i;
  return nullptr;
}

namespace {

const implementation& choose_default() {
  if (const char* forced = std::getenv("XENT_IMPL"); forced && *forced) {
    const implementation* i = find_implementation(forced);
    if (!i)
      throw error("XENT_IMPL", std::string("XENT_IMPL names an unknown implementation '") + forced +
                                   "' (known: " + known_names() + ")");
    if (!i->supported())
      throw error("XENT_IMPL", std::string("XENT_IMPL names '") + forced +
                                   "', which this CPU does not support");
    return *i;
  }
  // Most accurate supported kernel of ours (peers are under test, never the
  // default); ties go to the earlier (preferred) one.
  const implementation* best = nullptr;
  for (auto* i : implementations())
    if (i->supported() && !i->peer() && (!best || i->tier() < best->tier())) best = i;
  return *best;
}

// The choice, made on the first call (the environment and the registry are
// read once, not per call); registering an implementation makes it again.
std::atomic<const implementation*> chosen{nullptr};

}  // namespace

const implementation& default_implementation() {
  if (const implementation* i = chosen.load(std::memory_order_acquire)) return *i;
  const implementation& i = choose_default();  // throws for a bad XENT_IMPL (not kept)
  chosen.store(&i, std::memory_order_release);
  return i;
}

const implementation& register_implementation(std::unique_ptr<implementation> impl) {
  const implementation& added = the_registry().add(std::move(impl));
  chosen.store(nullptr, std::memory_order_release);
  return added;
}

}  // namespace xent

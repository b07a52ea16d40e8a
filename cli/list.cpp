#include "list.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>

#include "format.hpp"
#include "registry.hpp"
#include "simd_target.hpp"
#include "xent/kernel.hpp"
#include "xent/xent.hpp"

namespace xent::cli {

CLI::App* add_list_command(CLI::App& app, list_args& a) {
  CLI::App* c = app.add_subcommand("list", "List the registered implementations");
  c->add_flag("--json", a.json, "print a JSON array");
  c->add_flag("--simd-targets", a.simd_targets,
              "print only the Highway targets this CPU supports, best first, one per line (report --simd-target)");
  return c;
}

int run_list(const list_args& a) {
  if (a.simd_targets) {
    for (const auto& t : reports::simd_targets()) std::cout << t << "\n";
    return 0;
  }
  const auto& impls = implementations();
  std::string default_name;
  try {
    default_name = default_implementation().name();
  } catch (const xent::error&) {  // a bad XENT_IMPL: still list
  }
  const auto check_default = default_check_set();
  if (a.json) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto* i : impls)
      arr.push_back({{"name", i->name()},
                     {"tier", to_string(i->tier())},
                     {"domain", i->domain()},
                     {"supported", i->supported()},
                     {"default", i->name() == default_name},
                     {"kind", i->peer() ? "peer" : plugins::is_plugin(i) ? "plug-in" : "ours"},
                     {"in_check_default", std::find(check_default.begin(), check_default.end(), i) != check_default.end()},
                     {"thread_count_independent", i->thread_count_independent()},
                     {"description", i->description()}});
    std::cout << arr.dump(2) << "\n";
    return 0;
  }
  std::size_t w = 4;
  for (const auto* i : impls) w = std::max(w, i->name().size());
  w += 2;
  std::size_t tw = 4;  // "correctly_rounded" is longer than any other tier
  for (const auto* i : impls) tw = std::max(tw, to_string(i->tier()).size());
  tw += 2;
  auto pad = [](std::string s, std::size_t n) {
    if (s.size() < n) s.append(n - s.size(), ' ');
    return s;
  };
  std::cout << pad("name", w) << pad("tier", tw) << pad("supported", 11) << "description\n";
  for (const auto* i : impls) {
    std::cout << pad(i->name(), w) << pad(to_string(i->tier()), tw)
              << pad(std::string(i->supported() ? "yes" : "no") +
                         (i->name() == default_name ? " (*)" : ""),
                     11)
              << i->description() << "\n";
    std::cout << pad("", w) << "domain: " << i->domain() << "\n";
    if (i->peer())
      std::cout << pad("", w) << "peer: an external implementation under test, not one of ours (xent verify "
                                 "--impl " << i->name() << " lists its known deviations)\n";
  }
  if (!default_name.empty()) std::cout << "(*) default implementation\n";
  std::string set;
  for (const auto* i : check_default) set += (set.empty() ? "" : ", ") + i->name();
  std::string targets;
  for (const auto& t : reports::simd_targets()) targets += (targets.empty() ? "" : ", ") + t;
  std::cout << "simd, openmp and throughput dispatch to the best of this CPU's Highway targets: " << targets
            << " (xent report --simd-target pins one)\n";
  std::cout << "xent check runs " << set << " unless --impl says otherwise (--impl all: every supported one)\n";
  return 0;
}

}  // namespace xent::cli

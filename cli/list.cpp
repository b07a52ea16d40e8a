#include "list.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>

#include "format.hpp"
#include "xent/xent.hpp"

namespace xent::cli {

CLI::App* add_list_command(CLI::App& app, list_args& a) {
  CLI::App* c = app.add_subcommand("list", "List the registered implementations");
  c->add_flag("--json", a.json, "print a JSON array");
  return c;
}

int run_list(const list_args& a) {
  const auto& impls = implementations();
  std::string default_name;
  try {
    default_name = default_implementation().name();
  } catch (const xent::error&) {  // a bad XENT_IMPL: still list
  }
  if (a.json) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto* i : impls)
      arr.push_back({{"name", i->name()},
                     {"tier", to_string(i->tier())},
                     {"domain", i->domain()},
                     {"supported", i->supported()},
                     {"default", i->name() == default_name},
                     {"thread_count_independent", i->thread_count_independent()},
                     {"description", i->description()}});
    std::cout << arr.dump(2) << "\n";
    return 0;
  }
  std::size_t w = 4;
  for (const auto* i : impls) w = std::max(w, i->name().size());
  w += 2;
  auto pad = [](std::string s, std::size_t n) {
    if (s.size() < n) s.append(n - s.size(), ' ');
    return s;
  };
  std::cout << pad("name", w) << pad("tier", 10) << pad("supported", 11) << "description\n";
  for (const auto* i : impls) {
    std::cout << pad(i->name(), w) << pad(to_string(i->tier()), 10)
              << pad(std::string(i->supported() ? "yes" : "no") +
                         (i->name() == default_name ? " (*)" : ""),
                     11)
              << i->description() << "\n";
    std::cout << pad("", w) << "domain: " << i->domain() << "\n";
  }
  if (!default_name.empty()) std::cout << "(*) default implementation\n";
  return 0;
}

}  // namespace xent::cli

#include "registry.hpp"

#ifdef XENT_HAVE_ONEDNN_PEER
#include "onednn_implementation.hpp"
#endif
#ifdef XENT_HAVE_TORCH_PEER
#include "torch_implementation.hpp"
#endif
#include "inputs.hpp"

namespace xent::cli {

void register_peers() {
#ifdef XENT_HAVE_ONEDNN_PEER
  peers::register_onednn();
#endif
#ifdef XENT_HAVE_TORCH_PEER
  peers::register_torch();
#endif
}

std::vector<const implementation*> load_plugins(const std::vector<std::string>& paths,
                                                plugins::isolation isolate) {
  std::vector<const implementation*> v;
  plugins::load_options o;
  o.isolate = isolate;
  for (const auto& p : paths) v.push_back(&plugins::load_plugin(p, o));
  return v;
}

std::string origin_of(const implementation& impl) {
  if (plugins::is_plugin(&impl)) return "plug-in " + plugins::plugin_path(impl);
  return impl.peer() ? "peer" : "implementation";
}

const implementation& find_for_cli(const std::string& option, const std::string& name) {
  const implementation* i = find_implementation(name);
  if (!i) {
    std::string known;
    for (auto* k : implementations())
      known += (known.empty() ? "" : ", ") + k->name() + (k->peer() ? " (peer)" : "");
    throw input_error(option, "unknown implementation '" + name + "' (known: " + known + "; see xent list)");
  }
  if (!i->supported()) throw input_error(option, "implementation '" + name + "' is not supported on this CPU");
  return *i;
}

std::vector<const implementation*> default_check_set() {
  std::vector<const implementation*> out;
  for (auto* i : implementations())
    if (i->supported() && !i->peer() && !plugins::is_plugin(i) &&
        (i->tier() == tier::correctly_rounded || i->tier() == tier::accurate || i->tier() == tier::fast))
      out.push_back(i);
  return out;
}

}  // namespace xent::cli

// Names of the options' values (a file of its own: validation uses them, and
// fuzz/ links validation without the registry).
#include "xent/options.hpp"

#include "xent/error.hpp"

namespace xent {

std::string to_string(reduction r) {
  switch (r) {
    case reduction::none: return "none";
    case reduction::mean: return "mean";
    case reduction::sum: return "sum";
  }
  return "unknown";
}

reduction parse_reduction(const std::string& s) {
  if (s == "none") return reduction::none;
  if (s == "mean") return reduction::mean;
  if (s == "sum") return reduction::sum;
  throw error("reduction", "reduction must be none, mean or sum, got '" + s + "'");
}

}  // namespace xent

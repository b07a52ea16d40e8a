// GCC 12 warns falsely (-Wrestrict) on "literal" + std::string concatenations.
#pragma GCC diagnostic ignored "-Wrestrict"
#include "report_baseline.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "format.hpp"
#include "inputs.hpp"
#include "xent/kernel.hpp"
#include "xent/xent.hpp"

namespace xent::reports {

using cli::fmt;
using cli::input_error;
using cli::ulp_text;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();

// Rounded up to 3 significant digits: a little slack for another compiler,
// not enough to hide a regression.
double round_up(double v) {
  if (!std::isfinite(v) || v <= 0.0) return v;
  const double scale = std::pow(10.0, std::floor(std::log10(v)) - 2.0);
  return std::ceil(v / scale - 1e-9) * scale;
}

// The allowance for a measured maximum: rounded up, but never past the
// tier's bound when the measurement is within it.
double allowance(double measured, double bound) {
  const double r = round_up(measured);
  return measured <= bound && r > bound ? bound : r;
}

std::string value_text(double v) {
  if (std::isinf(v)) return "inf";
  return fmt(v, "%.4g");
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// The worst float32 cell inside the domain for (impl, quantity), or nullptr.
// (16-bit cells are in ulps of their dtype: the correctly rounded check
// below covers them, the maxima here are float32's.)
const cell* worst_cell(const sweep_result& s, const std::string& impl, quantity q) {
  const cell* w = nullptr;
  for (const cell& c : s.cells)
    if (c.impl == impl && c.dtype == "float32" && !c.outside && c[q].count > 0 && (!w || c[q].max > (*w)[q].max))
      w = &c;
  return w;
}

std::string tier_of(const sweep_result& s, const std::string& impl) {
  for (const cell& c : s.cells)
    if (c.impl == impl) return c.tier;
  return "";
}

}  // namespace

baseline read_baseline(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw input_error(path + ": cannot open the baseline");
  baseline b;
  std::string impl, line;
  for (int n = 1; std::getline(f, line); ++n) {
    const auto hash = line.find('#');
    line = trim(line.substr(0, hash));
    if (line.empty()) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) throw input_error(path + ":" + std::to_string(n) + ": expected 'key: value'");
    const std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "Implementation") {
      impl = value.size() >= 2 && value.front() == '"' && value.back() == '"' ? value.substr(1, value.size() - 2) : value;
      b[impl];
      continue;
    }
    if (impl.empty())
      throw input_error(path + ":" + std::to_string(n) + ": '" + key + "' before any 'Implementation:' line");
    bool known = false;
    for (quantity q : all_quantities) known = known || key == to_string(q);
    if (!known) throw input_error(path + ":" + std::to_string(n) + ": unknown quantity '" + key + "'");
    char* end = nullptr;
    const double v = value == "inf" ? inf : std::strtod(value.c_str(), &end);
    if (value != "inf" && (end == value.c_str() || *end != '\0' || !(v >= 0.0)))
      throw input_error(path + ":" + std::to_string(n) + ": '" + value + "' is not a number of ulps");
    b[impl][key] = v;
  }
  return b;
}

baseline measured_baseline(const sweep_result& s) {
  baseline b;
  // Peers (LibTorch) are measured, not gated: their error is their own, and
  // varies with their version and their own CPU dispatch.
  for (const cell& c : s.cells)
    if (const implementation* i = find_implementation(c.impl); !i || !i->peer()) b[c.impl];
  for (auto& [impl, m] : b)
    for (quantity q : all_quantities)
      if (const cell* w = worst_cell(s, impl, q))
        m[to_string(q)] = allowance((*w)[q].max, tier_bound(tier_of(s, impl), q));
  return b;
}

std::string format_baseline(const baseline& b, const sweep_result& s) {
  std::ostringstream o;
  o << "# xent accuracy baseline (glibc libm-test-ulps style): per implementation and\n"
       "# quantity, the maximum error in float32 ulps allowed over the cells of\n"
       "# `xent report --quick` inside the implementation's declared domain.\n"
       "# `xent report --check-baseline FILE` fails when a measured maximum exceeds it\n"
       "# and prints this table when errors shrink. simd, openmp and throughput hold the\n"
       "# maximum over every Highway target (AVX3, AVX2, SSE4, ...), so that the gate holds on\n"
       "# any host: regenerate with `./run baseline` (one `xent report --quick\n"
       "# --simd-target T --write-baseline FILE --merge-baseline` per target) on a host\n"
       "# with the most targets; review the diff before committing.\n";
  for (const auto& [impl, m] : b) {
    o << "\nImplementation: \"" << impl << "\"\n";
    const std::string tier = tier_of(s, impl);
    for (quantity q : all_quantities) {
      auto it = m.find(to_string(q));
      if (it == m.end()) continue;
      o << to_string(q) << ": " << value_text(it->second);
      const double bound = tier_bound(tier, q);
      if (exceeds(it->second, bound)) o << "  # exceeds the " << tier << " tier's bound of " << bound << " ulp";
      o << "\n";
    }
  }
  return o.str();
}

gate_result check_baseline(const baseline& allowed, const sweep_result& s) {
  gate_result g;
  const baseline measured = measured_baseline(s);
  for (const auto& [impl, m] : measured) {
    auto a = allowed.find(impl);
    if (a == allowed.end()) {
      g.notes.push_back("implementation '" + impl + "' has no baseline entry: not gated");
      continue;
    }
    for (quantity q : all_quantities) {
      const std::string name = to_string(q);
      const cell* w = worst_cell(s, impl, q);
      if (!w) continue;
      const double got = (*w)[q].max;
      auto e = a->second.find(name);
      if (e == a->second.end()) {
        g.failures.push_back(impl + " " + name + ": " + ulp_text(got) + " ulp measured, no baseline entry (add '" +
                             name + ": " + value_text(allowance(got, tier_bound(w->tier, q))) + "'); repro: " + repro(*w, q));
        continue;
      }
      if (!(got <= e->second))
        g.failures.push_back(impl + " " + name + ": " + ulp_text(got) + " ulp > baseline " + value_text(e->second) +
                             " on " + w->scenario + "; repro: " + repro(*w, q));
      else if (allowance(got, tier_bound(w->tier, q)) < e->second)
        g.improvements.push_back(impl + " " + name + ": " + value_text(allowance(got, tier_bound(w->tier, q))) +
                                 " (baseline " + value_text(e->second) + ")");
    }
  }
  // The correctly rounded tier promises more than a maximum of 0.5 ulp (a
  // wrong neighbour at a tie is 0.5 ulp off too): every result RN(reference).
  for (const cell& c : s.cells) {
    if (c.tier != "correctly_rounded" || c.outside || c.failure || c.skipped || !allowed.count(c.impl)) continue;
    for (quantity q : all_quantities)
      if (c[q].count > 0 && c[q].correctly_rounded < 1.0)
        g.failures.push_back(c.impl + " " + to_string(q) + ": " + std::to_string(100.0 * c[q].correctly_rounded) +
                             " % correctly rounded on " + c.scenario + " (tier correctly_rounded: 100 %); repro: " +
                             repro(c, q));
  }
  for (const auto& [impl, m] : allowed)
    if (!measured.count(impl)) g.notes.push_back("baseline implementation '" + impl + "' was not measured (not registered or not supported here)");
  return g;
}

}  // namespace xent::reports

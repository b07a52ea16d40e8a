#include "report.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "examples.hpp"
#include "format.hpp"
#include "inputs.hpp"
#include "scenarios.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace xent::cli {
namespace {

using json = nlohmann::ordered_json;

// Max and median of a set of ulp errors; count 0 means "not applicable".
struct stat {
  double max = 0.0;
  double median = 0.0;
  std::int64_t count = 0;
};

stat summarize(std::vector<double> v) {
  stat s;
  s.count = static_cast<std::int64_t>(v.size());
  if (v.empty()) return s;
  s.max = *std::max_element(v.begin(), v.end());
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  s.median = *mid;
  return s;
}

// The tier's bounds in ulps (DESIGN.md §3) where they are stated in ulps;
// NaN: no ulp bound (standard's loss and gradient are absolute criteria;
// naive has none). "Accurate" allows 0.5 ulp "+ tiny": 0.501 here.
struct ulp_bounds {
  double loss, grad, mean;
};
ulp_bounds bounds_of(tier t) {
  constexpr double none = std::numeric_limits<double>::quiet_NaN();
  switch (t) {
    case tier::accurate: return {0.501, 1.0, 1.0};
    case tier::fast: return {2.0, 2.0, 1.0};
    case tier::standard: return {none, none, 2.0};
    case tier::naive: return {none, none, none};
  }
  return {none, none, none};
}
bool exceeds(double v, double bound) { return !std::isnan(bound) && !(v <= bound); }

struct cell {
  std::string impl, tier, scenario;
  ulp_bounds bounds;
  std::optional<std::string> outside;  // why the scenario is outside the declared domain
  stat loss, grad_target, grad_other;
  double mean_ulp = 0.0;
};

// Element (p, c) of a C-order (N, C, d..) buffer.
std::int64_t element_index(const std::vector<std::int64_t>& shape, std::int64_t p, std::int64_t c) {
  if (shape.size() <= 1) return c;
  std::int64_t D = 1;
  for (std::size_t d = 2; d < shape.size(); ++d) D *= shape[d];
  return ((p / D) * shape[1] + c) * D + p % D;
}

std::vector<cell> measure(const scenario& s) {
  const tensor_view x = s.logits_view(), t = s.target_view();
  const options none = s.make_options(reduction::none), mean = s.make_options(reduction::mean);
  const problem pr_none = make_problem(x, t, none);
  const problem pr_mean = make_problem(x, t, mean);
  // Reference: per-position losses and the per-row gradient (reduction none,
  // upstream 1), and the mean.
  const ref::result r_none = ref::compute(pr_none, true);
  const ref::result r_mean = ref::compute(pr_mean, false);
  const std::vector<std::int64_t> positions = s.position_shape();
  const std::int64_t P = pr_none.positions, C = pr_none.classes;

  std::vector<cell> cells;
  for (const implementation* impl : implementations()) {
    if (!impl->supported()) continue;
    cell c{impl->name(), to_string(impl->tier()), s.id, bounds_of(impl->tier()),
           impl->outside_domain(pr_none), {}, {}, {}, 0.0};
    std::vector<float> loss(static_cast<std::size_t>(P)), grad(s.logits.size());
    cross_entropy_forward_backward(x, t, view(loss.data(), positions), view(grad.data(), s.shape), none,
                                   nullptr, impl);
    float m = 0.0f;
    cross_entropy(x, t, view(&m, {}), mean, impl);

    std::vector<double> el, eg_t, eg_o;
    for (std::int64_t p = 0; p < P; ++p) {
      if (!pr_none.counted(p)) continue;
      el.push_back(ref::ulp_error(loss[p], r_none.loss[p]));
      const std::int64_t target = s.probability ? -1 : pr_none.target_at(p);
      for (std::int64_t k = 0; k < C; ++k) {
        const double e = ref::ulp_error(grad[element_index(s.shape, p, k)], r_none.grad[p * C + k]);
        (k == target ? eg_t : eg_o).push_back(e);
      }
    }
    c.loss = summarize(std::move(el));
    c.grad_target = summarize(std::move(eg_t));
    c.grad_other = summarize(std::move(eg_o));
    c.mean_ulp = ref::ulp_error(m, r_mean.reduced);
    cells.push_back(std::move(c));
  }
  return cells;
}

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string o = "[";
  for (std::size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

json stat_json(const stat& s) {
  if (s.count == 0) return nullptr;
  return {{"max", json_number(s.max)}, {"median", json_number(s.median)}, {"count", s.count}};
}

// Quantities whose max exceeds the tier's bound (inside the domain only).
json exceeded(const cell& c) {
  json a = json::array();
  if (c.outside) return a;
  if (c.loss.count && exceeds(c.loss.max, c.bounds.loss)) a.push_back("loss");
  if (c.grad_target.count && exceeds(c.grad_target.max, c.bounds.grad)) a.push_back("grad_target");
  if (c.grad_other.count && exceeds(c.grad_other.max, c.bounds.grad)) a.push_back("grad_other");
  if (exceeds(c.mean_ulp, c.bounds.mean)) a.push_back("mean");
  return a;
}

struct scenario_info {
  std::string id, description;
  std::vector<std::int64_t> shape;
  double seconds;
};

}  // namespace

CLI::App* add_report_command(CLI::App& app, report_args& a) {
  CLI::App* c = app.add_subcommand(
      "report", "Accuracy of every implementation against the reference on fixed scenarios, and the "
                "examples; writes report.md and report.json");
  c->add_flag("--quick", a.quick, "fewer rows per scenario (seconds instead of minutes)");
  c->add_option("--out", a.out, "output directory (default reports/out)");
  return c;
}

int run_report(const report_args& a) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(a.out, ec);
  if (ec) throw input_error(a.out + ": cannot create the output directory: " + ec.message());

  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  std::vector<cell> cells;
  std::vector<scenario_info> infos;
  for (const scenario_spec& spec : report_scenarios(a.quick)) {
    const auto t0 = clock::now();
    std::cerr << "report: " << spec.id << " ..." << std::flush;
    const scenario s = spec.build();
    auto c = measure(s);
    cells.insert(cells.end(), c.begin(), c.end());
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    infos.push_back({s.id, s.description, s.shape, secs});
    std::cerr << " " << fmt(secs, "%.1f") << " s\n";
  }
  std::cerr << "report: examples ..." << std::flush;
  const std::vector<examples::outcome> ex = examples::run_all();
  std::cerr << " done\n";
  const double total = std::chrono::duration<double>(clock::now() - start).count();

  // ---- Markdown
  std::ostringstream md;
  md << "# xent accuracy report\n\n"
     << "Errors in ulps of the float32 result against the multiprecision reference ("
     << ref::default_precision_bits << "-bit MPFR, one rounding): `|y - r| / ulp(RN(r))` "
     << "(DESIGN.md §3). Per-sample loss with reduction `none` (counted positions), gradient "
     << "entries of the per-sample loss (upstream 1) split into the target entry and the others, "
     << "and the `mean` reduction. Cells marked † are outside the implementation's declared "
     << "domain (its tier's bounds do not apply there); the reasons are listed below the table. "
     << "Values in **bold** exceed the tier's bound inside the domain.\n\n";
  md << "| scenario | implementation | tier | loss max | loss median | grad target max | "
        "grad target median | grad other max | grad other median | mean |\n"
     << "|---|---|---|--:|--:|--:|--:|--:|--:|--:|\n";
  auto num = [](double v, bool has, bool outside, double bound = std::nan("")) {
    if (!has) return std::string("—");
    if (outside) return ulp_text(v) + " †";
    return exceeds(v, bound) ? "**" + ulp_text(v) + "**" : ulp_text(v);
  };
  for (const cell& c : cells) {
    const bool o = c.outside.has_value();
    md << "| `" << c.scenario << "` | " << c.impl << " | " << c.tier << " | "
       << num(c.loss.max, c.loss.count, o, c.bounds.loss) << " | "
       << num(c.loss.median, c.loss.count, o) << " | "
       << num(c.grad_target.max, c.grad_target.count, o, c.bounds.grad) << " | "
       << num(c.grad_target.median, c.grad_target.count, o) << " | "
       << num(c.grad_other.max, c.grad_other.count, o, c.bounds.grad) << " | "
       << num(c.grad_other.median, c.grad_other.count, o) << " | "
       << num(c.mean_ulp, true, o, c.bounds.mean)
       << " |\n";
  }
  bool any_outside = false;
  for (const cell& c : cells)
    if (c.outside) {
      if (!any_outside) md << "\n### † Outside the declared domain\n\n";
      any_outside = true;
      md << "- " << c.impl << " on `" << c.scenario << "`: " << *c.outside << "\n";
    }
  md << "\n### Scenarios\n\n| scenario | description | logits shape | reference time |\n|---|---|---|--:|\n";
  for (const auto& s : infos)
    md << "| `" << s.id << "` | " << s.description << " | " << shape_str(s.shape) << " | "
       << fmt(s.seconds, "%.1f") << " s |\n";
  md << "\n### Implementations\n\n| name | tier | domain | description |\n|---|---|---|---|\n";
  for (const implementation* i : implementations())
    md << "| " << i->name() << " | " << to_string(i->tier()) << " | " << i->domain() << " | "
       << i->description() << (i->supported() ? "" : " (not supported on this CPU)") << " |\n";

  md << "\n## Examples\n";
  bool examples_ok = true;
  for (const auto& e : ex) {
    examples_ok = examples_ok && e.passed;
    md << "\n### " << e.name << ": " << e.title << " — " << (e.passed ? "PASS" : "FAIL") << "\n\n```text\n";
    for (const auto& l : e.lines) md << l << "\n";
    md << "```\n";
  }
  md << "\n_" << (a.quick ? "quick run, " : "") << "generated in " << fmt(total, "%.1f") << " s_\n";

  // ---- JSON: the same numbers.
  json j;
  j["generator"] = "xent report";
  j["quick"] = a.quick;
  j["reference_precision_bits"] = ref::default_precision_bits;
  j["seconds"] = total;
  json sc = json::array();
  for (const auto& s : infos)
    sc.push_back({{"id", s.id}, {"description", s.description}, {"shape", s.shape}, {"seconds", s.seconds}});
  j["scenarios"] = sc;
  json impls = json::array();
  for (const implementation* i : implementations())
    impls.push_back({{"name", i->name()},
                     {"tier", to_string(i->tier())},
                     {"domain", i->domain()},
                     {"supported", i->supported()},
                     {"description", i->description()}});
  j["implementations"] = impls;
  json acc = json::array();
  for (const cell& c : cells)
    acc.push_back({{"scenario", c.scenario},
                   {"implementation", c.impl},
                   {"tier", c.tier},
                   {"outside_domain", c.outside ? json(*c.outside) : json(nullptr)},
                   {"loss", stat_json(c.loss)},
                   {"grad_target", stat_json(c.grad_target)},
                   {"grad_other", stat_json(c.grad_other)},
                   {"mean", json_number(c.mean_ulp)},
                   {"exceeds_tier", exceeded(c)}});
  j["accuracy"] = acc;
  json exs = json::array();
  for (const auto& e : ex)
    exs.push_back({{"name", e.name}, {"title", e.title}, {"passed", e.passed}, {"lines", e.lines}});
  j["examples"] = exs;

  const std::string md_path = (fs::path(a.out) / "report.md").string();
  const std::string json_path = (fs::path(a.out) / "report.json").string();
  auto write_file = [](const std::string& path, const std::string& text) {
    std::ofstream f(path);
    f << text;
    f.close();
    if (!f) throw input_error(path + ": cannot write");
  };
  write_file(md_path, md.str());
  write_file(json_path, j.dump(2) + "\n");
  std::cout << md.str();
  std::cerr << "report: wrote " << md_path << " and " << json_path << "\n";
  if (!examples_ok) {
    std::cerr << "xent: error: an example failed (see the Examples section)\n";
    return 1;
  }
  return 0;
}

}  // namespace xent::cli

// GCC 12 warns falsely (-Wrestrict) on "literal" + std::string concatenations.
#pragma GCC diagnostic ignored "-Wrestrict"
#include <algorithm>
#include <cmath>
#include <sstream>

#include "format.hpp"
#include "report_write.hpp"
#include "xent/kernel.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace xent::reports {

using cli::fmt;
using cli::ulp_text;

namespace {

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string o = "[";
  for (std::size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

// An ulp figure: † outside the domain, bold above the tier's bound.
std::string ulp_cell(double v, bool outside, double bound) {
  if (outside) return ulp_text(v) + " †";
  return exceeds(v, bound) ? "**" + ulp_text(v) + "**" : ulp_text(v);
}

std::string percent(double f) { return fmt(100.0 * f, "%.1f"); }

std::vector<std::string> impl_names(const sweep_result& s) {
  std::vector<std::string> v;
  for (const cell& c : s.cells)
    if (std::find(v.begin(), v.end(), c.impl) == v.end()) v.push_back(c.impl);
  return v;
}

void headline(std::ostringstream& md, const report_data& d) {
  const std::string shape = d.bench.available ? d.bench.headline_shape() : "";
  const int t = d.bench.available ? d.bench.max_threads() : 0;
  md << "## Headline\n\nWorst error in float32 ulps over every float32 scenario inside the implementation's declared "
        "domain (cells outside it, †, are in the details); **bold**: above the tier's bound. ";
  if (!shape.empty())
    md << "Throughput: `" << shape << "` loss (`fwd`, mean) with " << t << " thread(s), as GB/s, as a fraction of "
       << "the read-bandwidth probe measured in the same run, as a fraction of the CE roofline (the lower of that "
       << "probe and the compute floor: max scan, value-only exp, float sum on L1-resident rows, bench/README.md), "
       << "and as a speed-up over LibTorch and over oneDNN"
       << (shape != "n4096c32000" ? " (the quick set has no `n4096c32000`: its largest shape stands in)" : "")
       << ".\n\n";
  else
    md << "Throughput: " << (d.bench.note.empty() ? "not measured (--no-bench)" : d.bench.note) << ".\n\n";
  md << "| implementation | tier | loss | grad target | grad other | mean | sum | † cells | GB/s | of probe | of CE roofline | "
        "vs LibTorch | vs oneDNN |\n"
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n";
  auto perf = [&](const std::string& impl) {
    // The registry's LibTorch peer is "torch"; the benchmark calls it "libtorch".
    const std::string name = impl == "torch" ? "libtorch" : impl;
    const bench_point* p = shape.empty() ? nullptr : d.bench.find(name, shape, "fwd", t);
    if (!p) return std::string("— | — | — | — | —");
    auto ratio = [](bool self, double v) {
      return self ? std::string("1") : std::isnan(v) ? std::string("—") : fmt(v, "%.2fx");
    };
    return fmt(p->bytes_per_second / 1e9, "%.2f") + " | " + fmt(p->roofline_fraction, "%.2f") + " | " +
           (std::isnan(p->ce_roofline_fraction) ? std::string("—") : fmt(p->ce_roofline_fraction, "%.2f")) + " | " +
           ratio(name == "libtorch", p->vs_torch) + " | " + ratio(name == "onednn", p->vs_onednn);
  };
  for (const std::string& impl : impl_names(d.sweep)) {
    std::string tier;
    std::array<double, quantity_count> worst{};
    std::array<bool, quantity_count> any{};
    int outside = 0, total = 0, failed = 0, skipped = 0;
    for (const cell& c : d.sweep.cells) {
      if (c.impl != impl || c.dtype != "float32") continue;  // other dtypes: their own table
      tier = c.tier;
      ++total;
      if (c.failure) ++failed;
      if (c.skipped) ++skipped;
      if (c.outside) {
        ++outside;
        continue;
      }
      for (std::size_t k = 0; k < quantity_count; ++k)
        if (c.q[k].count) {
          worst[k] = any[k] ? std::max(worst[k], c.q[k].max) : c.q[k].max;
          any[k] = true;
        }
    }
    md << "| " << impl << " | " << tier;
    for (std::size_t k = 0; k < quantity_count; ++k)
      md << " | " << (any[k] ? ulp_cell(worst[k], false, tier_bound(tier, all_quantities[k])) : "—");
    md << " | " << outside << "/" << total << (failed ? ", **" + std::to_string(failed) + " FAILED**" : "")
       << (skipped ? ", " + std::to_string(skipped) + " skipped (unsupported)" : "")
       << " | " << perf(impl) << " |\n";
  }
  const auto names = impl_names(d.sweep);
  if (!shape.empty() && d.bench.find("libtorch", shape, "fwd", t) &&
      std::find(names.begin(), names.end(), "torch") == names.end())
    md << "| libtorch | (peer, not in the sweep) | — | — | — | — | — | — | " << perf("libtorch") << " |\n";
  if (d.bench.available && !d.bench.note.empty()) md << "\nNote: " << d.bench.note << "\n";
}

// bfloat16, float16 and float64 logits: the worst error per implementation
// and dtype over those scenarios, in ulps of the results' dtype, and the
// share of results correctly rounded (the worst scenario's).
void other_dtypes(std::ostringstream& md, const report_data& d) {
  struct row {
    std::string impl, tier, dtype;
    std::array<double, quantity_count> worst{};
    std::array<bool, quantity_count> any{};
    double cr = 1.0;
    int cells = 0, failed = 0, skipped = 0;
  };
  std::vector<row> rows;
  for (const cell& c : d.sweep.cells) {
    if (c.dtype == "float32") continue;
    auto it = std::find_if(rows.begin(), rows.end(), [&](const row& r) { return r.impl == c.impl && r.dtype == c.dtype; });
    if (it == rows.end()) it = rows.insert(rows.end(), row{c.impl, c.tier, c.dtype});
    ++it->cells;
    if (c.failure) ++it->failed;
    if (c.skipped) ++it->skipped;
    if (c.outside || c.failure || c.skipped) continue;
    for (std::size_t k = 0; k < quantity_count; ++k)
      if (c.q[k].count) {
        it->worst[k] = it->any[k] ? std::max(it->worst[k], c.q[k].max) : c.q[k].max;
        it->any[k] = true;
        it->cr = std::min(it->cr, c.q[k].correctly_rounded);
      }
  }
  if (rows.empty()) return;
  std::stable_sort(rows.begin(), rows.end(), [](const row& a, const row& b) { return a.dtype < b.dtype; });
  md << "\n## bfloat16, float16 and float64 logits\n\nThe scenarios ending in `_bf16` / `_f16`: a float32 fill "
        "rounded once to the dtype; `_f64`: the float32 fill with float64's full significand (each value v becomes "
        "v (1 + h 2^-36), h an odd 24-bit integer hashed from v, so equal values stay equal). Results in the "
        "logits' dtype (PyTorch's), errors in ulps of that dtype (bfloat16: 8 significant bits; float16: 11, "
        "subnormals from 2^-24; float64: 53) against the exact value of the inputs, the same tier bounds as "
        "float32; **bold**: above the tier's bound. Only the implementations that compute "
        "the dtype are measured. CR: the lowest share of correctly rounded results over the scenarios and "
        "quantities.\n\n"
        "| dtype | implementation | tier | loss | grad target | grad other | mean | sum | CR | cells |\n"
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|\n";
  for (const row& r : rows) {
    md << "| " << r.dtype << " | " << r.impl << " | " << r.tier;
    for (std::size_t k = 0; k < quantity_count; ++k)
      md << " | " << (r.any[k] ? ulp_cell(r.worst[k], false, tier_bound(r.tier, all_quantities[k])) : "—");
    md << " | " << percent(r.cr) << " % | " << r.cells << (r.failed ? ", **" + std::to_string(r.failed) + " FAILED**" : "")
       << (r.skipped ? ", " + std::to_string(r.skipped) + " skipped" : "") << " |\n";
  }
}

void gate(std::ostringstream& md, const report_data& d) {
  if (!d.gate) return;
  md << "\n## Accuracy gate (`" << d.baseline_path << "`)\n\n";
  if (d.gate->failures.empty()) md << "PASSED: no measured maximum exceeds the baseline.\n";
  else {
    md << "FAILED:\n\n```text\n";
    for (const auto& f : d.gate->failures) md << f << "\n";
    md << "```\n";
  }
  for (const auto& n : d.gate->notes) md << "\n- " << n;
  if (d.gate->improved()) {
    md << "\n\nErrors shrank below the baseline on this host:\n";
    for (const auto& i : d.gate->improvements) md << "\n- " << i;
    md << "\n\nThe file holds the maximum over every Highway target, so this host's smaller errors are no table "
          "to commit: regenerate it with `./run baseline` (on a host with the most targets) and review the diff.\n";
  }
  md << "\n";
}

void tier_violations(std::ostringstream& md, const report_data& d) {
  std::vector<std::string> lines;
  for (const cell& c : d.sweep.cells)
    for (quantity q : all_quantities)
      if (!c.outside && outside_tier(c, q))
        lines.push_back(c.tier + " bound " + ulp_text(tier_bound(c.tier, q)) + " ulp exceeded: " + repro(c, q));
  if (lines.empty()) return;
  md << "\n## Above the tier's bound\n\nThe bound here is the tier's ulp part only; with label smoothing or probability "
        "targets the tiers also allow `2^-50 S (C p_j A + |b_j|)` absolute on gradient entries near exact "
        "cancellation (README, accuracy tiers), which the property suite applies.\n\n```text\n";
  for (const auto& l : lines) md << l << "\n";
  md << "```\n";
}

void worst_inputs(std::ostringstream& md, const report_data& d) {
  md << "\n## Worst inputs\n\nThe element with the largest error per implementation and quantity (inside the "
        "domain), as a repro: rerun it with `xent report --no-bench --no-examples --filter SCENARIO --impl IMPL`.\n\n```text\n";
  for (const std::string& impl : impl_names(d.sweep))
    for (quantity q : all_quantities) {
      const cell* w = nullptr;
      for (const cell& c : d.sweep.cells)
        if (c.impl == impl && !c.outside && c[q].count && (!w || c[q].max > (*w)[q].max)) w = &c;
      if (w) md << repro(*w, q) << "\n";
    }
  md << "```\n";
}

void plots(std::ostringstream& md, const report_data& d) {
  md << "\n## Plots\n\n";
  for (const auto& p : d.plots.plots) md << "![" << p.title << "](" << p.file << ")\n\n";
  for (const auto& n : d.plots.notes) md << "- " << n << "\n";
}

void details(std::ostringstream& md, const report_data& d) {
  md << "\n## Accuracy in detail\n\nPer scenario: the per-sample loss (`none`, counted positions), the gradient "
        "entries of the per-sample loss (upstream 1) at the target and elsewhere, the `mean` and `sum` "
        "reductions. max / p99 / median in ulps; bits: mean of Herbie's bits of error; CR: % correctly "
        "rounded; special: NaN/inf mismatches. † outside the declared domain (reasons below).\n";
  for (const std::string& impl : impl_names(d.sweep)) {
    md << "\n<details><summary>" << impl << "</summary>\n\n"
       << "| scenario | implementation | tier | loss max | p99 | median | bits | CR % | grad target max | p99 | "
          "grad other max | p99 | median | grad CR % | mean | sum | special |\n"
       << "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n";
    for (const cell& c : d.sweep.cells) {
      if (c.impl != impl) continue;
      if (c.skipped) {  // no figures: say so rather than print empty statistics
        md << "| `" << c.scenario << "` | " << c.impl << " | " << c.tier << " | skipped (unsupported)";
        for (int k = 0; k < 13; ++k) md << " | —";
        md << " |\n";
        continue;
      }
      const bool o = c.outside.has_value();
      auto u = [&](quantity q, double v, bool bounded) {
        return c[q].count ? ulp_cell(v, o, bounded ? tier_bound(c.tier, q) : NAN) : std::string("—");
      };
      const auto& gt = c[quantity::grad_target];
      const auto& go = c[quantity::grad_other];
      const double gcount = static_cast<double>(gt.count + go.count);
      std::int64_t special = 0;
      for (const auto& s : c.q) special += s.special_mismatches;
      md << "| `" << c.scenario << "` | " << c.impl << " | " << c.tier << " | "
         << u(quantity::loss, c[quantity::loss].max, true) << " | " << u(quantity::loss, c[quantity::loss].p99, false)
         << " | " << u(quantity::loss, c[quantity::loss].median, false) << " | "
         << fmt(c[quantity::loss].mean_bits, "%.2f") << " | " << percent(c[quantity::loss].correctly_rounded) << " | "
         << u(quantity::grad_target, gt.max, true) << " | " << u(quantity::grad_target, gt.p99, false) << " | "
         << u(quantity::grad_other, go.max, true) << " | " << u(quantity::grad_other, go.p99, false) << " | "
         << u(quantity::grad_other, go.median, false) << " | "
         << (gcount ? percent((gt.correctly_rounded * static_cast<double>(gt.count) +
                               go.correctly_rounded * static_cast<double>(go.count)) / gcount)
                    : std::string("—"))
         << " | " << u(quantity::mean, c[quantity::mean].max, true) << " | " << u(quantity::sum, c[quantity::sum].max, true)
         << " | " << special << " |\n";
    }
    bool first = true;
    for (const cell& c : d.sweep.cells)
      if (c.impl == impl && c.outside) {
        if (first) md << "\n† outside the declared domain:\n\n";
        first = false;
        md << "- `" << c.scenario << "`: " << *c.outside << "\n";
      }
    first = true;
    for (const cell& c : d.sweep.cells)
      if (c.impl == impl && c.skipped) {
        if (first) md << "\nSkipped (no figures, not failures: the plug-in answered UNSUPPORTED outside its declared capabilities):\n\n";
        first = false;
        md << "- `" << c.scenario << "`: " << *c.skipped << "\n";
      }
    first = true;
    for (const cell& c : d.sweep.cells)
      if (c.impl == impl && c.failure) {
        if (first) md << "\n**FAILED** (no figures: the implementation threw or crashed):\n\n";
        first = false;
        md << "- `" << c.scenario << "`: " << *c.failure << "\n";
      }
    md << "\n</details>\n";
  }
  // stable's Ziv fallbacks (docs/correct_rounding.md): per scenario, the
  // share of results whose float64 rounding test failed.
  bool any = false;
  for (const cell& c : d.sweep.cells) any = any || c.rounded > 0;
  if (!any) return;
  md << "\n<details><summary>stable: rounding fallbacks</summary>\n\n"
        "Results whose float64 evaluation was too close to a rounding boundary of the result's dtype for its "
        "error bound and were recomputed: in double-double, or exactly where every logit of the row is its "
        "maximum or -inf (docs/correct_rounding.md; `_f64` scenarios: whose "
        "double-double evaluation was too close to a float64 boundary, §8); exact: of those, decided by exact "
        "expansion arithmetic (exact ties, exact zeros, remainders of known sign) or, in float64, by interval "
        "arithmetic; unresolved: still undecided after every test, rounded as RN of the double-double value "
        "(the sweep's CR column still checks them against the reference).\n\n"
        "| scenario | results | retried | retried % | exact | unresolved |\n|---|--:|--:|--:|--:|--:|\n";
  for (const cell& c : d.sweep.cells)
    if (c.rounded > 0)
      md << "| `" << c.scenario << "` | " << c.rounded << " | " << c.retried << " | "
         << fmt(100.0 * static_cast<double>(c.retried) / static_cast<double>(c.rounded), "%.3g") << " | "
         << c.exact << " | " << c.unresolved << " |\n";
  md << "\n</details>\n";
}

void scenarios(std::ostringstream& md, const report_data& d) {
  md << "\n## Scenarios\n\nIds are benchdnn-style problem strings (`n` rows, `c` classes, `d` spatial dims); the "
        "fill's seed is a hash of the id.\n\n| scenario | description | logits shape | time |\n|---|---|---|--:|\n";
  for (const auto& s : d.sweep.scenarios)
    md << "| `" << s.id << "` | " << s.description << " | " << shape_str(s.shape) << " | " << fmt(s.seconds, "%.1f")
       << " s |\n";
  md << "\n## Implementations\n\n| name | tier | domain | description |\n|---|---|---|---|\n";
  for (const implementation* i : implementations())
    md << "| " << i->name() << " | " << to_string(i->tier()) << " | " << i->domain() << " | " << i->description()
       << (i->supported() ? "" : " (not supported on this CPU)") << " |\n";
}

}  // namespace

std::string report_markdown(const report_data& d) {
  std::ostringstream md;
  md << "# xent accuracy and performance report\n\n"
     << "Errors in ulps of the result's dtype (float32; bfloat16, float16 and float64 for the `_bf16` / `_f16` / "
        "`_f64` scenarios) "
     << "against the multiprecision reference ("
     << ref::default_precision_bits << "-bit MPFR, one rounding): `|y - r| / ulp(RN(r))` (docs/design.md §3). "
     << d.sweep.scenarios.size() << " scenarios (" << (d.quick ? "quick set" : "full set")
     << "), C in {2, 10, 1000, 32000, 256000}.\n\n";
  headline(md, d);
  other_dtypes(md, d);
  gate(md, d);
  tier_violations(md, d);
  worst_inputs(md, d);
  plots(md, d);
  performance_section(md, d);
  details(md, d);
  scenarios(md, d);
  md << "\n## Context\n\n| | |\n|---|---|\n";
  for (const auto& [k, v] : d.context) md << "| " << k << " | " << v << " |\n";
  if (!d.examples.empty()) md << "\n## Examples\n";
  for (const auto& e : d.examples) {
    md << "\n### " << e.name << ": " << e.title << " — " << (e.passed ? "PASS" : "FAIL") << "\n\n```text\n";
    for (const auto& l : e.lines) md << l << "\n";
    md << "```\n";
  }
  md << "\n_" << (d.quick ? "quick run, " : "") << "accuracy sweep " << fmt(d.sweep.seconds, "%.1f") << " s, total "
     << fmt(d.seconds, "%.1f") << " s_\n";
  return md.str();
}

}  // namespace xent::reports

// GCC 12 warns falsely (-Wrestrict) on "literal" + std::string concatenations.
#pragma GCC diagnostic ignored "-Wrestrict"
#include <cmath>

#include "format.hpp"
#include "report_write.hpp"
#include "xent/kernel.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace xent::reports {

using cli::json_number;

namespace {

using json = nlohmann::ordered_json;

json stats_json(const cell& c, quantity q) {
  const quantity_stats& s = c[q];
  if (s.count == 0) return nullptr;
  return {{"max", json_number(s.max)},
          {"p99", json_number(s.p99)},
          {"median", json_number(s.median)},
          {"count", s.count},
          {"mean_bits", json_number(s.mean_bits)},
          {"correctly_rounded", json_number(s.correctly_rounded)},
          {"special_mismatches", s.special_mismatches},
          {"worst",
           {{"position", s.worst.position},
            {"class", s.worst.cls},
            {"got", json_number(static_cast<double>(s.worst.got))},
            {"want", s.worst.want},
            {"ulp", json_number(s.worst.ulp)}}},
          {"repro", repro(c, q)}};
}

json bench_json(const bench_data& b) {
  json j;
  j["available"] = b.available;
  j["source"] = b.source;
  j["note"] = b.note;
  json probes = json::object();
  for (const auto& [t, v] : b.probe_read) probes["t" + std::to_string(t)] = v;
  j["probe_read_bytes_per_second"] = probes;
  j["headline_shape"] = b.headline_shape();
  j["highway_targets"] = b.targets;
  j["highway_implementations"] = b.highway_impls;
  json pts = json::array();
  for (const auto& p : b.points)
    pts.push_back({{"impl", p.impl},
                   {"shape", p.shape},
                   {"mode", p.mode},
                   {"threads", p.threads},
                   {"classes", p.classes},
                   {"bytes_per_second", json_number(p.bytes_per_second)},
                   {"roofline_fraction", json_number(p.roofline_fraction)},
                   {"ce_roofline_fraction", json_number(p.ce_roofline_fraction)},
                   {"vs_torch", json_number(p.vs_torch)},
                   {"vs_onednn", json_number(p.vs_onednn)},
                   {"vs_t1", json_number(p.vs_t1)},
                   {"kernel", p.kernel},
                   {"target", p.target},
                   {"pinned", p.pinned},
                   {"capped", p.capped},
                   // Over the peers capped at this case's target ("nan" where
                   // the run measured none: vs_torch, vs_onednn are then it).
                   {"vs_torch_at_target", json_number(b.capped_peer_for(p, "libtorch") ? b.vs_peer(p, "libtorch") : std::nan(""))},
                   {"vs_onednn_at_target", json_number(b.capped_peer_for(p, "onednn") ? b.vs_peer(p, "onednn") : std::nan(""))},
                   {"peak_extra_bytes", json_number(p.peak_extra_bytes)},
                   {"extra_per_NxC", json_number(p.extra_per_nxc)}});
  j["results"] = pts;
  return j;
}

}  // namespace

nlohmann::ordered_json report_json(const report_data& d) {
  json j;
  j["generator"] = "xent report";
  j["quick"] = d.quick;
  j["reference_precision_bits"] = ref::default_precision_bits;
  j["seconds"] = d.seconds;
  j["sweep_seconds"] = d.sweep.seconds;
  json ctx = json::object();
  for (const auto& [k, v] : d.context) ctx[k] = v;
  j["context"] = ctx;
  json sc = json::array();
  for (const auto& s : d.sweep.scenarios)
    sc.push_back({{"id", s.id},
                  {"family", s.family},
                  {"description", s.description},
                  {"shape", s.shape},
                  {"classes", s.classes},
                  {"seconds", s.seconds}});
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
  for (const cell& c : d.sweep.cells) {
    json exceeded = json::array();
    if (!c.outside)
      for (quantity q : all_quantities)
        if (outside_tier(c, q)) exceeded.push_back(to_string(q));
    acc.push_back({{"scenario", c.scenario},
                   {"implementation", c.impl},
                   {"tier", c.tier},
                   {"dtype", c.dtype},
                   {"outside_domain", c.outside ? json(*c.outside) : json(nullptr)},
                   {"failure", c.failure ? json(*c.failure) : json(nullptr)},
                   {"skipped", c.skipped ? json(*c.skipped) : json(nullptr)},
                   {"loss", stats_json(c, quantity::loss)},
                   {"grad_target", stats_json(c, quantity::grad_target)},
                   {"grad_other", stats_json(c, quantity::grad_other)},
                   {"mean", json_number(c[quantity::mean].max)},
                   {"sum", json_number(c[quantity::sum].max)},
                   {"reductions", {{"mean", stats_json(c, quantity::mean)}, {"sum", stats_json(c, quantity::sum)}}},
                   {"exceeds_tier", exceeded},
                   {"rounding", c.rounded ? json{{"results", c.rounded},
                                                 {"retried", c.retried},
                                                 {"exact", c.exact},
                                                 {"unresolved", c.unresolved},
                                                 {"retried_fraction", json_number(static_cast<double>(c.retried) /
                                                                                  static_cast<double>(c.rounded))}}
                                          : json(nullptr)}});
  }
  j["accuracy"] = acc;
  j["benchmarks"] = bench_json(d.bench);
  json pl = json::array();
  for (const auto& p : d.plots.plots) pl.push_back({{"file", p.file}, {"title", p.title}});
  j["plots"] = {{"files", pl}, {"notes", d.plots.notes}};
  if (d.gate)
    j["gate"] = {{"baseline", d.baseline_path},
                 {"passed", d.gate->failures.empty()},
                 {"failures", d.gate->failures},
                 {"notes", d.gate->notes},
                 {"improved", d.gate->improved()}, {"improvements", d.gate->improvements}};
  json exs = json::array();
  for (const auto& e : d.examples)
    exs.push_back({{"name", e.name}, {"title", e.title}, {"passed", e.passed}, {"lines", e.lines}});
  j["examples"] = exs;
  return j;
}

}  // namespace xent::reports

#include "verify.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

#include "xent/child_process.hpp"
#include "xent/error.hpp"

#ifdef XENT_HAVE_VERIFY
#include <cassert>  // rapidcheck/detail/Variant.hpp uses assert without it
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <sstream>

#include <rapidcheck/detail/Configuration.h>
#include <rapidcheck/detail/Results.h>

#include "evaluate.hpp"
#include "generators.hpp"
#include "property.hpp"
#include "tracker.hpp"
#include "xent/reference.hpp"
#endif
#include <map>

#include "known_deviations.hpp"

namespace xent::cli {

CLI::App* add_verify_command(CLI::App& app, verify_args& a) {
  CLI::App* c = app.add_subcommand(
      "verify",
      "Run the property suite and an accuracy sweep on a plug-in kernel (xent/kernel/plugin.h) or a registered "
      "implementation; exit 0 only when every property of its tier holds");
  c->add_option("--plugin", a.plugins, "shared library implementing xent/kernel/plugin.h (repeatable)");
  c->add_option("--python", a.python,
                "a Python function with F.cross_entropy's signature, as module:function (importable from the "
                "current directory or PYTHONPATH); needs the Python module of this build (python/)");
  c->add_option("--impl", a.impls,
                "registered implementations to verify instead, comma-separated (see xent list; e.g. torch, stable)")
      ->delimiter(',');
  c->add_option("--tier", a.tier,
                "judge it as if it declared this tier (correctly_rounded, accurate, fast, relaxed, standard, naive)")
      ->check(CLI::IsMember({"correctly_rounded", "accurate", "fast", "relaxed", "standard", "naive"}));
  c->add_option("--property", a.only, "run only this property (name or suite/name; repeatable)");
  c->add_option("--scale", a.scale, "multiply every property's case budget (default 1)")
      ->check(CLI::PositiveNumber);
  c->add_option("--seed", a.seed, "RapidCheck seed (default 20240611; RC_PARAMS wins when set)");
  c->add_option("--timeout", a.timeout_s, "seconds per property before it counts as hung (default 900)")
      ->check(CLI::PositiveNumber);
  c->add_flag("!--no-sweep", a.sweep, "skip the accuracy sweep");
  c->add_flag("!--no-fork", a.fork, "run in this process (a crashing kernel then kills xent)");
  c->add_flag("--verbose", a.verbose, "print the worst errors of passing properties too");
  c->add_option("--known-deviations", a.known_deviations,
                "count this peer's documented deviations (peers/known_deviations.hpp) as known, not new: torch "
                "(e.g. for a wrapper of F.cross_entropy), or none. Default: torch for --impl torch and for "
                "--python torch.nn.functional:cross_entropy, none otherwise; only at that peer's tier")
      ->check(CLI::IsMember({"torch", "none"}));
  return c;
}

#ifndef XENT_HAVE_VERIFY

int run_verify(const verify_args&) {
  throw error("verify", "this xent was built without the property suite (XENT_BUILD_TESTS=OFF)");
}

#else

namespace {

using namespace xent::props;

tier parse_tier(const std::string& s) {
  if (s == "correctly_rounded") return tier::correctly_rounded;
  if (s == "accurate") return tier::accurate;
  if (s == "fast") return tier::fast;
  if (s == "relaxed") return tier::relaxed;
  if (s == "standard") return tier::standard;
  if (s == "naive") return tier::naive;
  throw error("tier", "unknown tier '" + s + "' (correctly_rounded, accurate, fast, relaxed, standard, naive)");
}

// A registered implementation judged at another tier (--tier with --impl).
class tier_override final : public implementation {
 public:
  tier_override(const implementation& base, xent::tier t) : base_(base), tier_(t) {}
  std::string name() const override { return base_.name(); }
  std::string description() const override { return base_.description(); }
  xent::tier tier() const override { return tier_; }
  std::string domain() const override { return base_.domain(); }
  std::optional<std::string> outside_domain(const problem& p) const override { return base_.outside_domain(p); }
  bool supported() const override { return base_.supported(); }
  bool thread_count_independent() const override { return base_.thread_count_independent(); }
  bool layout_independent() const override { return base_.layout_independent(); }
  bool peer() const override { return base_.peer(); }
  std::optional<capabilities> declared_capabilities() const override { return base_.declared_capabilities(); }
  std::uint32_t dtypes() const override { return base_.dtypes(); }
  void forward(const problem& p) const override { base_.forward(p); }
  void forward_backward(const problem& p) const override { base_.forward_backward(p); }

 private:
  const implementation& base_;
  xent::tier tier_;
};

// ---- running work in a child process ------------------------------------

// Fields travel as "<length>\n<bytes>" records through a pipe.
void put(std::string& out, const std::string& field) {
  out += std::to_string(field.size());
  out += '\n';
  out += field;
}

std::vector<std::string> parse_fields(const std::string& in) {
  std::vector<std::string> v;
  std::size_t i = 0;
  while (i < in.size()) {
    const std::size_t nl = in.find('\n', i);
    if (nl == std::string::npos) break;
    const std::size_t n = std::stoul(in.substr(i, nl - i));
    if (nl + 1 + n > in.size()) break;
    v.push_back(in.substr(nl + 1, n));
    i = nl + 1 + n;
  }
  return v;
}

struct child_result {
  std::vector<std::string> fields;
  std::string died;  // empty when the child returned its fields; else how it ended
};

// Runs `work` in a forked child (xent/child_process.hpp), or in this process
// when fork_it is false.
// The parent never runs kernels or OpenMP itself, so every child starts from
// a clean state (libgomp's thread pool does not survive fork).
child_result in_child(const std::function<std::vector<std::string>()>& work, bool fork_it, double timeout_s) {
  auto guarded = [&work] {
    try {
      return work();
    } catch (const std::exception& e) {
      return std::vector<std::string>{"error", e.what()};
    } catch (...) {
      return std::vector<std::string>{"error", "unknown exception"};
    }
  };
  if (!fork_it) return {guarded(), ""};
  const plugins::child_outcome c = plugins::run_in_child(
      [&](int fd) {
        std::string out;
        for (const auto& f : guarded()) put(out, f);
        std::size_t done = 0;
        while (done < out.size()) {
          const ssize_t n = write(fd, out.data() + done, out.size() - done);
          if (n <= 0) break;
          done += static_cast<std::size_t>(n);
        }
      },
      timeout_s);
  child_result r;
  r.fields = parse_fields(c.output);
  if (c.how == plugins::child_outcome::ending::hung) r.died = "hung: killed after " + fmt(timeout_s) + " s";
  else if (c.how == plugins::child_outcome::ending::signaled) r.died = "crashed: " + plugins::signal_name(c.status);
  else if (c.status != 0) r.died = "exited with status " + std::to_string(c.status);
  else if (r.fields.empty()) r.died = "ended without a result (exit() called inside the kernel?)";
  return r;
}

// ---- properties -----------------------------------------------------------

enum class verdict { passed, not_applicable, failed };

struct property_outcome {
  std::string id;    // suite/name
  verdict v = verdict::failed;
  std::string line;  // the one-line status
  std::string details;  // counterexample, messages, worst errors
  std::string known;    // the documented reason, when this failure is a known deviation
  long unsupported = 0;     // cases skipped: the kernel answered UNSUPPORTED outside its declaration
  capabilities exercised;   // what the calls that returned needed
};

// A capability set through the child's pipe: six decimal masks.
std::string encode(const capabilities& c) {
  std::string s;
  for (std::uint32_t v : {c.layouts, c.targets, c.options, c.reductions, c.modes, c.dtypes}) {
    s += std::to_string(v);
    s += ' ';
  }
  return s;
}
capabilities decode(const std::string& s) {
  std::istringstream in(s);
  capabilities c;
  in >> c.layouts >> c.targets >> c.options >> c.reductions >> c.modes >> c.dtypes;
  return c;
}

std::string indent(const std::string& s, const std::string& pad = "      ") {
  std::string o;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) o += pad + l + "\n";
  return o;
}

// In the child: one property, silently, shrunk. Fields: status, cases, text,
// reproduce, tracker summary, cases skipped as unsupported, coverage.
std::vector<std::string> check_property(const property& p, const implementation& impl, double scale,
                                        bool isolate_calls) {
  if (isolate_calls) plugins::set_isolation(impl, plugins::isolation::per_call);
  tracker::get().reset();
  run_mode mode;
  mode.silent = true;
  mode.scale = scale;
  const run_result r = run_property(p, impl, mode);
  const tracker& tr = tracker::get();
  using namespace rc::detail;
  std::ostringstream msg;
  std::string status, cases = "0";
  if (r.result.is<SuccessResult>()) {
    const auto n = r.result.get<SuccessResult>().numSuccess;
    status = n == 0 ? "skipped" : "passed";
    cases = std::to_string(n);
    if (n == 0) msg << "no case ran (RC_PARAMS reproduces another property)";
  } else if (r.result.is<GaveUpResult>()) {
    const auto n = r.result.get<GaveUpResult>().numSuccess;
    cases = std::to_string(n);
    if (!tr.not_applicable().empty()) {
      status = "not_applicable";
      msg << tr.not_applicable();
    } else if (tr.unsupported_cases() > 0) {
      // RapidCheck gave up for the discarded (unsupported) cases. The cases
      // that did run all held; with none, the property is not applicable.
      status = n > 0 ? "passed" : "not_applicable";
      if (n == 0)
        msg << "no supported case (" << tr.unsupported_cases()
            << " skipped as unsupported; first: " << tr.first_unsupported() << ")";
    } else if (impl.declared_capabilities()) {
      // Its preconditions (RC_PRE) rarely or never hold on cases generated
      // inside the declaration: the cases that ran held; none ran, n/a.
      status = n > 0 ? "passed" : "not_applicable";
      msg << (n > 0 ? "" : "no case inside the declared capabilities meets its precondition");
    } else if (tr.outside_cases() > 0) {
      status = "not_applicable";
      msg << "too few cases inside the declared domain (" << tr.outside_cases() << " outside, broke in "
          << tr.outside_broken() << ")";
    } else {
      status = "failed";
      printResultMessage(r.result, msg);
    }
  } else {
    status = "failed";
    cases = std::to_string(r.result.get<FailureResult>().numSuccess);
    printResultMessage(r.result, msg);
  }
  return {status, cases, msg.str(), r.reproduce, tr.summary(), std::to_string(tr.unsupported_cases()),
          encode(tr.coverage())};
}

std::string replay_command(const std::string& reproduce, const std::string& target_args, const property& p) {
  return "RC_PARAMS=\"" + reproduce + "\" xent verify " + target_args + " --property " + p.name;
}

property_outcome verify_property(const property& p, const implementation& impl, const verify_args& a,
                                  const std::string& target_args) {
  property_outcome o;
  o.id = p.suite + "/" + p.name;
  auto run_it = [&](bool isolate_calls) {
    return in_child([&] { return check_property(p, impl, a.scale, isolate_calls); }, a.fork, a.timeout_s);
  };
  child_result c = run_it(false);
  std::string crash_note;
  if (!c.died.empty()) {
    // The kernel took the child down. Run the property again with every call
    // in its own child: the crash becomes a failing case that RapidCheck
    // shrinks, so the report names the input that crashes.
    crash_note = "the kernel " + c.died + "; rerun with each call isolated to find the input:\n";
    if (plugins::is_plugin(&impl)) c = run_it(true);
    if (!c.died.empty()) {
      o.v = verdict::failed;
      o.line = "CRASH " + c.died;
      o.details = plugins::is_plugin(&impl) ? "" : "(calls can be isolated for plug-ins only: no shrunk input)\n";
      return o;
    }
  }
  const auto& f = c.fields;
  if (f.size() == 2 && f[0] == "error") {
    o.v = verdict::failed;
    o.line = "ERROR " + f[1];
    return o;
  }
  if (f.size() < 7) {
    o.v = verdict::failed;
    o.line = "ERROR malformed result from the child process";
    return o;
  }
  o.unsupported = std::stol(f[5]);
  o.exercised = decode(f[6]);
  const std::string skipped = o.unsupported ? ", " + f[5] + " skipped (unsupported)" : "";
  const std::string& status = f[0];
  if (status == "passed") {
    o.v = verdict::passed;
    o.line = "pass  " + f[1] + " cases" + skipped;
    if (a.verbose) o.details = f[4];
  } else if (status == "skipped") {
    o.v = verdict::passed;
    o.line = "skip  " + f[2];
  } else if (status == "not_applicable") {
    o.v = verdict::not_applicable;
    o.line = "n/a   " + f[2];
  } else {
    o.v = verdict::failed;
    o.line = std::string(crash_note.empty() ? "FAIL" : "CRASH") + "  after " + f[1] + " passing cases" + skipped;
    o.details = crash_note + f[2];
    if (!f[3].empty()) o.details += "\nReplay: " + replay_command(f[3], target_args, p) + "\n";
    o.details += f[4];
  }
  return o;
}

// ---- accuracy sweep ---------------------------------------------------------

struct sweep_cell {
  std::string regime;
  std::int64_t classes = 0, rows = 0;
  double loss = 0, grad_target = 0, grad_other = 0, mean = 0;  // max ulps
  std::size_t violations = 0;
  std::string first;  // the first violation
};

// Regimes x class counts, index targets, reduction none and mean, against the
// reference; judged by the same comparison as the properties.
// `known`: the implementation's documented deviations; a failing cell whose
// regime is listed as "sweep:<regime>" counts as known, not new.
std::vector<std::string> sweep(const implementation& impl, const std::map<std::string, std::string>& known) {
  const std::vector<std::pair<std::int64_t, std::int64_t>> shapes{{64, 2}, {64, 10}, {32, 100}, {16, 1000},
                                                                  {2, 32000}};
  std::vector<std::string> out{"ok"};
  std::ostringstream table;
  std::size_t bad = 0, known_cells = 0, skipped = 0, ran = 0;
  std::string first_bad, first_known, first_skipped;
  std::mt19937_64 rng(20240611);
  table << "| regime | C | rows | loss max | grad target max | grad other max | mean | within tier |\n"
        << "|---|--:|--:|--:|--:|--:|--:|---|\n";
  std::vector<regime> regimes = finite_regimes();
  regimes.erase(std::unique(regimes.begin(), regimes.end()), regimes.end());  // weighted lists repeat
  for (regime rg : regimes) {
    for (const auto& [n, C] : shapes) {
      test_case c = test_case::shaped(layout::contiguous, n, C);
      c.reduce = reduction::none;
      c.regime = to_string(rg);
      std::uniform_int_distribution<std::int64_t> pick(0, C - 1);
      for (std::int64_t p = 0; p < n; ++p) c.index[p] = pick(rng);
      for (std::int64_t p = 0; p < n; ++p) fill_row(c, p, rg, rng);
      sweep_cell s;
      s.regime = to_string(rg);
      s.classes = C;
      s.rows = n;
      const bool outside = impl.outside_domain(inspect(c)).has_value();
      // The kernel first: a cell it refuses (UNSUPPORTED outside its
      // declaration) is marked skipped, costs no reference and is no pass.
      outputs o, lo, om;
      try {
        o = run(impl, c, true);
        lo = run(impl, c, false);
        c.reduce = reduction::mean;
        om = run(impl, c, false);
        c.reduce = reduction::none;
      } catch (const plugins::plugin_unsupported& e) {
        if (skipped++ == 0) first_skipped = "n" + std::to_string(n) + "c" + std::to_string(C) + "_" + s.regime + ": " + e.what();
        table << "| " << s.regime << " | " << C << " | " << n << " | – | – | – | – | skipped (unsupported) |\n";
        continue;
      }
      ++ran;
      const ref::result r = reference(c, true);
      for (std::int64_t p = 0; p < n; ++p) {
        const row_context ctx = context(c, p);
        for (const double y : {o.loss[p], lo.loss[p]}) {
          const comparison cmp = compare(impl.tier(), quantity::loss, y, r.loss[p], ctx);
          s.loss = std::max(s.loss, cmp.ulps);
          if (!cmp.ok && s.violations++ == 0)
            s.first = "loss[" + std::to_string(p) + "] = " + fmt(y) + ", reference " + ref::to_string(r.loss[p], 12);
        }
        for (std::int64_t j = 0; j < C; ++j) {
          const std::size_t i = static_cast<std::size_t>(p * C + j);
          const comparison cmp = compare(impl.tier(), quantity::gradient, o.grad[i], r.grad[i], ctx,
                                         cancellation_allowance(c, p, j, ctx));
          double& worst = j == c.index[p] ? s.grad_target : s.grad_other;
          worst = std::max(worst, cmp.ulps);
          if (!cmp.ok && s.violations++ == 0)
            s.first = "grad[" + std::to_string(p) + "," + std::to_string(j) + "] = " + fmt(o.grad[i]) +
                      ", reference " + ref::to_string(r.grad[i], 12);
        }
      }
      c.reduce = reduction::mean;
      const ref::result rm = reference(c, false);
      // The tier's reduction bound carries the per-sample bounds (standard:
      // Σ bound_p / D), as in the property suite.
      std::vector<row_context> ctxs;
      for (std::int64_t p = 0; p < n; ++p) ctxs.push_back(context(c, p));
      const comparison cm = compare(impl.tier(), quantity::reduction, om.loss[0], rm.reduced, {},
                                    reduction_allowance(impl.tier(), c, ctxs));
      s.mean = cm.ulps;
      if (!cm.ok && s.violations++ == 0) s.first = "mean = " + fmt(om.loss[0]) + ", reference " + ref::to_string(rm.reduced, 12);
      const auto k = known.find("sweep:" + s.regime);
      const bool is_known = s.violations != 0 && !outside && k != known.end();
      const bool ok = s.violations == 0 || outside || is_known;
      table << "| " << s.regime << " | " << C << " | " << n << " | " << fmt(s.loss) << " | " << fmt(s.grad_target)
            << " | " << fmt(s.grad_other) << " | " << fmt(s.mean) << " | "
            << (outside    ? "outside domain"
                : is_known ? "known deviation (" + std::to_string(s.violations) + ")"
                : ok       ? "yes"
                           : "**no** (" + std::to_string(s.violations) + ")")
            << " |\n";
      if (is_known && known_cells++ == 0) first_known = "n" + std::to_string(n) + "c" + std::to_string(C) + "_" + s.regime + ": " + s.first + " -- " + k->second;
      if (!ok) {
        ++bad;
        if (first_bad.empty()) first_bad = "n" + std::to_string(n) + "c" + std::to_string(C) + "_" + s.regime + ": " + s.first;
      }
    }
  }
  if (bad) out[0] = "fail";
  else if (ran == 0) out[0] = "skipped";  // no cell ran: not applicable, not within the tier
  out.push_back(table.str());
  std::string note = bad ? std::to_string(bad) + " cells exceed the tier's bound; first: " + first_bad : "";
  if (skipped)
    note += std::string(note.empty() ? "" : "\n  ") + std::to_string(skipped) + " of " +
            std::to_string(skipped + ran) + " cells skipped (unsupported, not passes); first: " + first_skipped;
  if (known_cells)
    note += std::string(note.empty() ? "" : "\n  ") + std::to_string(known_cells) +
            " cells exceed it by a known deviation; first: " + first_known;
  out.push_back(note);
  return out;
}

// ---- one implementation -------------------------------------------------------

bool selected(const property& p, const std::vector<std::string>& only) {
  if (only.empty()) return true;
  for (const auto& o : only)
    if (o == p.name || o == p.suite + "/" + p.name) return true;
  return false;
}

// `deviations`: whose documented deviations (peers/known_deviations.hpp)
// count as known ("" for none). They hold at the tier they were measured at:
// judged at another, every failure counts as new.
bool verify_one(const implementation& impl, const std::string& target_args, const std::string& origin,
                const std::string& deviations, const verify_args& a) {
  static const std::map<std::string, std::string> no_deviations;
  const bool at_their_tier = !deviations.empty() && to_string(impl.tier()) == peers::known_deviations_tier(deviations);
  const auto& known = at_their_tier ? peers::known_deviations(deviations) : no_deviations;
  const std::string owner = peers::deviation_owner(deviations);
  std::cout << "xent verify: " << impl.name() << " (" << origin << "), tier " << to_string(impl.tier())
            << "\n  " << impl.description() << "\n  seed and budgets: RC_PARAMS=\"" << std::getenv("RC_PARAMS")
            << "\", budgets x" << a.scale << (a.fork ? "" : ", in-process (--no-fork)") << "\n";
  if (!known.empty())
    std::cout << "  known deviations: " << owner << "'s " << known.size()
              << " documented ones count apart (peers/known_deviations.hpp; --known-deviations none: as new)\n";
  else if (!deviations.empty())
    std::cout << "  known deviations: none apply (" << owner << "'s were measured at tier "
              << peers::known_deviations_tier(deviations) << ")\n";
  std::cout << "\n";
  std::vector<property_outcome> outcomes;
  std::size_t width = 0;
  for (const char* suite : {"reference_props", "metamorphic_props", "contract_props"})
    for (const property* p : properties_of(suite))
      width = std::max(width, std::string(suite).size() + 1 + p->name.size());
  std::size_t n = 0;
  for (const char* suite : {"reference_props", "metamorphic_props", "contract_props"})
    for (const property* p : properties_of(suite)) {
      if (!selected(*p, a.only)) continue;
      ++n;
      property_outcome o = verify_property(*p, impl, a, target_args);
      if (o.v == verdict::failed && known.count(p->name)) {
        // Documented, listed once below with its reason; the measured
        // counterexample stays: it is the evidence that the deviation is
        // still the documented one.
        o.known = known.at(p->name);
        o.line = "known " + owner + " deviation (" + o.line + "; see below)";
      }
      std::cout << "  " << o.id << std::string(width + 2 - o.id.size(), ' ') << o.line << "\n";
      if (!o.details.empty()) std::cout << indent(o.details);
      std::cout.flush();
      outcomes.push_back(std::move(o));
    }
  if (n == 0) throw error("property", "no property matches --property");

  bool sweep_ok = true, sweep_known = false, sweep_ran = true;
  if (a.sweep) {
    std::cout << "\nAccuracy sweep (index targets; max ulps against the reference; judged by the tier):\n\n";
    const child_result c = in_child([&] { return sweep(impl, known); }, a.fork, a.timeout_s);
    if (!c.died.empty()) {
      sweep_ok = false;
      std::cout << "  the kernel " << c.died << " during the sweep\n";
    } else if (c.fields.size() == 2 && c.fields[0] == "error") {
      sweep_ok = false;
      std::cout << "  error: " << c.fields[1] << "\n";
    } else if (c.fields.size() == 3) {
      sweep_ok = c.fields[0] != "fail";
      sweep_ran = c.fields[0] != "skipped";
      sweep_known = c.fields[2].find("by a known deviation") != std::string::npos;
      std::cout << c.fields[1];
      if (!c.fields[2].empty()) std::cout << "\n  " << c.fields[2] << "\n";
    } else {
      sweep_ok = false;
      std::cout << "  malformed sweep result\n";
    }
  }

  std::size_t passed = 0, na = 0;
  std::vector<std::string> failed;
  std::vector<const property_outcome*> known_failed;
  for (const auto& o : outcomes) {
    if (o.v == verdict::passed) ++passed;
    else if (o.v == verdict::not_applicable) ++na;
    else if (!o.known.empty()) known_failed.push_back(&o);
    else failed.push_back(o.id);
  }
  if (!known_failed.empty()) {
    std::cout << "\nKnown " << owner << " deviations (documented in peers/known_deviations.hpp; they are "
              << owner << "'s behaviour at its tier, not new findings):\n";
    for (const auto* o : known_failed) std::cout << "  " << o->id << ": " << o->known << "\n";
  }
  const std::size_t failures = failed.size() + known_failed.size();
  // Coverage: what the calls that returned needed, against everything the
  // host can send; a narrower verdict says so on its own line.
  long unsupported = 0;
  std::size_t with_skips = 0;
  capabilities exercised;
  for (const auto& o : outcomes) {
    unsupported += o.unsupported;
    with_skips += o.unsupported > 0;
    exercised |= o.exercised;
  }
  const auto declared = impl.declared_capabilities();
  // Judged against what the host can send this kernel: the dtypes it computes.
  capabilities sendable = capabilities::all();
  sendable.dtypes &= impl.dtypes();
  const auto not_exercised = exercised.missing(sendable);
  // No property ran a case: nothing was verified, which is no acceptance.
  const bool verified = passed > 0;
  const bool ok = failures == 0 && sweep_ok && verified;
  std::cout << "\nVerdict for " << impl.name() << ": "
            << (ok ? "ACCEPTED" : failures == 0 && sweep_ok ? "NOT VERIFIED" : "REJECTED") << " at tier "
            << to_string(impl.tier());
  if (ok && not_exercised) std::cout << ", for " << describe(exercised) << " only";
  std::cout << " — ";
  if (failures == 0) {
    std::cout << "every property holds";
  } else {
    std::cout << failures << (failures == 1 ? " failure" : " failures");
    if (failed.empty()) std::cout << (failures == 1 ? ", a known " : ", all known ") << owner << " deviation"
                                  << (failures == 1 ? "" : "s");
    else if (!known_failed.empty())
      std::cout << ": " << failed.size() << " new, " << known_failed.size() << " known " << owner << " deviation"
                << (known_failed.size() == 1 ? "" : "s");
  }
  std::cout << " (" << passed << " of " << outcomes.size() << " properties hold";
  if (na) std::cout << ", " << na << " not applicable";
  std::cout << ")";
  if (!failed.empty()) {
    std::cout << "; " << (known_failed.empty() ? "failed:" : "new failures:");
    for (const auto& f : failed) std::cout << ' ' << f;
  }
  if (a.sweep)
    std::cout << "; accuracy sweep "
              << (!sweep_ok      ? "OUTSIDE the tier"
                  : !sweep_ran  ? "not applicable (every cell unsupported)"
                  : sweep_known ? "within the tier but for known " + owner + " deviations"
                                : "within the tier");
  std::cout << "\n";
  if (!verified && failures == 0) std::cout << "  no property ran a case: nothing was verified\n";
  if (declared || not_exercised || unsupported) {
    std::cout << "  declared:      " << (declared ? describe(*declared) : "nothing (every case is tried)") << "\n"
              << "  exercised:     " << describe(exercised) << "\n"
              << "  not exercised: " << not_exercised.value_or("nothing") << "\n";
    if (unsupported)
      std::cout << "  skipped:       " << unsupported << " cases in " << with_skips
                << " properties, answered UNSUPPORTED " << (declared ? "outside the declaration" : "(no declaration)")
                << ": counted, not passed\n";
  }
  std::cout << "\n";
  return ok;
}

}  // namespace

namespace {

// --python module:function is the Python module's plug-in
// (python/src/python_plugin.cpp) told which function to call: it imports it
// in each isolated child. Returns the plug-in's path.
std::string python_plugin(const std::string& spec, const std::string& tier_name) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size())
    throw error("--python", "expected module:function, got '" + spec + "'");
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::filesystem::path dir = self.parent_path().parent_path() / "python";
  const std::filesystem::path plugin = dir / "xent" / "libxent_python_plugin.so";
  if (ec || !std::filesystem::exists(plugin))
    throw error("--python", "this build has no Python module (" + plugin.string() +
                            " missing: configure with XENT_WITH_PYTHON=ON, pybind11-dev and python3-dev installed)");
  std::string name;
  for (char c : spec.substr(colon + 1))
    name += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(static_cast<unsigned char>(c))) : '_';
  std::string path = std::filesystem::current_path().string();
  path += ":";
  path += dir.string();
  if (const char* old = std::getenv("PYTHONPATH"); old && *old) {
    path += ":";
    path += old;
  }
  setenv("XENT_PYTHON_FUNCTION", spec.c_str(), 1);
  setenv("XENT_PYTHON_NAME", name.c_str(), 1);
  setenv("XENT_PYTHON_TIER", tier_name.empty() ? "standard" : tier_name.c_str(), 1);
  setenv("PYTHONPATH", path.c_str(), 1);
  setenv("OMP_NUM_THREADS", "1", 1);
  return plugin.string();
}

}  // namespace

int run_verify(const verify_args& a_in) {
  verify_args a = a_in;
  if (!a.python.empty()) a.plugins.push_back(python_plugin(a.python, a.tier));
  if (a.plugins.empty() && a.impls.empty())
    throw error("verify", "nothing to verify: give --plugin PATH, --python module:function or --impl NAME");
  // A pinned seed unless the caller set RC_PARAMS (e.g. a reproduce line).
  if (const char* e = std::getenv("RC_PARAMS"); !e || !*e)
    setenv("RC_PARAMS", ("seed=" + std::to_string(a.seed)).c_str(), 1);

  // Read RC_PARAMS once here, so that the children inherit it (and RapidCheck
  // announces the configuration once, not in every child).
  (void)rc::detail::configuration();

  std::optional<tier> forced;
  if (!a.tier.empty()) forced = parse_tier(a.tier);
  const std::string tier_arg = a.tier.empty() ? "" : " --tier " + a.tier;
  struct target {
    const implementation* impl;
    std::string args, origin;
    std::string deviations;  // whose known deviations apply, by what is verified
  };
  // --known-deviations wins; "none" turns the list off everywhere.
  const auto deviations_for = [&](std::string_view by_default) {
    if (a.known_deviations == "none") return std::string();
    return std::string(a.known_deviations.empty() ? by_default : a.known_deviations);
  };
  std::vector<target> targets;
  std::vector<std::unique_ptr<implementation>> wrappers;
  for (const auto& path : a.plugins) {
    plugins::load_options o;
    o.tier_override = forced;
    const implementation& impl = plugins::load_plugin(path, o);
    const bool is_python = !a.python.empty() && path == a.plugins.back();
    targets.push_back({&impl, "--plugin " + path + tier_arg, "plug-in " + path,
                       deviations_for(is_python ? peers::deviations_of_python_function(a.python) : "")});
  }
  for (const auto& name : a.impls) {
    const implementation* impl = &find_for_cli("--impl", name);
    if (forced) {
      wrappers.push_back(std::make_unique<tier_override>(*impl, *forced));
      impl = wrappers.back().get();
    }
    targets.push_back({impl, "--impl " + name + tier_arg, impl->peer() ? "peer" : "registered implementation",
                       deviations_for(peers::has_known_deviations(name) ? name : "")});
  }
  bool all = true;
  for (const auto& t : targets) all = verify_one(*t.impl, t.args, t.origin, t.deviations, a) && all;
  return all ? 0 : 1;
}

#endif

}  // namespace xent::cli

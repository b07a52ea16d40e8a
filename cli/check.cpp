#include "check.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>
#include <sstream>

#include "diagnostics.hpp"
#include "format.hpp"
#include "inputs.hpp"
#include "npy.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace xent::cli {
namespace {

using json = nlohmann::ordered_json;

std::string shape_str(const std::vector<std::int64_t>& s) { return xent::shape_string(s); }

std::vector<std::int64_t> position_shape(const std::vector<std::int64_t>& logits_shape) {
  std::vector<std::int64_t> s = logits_shape;
  if (!s.empty()) s.erase(s.begin() + (s.size() == 1 ? 0 : 1));
  return s;
}

// Index of logits element (position p, class c) in a C-order buffer of the
// logits' shape: p = n * D + k for (N, C, d..) with D = d1 * .. * dK.
std::int64_t element_index(const std::vector<std::int64_t>& shape, std::int64_t p, std::int64_t c) {
  if (shape.size() <= 1) return c;
  std::int64_t D = 1;
  for (std::size_t d = 2; d < shape.size(); ++d) D *= shape[d];
  const std::int64_t C = shape[1];
  return ((p / D) * C + c) * D + p % D;
}

struct impl_result {
  const implementation* impl;
  std::vector<float> loss;  // 1 value for mean/sum
  double max_ulp = 0.0;
  std::optional<std::string> outside;
};

std::vector<const implementation*> choose(const std::string& name) {
  std::vector<const implementation*> out;
  if (name == "all") {
    for (auto* i : implementations())
      if (i->supported()) out.push_back(i);
    return out;
  }
  if (name == "default") return {&default_implementation()};
  const implementation* i = find_implementation(name);
  if (!i) {
    std::string known;
    for (auto* k : implementations()) known += (known.empty() ? "" : ", ") + k->name();
    throw input_error("unknown implementation '" + name + "' (known: " + known + ", or all)");
  }
  if (!i->supported()) throw input_error("implementation '" + name + "' is not supported on this CPU");
  return {i};
}

// "3 values: min .. max .., first [a, b, c]"
std::string summary(const std::vector<float>& v) {
  if (v.empty()) return "0 values";
  float lo = v[0], hi = v[0];
  bool any_nan = false;
  for (float x : v) {
    if (std::isnan(x)) {
      any_nan = true;
      continue;
    }
    if (std::isnan(lo) || x < lo) lo = x;
    if (std::isnan(hi) || x > hi) hi = x;
  }
  std::string s = std::to_string(v.size()) + " values: min " + float_text(lo) + ", max " + float_text(hi);
  if (any_nan) s += " (some NaN)";
  s += ", first [";
  for (std::size_t i = 0; i < std::min<std::size_t>(v.size(), 4); ++i)
    s += (i ? ", " : "") + float_text(v[i]);
  return s + (v.size() > 4 ? ", ...]" : "]");
}

std::vector<float> rounded(const std::vector<ref::exact>& r) {
  std::vector<float> v;
  v.reserve(r.size());
  for (const auto& e : r) v.push_back(ref::to_float(e));
  return v;
}

json numbers(const std::vector<float>& v) {
  json a = json::array();
  for (float x : v) a.push_back(json_number(static_cast<double>(x)));
  return a;
}

json numbers(const std::vector<ref::exact>& v) {
  json a = json::array();
  for (const auto& x : v) a.push_back(json_number(ref::to_double(x)));
  return a;
}

}  // namespace

CLI::App* add_check_command(CLI::App& app, check_args& a) {
  CLI::App* c = app.add_subcommand(
      "check", "Run implementations and the multiprecision reference on .npy data; report the loss "
               "and its error in ulps");
  c->add_option("--logits", a.logits, "logits .npy: (C), (N,C) or (N,C,d1..dK), float32 (float64 is rounded)")
      ->required();
  c->add_option("--target", a.target,
                "targets .npy: int64/int32 class indices of the position shape, or float class "
                "probabilities of the logits' shape")
      ->required();
  c->add_option("--weight", a.weight, "class weights .npy: float32 [C]");
  c->add_option("--ignore-index", a.ignore_index, "target value to ignore (default -100)");
  c->add_option("--reduction", a.reduction, "none | mean | sum (default mean)");
  c->add_option("--label-smoothing", a.label_smoothing, "label smoothing in [0, 1] (default 0)");
  c->add_option("--impl", a.impl, "implementation name, 'default', or 'all' supported ones (default all)");
  c->add_option("--grad-out", a.grad_out,
                "write d(loss)/d(logits) of the chosen implementation (upstream 1) to this float32 .npy");
  c->add_flag("--json", a.json, "print one JSON object instead of text");
  return c;
}

int run_check(const check_args& a) {
  const reduction red = parse_reduction(a.reduction);
  const inputs in = load_inputs(a.logits, a.target, a.weight);
  for (const auto& n : in.notes) std::cerr << "xent: note: " << n << "\n";

  const options opt = in.make_options(red, a.ignore_index, a.label_smoothing);
  const tensor_view x = in.logits_view(), t = in.target_view();
  // Validates everything (shapes, bounds, options) before any work.
  const problem pr = make_problem(x, t, opt);

  std::vector<const implementation*> chosen = choose(a.impl);
  const implementation* grad_impl = nullptr;
  if (!a.grad_out.empty())
    grad_impl = a.impl == "all" ? &default_implementation() : chosen.front();

  const std::vector<warning> warnings = diagnose(pr, in.logits_shape);
  if (!a.json)
    for (const auto& w : warnings) std::cerr << "xent: warning: " << w.message << "\n";

  // The reference, with the gradient only when one is written. It runs at
  // roughly 3e5 logits/s: say so before a long wait.
  if (pr.positions * pr.classes > 3'000'000)
    std::cerr << "xent: note: computing the multiprecision reference for "
              << pr.positions * pr.classes << " logits (roughly 3e5 per second)\n";
  const ref::result r = ref::compute(pr, grad_impl != nullptr);
  const bool none = red == reduction::none;
  const std::vector<std::int64_t> positions = position_shape(in.logits_shape);

  std::vector<impl_result> results;
  for (const implementation* impl : chosen) {
    impl_result res{impl, {}, 0.0, impl->outside_domain(pr)};
    if (none) {
      res.loss.assign(static_cast<std::size_t>(pr.positions), 0.0f);
      cross_entropy(x, t, view(res.loss.data(), positions), opt, impl);
      for (std::size_t p = 0; p < res.loss.size(); ++p)
        res.max_ulp = std::max(res.max_ulp, ref::ulp_error(res.loss[p], r.loss[p]));
    } else {
      res.loss.assign(1, 0.0f);
      cross_entropy(x, t, view(res.loss.data(), {}), opt, impl);
      res.max_ulp = ref::ulp_error(res.loss[0], r.reduced);
    }
    results.push_back(std::move(res));
  }

  // Gradient of the chosen implementation, upstream 1.
  double grad_ulp = 0.0;
  if (grad_impl) {
    std::vector<float> grad(in.logits.size(), 0.0f);
    std::vector<float> loss(none ? static_cast<std::size_t>(pr.positions) : 1, 0.0f);
    cross_entropy_forward_backward(x, t, view(loss.data(), none ? positions : std::vector<std::int64_t>{}),
                                   view(grad.data(), in.logits_shape), opt, nullptr, grad_impl);
    for (std::int64_t p = 0; p < pr.positions; ++p)
      for (std::int64_t c = 0; c < pr.classes; ++c) {
        const std::int64_t i = element_index(in.logits_shape, p, c);
        grad_ulp = std::max(grad_ulp, ref::ulp_error(grad[i], r.grad[p * pr.classes + c]));
      }
    npy::write(a.grad_out, npy::make(grad, in.logits_shape));
  }

  const std::string target_desc =
      shape_str(in.target_shape) + " " + in.target_dtype +
      (in.probability ? " (class probabilities)" : " (class indices)");
  if (a.json) {
    json j;
    j["logits"] = {{"shape", in.logits_shape}, {"dtype", "float32"}};
    j["target"] = {{"shape", in.target_shape},
                   {"dtype", in.target_dtype},
                   {"kind", in.probability ? "probability" : "index"}};
    j["weight"] = in.weight ? json{{"shape", {in.weight->size()}}} : json(nullptr);
    j["reduction"] = to_string(red);
    j["ignore_index"] = a.ignore_index;
    j["label_smoothing"] = a.label_smoothing;
    j["reference"] = none ? numbers(r.loss) : json(json_number(ref::to_double(r.reduced)));
    j["reference_text"] = none ? json(nullptr) : json(ref::to_string(r.reduced));
    json impls = json::object();
    for (const auto& res : results) {
      impls[res.impl->name()] = {
          {"tier", to_string(res.impl->tier())},
          {"loss", none ? numbers(res.loss) : json_number(static_cast<double>(res.loss[0]))},
          {"max_ulp", json_number(res.max_ulp)},
          {"outside_domain", res.outside ? json(*res.outside) : json(nullptr)},
      };
    }
    j["implementations"] = impls;
    if (grad_impl)
      j["gradient"] = {{"implementation", grad_impl->name()},
                       {"path", a.grad_out},
                       {"shape", in.logits_shape},
                       {"max_ulp", json_number(grad_ulp)}};
    json ws = json::array();
    for (const auto& w : warnings) ws.push_back({{"code", w.code}, {"message", w.message}});
    j["warnings"] = ws;
    j["notes"] = in.notes;
    std::cout << j.dump() << "\n";
    return 0;
  }

  std::cout << "logits " << shape_str(in.logits_shape) << " float32, target " << target_desc
            << ", reduction " << to_string(red);
  if (in.weight) std::cout << ", weight [" << in.weight->size() << "]";
  if (!in.probability) std::cout << ", ignore_index " << a.ignore_index;
  if (a.label_smoothing != 0.0) std::cout << ", label_smoothing " << a.label_smoothing;
  std::cout << "\n";
  if (none)
    std::cout << "reference: " << summary(rounded(r.loss)) << "\n";
  else
    std::cout << "reference: " << ref::to_string(r.reduced) << " (float32 "
              << float_text(ref::to_float(r.reduced)) << ")\n";

  std::size_t width = 16;
  for (const auto& res : results) width = std::max(width, res.impl->name().size() + 2);
  auto pad = [](std::string s, std::size_t n) {
    if (s.size() < n) s.append(n - s.size(), ' ');
    return s;
  };
  std::cout << pad("implementation", width) << pad("tier", 10) << pad("max ulp", 9) << "loss\n";
  for (const auto& res : results) {
    std::cout << pad(res.impl->name(), width) << pad(to_string(res.impl->tier()), 10)
              << pad(ulp_text(res.max_ulp), 9)
              << (none ? summary(res.loss) : float_text(res.loss[0]));
    if (res.outside) std::cout << "  (outside its domain: " << *res.outside << ")";
    std::cout << "\n";
  }
  if (grad_impl)
    std::cout << "gradient of " << grad_impl->name() << " (upstream 1) written to " << a.grad_out
              << " " << shape_str(in.logits_shape) << " float32, max ulp " << ulp_text(grad_ulp) << "\n";
  return 0;
}

}  // namespace xent::cli

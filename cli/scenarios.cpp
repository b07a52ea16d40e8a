#include "scenarios.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "fill.hpp"

namespace xent::cli {

std::vector<std::int64_t> scenario::position_shape() const {
  std::vector<std::int64_t> s = shape;
  s.erase(s.begin() + (s.size() == 1 ? 0 : 1));
  return s;
}

tensor_view scenario::target_view() const {
  return probability ? view(target_prob.data(), shape) : view(target_index.data(), position_shape());
}

options scenario::make_options(reduction r) const {
  options o;
  o.reduce = r;
  o.ignore_index = ignore_index;
  o.label_smoothing = label_smoothing;
  if (!weight.empty()) o.weight = view(weight.data(), {static_cast<std::int64_t>(weight.size())});
  return o;
}

namespace {

// Positions P and classes C of a shape (N, C, d..).
struct dims {
  std::int64_t positions, classes, inner;  // inner = d1*..*dK
};
dims dims_of(const std::vector<std::int64_t>& shape) {
  std::int64_t inner = 1;
  for (std::size_t d = 2; d < shape.size(); ++d) inner *= shape[d];
  return {shape[0] * inner, shape[1], inner};
}
// "n256c1000" (built by appending: GCC 12 warns falsely on "lit" + string).
std::string n_c(std::int64_t n, std::int64_t c) {
  std::string s = "n";
  s += std::to_string(n);
  s += 'c';
  s += std::to_string(c);
  return s;
}

scenario base(std::string id, std::string description, std::vector<std::int64_t> shape) {
  scenario s;
  s.id = std::move(id);
  s.description = std::move(description);
  s.shape = std::move(shape);
  std::int64_t n = 1;
  for (auto e : s.shape) n *= e;
  s.logits.resize(static_cast<std::size_t>(n));
  return s;
}

void normal_logits(scenario& s, fill::rng& g, double sigma) {
  for (auto& v : s.logits) v = static_cast<float>(sigma * g.normal());
}

void uniform_targets(scenario& s, fill::rng& g) {
  const dims d = dims_of(s.shape);
  s.target_index.resize(static_cast<std::size_t>(d.positions));
  for (auto& t : s.target_index) t = g.below(d.classes);
}

scenario_spec normal(std::int64_t n, std::int64_t c, double sigma, std::uint64_t seed) {
  const std::string sg = sigma == 1.0 ? "1" : std::to_string(static_cast<long long>(sigma));
  std::string id = n_c(n, c) + "_normal_s" + sg;
  std::string desc = "normal logits, sigma " + sg + ", C = " + std::to_string(c);
  return {id, desc, [=] {
            scenario s = base(id, desc, {n, c});
            fill::rng g(seed);
            normal_logits(s, g, sigma);
            uniform_targets(s, g);
            return s;
          }};
}

// The target's logit exceeds every other by `margin`: true loss ~ C e^-margin.
scenario_spec dominant(std::int64_t n, std::int64_t c, double margin, std::uint64_t seed) {
  const std::string m = std::to_string(static_cast<int>(margin));
  std::string id = n_c(n, c) + "_dominant_m" + m;
  std::string desc = "dominant target, margin " + m + ", C = " + std::to_string(c);
  return {id, desc, [=] {
            scenario s = base(id, desc, {n, c});
            fill::rng g(seed);
            normal_logits(s, g, 1.0);
            uniform_targets(s, g);
            for (std::int64_t p = 0; p < n; ++p) {
              float* row = s.logits.data() + p * c;
              const std::int64_t t = s.target_index[p];
              float mx = -std::numeric_limits<float>::infinity();
              for (std::int64_t j = 0; j < c; ++j)
                if (j != t) mx = std::max(mx, row[j]);
              row[t] = mx + static_cast<float>(margin);
            }
            return s;
          }};
}

// Logits near the float32 exp overflow/underflow thresholds, +-88.7.
scenario_spec near_overflow(std::int64_t n, std::int64_t c, std::uint64_t seed) {
  std::string id = n_c(n, c) + "_exp88";
  std::string desc = "logits near +-88.7 (exp overflow / underflow), C = " + std::to_string(c);
  return {id, desc, [=] {
            scenario s = base(id, desc, {n, c});
            fill::rng g(seed);
            for (auto& v : s.logits)
              v = static_cast<float>((g.uniform() < 0.5 ? -1.0 : 1.0) * g.uniform(88.0, 89.5));
            uniform_targets(s, g);
            return s;
          }};
}

// Causal-mask style -inf on about half of the non-target classes.
scenario_spec masked(std::int64_t n, std::int64_t c, std::uint64_t seed) {
  std::string id = n_c(n, c) + "_mask_inf";
  std::string desc = "normal logits with -inf on ~half the non-target classes, C = " + std::to_string(c);
  return {id, desc, [=] {
            scenario s = base(id, desc, {n, c});
            fill::rng g(seed);
            normal_logits(s, g, 1.0);
            uniform_targets(s, g);
            for (std::int64_t p = 0; p < n; ++p)
              for (std::int64_t j = 0; j < c; ++j)
                if (j != s.target_index[p] && g.uniform() < 0.5)
                  s.logits[p * c + j] = -std::numeric_limits<float>::infinity();
            return s;
          }};
}

// Class weights, ignore_index inside [0, C) on ~10% of the rows, smoothing 0.1.
scenario_spec weighted(std::int64_t n, std::int64_t c, std::uint64_t seed) {
  std::string id = n_c(n, c) + "_w_ii7_ls0.1";
  std::string desc = "weights in [0.25, 4], ignore_index 7 (~10% of rows), label_smoothing 0.1, C = " +
                     std::to_string(c);
  return {id, desc, [=] {
            scenario s = base(id, desc, {n, c});
            fill::rng g(seed);
            normal_logits(s, g, 2.0);
            uniform_targets(s, g);
            s.ignore_index = 7;
            for (auto& t : s.target_index)
              if (g.uniform() < 0.1) t = 7;
            s.weight.resize(static_cast<std::size_t>(c));
            for (auto& w : s.weight) w = static_cast<float>(std::exp2(g.uniform(-2.0, 2.0)));
            s.label_smoothing = 0.1;
            return s;
          }};
}

// Tied maxima: integer logits in {-2..2} (quantised outputs, a model at
// initialisation), so most rows attain their max several times; with label
// smoothing, which takes the paths that subtract two gradient terms.
scenario_spec ties(std::int64_t n, std::int64_t c, std::uint64_t seed) {
  std::string id = n_c(n, c) + "_ties_ls0.1";
  std::string desc = "integer logits in {-2..2} (tied maxima), label_smoothing 0.1, C = " + std::to_string(c);
  return {id, desc, [=] {
            scenario s = base(id, desc, {n, c});
            fill::rng g(seed);
            for (auto& v : s.logits) v = static_cast<float>(g.below(5) - 2);
            uniform_targets(s, g);
            s.label_smoothing = 0.1;
            return s;
          }};
}

// Soft targets: softmax of normal(0, 2) computed in double, rounded.
scenario_spec probabilities(std::int64_t n, std::int64_t c, std::uint64_t seed) {
  std::string id = n_c(n, c) + "_prob";
  std::string desc = "class-probability targets (softmax of normal, sigma 2), C = " + std::to_string(c);
  return {id, desc, [=] {
            scenario s = base(id, desc, {n, c});
            fill::rng g(seed);
            normal_logits(s, g, 1.0);
            s.probability = true;
            s.target_prob.resize(s.logits.size());
            std::vector<double> e(static_cast<std::size_t>(c));
            for (std::int64_t p = 0; p < n; ++p) {
              double sum = 0.0;
              for (auto& v : e) sum += v = std::exp(2.0 * g.normal());
              for (std::int64_t j = 0; j < c; ++j)
                s.target_prob[p * c + j] = static_cast<float>(e[j] / sum);
            }
            return s;
          }};
}

// (N, C, H, W): class axis dim 1, positions strided by H*W.
scenario_spec spatial(std::int64_t n, std::int64_t c, std::int64_t h, std::uint64_t seed) {
  std::string id = n_c(n, c);
  id += 'd';
  id += std::to_string(h);
  id += 'x';
  id += std::to_string(h);
  id += "_normal_s2";
  std::string desc = "(N, C, H, W) segmentation shape, normal logits sigma 2, C = " + std::to_string(c);
  return {id, desc, [=] {
            scenario s = base(id, desc, {n, c, h, h});
            fill::rng g(seed);
            normal_logits(s, g, 2.0);
            uniform_targets(s, g);
            return s;
          }};
}

}  // namespace

std::vector<scenario_spec> report_scenarios(bool quick) {
  // Rows per scenario: sized so that the multiprecision reference (the slow
  // part, ~3e5 logits/s with the gradient here) takes about half a minute in
  // total; quick takes 1/16 of the rows (a few seconds).
  auto rows = [quick](std::int64_t full) { return quick ? std::max<std::int64_t>(full / 16, 2) : full; };
  std::vector<scenario_spec> v;
  v.push_back(normal(rows(16384), 10, 1.0, 1));
  v.push_back(normal(rows(1024), 1000, 1.0, 2));
  v.push_back(normal(rows(64), 32000, 1.0, 3));
  v.push_back(dominant(rows(1024), 1000, 20.0, 4));
  v.push_back(dominant(rows(1024), 1000, 50.0, 5));
  v.push_back(normal(rows(1024), 1000, 1000.0, 6));
  v.push_back(near_overflow(rows(4096), 100, 7));
  v.push_back(masked(rows(1024), 1000, 8));
  v.push_back(weighted(rows(4096), 100, 9));
  v.push_back(ties(rows(2048), 100, 12));
  v.push_back(probabilities(rows(4096), 100, 10));
  v.push_back(spatial(quick ? 2 : 8, 21, quick ? 16 : 32, 11));
  return v;
}

}  // namespace xent::cli

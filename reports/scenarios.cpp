#include "scenarios.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include "fill.hpp"

namespace xent::reports {

std::vector<std::int64_t> scenario::position_shape() const {
  std::vector<std::int64_t> s = shape;
  s.erase(s.begin() + (s.size() == 1 ? 0 : 1));
  return s;
}

void scenario::to_dtype(dtype t) {
  type = t;
  if (t == dtype::f64) {
    // SplitMix64 of the value's bits: a fixed function of the value.
    auto h = [](double v) {
      std::uint64_t z = std::bit_cast<std::uint64_t>(v) + 0x9e3779b97f4a7c15ull;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      return static_cast<double>(static_cast<std::int64_t>(z >> 40) - (std::int64_t{1} << 23)) * 2 + 1;
    };
    auto widen_all = [&](std::vector<float>& v, std::vector<double>& wide) {
      wide.resize(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) {
        const double x = v[i];
        wide[i] = std::isfinite(x) && x != 0.0 ? x * (1 + h(x) * 0x1p-36) : x;
        v[i] = static_cast<float>(wide[i]);
      }
    };
    widen_all(logits, logits64);
    widen_all(target_prob, target_prob64);
    widen_all(weight, weight64);
    return;
  }
  auto round_all = [t](std::vector<float>& v, std::vector<std::uint16_t>& bits) {
    bits.resize(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      bits[i] = narrow(v[i], t);
      v[i] = widen(bits[i], t);
    }
  };
  round_all(logits, logits16);
  round_all(target_prob, target_prob16);
  round_all(weight, weight16);
}

tensor_view scenario::logits_view() const {
  if (type == dtype::f64) return view(logits64.data(), shape);
  return type == dtype::f32 ? view(logits.data(), shape) : view(logits16.data(), type, shape);
}

tensor_view scenario::target_view() const {
  if (!probability) return view(target_index.data(), position_shape());
  if (type == dtype::f64) return view(target_prob64.data(), shape);
  return type == dtype::f32 ? view(target_prob.data(), shape) : view(target_prob16.data(), type, shape);
}

options scenario::make_options(reduction r) const {
  options o;
  o.reduce = r;
  o.ignore_index = ignore_index;
  o.label_smoothing = label_smoothing;
  const std::int64_t c = static_cast<std::int64_t>(weight.size());
  if (!weight.empty())
    o.weight = type == dtype::f64   ? view(weight64.data(), {c})
               : type == dtype::f32 ? view(weight.data(), {c})
                                    : view(weight16.data(), type, {c});
  return o;
}

namespace {

constexpr float minus_inf = -std::numeric_limits<float>::infinity();

// The seed is a hash of the id: the id alone reproduces the fill.
std::uint64_t seed_of(const std::string& id) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (unsigned char c : id) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

// "n256c1000", or "n4c21d8x8" for (N, C, H, W).
std::string shape_id(const std::vector<std::int64_t>& shape) {
  std::string s = "n";
  s += std::to_string(shape[0]);
  s += 'c';
  s += std::to_string(shape[1]);
  if (shape.size() == 4) {
    s += 'd';
    s += std::to_string(shape[2]);
    s += 'x';
    s += std::to_string(shape[3]);
  }
  return s;
}

// Builds a scenario: logits of the shape, then `fill` does the rest.
using filler = std::function<void(scenario&, fill::rng&)>;

scenario_spec make_spec(std::vector<std::int64_t> shape, std::string family, std::string what, double scale,
                        filler f) {
  scenario_spec sp;
  sp.id = shape_id(shape) + "_" + family;
  sp.family = std::move(family);
  sp.classes = shape[1];
  sp.description = std::move(what) + ", C = " + std::to_string(shape[1]);
  sp.scale = scale;
  sp.elements = 1;
  for (auto e : shape) sp.elements *= e;
  sp.build = [id = sp.id, desc = sp.description, shape, f] {
    scenario s;
    s.id = id;
    s.description = desc;
    s.shape = shape;
    std::int64_t n = 1;
    for (auto e : shape) n *= e;
    s.logits.resize(static_cast<std::size_t>(n));
    fill::rng g(seed_of(id));
    f(s, g);
    return s;
  };
  return sp;
}

std::int64_t positions_of(const scenario& s) { return static_cast<std::int64_t>(s.logits.size()) / s.shape[1]; }

// Element (p, c) of the C-order buffer of shape (N, C, d..).
float& at(scenario& s, std::int64_t p, std::int64_t c) {
  std::int64_t D = 1;
  for (std::size_t d = 2; d < s.shape.size(); ++d) D *= s.shape[d];
  return s.logits[static_cast<std::size_t>(((p / D) * s.shape[1] + c) * D + p % D)];
}

void normal_logits(scenario& s, fill::rng& g, double sigma) {
  for (auto& v : s.logits) v = static_cast<float>(sigma * g.normal());
}

void uniform_targets(scenario& s, fill::rng& g) {
  s.target_index.resize(static_cast<std::size_t>(positions_of(s)));
  for (auto& t : s.target_index) t = g.below(s.shape[1]);
}

std::string number(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

// Every family at one (N, C).
void families(std::int64_t n, std::int64_t c, std::vector<scenario_spec>& out) {
  const std::vector<std::int64_t> nc{n, c};
  for (double sigma : {1e-3, 1.0, 30.0, 1000.0})
    out.push_back(make_spec(nc, "normal_s" + number(sigma), "normal logits, sigma " + number(sigma), sigma,
                            [sigma](scenario& s, fill::rng& g) {
                              normal_logits(s, g, sigma);
                              uniform_targets(s, g);
                            }));
  // The target's logit exceeds every other by `margin`: true loss ~ C e^-margin.
  for (double margin : {5.0, 20.0, 50.0})
    out.push_back(make_spec(nc, "dominant_m" + number(margin), "dominant target, margin " + number(margin), 0.0,
                            [margin](scenario& s, fill::rng& g) {
                              normal_logits(s, g, 1.0);
                              uniform_targets(s, g);
                              const std::int64_t C = s.shape[1];
                              for (std::int64_t p = 0; p < positions_of(s); ++p) {
                                const std::int64_t t = s.target_index[static_cast<std::size_t>(p)];
                                float mx = minus_inf;
                                for (std::int64_t j = 0; j < C; ++j)
                                  if (j != t) mx = std::max(mx, at(s, p, j));
                                at(s, p, t) = mx + static_cast<float>(margin);
                              }
                            }));
  out.push_back(make_spec(nc, "exp88", "logits near +-88.7 (float32 exp overflow / underflow)", 0.0,
                          [](scenario& s, fill::rng& g) {
                            for (auto& v : s.logits)
                              v = static_cast<float>((g.uniform() < 0.5 ? -1.0 : 1.0) * g.uniform(88.0, 89.5));
                            uniform_targets(s, g);
                          }));
  // Causal-mask style -inf on about half of the non-target classes.
  out.push_back(make_spec(nc, "mask_inf", "normal logits, -inf on ~half the non-target classes", 0.0,
                          [](scenario& s, fill::rng& g) {
                            normal_logits(s, g, 1.0);
                            uniform_targets(s, g);
                            for (std::int64_t p = 0; p < positions_of(s); ++p)
                              for (std::int64_t j = 0; j < s.shape[1]; ++j)
                                if (j != s.target_index[static_cast<std::size_t>(p)] && g.uniform() < 0.5)
                                  at(s, p, j) = minus_inf;
                          }));
  // Class weights, ignore_index inside [0, C) on ~10% of the rows, smoothing 0.1.
  const std::int64_t ii = std::min<std::int64_t>(7, c - 1);
  out.push_back(make_spec(nc, "w_ii" + std::to_string(ii) + "_ls0.1",
                          "weights in [0.25, 4], ignore_index " + std::to_string(ii) +
                              " (~10% of rows), label_smoothing 0.1",
                          0.0, [ii](scenario& s, fill::rng& g) {
                            normal_logits(s, g, 2.0);
                            uniform_targets(s, g);
                            s.ignore_index = ii;
                            for (auto& t : s.target_index)
                              if (g.uniform() < 0.1) t = ii;
                            s.weight.resize(static_cast<std::size_t>(s.shape[1]));
                            for (auto& w : s.weight) w = static_cast<float>(std::exp2(g.uniform(-2.0, 2.0)));
                            s.label_smoothing = 0.1;
                          }));
  // Tied maxima: integer logits in {-2..2} (quantised outputs, a model at
  // initialisation); with label smoothing, which takes the paths that
  // subtract two gradient terms.
  out.push_back(make_spec(nc, "ties_ls0.1", "integer logits in {-2..2} (tied maxima), label_smoothing 0.1", 0.0,
                          [](scenario& s, fill::rng& g) {
                            for (auto& v : s.logits) v = static_cast<float>(g.below(5) - 2);
                            uniform_targets(s, g);
                            s.label_smoothing = 0.1;
                          }));
  // Soft targets: softmax of normal(0, 2) computed in double, rounded.
  out.push_back(make_spec(nc, "prob", "class-probability targets (softmax of normal, sigma 2)", 0.0,
                          [](scenario& s, fill::rng& g) {
                            normal_logits(s, g, 1.0);
                            s.probability = true;
                            const std::int64_t C = s.shape[1];
                            s.target_prob.resize(s.logits.size());
                            std::vector<double> e(static_cast<std::size_t>(C));
                            for (std::int64_t p = 0; p < positions_of(s); ++p) {
                              double sum = 0.0;
                              for (auto& v : e) sum += v = std::exp(2.0 * g.normal());
                              for (std::int64_t j = 0; j < C; ++j)
                                s.target_prob[static_cast<std::size_t>(p * C + j)] =
                                    static_cast<float>(e[static_cast<std::size_t>(j)] / sum);
                            }
                          }));
  // (N, C, H, W): class axis dim 1, positions strided by H*W.
  const std::int64_t h = n >= 64 ? 8 : n >= 4 ? 2 : 1;
  out.push_back(make_spec({n / (h * h), c, h, h}, "normal_s2", "(N, C, H, W) shape, normal logits sigma 2", 0.0,
                          [](scenario& s, fill::rng& g) {
                            normal_logits(s, g, 2.0);
                            uniform_targets(s, g);
                          }));
}

// The families measured in the other dtypes too, and at which C: everyday
// logits, large spreads, dominant targets, every option, probability targets.
bool other_dtype_family(const scenario_spec& s) {
  if (s.classes != 10 && s.classes != 1000 && s.classes != 32000) return false;
  const std::string& f = s.family;
  return f == "normal_s1" || f == "normal_s30" || f == "dominant_m20" || f.rfind("w_ii", 0) == 0 ||
         f.rfind("prob", 0) == 0;
}

// A float32 scenario's fill in dtype t (scenario::to_dtype). Not plotted
// (scale 0): the plots compare float32 ulps.
scenario_spec other_dtype(const scenario_spec& f32, dtype t) {
  const std::string suffix = t == dtype::bf16 ? "_bf16" : t == dtype::f16 ? "_f16" : "_f64";
  scenario_spec s = f32;
  s.id += suffix;
  s.family += suffix;
  s.description += ", " + to_string(t) + " logits";
  s.scale = 0.0;
  s.type = t;
  s.build = [base = f32.build, id = s.id, desc = s.description, t] {
    scenario sc = base();
    sc.id = id;
    sc.description = desc;
    sc.to_dtype(t);
    return sc;
  };
  return s;
}

}  // namespace

const std::vector<std::int64_t>& class_buckets() {
  static const std::vector<std::int64_t> b{2, 10, 1000, 32000, 256000};
  return b;
}

std::vector<scenario_spec> report_scenarios(bool quick) {
  // Rows per C bucket: the multiprecision reference (~3e5 logits/s per
  // thread with the gradient) is the cost; the full set is ~1.4e6 logits per
  // family, quick about a quarter of that.
  std::vector<scenario_spec> v;
  for (std::int64_t c : class_buckets()) {
    std::int64_t rows = c <= 2 ? 16384 : c <= 10 ? 4096 : c <= 1000 ? 256 : c <= 32000 ? 16 : 2;
    if (quick) rows = c <= 10 ? rows / 8 : std::max<std::int64_t>(rows / 8, 1);
    families(rows, c, v);
  }
  const std::size_t f32 = v.size();
  for (std::size_t i = 0; i < f32; ++i)
    if (other_dtype_family(v[i]))
      for (const dtype t : {dtype::bf16, dtype::f16, dtype::f64}) v.push_back(other_dtype(v[i], t));
  return v;
}

std::vector<scenario_spec> matching_scenarios(const std::string& filter) {
  std::vector<scenario_spec> out;
  std::set<std::string> seen;
  for (bool quick : {true, false})
    for (auto& s : report_scenarios(quick))
      if (s.id.find(filter) != std::string::npos && seen.insert(s.id).second) out.push_back(std::move(s));
  return out;
}

}  // namespace xent::reports

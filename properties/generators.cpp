#include "generators.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace xent::props {

std::string to_string(regime r) {
  switch (r) {
    case regime::normal: return "normal";
    case regime::huge: return "huge";
    case regime::near_overflow: return "nearexp";
    case regime::tiny: return "tiny";
    case regime::dominant: return "dominant";
    case regime::ties: return "ties";
    case regime::neg_inf_mask: return "neginf";
    case regime::special: return "special";
    case regime::uniform: return "uniform";
    case regime::mixed: return "mixed";
  }
  return "?";
}

namespace {

using rng_t = std::mt19937_64;
constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float nan = std::numeric_limits<float>::quiet_NaN();

double uni(rng_t& g, double a, double b) { return std::uniform_real_distribution<double>(a, b)(g); }
bool coin(rng_t& g, double p) { return uni(g, 0.0, 1.0) < p; }
std::int64_t below(rng_t& g, std::int64_t n) {
  return std::uniform_int_distribution<std::int64_t>(0, n - 1)(g);
}
double gauss(rng_t& g) { return std::normal_distribution<double>(0.0, 1.0)(g); }
float clamp_f(double v) {
  const double big = std::numeric_limits<float>::max();
  return static_cast<float>(std::clamp(v, -big, big));
}

// The row's "target" class for the regimes that care: the index target, the
// argmax of a probability target, or a random class for ignored rows.
std::int64_t row_target(const test_case& c, std::int64_t p, rng_t& g) {
  if (c.prob) {
    std::int64_t k = 0;
    for (std::int64_t j = 1; j < c.c; ++j)
      if (c.qv(p, j) > c.qv(p, k)) k = j;
    return k;
  }
  const std::int64_t t = c.index[p];
  return t >= 0 && t < c.c ? t : below(g, c.c);
}

void fill_normal(std::vector<double>& v, rng_t& g) {
  const double sigma = std::pow(10.0, uni(g, -3.0, 2.0));
  const double mu = coin(g, 0.7) ? 0.0 : uni(g, -1000.0, 1000.0);
  for (auto& e : v) e = mu + sigma * gauss(g);
}

float tiny_value(rng_t& g) {
  const float sign = coin(g, 0.5) ? 1.0f : -1.0f;
  switch (below(g, 6)) {
    case 0: return sign * 0.0f;
    case 1: return sign * std::numeric_limits<float>::denorm_min();
    case 2: return sign * std::numeric_limits<float>::min();
    case 3: return sign * std::bit_cast<float>(static_cast<std::uint32_t>(1 + below(g, 0x7FFFFF)));
    case 4: return sign * static_cast<float>(uni(g, 0.0, 1.0) * 1e-30);
    default: return sign * static_cast<float>(uni(g, 0.0, 1.0) * 1e-38);
  }
}

}  // namespace

void fill_row(test_case& c, std::int64_t p, regime r, rng_t& g) {
  const std::int64_t C = c.c;
  const std::int64_t t = row_target(c, p, g);
  std::vector<double> v(static_cast<std::size_t>(C));
  if (r == regime::mixed) r = static_cast<regime>(below(g, static_cast<std::int64_t>(regime::mixed)));
  switch (r) {
    case regime::normal: fill_normal(v, g); break;
    case regime::huge:
      for (auto& e : v) {
        if (coin(g, 0.6)) e = (coin(g, 0.5) ? 1 : -1) * std::pow(10.0, uni(g, 4.0, 38.47));
        else e = 10.0 * gauss(g);
      }
      if (coin(g, 0.2)) v[below(g, C)] = (coin(g, 0.5) ? 1 : -1) * std::numeric_limits<float>::max();
      break;
    case regime::near_overflow: {
      static constexpr double bases[] = {88.72283, 88.7, -87.33654, -88.7, -103.27893, -103.97208,
                                         103.9, 103.97208, 89.5, -104.5};
      const double b1 = bases[below(g, 10)], b2 = bases[below(g, 10)];
      for (auto& e : v) {
        const double b = coin(g, 0.5) ? b1 : b2;
        if (coin(g, 0.2)) e = gauss(g);
        else if (coin(g, 0.5)) {
          float f = static_cast<float>(b);
          for (std::int64_t k = below(g, 9) - 4; k != 0; k += k > 0 ? -1 : 1)
            f = std::nextafter(f, k > 0 ? inf : -inf);
          e = f;
        } else {
          e = b + uni(g, -0.5, 0.5);
        }
      }
      break;
    }
    case regime::tiny:
      for (auto& e : v) e = tiny_value(g);
      break;
    case regime::dominant: {
      const double sigma = std::pow(10.0, uni(g, -3.0, 0.5));
      const double mu = coin(g, 0.8) ? 0.0 : uni(g, -50.0, 50.0);
      for (auto& e : v) e = mu + sigma * gauss(g);
      const std::int64_t k = coin(g, 0.8) ? t : below(g, C);
      double m = -std::numeric_limits<double>::infinity();
      for (std::int64_t j = 0; j < C; ++j)
        if (j != k) m = std::max(m, static_cast<double>(static_cast<float>(v[j])));
      v[k] = (C == 1 ? mu : m) + uni(g, 5.0, 100.0);
      break;
    }
    case regime::ties: {
      fill_normal(v, g);
      const double top = coin(g, 0.5) ? *std::max_element(v.begin(), v.end()) : 5.0 * gauss(g);
      const std::int64_t k = C < 2 ? 1 : 2 + below(g, C - 1);
      for (std::int64_t i = 0; i < k; ++i) v[below(g, C)] = top;
      if (coin(g, 0.5)) v[t] = top;
      break;
    }
    case regime::neg_inf_mask: {
      fill_normal(v, g);
      const double rate = uni(g, 0.2, 0.9);
      for (std::int64_t j = 0; j < C; ++j)
        if (j != t && coin(g, rate)) v[j] = -inf;
      if (coin(g, 0.1)) v[t] = -inf;
      if (coin(g, 0.05)) std::fill(v.begin(), v.end(), -inf);
      break;
    }
    case regime::special: {
      fill_normal(v, g);
      static constexpr float specials[] = {nan, inf, -inf};
      for (std::int64_t i = 1 + below(g, 3); i-- > 0;)
        v[coin(g, 0.3) ? t : below(g, C)] = specials[below(g, 3)];
      break;
    }
    case regime::uniform: {
      double u;
      switch (below(g, 4)) {
        case 0: u = 0.0; break;
        case 1: u = 10.0 * gauss(g); break;
        case 2: u = (coin(g, 0.5) ? 1 : -1) * std::pow(10.0, uni(g, 4.0, 38.47)); break;
        default: u = coin(g, 0.5) ? 88.7 : -103.9; break;
      }
      std::fill(v.begin(), v.end(), u);
      break;
    }
    case regime::mixed: break;
  }
  for (std::int64_t j = 0; j < C; ++j) c.x(p, j) = std::isnan(v[j]) ? nan : clamp_f(v[j]);
  // Preserve deliberate infinities (clamp_f would have clamped them).
  for (std::int64_t j = 0; j < C; ++j)
    if (std::isinf(v[j])) c.x(p, j) = static_cast<float>(v[j]);
}

namespace {

void fill_grid_row(test_case& c, std::int64_t p, rng_t& g) {
  const double sigma = std::pow(10.0, uni(g, -2.0, 0.9));
  for (std::int64_t j = 0; j < c.c; ++j)
    c.x(p, j) = static_cast<float>(std::round(sigma * gauss(g) * 4096.0) / 4096.0);
}

void fill_prob_row(test_case& c, std::int64_t p, rng_t& g) {
  const std::int64_t C = c.c;
  const double kind = uni(g, 0.0, 1.0);
  const std::int64_t k = below(g, C);
  if (kind < 0.3) {  // one-hot
    c.qv(p, k) = 1.0f;
  } else if (kind < 0.7) {  // softmax of random logits
    std::vector<double> e(static_cast<std::size_t>(C));
    const double s = uni(g, 0.1, 5.0);
    double sum = 0.0;
    for (auto& v : e) sum += v = std::exp(s * gauss(g));
    for (std::int64_t j = 0; j < C; ++j) c.qv(p, j) = static_cast<float>(e[j] / sum);
  } else if (kind < 0.9) {  // positive, unnormalised (accepted, not validated)
    for (std::int64_t j = 0; j < C; ++j) c.qv(p, j) = static_cast<float>(uni(g, 0.0, 2.0));
  } else {  // smoothed one-hot
    for (std::int64_t j = 0; j < C; ++j)
      c.qv(p, j) = C == 1 ? 1.0f : j == k ? 0.9f : static_cast<float>(0.1 / static_cast<double>(C - 1));
  }
}

template <class T>
rc::Gen<T> pick(const std::vector<T>& v) {
  return rc::gen::elementOf(v);
}

}  // namespace

std::vector<regime> finite_regimes() {
  return {regime::normal, regime::normal, regime::huge, regime::near_overflow, regime::tiny,
          regime::dominant, regime::ties, regime::uniform};
}

namespace {
std::optional<capabilities>& generation_limits() {
  static std::optional<capabilities> limits;
  return limits;
}
}  // namespace

void set_generation_limits(std::optional<capabilities> declared) { generation_limits() = declared; }

case_spec narrowed(case_spec spec, const capabilities& d) {
  spec.prob_targets = spec.prob_targets && (d.targets & XENT_PLUGIN_TARGET_PROBABILITY);
  spec.index_targets = spec.index_targets && (d.targets & XENT_PLUGIN_TARGET_INDEX);
  if (!spec.prob_targets && !spec.index_targets) spec.index_targets = true;  // outside; skipped if refused
  spec.weights = spec.weights && (d.options & XENT_PLUGIN_OPTION_WEIGHT);
  spec.ignore = spec.ignore && (d.options & XENT_PLUGIN_OPTION_IGNORE_INDEX);
  spec.smoothing = spec.smoothing && (d.options & XENT_PLUGIN_OPTION_LABEL_SMOOTHING);
  // Dense rows are inside any row declaration; one row is sent as rows to a
  // kernel without the (C) layout.
  const bool rows = d.layouts & (XENT_PLUGIN_LAYOUT_ROWS | XENT_PLUGIN_LAYOUT_STRIDED);
  spec.contiguous_layout = spec.contiguous_layout && rows;
  spec.strided_layout = spec.strided_layout && (d.layouts & XENT_PLUGIN_LAYOUT_STRIDED);
  spec.spatial_layout = spec.spatial_layout && (d.layouts & XENT_PLUGIN_LAYOUT_SPATIAL);
  spec.single = spec.single && (rows || (d.layouts & XENT_PLUGIN_LAYOUT_SINGLE));
  std::vector<reduction> kept;
  for (reduction r : spec.reductions) {
    const auto bit = XENT_PLUGIN_REDUCTION_BIT(r == reduction::none   ? XENT_PLUGIN_REDUCTION_NONE
                                               : r == reduction::mean ? XENT_PLUGIN_REDUCTION_MEAN
                                                                      : XENT_PLUGIN_REDUCTION_SUM);
    if (d.reductions & bit) kept.push_back(r);
  }
  if (!kept.empty()) spec.reductions = kept;  // none declared: the spec's, outside
  return spec;
}

rc::Gen<test_case> gen_case(case_spec spec) {
  if (generation_limits()) spec = narrowed(spec, *generation_limits());
  return rc::gen::exec([spec] {
    using rc::gen::inRange;
    using rc::gen::just;
    std::int64_t C;
    if (spec.vocab) {
      C = *rc::gen::element<std::int64_t>(32000, 50257, 128256, 256000);
    } else if (spec.mid_vocab) {
      C = *inRange<std::int64_t>(2049, 6145);
    } else {
      C = *rc::gen::weightedOneOf<std::int64_t>({
          {6, just<std::int64_t>(1)},
          {8, just<std::int64_t>(2)},
          {36, inRange<std::int64_t>(3, 9)},
          {30, inRange<std::int64_t>(9, 65)},
          {20, inRange<std::int64_t>(65, 1025)},
      });
    }
    if (!spec.vocab && !spec.mid_vocab) C = std::clamp(C, spec.min_classes, std::max(spec.min_classes, spec.max_classes));

    std::vector<layout> layouts;
    if (spec.contiguous_layout) layouts.push_back(layout::contiguous);
    if (spec.layouts) {
      if (spec.contiguous_layout) layouts.push_back(layout::contiguous);
      if (spec.strided_layout) layouts.push_back(layout::strided);
      if (spec.spatial_layout) layouts.push_back(layout::spatial);
    }
    if (spec.single) layouts.push_back(layout::single);
    if (layouts.empty()) layouts.push_back(layout::contiguous);  // outside; skipped if refused
    const layout lay = *pick(layouts);

    const std::int64_t d = lay == layout::spatial ? *inRange<std::int64_t>(2, 6) : 1;
    const std::int64_t pad = lay == layout::strided ? *inRange<std::int64_t>(1, 9) : 0;
    std::int64_t max_rows = std::max<std::int64_t>(1, std::min(spec.max_rows, spec.max_elements / (C * d)));
    if (spec.vocab) max_rows = std::min<std::int64_t>(max_rows, 2);
    const std::int64_t n = *rc::gen::weightedOneOf<std::int64_t>({
        {60, inRange<std::int64_t>(1, std::min<std::int64_t>(4, max_rows) + 1)},
        {40, inRange<std::int64_t>(1, max_rows + 1)},
    });
    const bool prob = spec.prob_targets &&
                      (!spec.index_targets || *rc::gen::weightedElement<bool>({{80, false}, {20, true}}));
    test_case c = test_case::shaped(lay, n, C, d, pad, prob);

    std::vector<regime> regimes = spec.regimes;
    if (regimes.empty()) {
      for (int r = 0; r <= static_cast<int>(regime::mixed); ++r) {
        const auto rr = static_cast<regime>(r);
        if (!spec.special_values && (rr == regime::neg_inf_mask || rr == regime::special || rr == regime::mixed))
          continue;
        regimes.push_back(rr);
      }
      regimes.push_back(regime::normal);  // ordinary inputs stay common
    }
    const regime r = *pick(regimes);
    c.regime = spec.grid ? "grid" : to_string(r);
    rng_t g(*rc::gen::noShrink(rc::gen::arbitrary<std::uint64_t>()));

    // Options.
    c.reduce = *pick(spec.reductions);
    if (spec.smoothing)
      c.eps = *rc::gen::weightedOneOf<double>({{65, just(0.0)},
                                               {10, just(0.1)},
                                               {8, just(1.0)},
                                               {17, rc::gen::map(inRange(1, 1000), [](int k) { return k / 1000.0; })}});
    const int with_weights = static_cast<int>(std::lround(spec.weight_chance * 100.0));
    if (spec.weights && *rc::gen::weightedElement<bool>({{100 - with_weights, false}, {with_weights, true}})) {
      const bool zeros = coin(g, 0.15);
      const double span = spec.weight_log_span;
      c.weight.resize(static_cast<std::size_t>(C));
      for (auto& w : c.weight) w = zeros && coin(g, 0.3) ? 0.0f : static_cast<float>(std::exp(uni(g, -span, span)));
    }
    // Targets.
    const std::int64_t P = c.positions();
    if (prob) {
      for (std::int64_t p = 0; p < P; ++p) fill_prob_row(c, p, g);
    } else {
      double ignored = 0.0;
      if (spec.ignore) {
        c.ignore_index = *rc::gen::weightedElement<std::int64_t>({{70, -100}, {10, -1}, {20, 0}});
        if (c.ignore_index == 0) c.ignore_index = below(g, C);  // a class in range
        ignored = *rc::gen::weightedElement<double>({{70, 0.0}, {20, 0.3}, {10, 1.0}});
      }
      for (std::int64_t p = 0; p < P; ++p) c.index[p] = coin(g, ignored) ? c.ignore_index : below(g, C);
    }
    // Upstream gradient.
    if (spec.upstream) {
      const int kind = *rc::gen::weightedElement<int>({{60, 0}, {25, 1}, {15, 2}});
      if (kind == 1) c.upstream = {static_cast<float>(uni(g, -2.0, 2.0))};
      if (kind == 2 && c.reduce == reduction::none) {
        c.upstream.resize(static_cast<std::size_t>(P));
        for (auto& u : c.upstream) u = static_cast<float>(uni(g, -2.0, 2.0));
      }
    }
    // Logits.
    for (std::int64_t p = 0; p < P; ++p) {
      if (spec.grid) fill_grid_row(c, p, g);
      else fill_row(c, p, r, g);
    }
    return c;
  });
}

}  // namespace xent::props

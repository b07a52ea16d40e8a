#include "case.hpp"

#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>
#include <ostream>
#include <sstream>

namespace xent::props {

std::string to_string(layout l) {
  switch (l) {
    case layout::contiguous: return "contiguous";
    case layout::strided: return "strided";
    case layout::spatial: return "spatial";
    case layout::single: return "single";
  }
  return "?";
}

namespace {
// Padding between strided rows: a value a kernel must never read.
constexpr float sentinel = std::numeric_limits<float>::quiet_NaN();

std::string num(double v) {
  char b[32];
  // 9 digits identify a float; a double that is not one needs 17.
  const bool is_float = !std::isfinite(v) || static_cast<double>(static_cast<float>(v)) == v;
  std::snprintf(b, sizeof b, is_float ? "%.9g" : "%.17g", v);
  return b;
}
}  // namespace

test_case test_case::shaped(layout l, std::int64_t n, std::int64_t c, std::int64_t d,
                            std::int64_t pad, bool prob) {
  test_case t;
  t.lay = l;
  t.n = l == layout::single ? 1 : n;
  t.c = c;
  t.d = l == layout::spatial ? d : 1;
  t.pad = l == layout::strided ? pad : 0;
  const std::int64_t row = t.c + t.pad;
  t.storage.assign(static_cast<std::size_t>(l == layout::strided ? t.n * row : t.elements()), 0.0f);
  if (l == layout::strided)
    for (std::int64_t p = 0; p < t.n; ++p)
      for (std::int64_t j = t.c; j < row; ++j) t.storage[static_cast<std::size_t>(p * row + j)] = sentinel;
  t.prob = prob;
  if (prob) t.q.assign(static_cast<std::size_t>(t.elements()), 0.0f);
  else t.index.assign(static_cast<std::size_t>(t.positions()), 0);
  return t;
}

test_case test_case::reshaped(std::int64_t n2, std::int64_t c2) const {
  test_case t = shaped(lay, n2, c2, d, pad, prob);
  t.ignore_index = ignore_index;
  t.reduce = reduce;
  t.eps = eps;
  t.regime = regime;
  if (!weight.empty()) {
    t.weight = weight;
    t.weight.resize(static_cast<std::size_t>(c2), 1.0f);
  }
  if (upstream.size() == 1) t.upstream = upstream;
  return t;
}

std::int64_t test_case::x_offset(std::int64_t p, std::int64_t cls) const {
  switch (lay) {
    case layout::strided: return p * (c + pad) + cls;
    case layout::spatial: return (p / d) * c * d + cls * d + p % d;
    default: return p * c + cls;
  }
}

std::int64_t test_case::q_offset(std::int64_t p, std::int64_t cls) const {
  return lay == layout::spatial ? (p / d) * c * d + cls * d + p % d : p * c + cls;
}

std::vector<std::int64_t> test_case::logits_shape() const {
  switch (lay) {
    case layout::single: return {c};
    case layout::spatial: return {n, c, d};
    default: return {n, c};
  }
}

std::vector<std::int64_t> test_case::position_shape() const {
  switch (lay) {
    case layout::single: return {};
    case layout::spatial: return {n, d};
    default: return {n};
  }
}

namespace {
// A view of `values` in dtype t: the values themselves for float32, else
// their 16-bit copy in `copy`.
tensor_view typed_view(const std::vector<float>& values, std::vector<std::uint16_t>& copy,
                       const std::vector<double>& values64, dtype t, std::vector<std::int64_t> shape) {
  if (t == dtype::f32) return view(values.data(), std::move(shape));
  if (t == dtype::f64) return view(values64.data(), std::move(shape));
  copy.resize(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) copy[i] = narrow(values[i], t);
  return view(copy.data(), t, std::move(shape));
}
}  // namespace

void test_case::to_dtype(dtype t, bool f32_out) {
  type = t;
  out_type = f32_out ? dtype::f32 : t;
  auto round_all = [&](std::vector<float>& v) {
    for (float& e : v) e = static_cast<float>(round_to(e, t));
  };
  // Padding keeps its sentinel pattern's role: only logical elements change.
  for (std::int64_t p = 0; p < positions(); ++p)
    for (std::int64_t j = 0; j < c; ++j) x(p, j) = static_cast<float>(round_to(x(p, j), t));
  round_all(q);
  round_all(weight);
  for (float& e : upstream) e = static_cast<float>(round_to(e, out_type));
}

void test_case::to_float64(std::uint64_t seed, int shift) {
  type = out_type = dtype::f64;
  // SplitMix64 of the value's bits and the seed: a fixed function of the value.
  auto h = [seed](double v) {
    std::uint64_t z = std::bit_cast<std::uint64_t>(v) + seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return static_cast<double>(static_cast<std::int64_t>(z >> 40) - (std::int64_t{1} << 23)) * 2 + 1;
  };
  auto widen_all = [&](const std::vector<float>& from, std::vector<double>& to, int scale) {
    to.resize(from.size());
    for (std::size_t i = 0; i < from.size(); ++i) {
      const double v = from[i];
      to[i] = std::isfinite(v) && v != 0.0 ? std::ldexp(v * (1 + h(v) * 0x1p-36), scale) : v;
    }
  };
  // Padding (strided rows) keeps its sentinel: widened as it is.
  widen_all(storage, storage64, shift);
  if (lay == layout::strided)
    for (std::int64_t p = 0; p < positions(); ++p)
      for (std::int64_t j = c; j < c + pad; ++j) storage64[p * (c + pad) + j] = storage[p * (c + pad) + j];
  widen_all(q, q64, 0);
  widen_all(weight, weight64, 0);
  widen_all(upstream, upstream64, 0);
  auto narrow_all = [](const std::vector<double>& from, std::vector<float>& to) {
    for (std::size_t i = 0; i < from.size(); ++i) to[i] = static_cast<float>(from[i]);
  };
  narrow_all(storage64, storage);
  narrow_all(q64, q);
  narrow_all(weight64, weight);
  narrow_all(upstream64, upstream);
}

void test_case::widen_logits_from_view() {
  if (type == dtype::f32 || type == dtype::f64) return;  // float64: storage64 holds the gradient
  for (std::size_t i = 0; i < storage.size(); ++i) storage[i] = widen(storage16_[i], type);
}

tensor_view test_case::logits_view() const {
  tensor_view v = typed_view(storage, storage16_, storage64, type, logits_shape());
  if (lay == layout::strided) v.strides = {c + pad, 1};
  return v;
}

tensor_view test_case::target_view() const {
  return prob ? typed_view(q, q16_, q64, type, logits_shape()) : view(index.data(), position_shape());
}

const tensor_view* test_case::upstream_view(tensor_view& s) const {
  if (upstream.empty()) return nullptr;
  s = typed_view(upstream, upstream16_, upstream64, out_type,
                 upstream.size() == 1 ? std::vector<std::int64_t>{} : position_shape());
  return &s;
}

options test_case::opts() const {
  options o;
  if (!weight.empty()) o.weight = typed_view(weight, weight16_, weight64, type, {c});
  o.ignore_index = ignore_index;
  o.reduce = reduce;
  o.label_smoothing = eps;
  return o;
}

std::string test_case::shape_tag() const {
  std::ostringstream s;
  s << 'n' << n << 'c' << c;
  if (lay == layout::strided) s << "_s" << (c + pad);
  if (lay == layout::spatial) s << "_d" << d;
  if (lay == layout::single) s << "_1d";
  if (prob) {
    s << "_prob";
  } else {
    s << "_t";
    const std::int64_t P = positions();
    for (std::int64_t p = 0; p < P && p < 16; ++p) s << (p ? "," : "") << index[p];
    if (P > 16) s << ",…";
  }
  s << '_' << to_string(reduce);
  if (eps != 0.0) s << "_eps" << num(eps);
  if (!weight.empty()) s << "_w";
  if (ignore_index != -100) s << "_ii" << ignore_index;
  if (!upstream.empty()) s << "_g";
  if (!regime.empty()) s << "_r" << regime;
  if (type != dtype::f32) s << '_' << to_string(type) << (out_type != type ? "_out" + to_string(out_type) : "");
  return s.str();
}

std::string test_case::repro() const {
  std::ostringstream s;
  s << shape_tag();
  const std::int64_t P = positions();
  const bool small = elements() <= 64;
  auto row = [&](auto get, std::int64_t p) {
    s << '[';
    const std::int64_t shown = small ? c : std::min<std::int64_t>(c, 8);
    for (std::int64_t j = 0; j < shown; ++j) s << (j ? " " : "") << num(get(p, j));
    if (shown < c) s << " …";
    s << ']';
  };
  s << (small ? " x=" : " x(first rows)=");
  const bool wide = type == dtype::f64;
  for (std::int64_t p = 0; p < P && (small || p < 2); ++p) row([&](auto a, auto b) { return xv(a, b); }, p);
  if (prob) {
    s << " q=";
    for (std::int64_t p = 0; p < P && (small || p < 2); ++p)
      row([&](auto a, auto b) { return wide ? q64[q_offset(a, b)] : static_cast<double>(qv(a, b)); }, p);
  }
  if (!weight.empty() && c <= 64) {
    s << " w=[";
    for (std::int64_t j = 0; j < c; ++j) s << (j ? " " : "") << num(wide ? weight64[j] : weight[j]);
    s << ']';
  }
  if (!upstream.empty() && upstream.size() <= 16) {
    s << " g=[";
    for (std::size_t j = 0; j < upstream.size(); ++j) s << (j ? " " : "") << num(wide ? upstream64[j] : upstream[j]);
    s << ']';
  }
  return s.str();
}

void showValue(const test_case& c, std::ostream& os) { os << c.repro(); }

}  // namespace xent::props

// Golden values from PyTorch (tests/golden/cases.json, made by
// tests/golden/make_golden.py with torch 1.13): every registered
// implementation must reproduce PyTorch's loss and gradient on each case, and
// reject each error case without writing its outputs.
//
// One test per (implementation, case), named "<implementation>_<case>", so a
// failure names both. The naive kernel promises only its declared domain:
// cases outside it are skipped with the reason; every other kernel must pass
// every case.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <ostream>
#include <vector>

#include "xent/kernel.hpp"
#include "xent/poison.hpp"
#include "xent/xent.hpp"

#ifndef XENT_GOLDEN_FILE
#error "XENT_GOLDEN_FILE must name tests/golden/cases.json"
#endif

namespace {

using json = nlohmann::json;
using shape_t = std::vector<std::int64_t>;

// The error cases check that nothing was written over this value.
constexpr float sentinel = 12345.0f;

// ------------------------------------------------------------- the file --

// The generator writes one case per line, starting with {"name":"...". Every
// test process (ctest runs each test alone) indexes the lines and parses only
// its own case: parsing the whole file per process would dominate the run.
// golden_file.parses_as_a_whole checks that the index and a full parse agree.
struct golden_file {
  std::string text;
  std::vector<std::string> lines;  // one JSON object per case
  std::vector<std::string> names;
  std::string torch_version = "?";
  std::string load_error;  // non-empty when the file could not be read

  std::size_t size() const { return lines.size(); }
  json parse_case(std::size_t i) const { return json::parse(lines.at(i)); }
};

const golden_file& golden() {
  static const golden_file g = [] {
    golden_file f;
    std::ifstream in(XENT_GOLDEN_FILE);
    if (!in) {
      f.load_error = std::string("cannot open ") + XENT_GOLDEN_FILE;
      return f;
    }
    std::ostringstream text;
    text << in.rdbuf();
    f.text = text.str();
    const std::string case_start = "{\"name\":\"", version_start = "\"torch_version\": ";
    std::istringstream lines(f.text);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.back() == ',') line.pop_back();
      if (line.rfind(case_start, 0) == 0) {
        const auto end = line.find('"', case_start.size());
        f.names.push_back(line.substr(case_start.size(), end - case_start.size()));
        f.lines.push_back(std::move(line));
      } else if (line.rfind(version_start, 0) == 0) {
        try {
          f.torch_version = json::parse(line.substr(version_start.size())).get<std::string>();
        } catch (const std::exception&) {
        }
      }
    }
    return f;
  }();
  return g;
}

// JSON has no NaN/inf: the generator writes them as strings.
double number(const json& v) {
  if (v.is_string()) {
    const auto s = v.get<std::string>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    throw std::runtime_error("bad number string '" + s + "'");
  }
  return v.get<double>();
}

shape_t shape_of(const json& t) { return t.at("shape").get<shape_t>(); }

std::string str(const shape_t& s) {
  std::ostringstream o;
  o << '[';
  for (std::size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

// A tensor from the file, owning its storage in the recorded dtype.
struct owned_tensor {
  shape_t shape;
  xent::dtype type = xent::dtype::f32;
  std::vector<float> f32;
  std::vector<double> f64;
  std::vector<std::int64_t> i64;
  std::vector<std::int32_t> i32;
  std::vector<std::uint16_t> u16;  // bfloat16 / float16 bit patterns

  explicit owned_tensor(const json& t) : shape(shape_of(t)) {
    const std::string dt = t.at("dtype").get<std::string>();
    const json& data = t.at("data");
    if (dt == "bfloat16") type = xent::dtype::bf16;
    if (dt == "float16") type = xent::dtype::f16;
    for (const auto& v : data) {
      if (dt == "float32") f32.push_back(static_cast<float>(number(v)));
      else if (type == xent::dtype::bf16 || type == xent::dtype::f16) {
        // Written as the float32 they are (the encoding round-trips through float32).
        const auto f = static_cast<float>(number(v));
        u16.push_back(xent::narrow(f, type));
        if (!(xent::widen(u16.back(), type) == f) && !std::isnan(f))
          throw std::runtime_error("a " + dt + " value that is not one: " + v.dump());
      }
      else if (dt == "float64") f64.push_back(number(v));
      else if (dt == "int64") i64.push_back(v.get<std::int64_t>());
      else if (dt == "int32") i32.push_back(v.get<std::int32_t>());
      else throw std::runtime_error("unknown dtype " + dt);
    }
    if (dt == "float64") type = xent::dtype::f64;
    else if (dt == "int64") type = xent::dtype::i64;
    else if (dt == "int32") type = xent::dtype::i32;
    if (static_cast<std::int64_t>(data.size()) != xent::numel(shape))
      throw std::runtime_error("tensor data does not match its shape " + str(shape));
  }

  xent::tensor_view view() const {
    xent::tensor_view v;
    v.type = type;
    v.shape = shape;
    v.strides = xent::contiguous_strides(shape);
    switch (type) {
      case xent::dtype::f32: v.data = const_cast<float*>(f32.data()); break;
      case xent::dtype::f64: v.data = const_cast<double*>(f64.data()); break;
      case xent::dtype::i64: v.data = const_cast<std::int64_t*>(i64.data()); break;
      case xent::dtype::i32: v.data = const_cast<std::int32_t*>(i32.data()); break;
      case xent::dtype::bf16:
      case xent::dtype::f16: v.data = const_cast<std::uint16_t*>(u16.data()); break;
      default: break;
    }
    return v;
  }
};

// A 16-bit tensor's values, widened (exact).
std::vector<float> widened(const owned_tensor& t) {
  std::vector<float> v;
  for (const std::uint16_t b : t.u16) v.push_back(xent::widen(b, t.type));
  return v;
}

std::vector<float> floats(const json& t) {
  std::vector<float> v;
  for (const auto& e : t.at("data")) v.push_back(static_cast<float>(number(e)));
  return v;
}

// The None/mean/sum output shape for logits of this shape: (N, d1..dK), () for (C).
shape_t positions_of(const shape_t& logits) {
  if (logits.size() <= 1) return {};
  shape_t p{logits[0]};
  p.insert(p.end(), logits.begin() + 2, logits.end());
  return p;
}

// ------------------------------------------------------------ comparing --

// NaN matches NaN, infinities match exactly, finite values within tol(expected)
// (a bound on PyTorch's own float32 error).
template <class T, class Tol>
::testing::AssertionResult close(const char* what, const std::vector<T>& got, const std::vector<T>& want,
                                 Tol tol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure()
           << what << ": " << got.size() << " values, expected " << want.size();
  int bad = 0;
  std::ostringstream msg;
  msg.precision(sizeof(T) == 8 ? 17 : 9);
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double e = want[i], g = got[i];
    bool ok;
    if (std::isnan(e)) ok = std::isnan(g);
    else if (std::isinf(e)) ok = g == e;
    else ok = std::isfinite(g) && std::fabs(g - e) <= tol(e);
    if (!ok && bad++ < 8)
      msg << "\n  " << what << "[" << i << "]: got " << g << ", PyTorch " << e << " (diff "
          << (g - e) << ", tolerance " << (std::isfinite(e) ? tol(e) : 0.0) << ")";
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << want.size() << " " << what
                                       << " values differ:" << msg.str();
}

// One ulp of a bfloat16/float16 value v (the subnormal spacing below the
// smallest normal).
double ulp_of(double v, xent::dtype t) {
  const int digits = t == xent::dtype::bf16 ? 8 : 11, emin = t == xent::dtype::bf16 ? -126 : -14;
  const int e = v == 0.0 ? emin : std::max(std::ilogb(v), emin);
  return std::ldexp(1.0, e - digits + 1);
}

// |a - b| <= 1e-5 * max(1, |b|)
::testing::AssertionResult loss_close(const std::vector<float>& got, const std::vector<float>& want) {
  return close("loss", got, want, [](double e) { return 1e-5 * std::max(1.0, std::fabs(e)); });
}

// |a - b| <= 1e-6 + 1e-5 * |b|
::testing::AssertionResult grad_close(const std::vector<float>& got, const std::vector<float>& want) {
  return close("grad", got, want, [](double e) { return 1e-6 + 1e-5 * std::fabs(e); });
}

::testing::AssertionResult untouched(const char* what, const std::vector<float>& v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!(v[i] == sentinel))
      return ::testing::AssertionFailure() << what << "[" << i << "] was written (" << v[i]
                                           << ") although the call threw";
  return ::testing::AssertionSuccess();
}

// ------------------------------------------------------------- summary --

struct counts {
  int compared = 0, skipped = 0, errors = 0, not_applicable = 0;
};
std::map<std::string, counts>& tally() {
  static std::map<std::string, counts> t;
  return t;
}

class summary : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& [name, c] : tally())
      std::printf("[golden] %s: %d cases compared with PyTorch %s, %d error cases checked, %d "
                  "skipped (outside the declared domain), %d not applicable (a dtype it does not compute)\n",
                  name.c_str(), c.compared, golden().torch_version.c_str(), c.errors, c.skipped,
                  c.not_applicable);
  }
};
[[maybe_unused]] ::testing::Environment* const summary_env =
    ::testing::AddGlobalTestEnvironment(new summary);

// ---------------------------------------------------------------- tests --

// One test per (implementation, case).
struct param {
  const xent::implementation* impl;
  std::size_t index;
};
// ctest and gtest print this next to the test name.
void PrintTo(const param& p, std::ostream* os) {
  *os << p.impl->name() << ", case " << p.index << " '"
      << golden().names.at(p.index) << "'";
}

std::vector<param> params() {
  std::vector<param> v;
  for (const auto* impl : xent::implementations())
    for (std::size_t i = 0; i < golden().size(); ++i) v.push_back({impl, i});
  return v;
}

std::string test_name(const param& p) {
  std::string s = p.impl->name() + "_" + golden().names.at(p.index);
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

TEST(golden_file, parses_as_a_whole) {
  ASSERT_TRUE(golden().load_error.empty()) << golden().load_error;
  const json doc = json::parse(golden().text);  // valid JSON, not just valid lines
  const json& cases = doc.at("cases");
  ASSERT_EQ(cases.size(), golden().size()) << "a case is not on a line of its own";
  std::set<std::string> unique;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(cases[i].at("name").get<std::string>(), golden().names[i]);
    EXPECT_TRUE(unique.insert(golden().names[i]).second) << "duplicate case " << golden().names[i];
  }
  EXPECT_EQ(doc.at("torch_version").get<std::string>(), golden().torch_version);
  EXPECT_GT(cases.size(), 100u);
}

class golden_case : public ::testing::TestWithParam<param> {};

// Options from the file (parse_reduction throws for an unknown reduction).
xent::options options_of(const json& c, const std::optional<owned_tensor>& weight) {
  xent::options o;
  if (weight) o.weight = weight->view();
  o.ignore_index = c.at("ignore_index").get<std::int64_t>();
  o.reduce = xent::parse_reduction(c.at("reduction").get<std::string>());
  o.label_smoothing = number(c.at("label_smoothing"));
  return o;
}

void check_error_case(const xent::implementation* impl, const json& c) {
  const owned_tensor logits(c.at("logits"));
  const owned_tensor target(c.at("target"));
  std::optional<owned_tensor> weight;
  if (!c.at("weight").is_null()) weight.emplace(c.at("weight"));
  SCOPED_TRACE(c.dump().substr(0, 400));

  const std::string red = c.at("reduction").get<std::string>();
  if (red != "none" && red != "mean" && red != "sum") {
    EXPECT_THROW(xent::parse_reduction(red), xent::error);
    return;
  }
  const xent::options opt = options_of(c, weight);
  const shape_t out_shape =
      opt.reduce == xent::reduction::none
          ? (logits.shape.empty() ? target.shape : positions_of(logits.shape))
          : shape_t{};
  std::vector<float> out(static_cast<std::size_t>(xent::numel(out_shape)), sentinel);
  std::vector<float> grad(static_cast<std::size_t>(xent::numel(logits.shape)), sentinel);
  const auto out_view = xent::view(out.data(), out_shape);
  const auto grad_view = xent::view(grad.data(), logits.shape);

  EXPECT_THROW(xent::make_problem(logits.view(), target.view(), opt), xent::error);
  EXPECT_THROW(xent::cross_entropy(logits.view(), target.view(), out_view, opt, impl), xent::error);
  EXPECT_TRUE(untouched("out", out));
  EXPECT_THROW(xent::cross_entropy_forward_backward(logits.view(), target.view(), out_view, grad_view,
                                                    opt, nullptr, impl),
               xent::error);
  EXPECT_TRUE(untouched("out", out));
  EXPECT_TRUE(untouched("grad", grad));
  // The message names the argument.
  try {
    xent::cross_entropy(logits.view(), target.view(), out_view, opt, impl);
  } catch (const xent::error& e) {
    EXPECT_FALSE(e.argument().empty());
    EXPECT_GT(std::string(e.what()).size(), 10u);
  }
}

// bfloat16/float16 logits: results in the logits' dtype, within one ulp of
// that dtype of the golden value (PyTorch's float64 result on the same
// numbers, rounded once: what a correctly rounded kernel returns exactly).
// PyTorch's own bfloat16 results are in the file for reference only.
void check_sixteen_bit(const xent::implementation* impl, const json& c) {
  const std::string name = c.at("name").get<std::string>();
  const owned_tensor logits(c.at("logits")), target(c.at("target")), upstream(c.at("upstream"));
  std::optional<owned_tensor> weight;
  if (!c.at("weight").is_null()) weight.emplace(c.at("weight"));
  const xent::dtype t = logits.type;
  if (!(impl->dtypes() & xent::dtype_bit(t))) {
    ++tally()[impl->name()].not_applicable;
    GTEST_SKIP() << impl->name() << " does not compute " << xent::to_string(t) << " logits";
  }
  const owned_tensor want_loss(c.at("loss")), want_grad(c.at("grad"));
  const xent::options opt = options_of(c, weight);
  // A signalling NaN of the dtype, which no rounding produces: left there, unwritten.
  const std::uint16_t poison = t == xent::dtype::bf16 ? 0x7f95 : 0x7d15;
  std::vector<std::uint16_t> out(want_loss.u16.size(), poison), grad(logits.u16.size(), poison);
  const auto up = upstream.view();
  xent::cross_entropy_forward_backward(logits.view(), target.view(), xent::view(out.data(), t, want_loss.shape),
                                       xent::view(grad.data(), t, logits.shape), opt, &up, impl);
  EXPECT_EQ(std::count(out.begin(), out.end(), poison), 0) << "loss elements never written, case " << name;
  EXPECT_EQ(std::count(grad.begin(), grad.end(), poison), 0) << "gradient elements never written, case " << name;
  // The correctly rounded tier matches exactly: PyTorch's float64 error
  // (~1e-16 relative) could only change a rounding whose exact value lies
  // that close to a 16-bit midpoint, which none of these does.
  const bool exact = impl->tier() == xent::tier::correctly_rounded;
  auto tol = [t, exact](double e) { return exact ? 0.0 : ulp_of(e, t); };
  std::vector<float> got_loss, got_grad;
  for (const std::uint16_t b : out) got_loss.push_back(xent::widen(b, t));
  for (const std::uint16_t b : grad) got_grad.push_back(xent::widen(b, t));
  EXPECT_TRUE(close("loss", got_loss, widened(want_loss), tol)) << "case " << name;
  EXPECT_TRUE(close("grad", got_grad, widened(want_grad), tol)) << "case " << name;
  if (!::testing::Test::HasFailure()) ++tally()[impl->name()].compared;
}

// One float64 ulp of v (2^-1074 among the subnormals).
double ulp64(double v) {
  const int e = v == 0.0 ? -1022 : std::max(std::ilogb(v), -1022);
  return std::ldexp(1.0, e - 52);
}

// float64 logits: results in float64, against the exact value of the
// inputs rounded once to float64 (make_golden.py: Python's decimal at 80
// digits, checked there against PyTorch's float64 result, which the file
// keeps beside it). The correctly rounded tier matches exactly; the others
// within their tier's float64 ulps (fast 2, relaxed 256, accurate 1).
void check_float64(const xent::implementation* impl, const json& c) {
  const std::string name = c.at("name").get<std::string>();
  const owned_tensor logits(c.at("logits")), target(c.at("target")), upstream(c.at("upstream"));
  std::optional<owned_tensor> weight;
  if (!c.at("weight").is_null()) weight.emplace(c.at("weight"));
  if (!(impl->dtypes() & xent::dtype_bit(xent::dtype::f64))) {
    ++tally()[impl->name()].not_applicable;
    GTEST_SKIP() << impl->name() << " does not compute float64 logits";
  }
  const owned_tensor want_loss(c.at("loss")), want_grad(c.at("grad"));
  const xent::options opt = options_of(c, weight);
  // A signalling NaN, which no arithmetic produces: left there, unwritten.
  const double poison = std::bit_cast<double>(std::uint64_t{0x7ff4000000000a5aull});
  std::vector<double> out(want_loss.f64.size(), poison), grad(logits.f64.size(), poison);
  const auto up = upstream.view();
  auto is_poison = [&](double v) { return std::bit_cast<std::uint64_t>(v) == std::bit_cast<std::uint64_t>(poison); };
  xent::cross_entropy_forward_backward(logits.view(), target.view(), xent::view(out.data(), want_loss.shape),
                                       xent::view(grad.data(), logits.shape), opt, &up, impl);
  EXPECT_EQ(std::count_if(out.begin(), out.end(), is_poison), 0) << "loss elements never written, case " << name;
  EXPECT_EQ(std::count_if(grad.begin(), grad.end(), is_poison), 0)
      << "gradient elements never written, case " << name;
  const xent::tier tier = impl->tier();
  const double ulps = tier == xent::tier::correctly_rounded ? 0.0
                      : tier == xent::tier::accurate        ? 1.0
                      : tier == xent::tier::fast            ? 2.0
                      : tier == xent::tier::relaxed         ? 256.0
                                                            : -1.0;
  if (ulps < 0) GTEST_SKIP() << impl->name() << ": its tier has no float64 ulp bound to hold here";
  // (the golden value is RN(exact): half an ulp more for the others)
  auto tol = [ulps](double e) { return ulps == 0.0 ? 0.0 : (ulps + 0.5) * ulp64(e); };
  EXPECT_TRUE(close("loss", out, want_loss.f64, tol)) << "case " << name;
  EXPECT_TRUE(close("grad", grad, want_grad.f64, tol)) << "case " << name;
  if (!::testing::Test::HasFailure()) ++tally()[impl->name()].compared;
}

TEST_P(golden_case, matches_pytorch) {
  const auto [impl, index] = GetParam();
  ASSERT_TRUE(golden().load_error.empty()) << golden().load_error;
  const json c = golden().parse_case(index);
  const std::string name = c.at("name").get<std::string>();
  if (c.contains("note")) RecordProperty("note", c.at("note").get<std::string>());

  if (c.at("expect_error").get<bool>()) {
    check_error_case(impl, c);
    if (!HasFailure()) ++tally()[impl->name()].errors;
    return;
  }
  if (c.contains("dtype"))
    return c.at("dtype") == "float64" ? check_float64(impl, c) : check_sixteen_bit(impl, c);

  const owned_tensor logits(c.at("logits"));
  const owned_tensor target(c.at("target"));
  std::optional<owned_tensor> weight;
  if (!c.at("weight").is_null()) weight.emplace(c.at("weight"));
  const xent::options opt = options_of(c, weight);
  const auto lv = logits.view();
  const auto tv = target.view();

  const xent::problem pr = xent::make_problem(lv, tv, opt);
  if (auto why = impl->outside_domain(pr)) {
    ++tally()[impl->name()].skipped;
    GTEST_SKIP() << impl->name() << " declares this case outside its domain: " << *why;
  }

  const std::vector<float> want_loss = floats(c.at("loss"));
  const shape_t loss_shape = shape_of(c.at("loss"));
  const std::vector<float> want_grad = floats(c.contains("xent_grad") ? c.at("xent_grad") : c.at("grad"));
  const owned_tensor upstream(c.at("upstream"));
  if (c.contains("xent_grad"))
    std::printf("[golden] %s: gradient compared with xent_grad (deliberate difference)\n",
                name.c_str());

  // Loss only. Output buffers are poisoned (xent/poison.hpp): every element
  // must come back written, as on a torch.empty buffer.
  std::vector<float> out(want_loss.size());
  const xent::poison::sentinel out_s = xent::poison::fill(out);
  xent::cross_entropy(lv, tv, xent::view(out.data(), loss_shape), opt, impl);
  EXPECT_EQ(xent::poison::unwritten_message("loss elements", out, out_s), "") << "forward, case " << name;
  EXPECT_TRUE(loss_close(out, want_loss)) << "forward, case " << name;
  if (opt.reduce != xent::reduction::none) {
    const float scalar = xent::cross_entropy(lv, tv, opt, impl);
    EXPECT_TRUE(loss_close({scalar}, want_loss)) << "scalar overload, case " << name;
  }

  // Loss and gradient with the recorded upstream.
  std::vector<float> out2(want_loss.size());
  std::vector<float> grad(static_cast<std::size_t>(xent::numel(logits.shape)));
  const xent::poison::sentinel out2_s = xent::poison::fill(out2), grad_s = xent::poison::fill(grad);
  const auto up = upstream.view();
  xent::cross_entropy_forward_backward(lv, tv, xent::view(out2.data(), loss_shape),
                                       xent::view(grad.data(), logits.shape), opt, &up, impl);
  EXPECT_EQ(xent::poison::unwritten_message("loss elements", out2, out2_s), "")
      << "forward_backward, case " << name;
  EXPECT_EQ(xent::poison::unwritten_message("gradient elements", grad, grad_s), "")
      << "forward_backward, case " << name;
  EXPECT_TRUE(loss_close(out2, want_loss)) << "forward_backward loss, case " << name;
  EXPECT_TRUE(grad_close(grad, want_grad)) << "forward_backward grad, case " << name;

  if (!HasFailure()) ++tally()[impl->name()].compared;
}

INSTANTIATE_TEST_SUITE_P(pytorch, golden_case, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<param>& p) { return test_name(p.param); });

}  // namespace

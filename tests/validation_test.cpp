// The front door's contract, for every registered implementation: each
// malformed input gets an xent::error that names the argument and carries the
// key facts (value, position, shapes), and nothing is written -- the output
// buffers still hold their sentinel. Then the positive side of views: in-place
// gradients and sliced / (N,C,d) views give bitwise the results of copies.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "xent/kernel.hpp"
#include "xent/xent.hpp"

namespace {

using shape_t = std::vector<std::int64_t>;
constexpr float sentinel = 12345.0f;

std::vector<float> iota_logits(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 7919) % 23) * 0.37f - 3.5f;
  return v;
}

xent::tensor_view strided(void* data, xent::dtype t, shape_t shape, shape_t strides) {
  xent::tensor_view v;
  v.data = data;
  v.type = t;
  v.shape = std::move(shape);
  v.strides = std::move(strides);
  return v;
}

// Runs f, which must throw xent::error for `argument` whose message contains
// every needle.
template <class F>
::testing::AssertionResult throws(F&& f, const std::string& argument,
                                  const std::vector<std::string>& needles) {
  try {
    f();
  } catch (const xent::error& e) {
    const std::string what = e.what();
    if (e.argument() != argument)
      return ::testing::AssertionFailure() << "argument() is '" << e.argument() << "', expected '"
                                           << argument << "' (message: " << what << ")";
    for (const auto& n : needles)
      if (what.find(n) == std::string::npos)
        return ::testing::AssertionFailure() << "message \"" << what << "\" lacks \"" << n << "\"";
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-xent exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw (expected an error about " << argument << ")";
}

::testing::AssertionResult untouched(const std::vector<float>& v, const char* what) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!(v[i] == sentinel))
      return ::testing::AssertionFailure() << what << "[" << i << "] = " << v[i]
                                           << " was written although the call threw";
  return ::testing::AssertionSuccess();
}

class validation : public ::testing::TestWithParam<const xent::implementation*> {
 protected:
  const xent::implementation* impl() const { return GetParam(); }

  // The problem under test: logits and target views plus options; the
  // outputs are sentinel-filled buffers sized for a well-formed call unless
  // a test replaces the views.
  struct call {
    call(xent::tensor_view l, xent::tensor_view t, xent::options o = {})
        : logits(std::move(l)), target(std::move(t)), opt(std::move(o)) {}
    xent::tensor_view logits, target;
    xent::options opt;
    std::optional<xent::tensor_view> out, grad;  // nullopt: well-formed sentinel buffers
    const xent::tensor_view* upstream = nullptr;
  };

  // Expects both the loss-only and the loss+gradient call to reject `c`
  // (only the latter when backward_only) with the given argument and message
  // parts, and every output buffer to keep its sentinel.
  void expect_rejected(const call& c, const std::string& argument,
                       const std::vector<std::string>& needles, bool backward_only = false) {
    const shape_t none_shape = c.logits.ndim() >= 2 ? [&] {
      shape_t s{c.logits.shape[0]};
      s.insert(s.end(), c.logits.shape.begin() + 2, c.logits.shape.end());
      return s;
    }() : shape_t{};
    const shape_t out_shape = c.opt.reduce == xent::reduction::none ? none_shape : shape_t{};
    // Default buffers only where the test gives none (its shapes may be too
    // large to allocate, or to multiply).
    std::int64_t out_n = 1, grad_n = 1;
    if (!c.out)
      for (auto e : out_shape) out_n *= std::max<std::int64_t>(e, 0);  // malformed shapes too
    if (!c.grad)
      for (auto e : c.logits.shape) grad_n *= std::max<std::int64_t>(e, 0);
    out_buf_.assign(static_cast<std::size_t>(out_n), sentinel);
    grad_buf_.assign(static_cast<std::size_t>(grad_n), sentinel);
    const xent::tensor_view out = c.out ? *c.out : xent::view(out_buf_.data(), out_shape);
    const xent::tensor_view grad = c.grad ? *c.grad : xent::view(grad_buf_.data(), c.logits.shape);

    if (!backward_only) {
      EXPECT_TRUE(throws([&] { xent::cross_entropy(c.logits, c.target, out, c.opt, impl()); },
                         argument, needles))
          << "loss only";
      EXPECT_TRUE(untouched(out_buf_, "out"));
      EXPECT_TRUE(untouched(extra, "caller buffer"));
    }
    EXPECT_TRUE(throws(
        [&] {
          xent::cross_entropy_forward_backward(c.logits, c.target, out, grad, c.opt, c.upstream,
                                               impl());
        },
        argument, needles))
        << "loss and gradient";
    EXPECT_TRUE(untouched(out_buf_, "out"));
    EXPECT_TRUE(untouched(grad_buf_, "grad"));
    EXPECT_TRUE(untouched(extra, "caller buffer"));
  }

  std::vector<float> out_buf_, grad_buf_;  // the default outputs of expect_rejected
  std::vector<float> extra;  // a test's own output storage, sentinel-filled
};

// ------------------------------------------------------------- targets --

TEST_P(validation, target_out_of_range_positive) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 7, 2};
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), {}},
                  "target", {"Target 7 is out of bounds", "[1]"});
}

TEST_P(validation, target_equal_to_C) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 5};
  xent::options o;
  o.reduce = xent::reduction::none;
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o},
                  "target", {"Target 5 is out of bounds", "[2]"});
}

TEST_P(validation, target_negative_other_than_ignore_index) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, -1, 2};
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), {}},
                  "target", {"Target -1 is out of bounds", "[1]"});
  // -100 is fine by default, but not once ignore_index is something else.
  const std::vector<std::int64_t> t2{1, -100, 2};
  xent::options o;
  o.ignore_index = 1;
  o.label_smoothing = 0.1;
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t2.data(), {3}), o},
                  "target", {"Target -100 is out of bounds", "[1]"});
}

TEST_P(validation, target_out_of_range_with_spatial_dims) {
  const auto x = iota_logits(2 * 5 * 3);
  const std::vector<std::int64_t> t{0, 1, 9, 4, 3, 2};  // (2, 3): 9 at [0, 2]
  expect_rejected({xent::view(x.data(), {2, 5, 3}), xent::view(t.data(), {2, 3}), {}},
                  "target", {"Target 9 is out of bounds", "[0, 2]"});
  const auto x4 = iota_logits(2 * 3 * 2 * 2);
  const std::vector<std::int64_t> t4{0, 1, 2, 0, 1, 2, -7, 0};  // (2, 2, 2): -7 at [1, 1, 0]
  expect_rejected({xent::view(x4.data(), {2, 3, 2, 2}), xent::view(t4.data(), {2, 2, 2}), {}},
                  "target", {"Target -7 is out of bounds", "[1, 1, 0]"});
}

TEST_P(validation, target_out_of_range_scalar_target) {
  const auto x = iota_logits(5);
  const std::int64_t t = 5;
  expect_rejected({xent::view(x.data(), {5}), xent::view(&t, {}), {}},
                  "target", {"Target 5 is out of bounds"});
}

TEST_P(validation, target_out_of_range_in_a_strided_view) {
  const auto x = iota_logits(15);
  // Every other element is the view; the gaps hold garbage that must not be read.
  const std::vector<std::int64_t> buf{1, 99, 2, 99, 8, 99};
  auto tv = strided(const_cast<std::int64_t*>(buf.data()), xent::dtype::i64, {3}, {2});
  expect_rejected({xent::view(x.data(), {3, 5}), tv, {}}, "target",
                  {"Target 8 is out of bounds", "[2]"});
  // The same view without the bad value is accepted: the gaps are not targets.
  const std::vector<std::int64_t> ok{1, 99, 2, 99, 4, 99};
  auto tv_ok = strided(const_cast<std::int64_t*>(ok.data()), xent::dtype::i64, {3}, {2});
  EXPECT_NO_THROW(xent::cross_entropy(xent::view(x.data(), {3, 5}), tv_ok, {}, impl()));

  // A transposed (N, d) target view: logical [1, 0] is buffer element 1.
  const auto x3 = iota_logits(2 * 4 * 3);
  const std::vector<std::int64_t> tt{0, 6, 1, 2, 3, 0};  // buffer (3, 2); view (2, 3) strides (1, 2)
  auto tview = strided(const_cast<std::int64_t*>(tt.data()), xent::dtype::i64, {2, 3}, {1, 2});
  expect_rejected({xent::view(x3.data(), {2, 4, 3}), tview, {}}, "target",
                  {"Target 6 is out of bounds", "[1, 0]"});
}

TEST_P(validation, target_shape_mismatch) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2};
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {2}), {}}, "target",
                  {"[2]", "[3, 5]", "[3]"});
  const auto x3 = iota_logits(2 * 5 * 4);
  const std::vector<std::int64_t> t3(6, 0);
  expect_rejected({xent::view(x3.data(), {2, 5, 4}), xent::view(t3.data(), {2, 3}), {}}, "target",
                  {"[2, 3]", "[2, 5, 4]", "[2, 4]"});
  // (N, 1) index targets for (N, C) logits: the regression-target shape.
  const std::vector<std::int64_t> t31(3, 0);
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t31.data(), {3, 1}), {}}, "target",
                  {"[3, 1]", "[3]"});
  // int64 targets of the logits' shape are not probabilities.
  const std::vector<std::int64_t> t35(15, 0);
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t35.data(), {3, 5}), {}}, "target",
                  {"[3, 5]"});
}

TEST_P(validation, int32_targets) {
  const auto x = iota_logits(15);
  std::vector<std::int32_t> t{1, 2, 3};
  auto tv = strided(t.data(), xent::dtype::i32, {3}, {1});
  expect_rejected({xent::view(x.data(), {3, 5}), tv, {}}, "target", {"int64", "int32"});
}

TEST_P(validation, float_targets_of_the_position_shape) {
  // (N) float class labels for (N, C) logits: not probabilities, not int64.
  const auto x = iota_logits(15);
  const std::vector<float> t{1.0f, 2.0f, 3.0f};
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3})}, "target",
                  {"int64", "float32"});
}

TEST_P(validation, probability_target_of_another_dtype) {
  const auto x = iota_logits(15);
  std::vector<double> q(15, 0.2);
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(q.data(), {3, 5}), {}}, "target",
                  {"float32", "float64"});
}

// ------------------------------------------------------------- logits --

// float64 logits need a float64 out, and a kernel that computes float64.
TEST_P(validation, float64_logits) {
  std::vector<double> x(15, 0.5);
  const std::vector<std::int64_t> t{1, 2, 3};
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), {}}, "out",
                  {"out must be float64", "got float32"});
  double out = 42.0;
  xent::tensor_view ov = xent::view(&out, {});
  ov.data = &out;
  if (impl()->dtypes() & xent::dtype_bit(xent::dtype::f64)) {
    EXPECT_NO_THROW(xent::cross_entropy(xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), ov, {}, impl()));
    EXPECT_EQ(out, std::log(5.0));
    return;
  }
  EXPECT_TRUE(throws([&] { xent::cross_entropy(xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), ov, {}, impl()); },
                     "logits", {"does not compute float64 logits", "float64 logits: stable"}));
  EXPECT_EQ(out, 42.0);
}

TEST_P(validation, zero_dim_logits) {
  const float x = 1.0f;
  const std::int64_t t = 0;
  expect_rejected({xent::view(&x, {}), xent::view(&t, {}), {}}, "logits", {"0-d"});
}

TEST_P(validation, zero_classes) {
  const std::vector<std::int64_t> t{0, 0, 0};
  const float dummy = 0.0f;
  expect_rejected({xent::view(&dummy, {3, 0}), xent::view(t.data(), {3}), {}}, "logits",
                  {"[3, 0]", "C = 0"});
}

TEST_P(validation, malformed_views) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  auto bad_strides = xent::view(x.data(), {3, 5});
  bad_strides.strides = {5};
  expect_rejected({bad_strides, xent::view(t.data(), {3}), {}}, "logits", {"2 dimensions", "1 strides"});
  auto negative = xent::view(x.data(), {3, 5});
  negative.shape = {3, -5};
  expect_rejected({negative, xent::view(t.data(), {3}), {}}, "logits", {"negative extent -5"});
  auto null_target = xent::view(t.data(), {3});
  null_target.data = nullptr;
  expect_rejected({xent::view(x.data(), {3, 5}), null_target, {}}, "target", {"null data pointer"});
}

// ------------------------------------------------------------- weights --

TEST_P(validation, weight_wrong_length_ndim_dtype) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  const std::vector<float> w4(4, 1.0f), w15(5, 1.0f);
  const std::vector<double> w64(5, 1.0);
  xent::options o;
  o.weight = xent::view(w4.data(), {4});
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o}, "weight",
                  {"length 5", "[4]"});
  o.weight = xent::view(w15.data(), {1, 5});
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o}, "weight",
                  {"1-D", "[1, 5]"});
  o.weight = xent::view(w64.data(), {5});
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o}, "weight",
                  {"float32", "float64"});
  // Also with probability targets.
  const std::vector<float> q(15, 0.2f);
  o.weight = xent::view(w4.data(), {4});
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(q.data(), {3, 5}), o}, "weight",
                  {"length 5", "[4]"});
}

// ------------------------------------------------------------- options --

TEST_P(validation, probability_targets_with_ignore_index) {
  const auto x = iota_logits(15);
  const std::vector<float> q(15, 0.2f);
  for (std::int64_t ii : {0, 1, 4}) {
    xent::options o;
    o.ignore_index = ii;
    expect_rejected({xent::view(x.data(), {3, 5}), xent::view(q.data(), {3, 5}), o}, "ignore_index",
                    {"ignore_index (" + std::to_string(ii) + ")", "probabilit"});
  }
}

TEST_P(validation, label_smoothing_out_of_range) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  const std::vector<float> q(15, 0.2f);
  xent::options o;
  o.label_smoothing = 1.5;
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o}, "label_smoothing",
                  {"[0, 1]", "1.5"});
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(q.data(), {3, 5}), o}, "label_smoothing",
                  {"[0, 1]", "1.5"});
  // PyTorch silently treats these as 0 (#134767); xent rejects them.
  o.label_smoothing = -0.5;
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o}, "label_smoothing",
                  {"[0, 1]", "-0.5"});
  o.label_smoothing = std::nan("");
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o}, "label_smoothing",
                  {"NaN"});
  // The bounds themselves are fine.
  for (double ls : {0.0, 1.0}) {
    o.label_smoothing = ls;
    EXPECT_NO_THROW(xent::cross_entropy(xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o, impl()));
  }
}

TEST_P(validation, unknown_reduction) {
  EXPECT_TRUE(throws([] { xent::parse_reduction("avg"); }, "reduction", {"'avg'"}));
  EXPECT_TRUE(throws([] { xent::parse_reduction("Mean"); }, "reduction", {"'Mean'"}));
  EXPECT_EQ(xent::parse_reduction("none"), xent::reduction::none);
  EXPECT_EQ(xent::parse_reduction("mean"), xent::reduction::mean);
  EXPECT_EQ(xent::parse_reduction("sum"), xent::reduction::sum);
  // The scalar convenience overload cannot return 'none'.
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  xent::options o;
  o.reduce = xent::reduction::none;
  EXPECT_TRUE(throws([&] { xent::cross_entropy(xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o, impl()); },
                     "reduction", {"none"}));
}

// ------------------------------------------------------------- outputs --

TEST_P(validation, out_shape_wrong) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  extra.assign(2, sentinel);
  xent::options o;
  o.reduce = xent::reduction::none;
  call c{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o};
  c.out = xent::view(extra.data(), {2});
  expect_rejected(c, "out", {"[3]", "[2]", "none"});
  o.reduce = xent::reduction::mean;
  c.opt = o;
  expect_rejected(c, "out", {"one element", "[2]", "mean"});
  o.reduce = xent::reduction::sum;
  c.opt = o;
  expect_rejected(c, "out", {"one element", "[2]", "sum"});
  // (N, C, d): out must be (N, d), not the flattened positions.
  const auto x3 = iota_logits(2 * 5 * 3);
  const std::vector<std::int64_t> t3(6, 1);
  extra.assign(6, sentinel);
  o.reduce = xent::reduction::none;
  call c3{xent::view(x3.data(), {2, 5, 3}), xent::view(t3.data(), {2, 3}), o};
  c3.out = xent::view(extra.data(), {6});
  expect_rejected(c3, "out", {"[2, 3]", "[6]"});
}

TEST_P(validation, out_dtype_wrong) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  double d = 7.0;
  call c{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), {}};
  c.out = strided(&d, xent::dtype::f64, {}, {});
  expect_rejected(c, "out", {"float32", "float64"});
  EXPECT_EQ(d, 7.0);
}

TEST_P(validation, out_overlapping_an_input) {
  std::vector<float> x = iota_logits(15);
  const std::vector<float> before = x;
  const std::vector<std::int64_t> t{1, 2, 3};
  xent::options o;
  o.reduce = xent::reduction::none;
  call c{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o};
  c.out = xent::view(x.data() + 12, {3});  // the last row's logits
  expect_rejected(c, "out", {"overlaps"});
  c.opt.reduce = xent::reduction::mean;
  c.out = xent::view(x.data() + 4, {});
  expect_rejected(c, "out", {"overlaps"});
  EXPECT_EQ(std::memcmp(x.data(), before.data(), x.size() * sizeof(float)), 0) << "logits were written";
  // Out inside the weight.
  std::vector<float> w(5, 1.0f);
  c.opt.weight = xent::view(w.data(), {5});
  c.out = xent::view(w.data() + 2, {});
  expect_rejected(c, "out", {"overlaps"});
  EXPECT_EQ(w, std::vector<float>(5, 1.0f));
}

TEST_P(validation, grad_shape_wrong) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  extra.assign(15, sentinel);
  call c{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), {}};
  c.grad = xent::view(extra.data(), {5, 3});
  expect_rejected(c, "grad", {"[3, 5]", "[5, 3]"}, /*backward_only=*/true);
  c.grad = xent::view(extra.data(), {15});
  expect_rejected(c, "grad", {"[3, 5]", "[15]"}, true);
}

TEST_P(validation, grad_dtype_wrong) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  std::vector<double> g(15, 7.0);
  call c{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), {}};
  c.grad = strided(g.data(), xent::dtype::f64, {3, 5}, {5, 1});
  expect_rejected(c, "grad", {"float32", "float64"}, true);
  EXPECT_EQ(g, std::vector<double>(15, 7.0));
}

TEST_P(validation, grad_partially_overlapping_the_logits) {
  std::vector<float> buf(20);
  const auto init = iota_logits(20);
  buf = init;
  const std::vector<std::int64_t> t{1, 2, 3};
  call c{xent::view(buf.data(), {3, 5}), xent::view(t.data(), {3}), {}};
  c.grad = xent::view(buf.data() + 5, {3, 5});  // shifted by one row
  expect_rejected(c, "grad", {"overlaps the logits", "same pointer and strides"}, true);
  // Same pointer, other strides (a transposed view of the same memory).
  c.grad = strided(buf.data(), xent::dtype::f32, {3, 5}, {1, 3});
  expect_rejected(c, "grad", {"overlaps the logits"}, true);
  EXPECT_EQ(buf, init) << "the logits buffer was written";
}

TEST_P(validation, grad_overlapping_target_weight_or_out) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  std::vector<float> w(5, 1.0f);
  xent::options o;
  o.weight = xent::view(w.data(), {5});
  extra.assign(15, sentinel);
  call c{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o};
  c.grad = xent::view(extra.data(), {3, 5});
  c.out = xent::view(extra.data() + 7, {});  // out inside grad
  expect_rejected(c, "grad", {"overlaps"}, true);
  std::vector<float> wg(15, 1.0f);  // weight inside grad's memory
  c.out.reset();
  c.opt.weight = xent::view(wg.data() + 3, {5});
  c.grad = xent::view(wg.data(), {3, 5});
  expect_rejected(c, "grad", {"overlaps"}, true);
  EXPECT_EQ(wg, std::vector<float>(15, 1.0f));
}

TEST_P(validation, upstream_wrong_shape_or_dtype) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  const std::vector<float> up2{1.0f, 2.0f}, up3{1.0f, 2.0f, 3.0f};
  xent::options o;
  o.reduce = xent::reduction::none;
  call c{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o};
  const auto u2 = xent::view(up2.data(), {2});
  c.upstream = &u2;
  expect_rejected(c, "upstream", {"[2]", "[3]"}, true);
  // mean/sum: one element only.
  c.opt.reduce = xent::reduction::mean;
  const auto u3 = xent::view(up3.data(), {3});
  c.upstream = &u3;
  expect_rejected(c, "upstream", {"one element", "[3]"}, true);
  const std::vector<double> ud{1.0};
  const auto ud_view = xent::view(ud.data(), {});
  c.upstream = &ud_view;
  expect_rejected(c, "upstream", {"float32", "float64"}, true);
}

// Kernels read upstream values while writing rows: an upstream view inside the
// gradient or loss buffer would be read after being overwritten.
TEST_P(validation, upstream_overlapping_grad_or_out) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  xent::options o;
  o.reduce = xent::reduction::none;
  extra.assign(15, sentinel);
  call c{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o};
  c.grad = xent::view(extra.data(), {3, 5});
  const auto up_in_grad = xent::view(extra.data() + 6, {3});
  c.upstream = &up_in_grad;
  expect_rejected(c, "upstream", {"overlaps"}, true);
  // upstream shifted by one element against out: out[p] overwrites upstream[p-1]'s
  // neighbour before it is read.
  extra.assign(4, sentinel);
  call c2{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o};
  c2.out = xent::view(extra.data(), {3});
  const auto up_in_out = xent::view(extra.data() + 1, {3});
  c2.upstream = &up_in_out;
  expect_rejected(c2, "upstream", {"overlaps"}, true);
}

// ------------------------------------------------------------------ sizes --
// Shapes whose element count, byte size or strided reach overflows 64 bits,
// and views that would wrap around the address space or are misaligned: a
// clear error naming the tensor, nothing written (the
// fuzzer fuzz/fuzz_problem.cpp asserts the same for any shape it makes).

constexpr std::int64_t two_to(int k) { return std::int64_t{1} << k; }

// A call whose outputs are small sentinel buffers that the shapes never
// reach (the call must be rejected before any element is addressed).
TEST_P(validation, element_count_overflow) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  extra.assign(4, sentinel);
  auto huge = [&](shape_t shape) {
    call c{strided(const_cast<float*>(x.data()), xent::dtype::f32, shape, xent::contiguous_strides(shape)),
           xent::view(t.data(), {3}), {}};
    c.out = xent::view(extra.data(), {});
    c.grad = strided(extra.data() + 1, xent::dtype::f32, shape, xent::contiguous_strides(shape));
    return c;
  };
  // 2^80 elements.
  expect_rejected(huge({two_to(40), two_to(40)}), "logits",
                  {"[1099511627776, 1099511627776]", "more elements than a 64-bit integer can count"});
  // 2^62 elements fit, their 2^64 bytes do not.
  expect_rejected(huge({two_to(31), two_to(31)}), "logits", {"float32", "more bytes"});
  // Empty, but the other extents multiply to 2^124 (NumPy refuses it too).
  expect_rejected(huge({0, two_to(62), two_to(62)}), "logits", {"more elements"});
  // C = 0 with an overflowing position count.
  expect_rejected(huge({two_to(40), 0, two_to(40)}), "logits", {"more elements"});
}

TEST_P(validation, strided_reach_overflow) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  auto with_strides = [&](shape_t strides) {
    return call{strided(const_cast<float*>(x.data()), xent::dtype::f32, {3, 5}, std::move(strides)),
                xent::view(t.data(), {3}), {}};
  };
  // (3 - 1) * 2^62 elements: the extent times the stride overflows.
  expect_rejected(with_strides({two_to(62), 1}), "logits",
                  {"strides [4611686018427387904, 1]", "reaches further than a 64-bit integer"});
  // Each product fits, their sum does not.
  expect_rejected(with_strides({two_to(61) + 1, two_to(61)}), "logits", {"reaches further"});
  // Elements fit, their bytes do not: 2 * 2^61 * 4 bytes.
  expect_rejected(with_strides({two_to(61), 1}), "logits", {"reaches further"});
  expect_rejected(with_strides({std::numeric_limits<std::int64_t>::min(), 1}), "logits",
                  {"reaches further"});
  // 2 * 2^58 * 4 = 2^61 bytes below a heap pointer: below address 0.
  expect_rejected(with_strides({-two_to(58), 1}), "logits", {"reaches outside the address space"});
  // A stride of any size is fine on an extent of 1, or when nothing is addressed.
  const std::vector<std::int64_t> t1{1};
  float out = sentinel;
  EXPECT_NO_THROW(xent::cross_entropy(
      strided(const_cast<float*>(x.data()), xent::dtype::f32, {1, 5}, {two_to(62), 1}),
      xent::view(t1.data(), {1}), xent::view(&out, {}), {}, impl()));
  EXPECT_EQ(out, xent::cross_entropy(xent::view(x.data(), {1, 5}), xent::view(t1.data(), {1}), {}, impl()));
  EXPECT_NO_THROW(xent::cross_entropy(
      strided(const_cast<float*>(x.data()), xent::dtype::f32, {0, 5}, {two_to(62), two_to(62)}),
      strided(const_cast<std::int64_t*>(t.data()), xent::dtype::i64, {0}, {-two_to(62)}),
      xent::view(&out, {}), {}, impl()));
}

// Found by fuzz/fuzz_problem: an empty problem's strides are never checked
// (nothing is addressed), and merging its position dimensions multiplied
// them -- signed overflow for logits [0, 3, 4] with stride INT64_MIN.
TEST_P(validation, empty_problem_with_any_strides) {
  const auto x = iota_logits(12);
  const std::vector<std::int64_t> t{0};
  constexpr auto min = std::numeric_limits<std::int64_t>::min();
  const auto logits = strided(const_cast<float*>(x.data()), xent::dtype::f32, {0, 3, 4}, {1, 1, min});
  const auto target = strided(const_cast<std::int64_t*>(t.data()), xent::dtype::i64, {0, 4}, {1, min});
  std::vector<float> grad(1, sentinel);
  float loss = sentinel;
  xent::options sum;
  sum.reduce = xent::reduction::sum;
  xent::cross_entropy_forward_backward(logits, target, xent::view(&loss, {}),
                                       strided(grad.data(), xent::dtype::f32, {0, 3, 4}, {min, 1, 1}), sum,
                                       nullptr, impl());
  EXPECT_EQ(loss, 0.0f);
  EXPECT_EQ(grad[0], sentinel);
  EXPECT_TRUE(std::isnan(xent::cross_entropy(logits, target, {}, impl())));  // mean of nothing
  // The same for an empty `none` output whose first stride is INT64_MIN
  // (the output overlap check negated it before it saw the zero extent).
  xent::options none;
  none.reduce = xent::reduction::none;
  const auto l2 = strided(const_cast<float*>(x.data()), xent::dtype::f32, {2, 3, 0}, {3, 1, 1});
  const auto t2 = strided(const_cast<std::int64_t*>(t.data()), xent::dtype::i64, {2, 0}, {1, 1});
  EXPECT_NO_THROW(xent::cross_entropy(l2, t2, strided(grad.data(), xent::dtype::f32, {2, 0}, {min, 1}), none,
                                      impl()));
  EXPECT_EQ(grad[0], sentinel);
}

// Found by fuzz/fuzz_problem: a stride of any value is valid on an extent-1
// dimension, and the position walk (before such dimensions are dropped)
// stepped past it and back -- signed overflow for a stride near 2^63.
TEST_P(validation, extent_one_dimension_with_a_stride_near_the_limit) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{3, 1, 0};
  constexpr auto max = std::numeric_limits<std::int64_t>::max();
  const auto logits = strided(const_cast<float*>(x.data()), xent::dtype::f32, {3, 5, 1}, {5, 1, max - 5});
  const auto target = strided(const_cast<std::int64_t*>(t.data()), xent::dtype::i64, {3, 1}, {1, max - 1});
  const float expected = xent::cross_entropy(xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), {}, impl());
  EXPECT_EQ(xent::cross_entropy(logits, target, {}, impl()), expected);
  xent::options none;
  none.reduce = xent::reduction::none;
  std::vector<float> loss(3, sentinel);
  xent::cross_entropy(logits, target, strided(loss.data(), xent::dtype::f32, {3, 1}, {1, max}), none, impl());
  std::vector<float> contiguous(3, sentinel);
  xent::cross_entropy(xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), xent::view(contiguous.data(), {3}),
                      none, impl());
  EXPECT_EQ(loss, contiguous);
}

TEST_P(validation, sizes_of_every_argument) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  const std::vector<float> w(5, 1.0f), up(3, 1.0f);
  extra.assign(32, sentinel);
  // weight [2^62] strides [2^62]: reach overflow, named as the weight.
  xent::options o;
  o.weight = strided(const_cast<float*>(w.data()), xent::dtype::f32, {5}, {two_to(62)});
  expect_rejected({xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), o}, "weight",
                  {"weight of shape [5] with strides [4611686018427387904]"});
  // Target [3] with an overflowing stride.
  expect_rejected({xent::view(x.data(), {3, 5}),
                   strided(const_cast<std::int64_t*>(t.data()), xent::dtype::i64, {3}, {two_to(62)}), {}},
                  "target", {"reaches further"});
  // out for reduction none.
  xent::options none;
  none.reduce = xent::reduction::none;
  call c{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), none};
  c.out = strided(extra.data(), xent::dtype::f32, {3}, {-two_to(62)});
  expect_rejected(c, "out", {"reaches further"});
  // grad.
  call g{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), {}};
  g.grad = strided(extra.data(), xent::dtype::f32, {3, 5}, {two_to(61), 1});
  expect_rejected(g, "grad", {"reaches further"}, true);
  // upstream for none.
  call u{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), none};
  const auto up_view = strided(const_cast<float*>(up.data()), xent::dtype::f32, {3}, {two_to(62)});
  u.upstream = &up_view;
  expect_rejected(u, "upstream", {"reaches further"}, true);
}

TEST_P(validation, misaligned_data) {
  const auto x = iota_logits(16);
  const std::vector<std::int64_t> t{1, 2, 3};
  auto misaligned = strided(reinterpret_cast<char*>(const_cast<float*>(x.data())) + 1, xent::dtype::f32,
                            {3, 5}, {5, 1});
  expect_rejected({misaligned, xent::view(t.data(), {3}), {}}, "logits",
                  {"not aligned to its 4-byte float32 elements"});
  std::vector<std::int64_t> t2{1, 2, 3, 4};
  auto t_mis = strided(reinterpret_cast<char*>(t2.data()) + 4, xent::dtype::i64, {3}, {1});
  expect_rejected({xent::view(x.data(), {3, 5}), t_mis, {}}, "target", {"8-byte int64"});
}

TEST_P(validation, outputs_whose_elements_share_memory) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  extra.assign(64, sentinel);
  xent::options none;
  none.reduce = xent::reduction::none;
  // out [3] with stride 0: three positions, one element.
  call c{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), none};
  c.out = strided(extra.data(), xent::dtype::f32, {3}, {0});
  expect_rejected(c, "out", {"stride 0 in dimension 0 of extent 3", "overwrite each other"});
  // grad [3, 5] with strides [1, 1]: elements (0, 1) and (1, 0) coincide.
  call g{xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}), {}};
  g.grad = strided(extra.data(), xent::dtype::f32, {3, 5}, {1, 1});
  expect_rejected(g, "grad", {"strides [1, 1]", "overlap or interleave"}, true);
  // In place on broadcast logits (stride 0): the gradient rows would collide.
  const auto bx = strided(const_cast<float*>(x.data()), xent::dtype::f32, {3, 5}, {0, 1});
  call b{bx, xent::view(t.data(), {3}), {}};
  b.grad = bx;
  expect_rejected(b, "grad", {"stride 0 in dimension 0"}, true);
  // Broadcast logits as an input are fine.
  float loss = sentinel;
  EXPECT_NO_THROW(xent::cross_entropy(bx, xent::view(t.data(), {3}), xent::view(&loss, {}), {}, impl()));
  // Nested strides of a permuted, step-sliced buffer are accepted.
  std::vector<float> gbuf(2 * 3 * 5 * 2, sentinel);
  const auto gperm = strided(gbuf.data(), xent::dtype::f32, {3, 5}, {2, 12});
  EXPECT_NO_THROW(xent::cross_entropy_forward_backward(xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}),
                                                       xent::view(&loss, {}), gperm, {}, nullptr, impl()));
}

TEST(sizes, numel_and_contiguous_strides_do_not_overflow) {
  float x = 0.0f;
  // contiguous_strides wraps instead of overflowing; numel says what is wrong.
  const auto v = xent::view(&x, {two_to(40), two_to(40), two_to(40)});
  EXPECT_EQ(v.strides[2], 1);
  EXPECT_EQ(v.strides[1], two_to(40));
  try {
    (void)v.numel();
    ADD_FAILURE() << "numel() did not throw";
  } catch (const xent::error& e) {
    EXPECT_NE(std::string(e.what()).find("more elements than a 64-bit integer can count"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(xent::view(&x, {two_to(31), two_to(31)}).numel(), two_to(62));
}

TEST(sizes, malformed_dlpack_tensors) {
  std::vector<float> x(15, 0.0f);
  std::int64_t shape[2] = {3, 5};
  DLTensor t{};
  t.data = x.data();
  t.device = {kDLCPU, 0};
  t.ndim = 2;
  t.dtype = {kDLFloat, 32, 1};
  t.shape = shape;
  auto message = [](const DLTensor& d) -> std::string {
    try {
      (void)xent::from_dlpack(d);
    } catch (const xent::error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(message(t), "");
  DLTensor u = t;
  u.shape = nullptr;
  EXPECT_NE(message(u).find("null shape pointer"), std::string::npos) << message(u);
  u = t;
  u.ndim = 1 << 30;  // would copy 8 GiB of "shape"
  EXPECT_NE(message(u).find("1073741824 dimensions (at most 64)"), std::string::npos) << message(u);
  u = t;
  u.ndim = -2;
  EXPECT_NE(message(u).find("negative ndim -2"), std::string::npos) << message(u);
  u = t;
  u.data = nullptr;
  u.byte_offset = 64;
  EXPECT_NE(message(u).find("null data pointer and byte_offset 64"), std::string::npos) << message(u);
  u = t;
  u.byte_offset = ~std::uint64_t{0} - 2;
  EXPECT_NE(message(u).find("wraps around the address space"), std::string::npos) << message(u);
  // A byte_offset that misaligns the data is caught where every view is checked.
  u = t;
  u.byte_offset = 2;
  const std::vector<std::int64_t> tg{0, 1, 2};
  float loss = 0.0f;
  try {
    // An explicit kernel: the default is chosen once per process, and
    // implementation_choice below must make that choice itself when the
    // whole binary runs in one process.
    xent::cross_entropy(xent::from_dlpack(u), xent::view(tg.data(), {3}), xent::view(&loss, {}), {},
                        xent::find_implementation("stable"));
    ADD_FAILURE() << "misaligned DLPack data accepted";
  } catch (const xent::error& e) {
    EXPECT_EQ(e.argument(), "logits");
    EXPECT_NE(std::string(e.what()).find("not aligned"), std::string::npos) << e.what();
  }
}

// ------------------------------------------------------- implementations --

// Sets an environment variable for one scope, restoring the previous value.
class scoped_env {
 public:
  scoped_env(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~scoped_env() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(implementation_choice, xent_impl_unknown_name) {
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  std::vector<float> out(1, sentinel);
  {
    scoped_env env("XENT_IMPL", "no_such_kernel");
    EXPECT_TRUE(throws([] { xent::default_implementation(); }, "XENT_IMPL",
                       {"no_such_kernel", xent::implementations().front()->name()}));
    // The front door with impl == nullptr goes through the same choice.
    EXPECT_TRUE(throws([&] {
      xent::cross_entropy(xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}),
                          xent::view(out.data(), {}));
    }, "XENT_IMPL", {"no_such_kernel"}));
    EXPECT_TRUE(untouched(out, "out"));
  }
  // Each registered (supported) name is honoured. The choice is made once per
  // process, so each name is tried in a fresh one (a death-test child that
  // re-executes this binary).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (const auto* i : xent::implementations()) {
    if (!i->supported()) continue;
    EXPECT_EXIT(
        {
          ::setenv("XENT_IMPL", i->name().c_str(), 1);
          const bool honoured = &xent::default_implementation() == i;
          std::_Exit(honoured && &xent::default_implementation() == i ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "")
        << "XENT_IMPL=" << i->name() << " was not honoured";
  }
  // Empty means "not set".
  {
    scoped_env env("XENT_IMPL", "");
    EXPECT_NO_THROW(xent::default_implementation());
  }
}

TEST(implementation_choice, unsupported_and_duplicate_implementations) {
  class unsupported final : public xent::implementation {
   public:
    std::string name() const override { return "validation_test_unsupported"; }
    std::string description() const override { return "never runs"; }
    xent::tier tier() const override { return xent::tier::accurate; }
    std::string domain() const override { return "none"; }
    bool supported() const override { return false; }
    void forward(const xent::problem& p) const override { *p.loss = -1.0f; }
    void forward_backward(const xent::problem& p) const override { *p.loss = -1.0f; }
  };
  const xent::implementation* u = xent::find_implementation("validation_test_unsupported");
  if (!u) u = &xent::register_implementation(std::make_unique<unsupported>());
  EXPECT_TRUE(throws([] { xent::register_implementation(std::make_unique<unsupported>()); },
                     "implementation", {"validation_test_unsupported", "already registered"}));
  const auto x = iota_logits(15);
  const std::vector<std::int64_t> t{1, 2, 3};
  std::vector<float> out(1, sentinel);
  EXPECT_TRUE(throws([&] {
    xent::cross_entropy(xent::view(x.data(), {3, 5}), xent::view(t.data(), {3}),
                        xent::view(out.data(), {}), {}, u);
  }, "implementation", {"validation_test_unsupported", "not supported"}));
  EXPECT_TRUE(untouched(out, "out"));
  scoped_env env("XENT_IMPL", "validation_test_unsupported");
  EXPECT_TRUE(throws([] { xent::default_implementation(); }, "XENT_IMPL",
                     {"validation_test_unsupported", "does not support"}));
  // An unsupported kernel is never the default, however accurate it claims to be.
  ::unsetenv("XENT_IMPL");
  EXPECT_NE(&xent::default_implementation(), u);
}

// ------------------------------------------------- positive view checks --

// Bitwise equality, NaN included.
::testing::AssertionResult same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << a.size() << " vs " << b.size() << " values";
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "[" << i << "]: " << a[i] << " vs " << b[i];
  return ::testing::AssertionSuccess();
}

std::vector<xent::options> option_grid(const std::vector<float>* weight, std::int64_t C) {
  std::vector<xent::options> v;
  for (auto r : {xent::reduction::none, xent::reduction::mean, xent::reduction::sum})
    for (double ls : {0.0, 0.1})
      for (bool w : {false, true})
        for (std::int64_t ii : {std::int64_t{-100}, std::int64_t{1}}) {
          xent::options o;
          o.reduce = r;
          o.label_smoothing = ls;
          o.ignore_index = ii;
          if (w) o.weight = xent::view(weight->data(), {C});
          v.push_back(o);
        }
  return v;
}

std::string describe(const xent::options& o) {
  return "reduction " + xent::to_string(o.reduce) + ", label_smoothing " +
         std::to_string(o.label_smoothing) + ", ignore_index " + std::to_string(o.ignore_index) +
         (o.weight ? ", weighted" : "");
}

TEST_P(validation, in_place_gradient_equals_separate_buffer) {
  // (N, C) and (N, C, d) layouts.
  for (const shape_t& shape : {shape_t{6, 5}, shape_t{3, 5, 4}}) {
    const std::int64_t C = shape[1];
    std::int64_t n = 1;
    for (auto e : shape) n *= e;
    const auto x = iota_logits(static_cast<std::size_t>(n));
    shape_t tshape{shape[0]};
    tshape.insert(tshape.end(), shape.begin() + 2, shape.end());
    std::int64_t P = n / C;
    std::vector<std::int64_t> t(static_cast<std::size_t>(P));
    for (std::int64_t p = 0; p < P; ++p) t[p] = (p * 3) % C;
    std::vector<float> w{0.5f, 2.0f, 1.0f, 0.25f, 1.5f};
    for (const auto& o : option_grid(&w, C)) {
      SCOPED_TRACE(describe(o) + ", logits " + xent::view(x.data(), shape).shape_string());
      const shape_t out_shape = o.reduce == xent::reduction::none ? tshape : shape_t{};
      const std::size_t out_n = o.reduce == xent::reduction::none ? t.size() : 1;
      std::vector<float> out_a(out_n), out_b(out_n), grad_a(x.size());
      xent::cross_entropy_forward_backward(xent::view(x.data(), shape), xent::view(t.data(), tshape),
                                           xent::view(out_a.data(), out_shape),
                                           xent::view(grad_a.data(), shape), o, nullptr, impl());
      std::vector<float> y = x;  // logits, overwritten by their gradient
      xent::cross_entropy_forward_backward(xent::view(y.data(), shape), xent::view(t.data(), tshape),
                                           xent::view(out_b.data(), out_shape),
                                           xent::view(y.data(), shape), o, nullptr, impl());
      EXPECT_TRUE(same_bits(out_b, out_a));
      EXPECT_TRUE(same_bits(y, grad_a));
    }
  }
}

// The char-level LM slice x[:, h:] of a [B, T, C] buffer, seen without a copy
// as (B, C, T-h) (class axis moved to dim 1 by strides) with targets t[:, h:]
// as (B, T-h), against the copied contiguous [B*(T-h), C] problem.
TEST_P(validation, sliced_permuted_view_equals_contiguous_copy) {
  constexpr std::int64_t B = 3, T = 7, C = 6, h = 2, Tp = T - h;
  const auto xs = iota_logits(B * T * C);
  std::vector<std::int64_t> ts(B * T);
  for (std::int64_t i = 0; i < B * T; ++i) ts[i] = (i * 5 + 1) % C;
  ts[1 * T + 3] = 1;  // some targets equal to the in-range ignore_index below
  ts[2 * T + 6] = 1;

  // Contiguous copies, as output[:, h:].contiguous().view(-1, C) does.
  std::vector<float> xc;
  std::vector<std::int64_t> tc;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t s = h; s < T; ++s) {
      for (std::int64_t c = 0; c < C; ++c) xc.push_back(xs[(b * T + s) * C + c]);
      tc.push_back(ts[b * T + s]);
    }
  // The same data as a contiguous (B, C, T-h) tensor.
  std::vector<float> xncd(B * C * Tp);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t s = 0; s < Tp; ++s) xncd[(b * C + c) * Tp + s] = xs[(b * T + s + h) * C + c];

  const auto xview = strided(const_cast<float*>(xs.data()) + h * C, xent::dtype::f32, {B, C, Tp},
                             {T * C, 1, C});
  const auto tview = strided(ts.data() + h, xent::dtype::i64, {B, Tp}, {T, 1});
  std::vector<float> w{0.5f, 2.0f, 1.0f, 0.25f, 1.5f, 3.0f};

  for (const auto& o : option_grid(&w, C)) {
    SCOPED_TRACE(describe(o));
    const bool none = o.reduce == xent::reduction::none;
    const std::size_t out_n = none ? static_cast<std::size_t>(B * Tp) : 1;
    // Reference: the contiguous copy.
    std::vector<float> out_c(out_n), grad_c(xc.size());
    xent::cross_entropy_forward_backward(
        xent::view(xc.data(), {B * Tp, C}), xent::view(tc.data(), {B * Tp}),
        xent::view(out_c.data(), none ? shape_t{B * Tp} : shape_t{}),
        xent::view(grad_c.data(), {B * Tp, C}), o, nullptr, impl());

    // The strided view; the gradient goes into a [B, T, C] buffer through the
    // same strides, and rows s < h must stay untouched.
    std::vector<float> out_v(out_n, sentinel), grad_buf(xs.size(), sentinel);
    const auto gview = strided(grad_buf.data() + h * C, xent::dtype::f32, {B, C, Tp}, {T * C, 1, C});
    xent::cross_entropy_forward_backward(xview, tview,
                                         xent::view(out_v.data(), none ? shape_t{B, Tp} : shape_t{}),
                                         gview, o, nullptr, impl());
    EXPECT_TRUE(same_bits(out_v, out_c)) << "loss of the strided view";
    std::vector<float> grad_v;
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t s = 0; s < T; ++s)
        for (std::int64_t c = 0; c < C; ++c) {
          const float g = grad_buf[(b * T + s) * C + c];
          if (s < h) EXPECT_EQ(g, sentinel) << "gradient written outside the view at b=" << b << ", t=" << s;
          else grad_v.push_back(g);
        }
    EXPECT_TRUE(same_bits(grad_v, grad_c)) << "gradient of the strided view";

    // Loss only (compared with loss only: a kernel's two paths need not agree bitwise).
    std::vector<float> out_cf(out_n), out_f(out_n, sentinel);
    xent::cross_entropy(xent::view(xc.data(), {B * Tp, C}), xent::view(tc.data(), {B * Tp}),
                        xent::view(out_cf.data(), none ? shape_t{B * Tp} : shape_t{}), o, impl());
    xent::cross_entropy(xview, tview, xent::view(out_f.data(), none ? shape_t{B, Tp} : shape_t{}), o,
                        impl());
    EXPECT_TRUE(same_bits(out_f, out_cf)) << "loss-only on the strided view";

    // The contiguous (B, C, T-h) layout: class stride T-h.
    std::vector<float> out_n3(out_n), out_n3b(out_n), grad_n3(xncd.size());
    xent::cross_entropy(xent::view(xncd.data(), {B, C, Tp}), tview,
                        xent::view(out_n3.data(), none ? shape_t{B, Tp} : shape_t{}), o, impl());
    EXPECT_TRUE(same_bits(out_n3, out_cf)) << "loss-only, contiguous (N, C, d) layout";
    xent::cross_entropy_forward_backward(xent::view(xncd.data(), {B, C, Tp}), tview,
                                         xent::view(out_n3b.data(), none ? shape_t{B, Tp} : shape_t{}),
                                         xent::view(grad_n3.data(), {B, C, Tp}), o, nullptr, impl());
    EXPECT_TRUE(same_bits(out_n3b, out_c)) << "loss+grad, contiguous (N, C, d) layout";
    std::vector<float> grad_n3_rows;  // back to (b, t, c) order
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t s = 0; s < Tp; ++s)
        for (std::int64_t c = 0; c < C; ++c) grad_n3_rows.push_back(grad_n3[(b * C + c) * Tp + s]);
    EXPECT_TRUE(same_bits(grad_n3_rows, grad_c)) << "gradient, contiguous (N, C, d) layout";
  }
}

TEST_P(validation, strided_outputs_and_scalar_upstream) {
  constexpr std::int64_t N = 5, C = 4;
  const auto x = iota_logits(N * C);
  const std::vector<std::int64_t> t{0, 3, 1, 2, 3};
  xent::options o;
  o.reduce = xent::reduction::none;
  o.label_smoothing = 0.05;
  // Reference: contiguous out, per-position upstream all 0.5.
  const std::vector<float> up(N, 0.5f);
  const auto upv = xent::view(up.data(), {N});
  std::vector<float> out_c(N), grad_c(N * C);
  xent::cross_entropy_forward_backward(xent::view(x.data(), {N, C}), xent::view(t.data(), {N}),
                                       xent::view(out_c.data(), {N}), xent::view(grad_c.data(), {N, C}),
                                       o, &upv, impl());
  // out every third element; grad in a column-major buffer; upstream a scalar.
  std::vector<float> out_buf(3 * N, sentinel), grad_cm(N * C, sentinel);
  const float half = 0.5f;
  const auto up1 = xent::view(&half, {});
  xent::cross_entropy_forward_backward(
      xent::view(x.data(), {N, C}), xent::view(t.data(), {N}),
      strided(out_buf.data(), xent::dtype::f32, {N}, {3}),
      strided(grad_cm.data(), xent::dtype::f32, {N, C}, {1, N}), o, &up1, impl());
  for (std::int64_t i = 0; i < 3 * N; ++i) {
    if (i % 3 == 0) EXPECT_TRUE(same_bits({out_buf[i]}, {out_c[i / 3]})) << "out[" << i / 3 << "]";
    else EXPECT_EQ(out_buf[i], sentinel) << "gap " << i << " of the strided out was written";
  }
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t c = 0; c < C; ++c)
      EXPECT_TRUE(same_bits({grad_cm[c * N + n]}, {grad_c[n * C + c]})) << "grad[" << n << ", " << c << "]";
}

INSTANTIATE_TEST_SUITE_P(all, validation, ::testing::ValuesIn(xent::implementations()),
                         [](const auto& p) { return p.param->name(); });

}  // namespace

// `xent check` diagnostics end to end, one test per diagnostic: the .npy
// files are written here, the binary runs as a child process, and each
// warning must carry its evidence (rows, values), not just its code.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "npy.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using xent::cli_test::run_result;

class diagnostics : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("xent_diagnostics_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string path(const std::string& name) { return (dir_ / name).string(); }

  template <class T>
  static std::string save(const std::string& name, const std::vector<T>& v, std::vector<std::int64_t> shape) {
    xent::npy::write(path(name), xent::npy::make(v, std::move(shape)));
    return path(name);
  }

  static run_result run(const std::string& args) { return xent::cli_test::run_xent(args, dir_); }

  // `check --json` on the files; the warning with `code` (its message), or
  // "" when there is none.
  static std::string warning(const std::string& args, const std::string& code, json* all = nullptr) {
    const auto r = run("check --json " + args);
    EXPECT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    if (all) *all = j;
    for (const auto& w : j.at("warnings"))
      if (w.at("code") == code) return w.at("message");
    return "";
  }

  static fs::path dir_;
};
fs::path diagnostics::dir_;

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST_F(diagnostics, single_class_says_the_loss_is_identically_zero) {
  const std::string m = warning("--logits " + save("x.npy", std::vector<float>{0.3f, -2, 5, 9}, {4, 1}) +
                                    " --target " + save("t.npy", std::vector<std::int64_t>{0, 0, 0, 0}, {4}),
                                "single_class");
  EXPECT_TRUE(has(m, "C = 1")) << m;
  EXPECT_TRUE(has(m, "[4, 1]")) << m;
  EXPECT_TRUE(has(m, "identically 0")) << m;
}

TEST_F(diagnostics, float_targets_that_are_not_distributions) {
  // Class ids stored as floats in the logits' shape: rows sum to 2 and 3.
  std::vector<float> q{0, 2, 0, 0, 0, 3};
  json j;
  const std::string m = warning("--logits " + save("x.npy", std::vector<float>(6, 0.0f), {2, 3}) + " --target " +
                                    save("q.npy", q, {2, 3}),
                                "not_distribution", &j);
  EXPECT_TRUE(has(m, "treated as class probabilities")) << m;
  EXPECT_TRUE(has(m, "did you mean class indices")) << m;
  EXPECT_TRUE(has(m, "2 rows")) << m;
  EXPECT_TRUE(has(m, "row 0 sums to 2")) << m;
  // Negative entries are evidence too.
  const std::string n = warning("--logits " + path("x.npy") + " --target " +
                                    save("qn.npy", std::vector<float>{1.5f, -0.5f, 0, 0, 1, 0}, {2, 3}),
                                "not_distribution");
  EXPECT_TRUE(has(n, "1 entries are negative (first in row 0)")) << n;
  // A proper distribution: no warning.
  EXPECT_EQ(warning("--logits " + path("x.npy") + " --target " +
                        save("qok.npy", std::vector<float>{0.25f, 0.75f, 0, 0, 0, 1}, {2, 3}),
                    "not_distribution"),
            "");
}

TEST_F(diagnostics, all_ignored_says_the_mean_is_nan) {
  json j;
  const std::string m = warning("--logits " + save("x.npy", std::vector<float>(6, 0.0f), {2, 3}) +
                                    " --target " + save("t.npy", std::vector<std::int64_t>{-100, -100}, {2}),
                                "all_ignored", &j);
  EXPECT_TRUE(has(m, "all 2 targets equal ignore_index (-100)")) << m;
  EXPECT_TRUE(has(m, "mean is NaN")) << m;
  EXPECT_EQ(j.at("reference"), "nan");
}

TEST_F(diagnostics, dominant_target_rounded_to_zero_shows_both_values) {
  // Row 1: the target leads by 30, true loss 2 e^-30 ~ 1.9e-13; float32
  // lse - x_t gives exactly 0. Row 0 is ordinary.
  std::vector<float> x{0.5f, 0.0f, -0.5f, 0.0f, 30.0f, 0.0f};
  json j;
  const std::string m =
      warning("--reduction none --logits " + save("x.npy", x, {2, 3}) + " --target " +
                  save("t.npy", std::vector<std::int64_t>{2, 1}, {2}),
              "dominant_zero_loss", &j);
  EXPECT_TRUE(has(m, "1 row (row 1)")) << m;
  EXPECT_TRUE(has(m, "gives loss 0 in row 1")) << m;
  EXPECT_TRUE(has(m, "true loss is 1.87")) << m;  // 2 e^-30 = 1.8716e-13
  // The reference agrees with the true value the message shows.
  EXPECT_NEAR(std::stod(j.at("reference")[1].dump()), 2.0 * std::exp(-30.0), 1e-20);
  // A margin of 5 keeps a float32 loss: no warning.
  x[4] = 5.0f;
  EXPECT_EQ(warning("--logits " + save("x5.npy", x, {2, 3}) + " --target " + path("t.npy"), "dominant_zero_loss"), "");
}

TEST_F(diagnostics, non_finite_logits_name_their_rows) {
  std::vector<float> x(12, 0.0f);
  x[3 * 1 + 0] = NAN;        // row 1
  x[3 * 2 + 1] = INFINITY;   // row 2
  x[3 * 3 + 0] = -INFINITY;  // row 3, its target: +inf
  json j;
  const std::string args = "--logits " + save("x.npy", x, {4, 3}) + " --target " +
                           save("t.npy", std::vector<std::int64_t>{0, 1, 2, 0}, {4});
  const std::string nan = warning(args, "nan_logits", &j);
  EXPECT_TRUE(has(nan, "NaN in 1 row (row 1)")) << nan;
  EXPECT_TRUE(has(nan, "the mean is NaN")) << nan;
  EXPECT_TRUE(has(warning(args, "inf_logits"), "+inf in 1 row (row 2)"));
  EXPECT_TRUE(has(warning(args, "target_minus_inf"), "-inf in 1 row (row 3)"));
}

TEST_F(diagnostics, out_of_range_target_is_the_error_with_its_position) {
  const auto r = run("check --logits " + save("x.npy", std::vector<float>(6, 0.0f), {2, 3}) + " --target " +
                     save("t.npy", std::vector<std::int64_t>{0, 3}, {2}));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(has(r.err, "xent: error: Target 3 is out of bounds")) << r.err;
  EXPECT_TRUE(has(r.err, "[1]")) << r.err;  // the position
  EXPECT_EQ(r.out, "");
}

}  // namespace

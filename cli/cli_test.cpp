// The `xent` binary end to end: .npy files written here, the command run as
// a child process, its exit status, stdout and stderr checked. Input errors
// must exit with status 2 and one line `xent: error: ...` -- never a crash.
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

class cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("xent_cli_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string path(const std::string& name) { return (dir_ / name).string(); }

  template <class T>
  static std::string save(const std::string& name, const std::vector<T>& v, std::vector<std::int64_t> shape) {
    xent::npy::write(path(name), xent::npy::make(v, std::move(shape)));
    return path(name);
  }
  static std::string save_bytes(const std::string& name, const std::vector<unsigned char>& b) {
    std::ofstream(path(name), std::ios::binary).write(reinterpret_cast<const char*>(b.data()),
                                                       static_cast<std::streamsize>(b.size()));
    return path(name);
  }

  static run_result run(const std::string& args) { return xent::cli_test::run_xent(args, dir_); }

  // The headline example: zero logits [3, 5], targets [1, 3, 2].
  static std::string logits() { return save("x.npy", std::vector<float>(15, 0.0f), {3, 5}); }
  static std::string targets() { return save("t.npy", std::vector<std::int64_t>{1, 3, 2}, {3}); }

  static fs::path dir_;
};
fs::path cli::dir_;

// A single line `xent: error: ...` on stderr, nothing on stdout, status 2.
void expect_input_error(const run_result& r, const std::string& fragment, const std::string& what) {
  EXPECT_EQ(r.status, 2) << what << "\nstderr: " << r.err;
  EXPECT_EQ(r.err.rfind("xent: error: ", 0), 0u) << what << "\nstderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << what << "\nstderr: " << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << what << "\nstderr: " << r.err;
  EXPECT_EQ(r.out, "") << what;
}

TEST_F(cli, check_headline_example_prints_ln5) {
  const auto r = run("check --logits " + logits() + " --target " + targets());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("reference: 1.6094379124341003"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1.60943794"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stable"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");
}

TEST_F(cli, check_json_has_the_fields) {
  const auto r = run("check --json --logits " + logits() + " --target " + targets());
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_NEAR(j.at("reference").get<double>(), std::log(5.0), 1e-15);
  EXPECT_EQ(j.at("reduction"), "mean");
  ASSERT_TRUE(j.at("implementations").is_object());
  ASSERT_TRUE(j.at("implementations").contains("stable"));
  for (const auto& [name, impl] : j.at("implementations").items()) {
    EXPECT_NEAR(impl.at("loss").get<double>(), std::log(5.0), 2e-7) << name;
    EXPECT_LE(impl.at("max_ulp").get<double>(), 1.0) << name;
    EXPECT_TRUE(impl.at("tier").is_string()) << name;
  }
  EXPECT_TRUE(j.at("warnings").is_array());
  EXPECT_TRUE(j.at("warnings").empty());
}

TEST_F(cli, check_none_reduction_and_one_impl) {
  const auto r = run("check --json --reduction none --impl stable --logits " + logits() + " --target " +
                     targets());
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j.at("implementations").size(), 1u);
  const json& loss = j.at("implementations").at("stable").at("loss");
  ASSERT_EQ(loss.size(), 3u);
  for (const auto& v : loss) EXPECT_FLOAT_EQ(v.get<float>(), 1.6094379f);
  EXPECT_EQ(j.at("reference").size(), 3u);
  const auto t = run("check --reduction none --logits " + logits() + " --target " + targets());
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_NE(t.out.find("3 values: min 1.60943794, max 1.60943794"), std::string::npos) << t.out;
}

TEST_F(cli, grad_out_writes_the_gradient) {
  const std::string g = path("g.npy");
  const auto r = run("check --logits " + logits() + " --target " + targets() + " --grad-out " + g);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto a = xent::npy::read(g);
  ASSERT_EQ(a.type, xent::npy::dtype::f32);
  ASSERT_EQ(a.shape, (std::vector<std::int64_t>{3, 5}));
  const auto v = a.as_f32();
  const std::vector<std::int64_t> t{1, 3, 2};
  for (int n = 0; n < 3; ++n)
    for (int c = 0; c < 5; ++c)
      EXPECT_NEAR(v[n * 5 + c], (c == t[n] ? 0.2 - 1.0 : 0.2) / 3.0, 1e-7) << n << "," << c;
  // (N, C, d) logits: the gradient keeps the logits' layout.
  std::vector<float> x3(2 * 3 * 4);
  for (std::size_t i = 0; i < x3.size(); ++i) x3[i] = static_cast<float>(i % 5) - 2.0f;
  const auto r3 = run("check --json --impl naive --reduction sum --logits " + save("x3.npy", x3, {2, 3, 4}) +
                      " --target " + save("t3.npy", std::vector<std::int64_t>{0, 1, 2, 0, 1, 1, 2, 2}, {2, 4}) +
                      " --grad-out " + path("g3.npy"));
  ASSERT_EQ(r3.status, 0) << r3.err;
  EXPECT_EQ(json::parse(r3.out).at("gradient").at("implementation"), "naive");
  EXPECT_LE(json::parse(r3.out).at("gradient").at("max_ulp").get<double>(), 4.0);
  EXPECT_EQ(xent::npy::read(path("g3.npy")).shape, (std::vector<std::int64_t>{2, 3, 4}));
}

TEST_F(cli, conversions_are_noted) {
  const auto r = run("check --logits " + save("x64.npy", std::vector<double>(15, 0.1), {3, 5}) + " --target " +
                     save("t32.npy", std::vector<std::int32_t>{1, 3, 2}, {3}));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("xent: note: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rounded to float32"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("1.60943794"), std::string::npos) << r.out;
  // float64 probabilities of the logits' shape.
  std::vector<double> q(15, 0.0);
  q[1] = q[5 + 3] = q[10 + 2] = 1.0;
  const auto p = run("check --json --logits " + logits() + " --target " + save("q.npy", q, {3, 5}));
  ASSERT_EQ(p.status, 0) << p.err;
  const json j = json::parse(p.out);
  EXPECT_EQ(j.at("target").at("kind"), "probability");
  EXPECT_NEAR(j.at("reference").get<double>(), std::log(5.0), 1e-15);
  EXPECT_TRUE(j.at("warnings").empty()) << j.dump();
}

std::vector<std::string> warning_codes(const json& j) {
  std::vector<std::string> codes;
  for (const auto& w : j.at("warnings")) codes.push_back(w.at("code"));
  return codes;
}

TEST_F(cli, diagnostics) {
  // Regression targets (N, 1) with logits (N, 1): loss 0, two warnings.
  const auto r = run("check --json --logits " + save("x1.npy", std::vector<float>{0.3f, -2, 5}, {3, 1}) +
                     " --target " + save("y1.npy", std::vector<float>{3.5f, -1.25f, 7}, {3, 1}));
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("reference").get<double>(), 0.0);
  const auto codes = warning_codes(j);
  EXPECT_NE(std::find(codes.begin(), codes.end(), "single_class"), codes.end()) << j.dump();
  EXPECT_NE(std::find(codes.begin(), codes.end(), "not_distribution"), codes.end()) << j.dump();
  EXPECT_NE(j.dump().find("did you mean class indices"), std::string::npos);
  // The same in text mode: warnings on stderr.
  const auto t = run("check --logits " + path("x1.npy") + " --target " + path("y1.npy"));
  ASSERT_EQ(t.status, 0);
  EXPECT_NE(t.err.find("xent: warning: C = 1"), std::string::npos) << t.err;
  // All targets ignored: mean is NaN.
  const auto a = run("check --json --logits " + logits() + " --target " +
                     save("ti.npy", std::vector<std::int64_t>{-100, -100, -100}, {3}));
  ASSERT_EQ(a.status, 0) << a.err;
  const json ja = json::parse(a.out);
  EXPECT_EQ(ja.at("reference"), "nan");
  EXPECT_EQ(ja.at("implementations").at("stable").at("loss"), "nan");
  EXPECT_EQ(ja.at("implementations").at("stable").at("max_ulp").get<double>(), 0.0);
  EXPECT_EQ(warning_codes(ja), std::vector<std::string>{"all_ignored"});
  // NaN and -inf logits.
  std::vector<float> x(15, 0.0f);
  x[5 + 2] = NAN;
  x[10 + 2] = -INFINITY;
  const auto n = run("check --json --reduction none --logits " + save("xn.npy", x, {3, 5}) + " --target " +
                     targets());
  ASSERT_EQ(n.status, 0) << n.err;
  const json jn = json::parse(n.out);
  EXPECT_EQ(warning_codes(jn), (std::vector<std::string>{"nan_logits", "target_minus_inf"})) << jn.dump();
  EXPECT_NE(jn.dump().find("row 1"), std::string::npos);
  EXPECT_EQ(jn.at("implementations").at("stable").at("loss")[1], "nan");
  EXPECT_EQ(jn.at("implementations").at("stable").at("loss")[2], "inf");
  EXPECT_EQ(jn.at("reference")[2], "inf");
}

TEST_F(cli, malformed_inputs_exit_2_with_one_line) {
  const std::string x = logits(), t = targets();
  auto check = [&](const std::string& args) { return run("check --logits " + args); };
  expect_input_error(check(path("missing.npy") + " --target " + t), "missing.npy: cannot open", "missing file");
  expect_input_error(check(save_bytes("garbage.npy", {'h', 'e', 'l', 'l', 'o', '\n', 'w'}) + " --target " + t),
                     "garbage.npy: not a .npy file", "garbage");
  auto valid = xent::npy::serialize(xent::npy::make(std::vector<float>(15, 0.0f), {3, 5}));
  expect_input_error(check(save_bytes("short.npy", {valid.begin(), valid.end() - 5}) + " --target " + t),
                     "short.npy: data is truncated", "truncated data");
  expect_input_error(check(save_bytes("short_header.npy", {valid.begin(), valid.begin() + 40}) + " --target " + t),
                     "truncated .npy header", "truncated header");
  auto fortran = valid;
  const std::string f = "False, 'shape'";
  auto it = std::search(fortran.begin(), fortran.end(), f.begin(), f.end());
  ASSERT_NE(it, fortran.end());
  std::copy_n("True,  ", 7, it);
  expect_input_error(check(save_bytes("fortran.npy", fortran) + " --target " + t), "fortran.npy: Fortran-order",
                     "fortran");
  auto big = valid;
  const std::string f4 = "<f4";
  *std::search(big.begin(), big.end(), f4.begin(), f4.end()) = '>';
  expect_input_error(check(save_bytes("big.npy", big) + " --target " + t), "unsupported dtype '>f4'", "big-endian");
  expect_input_error(check(save("xi.npy", std::vector<std::int64_t>(15, 0), {3, 5}) + " --target " + t),
                     "logits must be float32", "int logits");
  expect_input_error(check(x + " --target " + save("tf.npy", std::vector<float>{1, 3, 2}, {3})),
                     "class indices must be integers", "float targets of the position shape");
  expect_input_error(check(x + " --target " + save("tb.npy", std::vector<std::int64_t>{1, 7, 2}, {3})),
                     "Target 7 is out of bounds", "target out of bounds");
  expect_input_error(check(x + " --target " + save("t4.npy", std::vector<std::int64_t>{1, 3, 2, 0}, {4})),
                     "does not match logits", "shape mismatch");
  expect_input_error(check(x + " --target " + t + " --weight " + save("w.npy", std::vector<float>{1, 1, 1}, {3})),
                     "weight", "weight length");
  expect_input_error(check(x + " --target " + t + " --reduction avg"), "reduction", "bad reduction");
  expect_input_error(check(x + " --target " + t + " --label-smoothing 1.5"), "label_smoothing", "eps > 1");
  expect_input_error(check(x + " --target " + t + " --label-smoothing -0.1"), "label_smoothing", "eps < 0");
  expect_input_error(check(x + " --target " + t + " --label-smoothing abc"), "label-smoothing", "eps text");
  expect_input_error(check(x + " --target " + t + " --impl nosuch"), "unknown implementation 'nosuch'", "impl");
  expect_input_error(check(x), "--target", "missing --target");
  expect_input_error(check(x + " --target " + t + " --frobnicate"), "frobnicate", "unknown option");
  expect_input_error(run(""), "subcommand", "no subcommand");
  expect_input_error(run("frobnicate"), "frobnicate", "unknown subcommand");
  std::vector<float> q(15, 0.2f);
  expect_input_error(check(x + " --target " + save("q.npy", q, {3, 5}) + " --ignore-index 0"), "ignore_index",
                     "ignore_index with probabilities");
  expect_input_error(check(x + " --target " + t + " --grad-out " + path("no/such/dir/g.npy")), "cannot write",
                     "unwritable --grad-out");
}

TEST_F(cli, list_shows_the_registry) {
  const auto r = run("list");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("stable"), std::string::npos);
  EXPECT_NE(r.out.find("accurate"), std::string::npos);
  const auto j = run("list --json");
  ASSERT_EQ(j.status, 0);
  const json a = json::parse(j.out);
  ASSERT_TRUE(a.is_array());
  EXPECT_FALSE(a.empty());
  EXPECT_TRUE(a[0].contains("supported"));
}

TEST_F(cli, report_quick_writes_markdown_and_json) {
  const std::string out = path("report");
  const auto r = run("report --quick --no-bench --out " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("| scenario | implementation | tier |"), std::string::npos);
  EXPECT_NE(r.out.find("## Examples"), std::string::npos);
  std::ifstream md(out + "/report.md");
  std::stringstream mds;
  mds << md.rdbuf();
  EXPECT_EQ(mds.str(), r.out);
  std::ifstream js(out + "/report.json");
  const json j = json::parse(js);
  const auto& acc = j.at("accuracy");
  EXPECT_EQ(acc.size(), j.at("scenarios").size() * j.at("implementations").size());
  for (const auto& c : acc) {
    EXPECT_TRUE(c.at("loss").contains("max"));
    EXPECT_TRUE(c.at("loss").contains("median"));
    if (c.at("implementation") == "stable") {  // accurate tier: every quantity within 1 ulp
      EXPECT_LE(c.at("loss").at("max").get<double>(), 0.5 + 1e-3) << c.dump();
      EXPECT_LE(c.at("grad_other").at("max").get<double>(), 1.0) << c.dump();
      EXPECT_LE(c.at("mean").get<double>(), 1.0) << c.dump();
    }
  }
  ASSERT_EQ(j.at("examples").size(), 3u);
  for (const auto& e : j.at("examples")) EXPECT_TRUE(e.at("passed").get<bool>()) << e.dump();
}

TEST_F(cli, help_exits_0) {
  const auto r = run("check --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--logits"), std::string::npos);
}

}  // namespace

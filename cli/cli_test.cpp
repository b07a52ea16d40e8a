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
  EXPECT_NE(r.err.find("float64 logits: the reference is that of these values"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("1.6094379124341003"), std::string::npos) << r.out;  // ln 5 in float64
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
  expect_input_error(check(x + " --target " + t + " --impl stable,nosuch"), "unknown implementation 'nosuch'",
                     "impl list");
  expect_input_error(check(x + " --target " + t + " --tier fastest"), "--tier", "bad tier");
  expect_input_error(check(x + " --target " + t + " --max-ulp -1"), "--max-ulp", "negative bound");
  expect_input_error(check(x + " --target " + save("t_ok.npy", std::vector<std::int64_t>{1, 3, 2}, {3}) +
                           " --loss " + save("lbad.npy", std::vector<float>{1, 2}, {2})),
                     "is neither a scalar", "--loss of the wrong shape");
  expect_input_error(check(x + " --target " + t + " --reduction none --loss " +
                           save("lone.npy", std::vector<float>{1.6f}, {})),
                     "one value, but --reduction none", "scalar --loss with reduction none");
  expect_input_error(check(x + " --target " + t + " --grad " + save("gbad.npy", std::vector<float>(15), {5, 3})),
                     "is not the logits' shape", "--grad of the wrong shape");
  expect_input_error(check(x + " --target " + t + " --loss " + save("li.npy", std::vector<std::int64_t>{1}, {})),
                     "loss must be float32", "integer --loss");
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
  EXPECT_NE(r.out.find("correctly_rounded"), std::string::npos);
  const auto j = run("list --json");
  ASSERT_EQ(j.status, 0);
  const json a = json::parse(j.out);
  ASSERT_TRUE(a.is_array());
  EXPECT_FALSE(a.empty());
  EXPECT_TRUE(a[0].contains("supported"));
}

// The value of `key` under `Implementation: "impl"` in a baseline file; -1
// when absent.
double baseline_entry(const std::string& file, const std::string& impl, const std::string& key) {
  std::ifstream f(file);
  std::string current, line;
  while (std::getline(f, line)) {
    if (line.rfind("Implementation: ", 0) == 0) current = line.substr(16);
    else if (current == "\"" + impl + "\"" && line.rfind(key + ": ", 0) == 0) return std::stod(line.substr(key.size() + 2));
  }
  return -1.0;
}

// One Highway target at a time for the sweep, and a baseline merged over
// targets (what ./run baseline does for the accuracy gate).
TEST_F(cli, report_pins_a_simd_target_and_merges_baselines) {
  const auto listed = run("list --simd-targets");
  ASSERT_EQ(listed.status, 0) << listed.err;
  std::vector<std::string> targets;
  std::istringstream lines(listed.out);
  for (std::string t; std::getline(lines, t);) targets.push_back(t);
  ASSERT_FALSE(targets.empty());
  // simd dispatches to the best one, which `list` names first.
  EXPECT_NE(run("list").out.find("Highway " + targets.front()), std::string::npos) << listed.out;

  const auto bad = run("report --quick --no-bench --no-examples --simd-target nosuch --out " + path("r0"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("'nosuch' is not a Highway target"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find(targets.front()), std::string::npos) << bad.err;
  EXPECT_EQ(run("report --quick --no-bench --merge-baseline --out " + path("r0")).status, 2);

  const std::string file = path("baseline.txt");
  {
    std::ofstream f(file);
    f << "Implementation: \"simd\"\nloss: 99\n\nImplementation: \"other\"\nsum: 7\n";
  }
  const std::string sweep = "report --quick --no-bench --no-examples --quiet --filter n512c10_normal_s1 --impl simd ";
  const auto merged = run(sweep + "--simd-target " + targets.back() + " --out " + path("r1") + " --write-baseline " +
                          file + " --merge-baseline");
  ASSERT_EQ(merged.status, 0) << merged.err;
  EXPECT_EQ(baseline_entry(file, "simd", "loss"), 99.0);  // the larger of the file's and the measured
  const double g = baseline_entry(file, "simd", "grad_other");  // measured, absent from the file before
  EXPECT_TRUE(g >= 0.0 && g < 4.0) << g;
  EXPECT_EQ(baseline_entry(file, "other", "sum"), 7.0);  // kept
  std::ifstream js(path("r1") + "/report.json");
  const std::string pinned = json::parse(js).at("context").at("Highway targets");
  EXPECT_EQ(pinned.rfind(targets.back() + " (pinned by --simd-target", 0), 0u) << pinned;
  const auto fresh = run(sweep + "--simd-target " + targets.back() + " --out " + path("r2") + " --write-baseline " + file);
  ASSERT_EQ(fresh.status, 0) << fresh.err;
  const double l = baseline_entry(file, "simd", "loss");  // without --merge-baseline: only the measured
  EXPECT_TRUE(l >= 0.0 && l < 4.0) << l;
  EXPECT_EQ(baseline_entry(file, "other", "sum"), -1.0);
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
  // A cell per scenario and implementation; bfloat16, float16 and float64
  // scenarios only for the implementations that compute their dtype.
  std::size_t f32 = 0, sixteen = 0, f64 = 0;
  for (const auto& sc : j.at("scenarios")) {
    const auto id = sc.at("id").get<std::string>();
    (id.ends_with("16") ? sixteen : id.ends_with("_f64") ? f64 : f32) += 1;
  }
  std::size_t takers = 0;
  for (const auto& i : j.at("implementations"))
    if (i.at("name") == "stable" || i.at("name") == "simd" || i.at("name") == "openmp" || i.at("name") == "throughput")
      ++takers;
  std::size_t f32_cells = 0, sixteen_cells = 0, f64_cells = 0;
  for (const auto& c : acc) {
    const auto id = c.at("scenario").get<std::string>();
    EXPECT_EQ(id.ends_with("_bf16"), c.at("dtype") == "bfloat16") << c.dump();
    EXPECT_EQ(id.ends_with("_f16"), c.at("dtype") == "float16") << c.dump();
    EXPECT_EQ(id.ends_with("_f64"), c.at("dtype") == "float64") << c.dump();
    (c.at("dtype") == "float32" ? f32_cells : c.at("dtype") == "float64" ? f64_cells : sixteen_cells) += 1;
  }
  EXPECT_EQ(f32_cells, f32 * j.at("implementations").size());
  EXPECT_GE(sixteen_cells, sixteen * takers);
  EXPECT_GT(sixteen, 0u);
  EXPECT_GE(f64_cells, f64);  // stable at least
  EXPECT_GT(f64, 0u);
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

// ---- checking the user's own results (--loss, --grad), bounds and exit status ----

// The headline problem's gradient of the mean, rounded once from double.
std::vector<float> headline_gradient() {
  const std::vector<std::int64_t> t{1, 3, 2};
  std::vector<float> g(15);
  for (int n = 0; n < 3; ++n)
    for (int c = 0; c < 5; ++c) g[n * 5 + c] = static_cast<float>((c == t[n] ? 0.2 - 1.0 : 0.2) / 3.0);
  return g;
}

TEST_F(cli, check_your_scalar_loss) {
  const std::string x = logits(), t = targets();
  // ln 5 rounded to float32: correctly rounded.
  const auto r = run("check --json --loss " + save("l_ok.npy", std::vector<float>{1.6094379f}, {}) + " --logits " + x +
                     " --target " + t + " --max-ulp 0.5");
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  const json j = json::parse(r.out);
  const json& l = j.at("yours").at("loss");
  EXPECT_EQ(l.at("kind"), "mean");
  EXPECT_EQ(l.at("count"), 1);
  EXPECT_LE(l.at("max_ulp").get<double>(), 0.5);
  EXPECT_EQ(l.at("correctly_rounded").get<double>(), 1.0);
  EXPECT_EQ(l.at("within_bound"), true);
  EXPECT_EQ(j.at("bound").at("exceeded"), false);
  EXPECT_EQ(j.at("status"), 0);
  // 8 ulps off (PyTorch-style float32 lse - x_t can be): exit 1 under --max-ulp 1, 0 without a bound.
  const std::string off = save("l_off.npy", std::vector<float>{std::nextafter(1.6094379f, 2.0f) + 7 * 1.1920929e-7f}, {});
  const auto b = run("check --loss " + off + " --logits " + x + " --target " + t + " --max-ulp 1");
  EXPECT_EQ(b.status, 1) << b.out << b.err;
  EXPECT_NE(b.out.find("your loss (--loss " + off + ", the mean)"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("EXCEEDS bound"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("FAILED: a checked result exceeds max 1 ulp"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("0.0% correctly rounded"), std::string::npos) << b.out;
  const auto nb = run("check --loss " + off + " --logits " + x + " --target " + t);
  EXPECT_EQ(nb.status, 0) << nb.out << nb.err;
  // --tier fast (1 ulp for a mean): exceeded too.
  const auto tf = run("check --json --loss " + off + " --logits " + x + " --target " + t + " --tier fast");
  EXPECT_EQ(tf.status, 1) << tf.out;
  EXPECT_EQ(json::parse(tf.out).at("yours").at("loss").at("beyond_bound"), 1);
}

// float16 and bfloat16 inputs: your results measured in ulps of their own
// dtype; kernels that compute the dtype get it as given and return it, the
// others get the values widened to float32 (exact) and return float32.
TEST_F(cli, check_half_dtypes) {
  using xent::npy::dtype;
  const std::string t = targets();
  auto save16 = [&](const std::string& name, std::vector<std::uint16_t> bits, std::vector<std::int64_t> shape,
                    dtype d) {
    xent::npy::write(path(name), xent::npy::make(bits, std::move(shape), d));
    return path(name);
  };
  // float16: zeros [3, 5]; ln 5 = 1.6094379 rounds to 0x3e70 = 1.609375 (0.06 ulp), 0x3e71 is 0.94 ulp off.
  const std::string x16 = save16("x16.npy", std::vector<std::uint16_t>(15, 0), {3, 5}, dtype::f16);
  const auto r = run("check --json --impl stable --max-ulp 0.5 --logits " + x16 + " --target " + t + " --loss " +
                     save16("l16.npy", {0x3e70}, {}, dtype::f16));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("logits").at("dtype"), "float16");
  const json& l = j.at("yours").at("loss");
  EXPECT_EQ(l.at("dtype"), "float16");
  EXPECT_NEAR(l.at("max_ulp").get<double>(), (1.6094379124341003 - 1.609375) / std::ldexp(1.0, -10), 1e-9);
  EXPECT_EQ(l.at("correctly_rounded").get<double>(), 1.0);
  // stable computes float16 (correctly rounded in float16).
  EXPECT_EQ(j.at("implementations").at("stable").at("errors").at("dtype"), "float16");
  const auto off = run("check --json --max-ulp 0.5 --logits " + x16 + " --target " + t + " --loss " +
                       save16("l16off.npy", {0x3e71}, {}, dtype::f16));
  EXPECT_EQ(off.status, 1) << off.out << off.err;
  EXPECT_NEAR(json::parse(off.out).at("yours").at("loss").at("max_ulp").get<double>(),
              (1.609375 + std::ldexp(1.0, -10) - 1.6094379124341003) / std::ldexp(1.0, -10), 1e-9);
  const auto text = run("check --impl naive --logits " + x16 + " --target " + t);
  EXPECT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("logits [3, 5] float16"), std::string::npos) << text.out;
  EXPECT_NE(text.err.find("the others get them widened to float32 (exact)"), std::string::npos) << text.err;
  EXPECT_NE(text.out.find("[float32: computes float32 logits only]"), std::string::npos) << text.out;
  // simd computes float16: a float16 loss (ln 5 rounded once: 0x3e70), measured in float16 ulps, and a
  // float16 gradient file.
  const std::string g16 = path("g16.npy");
  const auto s = run("check --json --impl simd --impl naive --max-ulp 0.5 --logits " + x16 + " --target " + t +
                     " --grad-out " + g16);
  ASSERT_EQ(s.status, 0) << s.out << s.err;
  const json js = json::parse(s.out);
  EXPECT_EQ(js.at("implementations").at("simd").at("dtype"), "float16");
  EXPECT_EQ(js.at("implementations").at("simd").at("loss").get<double>(), 1.609375);
  EXPECT_EQ(js.at("implementations").at("naive").at("dtype"), "float32");
  const xent::npy::array g = xent::npy::read(g16);
  EXPECT_EQ(g.type, dtype::f16);
  EXPECT_EQ(g.shape, (std::vector<std::int64_t>{3, 5}));
  // bfloat16: uint16 bit patterns with --logits-dtype bfloat16; ln 5 rounds to 0x3fce = 1.609375 there too.
  const std::string xb = save16("xb.npy", std::vector<std::uint16_t>(15, 0), {3, 5}, dtype::u16);
  const std::string lb = save16("lb.npy", {0x3fce}, {}, dtype::u16);
  const auto b = run("check --json --logits-dtype bfloat16 --max-ulp 0.5 --logits " + xb + " --target " + t +
                     " --loss " + lb);
  ASSERT_EQ(b.status, 0) << b.out << b.err;
  const json jb = json::parse(b.out);
  EXPECT_EQ(jb.at("logits").at("dtype"), "bfloat16");
  EXPECT_EQ(jb.at("yours").at("loss").at("dtype"), "bfloat16");
  EXPECT_NEAR(jb.at("yours").at("loss").at("max_ulp").get<double>(),
              (1.6094379124341003 - 1.609375) / std::ldexp(1.0, -7), 1e-9);
  // uint16 without the flag, or the flag on float32 logits: a usage error naming the fix.
  expect_input_error(run("check --logits " + xb + " --target " + t), "--logits-dtype bfloat16", "uint16 logits");
  expect_input_error(run("check --logits-dtype bfloat16 --logits " + logits() + " --target " + t),
                     "bfloat16 bit patterns, but the logits are float32", "float32 logits");
  expect_input_error(run("check --logits-dtype float8 --logits " + xb + " --target " + t), "float8", "bad dtype");
}

// float64 logits are read as given: the reference is theirs, your float64
// results are measured in float64 ulps, stable (and simd, openmp,
// throughput) compute them, and the kernels that compute no float64 do not
// apply (rounding the logits would change the problem).
TEST_F(cli, check_float64) {
  const std::string t = targets();
  const std::string x = save("x64.npy", std::vector<double>(15, 0.1), {3, 5});
  const double ln5 = std::log(5.0);  // glibc's log is correctly rounded here: 1.6094379124341003
  const auto r = run("check --json --max-ulp 0.5 --logits " + x + " --target " + t + " --loss " +
                     save("l64.npy", std::vector<double>{ln5}, {}));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("logits").at("dtype"), "float64");
  EXPECT_EQ(j.at("yours").at("loss").at("dtype"), "float64");
  EXPECT_EQ(j.at("yours").at("loss").at("correctly_rounded").get<double>(), 1.0);
  EXPECT_EQ(j.at("reference").get<double>(), ln5);
  const json& st = j.at("implementations").at("stable");
  EXPECT_EQ(st.at("dtype"), "float64");
  EXPECT_EQ(st.at("loss").get<double>(), ln5);
  EXPECT_TRUE(st.at("not_applicable").is_null());
  EXPECT_EQ(j.at("implementations").at("simd").at("dtype"), "float64");
  EXPECT_EQ(j.at("implementations").at("mpi").at("not_applicable"), "computes no float64 logits");
  // The next float64 up: beyond --max-ulp 0.5, and as far from the exact ln 5 as RN(ln 5) is from it
  // plus their distance, one float64 ulp (errors measured in float64 ulps, not float32's).
  const auto off = run("check --json --max-ulp 0.5 --logits " + x + " --target " + t + " --loss " +
                       save("l64off.npy", std::vector<double>{std::nextafter(ln5, 2.0)}, {}));
  EXPECT_EQ(off.status, 1) << off.out << off.err;
  EXPECT_NEAR(json::parse(off.out).at("yours").at("loss").at("max_ulp").get<double>() +
                  j.at("yours").at("loss").at("max_ulp").get<double>(),
              1.0, 1e-9);
  // The gradient written in float64; the text names what does not apply.
  const std::string g = path("g64.npy");
  const auto text = run("check --logits " + x + " --target " + t + " --grad-out " + g);
  ASSERT_EQ(text.status, 0) << text.out << text.err;
  EXPECT_NE(text.out.find("n/a: computes no float64 logits"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("(float64 1.6094379124341003)"), std::string::npos) << text.out;
  const xent::npy::array ga = xent::npy::read(g);
  EXPECT_EQ(ga.type, xent::npy::dtype::f64);
  EXPECT_EQ(ga.shape, (std::vector<std::int64_t>{3, 5}));
}

TEST_F(cli, check_your_per_position_loss_lists_the_worst) {
  const float ln5 = 1.6094379f;
  const std::vector<float> mine{ln5, std::nextafter(std::nextafter(ln5, 2.0f), 2.0f), ln5};
  const auto r = run("check --json --reduction none --loss " + save("l3.npy", mine, {3}) + " --logits " + logits() +
                     " --target " + targets() + " --tier accurate");
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  const json l = json::parse(r.out).at("yours").at("loss");
  EXPECT_EQ(l.at("kind"), "per_position");
  EXPECT_EQ(l.at("count"), 3);
  EXPECT_NEAR(l.at("max_ulp").get<double>(), 2.25, 0.01);
  EXPECT_NEAR(l.at("median_ulp").get<double>(), 0.25, 0.01);
  EXPECT_NEAR(l.at("correctly_rounded").get<double>(), 2.0 / 3.0, 1e-9);
  EXPECT_EQ(l.at("beyond_bound"), 1);
  ASSERT_GE(l.at("worst").size(), 1u);
  EXPECT_EQ(l.at("worst")[0].at("index"), json::array({1}));
  // A per-position loss is compared per position whatever the reduction.
  const auto m = run("check --loss " + path("l3.npy") + " --logits " + logits() + " --target " + targets());
  EXPECT_EQ(m.status, 0) << m.err;
  EXPECT_NE(m.out.find("    [1]: 1.60943818, reference 1.60943791243 (2.25 ulp)"), std::string::npos) << m.out;
}

TEST_F(cli, check_your_gradient) {
  std::vector<float> g = headline_gradient();
  const auto r = run("check --json --grad " + save("g_ok.npy", g, {3, 5}) + " --logits " + logits() + " --target " +
                     targets() + " --tier accurate");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const json gj = json::parse(r.out).at("yours").at("grad");
  EXPECT_EQ(gj.at("count"), 15);
  EXPECT_LE(gj.at("max_ulp").get<double>(), 0.5);
  // One entry (row 2, class 4) 3 ulps off: listed first, the tier exceeded.
  g[2 * 5 + 4] = std::nextafter(std::nextafter(std::nextafter(g[14], 1.0f), 1.0f), 1.0f);
  const auto b = run("check --json --grad " + save("g_off.npy", g, {3, 5}) + " --logits " + logits() + " --target " +
                     targets() + " --tier accurate");
  EXPECT_EQ(b.status, 1) << b.out;
  const json bj = json::parse(b.out).at("yours").at("grad");
  EXPECT_EQ(bj.at("beyond_bound"), 1);
  EXPECT_EQ(bj.at("worst")[0].at("index"), json::array({2, 4}));
  EXPECT_GT(bj.at("worst")[0].at("ulp").get<double>(), 2.0);
}

TEST_F(cli, check_bounds_on_implementations) {
  // A dominant target: the true loss is ~9.4e-14; naive's float32 formula loses it.
  const std::string x = save("xd.npy", std::vector<float>{0.0f, 30.0f}, {1, 2});
  const std::string t = save("td.npy", std::vector<std::int64_t>{1}, {1});
  const auto n = run("check --json --impl naive --max-ulp 4 --logits " + x + " --target " + t);
  EXPECT_EQ(n.status, 1) << n.out << n.err;
  EXPECT_EQ(json::parse(n.out).at("implementations").at("naive").at("errors").at("within_bound"), false);
  const auto s = run("check --impl stable --tier accurate --logits " + x + " --target " + t);
  EXPECT_EQ(s.status, 0) << s.out << s.err;
  EXPECT_NE(s.out.find("PASSED: every checked result within the accurate tier's bounds"), std::string::npos) << s.out;
}

TEST_F(cli, check_impl_sets) {
  // Default: ours at the accurate and fast tiers, never naive or a peer; said so.
  const auto d = run("check --json --logits " + logits() + " --target " + targets());
  ASSERT_EQ(d.status, 0) << d.err;
  const json dj = json::parse(d.out);
  EXPECT_TRUE(dj.at("implementations").contains("stable"));
  EXPECT_FALSE(dj.at("implementations").contains("naive")) << d.out;
  EXPECT_FALSE(dj.at("implementations").contains("torch")) << d.out;
  EXPECT_EQ(dj.at("default_implementations"), true);
  const auto dt = run("check --logits " + logits() + " --target " + targets());
  EXPECT_NE(dt.out.find("(implementations: the default set"), std::string::npos) << dt.out;
  EXPECT_NE(dt.out.find("ulp: units in the last place of the result's dtype (float32 unless said)"), std::string::npos)
      << dt.out;
  // A comma list, in order.
  const auto c = run("check --json --impl stable,naive --logits " + logits() + " --target " + targets());
  ASSERT_EQ(c.status, 0) << c.err;
  const nlohmann::ordered_json cj = nlohmann::ordered_json::parse(c.out).at("implementations");
  ASSERT_EQ(cj.size(), 2u);
  EXPECT_EQ(cj.begin().key(), "stable");
  EXPECT_EQ(cj.at("naive").at("origin"), "implementation");
  // `list` and `check` see the same registry: every listed, supported name runs in check.
  const json list = json::parse(run("list --json").out);
  for (const auto& i : list) {
    EXPECT_TRUE(i.contains("kind")) << i.dump();
    if (!i.at("supported").get<bool>()) continue;
    const std::string name = i.at("name");
    const auto one = run("check --json --impl " + name + " --logits " + logits() + " --target " + targets());
    ASSERT_EQ(one.status, 0) << name << ": " << one.err;
    const json oj = json::parse(one.out).at("implementations").at(name);
    EXPECT_EQ(oj.at("origin"), i.at("kind") == "peer" ? "peer" : "implementation") << name;
    // Ours within float32 rounding; a peer within its own accuracy (oneDNN's
    // logsoftmax is off by ~3e-6 here).
    EXPECT_NEAR(oj.at("loss").get<double>(), std::log(5.0), i.at("kind") == "peer" ? 1e-5 : 1e-6) << name;
    EXPECT_EQ(i.at("in_check_default").get<bool>(),
              i.at("kind") == "ours" &&
                  (i.at("tier") == "correctly_rounded" || i.at("tier") == "accurate" || i.at("tier") == "fast"))
        << name;
  }
}

TEST_F(cli, json_errors_are_one_document) {
  auto expect_json_error = [](const run_result& r, const std::string& argument, const std::string& fragment) {
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    const json j = json::parse(r.out);  // exactly one document
    ASSERT_TRUE(j.contains("error")) << r.out;
    if (argument.empty()) EXPECT_TRUE(j.at("error").at("argument").is_null()) << r.out;
    else EXPECT_EQ(j.at("error").at("argument"), argument) << r.out;
    EXPECT_NE(j.at("error").at("message").get<std::string>().find(fragment), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_EQ(r.err.rfind("xent: error: ", 0), 0u) << r.err;  // and the usual line on stderr
  };
  expect_json_error(run("check --json --logits " + path("missing.npy") + " --target " + targets()), "--logits",
                    "cannot open");
  expect_json_error(run("check --json --logits " + logits() + " --target " + targets() + " --impl nosuch"), "--impl",
                    "unknown implementation 'nosuch'");
  expect_json_error(run("check --json --logits " + logits() + " --target " +
                        save("tb2.npy", std::vector<std::int64_t>{1, 9, 2}, {3})),
                    "target", "Target 9 is out of bounds");
  expect_json_error(run("check --json --logits " + logits() + " --target " + targets() + " --frobnicate"), "--frobnicate",
                    "frobnicate");
  expect_json_error(run("check --json --logits " + logits()), "--target", "--target");
  expect_json_error(run("list --json --bogus"), "--bogus", "bogus");
}

TEST_F(cli, version) {
  const auto r = run("--version");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("xent 0.", 0), 0u) << r.out;
  const auto h = run("--help");
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("Exit status: 0 success; 1 a bound exceeded"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("2 usage or input error"), std::string::npos) << h.out;
}

TEST_F(cli, validation_before_the_reference) {
  // With the progress line forced on from the first moment, any computation
  // would print it: an unwritable --grad-out must stop everything before.
  const std::string env = "XENT_PROGRESS_AFTER=0 ";
  const auto r = xent::cli_test::run_xent_env(env, "check --logits " + logits() + " --target " + targets() +
                                                       " --grad-out " + path("no/such/dir/g.npy"), dir_);
  expect_input_error(r, "cannot write (--grad-out)", "unwritable --grad-out before the reference");
  EXPECT_EQ(r.err.find("reference:"), std::string::npos) << r.err;
  // And the progress line itself, when forced: positions, percent, done.
  const auto p = xent::cli_test::run_xent_env(env, "check --logits " + logits() + " --target " + targets(), dir_);
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_NE(p.err.find("xent: reference: 3 of 3 positions (100%)"), std::string::npos) << p.err;
  EXPECT_NE(p.err.find(", done"), std::string::npos) << p.err;
  // Threads do not change the numbers.
  const auto t1 = run("check --json --reduction none --threads 1 --logits " + logits() + " --target " + targets());
  const auto t3 = run("check --json --reduction none --threads 3 --logits " + logits() + " --target " + targets());
  EXPECT_EQ(json::parse(t1.out).at("reference"), json::parse(t3.out).at("reference"));
}

TEST_F(cli, smaller_input_items) {
  // [B, T, C] logits with [B, T] targets: the class axis is dim 1.
  const auto btc = run("check --logits " + save("btc.npy", std::vector<float>(2 * 4 * 3), {2, 4, 3}) + " --target " +
                       save("bt.npy", std::vector<std::int64_t>(8, 1), {2, 4}));
  expect_input_error(btc, "the class axis is dim 1", "[B,T,C] with [B,T]");
  EXPECT_NE(btc.err.find("permute(0, 2, 1)"), std::string::npos) << btc.err;
  EXPECT_NE(btc.err.find("reshape(-1, 3)"), std::string::npos) << btc.err;
  // int32 targets: converted, with a warning that PyTorch rejects them.
  const auto i32 = run("check --json --logits " + logits() + " --target " +
                       save("t32b.npy", std::vector<std::int32_t>{1, 3, 2}, {3}));
  ASSERT_EQ(i32.status, 0) << i32.err;
  EXPECT_EQ(warning_codes(json::parse(i32.out)), std::vector<std::string>{"int32_target"});
  EXPECT_NE(i32.out.find("PyTorch's cross_entropy rejects them"), std::string::npos) << i32.out;
  // bool: not accepted, and not advertised as supported anywhere.
  std::vector<unsigned char> b = xent::npy::serialize(xent::npy::make(std::vector<std::int32_t>{0, 0, 0}, {3}));
  const std::string i4 = "<i4";
  std::copy_n("|b1", 3, std::search(b.begin(), b.end(), i4.begin(), i4.end()));
  b.resize(b.size() - 9);  // 3 bytes of data
  const auto tb = run("check --logits " + logits() + " --target " + save_bytes("tbool2.npy", b));
  expect_input_error(tb, "got bool", "bool targets");
  const auto u4 = run("check --logits " + logits() + " --target " + save_bytes("u4.npy", [] {
                        auto v = xent::npy::serialize(xent::npy::make(std::vector<std::int32_t>{1, 3, 2}, {3}));
                        const std::string k = "<i4";
                        std::copy_n("<u4", 3, std::search(v.begin(), v.end(), k.begin(), k.end()));
                        return v;
                      }()));
  expect_input_error(u4, "unsupported dtype '<u4'", "uint32");
  EXPECT_EQ(u4.err.find("b1"), std::string::npos) << u4.err;
}

TEST_F(cli, fortran_order_and_npz) {
  // [3, 5] logits saved in Fortran order: the same problem as C order.
  std::vector<float> xc(15), xf(15);
  for (int n = 0; n < 3; ++n)
    for (int c = 0; c < 5; ++c) xc[n * 5 + c] = static_cast<float>(n * 5 + c) * 0.25f;
  for (int n = 0; n < 3; ++n)
    for (int c = 0; c < 5; ++c) xf[c * 3 + n] = xc[n * 5 + c];
  auto fb = xent::npy::serialize(xent::npy::make(xf, {3, 5}));
  const std::string f = "False, 'shape'";
  std::copy_n("True,  ", 7, std::search(fb.begin(), fb.end(), f.begin(), f.end()));
  const auto rf = run("check --json --impl stable --logits " + save_bytes("xf.npy", fb) + " --target " + targets());
  const auto rc = run("check --json --impl stable --logits " + save("xc.npy", xc, {3, 5}) + " --target " + targets());
  ASSERT_EQ(rf.status, 0) << rf.err;
  ASSERT_EQ(rc.status, 0) << rc.err;
  EXPECT_EQ(json::parse(rf.out).at("reference"), json::parse(rc.out).at("reference"));
  EXPECT_NE(json::parse(rc.out).at("reference").get<double>(), std::log(5.0));  // not the all-zero problem
  // An .npz with logits and target (a stored zip, as np.savez writes).
  const auto npz = xent::cli_test::zip_stored(
      {{"logits.npy", xent::npy::serialize(xent::npy::make(xc, {3, 5}))},
       {"target.npy", xent::npy::serialize(xent::npy::make(std::vector<std::int64_t>{1, 3, 2}, {3}))}});
  const std::string z = save_bytes("dump.npz", npz);
  const auto rz = run("check --json --impl stable --logits " + z + " --target " + z);
  ASSERT_EQ(rz.status, 0) << rz.err;
  EXPECT_EQ(json::parse(rz.out).at("reference"), json::parse(rc.out).at("reference"));
  const auto rn = run("check --json --impl stable --logits " + z + ":logits --target " + z + ":target");
  ASSERT_EQ(rn.status, 0) << rn.err;
  EXPECT_EQ(json::parse(rn.out).at("reference"), json::parse(rc.out).at("reference"));
  expect_input_error(run("check --logits " + z + ":nosuch --target " + z), "no array 'nosuch' in the archive (it holds: logits, target)",
                     "missing npz member");
  expect_input_error(run("check --logits " + z + " --target " + targets() + " --weight " + z),
                     "the archive holds 2 arrays (logits, target): name one", "ambiguous npz");
}

TEST_F(cli, check_a_plugin) {
  const std::string plugin = XENT_EXAMPLE_PLUGIN;
  const auto r = run("check --json --impl none --plugin " + plugin + " --max-ulp 4 --reduction none --logits " +
                     logits() + " --target " + targets());
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const nlohmann::ordered_json impls = nlohmann::ordered_json::parse(r.out).at("implementations");
  ASSERT_EQ(impls.size(), 1u) << r.out;
  const auto& p = impls.begin().value();
  EXPECT_EQ(p.at("origin"), "plug-in " + plugin);
  ASSERT_EQ(p.at("loss").size(), 3u);
  for (const auto& v : p.at("loss")) EXPECT_NEAR(v.get<double>(), std::log(5.0), 1e-6);
  EXPECT_EQ(p.at("errors").at("within_bound"), true);
  expect_input_error(run("check --plugin " + path("nosuch.so") + " --logits " + logits() + " --target " + targets()),
                     "nosuch.so", "missing plug-in");
}

// A peer's failures that are documented deviations are counted apart.
TEST_F(cli, verify_separates_known_peer_deviations) {
  bool torch = false;
  for (const auto& i : json::parse(run("list --json").out)) torch = torch || i.at("name") == "torch";
  if (!torch) GTEST_SKIP() << "built without the LibTorch peer";
  const auto r = run("verify --impl torch --property loss_nonnegative --no-sweep");
  if (r.err.find("without the property suite") != std::string::npos) GTEST_SKIP() << r.err;
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("xent verify: torch (peer), tier standard"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("known PyTorch deviation (FAIL"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("metamorphic_props/loss_nonnegative: C = 1 with probability targets returns -0.0"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("REJECTED at tier standard — 1 failure, a known PyTorch deviation"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("known deviations: PyTorch's"), std::string::npos) << r.out;
  // The counterexample stays beside the reason: the evidence that it is still the documented deviation.
  EXPECT_NE(r.out.find("Replay:"), std::string::npos) << r.out;
  // Judged at another tier, the list does not apply: every failure is new.
  const auto t = run("verify --impl torch --tier naive --property loss_nonnegative --no-sweep");
  EXPECT_EQ(t.status, 1);
  EXPECT_EQ(t.out.find("known PyTorch deviation"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("none apply (PyTorch's were measured at tier standard)"), std::string::npos) << t.out;
  // Its own tier given explicitly changes nothing; --known-deviations none counts every failure as new.
  const auto same = run("verify --impl torch --tier standard --property loss_nonnegative --no-sweep");
  EXPECT_NE(same.out.find("1 failure, a known PyTorch deviation"), std::string::npos) << same.out;
  const auto none = run("verify --impl torch --known-deviations none --property loss_nonnegative --no-sweep");
  EXPECT_EQ(none.status, 1);
  EXPECT_EQ(none.out.find("known PyTorch deviation"), std::string::npos) << none.out;
  EXPECT_NE(none.out.find("failed: metamorphic_props/loss_nonnegative"), std::string::npos) << none.out;
}

TEST_F(cli, help_exits_0) {
  const auto r = run("check --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--logits"), std::string::npos);
}

}  // namespace

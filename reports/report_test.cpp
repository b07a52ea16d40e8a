// `xent report`: the sweep's numbers (reductions against a direct reference
// call), the accuracy gate (fails naming the cell and the repro, points at
// `./run baseline` when errors shrink), the benchmark JSON in the headline, and
// the plots. Small scenario subsets (--filter) keep it to seconds.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <algorithm>
#include <bit>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <system_error>

#include "report_baseline.hpp"
#include "report_ranks.hpp"
#include "test_support.hpp"
#include "report_sweep.hpp"
#include "scenarios.hpp"
#include "xent/kernel.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace xent::reports;

using xent::cli_test::run_result;

// One directory per test process (ctest runs each test in its own), removed
// when the process exits.
struct process_dir {
  fs::path path = fs::temp_directory_path() / ("xent_report_test_" + std::to_string(::getpid()));
  process_dir() { fs::create_directories(path); }
  ~process_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  process_dir(const process_dir&) = delete;
  process_dir& operator=(const process_dir&) = delete;
};

fs::path temp_dir() {
  static const process_dir d;
  return d.path;
}

run_result run(const std::string& args) { return xent::cli_test::run_xent(args, temp_dir()); }

std::string write(const std::string& name, const std::string& text) {
  const std::string p = (temp_dir() / name).string();
  std::ofstream(p) << text;
  return p;
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(report_scenarios, every_family_at_every_bucket_with_unique_ids) {
  for (bool quick : {true, false}) {
    const auto v = report_scenarios(quick);
    EXPECT_EQ(v.size() % class_buckets().size(), 0u);
    std::set<std::string> ids;
    for (const auto& s : v) EXPECT_TRUE(ids.insert(s.id).second) << s.id;
    for (const std::string fam : {"normal_s0.001", "normal_s1", "normal_s30", "normal_s1000", "dominant_m5",
                                  "dominant_m20", "dominant_m50", "exp88", "mask_inf", "prob", "ties_ls0.1"})
      for (std::int64_t c : class_buckets())
        EXPECT_EQ(std::count_if(v.begin(), v.end(), [&](const auto& s) { return s.family == fam && s.classes == c; }), 1)
            << fam << " C=" << c;
  }
  // The id rebuilds the same fill.
  const auto a = matching_scenarios("n32c1000_dominant_m20").at(0).build();
  const auto b = matching_scenarios("n32c1000_dominant_m20").at(0).build();
  EXPECT_EQ(a.logits, b.logits);
}

// The sweep derives mean and sum from the per-position reference values;
// they must agree with the reference's own reduction.
TEST(report_sweep, reductions_agree_with_the_reference) {
  sweep_options o;
  o.impls = {"stable"};
  for (const std::string id : {"n32c1000_w_ii7_ls0.1", "n2048c2_prob", "n512c10_dominant_m50", "n8c1000d2x2_normal_s2"})
    o.scenarios.push_back(matching_scenarios(id).at(0));
  const sweep_result r = run_sweep(o);
  ASSERT_EQ(r.cells.size(), o.scenarios.size());
  for (std::size_t i = 0; i < o.scenarios.size(); ++i) {
    const auto s = o.scenarios[i].build();
    for (auto red : {xent::reduction::mean, xent::reduction::sum}) {
      const auto opt = s.make_options(red);
      const auto pr = xent::make_problem(s.logits_view(), s.target_view(), opt);
      float y = 0.0f;
      xent::cross_entropy(s.logits_view(), s.target_view(), xent::view(&y, {}), opt, xent::find_implementation("stable"));
      const double direct = xent::ref::ulp_error(y, xent::ref::compute(pr, false).reduced);
      const double swept = r.cells[i][red == xent::reduction::mean ? quantity::mean : quantity::sum].max;
      EXPECT_NEAR(swept, direct, 1e-6) << s.id << " " << xent::to_string(red);
    }
    EXPECT_LE(r.cells[i][quantity::loss].max, 0.501) << s.id;
    EXPECT_GT(r.cells[i][quantity::loss].correctly_rounded, 0.99) << s.id;
  }
}

const std::string subset = "--no-bench --no-examples --quiet --filter n512c10_ --impl stable --impl naive";

TEST(report_gate, a_larger_error_fails_naming_the_cell_and_the_repro) {
  const std::string base = write("tight.txt", "Implementation: \"naive\"\nloss: 0\ngrad_other: 0.1\n"
                                              "Implementation: \"stable\"\nloss: 0.6\n");
  const auto r = run("report " + subset + " --out " + (temp_dir() / "gate1").string() + " --check-baseline " + base);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "xent: accuracy regression: naive loss: ")) << r.err;
  EXPECT_TRUE(has(r.err, "repro: --impl=naive n512c10_")) << r.err;
  EXPECT_TRUE(has(r.err, "naive grad_target: ")) << r.err;  // measured, not in the file
  EXPECT_FALSE(has(r.err, "accuracy regression: stable loss")) << r.err;  // 0.5 <= 0.6
  EXPECT_TRUE(has(r.err, "the accuracy gate failed")) << r.err;
  EXPECT_TRUE(has(r.out, "## Accuracy gate")) << r.out;
}

TEST(report_gate, smaller_errors_pass_and_point_at_run_baseline) {
  const std::string base = write("loose.txt", "# generous\nImplementation: \"stable\"\nloss: 3\ngrad_target: 3\n"
                                              "grad_other: 3\nmean: 3\nsum: 3\n");
  const std::string out = (temp_dir() / "gate2").string();
  const auto r = run("report " + subset + " --out " + out + " --check-baseline " + base + " --write-baseline " + out +
                     "/measured.txt");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(has(r.err, "accuracy improved")) << r.err;
  EXPECT_TRUE(has(r.err, "  stable loss: 0.5 (baseline 3)")) << r.err;
  EXPECT_TRUE(has(r.err, "'naive' has no baseline entry: not gated")) << r.err;
  // The file is the maximum over the Highway targets: the gate points at
  // `./run baseline` instead of offering this host's table.
  EXPECT_TRUE(has(r.err, "maximum over every Highway target")) << r.err;
  EXPECT_TRUE(has(r.err, "`./run baseline`")) << r.err;
  EXPECT_TRUE(has(r.out, "regenerate it with `./run baseline`")) << r.out;
  EXPECT_FALSE(fs::exists(out + "/baseline-updated.txt"));
  // The measured maxima as the file: nothing shrank, nothing to say.
  const auto again = run("report " + subset + " --out " + out + " --check-baseline " + out + "/measured.txt");
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_FALSE(has(again.err, "accuracy improved")) << again.err;
}

TEST(report_gate, a_malformed_baseline_is_an_input_error) {
  const auto r = run("report " + subset + " --out " + (temp_dir() / "gate3").string() + " --check-baseline " +
                     write("bad.txt", "loss: 1\n"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(has(r.err, "bad.txt:1: 'loss' before any 'Implementation:' line")) << r.err;
}

TEST(report_gate, the_committed_baseline_parses_and_names_our_kernels) {
  const baseline b = read_baseline(std::string(XENT_SOURCE_DIR) + "/reports/accuracy-baseline.txt");
  for (const char* impl : {"stable", "simd", "openmp", "throughput"}) {
    ASSERT_TRUE(b.count(impl)) << impl;
    EXPECT_EQ(b.at(impl).size(), 5u) << impl;
  }
}

TEST(report_output, bench_json_feeds_the_headline_and_the_plots) {
  const std::string bench = write("bench.json", R"({"context": {"libtorch": "1.13.1"}, "benchmarks": [
    {"name": "probe/read/t2", "run_type": "iteration", "bytes_per_second": 1.8e10},
    {"name": "libtorch/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 2.1e9, "roofline_fraction": 0.117},
    {"name": "stable/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 9.0e9, "roofline_fraction": 0.5, "ce_roofline_fraction": 0.61, "vs_torch": 4.29, "vs_onednn": 1.75},
    {"name": "stable/n4096c32000/fwd/t1", "run_type": "iteration", "bytes_per_second": 5.0e9, "roofline_fraction": 0.5, "vs_torch": 2.5},
    {"name": "stable/n8192c1000/fwd/t2", "run_type": "iteration", "bytes_per_second": 8.0e9, "roofline_fraction": 0.44}]})");
  const std::string out = (temp_dir() / "bench").string();
  const auto r = run("report --quiet --no-examples --filter n512c10_normal_s1 --impl stable --bench-json " + bench + " --out " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(has(r.out, "`n4096c32000` loss (`fwd`, mean) with 2 thread(s)")) << r.out;
  EXPECT_TRUE(has(r.out, "| 9.00 | 0.50 | 0.61 | 4.29x | 1.75x |")) << r.out;
  EXPECT_TRUE(has(r.out, "| libtorch |")) << r.out;
  EXPECT_TRUE(has(r.out, "## Context")) << r.out;
  EXPECT_TRUE(has(r.out, "| git revision |")) << r.out;
  std::ifstream js(out + "/report.json");
  const json j = json::parse(js);
  EXPECT_EQ(j.at("benchmarks").at("headline_shape"), "n4096c32000");
  bool found = false;
  for (const auto& p : j.at("benchmarks").at("results"))
    if (p.at("impl") == "stable" && p.at("shape") == "n4096c32000" && p.at("threads") == 2) {
      found = true;
      EXPECT_EQ(p.at("ce_roofline_fraction"), 0.61);
      EXPECT_EQ(p.at("vs_onednn"), 1.75);
    }
  EXPECT_TRUE(found);
  EXPECT_TRUE(j.at("context").contains("CPU"));
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    for (const char* f : {"accuracy_vs_scale.svg", "bandwidth_vs_classes.svg", "thread_scaling.svg"}) {
      EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
      EXPECT_TRUE(has(r.out, std::string("(") + f + ")")) << f;
    }
  } else {
    EXPECT_TRUE(has(r.out, "gnuplot is not installed")) << r.out;
  }
}

// mpirun -np K xent report: the deal, the shares' encoding and their merge
// (the run itself under mpirun: tests/mpi/report_matches_one_process.sh).
TEST(report_ranks, every_scenario_is_dealt_once_and_the_loads_balance) {
  const auto specs = report_scenarios(true);
  std::int64_t largest = 0;
  for (const auto& s : specs) largest = std::max(largest, s.elements);
  for (int ranks : {1, 2, 3, 4, 7}) {
    const auto deal = deal_scenarios(specs, ranks);
    ASSERT_EQ(deal.size(), static_cast<std::size_t>(ranks));
    std::vector<int> seen(specs.size(), 0);
    std::vector<std::int64_t> load;
    for (const auto& d : deal) {
      EXPECT_FALSE(d.empty()) << ranks << " ranks";
      EXPECT_TRUE(std::is_sorted(d.begin(), d.end()));
      std::int64_t l = 0;
      for (std::size_t i : d) {
        ++seen.at(i);
        l += specs[i].elements;
      }
      load.push_back(l);
    }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), static_cast<std::ptrdiff_t>(specs.size())) << ranks << " ranks";
    // Largest first to the least loaded: no rank ends more than one scenario above another.
    EXPECT_LE(*std::max_element(load.begin(), load.end()) - *std::min_element(load.begin(), load.end()), largest)
        << ranks << " ranks";
    EXPECT_EQ(deal, deal_scenarios(specs, ranks));  // the same on every rank
  }
}

sweep_share sample_share() {
  sweep_share s;
  s.seconds = 1.25;
  s.indices = {3, 0};
  for (std::size_t k = 0; k < 2; ++k) {
    scenario_info info{"n2c5_x" + std::to_string(k), "x", "a scenario", {2, 5, 1}, 5, 0.5, 0.75};
    s.scenarios.push_back(info);
    cell c;
    c.impl = "simd";
    c.tier = "fast";
    c.scenario = info.id;
    c.outside = k ? std::optional<std::string>("outside its domain") : std::nullopt;
    c.rounded = 7;
    c.retried = 2;
    c.unresolved = 1;
    for (std::size_t q = 0; q < quantity_count; ++q) {
      c.q[q] = {static_cast<std::int64_t>(10 + q), 1.5 + static_cast<double>(q), 0.25, 0.125, 0.03125, 0.875, 1,
                {4, static_cast<std::int64_t>(q), std::bit_cast<double>(0x7ff4a1a7dd000123ull), "1.234567891", 2.5}};
    }
    c.q[0].max = std::numeric_limits<double>::infinity();
    c.q[1].p99 = std::bit_cast<double>(0xfff4000000000123ull);  // a negative NaN with a payload
    cell failed = c;
    failed.impl = "plug";
    failed.failure = "it crashed";
    failed.skipped = "unsupported";
    s.cells.push_back({c, failed});
  }
  return s;
}

TEST(report_ranks, a_share_travels_bit_for_bit) {
  const sweep_share s = sample_share();
  const std::string bytes = encode(s);
  const sweep_share back = decode(bytes);
  EXPECT_EQ(encode(back), bytes);  // every encoded field came back
  ASSERT_EQ(back.cells.size(), 2u);
  EXPECT_EQ(back.indices, s.indices);
  EXPECT_EQ(back.scenarios[1].shape, s.scenarios[1].shape);
  const cell& c = back.cells[1][0];
  EXPECT_EQ(*c.outside, "outside its domain");
  EXPECT_FALSE(back.cells[0][0].outside);
  EXPECT_EQ(*back.cells[1][1].failure, "it crashed");
  EXPECT_EQ(std::bit_cast<std::uint64_t>(c.q[2].worst.got), 0x7ff4a1a7dd000123ull);  // a signalling NaN, bits kept
  EXPECT_EQ(std::bit_cast<std::uint64_t>(c.q[1].p99), 0xfff4000000000123ull);
  EXPECT_TRUE(std::isinf(c.q[0].max));
  EXPECT_EQ(c.q[4].worst.want, "1.234567891");
  EXPECT_EQ(c.unresolved, 1);
  // Truncated or padded bytes are an error, not a report with holes.
  EXPECT_THROW(decode(bytes.substr(0, bytes.size() - 1)), std::runtime_error);
  EXPECT_THROW(decode(bytes + "x"), std::runtime_error);
  EXPECT_THROW(decode("not a share"), std::runtime_error);
}

TEST(report_ranks, the_merge_restores_the_order_of_one_process) {
  sweep_share a = sample_share(), b = sample_share();  // a: scenarios 3 and 0
  b.indices = {1, 2};
  for (auto& i : b.scenarios) i.id += "_b";
  const sweep_result r = merge_shares({b, a}, 4);
  ASSERT_EQ(r.scenarios.size(), 4u);
  EXPECT_EQ(r.scenarios[0].id, a.scenarios[1].id);
  EXPECT_EQ(r.scenarios[1].id, b.scenarios[0].id);
  EXPECT_EQ(r.scenarios[3].id, a.scenarios[0].id);
  EXPECT_EQ(r.cells.size(), 8u);  // scenario-major, two cells each
  EXPECT_EQ(r.cells[6].scenario, a.cells[0][0].scenario);
  // A share missing or doubled is an error, never a shorter report.
  EXPECT_THROW(merge_shares({a}, 4), std::logic_error);
  EXPECT_THROW(merge_shares({a, b, a}, 4), std::logic_error);
  // A rank whose share failed is named, with its status and message.
  sweep_share failed;
  failed.failure = failure_note{2, "cannot read x.npy"};
  try {
    merge_shares({a, failed, b}, 4);
    FAIL() << "a failed share was merged";
  } catch (const rank_failure& e) {
    EXPECT_EQ(e.status(), 2);
    EXPECT_FALSE(e.own());
    EXPECT_TRUE(has(e.what(), "rank 1 failed on its share of the accuracy sweep: cannot read x.npy")) << e.what();
  }
}

// The performance section: every case of the JSON in a table of its shape
// (kernel and Highway target split from a pinned case's name), the per-target
// table, what was not measured; the accuracy-against-speed plot's points are
// the sweep's worst errors at the bench's CE roofline fractions.
TEST(report_output, performance_section_and_accuracy_vs_speed_from_the_bench_json) {
  const std::string bench = write("bench_targets.json", R"js({"context": {"set": "default",
      "hwy_cpu_targets": "AVX3,AVX2,SSE4", "highway_implementations": "simd,mpi",
      "skipped": "stable/n4096c32000/fwd_sum (~2.42 s per call)"}, "benchmarks": [
    {"name": "probe/read/t2", "run_type": "iteration", "bytes_per_second": 1.8e10},
    {"name": "libtorch/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 2.1e9, "ce_roofline_fraction": 0.1, "vs_onednn": 0.5},
    {"name": "onednn/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 4.2e9, "ce_roofline_fraction": 0.2, "vs_torch": 2.0},
    {"name": "stable/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 3.0e8, "ce_roofline_fraction": 0.02, "vs_torch": 0.14, "vs_onednn": 0.07, "peak_extra_bytes": 1073741824, "extra_per_NxC": 2.0},
    {"name": "simd/n4096c32000/fwd/t1", "run_type": "iteration", "bytes_per_second": 5.0e9, "ce_roofline_fraction": 0.35},
    {"name": "simd/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 9.0e9, "ce_roofline_fraction": 0.61, "vs_torch": 4.29, "vs_onednn": 2.14, "vs_t1": 1.8, "peak_extra_bytes": 65536, "extra_per_NxC": 0.000125},
    {"name": "simd/n4096c32000/fwdbwd/t2", "run_type": "iteration", "bytes_per_second": 1.2e10, "ce_roofline_fraction": 0.7, "vs_torch": 6.5},
    {"name": "simd_avx2/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 6.0e9, "ce_roofline_fraction": 0.55, "vs_torch": 2.86},
    {"name": "simd_sse4/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 3.0e9, "ce_roofline_fraction": 0.5, "vs_torch": 1.43},
    {"name": "simd/n64c8192/fwd/t1", "run_type": "iteration", "bytes_per_second": 7.0e9, "ce_roofline_fraction": 0.9}]})js");
  const std::string out = (temp_dir() / "perf").string();
  const auto r = run("report --quiet --no-examples --filter n512c10_normal_s1 --impl stable --impl simd --bench-json " +
                     bench + " --out " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string& md = r.out;
  ASSERT_TRUE(has(md, "## Performance")) << md;
  // Per target: the unpinned case is the best target's row, then the pinned ones.
  EXPECT_TRUE(has(md, "| kernel | target | `n4096c32000` fwd |")) << md;
  EXPECT_TRUE(has(md, "| simd | AVX3 | 9.00 · 0.61 · 4.29x · 2.14x |\n| simd | AVX2 | 6.00 · 0.55 · 2.86x · — |\n"
                      "| simd | SSE4 | 3.00 · 0.50 · 1.43x · — |"))
      << md;
  // Rows only where something was measured: mpi dispatches on Highway but
  // has no case in this run, so it is named below the table instead.
  EXPECT_FALSE(has(md, "| mpi | AVX")) << md;
  EXPECT_FALSE(has(md, "| mpi | SSE4")) << md;
  EXPECT_TRUE(has(md, "Not measured on any target in this run: `mpi` (left out by the run's filter, or skipped")) << md;
  // Every case in its shape's table, peers first, targets best first.
  const auto big = md.find("### `n4096c32000`: [4096, 32000], C = 32000");
  const auto small = md.find("### `n64c8192`: [64, 8192], C = 8192");
  ASSERT_NE(big, std::string::npos) << md;
  ASSERT_NE(small, std::string::npos) << md;
  EXPECT_LT(big, small);
  const std::string table = md.substr(big, small - big);
  const std::vector<std::string> rows = {
      "| loss (mean) | libtorch | — | 2 | 2.10 | 0.10 | 1 | 0.50x | — | — |",
      "| loss (mean) | onednn | — | 2 | 4.20 | 0.20 | 2.00x | 1 | — | — |",
      "| loss (mean) | stable | — | 2 | 0.30 | 0.02 | 0.14x | 0.07x | 1.00 GiB (2.00 N×C) | — |",
      "| loss (mean) | simd | AVX3 | 1 | 5.00 | 0.35 | — | — | — | 1 |",
      "| loss (mean) | simd | AVX3 | 2 | 9.00 | 0.61 | 4.29x | 2.14x | 64.0 KiB | 1.80x |",
      "| loss (mean) | simd | AVX2 | 2 | 6.00 | 0.55 | 2.86x | — | — | — |",
      "| loss (mean) | simd | SSE4 | 2 | 3.00 | 0.50 | 1.43x | — | — | — |",
      "| loss + gradient | simd | AVX3 | 2 | 12.00 | 0.70 | 6.50x | — | — | — |"};
  std::size_t at = 0;
  for (const std::string& row : rows) {
    const auto pos = table.find(row);
    EXPECT_NE(pos, std::string::npos) << row << "\n" << table;
    if (pos != std::string::npos) {
      EXPECT_GE(pos, at) << "out of order: " << row;
      at = pos;
    }
  }
  EXPECT_TRUE(has(md.substr(small), "| loss (mean) | simd | AVX3 | 1 | 7.00 | 0.90 |")) << md;
  EXPECT_TRUE(has(md, "Not measured in this run: stable/n4096c32000/fwd_sum (~2.42 s per call).")) << md;

  std::ifstream js(out + "/report.json");
  const json j = json::parse(js);
  EXPECT_EQ(j.at("benchmarks").at("highway_targets"), json({"AVX3", "AVX2", "SSE4"}));
  int pinned = 0;
  for (const auto& p : j.at("benchmarks").at("results"))
    if (p.at("impl") == "simd_avx2") {
      ++pinned;
      EXPECT_EQ(p.at("kernel"), "simd");
      EXPECT_EQ(p.at("target"), "AVX2");
      EXPECT_EQ(p.at("pinned"), true);
    }
  EXPECT_EQ(pinned, 1);

  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    EXPECT_TRUE(has(md, "gnuplot is not installed")) << md;
    return;
  }
  // The throughput plots show the kernels on their best target only.
  std::ifstream bw(out + "/bandwidth_vs_classes.gp");
  const std::string bw_script((std::istreambuf_iterator<char>(bw)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(has(bw_script, "title 'simd'")) << bw_script;
  EXPECT_FALSE(has(bw_script, "simd_avx2")) << bw_script;
  ASSERT_TRUE(fs::exists(out + "/accuracy_vs_speed.svg"));
  EXPECT_TRUE(has(md, "(accuracy_vs_speed.svg)")) << md;
  // The plotted points: (CE roofline fraction, worst ulp, name) per mode; simd
  // has loss and loss + gradient, stable the loss only (no fwdbwd case).
  std::ifstream gp(out + "/accuracy_vs_speed.gp");
  std::map<std::string, std::pair<double, double>> loss, fused;
  std::map<std::string, std::pair<double, double>>* block = nullptr;
  for (std::string line; std::getline(gp, line);) {
    if (line == "$m0 << EOD") block = &loss;
    else if (line == "$m1 << EOD") block = &fused;
    else if (line == "EOD") block = nullptr;
    else if (block) {
      std::istringstream in(line);
      double x = 0.0, y = 0.0;
      std::string name;
      in >> x >> y >> name;
      (*block)[name] = {x, y};
    }
  }
  ASSERT_TRUE(loss.count("\"simd\"") && loss.count("\"stable\"") && fused.count("\"simd\"")) << "points missing";
  EXPECT_EQ(fused.size(), 1u);
  EXPECT_DOUBLE_EQ(loss["\"simd\""].first, 0.61);
  EXPECT_DOUBLE_EQ(fused["\"simd\""].first, 0.7);
  EXPECT_DOUBLE_EQ(loss["\"stable\""].first, 0.02);
  // stable rounds correctly: at most half an ulp (drawn no lower than 0.1);
  // simd's fast tier bounds its loss by 2 ulp, and the gradient is included
  // in the fused point's worst error.
  EXPECT_GE(loss["\"stable\""].second, 0.1);
  EXPECT_LE(loss["\"stable\""].second, 0.5);
  EXPECT_GT(loss["\"simd\""].second, 0.0);
  EXPECT_LE(loss["\"simd\""].second, 2.0);
  EXPECT_GE(fused["\"simd\""].second, loss["\"simd\""].second);
}

// The peers capped at AVX2 (xent_bench's second process, names
// libtorch_avx2/..., onednn_avx2/...): a peer row of that target in its
// shape's table, and the cases pinned to AVX2 compared with them (ratios of
// GB/s: the same bytes per call) in both tables and in report.json; the
// other pinned targets keep the bench's ratios (the peers' own choice).
TEST(report_output, cases_pinned_to_avx2_are_compared_with_the_peers_capped_there) {
  const std::string bench = write("bench_capped.json", R"js({"context": {"set": "default",
      "hwy_cpu_targets": "AVX3,AVX2,SSE4", "highway_implementations": "simd", "skipped": "none",
      "libtorch_isa": "ATen's choice", "onednn_isa": "avx512_core",
      "peers_at_avx2_skipped": "libtorch_avx2/n4096c32000/fwdbwd/t2 (slow: one thread only)"}, "benchmarks": [
    {"name": "libtorch/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 2.0e9, "vs_onednn": 0.5},
    {"name": "onednn/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 4.0e9, "vs_torch": 2.0},
    {"name": "simd/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 9.0e9, "ce_roofline_fraction": 0.61, "vs_torch": 4.5, "vs_onednn": 2.25},
    {"name": "simd_avx2/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 6.0e9, "ce_roofline_fraction": 0.55, "vs_torch": 3.0, "vs_onednn": 1.5},
    {"name": "simd_sse4/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 3.0e9, "ce_roofline_fraction": 0.5, "vs_torch": 1.5, "vs_onednn": 0.75},
    {"name": "libtorch_avx2/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 1.5e9, "vs_onednn": 0.6},
    {"name": "onednn_avx2/n4096c32000/fwd/t2", "run_type": "iteration", "bytes_per_second": 2.5e9, "vs_torch": 1.67}]})js");
  const std::string out = (temp_dir() / "capped").string();
  const auto r = run("report --quiet --no-examples --filter n512c10_normal_s1 --impl stable --bench-json " + bench +
                     " --out " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string& md = r.out;
  // AVX2: 6.0 / 1.5 and 6.0 / 2.5; SSE4: the bench's own.
  EXPECT_TRUE(has(md, "| simd | AVX3 | 9.00 · 0.61 · 4.50x · 2.25x |\n| simd | AVX2 | 6.00 · 0.55 · 4.00x · 2.40x |\n"
                      "| simd | SSE4 | 3.00 · 0.50 · 1.50x · 0.75x |"))
      << md;
  EXPECT_TRUE(has(md, "On the AVX2 row the ratios are over the peers capped at that instruction set in the same run "
                      "(`libtorch_avx2` and `onednn_avx2`"))
      << md;
  EXPECT_TRUE(has(md, "on the SSE4 row over the peers at their own choice — LibTorch: ATen's choice; oneDNN: avx512_core"))
      << md;
  // The shape's table: each peer at its own choice, then capped; ours likewise.
  const std::vector<std::string> rows = {
      "| loss (mean) | libtorch | — | 2 | 2.00 | — | 1 | 0.50x |",
      "| loss (mean) | libtorch | AVX2 | 2 | 1.50 | — | 1 | 0.60x |",
      "| loss (mean) | onednn | — | 2 | 4.00 | — | 2.00x | 1 |",
      "| loss (mean) | onednn | AVX2 | 2 | 2.50 | — | 1.67x | 1 |",
      "| loss (mean) | simd | AVX3 | 2 | 9.00 | 0.61 | 4.50x | 2.25x |",
      "| loss (mean) | simd | AVX2 | 2 | 6.00 | 0.55 | 4.00x | 2.40x |",
      "| loss (mean) | simd | SSE4 | 2 | 3.00 | 0.50 | 1.50x | 0.75x |"};
  std::size_t at = 0;
  for (const std::string& row : rows) {
    const auto pos = md.find(row);
    EXPECT_NE(pos, std::string::npos) << row << "\n" << md;
    if (pos != std::string::npos) {
      EXPECT_GE(pos, at) << "out of order: " << row;
      at = pos;
    }
  }
  EXPECT_TRUE(has(md, "Not measured in this run: capped at AVX2: libtorch_avx2/n4096c32000/fwdbwd/t2 (slow: one "
                      "thread only)."))
      << md;
  std::ifstream js(out + "/report.json");
  const json j = json::parse(js);
  int checked = 0;
  for (const auto& p : j.at("benchmarks").at("results")) {
    if (p.at("impl") == "onednn_avx2") {
      ++checked;
      EXPECT_EQ(p.at("kernel"), "onednn");
      EXPECT_EQ(p.at("target"), "AVX2");
      EXPECT_EQ(p.at("capped"), true);
    } else if (p.at("impl") == "simd_avx2") {
      ++checked;
      EXPECT_EQ(p.at("capped"), false);
      EXPECT_DOUBLE_EQ(p.at("vs_torch_at_target").get<double>(), 4.0);
      EXPECT_DOUBLE_EQ(p.at("vs_onednn_at_target").get<double>(), 2.4);
      EXPECT_DOUBLE_EQ(p.at("vs_torch").get<double>(), 3.0);  // the bench's, kept
    } else if (p.at("impl") == "simd_sse4") {
      ++checked;
      EXPECT_EQ(p.at("vs_torch_at_target"), "nan");  // no peer capped at SSE4
    }
  }
  EXPECT_EQ(checked, 3);
}

}  // namespace

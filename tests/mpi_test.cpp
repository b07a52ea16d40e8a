// `mpi` against `openmp`, bit for bit, under mpirun (ctest label mpi runs it
// with 1, 2 and 4 ranks): every option (weights, ignore_index, smoothing,
// probability targets, each reduction, an upstream gradient), special values,
// dominant targets (the exact-rest round), strided (N, C, d) layouts, rows
// long enough to be cut into several chunks (so that each rank holds some),
// with 1 and 2 OpenMP threads. Every rank checks its whole gathered result.
// Run without mpirun, `mpi` is the only rank (the traffic and fault tests skip).
#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "xent/kernel.hpp"
#include "xent/kernel/mpi.hpp"
#include "xent/xent.hpp"

namespace {

constexpr float inf = std::numeric_limits<float>::infinity();

struct case_t {
  std::string name;
  std::int64_t n = 0, c = 0, d = 1;  // logits [n, c] or [n, c, d] when d > 1
  bool prob = false, weights = false, ignore = false, special = false, dominant = false;
  double eps = 0.0;
};

struct data {
  std::vector<float> x, q, w, up;
  std::vector<std::int64_t> t;
  std::vector<std::int64_t> shape, pos;
};

data make(const case_t& k) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(k.n * 1000003 + k.c * 31 + k.d));
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  data v;
  v.shape = k.d > 1 ? std::vector<std::int64_t>{k.n, k.c, k.d} : std::vector<std::int64_t>{k.n, k.c};
  v.pos = k.d > 1 ? std::vector<std::int64_t>{k.n, k.d} : std::vector<std::int64_t>{k.n};
  const std::int64_t P = k.n * k.d, total = P * k.c;
  v.x.resize(static_cast<std::size_t>(total));
  for (auto& e : v.x) e = normal(rng);
  v.t.resize(static_cast<std::size_t>(P));
  for (std::int64_t p = 0; p < P; ++p) v.t[p] = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(k.c));
  auto at = [&](std::int64_t p, std::int64_t c) -> float& {  // position p = (i, j) of [n, d]
    const std::int64_t i = p / k.d, j = p % k.d;
    return v.x[static_cast<std::size_t>((i * k.c + c) * k.d + j)];
  };
  if (k.ignore) v.t[0] = -100;
  if (k.dominant)  // the target far above the rest: rest below 2^-40, recomputed in float64
    for (std::int64_t p = 0; p < P; ++p) at(p, v.t[p]) = 80.0f;
  if (k.special && P >= 3) {
    at(1, (v.t[1] + 1) % k.c) = std::numeric_limits<float>::quiet_NaN();
    at(2, (v.t[2] + k.c / 2 + 1) % k.c) = -inf;
    at(P - 1, k.c - 1) = 60.0f;  // max in the last shard
  }
  if (k.prob) {
    v.q.resize(v.x.size());
    for (auto& e : v.q) e = unit(rng);
  }
  if (k.weights) {
    v.w.resize(static_cast<std::size_t>(k.c));
    for (auto& e : v.w) e = 0.25f + unit(rng);
  }
  v.up.resize(static_cast<std::size_t>(P));
  for (auto& e : v.up) e = 0.5f + unit(rng);
  return v;
}

struct result {
  std::vector<float> loss, grad;
};

result run(const case_t& k, const data& v, xent::reduction r, bool with_grad, const xent::implementation& impl) {
  xent::options opt;
  opt.reduce = r;
  opt.label_smoothing = k.eps;
  if (!v.w.empty()) opt.weight = xent::view(v.w.data(), {k.c});
  const xent::tensor_view logits = xent::view(v.x.data(), v.shape);
  const xent::tensor_view target = k.prob ? xent::view(v.q.data(), v.shape) : xent::view(v.t.data(), v.pos);
  result res;
  const bool none = r == xent::reduction::none;
  res.loss.assign(none ? v.up.size() : 1, -7.0f);
  const xent::tensor_view out = none ? xent::view(res.loss.data(), v.pos) : xent::view(res.loss.data(), {});
  if (!with_grad) {
    xent::cross_entropy(logits, target, out, opt, &impl);
    return res;
  }
  res.grad.assign(v.x.size(), 12345.0f);
  const xent::tensor_view grad = xent::view(res.grad.data(), v.shape);
  const xent::tensor_view up = xent::view(v.up.data(), v.pos);
  xent::cross_entropy_forward_backward(logits, target, out, grad, opt, none ? &up : nullptr, &impl);
  return res;
}

// Bitwise, NaN payloads aside (a NaN equals a NaN).
std::string differs(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return "sizes differ";
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      std::string m = "element ";
      m += std::to_string(i);
      m += ": mpi ";
      m += std::to_string(a[i]);
      m += " (bits ";
      m += std::to_string(std::bit_cast<std::uint32_t>(a[i]));
      m += "), openmp ";
      m += std::to_string(b[i]);
      m += " (bits ";
      m += std::to_string(std::bit_cast<std::uint32_t>(b[i]));
      m += ")";
      return m;
    }
  }
  return "";
}

std::vector<case_t> cases() {
  std::vector<case_t> v;
  // 70000 classes: five chunks of openmp's grid (the last one short).
  for (std::int64_t c : {std::int64_t{5}, std::int64_t{1000}, std::int64_t{70000}}) {
    const std::int64_t n = c > 10000 ? 3 : 9;
    auto nm = [c](const char* suffix) {
      std::string r = "c";
      r += std::to_string(c);
      r += suffix;
      return r;
    };
    v.push_back({nm("_plain"), n, c});
    v.push_back({nm("_weights_ignore"), n, c, 1, false, true, true});
    v.push_back({nm("_smoothing"), n, c, 1, false, true, true, false, false, 0.1});
    v.push_back({nm("_prob"), n, c, 1, true, true, false, false, false, 0.2});
    v.push_back({nm("_special"), n, c, 1, false, false, false, true});
    v.push_back({nm("_dominant"), n, c, 1, false, false, false, false, true});
    v.push_back({nm("_dominant_smoothing"), n, c, 1, false, true, false, false, true, 0.05});
  }
  v.push_back({"nchw_c7", 2, 7, 5, false, true, true});
  v.push_back({"nchw_c70000_prob", 1, 70000, 2, true, false, false, false, false, 0.0});
  return v;
}

class mpi_vs_openmp : public ::testing::TestWithParam<case_t> {};

TEST_P(mpi_vs_openmp, bitwise) {
  const xent::implementation* mpi = xent::find_implementation("mpi");
  const xent::implementation* omp = xent::find_implementation("openmp");
  ASSERT_NE(omp, nullptr);
  if (!xent::mpi::built()) GTEST_SKIP() << "built without MPI";
  ASSERT_NE(mpi, nullptr) << "built with MPI but no mpi implementation registered";
  const case_t& k = GetParam();
  const data v = make(k);
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (auto r : {xent::reduction::none, xent::reduction::mean, xent::reduction::sum})
      for (bool g : {false, true}) {
        const result a = run(k, v, r, g, *mpi), b = run(k, v, r, g, *omp);
        std::string where = k.name;
        where += " reduction ";
        where += xent::to_string(r);
        where += g ? " with gradient, " : " loss only, ";
        where += std::to_string(threads);
        where += " threads, rank ";
        where += std::to_string(xent::mpi::rank());
        where += " of ";
        where += std::to_string(xent::mpi::size());
        EXPECT_EQ(differs(a.loss, b.loss), "") << "loss, " << where;
        EXPECT_EQ(differs(a.grad, b.grad), "") << "gradient, " << where;
      }
  }
}

INSTANTIATE_TEST_SUITE_P(all, mpi_vs_openmp, ::testing::ValuesIn(cases()),
                         [](const auto& p) { return p.param.name; });

// The traffic of the statistics is a few doubles per row and piece, never the logits.
TEST(mpi_traffic, per_rank_bytes_are_o_of_rows) {
  const xent::implementation* mpi = xent::find_implementation("mpi");
  ASSERT_NE(mpi, nullptr);
  if (!xent::mpi::launched()) GTEST_SKIP() << "not started by mpirun (no exchange)";
  const case_t k{"traffic", 4, 70000};
  const data v = make(k);
  run(k, v, xent::reduction::mean, true, *mpi);
  const xent::mpi::traffic t = xent::mpi::last_traffic();
  const int ranks = xent::mpi::size();
  // The buffers' check (one int each way) and round 1 only (no row needs the
  // float64 rest): one header of 3 doubles per row and rank and 4 doubles per
  // row and piece (5 chunks in all over the ranks), each rank receiving all
  // but its own.
  EXPECT_EQ(t.collectives, 2);
  const std::int64_t pieces = 5, all = k.n * (3 * ranks + 4 * pieces) * 8;
  EXPECT_EQ(t.bytes_received - 4, all - (t.bytes_sent - 4));
  EXPECT_LT(t.bytes_sent, k.n * k.c * 4 / 100) << "statistics must be far smaller than the logits";
}

}  // namespace

namespace {

// A rank that hangs or dies, on request (XENT_MPI_TEST_FAULT=hang or exit on
// rank 1): the others wait in the mpi implementation's collective, and the run
// must end with mpirun's error, not hang (tests/CMakeLists.txt checks that).
TEST(mpi_fault, one_rank_hangs_or_exits) {
  const char* fault = std::getenv("XENT_MPI_TEST_FAULT");
  if (!fault) GTEST_SKIP() << "only with XENT_MPI_TEST_FAULT=hang or exit";
  const xent::implementation* mpi = xent::find_implementation("mpi");
  ASSERT_TRUE(mpi && xent::mpi::launched());
  if (xent::mpi::rank() == 1) {
    if (std::string(fault) == "exit") std::_Exit(3);
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  const case_t k{"fault", 2, 1000};
  const data v = make(k);
  xent::mpi::barrier();
  run(k, v, xent::reduction::mean, true, *mpi);
  FAIL() << "the collective returned although rank 1 never joined it";
}

}  // namespace

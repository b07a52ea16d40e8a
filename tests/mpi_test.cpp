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

// xent::mpi::cross_entropy_shard: each rank passes only its shard (logits
// [N, C_r], weights and probabilities sliced, targets global). On openmp's
// chunk grid, the loss on every rank and each rank's gradient columns are
// openmp's on the whole problem, bit for bit.
TEST(mpi_shard_api, each_rank_passes_its_shard_only) {
  const xent::implementation* omp = xent::find_implementation("openmp");
  ASSERT_NE(omp, nullptr);
  const int me = xent::mpi::rank(), ranks = xent::mpi::size();
  int ran = 0;
  for (const case_t& k : cases()) {
    if (k.d != 1) continue;
    const auto mine = xent::mpi::shard(k.c, me, ranks, xent::mpi::sharding::chunks);
    bool all_hold_classes = true;  // else a rank has no class (C below openmp's chunking): not callable
    for (int r = 0; r < ranks; ++r) {
      const auto g = xent::mpi::shard(k.c, r, ranks, xent::mpi::sharding::chunks);
      all_hold_classes = all_hold_classes && g.last > g.first;
    }
    if (!all_hold_classes) continue;
    ++ran;
    const data v = make(k);
    const std::int64_t Cr = mine.last - mine.first;
    std::vector<float> x(static_cast<std::size_t>(k.n * Cr)), q, w;
    if (k.prob) q.resize(x.size());
    for (std::int64_t i = 0; i < k.n; ++i)
      for (std::int64_t j = 0; j < Cr; ++j) {
        x[i * Cr + j] = v.x[i * k.c + mine.first + j];
        if (k.prob) q[i * Cr + j] = v.q[i * k.c + mine.first + j];
      }
    if (!v.w.empty()) w.assign(v.w.begin() + mine.first, v.w.begin() + mine.last);
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      for (auto r : {xent::reduction::none, xent::reduction::mean, xent::reduction::sum})
        for (bool g : {false, true}) {
          const result whole = run(k, v, r, g, *omp);
          xent::options opt;
          opt.reduce = r;
          opt.label_smoothing = k.eps;
          if (!w.empty()) opt.weight = xent::view(w.data(), {Cr});
          const bool none = r == xent::reduction::none;
          result part;
          part.loss.assign(none ? v.up.size() : 1, -7.0f);
          part.grad.assign(g ? x.size() : 0, 12345.0f);
          const xent::tensor_view out = none ? xent::view(part.loss.data(), v.pos) : xent::view(part.loss.data(), {});
          const xent::tensor_view grad = xent::view(part.grad.data(), {k.n, Cr});
          const xent::tensor_view up = xent::view(v.up.data(), v.pos);
          xent::mpi::cross_entropy_shard(xent::view(x.data(), {k.n, Cr}),
                                         k.prob ? xent::view(q.data(), {k.n, Cr}) : xent::view(v.t.data(), v.pos),
                                         mine.first, k.c, out, g ? &grad : nullptr, opt, g && none ? &up : nullptr);
          std::vector<float> columns;  // openmp's gradient, this rank's classes
          if (g)
            for (std::int64_t i = 0; i < k.n; ++i)
              for (std::int64_t j = 0; j < Cr; ++j) columns.push_back(whole.grad[i * k.c + mine.first + j]);
          std::string where = k.name;
          where += " reduction ";
          where += xent::to_string(r);
          where += g ? " with gradient, " : " loss only, ";
          where += std::to_string(threads);
          where += " threads, rank ";
          where += std::to_string(me);
          where += " of ";
          where += std::to_string(ranks);
          EXPECT_EQ(differs(part.loss, whole.loss), "") << "loss, " << where;
          EXPECT_EQ(differs(part.grad, columns), "") << "gradient, " << where;
        }
    }
  }
  // 70000 classes are five chunks: every rank holds some up to five ranks.
  if (ranks <= 5) {
    EXPECT_GE(ran, 7) << "the 70000-class cases ran";
  }
}

// Shards anywhere (C/K classes each): the bits of the registered `mpi` with
// XENT_MPI_SHARDS=even, whose accuracy the property suite checks.
TEST(mpi_shard_api, even_shards_match_the_registered_form) {
  const xent::implementation* mpi = xent::find_implementation("mpi");
  ASSERT_NE(mpi, nullptr);
  const int me = xent::mpi::rank(), ranks = xent::mpi::size();
  ::setenv("XENT_MPI_SHARDS", "even", 1);
  int ran = 0;
  for (const case_t& k : cases()) {
    if (k.d != 1 || k.c < ranks) continue;
    ++ran;
    const data v = make(k);
    const auto mine = xent::mpi::shard(k.c, me, ranks, xent::mpi::sharding::even);
    const std::int64_t Cr = mine.last - mine.first;
    std::vector<float> x, q, w;
    for (std::int64_t i = 0; i < k.n; ++i)
      for (std::int64_t j = mine.first; j < mine.last; ++j) {
        x.push_back(v.x[i * k.c + j]);
        if (k.prob) q.push_back(v.q[i * k.c + j]);
      }
    if (!v.w.empty()) w.assign(v.w.begin() + mine.first, v.w.begin() + mine.last);
    for (auto r : {xent::reduction::none, xent::reduction::mean}) {
      const result whole = run(k, v, r, true, *mpi);
      xent::options opt;
      opt.reduce = r;
      opt.label_smoothing = k.eps;
      if (!w.empty()) opt.weight = xent::view(w.data(), {Cr});
      const bool none = r == xent::reduction::none;
      std::vector<float> loss(none ? v.up.size() : 1, -7.0f), grad(x.size(), 12345.0f), columns;
      const xent::tensor_view g = xent::view(grad.data(), {k.n, Cr}), up = xent::view(v.up.data(), v.pos);
      xent::mpi::cross_entropy_shard(xent::view(x.data(), {k.n, Cr}),
                                     k.prob ? xent::view(q.data(), {k.n, Cr}) : xent::view(v.t.data(), v.pos),
                                     mine.first, k.c, none ? xent::view(loss.data(), v.pos) : xent::view(loss.data(), {}),
                                     &g, opt, none ? &up : nullptr);
      for (std::int64_t i = 0; i < k.n; ++i)
        for (std::int64_t j = mine.first; j < mine.last; ++j) columns.push_back(whole.grad[i * k.c + j]);
      EXPECT_EQ(differs(loss, whole.loss), "") << k.name << " loss, " << xent::to_string(r) << ", rank " << me;
      EXPECT_EQ(differs(grad, columns), "") << k.name << " gradient, " << xent::to_string(r) << ", rank " << me;
    }
  }
  ::unsetenv("XENT_MPI_SHARDS");
  EXPECT_GE(ran, 7);
}

// Shards that do not follow one another, or a bad argument on one rank: an
// xent::error on every rank (nothing written), never a rank left waiting.
TEST(mpi_shard_api, bad_shards_are_an_error_on_every_rank) {
  const int me = xent::mpi::rank(), ranks = xent::mpi::size();
  const case_t k{"shards", 3, 70000};
  const data v = make(k);
  auto call = [&](std::int64_t first, std::int64_t Cr) {
    float loss = -7.0f;
    std::vector<float> x(static_cast<std::size_t>(k.n * Cr), 0.5f);
    xent::mpi::cross_entropy_shard(xent::view(x.data(), {k.n, Cr}), xent::view(v.t.data(), v.pos), first, k.c,
                                   xent::view(&loss, {}), nullptr, {});
    return loss;
  };
  const auto mine = xent::mpi::shard(k.c, me, ranks, xent::mpi::sharding::chunks);
  // Every rank claims the first classes: overlapping shards (one rank: too few classes).
  EXPECT_THROW(call(0, mine.last - mine.first == k.c ? k.c - 1 : std::max<std::int64_t>(1, mine.last - mine.first)),
               xent::error);
  // The last rank's logits are not 2-D: it says why, the others that it refused.
  float loss = -7.0f;
  std::vector<float> x(static_cast<std::size_t>(k.n * (mine.last - mine.first)), 0.5f);
  const bool bad = me == ranks - 1;
  try {
    xent::mpi::cross_entropy_shard(bad ? xent::view(x.data(), {static_cast<std::int64_t>(x.size())})
                                       : xent::view(x.data(), {k.n, mine.last - mine.first}),
                                   xent::view(v.t.data(), v.pos), mine.first, k.c, xent::view(&loss, {}), nullptr, {});
    ADD_FAILURE() << "accepted";
  } catch (const xent::error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(bad ? "2-D" : "rejected its arguments"), std::string::npos) << m;
  }
  EXPECT_EQ(loss, -7.0f) << "nothing written";
  // The right shards afterwards: the ranks are still in step.
  EXPECT_TRUE(std::isfinite(call(mine.first, mine.last - mine.first)));
}

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

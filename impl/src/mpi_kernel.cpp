// `mpi`: vocabulary-parallel cross-entropy. Each rank holds a contiguous
// shard of the class axis (xent::mpi::shard) and reads only those classes;
// the targets are global. Per row, in two rounds of one MPI_Allgatherv each:
//   1. every rank's statistics of its pieces (a piece: the shard cut by the
//      openmp kernel's fixed chunk grid, simd_row.hpp) -- block-online max,
//      ties, rest, and for smoothed/probability gradients the target masses --
//      plus the target's logit and weight from the rank that owns the target;
//   2. when the row needs them, the sums that need the row max (the float64
//      rest, Σ w (M - x), the probability targets' sums).
// Every rank folds the pieces in class order exactly as the openmp kernel
// folds its chunks, so all ranks hold the same row constants and the same
// loss; each writes its own shard of the gradient. When the shard boundaries
// fall on the chunk grid, pieces are chunks and every bit is the openmp
// kernel's, for any number of ranks and threads. Communication per rank and
// row is a few doubles per piece: O(N), never O(N·C).
//
// The registered implementation takes the whole problem on every rank (each
// reads its shard of it) and then gathers the gradient shards so that every
// rank returns the whole result, as the property suite and `xent check`
// expect; that gather is O(N·C) and counted apart (traffic::gather_bytes).
// Every rank must make the same calls in the same order (each is a
// collective); a rank that fails or hangs is ended by mpirun's timeout.
// In a process not started by mpirun it is the only rank and starts no MPI
// runtime (the exchanges are copies), so it is registered and verified
// everywhere like the other kernels; so it is, under mpirun, while a
// single_rank_scope lives (`xent report`, whose ranks measure different
// scenarios).
#include <mpi.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "pairwise_sum.hpp"
#include "row_driver.hpp"
#include "simd_row.hpp"
#include "xent/error.hpp"
#include "xent/kernel/mpi.hpp"

namespace xent {
namespace mpi {
namespace {

traffic last;

bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  int init = 0;
  MPI_Initialized(&init);
  return init != 0;
}

void finalize_at_exit() {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

// MPI_COMM_WORLD's duplicate, so that our collectives never match a user's.
MPI_Comm comm() {
  static MPI_Comm c = [] {
    int init = 0;
    MPI_Initialized(&init);
    if (!init) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      std::atexit(finalize_at_exit);
    }
    MPI_Comm d;
    MPI_Comm_dup(MPI_COMM_WORLD, &d);
    return d;
  }();
  return c;
}

}  // namespace

bool built() { return true; }
bool launched() { return launched_by_mpirun(); }
int rank() {
  if (!launched()) return 0;
  int r = 0;
  MPI_Comm_rank(comm(), &r);
  return r;
}
int size() {
  if (!launched()) return 1;
  int s = 1;
  MPI_Comm_size(comm(), &s);
  return s;
}
void barrier() {
  if (launched()) MPI_Barrier(comm());
}
traffic last_traffic() { return last; }

int ranks_on_this_host() {
  if (!launched()) return 1;
  static const int n = [] {
    MPI_Comm host;
    MPI_Comm_split_type(comm(), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host);
    int s = 1;
    MPI_Comm_size(host, &s);
    MPI_Comm_free(&host);
    return s;
  }();
  return n;
}

namespace {

int byte_count(const std::string& s) {
  if (s.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw error("mpi", "a message of " + std::to_string(s.size()) + " bytes exceeds MPI's int count");
  return static_cast<int>(s.size());
}

// Displacements of `counts`, checked against MPI's int range.
std::vector<int> displacements(const std::vector<int>& counts) {
  std::vector<int> d(counts.size());
  std::int64_t at = 0;
  for (std::size_t r = 0; r < counts.size(); ++r) {
    if (at > std::numeric_limits<int>::max()) throw error("mpi", "the gathered messages exceed MPI's int count");
    d[r] = static_cast<int>(at);
    at += counts[r];
  }
  return d;
}

std::vector<std::string> split(const std::string& all, const std::vector<int>& counts, const std::vector<int>& displs) {
  std::vector<std::string> out;
  for (std::size_t r = 0; r < counts.size(); ++r) out.push_back(all.substr(displs[r], counts[r]));
  return out;
}

}  // namespace

std::vector<std::string> all_gather(const std::string& mine) {
  if (!launched()) return {mine};
  const MPI_Comm c = comm();
  const int n = byte_count(mine);
  std::vector<int> counts(static_cast<std::size_t>(size()));
  MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, c);
  const std::vector<int> displs = displacements(counts);
  std::string all(static_cast<std::size_t>(std::int64_t{displs.back()} + counts.back()), '\0');
  MPI_Allgatherv(mine.data(), n, MPI_CHAR, all.data(), counts.data(), displs.data(), MPI_CHAR, c);
  return split(all, counts, displs);
}

std::vector<std::string> gather_to_root(const std::string& mine) {
  if (!launched()) return {mine};
  const MPI_Comm c = comm();
  const int n = byte_count(mine), me = rank();
  std::vector<int> counts(me == 0 ? static_cast<std::size_t>(size()) : 0);
  MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, c);
  if (me != 0) {
    MPI_Gatherv(mine.data(), n, MPI_CHAR, nullptr, nullptr, nullptr, MPI_CHAR, 0, c);
    return {};
  }
  const std::vector<int> displs = displacements(counts);
  std::string all(static_cast<std::size_t>(std::int64_t{displs.back()} + counts.back()), '\0');
  MPI_Gatherv(mine.data(), n, MPI_CHAR, all.data(), counts.data(), displs.data(), MPI_CHAR, 0, c);
  return split(all, counts, displs);
}

}  // namespace mpi

namespace {

using simd::chunk_stats;
using simd::mass_stats;

// Pieces of [first, last): the range cut by the openmp kernel's chunk grid.
struct piece {
  std::int64_t off, len;
};
std::vector<piece> pieces_of(std::int64_t C, mpi::class_range r) {
  const std::int64_t chunk = C >= simd::kLongRow ? simd::kChunk : (C > 0 ? C : 1);
  std::vector<piece> v;
  for (std::int64_t a = r.first; a < r.last;) {
    const std::int64_t b = std::min(r.last, (a / chunk + 1) * chunk);
    v.push_back({a, b - a});
    a = b;
  }
  return v;
}

// Fixed-size records of doubles (MPI_DOUBLE): round 1 per row a header
// {owner, x_t, w_t} then per piece {max, nan, ties, rest[, mass total, max,
// rest, any]}; round 2 per piece {rest_exact, gap, mass}.
constexpr int kHeader = 3, kStats = 4, kMass = 4, kRound2 = 3;

struct exchange {
  MPI_Comm c;
  int ranks;
  std::vector<int> counts, displs;  // in doubles
  mpi::traffic& t;
  // Every rank's `mine` (counts[r] doubles each) into `all`, in rank order.
  void allgather(const std::vector<double>& mine, std::vector<double>& all) {
    if (c == MPI_COMM_NULL) {  // one process without mpirun: the only rank
      all = mine;
      return;
    }
    const int me = static_cast<int>(mine.size());
    all.resize(static_cast<std::size_t>(displs.back() + counts.back()));
    const auto t0 = std::chrono::steady_clock::now();
    check(MPI_Allgatherv(mine.data(), me, MPI_DOUBLE, all.data(), counts.data(), displs.data(), MPI_DOUBLE, c));
    t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t.collectives += 1;
    t.bytes_sent += std::int64_t{me} * 8;
    t.bytes_received += (static_cast<std::int64_t>(all.size()) - me) * 8;
  }
  static void check(int rc) {
    if (rc != MPI_SUCCESS) throw error("mpi", "MPI_Allgatherv failed (MPI error " + std::to_string(rc) + ")");
  }
  void set_counts(const std::vector<std::int64_t>& per_rank) {
    counts.resize(static_cast<std::size_t>(ranks));
    displs.resize(static_cast<std::size_t>(ranks));
    std::int64_t d = 0;
    for (int r = 0; r < ranks; ++r) {
      if (per_rank[r] > std::numeric_limits<int>::max() || d > std::numeric_limits<int>::max())
        throw error("mpi", "a rank's statistics exceed MPI's int count; use fewer rows per call");
      counts[r] = static_cast<int>(per_rank[r]);
      displs[r] = static_cast<int>(d);
      d += per_rank[r];
    }
  }
};

// Σ_c w_c in class order over all ranks (index targets with smoothing): the
// running sum passes from rank to rank, so it is the openmp kernel's
// sequential sum bit for bit; the last rank broadcasts it.
// The problem's weights start at class `base` (0, or the shard's first class
// when the problem is the shard).
double chained_weight_total(const problem& pr, mpi::class_range mine, std::int64_t base, MPI_Comm c, int me,
                            int ranks) {
  double s = 0.0;
  if (c == MPI_COMM_NULL) {
    for (std::int64_t k = mine.first; k < mine.last; ++k) s += static_cast<double>(pr.weight_at(k - base));
    return s;
  }
  if (me > 0) MPI_Recv(&s, 1, MPI_DOUBLE, me - 1, 17, c, MPI_STATUS_IGNORE);
  for (std::int64_t k = mine.first; k < mine.last; ++k) s += static_cast<double>(pr.weight_at(k - base));
  if (me + 1 < ranks) MPI_Send(&s, 1, MPI_DOUBLE, me + 1, 17, c);
  MPI_Bcast(&s, 1, MPI_DOUBLE, ranks - 1, c);
  return s;
}

// The row's constants after the folds (the same on every rank).
struct row_state {
  chunk_stats st;
  mass_stats ms;
  bool owned = false;
  double xt = 0.0, wt = 0.0;
  bool undefined = false;  // NaN or +inf logit, or all -inf: loss and gradient NaN
  bool round2 = false;
  double rest = 0.0;
};

// This rank's shard of one row, contiguous (gathered when strided).
struct local_row {
  const float* x;
  const float* q;
};

// Two forms. The whole problem on every rank (the registered implementation):
// each rank reads its shard (xent::mpi::shard) of the problem's buffers.
// Or, given `ranges` (every rank's shard), the problem is this rank's shard:
// its logits, probabilities, weights and gradient start at the shard's first
// class (xent::mpi::cross_entropy_shard); classes and targets stay global.
class sharded_run {
 public:
  sharded_run(const problem& pr, bool with_grad, MPI_Comm c, mpi::traffic& t,
              const std::vector<mpi::class_range>* ranges = nullptr)
      : pr_(pr), with_grad_(with_grad), c_(c), t_(t) {
    if (c != MPI_COMM_NULL) {
      MPI_Comm_rank(c, &me_);
      MPI_Comm_size(c, &ranks_);
    }
    const std::int64_t C = pr.classes;
    const mpi::sharding s = ranges ? mpi::sharding::chunks : mpi::current_sharding();
    for (int r = 0; r < ranks_; ++r) {
      ranges_.push_back(ranges ? (*ranges)[static_cast<std::size_t>(r)] : mpi::shard(C, r, ranks_, s));
      // No row, no piece (an empty batch may declare any C).
      pieces_.push_back(pr.positions > 0 ? pieces_of(C, ranges_.back()) : std::vector<piece>{});
    }
    mine_ = ranges_[me_];
    base_ = ranges ? mine_.first : 0;
    total_pieces_ = 0;
    for (const auto& p : pieces_) total_pieces_ += static_cast<std::int64_t>(p.size());
    eps_ = pr.label_smoothing;
    index_ = pr.target == target_kind::index;
    mass_ = with_grad && (eps_ > 0.0 || !index_);  // smoothed_grad's target masses
    stored_ = with_grad && index_ && eps_ == 0.0;
  }

  void run() {
    const problem& pr = pr_;
    const std::int64_t N = pr.positions, C = pr.classes, L = mine_.last - mine_.first;
    if (N == 0) {
      if (pr.reduce != reduction::none) write_reduction(pr, nullptr, std::numeric_limits<double>::quiet_NaN());
      return;
    }
    if (index_ && eps_ > 0.0) wtot_ = chained_weight_total(pr, mine_, base_, c_, me_, ranks_);
    const auto& mine = pieces_[me_];
    const std::int64_t P = static_cast<std::int64_t>(mine.size());
    const int stats = kStats + (mass_ ? kMass : 0);
    rows_.assign(static_cast<std::size_t>(N), row_state{});

    // Round 1: per row, the header and every piece's statistics.
    exchange ex{c_, ranks_, {}, {}, t_};
    std::vector<std::int64_t> per_rank;
    for (const auto& p : pieces_) per_rank.push_back(N * (kHeader + static_cast<std::int64_t>(p.size()) * stats));
    ex.set_counts(per_rank);
    std::vector<double> send(static_cast<std::size_t>(per_rank[me_])), all;
    const double omeps = 1.0 - eps_, eps_c = eps_ / static_cast<double>(C);
    reserve(L);
    parallel_rows([&](std::int64_t p) {
      double* rec = send.data() + p * (kHeader + P * stats);
      rec[0] = rec[1] = rec[2] = 0.0;
      if (!pr.counted(p)) {
        for (std::int64_t k = 0; k < P * stats; ++k) rec[kHeader + k] = 0.0;
        return;
      }
      const local_row lr = row(p);
      std::int64_t t = -1;
      double bt = 0.0;
      if (index_) {
        t = pr.target_at(p);
        if (t >= mine_.first && t < mine_.last) {
          rec[0] = 1.0;
          rec[1] = static_cast<double>(lr.x[t - mine_.first]);
          rec[2] = static_cast<double>(pr.weight_at(t - base_));
          bt = rec[2] * (omeps + eps_c);  // read only by t's owner
        }
      }
      for (std::int64_t k = 0; k < P; ++k) {
        const std::int64_t off = mine[k].off - mine_.first, n = mine[k].len;
        const chunk_stats s = simd::scan_chunk(lr.x + off, n);
        double* r = rec + kHeader + k * stats;
        r[0] = static_cast<double>(s.max);
        r[1] = s.nan ? 1.0 : 0.0;
        r[2] = s.ties;
        r[3] = s.rest;
        if (mass_) {
          const mass_stats m = simd::target_mass(lr.q ? lr.q + off : nullptr, w_ ? w_ + off : nullptr, n, omeps,
                                                 eps_c, t - mine[k].off, bt);
          r[4] = m.total;
          r[5] = m.max;
          r[6] = m.rest;
          r[7] = m.any ? 1.0 : 0.0;
        }
      }
    });
    ex.allgather(send, all);
    bool any_round2 = false;
    for (std::int64_t p = 0; p < N; ++p) {
      if (!pr.counted(p)) continue;
      row_state& rs = rows_[p];
      std::int64_t seen = 0;
      for (int r = 0; r < ranks_; ++r) {
        const std::int64_t Pr = static_cast<std::int64_t>(pieces_[r].size());
        const double* rec = all.data() + ex.displs[r] + p * (kHeader + Pr * stats);
        if (rec[0] != 0.0) {
          rs.owned = true;
          rs.xt = rec[1];
          rs.wt = rec[2];
        }
        for (std::int64_t k = 0; k < Pr; ++k, ++seen) {
          const double* s = rec + kHeader + k * stats;
          chunk_stats cs;
          cs.max = static_cast<float>(s[0]);
          cs.nan = s[1] != 0.0;
          cs.ties = s[2];
          cs.rest = s[3];
          // One piece is the row (openmp's single chunk): taken as is.
          if (total_pieces_ == 1) rs.st = cs;
          else simd::merge_chunk_stats(rs.st, cs);
          if (mass_) {
            const mass_stats m{s[4], s[5], s[6], s[7] != 0.0};
            if (total_pieces_ == 1) rs.ms = m;
            else simd::merge_mass_stats(rs.ms, m);
          }
        }
      }
      rs.undefined = rs.st.nan || std::isinf(rs.st.max);
      if (rs.undefined) continue;
      const double ties_rest = rs.st.ties - 1.0;
      rs.rest = rs.st.rest + ties_rest;
      const bool cancelling = with_grad_ && (eps_ > 0.0 || !index_);
      rs.round2 = rs.rest < simd::kTinyRest || cancelling;
      any_round2 = any_round2 || rs.round2 || (index_ && eps_ > 0.0) || !index_;
    }

    // Round 2 (when some row needs it): the sums that need the row max.
    std::vector<double> gaps(static_cast<std::size_t>(N), 0.0), probmass(gaps.size(), 0.0);
    if (any_round2) {
      per_rank.clear();
      for (const auto& p : pieces_) per_rank.push_back(N * static_cast<std::int64_t>(p.size()) * kRound2);
      ex.set_counts(per_rank);
      send.assign(static_cast<std::size_t>(per_rank[me_]), 0.0);
      parallel_rows([&](std::int64_t p) {
        const row_state& rs = rows_[p];
        if (!pr.counted(p) || rs.undefined) return;
        const local_row lr = row(p);
        const float M = rs.st.max;
        for (std::int64_t k = 0; k < P; ++k) {
          const std::int64_t off = mine[k].off - mine_.first, n = mine[k].len;
          double* r = send.data() + (p * P + k) * kRound2;
          if (rs.round2) r[0] = simd::rest_exact(lr.x + off, n, M);
          if (index_ && eps_ > 0.0) r[1] = simd::weighted_gap(lr.x + off, w_ ? w_ + off : nullptr, n, M);
          if (!index_) simd::prob_sums(lr.x + off, lr.q + off, w_ ? w_ + off : nullptr, n, M, omeps, eps_c, &r[1], &r[2]);
        }
      });
      ex.allgather(send, all);
      for (std::int64_t p = 0; p < N; ++p) {
        row_state& rs = rows_[p];
        if (!pr.counted(p) || rs.undefined) continue;
        // openmp's chunked_sum: one chunk taken as is, else 0 + each in order;
        // its probability sums always start from 0.
        double re = 0.0, gap = 0.0, mass = 0.0;
        for (int r = 0; r < ranks_; ++r) {
          const std::int64_t Pr = static_cast<std::int64_t>(pieces_[r].size());
          for (std::int64_t k = 0; k < Pr; ++k) {
            const double* v = all.data() + ex.displs[r] + (p * Pr + k) * kRound2;
            if (total_pieces_ == 1) {
              re = v[0];
              gap = index_ ? v[1] : 0.0 + v[1];
            } else {
              re += v[0];
              gap += v[1];
            }
            mass += v[2];
          }
        }
        if (rs.round2) rs.rest = (rs.st.ties - 1.0) + re;
        gaps[p] = gap;
        probmass[p] = mass;
      }
    }

    // The losses (every rank), then this rank's shard of the gradient.
    const bool none = pr.reduce == reduction::none;
    std::vector<double> weights(static_cast<std::size_t>(N), 0.0), losses(weights.size(), 0.0);
    for (std::int64_t p = 0; p < N; ++p) {
      const row_state& rs = rows_[p];
      if (index_ && pr.counted(p)) weights[p] = rs.wt;
      if (!pr.counted(p)) continue;
      losses[p] = loss_of(rs, gaps[p], probmass[p]);
    }
    double denominator = 1.0;
    if (pr.reduce == reduction::mean)
      denominator = index_ ? pairwise_sum(weights.data(), weights.size()) : static_cast<double>(N);
    if (with_grad_) {
      parallel_rows([&](std::int64_t p) {
        float* g = pr.grad_row(p) + (mine_.first - base_) * pr.grad_class_stride;
        if (!pr.counted(p)) {
          for (std::int64_t k = 0; k < L; ++k) g[k * pr.grad_class_stride] = 0.0f;
          return;
        }
        grad_row(p, g, static_cast<double>(pr.upstream_at(p)) / denominator);
      });
    }
    if (none) {
      for (std::int64_t p = 0; p < N; ++p) *pr.loss_at(p) = static_cast<float>(losses[p]);
    } else {
      write_reduction(pr, losses.data(), pr.reduce == reduction::mean ? denominator : 1.0);
    }
  }

 private:
  // openmp's row loss from the folded constants.
  double loss_of(const row_state& rs, double gaps, double mass) const {
    if (rs.undefined) return std::numeric_limits<double>::quiet_NaN();
    const double log_sum = simd::log1p_f64(rs.rest);
    if (!index_) return gaps + mass * log_sum;
    const double Md = static_cast<double>(rs.st.max);
    double loss = rs.wt * ((Md - rs.xt) + log_sum);
    if (eps_ > 0.0) {
      const double omeps = 1.0 - eps_, eps_c = eps_ / static_cast<double>(pr_.classes);
      loss = omeps * loss + eps_c * (gaps + wtot_ * log_sum);
    }
    return loss;
  }

  // This rank's classes of row p's gradient, as openmp writes them.
  void grad_row(std::int64_t p, float* g, double scale) const {
    const problem& pr = pr_;
    const row_state& rs = rows_[p];
    const std::int64_t L = mine_.last - mine_.first, gs = pr.grad_class_stride;
    const bool scatter = gs != 1;
    if (rs.undefined) {
      for (std::int64_t k = 0; k < L; ++k) g[k * gs] = std::numeric_limits<float>::quiet_NaN();
      return;
    }
    const local_row lr = row(p);
    // Read before an in-place gradient overwrites the shard (row_driver.hpp):
    // with an infinite scale, the classes whose underflowing p_j A must be ±inf.
    infinite_scale_row fix;
    if (std::isinf(scale)) {
      const double omeps_f = 1.0 - eps_, eps_c_f = eps_ / static_cast<double>(pr.classes);
      const std::int64_t tg = index_ ? pr.target_at(p) : -1;
      // log Σ_{i≠k} e_i from the row's global sums (the max class: log of
      // its rest, -inf where that underflowed, which leaves its sign to A - b_k).
      const double m = static_cast<double>(rs.st.max);
      fix = infinite_scale_classes(
          L, scale, stored_ ? rs.wt : rs.ms.total, m, [&](std::int64_t k) { return static_cast<double>(lr.x[k]); },
          [&](std::int64_t k) {
            const double qk = lr.q ? static_cast<double>(lr.q[k]) : (mine_.first + k == tg ? 1.0 : 0.0);
            return (w_ ? static_cast<double>(w_[k]) : 1.0) * (omeps_f * qk + eps_c_f);
          },
          [&](std::int64_t k) {
            const double x = static_cast<double>(lr.x[k]);
            return x == m ? std::log(rs.rest) : std::log(1.0 + rs.rest - std::exp(x - m));
          });
    }
    float* gout = scatter ? simd::row_scratch(simd::kRowG, L) : g;
    const float M = rs.st.max;
    const double Md = static_cast<double>(M);
    const double sum = 1.0 + rs.rest;
    const double omeps = 1.0 - eps_, eps_c = eps_ / static_cast<double>(pr.classes);
    const std::int64_t t = index_ ? pr.target_at(p) : -1;
    for (const piece& pc : pieces_[me_]) {
      const std::int64_t off = pc.off - mine_.first, n = pc.len;
      if (stored_) {
        float* v = simd::row_scratch(simd::kRowV, L);
        float* e = simd::row_scratch(simd::kRowE, L);
        float* bmax = simd::row_scratch(simd::kRowBlockMax, (L + simd::kStatsBlock - 1) / simd::kStatsBlock);
        simd::scan_chunk_store(lr.x + off, n, v, e, bmax);  // the exponentials again (not kept from round 1)
        const double e_t = simd::exp_f64(rs.xt - Md);
        const double others = rs.xt == Md ? rs.rest : sum - e_t;
        const float gt = static_cast<float>(scale * (-rs.wt * (others / sum)));
        const double a = scale * (rs.wt / sum);
        simd::grad_stored(lr.x + off, v, e, bmax, gout + off, n, M, a, t - pc.off, gt, false);
      } else {
        const simd::smooth_row k{M, rs.rest, sum, rs.ms.total, rs.ms.max, rs.ms.rest, omeps, eps_c, scale};
        const double bt = index_ ? rs.wt * (omeps + eps_c) : 0.0;
        simd::grad_smoothed(lr.x + off, w_ ? w_ + off : nullptr, lr.q ? lr.q + off : nullptr, gout + off, n, k,
                            index_ ? t - pc.off : -1, bt);
      }
    }
    if (scatter)
      for (std::int64_t k = 0; k < L; ++k) g[k * gs] = gout[k];
    if (!fix.classes.empty()) infinite_scale_fix(pr, fix, g, gs);
  }

  // Row p's shard, contiguous: a pointer into the logits, or this thread's copy.
  local_row row(std::int64_t p) const {
    const problem& pr = pr_;
    const std::int64_t L = mine_.last - mine_.first;
    const float* x = pr.logits_row(p) + (mine_.first - base_) * pr.logits_class_stride;
    if (pr.logits_class_stride != 1) {
      float* b = simd::row_scratch(simd::kRowX, L);
      for (std::int64_t k = 0; k < L; ++k) b[k] = x[k * pr.logits_class_stride];
      x = b;
    }
    const float* q = nullptr;
    if (!index_) {
      q = pr.target_row(p) + (mine_.first - base_) * pr.target_class_stride;
      if (pr.target_class_stride != 1) {
        float* b = simd::row_scratch(simd::kRowQ, L);
        for (std::int64_t k = 0; k < L; ++k) b[k] = q[k * pr.target_class_stride];
        q = b;
      }
    }
    return {x, q};
  }

  // The shard's weights, contiguous; every thread's row buffers taken before
  // any output is written (a failed allocation is an error that writes nothing).
  void reserve(std::int64_t L) {
    if (pr_.weight && L > 0) {
      weights_.resize(static_cast<std::size_t>(L));
      for (std::int64_t k = 0; k < L; ++k) weights_[k] = pr_.weight_at(mine_.first - base_ + k);
      w_ = weights_.data();
    }
    std::exception_ptr failure;
#pragma omp parallel
    {
      try {
        if (L > 0) {
          if (pr_.logits_class_stride != 1) simd::row_scratch(simd::kRowX, L);
          if (!index_ && pr_.target_class_stride != 1) simd::row_scratch(simd::kRowQ, L);
          if (with_grad_ && pr_.grad_class_stride != 1) simd::row_scratch(simd::kRowG, L);
          if (stored_) {
            simd::row_scratch(simd::kRowV, L);
            simd::row_scratch(simd::kRowE, L);
            simd::row_scratch(simd::kRowBlockMax, (L + simd::kStatsBlock - 1) / simd::kStatsBlock);
          }
        }
      } catch (...) {
#pragma omp critical(xent_mpi_failure)
        if (!failure) failure = std::current_exception();
      }
    }
    // Every rank learns whether any failed, so that none waits in a collective.
    if (c_ == MPI_COMM_NULL) {
      if (failure) std::rethrow_exception(failure);
      return;
    }
    int ok = failure ? 0 : 1, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, c_);
    t_.collectives += 1;
    t_.bytes_sent += static_cast<std::int64_t>(sizeof ok);
    t_.bytes_received += static_cast<std::int64_t>(sizeof ok);
    if (failure) std::rethrow_exception(failure);
    if (!all_ok) throw error("mpi", "another rank could not allocate its row buffers");
  }

  // f(p) for every row, statically over this rank's OpenMP threads (each row
  // writes only its own records and outputs, so the bits do not depend on them).
  template <class F>
  void parallel_rows(F&& f) const {
    const std::int64_t N = pr_.positions;
#pragma omp parallel for schedule(static) if (N > 1)
    for (std::int64_t p = 0; p < N; ++p) f(p);
  }

  const problem& pr_;
  bool with_grad_;
  MPI_Comm c_;
  mpi::traffic& t_;
  int me_ = 0, ranks_ = 1;
  std::vector<mpi::class_range> ranges_;
  std::vector<std::vector<piece>> pieces_;
  mpi::class_range mine_;
  std::int64_t base_ = 0;  // the class at which the problem's class-axis buffers start
  std::int64_t total_pieces_ = 0;
  double eps_ = 0.0, wtot_ = 0.0;
  bool index_ = true, mass_ = false, stored_ = false;
  std::vector<float> weights_;
  const float* w_ = nullptr;
  std::vector<row_state> rows_;
};

// The other ranks' gradient shards into this rank's gradient (every rank then
// holds the whole gradient).
// The buffers are taken before the kernel writes anything (take()), so that a
// failed allocation leaves the outputs untouched.
struct gradient_gather {
  std::vector<float> send, all;
  void take(const problem& pr, MPI_Comm c) {
    if (c == MPI_COMM_NULL || pr.positions == 0) return;
    int me = 0, ranks = 1;
    MPI_Comm_rank(c, &me);
    MPI_Comm_size(c, &ranks);
    if (ranks == 1) return;
    const mpi::sharding s = mpi::current_sharding();
    const auto mine = mpi::shard(pr.classes, me, ranks, s);
    send.resize(static_cast<std::size_t>(pr.positions * (mine.last - mine.first)));
    all.resize(static_cast<std::size_t>(pr.positions * pr.classes));
  }
};

void gather_gradient(const problem& pr, MPI_Comm c, mpi::traffic& t, gradient_gather& buf) {
  if (c == MPI_COMM_NULL) return;
  int me = 0, ranks = 1;
  MPI_Comm_rank(c, &me);
  MPI_Comm_size(c, &ranks);
  if (ranks == 1 || pr.positions == 0) return;
  const mpi::sharding s = mpi::current_sharding();
  const std::int64_t N = pr.positions, gs = pr.grad_class_stride;
  std::vector<int> counts(static_cast<std::size_t>(ranks)), displs(counts.size());
  std::int64_t d = 0;
  for (int r = 0; r < ranks; ++r) {
    const auto rg = mpi::shard(pr.classes, r, ranks, s);
    const std::int64_t n = N * (rg.last - rg.first);
    if (n > std::numeric_limits<int>::max() || d > std::numeric_limits<int>::max())
      throw error("mpi", "the gradient is too large to gather in one MPI call");
    counts[r] = static_cast<int>(n);
    displs[r] = static_cast<int>(d);
    d += n;
  }
  const auto mine = mpi::shard(pr.classes, me, ranks, s);
  const std::int64_t L = mine.last - mine.first;
  std::vector<float>& send = buf.send;
  std::vector<float>& all = buf.all;
  for (std::int64_t p = 0; p < N; ++p) {
    const float* g = pr.grad_row(p) + mine.first * gs;
    for (std::int64_t k = 0; k < L; ++k) send[p * L + k] = g[k * gs];
  }
  MPI_Allgatherv(send.data(), static_cast<int>(send.size()), MPI_FLOAT, all.data(), counts.data(), displs.data(),
                 MPI_FLOAT, c);
  t.gather_bytes += (d - N * L) * 4;
  for (int r = 0; r < ranks; ++r) {
    if (r == me) continue;
    const auto rg = mpi::shard(pr.classes, r, ranks, s);
    const std::int64_t Lr = rg.last - rg.first;
    for (std::int64_t p = 0; p < N; ++p) {
      float* g = pr.grad_row(p) + rg.first * gs;
      const float* src = all.data() + displs[r] + p * Lr;
      for (std::int64_t k = 0; k < Lr; ++k) g[k * gs] = src[k];
    }
  }
}

void run_ranks(const problem& pr, bool with_grad);

void run(const problem& pr, bool with_grad) {
  mpi::last = {};
  try {
    // A plain process, or ranks that each run problems of their own: the only rank, no collectives.
    if (!mpi::launched() || mpi::single_rank()) {
      sharded_run(pr, with_grad, MPI_COMM_NULL, mpi::last).run();
      return;
    }
    run_ranks(pr, with_grad);
  } catch (const std::bad_alloc&) {
    // Every buffer is taken before the first output is written.
    std::string m = "cannot allocate the mpi implementation's scratch (per-row statistics and gradient shards: about ";
    m += std::to_string(pr.positions * (8 * 24 + 4 * pr.classes));
    m += " bytes for ";
    m += std::to_string(pr.positions);
    m += " rows)";
    throw error("mpi", m);
  }
}

void run_ranks(const problem& pr, bool with_grad) {
  const MPI_Comm c = mpi::comm();
  // MPI_THREAD_FUNNELED: collectives from the thread that started MPI only
  // (a pool of threads calling it would also pair collectives of different
  // problems across ranks).
  int main_thread = 0;
  MPI_Is_thread_main(&main_thread);
  if (!main_thread)
    throw error("mpi", "the mpi implementation was called from a thread other than the one that started MPI; "
                       "call it from one thread, the same on every rank, in the same order");
  gradient_gather buf;
  if (with_grad) buf.take(pr, c);
  sharded_run(pr, with_grad, c, mpi::last).run();
  if (with_grad) gather_gradient(pr, c, mpi::last, buf);
}

// Do two views share a byte? (Both already validated by make_problem.)
bool views_overlap(const tensor_view& a, const tensor_view& b) {
  auto range = [](const tensor_view& v, std::uintptr_t& lo, std::uintptr_t& hi) {
    std::int64_t down = 0, up = 0;
    for (std::size_t d = 0; d < v.shape.size(); ++d) {
      if (v.shape[d] == 0) return false;
      const std::int64_t span = (v.shape[d] - 1) * v.strides[d];
      (span < 0 ? down : up) += span;
    }
    const auto base = reinterpret_cast<std::uintptr_t>(v.data);
    const auto size = static_cast<std::uintptr_t>(size_of(v.type));
    lo = base - static_cast<std::uintptr_t>(-down) * size;
    hi = base + static_cast<std::uintptr_t>(up) * size + size - 1;
    return true;
  };
  std::uintptr_t alo = 0, ahi = 0, blo = 0, bhi = 0;
  return range(a, alo, ahi) && range(b, blo, bhi) && alo <= bhi && blo <= ahi;
}

// This rank's problem for cross_entropy_shard: the shard's logits, outputs and
// weights, validated by make_problem, with the global classes and targets.
problem shard_problem(const tensor_view& logits, const tensor_view& target, std::int64_t first, std::int64_t classes,
                      const tensor_view& out, const tensor_view* grad, const options& opt,
                      const tensor_view* upstream) {
  if (logits.ndim() != 2)
    throw error("logits", "the shard's logits must be [N, C_r] (2-D), got " + logits.shape_string());
  const std::int64_t N = logits.shape[0], Cr = logits.shape[1];
  if (Cr < 1) throw error("logits", "the shard holds no class (C_r = 0); every rank needs at least one");
  if (first < 0 || classes < 1 || first > classes - Cr)
    throw error("first_class", "the shard [" + std::to_string(first) + ", " + std::to_string(first + Cr) +
                                   ") is not inside the " + std::to_string(classes) + " classes");
  const bool index = target.type == dtype::i64;
  if (!index) {  // probabilities: this shard's, shaped like the logits
    problem pr = make_problem(logits, target, opt, out, grad, upstream);
    pr.classes = classes;
    return pr;
  }
  // The global targets checked against the global classes (and as a view),
  // through a broadcast stand-in for the whole logits (no weights: those are the shard's).
  const float zero = 0.0f;
  options global = opt;
  global.weight.reset();
  make_problem(tensor_view{const_cast<float*>(&zero), dtype::f32, {N, classes}, {0, 0}}, target, global);
  if (views_overlap(out, target) || (grad && views_overlap(*grad, target)))
    throw error(views_overlap(out, target) ? "out" : "grad", "an output overlaps the targets");
  // The shard's views checked with stand-in targets that fit its classes.
  std::vector<std::int64_t> local(static_cast<std::size_t>(N));
  const auto* t = static_cast<const std::int64_t*>(target.data);
  for (std::int64_t p = 0; p < N; ++p)
    local[static_cast<std::size_t>(p)] = t[p * target.strides[0]] == opt.ignore_index ? opt.ignore_index : 0;
  problem pr = make_problem(logits, view(local.data(), {N}), opt, out, grad, upstream);
  pr.classes = classes;
  pr.target_index = t;
  for (auto& st : pr.target_position_strides) st *= target.strides[0];
  return pr;
}

}  // namespace

namespace mpi {

void cross_entropy_shard(const tensor_view& logits, const tensor_view& target, std::int64_t first_class,
                         std::int64_t classes, const tensor_view& out, const tensor_view* grad, const options& opt,
                         const tensor_view* upstream) {
  // Validate here, then tell every rank whether all are valid and where
  // each shard lies, before anything is written.
  problem pr;
  std::exception_ptr invalid;
  try {
    pr = shard_problem(logits, target, first_class, classes, out, grad, opt, upstream);
  } catch (...) {
    invalid = std::current_exception();
  }
  const bool alone = !launched() || single_rank();
  const MPI_Comm c = alone ? MPI_COMM_NULL : comm();
  if (c != MPI_COMM_NULL) {
    int main_thread = 0;
    MPI_Is_thread_main(&main_thread);
    if (!main_thread)
      throw error("mpi", "cross_entropy_shard was called from a thread other than the one that started MPI");
  }
  const int ranks = alone ? 1 : size();
  const std::int64_t Cr = logits.ndim() == 2 ? logits.shape[1] : 0, N = logits.ndim() == 2 ? logits.shape[0] : 0;
  const std::int64_t mine[4] = {invalid ? 0 : 1, first_class, first_class + Cr, classes};
  std::vector<std::int64_t> all(static_cast<std::size_t>(4 * ranks));
  // The largest N and the largest -N: equal magnitudes when every rank has the same N.
  const std::int64_t rows[2] = {N, -N};
  std::int64_t rows_all[2] = {N, -N};
  if (c == MPI_COMM_NULL) {
    std::copy(mine, mine + 4, all.begin());
  } else {
    MPI_Allgather(mine, 4, MPI_INT64_T, all.data(), 4, MPI_INT64_T, c);
    MPI_Allreduce(rows, rows_all, 2, MPI_INT64_T, MPI_MAX, c);
  }
  if (invalid) std::rethrow_exception(invalid);
  std::vector<class_range> ranges;
  for (int r = 0; r < ranks; ++r) {
    const std::int64_t* a = all.data() + 4 * r;
    if (a[0] == 0) throw error("mpi", "rank " + std::to_string(r) + " rejected its arguments (its error says why)");
    ranges.push_back({a[1], a[2]});
    const std::int64_t expected_first = r == 0 ? 0 : ranges[static_cast<std::size_t>(r) - 1].last;
    if (a[3] != classes || a[1] != expected_first || (r == ranks - 1 && a[2] != classes)) {
      std::string m = "the shards must follow one another in rank order over the same classes: rank ";
      m += std::to_string(r);
      m += " holds [" + std::to_string(a[1]) + ", " + std::to_string(a[2]) + ") of " + std::to_string(a[3]);
      m += " classes, expected to start at " + std::to_string(expected_first) + " of " + std::to_string(classes);
      throw error("first_class", m);
    }
  }
  if (rows_all[0] != -rows_all[1])
    throw error("logits", "the ranks' logits have different numbers of rows (N must be the same on every rank)");
  last = {};
  try {
    sharded_run(pr, grad != nullptr, c, last, &ranges).run();
  } catch (const std::bad_alloc&) {
    throw error("mpi", "cannot allocate the statistics of " + std::to_string(pr.positions) + " rows");
  }
}

}  // namespace mpi

namespace {

class mpi_kernel final : public implementation {
 public:
  std::string name() const override { return "mpi"; }
  std::string description() const override {
    std::string d = "vocabulary-parallel simd rows over MPI ranks (class shards on openmp's fixed chunks, "
                    "per-row statistics by Allgatherv folded in class order; bitwise openmp's)";
    if (!mpi::launched() || mpi::single_rank()) d += "; one rank here (a process of its own)";
    return d;
  }
  xent::tier tier() const override { return tier::fast; }
  std::string domain() const override { return "all inputs"; }
  bool thread_count_independent() const override { return true; }
  void forward(const problem& p) const override { run(p, false); }
  void forward_backward(const problem& p) const override { run(p, true); }
};

}  // namespace

std::unique_ptr<implementation> make_mpi_kernel() { return std::make_unique<mpi_kernel>(); }

}  // namespace xent

// The mpi implementation's communication, under mpirun (bench/README.md, MPI):
//  1. MPI_Allgatherv alone, m doubles from each rank: median time per
//     collective, to fit t = alpha + beta * (bytes received per rank);
//  2. the mpi kernel (loss + gradient) on [N, C] with two of openmp's chunks per
//     rank: collectives, bytes sent and received per rank for the rows'
//     statistics, time inside them, and the whole call.
// Rank 0 prints one JSON object per line. Usage: mpirun -np K xent_mpi_bench [--reps R]
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "xent/kernel.hpp"
#include "xent/kernel/mpi.hpp"
#include "xent/xent.hpp"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The slowest rank's time: a collective ends when its last rank does.
double slowest(double t) {
  double m = 0.0;
  MPI_Allreduce(&t, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 21;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::max(3, std::atoi(argv[i + 1]));
  const xent::implementation* mpi = xent::find_implementation("mpi");
  if (!mpi || !xent::mpi::launched()) {
    std::fprintf(stderr, "xent_mpi_bench: run it under mpirun (mpi implementation %s)\n",
                 mpi ? "not started by mpirun" : "not built");
    return 2;
  }
  const int me = xent::mpi::rank(), K = xent::mpi::size();  // initialises MPI

  for (std::int64_t m : {1, 8, 64, 512, 4096, 32768, 262144}) {
    std::vector<double> send(static_cast<std::size_t>(m), me), all(static_cast<std::size_t>(m * K));
    std::vector<int> counts(static_cast<std::size_t>(K), static_cast<int>(m)), displs(counts.size());
    for (int r = 0; r < K; ++r) displs[r] = static_cast<int>(m * r);
    std::vector<double> times;
    for (int i = 0; i < reps + 2; ++i) {
      MPI_Barrier(MPI_COMM_WORLD);
      const auto t0 = std::chrono::steady_clock::now();
      MPI_Allgatherv(send.data(), static_cast<int>(m), MPI_DOUBLE, all.data(), counts.data(), displs.data(),
                     MPI_DOUBLE, MPI_COMM_WORLD);
      const double t = slowest(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (i >= 2) times.push_back(t);  // the first two set up the connections
    }
    if (me == 0)
      std::printf("{\"what\": \"allgatherv\", \"ranks\": %d, \"doubles_per_rank\": %lld, \"bytes_received_per_rank\": %lld, "
                  "\"median_s\": %.9g}\n",
                  K, static_cast<long long>(m), static_cast<long long>(m * (K - 1) * 8), median(times));
  }

  for (std::int64_t N : {16, 128, 512}) {
    const std::int64_t C = 2 * 16384 * K;
    std::vector<float> x(static_cast<std::size_t>(N * C)), g(x.size()), loss(1);
    std::vector<std::int64_t> t(static_cast<std::size_t>(N));
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    for (auto& e : x) e = normal(rng);
    for (auto& e : t) e = static_cast<std::int64_t>(rng() % static_cast<unsigned>(C));
    const auto lv = xent::view(x.data(), {N, C});
    const auto tv = xent::view(t.data(), {N});
    const auto ov = xent::view(loss.data(), {});
    const auto gv = xent::view(g.data(), {N, C});
    std::vector<double> comm, call;
    xent::mpi::traffic last;
    for (int i = 0; i < std::max(3, reps / 4) + 1; ++i) {
      MPI_Barrier(MPI_COMM_WORLD);
      const auto t0 = std::chrono::steady_clock::now();
      xent::cross_entropy_forward_backward(lv, tv, ov, gv, {}, nullptr, mpi);
      const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      last = xent::mpi::last_traffic();
      if (i == 0) continue;
      comm.push_back(slowest(last.seconds));
      call.push_back(slowest(total));
    }
    if (me == 0)
      std::printf("{\"what\": \"mpi_kernel\", \"ranks\": %d, \"rows\": %lld, \"classes\": %lld, \"collectives\": %lld, "
                  "\"bytes_sent_per_rank\": %lld, \"bytes_received_per_rank\": %lld, \"statistics_s\": %.9g, "
                  "\"call_s\": %.9g, \"gradient_gather_bytes_per_rank\": %lld}\n",
                  K, static_cast<long long>(N), static_cast<long long>(C), static_cast<long long>(last.collectives),
                  static_cast<long long>(last.bytes_sent), static_cast<long long>(last.bytes_received), median(comm),
                  median(call), static_cast<long long>(last.gather_bytes));
  }
  return 0;
}

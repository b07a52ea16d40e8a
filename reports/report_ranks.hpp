// `mpirun -np K xent report`: the accuracy sweep split over the ranks of an
// MPI job. Every rank builds the same scenario list and deals it out the
// same way (deal_scenarios); each measures its share and sends the cells to
// rank 0, which puts them back in the order of one process and writes the
// report. The numbers do not depend on where a scenario was measured (the
// fills are seeded by the id, the sweep is independent of the thread count,
// and the `mpi` implementation computes as the only rank of each process,
// xent::mpi::single_rank_scope), so the report is that of one process.
//
// No rank waits for one that failed: the setup ends in one exchange in which
// every rank learns whether all succeeded (agree_on_setup), and a rank whose
// share fails still sends its failure to rank 0, which ends the run naming
// that rank. A rank that crashes is ended by mpirun, a rank that hangs by
// mpirun's --timeout.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "report_sweep.hpp"
#include "scenarios.hpp"

namespace xent::reports {

// A rank's failure as the others learn it: the exit status main would give
// it (2 usage or input error, 1 otherwise) and its message.
struct failure_note {
  int status = 1;
  std::string message;
};
failure_note describe_failure(std::exception_ptr e);

// Ends the report on a rank because of a failure: its own (`own`) or another
// rank's, which rank 0 reports (the other ranks need not repeat it).
class rank_failure : public std::runtime_error {
 public:
  rank_failure(int status, const std::string& message, bool own)
      : std::runtime_error(message), status_(status), own_(own) {}
  int status() const noexcept { return status_; }
  bool own() const noexcept { return own_; }

 private:
  int status_;
  bool own_;
};

// The scenarios of each of `ranks` ranks (indices into `scenarios`, ascending):
// the largest first, each to the rank with the fewest logits so far, ties to
// the lowest rank. The same on every rank.
std::vector<std::vector<std::size_t>> deal_scenarios(const std::vector<scenario_spec>& scenarios, int ranks);

// One rank's part of the sweep, as it travels to rank 0.
struct sweep_share {
  std::vector<std::size_t> indices;       // into the sweep's scenario list
  std::vector<scenario_info> scenarios;   // one per index
  std::vector<std::vector<cell>> cells;   // one list per index, in registry order
  double seconds = 0.0;                   // this rank's time on its share
  std::optional<failure_note> failure;    // the share failed: no scenarios
};
// Bit-exact (NaN payloads and infinities included) between ranks of the same
// build on hosts of the same byte order; decode throws on anything else.
std::string encode(const sweep_share& s);
sweep_share decode(const std::string& bytes);

// The whole sweep from every rank's share (rank order), in the order of one
// process: scenarios as listed, cells scenario-major. Throws rank_failure
// naming the first rank whose share failed, and a std::logic_error when the
// shares do not cover each of the `count` scenarios exactly once.
sweep_result merge_shares(std::vector<sweep_share> shares, std::size_t count);

// Every rank: what it is about to measure (scenario ids, implementations,
// Highway target), compared across the ranks in the setup's exchange.
std::string sweep_fingerprint(const sweep_options& o);

// Every rank, after its setup: `setup_failure` (null when it succeeded) and
// its fingerprint to every rank. Throws the rank's own failure, or a
// rank_failure naming the first rank that failed or that would measure
// something else than rank 0.
void agree_on_setup(std::exception_ptr setup_failure, const std::string& fingerprint);

// Every rank: measures its share of o.scenarios (deal_scenarios) and sends it
// to rank 0. Rank 0 returns the whole sweep (merge_shares: it throws when a
// share failed); the other ranks return nullopt, or throw their own failure
// after sending it. per_rank (rank 0): the number of scenarios each rank measured.
std::optional<sweep_result> run_sweep_over_ranks(const sweep_options& o, std::vector<std::size_t>* per_rank);

// Sweep worker threads for one rank when --threads is not given: the CPUs
// this process may run on, shared with the other ranks of this host when
// mpirun did not bind the ranks (each then sees every CPU).
// A collective (every rank calls it).
unsigned sweep_threads_per_rank();

}  // namespace xent::reports

// The `mpi` implementation's process side: is this process one rank of an
// MPI job, which rank, and which classes it holds (docs/design.md §4, MPI).
// Without MPI in the build (XENT_WITH_MPI off) every process is rank 0 of 1
// and the `mpi` implementation is not registered.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "xent/options.hpp"
#include "xent/tensor.hpp"

namespace xent::mpi {

// Was xent built with MPI?
bool built();
// Was this process started by mpirun (or is MPI already initialised)? Only
// then does the `mpi` implementation start MPI; in a plain process it is the
// only rank and starts no MPI runtime.
bool launched();
// This process's rank and the job's size (MPI_COMM_WORLD); initialises MPI on
// first use when launched(), else 0 and 1.
int rank();
int size();
// Waits for every rank (nothing when not launched).
void barrier();
// How many ranks of the job run on this host (1 when not launched).
int ranks_on_this_host();

// Byte strings between ranks, for tools that split work over the ranks
// (`xent report`). Collectives on MPI_COMM_WORLD's duplicate: every rank
// calls them in the same order, from the thread that started MPI. Without
// mpirun they return {mine}.
// Every rank's string, in rank order, on every rank.
std::vector<std::string> all_gather(const std::string& mine);
// Every rank's string, in rank order, on rank 0; the other ranks get none.
std::vector<std::string> gather_to_root(const std::string& mine);

// While one of these lives, the `mpi` implementation computes in this
// process as the only rank (no collectives, from any thread), as it does
// without mpirun: for tools whose ranks run different problems, such as
// `xent report` with its scenarios dealt out to the ranks. Its results are
// bitwise those of a process of its own.
class single_rank_scope {
 public:
  single_rank_scope();
  ~single_rank_scope();
  single_rank_scope(const single_rank_scope&) = delete;
  single_rank_scope& operator=(const single_rank_scope&) = delete;
};
// Is a single_rank_scope alive?
bool single_rank();

// How the class axis is cut into shards, one per rank (contiguous, in rank
// order). chunks (the default): whole fixed chunks of the openmp kernel
// (16384 classes when C >= 65536, else the whole row, so that rank 0 then
// holds every class): the result is bitwise the openmp kernel's. even: C/size
// classes each, any boundary: the same accuracy tier, other bits. Read from
// $XENT_MPI_SHARDS (chunks or even) on every call.
enum class sharding { chunks, even };
sharding current_sharding();
// [first, last) classes of rank r of `ranks` for C classes.
struct class_range {
  std::int64_t first = 0, last = 0;
};
class_range shard(std::int64_t classes, int r, int ranks, sharding s);

// Vocabulary-parallel cross-entropy on this rank's shard of the class axis,
// for callers whose logits never exist whole (the `mpi` implementation's
// statistics exchange without its gradient gather).
//   logits     [N, C_r]: classes [first_class, first_class + C_r) of
//              `classes`; the ranks' shards follow one another in rank order,
//              together every class once, each C_r >= 1
//   target     the global class indices [N] (int64, in [0, classes) or
//              ignore_index), or this shard of the probabilities [N, C_r]
//   opt        as for cross_entropy; opt.weight is this shard of the class
//              weights [C_r]
//   out        the loss (a scalar for mean/sum, [N] for none): the same on every rank
//   grad       (optional) this shard of d loss / d logits [N, C_r], times
//              `upstream` as in cross_entropy_forward_backward
// A collective: every rank calls it, with the same N, classes and options,
// from the thread that started MPI. Every rank validates its arguments
// before any exchange and the ranks compare their shards, so a bad argument
// on any rank is an xent::error on every rank (nothing written), not a hang.
// When the shards fall on openmp's chunk grid (shard(classes, r, ranks,
// sharding::chunks)), every bit equals the openmp implementation's on the
// whole problem. Without mpirun (or without MPI) the only rank holds every class.
void cross_entropy_shard(const tensor_view& logits, const tensor_view& target, std::int64_t first_class,
                         std::int64_t classes, const tensor_view& out, const tensor_view* grad, const options& opt,
                         const tensor_view* upstream = nullptr);

// What the last call of the `mpi` implementation on this rank exchanged for
// its rows' statistics (not the gathering of the whole gradient that the
// registry's whole-problem form adds): collectives, bytes this rank sent and
// received, wall time inside them.
struct traffic {
  std::int64_t collectives = 0;
  std::int64_t bytes_sent = 0;
  std::int64_t bytes_received = 0;
  double seconds = 0.0;
  std::int64_t gather_bytes = 0;  // the whole-problem form's gradient gather (received)
};
traffic last_traffic();

}  // namespace xent::mpi

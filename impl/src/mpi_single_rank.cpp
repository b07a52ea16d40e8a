// xent::mpi::single_rank_scope (xent/kernel/mpi.hpp); also built without MPI.
#include <atomic>

#include "xent/kernel/mpi.hpp"

namespace xent::mpi {
namespace {

// Scopes may nest and may be opened on any thread: a count, not a flag.
std::atomic<int> open_scopes{0};

}  // namespace

single_rank_scope::single_rank_scope() { open_scopes.fetch_add(1); }
single_rank_scope::~single_rank_scope() { open_scopes.fetch_sub(1); }
bool single_rank() { return open_scopes.load() > 0; }

}  // namespace xent::mpi

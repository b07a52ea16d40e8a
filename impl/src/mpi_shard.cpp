// How the `mpi` implementation cuts the class axis (xent/kernel/mpi.hpp); also
// built without MPI, for tools that print the plan.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "simd_row.hpp"
#include "xent/error.hpp"
#include "xent/kernel/mpi.hpp"

namespace xent::mpi {

sharding current_sharding() {
  const char* s = std::getenv("XENT_MPI_SHARDS");
  if (!s || !*s || std::string(s) == "chunks") return sharding::chunks;
  if (std::string(s) == "even") return sharding::even;
  throw error("XENT_MPI_SHARDS", std::string("XENT_MPI_SHARDS is '") + s + "'; expected chunks or even");
}

// chunks: the openmp kernel's chunk grid (simd_row.hpp: kChunk classes when
// C >= kLongRow, else one chunk), whole chunks dealt out evenly in order.
class_range shard(std::int64_t C, int r, int ranks, sharding s) {
  if (s == sharding::even) return {C * r / ranks, C * (r + 1) / ranks};
  const std::int64_t chunk = C >= simd::kLongRow ? simd::kChunk : (C > 0 ? C : 1);
  const std::int64_t chunks = (C + chunk - 1) / chunk;
  return {std::min(C, chunks * r / ranks * chunk), std::min(C, chunks * (r + 1) / ranks * chunk)};
}

}  // namespace xent::mpi

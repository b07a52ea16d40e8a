// xent/kernel/mpi.hpp without MPI in the build: every process is rank 0 of 1.
#include "xent/kernel/mpi.hpp"

#include "xent/cross_entropy.hpp"
#include "xent/error.hpp"
#include "xent/kernel/implementation.hpp"

namespace xent::mpi {

bool built() { return false; }
bool launched() { return false; }
int rank() { return 0; }
int size() { return 1; }
void barrier() {}
int ranks_on_this_host() { return 1; }
std::vector<std::string> all_gather(const std::string& mine) { return {mine}; }
std::vector<std::string> gather_to_root(const std::string& mine) { return {mine}; }

// The only rank holds every class: openmp on the whole problem (the bits of
// the `mpi` implementation with chunk shards).
void cross_entropy_shard(const tensor_view& logits, const tensor_view& target, std::int64_t first_class,
                         std::int64_t classes, const tensor_view& out, const tensor_view* grad, const options& opt,
                         const tensor_view* upstream) {
  if (logits.ndim() != 2)
    throw error("logits", "the shard's logits must be [N, C_r] (2-D), got " + logits.shape_string());
  if (first_class != 0 || logits.shape[1] != classes)
    throw error("first_class", "built without MPI, the only rank holds every class: first_class 0 and logits [N, " +
                                   std::to_string(classes) + "]");
  const implementation* openmp = find_implementation("openmp");
  if (grad) cross_entropy_forward_backward(logits, target, out, *grad, opt, upstream, openmp);
  else cross_entropy(logits, target, out, opt, openmp);
}
traffic last_traffic() { return {}; }

}  // namespace xent::mpi

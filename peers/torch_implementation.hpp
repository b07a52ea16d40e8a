// LibTorch's cross_entropy as an external implementation under test ("torch",
// tier standard). No torch type crosses this header: only
// torch_implementation.cpp pays LibTorch's compile time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "xent/tensor.hpp"

namespace xent::peers {

// Adds "torch" to the registry (idempotent). Available only when the
// xent::torch_peer target exists (XENT_WITH_TORCH=ON and LibTorch found).
void register_torch();

// "1.13.1"
std::string torch_version();

// For the benchmark (bench/): LibTorch's cross_entropy timed as a training
// step, on the same adapter as the implementation above.
namespace libtorch {

// One LibTorch cross_entropy call on caller-owned float32 or bfloat16 logits
// (shape (N,C) or (N,C,d..), class axis 1) and int64 targets, viewed without
// a copy. LibTorch computes a bfloat16 loss and gradient for bfloat16 logits.
class session {
 public:
  // reduction: "none" | "mean" | "sum". backward: run forward + backward()
  // through autograd; the gradient is whatever autograd allocates, as in a
  // training step.
  session(const void* logits, xent::dtype type, std::vector<std::int64_t> shape, const std::int64_t* target,
          const std::string& reduction, bool backward);
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  void run();                        // one call (timed)
  void clear();                      // drop the last results
  void loss(float* out) const;       // last loss: 1 value, or one per position for none (widened)
  void grad(float* out) const;       // last gradient (backward only), logits' shape (widened)
  std::int64_t loss_numel() const;

 private:
  struct state;
  std::unique_ptr<state> s_;
};

// Peak bytes of LibTorch tensor storage since reset_storage_peak(), beyond
// what was live then (LibTorch's CPU allocator, counted).
void reset_storage_peak();
std::int64_t storage_peak_extra_bytes();

void set_threads(int n);  // at::set_num_threads
int threads();
std::string parallel_info();  // one line: ATen's parallel backend and thread counts

}  // namespace libtorch

}  // namespace xent::peers

// The front door: torch.nn.CrossEntropyLoss with PyTorch's semantics.
//
//   logits  (C) | (N,C) | (N,C,d1..dK), float32, bfloat16 or float16, any strides
//   target  () | (N) | (N,d1..dK) int64 class indices, or probabilities of
//           the logits' shape and dtype
//   out     the logits' dtype (or float32 for 16-bit logits): one element for
//           mean/sum, the target's position shape for none
//   weight, grad, upstream: the logits' dtype (upstream: out's)
// 16-bit logits are computed by the kernels whose dtypes() says so (simd,
// openmp, throughput); the others refuse them (docs/dtypes.md).
//
// Everything is validated before anything is written: on xent::error the
// outputs are untouched.
#pragma once

#include <cstddef>

#include "xent/options.hpp"
#include "xent/tensor.hpp"

namespace xent {

// A kernel: the implementations and their registry (find_implementation)
// are the kernel interface, xent/kernel/implementation.hpp.
class implementation;

// Loss only. impl == nullptr means default_implementation().
void cross_entropy(const tensor_view& logits, const tensor_view& target, const tensor_view& out,
                   const options& opt = {}, const implementation* impl = nullptr);

// Convenience for mean/sum: returns the scalar loss.
float cross_entropy(const tensor_view& logits, const tensor_view& target,
                    const options& opt = {}, const implementation* impl = nullptr);

// Loss and d(loss)/d(logits) scaled by the upstream gradient: a scalar for
// mean/sum; for none one element or one value per position. upstream ==
// nullptr means 1. grad has the logits' shape; it may be the logits view
// itself (in-place).
void cross_entropy_forward_backward(const tensor_view& logits, const tensor_view& target,
                                    const tensor_view& out, const tensor_view& grad,
                                    const options& opt = {}, const tensor_view* upstream = nullptr,
                                    const implementation* impl = nullptr);

// Our kernels keep scratch between calls on every thread that ran one, so
// that repeated calls do not pay page faults on fresh buffers: up to 16
// bytes per position (losses, and weights when class weights are given, for
// the batch reduction) on the calling thread, and up to 52 bytes per class (a
// row's copy and exponentials; the stable kernel's double-double row and its
// retry buffers) on each thread that computed rows. scratch_bytes() is the
// total held; release_scratch() frees all of it (not while a kernel is
// running). Scratch that cannot be allocated is an xent::error (argument
// "scratch", naming the buffer and its bytes), thrown before any output is
// written.
std::size_t scratch_bytes();
void release_scratch();

}  // namespace xent

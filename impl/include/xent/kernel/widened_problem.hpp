// A 16-bit problem as a float32 one: for a kernel that computes float32 and
// rounds each result to a given dtype itself (`stable`), or for test code
// that runs a float32 kernel on 16-bit inputs. The inputs are widened
// (exactly) into contiguous float32 copies; the outputs go to float32
// buffers and store() rounds them once to their dtypes. Costs 4 bytes per
// logit, and as much again for a gradient.
#pragma once

#include <cstddef>
#include <memory>

#include "xent/kernel/problem.hpp"

namespace xent {

class widened_problem {
 public:
  // Allocates and fills every buffer; writes nothing of pr's outputs. An
  // in-place gradient (grad aliasing the logits) stays in place in the copy.
  widened_problem(const problem& pr, bool with_grad);
  widened_problem(const widened_problem&) = delete;
  widened_problem& operator=(const widened_problem&) = delete;

  // The float32 problem (type and out_type f32): run a kernel on it.
  const problem& get() const { return f_; }
  // Its results stored into pr's outputs, each rounded once to its dtype
  // (exact when they are values of that dtype already).
  void store(const problem& pr) const;

 private:
  // Uninitialised storage (no pass of zeros over a copy of the logits): every
  // element is written before it is read.
  struct floats {
    std::unique_ptr<float[]> p;
    std::size_t n = 0;
    void resize(std::size_t k) {
      p.reset(k ? new float[k] : nullptr);
      n = k;
    }
    float* data() const { return p.get(); }
    bool empty() const { return n == 0; }
    float& operator[](std::size_t i) const { return p[i]; }
  };
  problem f_;
  bool with_grad_;
  floats x_, q_, w_, g_, loss_, up_;
};

}  // namespace xent

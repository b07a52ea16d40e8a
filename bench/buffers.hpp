// Big aligned buffers and deterministic fills.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace xent_bench {

// A float or int64 buffer, 2 MiB aligned with transparent huge pages
// requested (fewer TLB misses: the bandwidth probes and the kernels see the
// same page size), first touched by the threads of a static split.
template <class T>
class buffer {
 public:
  buffer() = default;
  explicit buffer(std::size_t n);
  T* data() const { return p_.get(); }
  std::size_t size() const { return n_; }
  std::size_t bytes() const { return n_ * sizeof(T); }

 private:
  struct deleter {
    void operator()(T* p) const;
  };
  std::unique_ptr<T, deleter> p_;
  std::size_t n_ = 0;
};

extern template class buffer<float>;
extern template class buffer<std::int64_t>;
extern template class buffer<double>;
extern template class buffer<std::uint16_t>;  // bfloat16 / float16 patterns

// Element i is a pure function of (seed, i), so fills are identical for any
// thread count: logits ~ Normal(0, sigma) rounded to float, targets uniform
// in [0, C).
void fill_normal(float* x, std::size_t n, std::uint64_t seed, float sigma);
void fill_targets(std::int64_t* t, std::size_t n, std::int64_t C, std::uint64_t seed);

}  // namespace xent_bench

// Peak extra memory of one call, measured two ways because neither sees
// everything:
//  - a counting global operator new/delete (exact for C++ allocations, ours
//    and LibTorch's small objects), live bytes relative to the window start;
//  - the resident-set high-water mark (VmHWM after resetting it through
//    /proc/self/clear_refs), which also sees malloc/posix_memalign buffers
//    such as LibTorch's tensor storage.
// The extra memory of a call is the larger of the two.
#pragma once

#include <cstdint>

namespace xent_bench {

class memory_window {
 public:
  memory_window();  // starts counting
  // Stops counting. `other` is a peak from a counter this class does not see
  // (LibTorch's tensor storage), disjoint from operator new: added to it.
  // Returns the larger of that sum and the RSS high-water delta.
  std::int64_t peak_extra_bytes(std::int64_t other = 0);
  static bool rss_reset_works();

 private:
  std::int64_t rss_base_ = -1;
};

}  // namespace xent_bench

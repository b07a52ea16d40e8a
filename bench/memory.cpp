#include "memory.hpp"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace xent_bench {
namespace {

// Counting is off outside a window, so the hot paths of timed calls pay one
// relaxed load per allocation.
std::atomic<bool> counting{false};
std::atomic<std::int64_t> live{0};
std::atomic<std::int64_t> peak{0};

void note_alloc(void* p) {
  if (!p || !counting.load(std::memory_order_relaxed)) return;
  const auto n = static_cast<std::int64_t>(malloc_usable_size(p));
  const std::int64_t now = live.fetch_add(n, std::memory_order_relaxed) + n;
  std::int64_t old = peak.load(std::memory_order_relaxed);
  while (now > old && !peak.compare_exchange_weak(old, now, std::memory_order_relaxed)) {
  }
}

void note_free(void* p) {
  if (!p || !counting.load(std::memory_order_relaxed)) return;
  live.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
}

void* allocate(std::size_t n) {
  void* p = std::malloc(n ? n : 1);
  note_alloc(p);
  return p;
}

void* allocate_aligned(std::size_t n, std::align_val_t al) {
  const auto a = std::max(static_cast<std::size_t>(al), sizeof(void*));
  void* p = nullptr;
  if (posix_memalign(&p, a, n ? n : 1) != 0) p = nullptr;
  note_alloc(p);
  return p;
}

void release(void* p) noexcept {
  note_free(p);
  std::free(p);
}

// "VmHWM:" or "VmRSS:" of this process, in bytes; -1 if unreadable.
std::int64_t proc_status_bytes(const char* key) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  std::int64_t kb = -1;
  const std::size_t len = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, len) == 0) {
      kb = std::strtoll(line + len, nullptr, 10);
      break;
    }
  std::fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

bool reset_hwm() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

}  // namespace

memory_window::memory_window() {
  if (reset_hwm()) rss_base_ = proc_status_bytes("VmRSS:");
  live.store(0);
  peak.store(0);
  counting.store(true);
}

std::int64_t memory_window::peak_extra_bytes(std::int64_t other) {
  counting.store(false);
  std::int64_t extra = peak.load() + other;
  if (rss_base_ >= 0) {
    const std::int64_t hwm = proc_status_bytes("VmHWM:");
    if (hwm >= 0) extra = std::max(extra, hwm - rss_base_);
  }
  return extra;
}

bool memory_window::rss_reset_works() { return reset_hwm(); }

}  // namespace xent_bench

// The counting allocator: every replaceable form, so that no new/delete pair
// mixes counted and uncounted paths.
void* operator new(std::size_t n) {
  if (void* p = xent_bench::allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = xent_bench::allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return xent_bench::allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return xent_bench::allocate(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = xent_bench::allocate_aligned(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  if (void* p = xent_bench::allocate_aligned(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return xent_bench::allocate_aligned(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return xent_bench::allocate_aligned(n, a);
}
void operator delete(void* p) noexcept { xent_bench::release(p); }
void operator delete[](void* p) noexcept { xent_bench::release(p); }
void operator delete(void* p, std::size_t) noexcept { xent_bench::release(p); }
void operator delete[](void* p, std::size_t) noexcept { xent_bench::release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { xent_bench::release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { xent_bench::release(p); }
void operator delete(void* p, std::align_val_t) noexcept { xent_bench::release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { xent_bench::release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { xent_bench::release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { xent_bench::release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { xent_bench::release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  xent_bench::release(p);
}

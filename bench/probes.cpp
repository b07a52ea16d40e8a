// The bandwidth probes' passes, compiled for every Highway target and run on
// the best one (the widest vectors, as the kernels use): a pass of SSE loads
// read 31-32 GB/s on one thread of a Zen 5 host where AVX2 or AVX-512 loads
// read 35-39 GB/s, so a narrower probe would put the roofline ~15 % below the
// machine's limit. (Non-temporal writes measured the same at any width.)
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "probes.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/cache_control.h>

#include <cstddef>

HWY_BEFORE_NAMESPACE();
namespace xent_bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Sum of x[b, e) (b, e multiples of 64 floats except the last e).
float ReadRange(const float* HWY_RESTRICT x, std::size_t b, std::size_t e) {
  const hn::ScalableTag<float> d;
  const std::size_t N = hn::Lanes(d);
  auto a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0;  // independent chains: latency never limits
  std::size_t i = b;
  for (; i + 4 * N <= e; i += 4 * N) {
    a0 = hn::Add(a0, hn::LoadU(d, x + i));
    a1 = hn::Add(a1, hn::LoadU(d, x + i + N));
    a2 = hn::Add(a2, hn::LoadU(d, x + i + 2 * N));
    a3 = hn::Add(a3, hn::LoadU(d, x + i + 3 * N));
  }
  float r = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < e; ++i) r += x[i];
  return r;
}

// x[b, e) = value by non-temporal stores (x 2 MiB aligned, b 64-float aligned).
void NtWriteRange(float* HWY_RESTRICT x, std::size_t b, std::size_t e, float value) {
  const hn::ScalableTag<float> d;
  const std::size_t N = hn::Lanes(d);
  const auto v = hn::Set(d, value);
  std::size_t i = b;
  for (; i + N <= e; i += N) hn::Stream(v, d, x + i);
  hwy::FlushStream();
  for (; i < e; ++i) x[i] = value;
}

// y[b, e) = x[b, e) / 2 by non-temporal stores: the traffic of a fused loss
// + gradient (the logits read, the gradient streamed out) in one loop. (y 2
// MiB aligned, b 64-float aligned.)
void CopyRange(const float* HWY_RESTRICT x, float* HWY_RESTRICT y, std::size_t b, std::size_t e) {
  const hn::ScalableTag<float> d;
  const std::size_t N = hn::Lanes(d);
  const auto h = hn::Set(d, 0.5f);
  std::size_t i = b;
  for (; i + N <= e; i += N) hn::Stream(hn::Mul(hn::LoadU(d, x + i), h), d, y + i);
  hwy::FlushStream();
  for (; i < e; ++i) y[i] = x[i] * 0.5f;
}

// x = x / 2 + 1/4 in place (stays in [0, 1]).
void RmwRange(float* HWY_RESTRICT x, std::size_t b, std::size_t e) {
  const hn::ScalableTag<float> d;
  const std::size_t N = hn::Lanes(d);
  const auto h = hn::Set(d, 0.5f), q = hn::Set(d, 0.25f);
  std::size_t i = b;
  for (; i + N <= e; i += N) hn::StoreU(hn::MulAdd(hn::LoadU(d, x + i), h, q), d, x + i);
  for (; i < e; ++i) x[i] = x[i] * 0.5f + 0.25f;
}

}  // namespace HWY_NAMESPACE
}  // namespace xent_bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "probes.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <utility>

#include "buffers.hpp"

namespace xent_bench {
HWY_EXPORT(ReadRange);
HWY_EXPORT(NtWriteRange);
HWY_EXPORT(RmwRange);
HWY_EXPORT(CopyRange);

namespace {

// [begin, end) of thread `id` of `n_threads` over n floats, 64-float aligned.
std::pair<std::size_t, std::size_t> split(std::size_t n, int id, int n_threads) {
  const std::size_t blocks = n / 64;
  const std::size_t b0 = blocks * static_cast<std::size_t>(id) / static_cast<std::size_t>(n_threads);
  const std::size_t b1 = blocks * static_cast<std::size_t>(id + 1) / static_cast<std::size_t>(n_threads);
  return {b0 * 64, id + 1 == n_threads ? n : b1 * 64};
}

std::map<std::pair<probe_kind, int>, double>& recorded() {
  static std::map<std::pair<probe_kind, int>, double> m;
  return m;
}

double measure_now(probe_kind k, int threads) {
  const std::size_t n = probe_bytes / sizeof(float);
  buffer<float> buf(n);
  fill_normal(buf.data(), n, 1, 1.0f);
  probe_pass(k, buf.data(), n, threads);  // warm: TLB, threads
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    probe_pass(k, buf.data(), n, threads);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, probe_pass_bytes(k, n) / s);
  }
  return best;
}

}  // namespace

std::string to_string(probe_kind k) {
  switch (k) {
    case probe_kind::read: return "read";
    case probe_kind::nt_write: return "ntwrite";
    case probe_kind::rmw: return "rmw";
    case probe_kind::copy: return "copy";
  }
  return "?";
}

double probe_pass_bytes(probe_kind k, std::size_t n) {
  if (k == probe_kind::copy) return 2.0 * static_cast<double>(n / 2 / 64 * 64) * sizeof(float);
  const double b = static_cast<double>(n) * sizeof(float);
  return k == probe_kind::rmw ? 2.0 * b : b;
}

float probe_pass(probe_kind k, float* x, std::size_t n, int threads) {
  float total = 0.0f;
  // copy: the first half of x read, the second half written.
  const std::size_t half = n / 2 / 64 * 64;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    const auto [b, e] = split(k == probe_kind::copy ? half : n, omp_get_thread_num(), omp_get_num_threads());
    switch (k) {
      case probe_kind::read: total += HWY_DYNAMIC_DISPATCH(ReadRange)(x, b, e); break;
      case probe_kind::nt_write: HWY_DYNAMIC_DISPATCH(NtWriteRange)(x, b, e, 1.0f); break;
      case probe_kind::rmw: HWY_DYNAMIC_DISPATCH(RmwRange)(x, b, e); break;
      case probe_kind::copy: HWY_DYNAMIC_DISPATCH(CopyRange)(x, x + half, b, e); break;
    }
  }
  return total;
}

void record_probe(probe_kind k, int threads, double bps) {
  double& v = recorded()[{k, threads}];
  v = std::max(v, bps);
}

double probe_bandwidth(probe_kind k, int threads) {
  auto it = recorded().find({k, threads});
  if (it != recorded().end() && it->second > 0.0) return it->second;
  const double v = measure_now(k, threads);
  record_probe(k, threads, v);
  return v;
}

double roofline_read(int threads) { return probe_bandwidth(probe_kind::read, threads); }

double roofline_fused(int threads) { return probe_bandwidth(probe_kind::copy, threads); }

double roofline_inplace(int threads) { return probe_bandwidth(probe_kind::rmw, threads); }

}  // namespace xent_bench
#endif  // HWY_ONCE

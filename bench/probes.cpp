#include "probes.hpp"

#include <omp.h>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <utility>

#include "buffers.hpp"

namespace xent_bench {
namespace {

// 4 floats: one SSE register (wider vectors change the ABI without AVX;
// the read is memory bound either way).
typedef float v4f __attribute__((vector_size(16)));

v4f load4(const float* p) {
  v4f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// [begin, end) of thread `id` of `n_threads` over n floats, 64-float aligned.
std::pair<std::size_t, std::size_t> split(std::size_t n, int id, int n_threads) {
  const std::size_t blocks = n / 64;
  const std::size_t b0 = blocks * static_cast<std::size_t>(id) / static_cast<std::size_t>(n_threads);
  const std::size_t b1 = blocks * static_cast<std::size_t>(id + 1) / static_cast<std::size_t>(n_threads);
  return {b0 * 64, id + 1 == n_threads ? n : b1 * 64};
}

float read_range(const float* x, std::size_t b, std::size_t e) {
  v4f a0{}, a1{}, a2{}, a3{};  // independent chains: latency never limits
  std::size_t i = b;
  for (; i + 16 <= e; i += 16) {
    a0 += load4(x + i);
    a1 += load4(x + i + 4);
    a2 += load4(x + i + 8);
    a3 += load4(x + i + 12);
  }
  const v4f s = (a0 + a1) + (a2 + a3);
  float r = (s[0] + s[1]) + (s[2] + s[3]);
  for (; i < e; ++i) r += x[i];
  return r;
}

void nt_write_range(float* x, std::size_t b, std::size_t e, float value) {
  std::size_t i = b;
#if defined(__SSE2__)
  const __m128 v = _mm_set1_ps(value);
  for (; i + 16 <= e; i += 16) {  // b is 64-float aligned, x 2 MiB aligned
    _mm_stream_ps(x + i, v);
    _mm_stream_ps(x + i + 4, v);
    _mm_stream_ps(x + i + 8, v);
    _mm_stream_ps(x + i + 12, v);
  }
  _mm_sfence();
#endif
  for (; i < e; ++i) x[i] = value;
}

void rmw_range(float* x, std::size_t b, std::size_t e) {
  for (std::size_t i = b; i < e; ++i) x[i] = x[i] * 0.5f + 0.25f;  // stays in [0, 1]
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
  }
  return "?";
}

double probe_pass_bytes(probe_kind k, std::size_t n) {
  const double b = static_cast<double>(n) * sizeof(float);
  return k == probe_kind::rmw ? 2.0 * b : b;
}

float probe_pass(probe_kind k, float* x, std::size_t n, int threads) {
  float total = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    const auto [b, e] = split(n, omp_get_thread_num(), omp_get_num_threads());
    switch (k) {
      case probe_kind::read: total += read_range(x, b, e); break;
      case probe_kind::nt_write: nt_write_range(x, b, e, 1.0f); break;
      case probe_kind::rmw: rmw_range(x, b, e); break;
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

double roofline_fused(int threads) {
  const double r = probe_bandwidth(probe_kind::read, threads);
  const double w = probe_bandwidth(probe_kind::nt_write, threads);
  return 2.0 / (1.0 / r + 1.0 / w);
}

double roofline_inplace(int threads) { return probe_bandwidth(probe_kind::rmw, threads); }

}  // namespace xent_bench

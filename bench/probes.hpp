// Memory-bandwidth probes: the roofline every result is a fraction of.
// Buffers of >= 512 MiB (far beyond the L3) so that each pass streams DRAM.
#pragma once

#include <cstddef>
#include <string>

namespace xent_bench {

enum class probe_kind { read, nt_write, rmw, copy };
std::string to_string(probe_kind k);  // "read" | "ntwrite" | "rmw" | "copy"

inline constexpr std::size_t probe_bytes = std::size_t{512} << 20;

// Bytes one pass moves over n floats: n*4 for read and nt_write, 2*n*4 for
// the in-place read-modify-write (read and written back), n*4 for copy (its
// first half read, the second half written by non-temporal stores).
double probe_pass_bytes(probe_kind k, std::size_t n);
// One pass over x[0..n) with `threads` OpenMP threads (static split).
// Returns a value depending on the data so the read cannot be elided.
float probe_pass(probe_kind k, float* x, std::size_t n, int threads);

// Best bandwidth seen so far (bytes/s) for (kind, threads): the probe
// benchmarks record their best single pass into it. When nothing was recorded (filtered out), a
// short measurement is made on the spot.
void record_probe(probe_kind k, int threads, double bytes_per_second);
double probe_bandwidth(probe_kind k, int threads);

// Rooflines (bytes/s) for the byte counts of docs/design.md §6:
//   loss only   N·C·4 bytes read                  -> read probe
//   fused       N·C·4 read + N·C·4 written (NT)   -> copy probe: that traffic
//       in one loop. (Not a model such as the harmonic 2/(1/R + 1/W), which
//       assumes reads and writes take turns: on a Zen 5 host one thread's
//       copy moved 55 GB/s where read and NT write alone moved 46 and 44,
//       so the model sat 20 % below the machine's limit.)
//   in place    N·C·4 read and written back       -> read-modify-write probe
double roofline_read(int threads);
double roofline_fused(int threads);
double roofline_inplace(int threads);

}  // namespace xent_bench

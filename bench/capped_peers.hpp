// The peers at a narrower instruction set, measured in the same run.
//
// Our Highway kernels are pinned to every target of the CPU in one process
// (hwy::SetSupportedTargetsForTest). The peers cannot be: oneDNN and ATen
// read their instruction-set cap (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY)
// once per process. So on a CPU whose best target is above AVX2, after the
// main run xent_bench runs itself again as a child with both caps set and
// the option --peers-at=avx2: the peers alone, on the shapes and modes where
// a case pinned to AVX2 was measured, named onednn_avx2/... and
// libtorch_avx2/... and appended to the main run's JSON. The report then
// compares each pinned AVX2 case with the peers at AVX2 (bench/README.md).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace xent_bench {

// What a Highway target name ("avx2", lower case) means to each peer.
struct isa_cap {
  const char* target;  // Highway's name, lower case
  const char* onednn;  // ONEDNN_MAX_CPU_ISA
  const char* aten;    // ATEN_CPU_CAPABILITY
};
// Null for a target no cap is known for.
const isa_cap* find_isa_cap(std::string_view target);
// The names of the targets a cap is known for ("avx2"), for messages.
std::string known_isa_caps();
// Sets both variables in this process (before either peer starts).
void apply_isa_cap(const isa_cap& cap);

// What the child is asked to measure: the shapes and modes of the measured
// cases pinned to `cap` (names IMPL_<target>/shape/mode/tN of the Highway
// implementations); empty when none was.
std::string capped_peer_filter(const isa_cap& cap, const std::vector<std::string>& measured,
                               const std::vector<std::string>& highway_impls);

// Runs `self --peers-at=TARGET --benchmark_filter=FILTER pass...` (pass: the
// set, peer and repetition flags of this run). Its console output goes to
// this process's stdout when `console`, else nowhere. With a JSON file
// (json_out non-empty) the child writes its own next to it and its results
// and context are merged into json_out. Returns "" when the child ran and
// reported no failed case, else what went wrong.
std::string run_capped_peers(const isa_cap& cap, const std::string& filter, const std::vector<std::string>& pass,
                             bool console, const std::string& json_out);

}  // namespace xent_bench

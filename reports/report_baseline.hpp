// The CI accuracy gate, in the style of glibc's libm-test-ulps: a committed
// file with, per implementation and quantity, the maximum ulps allowed.
//
//   # comment
//   Implementation: "simd"
//   loss: 0.52
//   grad_target: 0.51
//   ...
//
// Only cells inside the implementation's declared domain count. A measured
// maximum above the file fails the gate (the cell and its repro are named);
// maxima below it are listed. The file holds the maximum over every Highway
// target (simd and openmp err more on SSE4 than on AVX2), so a host's own
// smaller maxima are no table to commit: `./run baseline` regenerates it.
// Implementations absent from the file are not gated (noted); peers
// (LibTorch) are never written into it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "report_sweep.hpp"

namespace xent::reports {

using baseline = std::map<std::string, std::map<std::string, double>>;  // impl -> quantity -> max ulps

// Throws cli::input_error naming the file and line.
baseline read_baseline(const std::string& path);

// The measured maxima (inside the domain) of every implementation in the
// sweep, each rounded up to 3 significant digits (capped at the tier's bound
// when the measurement is within it).
baseline measured_baseline(const sweep_result& s);

// The file's text. Entries above the tier's bound carry a comment saying so.
std::string format_baseline(const baseline& b, const sweep_result& s);

struct gate_result {
  std::vector<std::string> failures;  // one line each: cell, measured, allowed, repro
  std::vector<std::string> notes;     // not gated implementations, missing entries
  std::vector<std::string> improvements;  // one line each: measured maximum below the file's entry
  bool improved() const { return !improvements.empty(); }
};

gate_result check_baseline(const baseline& allowed, const sweep_result& s);

}  // namespace xent::reports

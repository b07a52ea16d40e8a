// Number formatting shared by the commands: text and JSON, with NaN and
// infinities spelled "nan", "inf", "-inf" (JSON has no literal for them).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace xent::cli {

// A JSON number, or "nan"/"inf"/"-inf" as a string.
inline nlohmann::ordered_json json_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

inline std::string nonfinite_text(double v) {
  if (std::isnan(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}

// printf-style with a format for finite values.
inline std::string fmt(double v, const char* f) {
  if (!std::isfinite(v)) return nonfinite_text(v);
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A float32 value, round-trippable (9 significant digits).
inline std::string float_text(float v) { return fmt(static_cast<double>(v), "%.9g"); }
// A value of any floating dtype, round-trippable: 9 digits for a value that
// is a float (float32, and every 16-bit value), 17 for other doubles.
inline std::string float_text(double v) {
  return std::isfinite(v) && static_cast<double>(static_cast<float>(v)) != v ? fmt(v, "%.17g") : float_text(static_cast<float>(v));
}
// An error in ulps: three significant digits ("0.127", "23.4", "1.7e+07").
inline std::string ulp_text(double v) { return v == 0.0 ? "0" : fmt(v, "%.3g"); }

// The nearest-rank percentile (fraction in (0, 1]) of a non-empty sample;
// reorders v.
inline double nearest_rank(std::vector<double>& v, double fraction) {
  auto k = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(v.size())));
  k = std::clamp<std::size_t>(k, 1, v.size()) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace xent::cli

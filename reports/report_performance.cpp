// The performance section of report.md: every benchmark case of the run in
// tables grouped by shape, and one table of the Highway kernels per target.
// Figures are the bench JSON's (medians; ratios within the run).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>
#include <tuple>

#include "format.hpp"
#include "report_write.hpp"

namespace xent::reports {

using cli::fmt;
namespace {

const char* const mode_order[] = {"fwd", "fwd_sum", "fwd_none", "fwdbwd", "fwdbwd_inplace"};

int mode_rank(const std::string& m) {
  for (int i = 0; i < 5; ++i)
    if (m == mode_order[i]) return i;
  return 5;
}

std::string mode_words(const std::string& m) {
  if (m == "fwd") return "loss (mean)";
  if (m == "fwd_sum") return "loss (sum)";
  if (m == "fwd_none") return "loss (none)";
  if (m == "fwdbwd") return "loss + gradient";
  if (m == "fwdbwd_inplace") return "loss + gradient in place";
  return m;
}

// "n8c21h256w256" -> "[8, 21, 256, 256]"; "n64c8192_bf16" -> "[64, 8192]
// bfloat16 logits" (the bench shapes of other dtypes, bench/shapes.txt).
std::string dims_of(const std::string& name) {
  const auto u = name.find('_');
  const std::string shape = name.substr(0, u);
  std::string suffix;
  if (u != std::string::npos) {
    const std::string t = name.substr(u + 1);
    suffix = " " + (t == "bf16" ? std::string("bfloat16") : t == "f16" ? std::string("float16")
                    : t == "f64"  ? std::string("float64")
                                  : t) +
             " logits";
  }
  std::string o = "[";
  bool digits = false;
  for (char c : shape) {
    const bool d = std::isdigit(static_cast<unsigned char>(c)) != 0;
    if (d && !digits && o.size() > 1) o += ", ";
    if (d) o += c;
    digits = d;
  }
  return o + "]" + suffix;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string maybe(double v, const char* f) { return std::isnan(v) ? std::string("—") : fmt(v, f); }

std::string bytes_text(double b) {
  if (std::isnan(b)) return "—";
  if (b < 1024.0) return fmt(b, "%.0f B");
  if (b < 1024.0 * 1024.0) return fmt(b / 1024.0, "%.1f KiB");
  if (b < 1024.0 * 1024.0 * 1024.0) return fmt(b / (1024.0 * 1024.0), "%.1f MiB");
  return fmt(b / (1024.0 * 1024.0 * 1024.0), "%.2f GiB");
}

std::string extra_text(const bench_point& p) {
  std::string s = bytes_text(p.peak_extra_bytes);
  if (!std::isnan(p.extra_per_nxc) && p.extra_per_nxc >= 0.01) s += " (" + fmt(p.extra_per_nxc, "%.2f") + " N×C)";
  return s;
}

// The order rows appear in: shapes and kernels as first measured (the
// bench's registration order: peers first), targets best first.
std::vector<std::string> first_seen(const std::vector<bench_point>& pts, std::string bench_point::*field) {
  std::vector<std::string> v;
  for (const auto& p : pts)
    if (std::find(v.begin(), v.end(), p.*field) == v.end()) v.push_back(p.*field);
  return v;
}

std::size_t index_in(const std::vector<std::string>& v, const std::string& s) {
  return static_cast<std::size_t>(std::find(v.begin(), v.end(), s) - v.begin());
}

std::string cpu_of(const report_data& d) {
  for (const auto& [k, v] : d.context)
    if (k == "CPU") return v;
  return "this CPU";
}

// One row per (Highway kernel, target); one column per shape and mode
// measured on more than one target, at the largest thread count.
void per_target(std::ostringstream& md, const bench_data& b) {
  const int t = b.max_threads();
  std::vector<std::pair<std::string, std::string>> columns;  // (shape, mode)
  for (const auto& p : b.points)
    if (p.pinned && p.threads == t && std::find(columns.begin(), columns.end(), std::make_pair(p.shape, p.mode)) == columns.end())
      columns.emplace_back(p.shape, p.mode);
  md << "\n### Per Highway target\n\n";
  if (columns.empty()) {
    md << "No case was pinned to a Highway target in this run"
       << (b.targets.size() < 2 ? " (this CPU has one target" + std::string(b.targets.empty() ? "" : ": " + b.targets[0]) + ")"
                                : b.highway_impls.empty() ? " (no implementation dispatches on Highway)" : "")
       << ".\n";
    return;
  }
  std::stable_sort(columns.begin(), columns.end(),
                   [](const auto& x, const auto& y) { return x.first == y.first && mode_rank(x.second) < mode_rank(y.second); });
  md << "The kernels that dispatch on Highway (" << b.highway_impls.size() << ": ";
  for (std::size_t i = 0; i < b.highway_impls.size(); ++i) md << (i ? ", " : "") << "`" << b.highway_impls[i] << "`";
  md << ") pinned to each target of this CPU (`hwy::SetSupportedTargetsForTest`; the first target is the one they "
        "pick unpinned), " << t << " thread(s). Each cell: GB/s · fraction of the CE roofline on that target (the "
        "compute floor measured on the same target) · speed-up over LibTorch · over oneDNN.";
  // The peers cannot be pinned in-process: the bench measures them again
  // capped at AVX2 in a second process (capped peers), and the rows of that
  // target compare with those; other rows with the peers' own choice.
  std::vector<std::string> capped, uncapped;
  for (std::size_t i = 1; i < b.targets.size(); ++i) {
    bool any = false;
    for (const auto& p : b.points)
      if (p.capped && p.target == b.targets[i]) any = true;
    (any ? capped : uncapped).push_back(b.targets[i]);
  }
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if (!capped.empty())
    md << " On the " << list(capped) << " row" << (capped.size() > 1 ? "s" : "")
       << " the ratios are over the peers capped at that instruction set in the same run (`libtorch_"
       << lower(capped[0]) << "` and `onednn_" << lower(capped[0])
       << "` in the tables below: a second process with ONEDNN_MAX_CPU_ISA and ATEN_CPU_CAPABILITY set, "
          "bench/README.md)"
       << (uncapped.empty() ? "." : ";");
  const std::string torch_isa = b.context.value("libtorch_isa", std::string()),
                    dnnl_isa = b.context.value("onednn_isa", std::string());
  if (!uncapped.empty() && (!torch_isa.empty() || !dnnl_isa.empty())) {
    md << (capped.empty() ? std::string(" The peers pick their own instruction set in every row — ")
                          : " on the " + list(uncapped) + (uncapped.size() > 1 ? " rows" : " row") +
                                " over the peers at their own choice — ");
    if (!torch_isa.empty()) md << "LibTorch: " << torch_isa << (dnnl_isa.empty() ? "" : "; ");
    if (!dnnl_isa.empty()) md << "oneDNN: " << dnnl_isa;
    md << " — so they compare a narrower path of ours with theirs.";
  }
  auto cell = [&](const std::string& kernel, const std::string& target, const std::string& shape,
                  const std::string& mode) -> const bench_point* {
    for (const auto& q : b.points)
      if (q.kernel == kernel && q.target == target && q.shape == shape && q.mode == mode && q.threads == t) return &q;
    return nullptr;
  };
  // Rows only for the (kernel, target) pairs this run measured: a kernel the
  // run did not measure pinned (a filter, or too slow) is named once below
  // the table instead of as rows of dashes.
  std::vector<std::pair<std::string, std::string>> rows;
  std::vector<std::string> unmeasured;
  for (const std::string& kernel : b.highway_impls) {
    bool any = false;
    for (const std::string& target : b.targets)
      for (const auto& [shape, mode] : columns)
        if (cell(kernel, target, shape, mode)) {
          if (rows.empty() || rows.back() != std::make_pair(kernel, target)) rows.emplace_back(kernel, target);
          any = true;
        }
    if (!any) unmeasured.push_back("`" + kernel + "`");
  }
  md << "\n\n| kernel | target |";
  for (const auto& [shape, mode] : columns) md << " `" << shape << "` " << mode << " |";
  md << "\n|---|---|";
  for (std::size_t i = 0; i < columns.size(); ++i) md << "--:|";
  md << "\n";
  for (const auto& [kernel, target] : rows) {
    md << "| " << kernel << " | " << target << " |";
    for (const auto& [shape, mode] : columns) {
      const bench_point* p = cell(kernel, target, shape, mode);
      md << " " << (p ? fmt(p->bytes_per_second / 1e9, "%.2f") + " · " + maybe(p->ce_roofline_fraction, "%.2f") + " · " +
                            maybe(b.vs_peer(*p, "libtorch"), "%.2fx") + " · " + maybe(b.vs_peer(*p, "onednn"), "%.2fx")
                      : std::string("—"))
         << " |";
    }
    md << "\n";
  }
  if (!unmeasured.empty())
    md << "\nNot measured on any target in this run: " << list(unmeasured)
       << " (left out by the run's filter, or skipped: \"Not measured in this run\" at the end of this section says why).\n";
}

}  // namespace

void performance_section(std::ostringstream& md, const report_data& d) {
  const bench_data& b = d.bench;
  md << "\n## Performance\n\n";
  if (!b.available) {
    md << "Not measured: " << (b.note.empty() ? "--no-bench" : b.note) << ".\n";
    return;
  }
  md << "Every benchmark case of this run (`" << b.source << "`, medians where repeated; set: "
     << b.context.value("set", std::string("?")) << "), on " << cpu_of(d) << ", Highway targets "
     << (b.targets.empty() ? std::string("unknown") : [&] {
          std::string s;
          for (const auto& t : b.targets) s += (s.empty() ? "" : ", ") + t;
          return s;
        }())
     << " (best first). **GB/s**: the bytes the mode must move (N·C·4 for the loss, twice that with the gradient) "
        "over the wall time. **CE roofline**: elements/s over the lower of the memory probe and the compute floor "
        "at the same thread count (bench/README.md; for a case pinned to a target, the floor on that target). **vs LibTorch**, **vs oneDNN**: the peer's median time over "
        "this one's, same shape, mode and threads (above 1: faster; for a case pinned to a target, the peer capped at "
        "that target when this run measured it). **extra**: the peak memory a warm call "
        "allocates beyond its inputs and outputs. **vs 1 thread**: the one-thread time over this one's. "
        "**target**: the Highway target the kernel ran on (— for kernels that do not dispatch on Highway and for "
        "the peers at their own choice; for a peer, the instruction set it was capped at). Ratios are from this one run; figures from other machines or runs are not comparable.\n";
  per_target(md, b);

  const std::vector<std::string> shapes = first_seen(b.points, &bench_point::shape);
  const std::vector<std::string> kernels = first_seen(b.points, &bench_point::kernel);
  for (const std::string& shape : shapes) {
    std::vector<const bench_point*> rows;
    for (const auto& p : b.points)
      if (p.shape == shape) rows.push_back(&p);
    const std::int64_t c = rows.front()->classes;
    md << "\n### `" << shape << "`: " << dims_of(shape) << ", C = " << c << "\n\n"
       << "| mode | implementation | target | threads | GB/s | of CE roofline | vs LibTorch | vs oneDNN | extra | vs 1 thread |\n"
          "|---|---|---|--:|--:|--:|--:|--:|--:|--:|\n";
    // No target (a peer at its own choice) before the targets, best first.
    auto target_rank = [&](const bench_point* p) { return p->target.empty() ? 0 : 1 + index_in(b.targets, p->target); };
    std::stable_sort(rows.begin(), rows.end(), [&](const bench_point* x, const bench_point* y) {
      const auto kx = std::make_tuple(mode_rank(x->mode), index_in(kernels, x->kernel), target_rank(x), x->threads);
      const auto ky = std::make_tuple(mode_rank(y->mode), index_in(kernels, y->kernel), target_rank(y), y->threads);
      return kx < ky;
    });
    for (const bench_point* p : rows)
      md << "| " << mode_words(p->mode) << " | " << p->kernel << " | " << (p->target.empty() ? "—" : p->target) << " | "
         << p->threads << " | " << fmt(p->bytes_per_second / 1e9, "%.2f") << " | " << maybe(p->ce_roofline_fraction, "%.2f")
         << " | " << (p->kernel == "libtorch" ? std::string("1") : maybe(b.vs_peer(*p, "libtorch"), "%.2fx")) << " | "
         << (p->kernel == "onednn" ? std::string("1") : maybe(b.vs_peer(*p, "onednn"), "%.2fx")) << " | " << extra_text(*p) << " | "
         << (p->threads == 1 ? std::string("1") : maybe(p->vs_t1, "%.2fx")) << " |\n";
  }
  std::string skipped = b.context.value("skipped", std::string("none"));
  const std::string capped_skipped = b.context.value("peers_at_avx2_skipped", std::string("none"));
  if (capped_skipped != "none")
    skipped = (skipped == "none" ? "" : skipped + "; ") + "capped at AVX2: " + capped_skipped;
  md << "\nNot measured in this run: " << (skipped == "none" ? std::string("nothing") : skipped) << ".\n";
}

}  // namespace xent::reports

// GCC 12 warns falsely (-Wrestrict) on "literal" + std::string concatenations.
#pragma GCC diagnostic ignored "-Wrestrict"
#include "plots.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace xent::reports {
namespace {

namespace fs = std::filesystem;

const char* header =
    "set terminal svg size 860,520 dynamic enhanced font 'sans,12' background '#ffffff'\n"
    "set grid\nset key outside right top\n";

// Runs gnuplot on the script; true when the SVG was written.
bool draw(const fs::path& dir, const std::string& name, const std::string& script, std::vector<std::string>& notes) {
  const fs::path gp = dir / (name + ".gp"), svg = dir / (name + ".svg");
  {
    std::ofstream f(gp);
    f << header << "set output '" << name << ".svg'\n" << script;  // relative: rerun in place
  }
  std::error_code ec;
  fs::remove(svg, ec);
  const std::string cmd = "cd '" + dir.string() + "' && gnuplot '" + name + ".gp' >'" + name + ".log' 2>&1";
  if (std::system(cmd.c_str()) != 0 || !fs::exists(svg)) {
    notes.push_back(name + ".svg: gnuplot failed (see " + name + ".log)");
    return false;
  }
  fs::remove(dir / (name + ".log"), ec);
  return true;
}

std::string num(double v) {
  std::ostringstream o;
  o.precision(6);
  o << v;
  return o.str();
}

// Colours that stay apart for colour-blind readers and in greyscale (Okabe and
// Ito's palette, black and yellow left out: black draws the rooflines, yellow
// vanishes on white), and a filled marker per series; beyond seven series the
// colours repeat with other markers.
const char* const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#7F7F7F"};
constexpr int palette_size = 7;
const int markers[] = {7, 5, 9, 11, 13, 15, 4, 6, 8};
constexpr int marker_count = 9;
std::string colour(std::size_t i) { return std::string("rgb '") + palette[i % palette_size] + "'"; }
int marker(std::size_t i) { return markers[i % marker_count]; }

// ulp errors on a log axis: 0 drawn at the floor, inf at the ceiling.
constexpr double ulp_floor = 1e-3, ulp_ceiling = 1e10;
double clamp_ulp(double v) { return std::isinf(v) || v > ulp_ceiling ? ulp_ceiling : std::max(v, ulp_floor); }

// Empty when the sweep has no scenario with a logit scale (a --filter).
std::string accuracy_script(const sweep_result& s) {
  // Max over the C buckets of the normal families, per implementation and scale.
  std::map<std::string, std::map<double, std::pair<double, double>>> series;  // impl -> sigma -> (loss, grad)
  std::vector<std::string> impls;
  for (const cell& c : s.cells) {
    const auto it = std::find_if(s.scenarios.begin(), s.scenarios.end(),
                                 [&](const scenario_info& i) { return i.id == c.scenario; });
    if (c.failure || c.skipped || it == s.scenarios.end() || it->scale <= 0.0) continue;
    if (std::find(impls.begin(), impls.end(), c.impl) == impls.end()) impls.push_back(c.impl);
    auto& v = series[c.impl][it->scale];
    v.first = std::max(v.first, c[quantity::loss].max);
    v.second = std::max({v.second, c[quantity::grad_target].max, c[quantity::grad_other].max});
  }
  if (impls.empty()) return {};
  std::ostringstream o;
  for (std::size_t i = 0; i < impls.size(); ++i) {
    o << "$d" << i << " << EOD\n";
    for (const auto& [sigma, v] : series[impls[i]]) o << num(sigma) << " " << num(clamp_ulp(v.first)) << " " << num(clamp_ulp(v.second)) << "\n";
    o << "EOD\n";
  }
  o << "set title 'max ulp error vs logit scale (normal logits, max over C in {2..256000})'\n"
       "set logscale xy\nset format y '10^{%L}'\nset xlabel 'sigma of the logits'\n"
       "set ylabel 'max error (float32 ulps); 0 at the bottom, inf at the top'\n"
       "set yrange [" << num(ulp_floor) << ":" << num(ulp_ceiling * 10) << "]\nset xrange [3e-4:3000]\nplot ";
  // Implementations with the same errors draw on top of each other: the
  // markers shrink with the index so that the ones below stay visible.
  for (std::size_t i = 0; i < impls.size(); ++i) {
    const double ps = 1.6 - 0.8 * static_cast<double>(i) / static_cast<double>(std::max<std::size_t>(impls.size() - 1, 1));
    o << (i ? ", " : "") << "$d" << i << " using 1:2 with linespoints lw 2 lc " << colour(i) << " pt " << marker(i)
      << " ps " << num(ps) << " title '" << impls[i] << " loss', $d" << i << " using 1:3 with linespoints lw 2 dt 2 lc "
      << colour(i) << " pt " << marker(i) - 1 << " ps " << num(ps) << " title '" << impls[i] << " gradient'";
  }
  o << "\n";
  return o.str();
}

// Shapes of one family differ in C with the same character (memory-bound
// LLM vocabularies of about 2^27 elements, many short rows, cache-resident
// batches, one long row, (N, C, d..) layouts); lines join points of one
// family only, so two shapes with the same C and different N never form a
// vertical segment.
std::string family_of(const bench_point& p) {
  // Cases of other dtypes ("n4096c32000_bf16", "n512c32000_f64") are their
  // own family: half or twice the bytes.
  if (const auto u = p.shape.find('_'); u != std::string::npos) return p.shape.substr(u + 1) + " logits";
  if (p.shape.find_first_of("dhw", p.shape.find('c')) != std::string::npos) return "(N,C,d..) layout";
  const std::int64_t n = p.classes > 0 ? p.elements / p.classes : 0;
  if (n == 1) return "one row";
  if (p.elements >= (std::int64_t{1} << 26)) return "LLM vocabulary";
  if (n >= 4096) return "many rows";
  return "small batch (cache-resident)";
}

std::string bandwidth_script(const bench_data& b, int threads) {
  // impl -> family -> (C, GB/s)
  std::map<std::string, std::map<std::string, std::vector<std::pair<std::int64_t, double>>>> series;
  std::vector<std::string> families;
  for (const auto& p : b.points)
    if (p.mode == "fwd" && p.threads == threads && p.classes > 0 && !p.pinned) {  // best targets only
      series[p.impl][family_of(p)].push_back({p.classes, p.bytes_per_second / 1e9});
      if (std::find(families.begin(), families.end(), family_of(p)) == families.end()) families.push_back(family_of(p));
    }
  std::sort(families.begin(), families.end());
  std::ostringstream o;
  std::vector<std::string> plots;
  std::size_t impl_index = 0, block = 0;
  for (auto& [impl, by_family] : series) {
    bool titled = false;
    for (auto& [family, v] : by_family) {
      std::sort(v.begin(), v.end());
      o << "$d" << block << " << EOD\n";
      for (const auto& [c, g] : v) o << c << " " << num(g) << "\n";
      o << "EOD\n";
      const auto f = static_cast<std::size_t>(std::find(families.begin(), families.end(), family) - families.begin());
      plots.push_back("$d" + std::to_string(block) + " using 1:2 with linespoints lw 2 lc " + colour(impl_index) +
                      " pt " + std::to_string(marker(f)) + " ps 1.3 " + (titled ? "notitle" : "title '" + impl + "'"));
      titled = true;
      ++block;
    }
    ++impl_index;
  }
  // The markers' key: one entry per family, in black.
  for (std::size_t f = 0; f < families.size(); ++f)
    plots.push_back("NaN with points lc rgb 'black' pt " + std::to_string(marker(f)) + " ps 1.3 title '" + families[f] + "'");
  // The memory roofline for every thread count measured (the plot's own dashed darkest).
  for (const auto& [t, bytes] : b.probe_read)
    plots.push_back(num(bytes / 1e9) + " with lines lw 2 dt " + (t == threads ? "2" : "3") + " lc rgb '" +
                    (t == threads ? "black" : "#999999") + "' title 'read probe, " + std::to_string(t) + " thread" +
                    (t == 1 ? "" : "s") + ": " + num(bytes / 1e9) + " GB/s'");
  o << "set title 'loss (fwd, mean) throughput vs C, " << threads << " thread(s); lines join shapes of one family'\n"
       "set logscale x\nset logscale y\nset format x '10^{%L}'\nset xlabel 'classes C'\n"
       "set ylabel 'GB/s (N*C*4 bytes / time)'\nplot ";
  for (std::size_t i = 0; i < plots.size(); ++i) o << (i ? ", " : "") << plots[i];
  o << "\n";
  return o.str();
}

std::string scaling_script(const bench_data& b, const std::string& shape) {
  std::map<std::string, std::vector<std::pair<int, double>>> series;
  for (const auto& p : b.points)
    if (p.mode == "fwd" && p.shape == shape && !p.pinned) series[p.impl].push_back({p.threads, p.bytes_per_second / 1e9});
  std::ostringstream o;
  std::vector<std::string> names;
  for (auto& [impl, v] : series) {
    std::sort(v.begin(), v.end());
    o << "$d" << names.size() << " << EOD\n";
    for (const auto& [t, g] : v) o << t << " " << num(g) << "\n";
    o << "EOD\n";
    names.push_back(impl);
  }
  o << "$probe << EOD\n";
  for (const auto& [t, v] : b.probe_read) o << t << " " << num(v / 1e9) << "\n";
  o << "EOD\n";
  o << "set title 'thread scaling, " << shape << " fwd'\nset xlabel 'threads'\nset ylabel 'GB/s'\n"
       "set xtics 1\nset xrange [0.5:" << b.max_threads() + 0.5 << "]\nset yrange [0:*]\nplot ";
  for (std::size_t i = 0; i < names.size(); ++i)
    o << "$d" << i << " using 1:2 with linespoints lw 2 lc " << colour(i) << " pt " << marker(i) << " ps 1.3 title '"
      << names[i] << "', ";
  o << "$probe using 1:2 with linespoints lw 2 dt 2 lc rgb 'black' title 'read probe (roofline)'\n";
  return o.str();
}

// Accuracy against speed, one point per implementation and mode: the worst
// error inside the declared domain over the whole sweep (loss for the loss,
// the worse of loss and gradient entries for loss + gradient) against the
// fraction of the CE roofline reached on the headline shape with the most
// threads. Empty when no implementation has both figures.
std::string tradeoff_script(const sweep_result& s, const bench_data& b, const std::string& shape, int threads) {
  struct point {
    std::string impl;
    double loss_ulp = -1.0, grad_ulp = -1.0;  // -1: no figure
  };
  std::vector<point> points;
  for (const cell& c : s.cells) {
    if (c.failure || c.skipped || c.outside || c.dtype != "float32") continue;
    auto it = std::find_if(points.begin(), points.end(), [&](const point& p) { return p.impl == c.impl; });
    if (it == points.end()) it = points.insert(points.end(), point{c.impl});
    if (c[quantity::loss].count) it->loss_ulp = std::max(it->loss_ulp, c[quantity::loss].max);
    for (quantity q : {quantity::loss, quantity::grad_target, quantity::grad_other})
      if (c[q].count) it->grad_ulp = std::max(it->grad_ulp, c[q].max);
  }
  std::ostringstream data[2];  // loss, loss + gradient: x y label
  std::size_t drawn = 0;
  std::vector<std::string> plots;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const point& p = points[i];
    const std::string name = p.impl == "torch" ? "libtorch" : p.impl;  // the bench's name of the peer
    bool any = false;
    for (int k = 0; k < 2; ++k) {
      const bench_point* bp = b.find(name, shape, k ? "fwdbwd" : "fwd", threads);
      const double ulp = k ? p.grad_ulp : p.loss_ulp;
      if (!bp || std::isnan(bp->ce_roofline_fraction) || ulp < 0.0) continue;
      data[k] << num(bp->ce_roofline_fraction) << " " << num(std::max(clamp_ulp(ulp), 0.1)) << " \"" << name << "\"\n";
      any = true;
    }
    if (any) ++drawn;
  }
  if (!drawn) return {};
  std::ostringstream o;
  for (int k = 0; k < 2; ++k) o << "$m" << k << " << EOD\n" << data[k].str() << "EOD\n";
  o << "set title 'accuracy against speed: " << shape << ", " << threads << " thread(s); better is down and right'\n"
       "set logscale xy\nset format y '10^{%L}'\nset format x '%g'\n"
       "set xlabel 'speed: fraction of the CE roofline (min of memory probe and compute floor; 1 = the limit)'\n"
       "set ylabel 'worst error over the sweep (float32 ulps, inside the declared domain)'\n"
       "set ytics add ('≥10^{10} or inf' " << num(ulp_ceiling) << ")\n"
       "set label 'CE roofline' at 1, graph 0.97 right offset -0.5,0 font ',10'\n"
       "set yrange [0.1:*]\nset xrange [0.003:2]\n"
       "set arrow from 1, graph 0 to 1, graph 1 nohead dt 2 lc rgb 'black'\n"
       "set key below\n"
       "plot $m0 using 1:2 with points pt 7 ps 1.6 lc rgb '" << palette[0] << "' title 'loss (fwd)', "
       "$m0 using 1:2:3 with labels offset 0.8,0.7 left font ',10' tc rgb '" << palette[0] << "' notitle, "
       "$m1 using 1:2 with points pt 9 ps 1.6 lc rgb '" << palette[1] << "' title 'loss + gradient (fwdbwd)', "
       "$m1 using 1:2:3 with labels offset 0.8,-0.7 left font ',10' tc rgb '" << palette[1] << "' notitle\n";
  return o.str();
}

}  // namespace

plot_set make_plots(const std::string& out_dir, const sweep_result& sweep, const bench_data& bench) {
  plot_set ps;
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    ps.notes.push_back("gnuplot is not installed (Debian: gnuplot-nox), so there are no plots");
    return ps;
  }
  const fs::path dir(out_dir);
  if (const std::string script = accuracy_script(sweep); script.empty())
    ps.notes.push_back("accuracy_vs_scale.svg: no scenario with normal logits in this run, so no accuracy plot");
  else if (draw(dir, "accuracy_vs_scale", script, ps.notes))
    ps.plots.push_back({"accuracy_vs_scale.svg", "Max ulp error vs logit scale, per implementation"});
  if (!bench.available) {
    ps.notes.push_back("no benchmark results, so no throughput plots");
    return ps;
  }
  const int t = bench.max_threads();
  if (draw(dir, "bandwidth_vs_classes", bandwidth_script(bench, t), ps.notes))
    ps.plots.push_back({"bandwidth_vs_classes.svg", "GB/s vs C with the roofline (" + std::to_string(t) + " threads)"});
  const std::string shape = bench.headline_shape();
  if (!shape.empty() && draw(dir, "thread_scaling", scaling_script(bench, shape), ps.notes))
    ps.plots.push_back({"thread_scaling.svg", "Thread scaling on " + shape + " (fwd)"});
  if (const std::string script = shape.empty() ? "" : tradeoff_script(sweep, bench, shape, t); script.empty())
    ps.notes.push_back("accuracy_vs_speed.svg: no implementation has both a sweep error and a CE roofline fraction");
  else if (draw(dir, "accuracy_vs_speed", script, ps.notes))
    ps.plots.push_back({"accuracy_vs_speed.svg", "Worst ulp error vs fraction of the CE roofline on " + shape +
                                                     " (" + std::to_string(t) + " threads), per implementation"});
  return ps;
}

}  // namespace xent::reports

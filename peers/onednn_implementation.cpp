// oneDNN as an implementation under test: cross-entropy as a user of oneDNN
// composes it (the library has no cross-entropy primitive). The loss is the
// logsoftmax forward primitive over the class axis followed by a gather of
// -w_t lp_t (and, with label smoothing or probability targets, the weighted
// sum of -lp_c); the gradient is the logsoftmax backward primitive applied to
// d loss / d lp. oneDNN computes and writes the P x C log-probabilities; the
// composition around it (gathers, weights, reductions) is ours, in double, so
// that what the suite measures is oneDNN's float32 logsoftmax.
//
// Rows are handed to oneDNN as a dense [P, C] matrix: directly when the
// logits already are one (the benchmarks' case), else as a copy (what a user
// calling .contiguous() pays). Primitives are created once per shape and
// reused, as a user of oneDNN would.
#include "onednn_implementation.hpp"

#include <dnnl.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "xent/kernel/implementation.hpp"
#include "xent/kernel/problem.hpp"

namespace xent::peers {
namespace {

const dnnl::engine& cpu() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// The forward and backward primitives of one [P, C] shape.
struct primitives {
  dnnl::logsoftmax_forward forward;
  dnnl::logsoftmax_backward backward;
};

// Created on first use per shape, then shared (oneDNN primitives may run
// concurrently). Bounded: an accuracy sweep visits many shapes.
std::shared_ptr<const primitives> primitives_for(std::int64_t P, std::int64_t C) {
  static std::mutex m;
  static std::map<std::pair<std::int64_t, std::int64_t>, std::shared_ptr<const primitives>> cache;
  const std::lock_guard<std::mutex> lock(m);
  if (auto it = cache.find({P, C}); it != cache.end()) return it->second;
  if (cache.size() >= 64) cache.clear();
  const dnnl::memory::desc md({P, C}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
  const dnnl::logsoftmax_forward::primitive_desc fwd(
      dnnl::logsoftmax_forward::desc(dnnl::prop_kind::forward_training, md, 1), cpu());
  const dnnl::logsoftmax_backward::primitive_desc bwd(dnnl::logsoftmax_backward::desc(md, md, 1), cpu(), fwd);
  auto made = std::make_shared<const primitives>(primitives{dnnl::logsoftmax_forward(fwd), dnnl::logsoftmax_backward(bwd)});
  cache.emplace(std::make_pair(P, C), made);
  return made;
}

// Is the tensor with these strides a dense [P, C] matrix (one position
// dimension after merging, rows C apart, classes adjacent)?
bool dense_rows(const problem& p, std::int64_t class_stride, const std::vector<std::int64_t>& position_strides) {
  if (class_stride != 1 && p.classes > 1) return false;
  if (p.position_shape.empty()) return true;
  return p.position_shape.size() == 1 && (position_strides[0] == p.classes || p.positions == 1);
}

// Per-thread buffers, kept between calls as a user would keep them.
struct buffers {
  std::vector<float> x, lp, diff_lp, diff_x;
};
buffers& scratch() {
  thread_local buffers b;
  return b;
}

class onednn_implementation final : public implementation {
 public:
  std::string name() const override { return "onednn"; }
  std::string description() const override {
    const dnnl_version_t* v = dnnl_version();
    return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
           " logsoftmax forward + gather (loss), logsoftmax backward (gradient); writes the P x C "
           "log-probabilities (external peer)";
  }
  xent::tier tier() const override { return tier::standard; }
  std::string domain() const override { return "all inputs"; }
  // oneDNN promises nothing about the bits across thread counts or layouts.
  bool thread_count_independent() const override { return false; }
  bool layout_independent() const override { return false; }
  bool peer() const override { return true; }
  void forward(const problem& p) const override { run(p, false); }
  void forward_backward(const problem& p) const override { run(p, true); }

 private:
  static void run(const problem& p, bool with_grad) {
    try {
      compute(p, with_grad);
    } catch (const dnnl::error& e) {
      // Inputs were validated by the front door: oneDNN refusing one is a
      // disagreement worth a clear message, not an xent::error.
      throw std::runtime_error(std::string("oneDNN refused the problem: ") + e.what());
    }
  }

  static void compute(const problem& p, bool with_grad) {
    const std::int64_t P = p.positions, C = p.classes;
    const bool none = p.reduce == reduction::none;
    const bool index = p.target == target_kind::index;
    const double eps = p.label_smoothing;
    buffers& b = scratch();
    const auto n = static_cast<std::size_t>(P * C);

    // Log-probabilities of every row (oneDNN), unless there is no row.
    const float* lp = nullptr;
    std::shared_ptr<const primitives> prim;
    dnnl::stream stream;
    if (P > 0) {
      prim = primitives_for(P, C);
      stream = dnnl::stream(cpu());
      const float* x = p.logits;
      if (!dense_rows(p, p.logits_class_stride, p.logits_position_strides)) {
        b.x.resize(n);
        for (std::int64_t r = 0; r < P; ++r) {
          const float* row = p.logits_row(r);
          for (std::int64_t c = 0; c < C; ++c) b.x[static_cast<std::size_t>(r * C + c)] = row[c * p.logits_class_stride];
        }
        x = b.x.data();
      }
      b.lp.resize(n);
      const dnnl::memory::desc md({P, C}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
      dnnl::memory src(md, cpu(), const_cast<float*>(x)), dst(md, cpu(), b.lp.data());
      prim->forward.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
      stream.wait();
      lp = b.lp.data();
    }

    // The coefficient of lp[r, c] in the loss of row r: the loss is
    // -sum_c a_c lp_c (PyTorch's composition, docs/design.md §2).
    auto coefficient = [&](std::int64_t r, std::int64_t c, std::int64_t t) -> double {
      const double w = p.weight_at(c);
      if (index) return (1.0 - eps) * (c == t ? w : 0.0) + eps / static_cast<double>(C) * w;
      const double q = p.target_row(r)[c * p.target_class_stride];
      return w * ((1.0 - eps) * q + eps / static_cast<double>(C));
    };

    // Losses, and the denominator of the mean.
    double total = 0.0, denominator = index ? 0.0 : static_cast<double>(P);
    for (std::int64_t r = 0; r < P; ++r) {
      double loss = 0.0;
      if (p.counted(r)) {
        const std::int64_t t = index ? p.target_at(r) : -1;
        const float* row = lp + r * C;
        if (index && eps == 0.0) {
          loss = -static_cast<double>(p.weight_at(t)) * row[t];
        } else {
          for (std::int64_t c = 0; c < C; ++c) loss -= coefficient(r, c, t) * row[c];
        }
        if (index) denominator += p.weight_at(t);
      }
      if (none) *p.loss_at(r) = static_cast<float>(loss);
      total += loss;
    }
    if (!none) *p.loss = static_cast<float>(p.reduce == reduction::mean ? total / denominator : total);
    if (!with_grad || P == 0) return;

    // d loss / d lp, then the logsoftmax backward primitive.
    b.diff_lp.assign(n, 0.0f);
    for (std::int64_t r = 0; r < P; ++r) {
      if (!p.counted(r)) continue;
      const double g = none ? p.upstream_at(r)
                            : p.upstream_scalar / (p.reduce == reduction::mean ? denominator : 1.0);
      const std::int64_t t = index ? p.target_at(r) : -1;
      float* d = b.diff_lp.data() + r * C;
      if (index && eps == 0.0) d[t] = static_cast<float>(-g * p.weight_at(t));
      else
        for (std::int64_t c = 0; c < C; ++c) d[c] = static_cast<float>(-g * coefficient(r, c, t));
    }
    const bool direct = dense_rows(p, p.grad_class_stride, p.grad_position_strides);
    if (!direct) b.diff_x.resize(n);
    float* diff_x = direct ? p.grad : b.diff_x.data();
    const dnnl::memory::desc md({P, C}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
    dnnl::memory dst(md, cpu(), b.lp.data()), diff_dst(md, cpu(), b.diff_lp.data()), diff_src(md, cpu(), diff_x);
    prim->backward.execute(stream, {{DNNL_ARG_DST, dst}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_SRC, diff_src}});
    stream.wait();
    // Ignored rows: a zero gradient whatever the logits (PyTorch masks them).
    for (std::int64_t r = 0; r < P; ++r)
      if (!p.counted(r))
        for (std::int64_t c = 0; c < C; ++c) diff_x[r * C + c] = 0.0f;
    if (!direct)
      for (std::int64_t r = 0; r < P; ++r) {
        float* g = p.grad_row(r);
        for (std::int64_t c = 0; c < C; ++c) g[c * p.grad_class_stride] = diff_x[r * C + c];
      }
  }
};

}  // namespace

void register_onednn() {
  if (find_implementation("onednn")) return;
  register_implementation(std::make_unique<onednn_implementation>());
}

void release_onednn_buffers() { scratch() = buffers{}; }

std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

std::string onednn_isa() {
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_all: return "all";
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "unknown (" + std::to_string(static_cast<int>(dnnl_get_effective_cpu_isa())) + ")";
  }
}

}  // namespace xent::peers

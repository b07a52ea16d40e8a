// The one translation unit that includes LibTorch for the implementation
// under test: torch::nn::functional::cross_entropy on views of the problem's
// buffers (from_blob with the problem's strides, no copy unless a stride is
// negative), the gradient through autograd with the problem's upstream
// gradient, results copied into the problem's outputs through their strides.
// Also the benchmark's session (libtorch::session): a training step on the
// bench's buffers, with LibTorch's tensor storage counted.
#include "torch_implementation.hpp"

#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "xent/error.hpp"
#include "xent/kernel/capabilities.hpp"
#include "xent/kernel/implementation.hpp"
#include "xent/kernel/problem.hpp"
#include "xent/tensor.hpp"

namespace xent::peers {
namespace {

namespace F = torch::nn::functional;
using shape_t = std::vector<std::int64_t>;

// (s0, C, s1..sk) from the position dims and the class dim; (C) for one position.
shape_t with_class(const shape_t& positions_shape, const shape_t& pos, std::int64_t cls) {
  if (positions_shape.empty()) return {cls};
  shape_t v{pos[0], cls};
  v.insert(v.end(), pos.begin() + 1, pos.end());
  return v;
}

shape_t contiguous(const shape_t& s) {
  shape_t st(s.size());
  std::int64_t k = 1;
  for (std::size_t d = s.size(); d-- > 0;) {
    st[d] = k;
    k *= s[d];
  }
  return st;
}

template <class T>
void copy_strided(const T* src, const shape_t& ss, T* dst, const shape_t& ds, const shape_t& shape) {
  const std::int64_t n = numel(shape);
  shape_t idx(shape.size(), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t so = 0, dso = 0;
    for (std::size_t d = 0; d < shape.size(); ++d) {
      so += idx[d] * ss[d];
      dso += idx[d] * ds[d];
    }
    dst[dso] = src[so];
    for (std::size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// A read-only tensor over caller memory: a view when LibTorch can express the
// strides (non-negative), else a contiguous copy.
template <class T>
torch::Tensor input(const T* data, const shape_t& shape, const shape_t& strides, torch::Dtype type) {
  const auto opts = torch::TensorOptions().dtype(type);
  bool negative = false;
  for (auto s : strides) negative = negative || s < 0;
  if (!negative) return torch::from_blob(const_cast<T*>(data), shape, strides, opts);
  torch::Tensor t = torch::empty(shape, opts);
  copy_strided(data, strides, static_cast<T*>(t.data_ptr()), contiguous(shape), shape);
  return t;
}

// A floating input of the problem's dtype `t` (float32, float64 or
// bfloat16: the 16-bit patterns are LibTorch's kBFloat16 elements as they are).
torch::Tensor floating_input(const float* data, const shape_t& shape, const shape_t& strides, dtype t) {
  if (t == dtype::f32) return input(data, shape, strides, torch::kFloat32);
  if (t == dtype::f64) return input(reinterpret_cast<const double*>(data), shape, strides, torch::kFloat64);
  return input(reinterpret_cast<const std::uint16_t*>(data), shape, strides, torch::kBFloat16);
}

torch::Dtype torch_type(dtype t) {
  return t == dtype::f32 ? torch::kFloat32 : t == dtype::f64 ? torch::kFloat64 : torch::kBFloat16;
}

// r converted to `t` (exact for LibTorch's own results of that dtype) into dst.
void output(const torch::Tensor& r, float* dst, const shape_t& dst_strides, const shape_t& shape, dtype t) {
  const torch::Tensor c = r.detach().to(torch_type(t)).contiguous();
  if (t == dtype::f32) {
    copy_strided(c.data_ptr<float>(), contiguous(shape), dst, dst_strides, shape);
  } else if (t == dtype::f64) {
    copy_strided(c.data_ptr<double>(), contiguous(shape), reinterpret_cast<double*>(dst), dst_strides, shape);
  } else {
    copy_strided(static_cast<const std::uint16_t*>(c.data_ptr()), contiguous(shape),
                 reinterpret_cast<std::uint16_t*>(dst), dst_strides, shape);
  }
}

class torch_implementation final : public implementation {
 public:
  std::string name() const override { return "torch"; }
  std::string description() const override {
    return "LibTorch " TORCH_VERSION " torch::nn::functional::cross_entropy, gradient by autograd (external peer)";
  }
  xent::tier tier() const override { return tier::standard; }
  std::string domain() const override { return "all inputs"; }
  // ATen's reductions split work by thread count: no bitwise promise.
  bool thread_count_independent() const override { return false; }
  // A strided view and its .contiguous() copy differ in the last bits.
  bool layout_independent() const override { return false; }
  bool peer() const override { return true; }
  // float64, and bfloat16 as PyTorch computes it (a bfloat16 loss);
  // float16's log_softmax is not implemented on the CPU (docs/dtypes.md).
  std::uint32_t dtypes() const override {
    return XENT_PLUGIN_DTYPE_FLOAT32 | dtype_bfloat16_bit | dtype_float64_bit;
  }
  void forward(const problem& p) const override { run(p, false); }
  void forward_backward(const problem& p) const override { run(p, true); }

 private:
  static void run(const problem& p, bool with_grad) {
    try {
      compute(p, with_grad);
    } catch (const c10::Error& e) {
      // Inputs were validated by the front door: LibTorch refusing one is a
      // disagreement worth a clear message, not an xent::error.
      throw std::runtime_error(std::string("LibTorch refused the problem: ") + e.what_without_backtrace());
    }
  }

  static void compute(const problem& p, bool with_grad) {
    const shape_t& ps = p.position_shape;
    const shape_t xs = with_class(ps, ps, p.classes);
    if (p.out_type != p.type)
      throw std::runtime_error("LibTorch computes the loss in the logits' dtype (" + to_string(p.type) +
                               "): a " + to_string(p.out_type) + " out is not a PyTorch option");
    torch::Tensor x = floating_input(p.logits, xs, with_class(ps, p.logits_position_strides, p.logits_class_stride),
                                     p.type);
    torch::Tensor t =
        p.target == target_kind::index
            ? input(p.target_index, ps, p.target_position_strides, torch::kInt64)
            : floating_input(p.target_prob, xs, with_class(ps, p.target_position_strides, p.target_class_stride),
                             p.type);
    auto opt = F::CrossEntropyFuncOptions().ignore_index(p.ignore_index).label_smoothing(p.label_smoothing);
    switch (p.reduce) {
      case reduction::none: opt.reduction(torch::kNone); break;
      case reduction::mean: opt.reduction(torch::kMean); break;
      case reduction::sum: opt.reduction(torch::kSum); break;
    }
    if (p.weight) opt.weight(floating_input(p.weight, {p.classes}, {p.weight_stride}, p.type));
    const bool none = p.reduce == reduction::none;

    if (!with_grad) {
      torch::NoGradGuard no_grad;
      const torch::Tensor out = F::cross_entropy(x, t, opt);
      if (none) output(out, p.loss, p.loss_position_strides, ps, p.out_type);
      else p.store_reduced(out.to(torch::kFloat64).item<double>());  // exact: a value of the dtype
      return;
    }
    torch::Tensor leaf = x.detach().requires_grad_(true);
    torch::Tensor out = F::cross_entropy(leaf, t, opt);
    torch::Tensor up;
    if (!none) up = torch::full({}, p.upstream_scalar_wide, torch_type(p.type));
    else if (p.upstream) up = floating_input(p.upstream, ps, p.upstream_position_strides, p.type);
    else up = torch::full(ps, p.upstream_scalar_wide, torch_type(p.type));
    out.backward(up);
    // The loss first: the gradient may overwrite the logits (in-place), which
    // `out` does not read any more.
    if (none) output(out, p.loss, p.loss_position_strides, ps, p.out_type);
    else p.store_reduced(out.detach().to(torch::kFloat64).item<double>());
    const torch::Tensor g = leaf.grad().defined() ? leaf.grad() : torch::zeros(xs, torch_type(p.type));
    output(g, p.grad, with_class(ps, p.grad_position_strides, p.grad_class_stride), xs, p.type);
  }
};

}  // namespace

void register_torch() {
  if (find_implementation("torch")) return;
  register_implementation(std::make_unique<torch_implementation>());
}

std::string torch_version() { return TORCH_VERSION; }

// ---- the benchmark's session ----------------------------------------------

namespace libtorch {

namespace {

// LibTorch's CPU allocator with a count of live tensor-storage bytes and
// their peak (its storage comes from posix_memalign, which neither our
// operator new count nor, once glibc keeps freed blocks, the RSS sees).
// Each block carries its size in a 64-byte header, so that a plain deleter
// (raw_deleter) can free it.
std::atomic<std::int64_t> live{0}, peak{0};
constexpr std::size_t header = 64;  // keeps LibTorch's 64-byte alignment

void counted_free(void* data) {
  if (!data) return;
  void* raw = static_cast<char*>(data) - header;
  std::int64_t n;
  std::memcpy(&n, raw, sizeof n);
  live.fetch_sub(n, std::memory_order_relaxed);
  c10::free_cpu(raw);
}

struct counting_allocator final : at::Allocator {
  at::DataPtr allocate(std::size_t n) const override {
    void* raw = c10::alloc_cpu(n + header);
    const auto bytes = static_cast<std::int64_t>(n);
    std::memcpy(raw, &bytes, sizeof bytes);
    const std::int64_t now = live.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    std::int64_t old = peak.load(std::memory_order_relaxed);
    while (now > old && !peak.compare_exchange_weak(old, now, std::memory_order_relaxed)) {
    }
    void* data = static_cast<char*>(raw) + header;
    return {data, data, &counted_free, at::Device(at::DeviceType::CPU)};
  }
  at::DeleterFnPtr raw_deleter() const override { return &counted_free; }
};

void install_allocator() {
  static const bool done = [] {
    c10::SetCPUAllocator(new counting_allocator, /*priority=*/1);  // LibTorch owns it
    return true;
  }();
  (void)done;
}

}  // namespace

std::int64_t storage_base = 0;

void reset_storage_peak() {
  install_allocator();
  storage_base = live.load();
  peak.store(storage_base);
}

std::int64_t storage_peak_extra_bytes() { return peak.load() - storage_base; }

struct session::state {
  torch::Tensor x, t, out, grad;
  F::CrossEntropyFuncOptions opt;
  bool backward = false;
  bool none = false;
};

session::session(const void* logits, xent::dtype type, std::vector<std::int64_t> shape, const std::int64_t* target,
                 const std::string& reduction, bool backward)
    : s_(std::make_unique<state>()) {
  install_allocator();
  auto& s = *s_;
  s.backward = backward;
  s.none = reduction == "none";
  // Views of our buffers, no copy (the logits are never written), made as the
  // implementation makes them.
  s.x = floating_input(static_cast<const float*>(logits), shape, contiguous(shape), type);
  std::vector<std::int64_t> tshape(shape);
  tshape.erase(tshape.begin() + 1);  // class axis
  s.t = input(target, tshape, contiguous(tshape), torch::kInt64);
  if (backward) s.x.requires_grad_(true);
  if (reduction == "none") s.opt = F::CrossEntropyFuncOptions().reduction(torch::kNone);
  else if (reduction == "sum") s.opt = F::CrossEntropyFuncOptions().reduction(torch::kSum);
  else s.opt = F::CrossEntropyFuncOptions().reduction(torch::kMean);
}

session::~session() = default;

void session::clear() {
  s_->out = torch::Tensor();
  s_->grad = torch::Tensor();
}

void session::run() {
  auto& s = *s_;
  // Drop the previous results first, as a training step does with the last
  // step's loss and gradient.
  clear();
  if (!s.backward) {
    torch::NoGradGuard no_grad;
    s.out = F::cross_entropy(s.x, s.t, s.opt);
    return;
  }
  s.x.mutable_grad() = torch::Tensor();
  s.out = F::cross_entropy(s.x, s.t, s.opt);
  if (s.none) s.out.backward(torch::ones_like(s.out));
  else s.out.backward();
  s.grad = s.x.grad();
  s.x.mutable_grad() = torch::Tensor();
}

std::int64_t session::loss_numel() const { return s_->out.defined() ? s_->out.numel() : 0; }

void session::loss(float* out) const {
  const torch::Tensor o = s_->out.detach().to(torch::kFloat32).contiguous();
  std::memcpy(out, o.data_ptr<float>(), static_cast<std::size_t>(o.numel()) * sizeof(float));
}

void session::grad(float* out) const {
  const torch::Tensor g = s_->grad.to(torch::kFloat32).contiguous();
  std::memcpy(out, g.data_ptr<float>(), static_cast<std::size_t>(g.numel()) * sizeof(float));
}

void set_threads(int n) { at::set_num_threads(n); }
int threads() { return at::get_num_threads(); }

std::string parallel_info() {
  // at::get_parallel_info() is multi-line; keep the lines that matter.
  std::istringstream in(at::get_parallel_info());
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.find("ATen/Parallel") != std::string::npos || line.find("at::get_num") != std::string::npos ||
        line.find("parallel backend") != std::string::npos || line.find("OpenMP") != std::string::npos) {
      const auto b = line.find_first_not_of(" \t");
      if (b == std::string::npos || line.compare(b, std::string::npos, "ATen/Parallel:") == 0) continue;
      if (!out.empty()) out += "; ";
      out += line.substr(b);
    }
  }
  return out;
}

}  // namespace libtorch

}  // namespace xent::peers

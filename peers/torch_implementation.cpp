// The one translation unit that includes LibTorch for the implementation
// under test: torch::nn::functional::cross_entropy on views of the problem's
// buffers (from_blob with the problem's strides, no copy unless a stride is
// negative), the gradient through autograd with the problem's upstream
// gradient, results copied into the problem's outputs through their strides.
#include "torch_implementation.hpp"

#include <torch/torch.h>
#include <torch/version.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "xent/error.hpp"
#include "xent/implementation.hpp"
#include "xent/problem.hpp"
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
  copy_strided(data, strides, t.data_ptr<T>(), contiguous(shape), shape);
  return t;
}

void output(const torch::Tensor& r, float* dst, const shape_t& dst_strides, const shape_t& shape) {
  const torch::Tensor c = r.detach().to(torch::kFloat32).contiguous();
  copy_strided(c.data_ptr<float>(), contiguous(shape), dst, dst_strides, shape);
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
    torch::Tensor x = input(p.logits, xs, with_class(ps, p.logits_position_strides, p.logits_class_stride),
                            torch::kFloat32);
    torch::Tensor t =
        p.target == target_kind::index
            ? input(p.target_index, ps, p.target_position_strides, torch::kInt64)
            : input(p.target_prob, xs, with_class(ps, p.target_position_strides, p.target_class_stride),
                    torch::kFloat32);
    auto opt = F::CrossEntropyFuncOptions().ignore_index(p.ignore_index).label_smoothing(p.label_smoothing);
    switch (p.reduce) {
      case reduction::none: opt.reduction(torch::kNone); break;
      case reduction::mean: opt.reduction(torch::kMean); break;
      case reduction::sum: opt.reduction(torch::kSum); break;
    }
    if (p.weight) opt.weight(input(p.weight, {p.classes}, {p.weight_stride}, torch::kFloat32));
    const bool none = p.reduce == reduction::none;

    if (!with_grad) {
      torch::NoGradGuard no_grad;
      const torch::Tensor out = F::cross_entropy(x, t, opt);
      if (none) output(out, p.loss, p.loss_position_strides, ps);
      else *p.loss = out.item<float>();
      return;
    }
    torch::Tensor leaf = x.detach().requires_grad_(true);
    torch::Tensor out = F::cross_entropy(leaf, t, opt);
    torch::Tensor up;
    if (!none) up = torch::full({}, p.upstream_scalar, torch::kFloat32);
    else if (p.upstream) up = input(p.upstream, ps, p.upstream_position_strides, torch::kFloat32);
    else up = torch::full(ps, p.upstream_scalar, torch::kFloat32);
    out.backward(up);
    // The loss first: the gradient may overwrite the logits (in-place), which
    // `out` does not read any more.
    if (none) output(out, p.loss, p.loss_position_strides, ps);
    else *p.loss = out.detach().item<float>();
    const torch::Tensor g = leaf.grad().defined() ? leaf.grad() : torch::zeros(xs, torch::kFloat32);
    output(g, p.grad, with_class(ps, p.grad_position_strides, p.grad_class_stride), xs);
  }
};

}  // namespace

void register_torch() {
  if (find_implementation("torch")) return;
  register_implementation(std::make_unique<torch_implementation>());
}

std::string torch_version() { return TORCH_VERSION; }

}  // namespace xent::peers

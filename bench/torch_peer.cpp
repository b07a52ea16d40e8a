// The one translation unit that includes LibTorch (slow to compile; keep it small).
#include "torch_peer.hpp"

#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <atomic>
#include <cstring>
#include <sstream>

namespace xent_bench::torch_peer {

namespace F = torch::nn::functional;

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

session::session(const float* logits, std::vector<std::int64_t> shape, const std::int64_t* target,
                 const std::string& reduction, bool backward)
    : s_(std::make_unique<state>()) {
  install_allocator();
  auto& s = *s_;
  s.backward = backward;
  s.none = reduction == "none";
  // from_blob: views of our buffers, no copy (the logits are never written).
  s.x = torch::from_blob(const_cast<float*>(logits), shape, torch::kFloat32);
  std::vector<std::int64_t> tshape(shape);
  tshape.erase(tshape.begin() + 1);  // class axis
  s.t = torch::from_blob(const_cast<std::int64_t*>(target), tshape, torch::kInt64);
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
  const torch::Tensor o = s_->out.detach().contiguous();
  std::memcpy(out, o.data_ptr<float>(), static_cast<std::size_t>(o.numel()) * sizeof(float));
}

void session::grad(float* out) const {
  const torch::Tensor g = s_->grad.contiguous();
  std::memcpy(out, g.data_ptr<float>(), static_cast<std::size_t>(g.numel()) * sizeof(float));
}

void set_threads(int n) { at::set_num_threads(n); }
int threads() { return at::get_num_threads(); }
std::string version() { return TORCH_VERSION; }

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

}  // namespace xent_bench::torch_peer

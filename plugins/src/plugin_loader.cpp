// Plug-ins (xent/kernel/plugin.h): dlopen, ABI check, and an implementation that
// forwards a validated problem to the plug-in as DLPack tensors. Errors come
// back as codes and a message buffer; with isolation::per_call each call runs
// in a forked child (xent/child_process.hpp) so that a crash or a hang
// becomes an exception.
#include "xent/plugin_loader.hpp"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "xent/child_process.hpp"
#include "xent/error.hpp"
#include "xent/kernel/capabilities.hpp"
#include "xent/kernel/plugin.h"
#include "xent/kernel/problem.hpp"

namespace xent::plugins {
namespace {

constexpr std::size_t message_size = 1024;

DLDataType i64() { return {kDLInt, 64, 1}; }
DLDataType dl_type(dtype t) {
  switch (t) {
    case dtype::bf16: return {kDLBfloat, 16, 1};
    case dtype::f16: return {kDLFloat, 16, 1};
    case dtype::f64: return {kDLFloat, 64, 1};
    default: return {kDLFloat, 32, 1};
  }
}

// The DLTensors of one call and the shape/stride arrays they point into.
struct call_tensors {
  std::vector<std::int64_t> x_shape, x_strides, t_shape, t_strides, l_shape, l_strides, g_strides,
      u_shape, u_strides, w_shape{0}, w_strides{1};
  DLTensor logits{}, target{}, loss{}, grad{}, upstream{}, weight{};
  float upstream_value = 1.0f;  // the scalar upstream, in the loss's dtype
  std::uint16_t upstream_value16 = 0;
  double upstream_value64 = 1.0;
  xent_plugin_options opt{};
  bool with_grad = false;

  call_tensors(const call_tensors&) = delete;
  call_tensors& operator=(const call_tensors&) = delete;

  // one_row_as_rows: a single position goes as (1, C) rows, not as (C) logits
  // with a 0-d target (for kernels that declare rows but not the (C) layout).
  call_tensors(const problem& p, bool grad_wanted, bool one_row_as_rows) : with_grad(grad_wanted) {
    std::vector<std::int64_t> ps = p.position_shape;
    if (ps.empty() && one_row_as_rows) ps = {1};
    // Position dims around the class axis: (s0, C, s1..sk); (C) for one position.
    auto with_class = [&](const std::vector<std::int64_t>& pos, std::int64_t cls) {
      std::vector<std::int64_t> v;
      if (ps.empty()) return std::vector<std::int64_t>{cls};
      v.push_back(pos[0]);
      v.push_back(cls);
      v.insert(v.end(), pos.begin() + 1, pos.end());
      return v;
    };
    x_shape = with_class(ps, p.classes);
    // The one row's position stride is never used; the dense value keeps a
    // dense row dense.
    const bool lifted = ps.size() == 1 && p.position_shape.empty();
    auto pos_strides = [&](const std::vector<std::int64_t>& strides, std::int64_t row) {
      return lifted ? std::vector<std::int64_t>{row} : strides;
    };
    x_strides = with_class(pos_strides(p.logits_position_strides, p.classes * p.logits_class_stride),
                           p.logits_class_stride);
    const DLDataType xt = dl_type(p.type), lt = dl_type(p.out_type);
    logits = make(const_cast<float*>(p.logits), xt, x_shape, x_strides);

    if (p.target == target_kind::index) {
      t_shape = ps;
      t_strides = pos_strides(p.target_position_strides, 1);
      target = make(const_cast<std::int64_t*>(p.target_index), i64(), t_shape, t_strides);
    } else {
      t_shape = x_shape;
      t_strides = with_class(pos_strides(p.target_position_strides, p.classes * p.target_class_stride),
                             p.target_class_stride);
      target = make(const_cast<float*>(p.target_prob), xt, t_shape, t_strides);
    }

    if (p.reduce == reduction::none) {
      l_shape = ps;
      l_strides = pos_strides(p.loss_position_strides, 1);
    }
    loss = make(p.loss, lt, l_shape, l_strides);

    if (with_grad) {
      g_strides = with_class(pos_strides(p.grad_position_strides, p.classes * p.grad_class_stride),
                             p.grad_class_stride);
      grad = make(p.grad, xt, x_shape, g_strides);
      upstream_value = p.upstream_scalar;
      void* scalar = &upstream_value;
      if (p.out_type == dtype::f64) {
        upstream_value64 = p.upstream_scalar_wide;
        scalar = &upstream_value64;
      } else if (p.out_type != dtype::f32) {
        upstream_value16 = narrow(p.upstream_scalar, p.out_type);  // exact: a value of the dtype
        scalar = &upstream_value16;
      }
      if (p.reduce == reduction::none) {
        u_shape = ps;
        u_strides = p.upstream ? pos_strides(p.upstream_position_strides, 1)
                               : std::vector<std::int64_t>(ps.size(), 0);
      }
      upstream = make(p.upstream ? const_cast<float*>(p.upstream) : scalar, lt, u_shape, u_strides);
    }

    opt.struct_size = sizeof opt;
    opt.reduction = p.reduce == reduction::none   ? XENT_PLUGIN_REDUCTION_NONE
                    : p.reduce == reduction::mean ? XENT_PLUGIN_REDUCTION_MEAN
                                                  : XENT_PLUGIN_REDUCTION_SUM;
    opt.ignore_index = p.ignore_index;
    opt.label_smoothing = p.label_smoothing;
    opt.probability_targets = p.target == target_kind::probability ? 1 : 0;
    if (p.weight) {
      w_shape[0] = p.classes;
      w_strides[0] = p.weight_stride;
      weight = make(const_cast<float*>(p.weight), xt, w_shape, w_strides);
      opt.weight = &weight;
    }
  }

  static DLTensor make(void* data, DLDataType type, std::vector<std::int64_t>& shape,
                       std::vector<std::int64_t>& strides) {
    DLTensor t{};
    t.data = data;
    t.device = {kDLCPU, 0};
    t.ndim = static_cast<std::int32_t>(shape.size());
    t.dtype = type;
    t.shape = shape.data();
    t.strides = strides.data();
    t.byte_offset = 0;
    return t;
  }
};

std::string status_name(std::int32_t s) {
  switch (s) {
    case XENT_PLUGIN_ERROR_UNSUPPORTED: return "unsupported";
    case XENT_PLUGIN_ERROR_INVALID: return "invalid";
    case XENT_PLUGIN_ERROR_INTERNAL: return "internal";
    default: return "code " + std::to_string(s);
  }
}

// The region a per_call child fills: status, message, then the loss values
// (P, or 1) and the gradient (P x C), in logical (position, class) order.
struct shared_header {
  std::int32_t returned;  // 1 once the plug-in returned
  std::int32_t status;
  char message[message_size];
};

class shared_region {
 public:
  explicit shared_region(std::size_t bytes) : size_(bytes) {
    void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw plugin_error(std::string("mmap failed: ") + std::strerror(errno));
    base_ = m;
  }
  ~shared_region() { munmap(base_, size_); }
  shared_region(const shared_region&) = delete;
  shared_region& operator=(const shared_region&) = delete;
  shared_header* header() const { return static_cast<shared_header*>(base_); }
  double* values() const { return reinterpret_cast<double*>(static_cast<char*>(base_) + sizeof(shared_header)); }

 private:
  void* base_ = nullptr;
  std::size_t size_;
};

class plugin_implementation final : public implementation {
 public:
  plugin_implementation(std::string path, void* handle, const xent_plugin* d, const load_options& o)
      : path_(std::move(path)), handle_(handle), d_(d), options_(o) {
    isolate_.store(o.isolate);
  }

  std::string name() const override { return d_->name; }
  std::string description() const override {
    return std::string(d_->description ? d_->description : "") + " [plug-in " + path_ + "]";
  }
  xent::tier tier() const override {
    if (options_.tier_override) return *options_.tier_override;
    switch (d_->tier) {  // checked by validate_descriptor
      case XENT_PLUGIN_TIER_ACCURATE: return xent::tier::accurate;
      case XENT_PLUGIN_TIER_FAST: return xent::tier::fast;
      case XENT_PLUGIN_TIER_RELAXED: return xent::tier::relaxed;
      case XENT_PLUGIN_TIER_STANDARD: return xent::tier::standard;
      default: return xent::tier::naive;
    }
  }
  std::string domain() const override { return "all inputs"; }
  bool thread_count_independent() const override { return d_->thread_count_independent != 0; }
  bool layout_independent() const override { return false; }  // not declared by the ABI
  // 16-bit logits go only to a plug-in that declares them.
  std::uint32_t dtypes() const override {
    const auto c = declared_capabilities();
    return c ? c->dtypes : XENT_PLUGIN_DTYPE_FLOAT32;
  }
  std::optional<capabilities> declared_capabilities() const override {
    if (d_->struct_size < sizeof(xent_plugin) || d_->declared == 0) return std::nullopt;
    capabilities c;
    c.layouts = d_->layouts;
    c.targets = d_->targets;
    c.options = d_->options;
    c.reductions = d_->reductions;
    c.modes = d_->modes;
    c.dtypes = d_->dtypes;
    return c;
  }
  void forward(const problem& p) const override { call(p, false); }
  void forward_backward(const problem& p) const override { call(p, true); }

  const std::string& path() const { return path_; }
  void set_isolation(isolation i) const { isolate_.store(i); }

 private:
  // A single position goes as (1, C) rows to a kernel that declares rows
  // but not the (C) layout; as (C) to every other.
  bool one_row_as_rows() const {
    const auto c = declared_capabilities();
    return c && !(c->layouts & XENT_PLUGIN_LAYOUT_SINGLE);
  }

  std::int32_t invoke(const problem& p, bool with_grad, char* message) const {
    call_tensors t(p, with_grad, one_row_as_rows());
    message[0] = '\0';
    return with_grad ? d_->forward_backward(&t.logits, &t.target, &t.loss, &t.grad, &t.upstream, &t.opt,
                                            message, message_size)
                     : d_->forward(&t.logits, &t.target, &t.loss, &t.opt, message, message_size);
  }

  [[noreturn]] void fail(const problem& p, bool with_grad, std::int32_t status, const char* message) const {
    std::string m(message, strnlen(message, message_size));
    std::string what = "plug-in '";
    what += name();
    what += "' failed in ";
    what += with_grad ? "forward_backward" : "forward";
    what += " (" + status_name(status) + ")";
    if (!m.empty()) what += ": " + m;
    if (status == XENT_PLUGIN_ERROR_UNSUPPORTED) {
      // Inside its declaration the kernel broke its word: a failure. Outside
      // it (or with no declaration) the caller skips the case.
      capabilities needs = needs_of(p, with_grad);
      if (one_row_as_rows() && needs.layouts == XENT_PLUGIN_LAYOUT_SINGLE) needs.layouts = XENT_PLUGIN_LAYOUT_ROWS;
      const auto declared = declared_capabilities();
      if (!declared) throw plugin_unsupported(what + " [no declared capabilities]");
      if (const auto missing = declared->missing(needs))
        throw plugin_unsupported(what + " [outside its declaration: " + *missing + "]");
      what += " -- UNSUPPORTED inside its declared capabilities (the call needs ";
      what += describe(needs);
      what += ")";
    }
    throw plugin_error(what);
  }

  void call(const problem& p, bool with_grad) const {
    if (isolate_.load() == isolation::none) {
      char message[message_size];
      const std::int32_t s = invoke(p, with_grad, message);
      if (s != XENT_PLUGIN_OK) fail(p, with_grad, s, message);
      return;
    }
    call_isolated(p, with_grad);
  }

  void call_isolated(const problem& p, bool with_grad) const {
    const bool none = p.reduce == reduction::none;
    const auto P = static_cast<std::size_t>(p.positions), C = static_cast<std::size_t>(p.classes);
    const std::size_t n_loss = none ? P : 1, n_grad = with_grad ? P * C : 0;
    // One 8-byte slot per element, holding the element's bytes (2, 4 or 8).
    const std::size_t loss_bytes = size_of(p.out_type), grad_bytes = size_of(p.type);
    shared_region region(sizeof(shared_header) + (n_loss + n_grad) * sizeof(double));
    shared_header* h = region.header();
    h->returned = 0;
    const char* where = with_grad ? "forward_backward" : "forward";
    child_outcome child;
    try {
      child = run_in_child(
          [&](int) {
            h->status = invoke(p, with_grad, h->message);
            h->returned = 1;
            if (h->status != XENT_PLUGIN_OK) return;
            // Bit patterns, not values: an unwritten element keeps the
            // caller's sentinel (a signalling NaN that a conversion would quiet).
            double* v = region.values();
            for (std::size_t i = 0; i < n_loss; ++i)
              std::memcpy(&v[i], none ? p.loss_at(static_cast<std::int64_t>(i)) : p.loss, loss_bytes);
            if (with_grad)
              for (std::int64_t q = 0; q < p.positions; ++q) {
                const float* g = p.grad_row(q);
                for (std::int64_t c = 0; c < p.classes; ++c)
                  std::memcpy(&v[n_loss + static_cast<std::size_t>(q) * C + static_cast<std::size_t>(c)],
                              p.element(g, c * p.grad_class_stride), grad_bytes);
              }
          },
          options_.call_timeout_s);
    } catch (const std::runtime_error& e) {
      throw plugin_error(e.what());
    }
    if (child.how == child_outcome::ending::hung)
      throw plugin_crash("plug-in '" + name() + "' hung in " + where + " (killed after " +
                         std::to_string(options_.call_timeout_s) + " s)");
    if (child.how == child_outcome::ending::signaled)
      throw plugin_crash("plug-in '" + name() + "' crashed in " + where + ": " + signal_name(child.status));
    if (!child.returned() || !h->returned)
      throw plugin_crash("plug-in '" + name() + "' ended the process in " + where + " (exit status " +
                         std::to_string(child.status) + ")");
    if (h->status != XENT_PLUGIN_OK) fail(p, with_grad, h->status, h->message);
    const double* v = region.values();
    if (none)
      for (std::int64_t q = 0; q < p.positions; ++q) std::memcpy(p.loss_at(q), &v[q], loss_bytes);
    else
      std::memcpy(p.loss, &v[0], loss_bytes);
    if (with_grad)
      for (std::int64_t q = 0; q < p.positions; ++q) {
        float* g = p.grad_row(q);
        for (std::int64_t c = 0; c < p.classes; ++c)
          std::memcpy(p.element(g, c * p.grad_class_stride),
                      &v[n_loss + static_cast<std::size_t>(q) * C + static_cast<std::size_t>(c)], grad_bytes);
      }
  }

  std::string path_;
  void* handle_;
  const xent_plugin* d_;
  load_options options_;
  mutable std::atomic<isolation> isolate_;
};

std::string dl_error() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

}  // namespace

const implementation& load_plugin(const std::string& path, const load_options& options) {
  // dlopen searches the library path for a bare name; a user who types
  // `--plugin libk.so` means the file here.
  const std::string file = path.find('/') == std::string::npos && access(path.c_str(), F_OK) == 0 ? "./" + path : path;
  // RTLD_LOCAL: two plug-ins may define the same helper names.
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) throw error("plugin", "cannot load plug-in " + path + ": " + dl_error());
  auto close_and_throw = [&](const std::string& why) {
    dlclose(handle);
    throw error("plugin", "plug-in " + path + ": " + why);
  };
  dlerror();
  void* sym = dlsym(handle, XENT_PLUGIN_ENTRY);
  if (!sym) close_and_throw("no symbol " XENT_PLUGIN_ENTRY " (" + dl_error() + ")");
  xent_plugin_get_fn get = nullptr;
  static_assert(sizeof get == sizeof sym);
  std::memcpy(&get, &sym, sizeof get);  // object pointer -> function pointer, as POSIX allows
  // This host's version first; a plug-in built for an older one answers
  // NULL to it and is asked for the versions it may know.
  const xent_plugin* d = get(XENT_PLUGIN_ABI_VERSION);
  for (std::uint32_t v = XENT_PLUGIN_ABI_VERSION; !d && v-- > XENT_PLUGIN_ABI_VERSION_OLDEST;) d = get(v);
  try {
    validate_descriptor(d, path);
  } catch (const error&) {
    dlclose(handle);
    throw;
  }
  try {
    return register_implementation(std::make_unique<plugin_implementation>(path, handle, d, options));
  } catch (const error& e) {
    close_and_throw(e.what());
  }
  throw error("plugin", "unreachable");
}

bool is_plugin(const implementation* impl) {
  return dynamic_cast<const plugin_implementation*>(impl) != nullptr;
}

std::string plugin_path(const implementation& impl) {
  const auto* p = dynamic_cast<const plugin_implementation*>(&impl);
  return p ? p->path() : std::string();
}

void set_isolation(const implementation& impl, isolation isolate) {
  if (const auto* p = dynamic_cast<const plugin_implementation*>(&impl)) p->set_isolation(isolate);
}

}  // namespace xent::plugins

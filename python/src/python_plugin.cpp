// libxent_python_plugin.so: a plug-in (xent/kernel/plugin.h) whose kernel is a
// Python callable with torch.nn.functional.cross_entropy's signature, so that
// `xent verify --plugin` checks Python code like any plug-in: every property
// in a child process, a crash or a hang reported with its input.
//
// Environment (set by xent.verify):
//   XENT_PYTHON_FUNCTION  module:function (required)
//   XENT_PYTHON_NAME      the name reported (default "python")
//   XENT_PYTHON_TIER      accurate | fast | standard | naive (default standard)
//
// The interpreter is started on the first call, that is in the child process
// that runs a property (`xent verify` never calls the kernel in its own
// process), with one OpenMP/torch thread: nothing of it crosses a fork. The
// tensors reach Python as NumPy views of the host's memory; xent._bridge
// copies the inputs into torch tensors, calls the function, and writes the
// loss (and the gradient, from autograd) back through the views.
#include <pybind11/embed.h>
#include <pybind11/numpy.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "xent/kernel/plugin.h"

namespace py = pybind11;

namespace {

std::string env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// Extension modules (numpy, torch) are not linked against libpython: they
// need its symbols in the global namespace, which a plug-in loaded with
// RTLD_LOCAL does not give. Reopen libpython RTLD_GLOBAL.
void promote_libpython() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&Py_InitializeEx), &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

// The kernel object (xent._bridge.Kernel), or the message of why it could
// not be made; the interpreter is started once, and the GIL released after.
struct python_state {
  py::object* kernel = nullptr;
  std::string error;
};

const python_state& state() {
  static const python_state s = [] {
    python_state st;
    promote_libpython();
    setenv("OMP_NUM_THREADS", "1", 1);  // no thread pool in a process that may fork again
    py::initialize_interpreter(false);  // leave the host's signal handlers alone
    try {
      st.kernel = new py::object(
          py::module_::import("xent._bridge").attr("Kernel")(env("XENT_PYTHON_FUNCTION", "")));
    } catch (py::error_already_set& e) {
      st.error = e.what();
    }
    PyEval_SaveThread();  // calls take the GIL, from whichever thread
    return st;
  }();
  return s;
}

py::object view(const DLTensor* t) {
  if (!t) return py::none();
  py::dtype dt = t->dtype.code == kDLInt ? py::dtype::of<std::int64_t>() : py::dtype::of<float>();
  const auto item = static_cast<py::ssize_t>(t->dtype.bits / 8);
  std::vector<py::ssize_t> shape(t->shape, t->shape + t->ndim), strides(static_cast<std::size_t>(t->ndim));
  py::ssize_t s = item;
  for (int d = t->ndim; d-- > 0;) {
    strides[static_cast<std::size_t>(d)] = t->strides ? static_cast<py::ssize_t>(t->strides[d]) * item : s;
    s *= static_cast<py::ssize_t>(t->shape[d]);
  }
  // A base object: the array is a view of the host's memory, not a copy.
  py::capsule base(t->data, [](void*) {});
  return py::array(dt, shape, strides, static_cast<char*>(t->data) + t->byte_offset, base);
}

int32_t fail(char* message, size_t size, int32_t status, const std::string& text) {
  if (size > 0) {
    const size_t n = std::min(size - 1, text.size());
    std::memcpy(message, text.data(), n);
    message[n] = '\0';
  }
  return status;
}

int32_t run(const DLTensor* logits, const DLTensor* target, const DLTensor* loss, const DLTensor* grad,
            const DLTensor* upstream, const xent_plugin_options* o, char* message, size_t message_size) {
  try {
    const python_state& st = state();
    if (!st.kernel) return fail(message, message_size, XENT_PLUGIN_ERROR_INTERNAL, st.error);
    py::gil_scoped_acquire gil;
    static const char* reductions[] = {"none", "mean", "sum"};
    if (o->reduction < 0 || o->reduction > 2)
      return fail(message, message_size, XENT_PLUGIN_ERROR_INVALID, "unknown reduction");
    try {
      (*st.kernel)(view(logits), view(target), view(o->weight), reductions[o->reduction], o->ignore_index,
               o->label_smoothing, view(loss), view(grad), view(upstream));
    } catch (py::error_already_set& e) {
      const bool unsupported = e.matches(PyExc_NotImplementedError);
      return fail(message, message_size,
                  unsupported ? XENT_PLUGIN_ERROR_UNSUPPORTED : XENT_PLUGIN_ERROR_INTERNAL, e.what());
    }
    return XENT_PLUGIN_OK;
  } catch (const std::exception& e) {
    return fail(message, message_size, XENT_PLUGIN_ERROR_INTERNAL, e.what());
  } catch (...) {
    return fail(message, message_size, XENT_PLUGIN_ERROR_INTERNAL, "unknown exception");
  }
}

int32_t forward(const DLTensor* logits, const DLTensor* target, const DLTensor* loss,
                const xent_plugin_options* o, char* message, size_t message_size) {
  return run(logits, target, loss, nullptr, nullptr, o, message, message_size);
}

int32_t forward_backward(const DLTensor* logits, const DLTensor* target, const DLTensor* loss,
                         const DLTensor* grad, const DLTensor* upstream, const xent_plugin_options* o,
                         char* message, size_t message_size) {
  return run(logits, target, loss, grad, upstream, o, message, message_size);
}

int32_t tier_of(const std::string& t) {
  if (t == "accurate") return XENT_PLUGIN_TIER_ACCURATE;
  if (t == "fast") return XENT_PLUGIN_TIER_FAST;
  if (t == "relaxed") return XENT_PLUGIN_TIER_RELAXED;
  if (t == "naive") return XENT_PLUGIN_TIER_NAIVE;
  return XENT_PLUGIN_TIER_STANDARD;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const xent_plugin* xent_plugin_get(uint32_t host_abi_version) {
  if (host_abi_version != XENT_PLUGIN_ABI_VERSION) return nullptr;
  static const std::string name = env("XENT_PYTHON_NAME", "python");
  static const std::string description = [] {
    std::string d = "Python callable ";
    d += env("XENT_PYTHON_FUNCTION", "(XENT_PYTHON_FUNCTION unset)");
    return d;
  }();
  // Fields assigned by name over a zeroed descriptor: fields appended to the
  // ABI later (declared capabilities) stay 0, "no declaration".
  static const xent_plugin p = [] {
    xent_plugin d{};
    d.abi_version = XENT_PLUGIN_ABI_VERSION;
    d.struct_size = sizeof(xent_plugin);
    d.name = name.c_str();
    d.description = description.c_str();
    d.tier = tier_of(env("XENT_PYTHON_TIER", "standard"));
    d.thread_count_independent = 1;
    d.forward = &forward;
    d.forward_backward = &forward_backward;
    return d;
  }();
  return &p;
}

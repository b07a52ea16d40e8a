// The extension module xent._xent: views over Python tensors (DLPack
// capsules, NumPy arrays) handed to the library without a copy, the
// registry, and the multiprecision reference. The Python package (xent/)
// turns torch tensors into DLPack capsules, allocates outputs and adds
// autograd; everything here works on views of memory the caller owns.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>

#include "xent/cross_entropy.hpp"
#include "xent/error.hpp"
#include "xent/kernel/implementation.hpp"
#include "xent/kernel/problem.hpp"
#include "xent/options.hpp"
#include "xent/reference.hpp"
#include "xent/tensor.hpp"

namespace py = pybind11;

namespace {

// A view together with the Python object that keeps its memory alive (the
// capsule or the array), held for as long as the view is used.
struct held_view {
  xent::tensor_view view;
  py::object owner;
};

xent::dtype numpy_dtype(const py::array& a, const std::string& name) {
  const py::dtype d = a.dtype();
  const char kind = d.kind();
  const auto item = d.itemsize();
  const char order = d.byteorder();  // '=' native, '|' not applicable, '<' / '>'
  const bool native = order == '=' || order == '|' ||
                      (order == '<') == (std::endian::native == std::endian::little);
  if (native) {
    if (kind == 'f' && item == 4) return xent::dtype::f32;
    if (kind == 'f' && item == 2) return xent::dtype::f16;
    if (kind == 'f' && item == 8) return xent::dtype::f64;
    if (kind == 'i' && item == 8) return xent::dtype::i64;
    if (kind == 'i' && item == 4) return xent::dtype::i32;
  }
  std::string m = name;
  m += ": NumPy dtype '";
  m += d.attr("name").cast<std::string>();
  m += "' is not supported (float32, float64 or float16 logits and probabilities, int64 class indices)";
  throw xent::error(name, m);
}

// A PyCapsule named "dltensor" (torch.utils.dlpack.to_dlpack, __dlpack__) or
// a NumPy array; anything else is a TypeError. The capsule is borrowed, not
// consumed: its own destructor still frees the tensor, after we are done.
held_view to_view(const py::handle& obj, const std::string& name, bool writable) {
  if (obj.is_none()) throw py::type_error(name + " is None");
  if (PyCapsule_CheckExact(obj.ptr())) {
    if (!PyCapsule_IsValid(obj.ptr(), "dltensor"))
      throw py::type_error(name + ": a PyCapsule that is not an unconsumed DLPack tensor (\"dltensor\")");
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(obj.ptr(), "dltensor"));
    if (!managed) throw py::error_already_set();
    try {
      return {xent::from_dlpack(managed->dl_tensor), py::reinterpret_borrow<py::object>(obj)};
    } catch (const xent::error& e) {  // name the argument: "logits: DLPack dtype ..."
      std::string m = name;
      m += ": ";
      m += e.what();
      throw xent::error(name, m);
    }
  }
  if (py::isinstance<py::array>(obj)) {
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (writable && !a.writeable()) {
      std::string m = name;
      m += " is a read-only NumPy array";
      throw xent::error(name, m);
    }
    xent::tensor_view v;
    v.type = numpy_dtype(a, name);
    const auto item = static_cast<std::int64_t>(a.itemsize());
    v.data = const_cast<void*>(a.data());
    for (py::ssize_t d = 0; d < a.ndim(); ++d) {
      const auto stride = static_cast<std::int64_t>(a.strides(d));
      if (stride % item != 0) {
        std::string m = name;
        m += " has a stride of ";
        m += std::to_string(stride);
        m += " bytes in dimension ";
        m += std::to_string(d);
        m += ", not a multiple of its element size ";
        m += std::to_string(item);
        throw xent::error(name, m);
      }
      v.shape.push_back(static_cast<std::int64_t>(a.shape(d)));
      v.strides.push_back(stride / item);
    }
    return {std::move(v), py::reinterpret_borrow<py::object>(obj)};
  }
  std::string m = name;
  m += " must be a DLPack capsule or a NumPy array, got ";
  m += py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
  throw py::type_error(m);
}

std::optional<held_view> to_optional_view(const py::object& obj, const std::string& name,
                                          bool writable) {
  if (obj.is_none()) return std::nullopt;
  return to_view(obj, name, writable);
}

const xent::implementation* find(const std::optional<std::string>& name) {
  if (!name) return nullptr;
  if (const auto* i = xent::find_implementation(*name)) return i;
  std::string known;
  for (const auto* i : xent::implementations()) {
    if (!known.empty()) known += ", ";
    known += i->name();
  }
  std::string m = "unknown implementation '";
  m += *name;
  m += "' (registered: ";
  m += known;
  m += ")";
  throw xent::error("impl", m);
}

struct call_options {
  xent::options opt;
  std::optional<held_view> weight;
};

call_options make_options(const py::object& weight, std::int64_t ignore_index,
                          const std::string& reduction, double label_smoothing) {
  call_options c;
  c.opt.reduce = xent::parse_reduction(reduction);
  c.opt.ignore_index = ignore_index;
  c.opt.label_smoothing = label_smoothing;
  c.weight = to_optional_view(weight, "weight", false);
  if (c.weight) c.opt.weight = c.weight->view;
  return c;
}

// The library call: validates everything, then writes out (and grad).
void forward(const py::object& input, const py::object& target, const py::object& out,
             const py::object& grad, const py::object& weight, std::int64_t ignore_index,
             const std::string& reduction, double label_smoothing, const py::object& upstream,
             const std::optional<std::string>& impl) {
  const held_view x = to_view(input, "logits", false);
  const held_view t = to_view(target, "target", false);
  const held_view o = to_view(out, "out", true);
  const std::optional<held_view> g = to_optional_view(grad, "grad", true);
  const std::optional<held_view> u = to_optional_view(upstream, "upstream", false);
  const call_options c = make_options(weight, ignore_index, reduction, label_smoothing);
  const xent::implementation* i = find(impl);
  if (!g && u) throw xent::error("upstream", "upstream is given without grad");
  py::gil_scoped_release release;  // the kernels may run for a while, on threads
  if (g)
    xent::cross_entropy_forward_backward(x.view, t.view, o.view, g->view, c.opt,
                                         u ? &u->view : nullptr, i);
  else
    xent::cross_entropy(x.view, t.view, o.view, c.opt, i);
}

py::tuple view_info(const py::object& obj) {
  const held_view v = to_view(obj, "tensor", false);
  return py::make_tuple(reinterpret_cast<std::uintptr_t>(v.view.data), xent::to_string(v.view.type),
                        v.view.shape, v.view.strides);
}

py::list implementation_list() {
  py::list l;
  for (const auto* i : xent::implementations()) {
    py::dict d;
    d["name"] = i->name();
    d["description"] = i->description();
    d["tier"] = xent::to_string(i->tier());
    d["domain"] = i->domain();
    d["supported"] = i->supported();
    d["peer"] = i->peer();
    l.append(d);
  }
  return l;
}

// The reference: the per-position (or reduced) loss and, with grad, the
// gradient of the logits' shape, each as (hi, lo) float64 arrays whose sum
// is the exact value to ~106 bits.
py::dict reference(const py::object& input, const py::object& target, const py::object& weight,
                   std::int64_t ignore_index, const std::string& reduction, double label_smoothing,
                   bool with_grad, const py::object& upstream, unsigned precision_bits,
                   unsigned threads) {
  const held_view x = to_view(input, "logits", false);
  const held_view t = to_view(target, "target", false);
  const std::optional<held_view> u = to_optional_view(upstream, "upstream", false);
  const call_options c = make_options(weight, ignore_index, reduction, label_smoothing);
  if (u && !with_grad) throw xent::error("upstream", "upstream is given without grad=True");

  // make_problem with outputs (never written) so that the upstream gradient
  // is validated and wired as for a kernel.
  xent::problem p = xent::make_problem(x.view, t.view, c.opt);
  std::vector<std::int64_t> loss_shape;
  if (c.opt.reduce == xent::reduction::none) {
    loss_shape = t.view.shape;
    if (p.target == xent::target_kind::probability && !loss_shape.empty())
      loss_shape.erase(loss_shape.begin() + (loss_shape.size() > 1 ? 1 : 0));
  }
  // Scratch outputs of the logits' dtype (8 bytes an element hold any of them).
  std::vector<double> out_buf(static_cast<std::size_t>(std::max<std::int64_t>(
      c.opt.reduce == xent::reduction::none ? p.positions : 1, 1)));
  std::vector<double> grad_buf;
  auto typed = [&](std::vector<double>& buf, const std::vector<std::int64_t>& shape) {
    xent::tensor_view v = xent::view(buf.data(), shape);
    v.data = buf.data();
    v.type = p.type;
    return v;
  };
  xent::tensor_view out_view = typed(out_buf, loss_shape);
  xent::tensor_view grad_view;
  if (with_grad) {
    grad_buf.resize(static_cast<std::size_t>(std::max<std::int64_t>(x.view.numel(), 1)));
    grad_view = typed(grad_buf, x.view.shape);
  }
  p = xent::make_problem(x.view, t.view, c.opt, out_view, with_grad ? &grad_view : nullptr,
                         u ? &u->view : nullptr);

  xent::ref::compute_options o;
  o.precision_bits = precision_bits;
  o.threads = threads;
  xent::ref::result r;
  {
    py::gil_scoped_release release;
    r = xent::ref::compute(p, with_grad, o);
  }

  py::dict d;
  if (c.opt.reduce == xent::reduction::none) {
    std::vector<py::ssize_t> shape(loss_shape.begin(), loss_shape.end());
    py::array_t<double> hi(shape), lo(shape);
    auto* h = hi.mutable_data();
    auto* l = lo.mutable_data();
    for (std::size_t k = 0; k < r.loss.size(); ++k) {
      h[k] = r.loss[k].hi;
      l[k] = r.loss[k].lo;
    }
    d["loss_hi"] = hi;
    d["loss_lo"] = lo;
  } else {
    d["loss_hi"] = py::array_t<double>(std::vector<py::ssize_t>{}, &r.reduced.hi);
    d["loss_lo"] = py::array_t<double>(std::vector<py::ssize_t>{}, &r.reduced.lo);
  }
  if (with_grad) {
    // r.grad is positions x classes, row-major by position; the logits are
    // (C), (N, C) or (N, C, d1..dK): element [n, c, d..] is at
    // (position(n, d..) * C + c).
    const auto& s = x.view.shape;
    std::vector<py::ssize_t> shape(s.begin(), s.end());
    std::vector<py::ssize_t> strides(s.size());
    const auto item = static_cast<py::ssize_t>(sizeof(double));
    if (s.size() == 1) {
      strides[0] = item;
    } else {
      const auto classes = static_cast<py::ssize_t>(s[1]);
      strides[1] = item;
      py::ssize_t step = item * classes;
      for (std::size_t k = s.size(); k-- > 0;) {
        if (k == 1) continue;
        strides[k] = step;
        step *= static_cast<py::ssize_t>(s[k]);
      }
    }
    py::array_t<double> hi(shape, strides), lo(shape, strides);
    // Fill through the buffer in memory order, which is position-major.
    auto* h = static_cast<double*>(hi.request().ptr);
    auto* l = static_cast<double*>(lo.request().ptr);
    for (std::size_t k = 0; k < r.grad.size(); ++k) {
      h[k] = r.grad[k].hi;
      l[k] = r.grad[k].lo;
    }
    d["grad_hi"] = hi;
    d["grad_lo"] = lo;
  }
  return d;
}

// Elementwise error of y (its values as float64, exact for every floating
// dtype) against the exact hi + lo, in ulps of `dtype` ("float32", "float64",
// "bfloat16", "float16"): the type y was computed in.
py::array_t<double> ulp_error(const py::array_t<double, py::array::c_style | py::array::forcecast>& y,
                              const py::array_t<double, py::array::c_style | py::array::forcecast>& hi,
                              const py::array_t<double, py::array::c_style | py::array::forcecast>& lo,
                              const std::string& dtype) {
  xent::dtype t;
  if (dtype == "float32") t = xent::dtype::f32;
  else if (dtype == "float64") t = xent::dtype::f64;
  else if (dtype == "bfloat16") t = xent::dtype::bf16;
  else if (dtype == "float16") t = xent::dtype::f16;
  else throw py::type_error("ulp_error: y must be float32, float64, bfloat16 or float16, got " + dtype);
  const auto n = y.size();
  if (hi.size() != n || lo.size() != n) {
    std::string m = "ulp_error: y has ";
    m += std::to_string(n);
    m += " elements, the reference ";
    m += std::to_string(hi.size());
    throw xent::error("ref", m);
  }
  std::vector<py::ssize_t> shape(y.shape(), y.shape() + y.ndim());
  py::array_t<double> e(shape);
  auto* out = e.mutable_data();
  for (py::ssize_t k = 0; k < n; ++k)
    out[k] = xent::ref::ulp_error(y.data()[k], xent::ref::exact{hi.data()[k], lo.data()[k]}, t);
  return e;
}

}  // namespace

PYBIND11_MODULE(_xent, m) {
  m.doc() = "xent's C++ library: cross-entropy kernels and the multiprecision reference";

  // xent::error -> xent.Error, a ValueError with the library's message and
  // the argument it names (.argument).
  static py::handle error_type =
      py::exception<xent::error>(m, "Error", PyExc_ValueError).release();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const xent::error& e) {
      py::object exc = py::reinterpret_borrow<py::object>(error_type)(e.what());
      exc.attr("argument") = e.argument();
      PyErr_SetObject(error_type.ptr(), exc.ptr());
    }
  });

  m.def("forward", &forward, py::arg("input"), py::arg("target"), py::arg("out"),
        py::arg("grad") = py::none(), py::arg("weight") = py::none(),
        py::arg("ignore_index") = -100, py::arg("reduction") = "mean",
        py::arg("label_smoothing") = 0.0, py::arg("upstream") = py::none(),
        py::arg("impl") = py::none(),
        "Writes the loss to out (and d loss / d input, scaled by upstream, to grad). "
        "Tensors are DLPack capsules or NumPy arrays; nothing is copied.");
  m.def("view_info", &view_info, py::arg("tensor"),
        "(data address, dtype, shape, strides in elements) of the view the library sees");
  m.def("implementations", &implementation_list);
  m.def("default_implementation", [] { return xent::default_implementation().name(); });
  m.def("reference", &reference, py::arg("input"), py::arg("target"),
        py::arg("weight") = py::none(), py::arg("ignore_index") = -100,
        py::arg("reduction") = "mean", py::arg("label_smoothing") = 0.0,
        py::arg("grad") = false, py::arg("upstream") = py::none(),
        py::arg("precision_bits") = xent::ref::default_precision_bits, py::arg("threads") = 0u);
  m.def("ulp_error", &ulp_error, py::arg("y"), py::arg("hi"), py::arg("lo"), py::arg("dtype"),
        "Error of y (as float64) against hi + lo in ulps of dtype: float32, float64, bfloat16 or float16.");
  m.def("scratch_bytes", &xent::scratch_bytes);
  m.def("release_scratch", &xent::release_scratch);
}

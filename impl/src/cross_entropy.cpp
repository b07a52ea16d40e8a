#include "xent/cross_entropy.hpp"

#include <new>

#include "xent/error.hpp"
#include "xent/kernel/capabilities.hpp"
#include "xent/kernel/implementation.hpp"
#include "xent/kernel/problem.hpp"

namespace xent {

namespace {
// Kernels report their own scratch allocations by name (scratch.cpp); any
// other allocation that fails still becomes an xent::error.
template <class F>
void guarded(const implementation& i, F&& run) {
  try {
    run();
  } catch (const std::bad_alloc&) {
    throw error("memory", "out of memory in implementation '" + i.name() + "'");
  }
}

const implementation& pick(const implementation* impl) {
  const implementation& i = impl ? *impl : default_implementation();
  if (!i.supported())
    throw error("implementation", "implementation '" + i.name() + "' is not supported on this CPU");
  return i;
}

// Before anything is written: a kernel sees only the dtypes it computes.
void check_dtype(const implementation& i, const problem& p) {
  if (i.dtypes() & dtype_bit(p.type)) return;
  std::string takers;
  for (const implementation* k : implementations())
    if (k->dtypes() & dtype_bit(p.type)) takers += (takers.empty() ? "" : ", ") + k->name();
  throw error("logits", "implementation '" + i.name() + "' does not compute " + to_string(p.type) +
                            " logits (it takes " + dtype_names(i.dtypes()) + ")" +
                            (takers.empty() ? std::string() : "; " + to_string(p.type) + " logits: " + takers));
}
}  // namespace

void cross_entropy(const tensor_view& logits, const tensor_view& target, const tensor_view& out,
                   const options& opt, const implementation* impl) {
  const implementation& i = pick(impl);
  const problem p = make_problem(logits, target, opt, out);
  check_dtype(i, p);
  guarded(i, [&] { i.forward(p); });
}

float cross_entropy(const tensor_view& logits, const tensor_view& target, const options& opt,
                    const implementation* impl) {
  if (opt.reduce == reduction::none)
    throw error("reduction", "reduction 'none' gives one loss per position: pass an output view");
  if (logits.type == dtype::f64)
    throw error("logits", "float64 logits give a float64 loss: pass an output view (this overload returns float32)");
  float loss = 0.0f;
  cross_entropy(logits, target, view(&loss, {}), opt, impl);
  return loss;
}

void cross_entropy_forward_backward(const tensor_view& logits, const tensor_view& target,
                                    const tensor_view& out, const tensor_view& grad,
                                    const options& opt, const tensor_view* upstream,
                                    const implementation* impl) {
  const implementation& i = pick(impl);
  const problem p = make_problem(logits, target, opt, out, &grad, upstream);
  check_dtype(i, p);
  guarded(i, [&] { i.forward_backward(p); });
}

}  // namespace xent

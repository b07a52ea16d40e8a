#include "xent/cross_entropy.hpp"

#include "xent/error.hpp"

namespace xent {

namespace {
const implementation& pick(const implementation* impl) {
  const implementation& i = impl ? *impl : default_implementation();
  if (!i.supported())
    throw error("implementation", "implementation '" + i.name() + "' is not supported on this CPU");
  return i;
}
}  // namespace

void cross_entropy(const tensor_view& logits, const tensor_view& target, const tensor_view& out,
                   const options& opt, const implementation* impl) {
  const implementation& i = pick(impl);
  i.forward(make_problem(logits, target, opt, out));
}

float cross_entropy(const tensor_view& logits, const tensor_view& target, const options& opt,
                    const implementation* impl) {
  if (opt.reduce == reduction::none)
    throw error("reduction", "reduction 'none' gives one loss per position: pass an output view");
  float loss = 0.0f;
  cross_entropy(logits, target, view(&loss, {}), opt, impl);
  return loss;
}

void cross_entropy_forward_backward(const tensor_view& logits, const tensor_view& target,
                                    const tensor_view& out, const tensor_view& grad,
                                    const options& opt, const tensor_view* upstream,
                                    const implementation* impl) {
  const implementation& i = pick(impl);
  i.forward_backward(make_problem(logits, target, opt, out, &grad, upstream));
}

}  // namespace xent

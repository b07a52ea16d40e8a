// The char-level language-model idiom
//   loss = cross_entropy(output[:, h:].contiguous().view(-1, C),
//                        target[:, h:].contiguous().view(-1))
// on an output [B, T, C]. xent takes the slice without a copy: the class axis
// must be dim 1, so the slice is passed as the (B, C, T-h) strided view
// output[:, h:].transpose(1, 2) (strides [T*C, 1, C]) with targets (B, T-h)
// (strides [T, 1]). The result must be bitwise identical to the computation
// on the contiguous copy, for the loss, the per-position losses and the
// gradient, for every implementation.
#include <cstring>
#include <string>
#include <vector>

#include "examples.hpp"
#include "fill.hpp"
#include "format.hpp"
#include "xent/kernel.hpp"
#include "xent/reference.hpp"
#include "xent/xent.hpp"

namespace xent::examples {
namespace {

std::string pad(std::string s, std::size_t n) {
  if (s.size() < n) s.append(n - s.size(), ' ');
  return s;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

tensor_view strided(void* data, dtype type, std::vector<std::int64_t> shape,
                    std::vector<std::int64_t> strides) {
  tensor_view v;
  v.data = data;
  v.type = type;
  v.shape = std::move(shape);
  v.strides = std::move(strides);
  return v;
}

}  // namespace

outcome char_lm() {
  constexpr std::int64_t B = 4, T = 50, C = 100, h = 10, Tp = T - h;
  outcome o;
  o.name = "char_lm";
  o.title = "output[:, h:] of a [B, T, C] model output as a strided view vs .contiguous().view(-1, C)";

  fill::rng g(7);
  std::vector<float> out(B * T * C);  // the model output [B, T, C]
  for (auto& v : out) v = static_cast<float>(2.0 * g.normal());
  std::vector<std::int64_t> target(B * T);  // [B, T]
  for (auto& v : target) v = g.below(C);

  // No copy: (B, C, T-h) view of out[:, h:], class axis dim 1.
  float* base = out.data() + h * C;
  const tensor_view xs = strided(base, dtype::f32, {B, C, Tp}, {T * C, 1, C});
  const tensor_view ts = strided(target.data() + h, dtype::i64, {B, Tp}, {T, 1});
  // The copy the PyTorch idiom makes: [B*(T-h), C] and [B*(T-h)].
  std::vector<float> xc;
  std::vector<std::int64_t> tc;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t s = h; s < T; ++s) {
      xc.insert(xc.end(), out.begin() + (b * T + s) * C, out.begin() + (b * T + s + 1) * C);
      tc.push_back(target[b * T + s]);
    }
  const tensor_view xv = view(xc.data(), {B * Tp, C});
  const tensor_view tv = view(tc.data(), {B * Tp});

  o.say("output [4, 50, 100] (B, T, C), target [4, 50], h = 10 -> 160 rows of 100 classes");
  o.say("  strided view: logits [4, 100, 40] strides [5000, 1, 100], target [4, 40] strides [50, 1] (no copy)");
  o.say("  copy:         logits [160, 100], target [160]  (.contiguous().view(-1, C))");

  const ref::result r = ref::compute(make_problem(xv, tv, {}), false);
  o.say("  " + pad("reference", 12) + "mean " + ref::to_string(r.reduced, 12));
  options none;
  none.reduce = reduction::none;
  for (const implementation* impl : implementations()) {
    if (!impl->supported() || impl->peer()) continue;  // ours; peers are judged by the sweep and verify
    // Mean loss.
    const float ms = cross_entropy(xs, ts, {}, impl);
    const float mc = cross_entropy(xv, tv, {}, impl);
    // Per-position losses.
    std::vector<float> ls(B * Tp), lc(B * Tp);
    cross_entropy(xs, ts, view(ls.data(), {B, Tp}), none, impl);
    cross_entropy(xv, tv, view(lc.data(), {B * Tp}), none, impl);
    // Gradient of the mean: into a [B, T, C] buffer through the same strides
    // (rows before h stay 0), and into a contiguous [B*(T-h), C].
    std::vector<float> gfull(B * T * C, 0.0f), gc(B * Tp * C);
    float l1 = 0.0f, l2 = 0.0f;
    cross_entropy_forward_backward(xs, ts, view(&l1, {}),
                                   strided(gfull.data() + h * C, dtype::f32, {B, C, Tp}, {T * C, 1, C}),
                                   {}, nullptr, impl);
    cross_entropy_forward_backward(xv, tv, view(&l2, {}), view(gc.data(), {B * Tp, C}), {}, nullptr, impl);
    std::vector<float> gs;
    bool untouched = true;
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t s = 0; s < T; ++s)
        for (std::int64_t c = 0; c < C; ++c) {
          const float v = gfull[(b * T + s) * C + c];
          if (s >= h) gs.push_back(v);
          else untouched = untouched && v == 0.0f;
        }

    const bool mean_eq = std::memcmp(&ms, &mc, sizeof ms) == 0 && std::memcmp(&l1, &ms, sizeof ms) == 0 &&
                         std::memcmp(&l2, &mc, sizeof mc) == 0;
    const bool none_eq = same_bits(ls, lc);
    const bool grad_eq = same_bits(gs, gc);
    const double ulps = ref::ulp_error(ms, r.reduced);
    o.say("  " + pad(impl->name(), 12) + "mean " + pad(cli::float_text(ms), 12) + "(" +
          cli::ulp_text(ulps) + " ulp); bitwise equal to the copy: mean " + (mean_eq ? "yes" : "NO") +
          ", none " + (none_eq ? "yes" : "NO") + ", gradient " + (grad_eq ? "yes" : "NO"));
    // Only implementations that declare layout independence promise bits;
    // the others (LibTorch, plug-ins) are shown, not held to it.
    if (impl->layout_independent()) {
      o.expect(mean_eq, impl->name() + ": the mean over the strided view equals the copy's bitwise");
      o.expect(none_eq, impl->name() + ": per-position losses equal the copy's bitwise");
      o.expect(grad_eq, impl->name() + ": the gradient equals the copy's bitwise");
    }
    o.expect(untouched, impl->name() + ": gradient rows before h are not written");
    o.expect(ulps <= mean_ulp_bound(impl->tier()),
             impl->name() + ": error " + cli::ulp_text(ulps) + " ulp within its tier's bound");
  }

  // The mistake: passing output[:, h:] itself ([B, T-h, C]) makes dim 1 (T-h)
  // the class axis. PyTorch and xent reject it when shapes disagree.
  const tensor_view wrong = strided(base, dtype::f32, {B, Tp, C}, {T * C, C, 1});
  try {
    (void)cross_entropy(wrong, ts, options{});
    o.expect(false, "passing [B, T-h, C] with targets [B, T-h] is rejected");
  } catch (const xent::error& e) {
    o.say("  passing output[:, h:] unchanged ([4, 40, 100]: class axis dim 1 = 40) is an error:");
    o.say("    " + std::string(e.what()));
  }
  return o;
}

}  // namespace xent::examples

#ifndef XENT_EXAMPLES_LIBRARY
int main() { return xent::examples::main_of(xent::examples::char_lm); }
#endif

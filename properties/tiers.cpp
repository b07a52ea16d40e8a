#include "tiers.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace xent::props {

std::string to_string(quantity q) {
  switch (q) {
    case quantity::loss: return "loss";
    case quantity::gradient: return "gradient";
    case quantity::reduction: return "reduction";
  }
  return "?";
}

std::string bound::describe() const {
  char b[64];
  switch (kind) {
    case ulps: std::snprintf(b, sizeof b, "%.3g ulp", value); break;
    case absolute: std::snprintf(b, sizeof b, "abs %.3g", value); break;
    case rounded: return "correctly rounded";
    case none: return "no bound";
  }
  return b;
}

bound bound_for(tier t, quantity q, const row_context& ctx) {
  const double u = ctx.unit;
  switch (t) {
    case tier::correctly_rounded:
      return {bound::rounded, 0.5};
    case tier::accurate:
      return {bound::ulps, q == quantity::loss ? 0.501 : 1.0};
    case tier::fast:
      return {bound::ulps, q == quantity::reduction ? 1.0 : 2.0};
    case tier::relaxed:
      return {bound::ulps, relaxed_tier_ulps};
    case tier::standard: {
      const double lse = std::max(1.0, std::fabs(ctx.lse));
      if (q == quantity::loss) return {bound::absolute, 4 * u * lse * ctx.coeff};
      if (q == quantity::gradient) return {bound::absolute, 4 * u * lse * ctx.coeff * ctx.scale};
      return {bound::ulps, 2.0};
    }
    case tier::naive:
      if (q == quantity::loss)
        return {bound::absolute,
                2 * u * (static_cast<double>(ctx.classes) + 8) * (1 + std::fabs(ctx.gap)) * ctx.coeff};
      return {bound::none, 0.0};
  }
  return {};
}

}  // namespace xent::props

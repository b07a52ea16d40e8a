/* The example kernel declaring float64 logits besides float32 (ABI 3,
 * plugin.h): the host then sends float64 tensors too (logits, targets,
 * weights, loss, gradient, upstream), and `xent verify` judges every float64
 * result in float64 ulps. The arithmetic is the example's in long double
 * (x86-64: 64 significant bits, 11 more than float64, each result rounded
 * once to its dtype). Not enough for the accurate tier in float64 (sums of
 * many terms lose some of the 11 bits, and ln of a long double near 1 is
 * libm's), so it declares the fast tier: 2 ulp in every regime. */
#define XENT_EXAMPLE_NAME "example_float64_c"
#define XENT_EXAMPLE_DESCRIPTION "example plug-in: float32 and float64 logits, long double accumulation"
#define XENT_EXAMPLE_TIER XENT_PLUGIN_TIER_FAST
#define XENT_EXAMPLE_LONG_DOUBLE 1
#define XENT_EXAMPLE_CAPABILITIES                                                                        \
  1u,                                                                                                    \
      XENT_PLUGIN_LAYOUT_ROWS | XENT_PLUGIN_LAYOUT_STRIDED | XENT_PLUGIN_LAYOUT_SPATIAL |                \
          XENT_PLUGIN_LAYOUT_SINGLE,                                                                     \
      XENT_PLUGIN_TARGET_INDEX | XENT_PLUGIN_TARGET_PROBABILITY,                                         \
      XENT_PLUGIN_OPTION_WEIGHT | XENT_PLUGIN_OPTION_IGNORE_INDEX | XENT_PLUGIN_OPTION_LABEL_SMOOTHING, \
      XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_NONE) |                                            \
          XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_MEAN) |                                        \
          XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_SUM),                                          \
      XENT_PLUGIN_MODE_GRADIENT | XENT_PLUGIN_MODE_IN_PLACE, XENT_PLUGIN_DTYPE_FLOAT32 | XENT_PLUGIN_DTYPE_FLOAT64, 0u

#include "example_plugin.c"

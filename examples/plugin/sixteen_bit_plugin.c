/* The example kernel declaring bfloat16 and float16 logits besides float32
 * (ABI 2, plugin.h): the host then sends 16-bit tensors too, and `xent
 * verify` judges every result in ulps of its own dtype. The arithmetic is
 * the example's (double, each result rounded once to its dtype), so it
 * earns the accurate tier in every dtype. */
#define XENT_EXAMPLE_NAME "example_sixteen_bit_c"
#define XENT_EXAMPLE_DESCRIPTION "example plug-in: float32, bfloat16 and float16 logits, float64 accumulation"
#define XENT_EXAMPLE_TIER XENT_PLUGIN_TIER_ACCURATE
#define XENT_EXAMPLE_CAPABILITIES                                                                        \
  1u,                                                                                                    \
      XENT_PLUGIN_LAYOUT_ROWS | XENT_PLUGIN_LAYOUT_STRIDED | XENT_PLUGIN_LAYOUT_SPATIAL |                \
          XENT_PLUGIN_LAYOUT_SINGLE,                                                                     \
      XENT_PLUGIN_TARGET_INDEX | XENT_PLUGIN_TARGET_PROBABILITY,                                         \
      XENT_PLUGIN_OPTION_WEIGHT | XENT_PLUGIN_OPTION_IGNORE_INDEX | XENT_PLUGIN_OPTION_LABEL_SMOOTHING, \
      XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_NONE) |                                            \
          XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_MEAN) |                                        \
          XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_SUM),                                          \
      XENT_PLUGIN_MODE_GRADIENT | XENT_PLUGIN_MODE_IN_PLACE,                                             \
      XENT_PLUGIN_DTYPE_FLOAT32 | XENT_PLUGIN_DTYPE_BFLOAT16 | XENT_PLUGIN_DTYPE_FLOAT16, 0u

#include "example_plugin.c"

/* The example plug-in with a planted bug: the log-sum-exp without the max
 * shift, log(sum_j e^{x_j}). Fine for small logits, inf/NaN once a logit
 * passes ~709 (float64 exp overflow), and the small losses of a dominant
 * target lose their relative accuracy. It still declares the `accurate` tier:
 * `xent verify` must reject it (tested by ctest). */
#define XENT_EXAMPLE_NO_MAX_SHIFT
#define XENT_EXAMPLE_NAME "example_unshifted_c"
#define XENT_EXAMPLE_DESCRIPTION "example plug-in with a planted bug: no max shift"
#define XENT_EXAMPLE_TIER XENT_PLUGIN_TIER_ACCURATE
#include "example_plugin.c"

/* A kernel that does part of the job, as most real ones do: contiguous (N, C)
 * rows with plain index targets -- no weights, no ignored targets, no label
 * smoothing, no probability targets, no strides, no in-place gradient -- and
 * XENT_PLUGIN_ERROR_UNSUPPORTED for anything else. Its arithmetic is the
 * example's (accurate), so on what it handles `xent verify` accepts it.
 *
 * Three builds of this file, checked by ctest:
 *   default                   declares exactly that subset: ACCEPTED, with
 *                             the coverage printed under the verdict
 *   XENT_PARTIAL_UNDECLARED   declares nothing: every case is tried and the
 *                             refused ones are skipped and counted
 *   XENT_PARTIAL_OVERCLAIM    declares weights too, yet refuses them: it
 *                             breaks its word, REJECTED
 */
#include <stdio.h>

#include "xent/kernel/plugin.h"

static int32_t refuse(char* message, size_t message_size, const char* why) {
  snprintf(message, message_size, "only contiguous (N, C) rows with plain index targets: %s", why);
  return XENT_PLUGIN_ERROR_UNSUPPORTED;
}

/* Dense row-major (N, C): strides (C, 1); a row stride is irrelevant for N <= 1. */
static int dense_rows(const DLTensor* t, int64_t C) {
  if (t->ndim != 2 || !t->strides) return t->ndim == 2;
  return t->strides[1] == 1 && (t->shape[0] <= 1 || t->strides[0] == C);
}
static int dense_positions(const DLTensor* t) {
  return t->ndim == 1 && (!t->strides || t->shape[0] <= 1 || t->strides[0] == 1);
}

static int32_t partial_guard(const DLTensor* logits, const DLTensor* target, const DLTensor* loss,
                             const DLTensor* grad, const DLTensor* upstream, const xent_plugin_options* o,
                             char* message, size_t message_size) {
  int64_t p;
  if (logits->ndim != 2) return refuse(message, message_size, "logits are not (N, C)");
  const int64_t N = logits->shape[0], C = logits->shape[1];
  if (!dense_rows(logits, C)) return refuse(message, message_size, "strided logits");
  if (o->probability_targets) return refuse(message, message_size, "probability targets");
  if (o->weight) return refuse(message, message_size, "class weights");
  if (o->label_smoothing != 0.0) return refuse(message, message_size, "label smoothing");
  if (!dense_positions(target)) return refuse(message, message_size, "strided targets");
  for (p = 0; p < N; ++p)
    if (((const int64_t*)target->data)[p] == o->ignore_index)
      return refuse(message, message_size, "ignored targets");
  if (o->reduction == XENT_PLUGIN_REDUCTION_NONE && !dense_positions(loss))
    return refuse(message, message_size, "strided loss");
  if (grad) {
    /* (an empty batch addresses nothing: its pointers may be equal or NULL) */
    if (N > 0 && grad->data == logits->data) return refuse(message, message_size, "in-place gradient");
    if (!dense_rows(grad, C)) return refuse(message, message_size, "strided gradient");
    /* none: one value per position, or stride 0 for one value everywhere */
    if (upstream->ndim == 1 && upstream->strides && upstream->strides[0] > 1)
      return refuse(message, message_size, "strided upstream gradient");
  }
  return XENT_PLUGIN_OK;
}

#define XENT_EXAMPLE_GUARD partial_guard
#define XENT_EXAMPLE_TIER XENT_PLUGIN_TIER_ACCURATE
#define XENT_PARTIAL_REDUCTIONS                                                                       \
  (XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_NONE) | XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_MEAN) | \
   XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_SUM))

#if defined(XENT_PARTIAL_UNDECLARED)
#define XENT_EXAMPLE_NAME "example_partial_undeclared_c"
#define XENT_EXAMPLE_DESCRIPTION "partial example plug-in: contiguous rows, index targets, no declaration"
/* declared = 0: no declaration (the rest of the fields are zero) */
#define XENT_EXAMPLE_CAPABILITIES 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u
#elif defined(XENT_PARTIAL_OVERCLAIM)
#define XENT_EXAMPLE_NAME "example_partial_overclaim_c"
#define XENT_EXAMPLE_DESCRIPTION "partial example plug-in that declares weights it refuses"
#define XENT_EXAMPLE_CAPABILITIES                                                                     \
  1u, XENT_PLUGIN_LAYOUT_ROWS, XENT_PLUGIN_TARGET_INDEX, XENT_PLUGIN_OPTION_WEIGHT, XENT_PARTIAL_REDUCTIONS, \
      XENT_PLUGIN_MODE_GRADIENT, XENT_PLUGIN_DTYPE_FLOAT32, 0u
#else
#define XENT_EXAMPLE_NAME "example_partial_c"
#define XENT_EXAMPLE_DESCRIPTION "partial example plug-in: contiguous rows with plain index targets, declared"
#define XENT_EXAMPLE_CAPABILITIES                                                                           \
  1u, XENT_PLUGIN_LAYOUT_ROWS, XENT_PLUGIN_TARGET_INDEX, 0u /* no options */, XENT_PARTIAL_REDUCTIONS, \
      XENT_PLUGIN_MODE_GRADIENT, XENT_PLUGIN_DTYPE_FLOAT32, 0u
#endif

#include "example_plugin.c"

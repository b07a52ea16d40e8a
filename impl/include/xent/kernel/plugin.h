/* xent plug-in ABI: a cross-entropy kernel in a shared library, verified and
 * measured by `xent verify --plugin lib.so` and `xent report --plugin lib.so`.
 *
 * Plain C (C99 and C++), DLPack tensors. A plug-in exports ONE symbol,
 *
 *     const xent_plugin* xent_plugin_get(uint32_t host_abi_version);
 *
 * which returns a static descriptor, or NULL when it cannot serve a host of
 * that ABI version. The host asks for its own XENT_PLUGIN_ABI_VERSION first
 * and, when the answer is NULL, for each older version it still speaks; it
 * refuses a descriptor of any other version (a change of layout or meaning
 * bumps it). Extensions append fields at the end and are detected by
 * struct_size.
 *
 * Versions:
 *   1  float32 tensors only.
 *   2  the dtype travels in the DLTensors: a plug-in that declares
 *      XENT_PLUGIN_DTYPE_BFLOAT16 or _FLOAT16 also receives 16-bit logits.
 *      The layout of every struct is that of version 1; a version-1 plug-in
 *      still loads, as float32-only (its dtype mask may hold FLOAT32 alone).
 *   3  (this header) float64: a plug-in that declares XENT_PLUGIN_DTYPE_FLOAT64
 *      also receives float64 logits (and float64 targets, weights, loss,
 *      gradient and upstream). Same layout; a version-2 plug-in loads with
 *      the dtypes of version 2 (a FLOAT64 bit there is unknown).
 *
 * The host validates every input before calling (shapes, dtypes, bounds of
 * the targets, options: docs/design.md §2), so a kernel only computes. Semantics
 * are torch.nn.CrossEntropyLoss's, including ignore_index, weights, label
 * smoothing, probability targets, the mean's denominator and NaN/inf rules.
 *
 * Tensors (DLTensor, CPU, strides in elements, never NULL, byte_offset 0):
 *   logits   float32, (C) or (N, C, d1..dK): the class axis is dim 1 when
 *            ndim >= 2. Any strides, negative ones included (slices are not
 *            copied). ABI 2, when declared: bfloat16 ({kDLBfloat, 16, 1}:
 *            the high half of a float32) or float16 ({kDLFloat, 16, 1}).
 *            ABI 3, when declared: float64 ({kDLFloat, 64, 1}).
 *   target   index targets: int64, the position shape () or (N, d1..dK);
 *            probability targets: the logits' dtype and shape.
 *   loss     output: 0-d for mean/sum; the position shape for none. The
 *            logits' dtype, or float32 for 16-bit logits (a float32 loss of
 *            bfloat16/float16 logits: the tensor's dtype says which); float64
 *            for float64 logits. Each value is the result rounded once to
 *            that dtype.
 *   grad     output of the logits' dtype and shape (forward_backward only); it
 *            may be the logits themselves (same data and strides): read a row
 *            completely before writing its gradient.
 *   upstream the loss's dtype: 0-d for mean/sum; for none the position shape,
 *            with strides 0 when one value applies to every position.
 *   weight   the logits' dtype, (C), or NULL for all ones.
 *
 * Declared capabilities (optional): a kernel that does part of the job sets
 * `declared` = 1 and the masks after it (XENT_PLUGIN_LAYOUT_*, _TARGET_*,
 * _OPTION_*, _REDUCTION_BIT, _MODE_*, _DTYPE_*). The host then generates its
 * cases inside the declaration. A call is *inside* it when every feature it
 * uses is declared:
 *   layout     ROWS: (N, C) logits and targets dense row-major (the host's
 *              outputs are dense too, except an in-place gradient);
 *              STRIDED: (N, C) with any strides (ROWS included);
 *              SPATIAL: (N, C, d1..dK), K >= 1, any strides; SINGLE: (C) logits, 0-d target
 *   target     INDEX (int64 classes) or PROBABILITY (float32, logits' shape)
 *   option     WEIGHT (weight != NULL), IGNORE_INDEX (some index target equals
 *              ignore_index), LABEL_SMOOTHING (label_smoothing != 0)
 *   reduction  XENT_PLUGIN_REDUCTION_BIT(XENT_PLUGIN_REDUCTION_*)
 *   mode       GRADIENT (forward_backward), IN_PLACE (grad = logits; needs GRADIENT);
 *              forward is always supported
 *   dtype      FLOAT32 (required), with ABI 2 BFLOAT16 and FLOAT16, with ABI 3
 *              FLOAT64: the logits dtypes it computes. Other dtypes than
 *              float32 are sent only to a plug-in that declares them
 *              (declared = 0 means float32 only).
 * Returning XENT_PLUGIN_ERROR_UNSUPPORTED for a call inside the declaration
 * is a failure (the kernel broke its word); outside it, or with declared = 0
 * (and for descriptors too small to hold the fields: plug-ins built before
 * they existed), the case is skipped and counted, never passed. Unknown bits,
 * an empty layout, target or reduction mask, IN_PLACE without GRADIENT or a
 * dtype mask without FLOAT32 (or with a bit newer than the descriptor's
 * ABI version) make the descriptor invalid. A descriptor
 * initialised positionally must now list the fields (zeros: no declaration)
 * to stay free of -Wmissing-field-initializers; designated initialisers
 * (C99) need no change.
 *
 * Errors: return a non-zero xent_plugin_status and write a NUL-terminated
 * message of at most message_size bytes into `message`. Never let a C++
 * exception or a longjmp cross this boundary. A crash is caught by the host
 * (the checks run in child processes) and reported as a failure with the
 * shrunk input that caused it.
 */
#ifndef XENT_PLUGIN_H
#define XENT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <dlpack/dlpack.h>

#ifdef __cplusplus
extern "C" {
#endif

#define XENT_PLUGIN_ABI_VERSION 3u
/* The oldest version this host still loads. */
#define XENT_PLUGIN_ABI_VERSION_OLDEST 1u

/* The name of the one exported function. */
#define XENT_PLUGIN_ENTRY "xent_plugin_get"

/* Accuracy tiers of docs/design.md §3: the bounds the property suite enforces. */
typedef enum xent_plugin_tier {
  XENT_PLUGIN_TIER_ACCURATE = 0, /* loss <= 0.5 ulp + tiny, gradient <= 1 ulp */
  XENT_PLUGIN_TIER_FAST = 1,     /* <= 2 ulp in every regime */
  XENT_PLUGIN_TIER_STANDARD = 2, /* absolute 4u max(1, |lse|) (PyTorch's level) */
  XENT_PLUGIN_TIER_NAIVE = 3,    /* no promise outside a narrow domain */
  XENT_PLUGIN_TIER_RELAXED = 4   /* <= 256 ulp in every regime (between fast and standard) */
} xent_plugin_tier;

typedef enum xent_plugin_reduction {
  XENT_PLUGIN_REDUCTION_NONE = 0,
  XENT_PLUGIN_REDUCTION_MEAN = 1,
  XENT_PLUGIN_REDUCTION_SUM = 2
} xent_plugin_reduction;

typedef enum xent_plugin_status {
  XENT_PLUGIN_OK = 0,
  XENT_PLUGIN_ERROR_UNSUPPORTED = 1, /* valid input this kernel does not handle */
  XENT_PLUGIN_ERROR_INVALID = 2,     /* the kernel thinks the input is invalid */
  XENT_PLUGIN_ERROR_INTERNAL = 3     /* anything else (allocation, ...) */
} xent_plugin_status;

typedef struct xent_plugin_options {
  uint32_t struct_size;            /* sizeof(xent_plugin_options) of the host */
  int32_t reduction;               /* xent_plugin_reduction */
  int64_t ignore_index;            /* index targets only (default -100) */
  double label_smoothing;          /* in [0, 1] */
  int32_t probability_targets;     /* 1: target is probabilities (the logits' dtype) */
  int32_t reserved;
  const DLTensor* weight;          /* (C) in the logits' dtype, or NULL */
} xent_plugin_options;

typedef struct xent_plugin {
  uint32_t abi_version;  /* XENT_PLUGIN_ABI_VERSION the plug-in was built with */
  uint32_t struct_size;  /* sizeof(xent_plugin) */
  const char* name;      /* unique, [a-z0-9_]+ preferred */
  const char* description;
  int32_t tier;          /* xent_plugin_tier it declares */
  int32_t thread_count_independent; /* 1: bitwise identical for any thread count */

  /* Loss only: writes `loss`. */
  int32_t (*forward)(const DLTensor* logits, const DLTensor* target, const DLTensor* loss,
                     const xent_plugin_options* options, char* message, size_t message_size);
  /* Loss and upstream-weighted d(loss)/d(logits): writes `loss` and `grad`. */
  int32_t (*forward_backward)(const DLTensor* logits, const DLTensor* target, const DLTensor* loss,
                              const DLTensor* grad, const DLTensor* upstream,
                              const xent_plugin_options* options, char* message,
                              size_t message_size);

  /* Appended: declared capabilities, read only when struct_size covers them.
   * declared = 0 (what zero-initialisation gives): no declaration, the
   * kernel is taken to support everything. */
  uint32_t declared;   /* 1: the masks below declare what the kernel supports */
  uint32_t layouts;    /* XENT_PLUGIN_LAYOUT_* */
  uint32_t targets;    /* XENT_PLUGIN_TARGET_* */
  uint32_t options;    /* XENT_PLUGIN_OPTION_*: the options it honours */
  uint32_t reductions; /* XENT_PLUGIN_REDUCTION_BIT(...) */
  uint32_t modes;      /* XENT_PLUGIN_MODE_* */
  uint32_t dtypes;     /* XENT_PLUGIN_DTYPE_* */
  uint32_t reserved_capabilities; /* 0 */
} xent_plugin;

/* Bits of the capability masks (see "Declared capabilities" above). */
#define XENT_PLUGIN_LAYOUT_ROWS 0x1u
#define XENT_PLUGIN_LAYOUT_STRIDED 0x2u
#define XENT_PLUGIN_LAYOUT_SPATIAL 0x4u
#define XENT_PLUGIN_LAYOUT_SINGLE 0x8u
#define XENT_PLUGIN_TARGET_INDEX 0x1u
#define XENT_PLUGIN_TARGET_PROBABILITY 0x2u
#define XENT_PLUGIN_OPTION_WEIGHT 0x1u
#define XENT_PLUGIN_OPTION_IGNORE_INDEX 0x2u
#define XENT_PLUGIN_OPTION_LABEL_SMOOTHING 0x4u
#define XENT_PLUGIN_REDUCTION_BIT(r) (1u << (r)) /* r: xent_plugin_reduction */
#define XENT_PLUGIN_MODE_GRADIENT 0x1u
#define XENT_PLUGIN_MODE_IN_PLACE 0x2u
#define XENT_PLUGIN_DTYPE_FLOAT32 0x1u
#define XENT_PLUGIN_DTYPE_BFLOAT16 0x2u /* ABI 2 */
#define XENT_PLUGIN_DTYPE_FLOAT16 0x4u  /* ABI 2 */
#define XENT_PLUGIN_DTYPE_FLOAT64 0x8u  /* ABI 3 */

/* The descriptor size of plug-ins built before the capability fields. */
#define XENT_PLUGIN_SIZE_WITHOUT_CAPABILITIES offsetof(xent_plugin, declared)

typedef const xent_plugin* (*xent_plugin_get_fn)(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* XENT_PLUGIN_H */

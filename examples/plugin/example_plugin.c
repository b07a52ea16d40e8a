/* An example xent plug-in in plain C: torch.nn.CrossEntropyLoss semantics
 * (weights, ignore_index, label smoothing, probability targets, none / mean /
 * sum, (C) and (N, C, d1..dK) logits with any strides) computed with the
 * stable formulas of docs/design.md §3 (Blanchard, Higham & Higham 2021):
 *
 *   loss     = (m - x_t) + log1p(sum_{j != k} e^{x_j - m}),  m = x_k the row max
 *   1 - p_t  = sum_{j != t} p_j, never p_t - 1
 *
 * everything after the float inputs in double, one rounding to float at the
 * end, batch reductions by fixed-order pairwise summation. That earns the
 * `accurate` tier, which `xent verify --plugin libxent_example_plugin.so`
 * checks.
 *
 * Build:  cc -O2 -fPIC -shared -I<xent>/impl/include example_plugin.c -lm
 *
 * buggy_plugin.c compiles this file with XENT_EXAMPLE_NO_MAX_SHIFT: the
 * textbook log(sum e^{x_j}) without the shift, which overflows for logits
 * above ~709 (and loses the small losses): `xent verify` must reject it.
 * lazy_plugin.c compiles it with XENT_EXAMPLE_SKIP_IGNORED_WRITES: ignored
 * rows are left unwritten, right only on zeroed buffers: `xent verify` must
 * reject it too (its output buffers are poisoned).
 * partial_plugin.c refuses everything but contiguous rows with plain index
 * targets and declares that subset (plugin.h, "Declared capabilities").
 * sixteen_bit_plugin.c declares bfloat16 and float16 logits too (ABI 2):
 * every element is read and written in the dtype its DLTensor states, so
 * the same code computes them (each result rounded once from double).
 * float64_plugin.c declares float64 logits (ABI 3) and computes in long
 * double (XENT_EXAMPLE_LONG_DOUBLE): on x86-64 11 more bits than float64.
 * abi1_plugin.c builds this file as a plug-in of ABI version 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xent/kernel/plugin.h"

#ifndef XENT_EXAMPLE_NAME
#define XENT_EXAMPLE_NAME "example_stable_c"
#define XENT_EXAMPLE_DESCRIPTION "example plug-in: plain C, max-shifted log1p form, float64 accumulation"
#define XENT_EXAMPLE_TIER XENT_PLUGIN_TIER_ACCURATE
#endif

/* ---- tensors ------------------------------------------------------------ */

static int64_t stride_of(const DLTensor* t, int d) {
  if (t->strides) return t->strides[d];
  int64_t s = 1; /* NULL strides: row-major contiguous (DLPack convention) */
  for (int e = t->ndim - 1; e > d; --e) s *= t->shape[e];
  return s;
}

static void* data_of(const DLTensor* t) { return (char*)t->data + t->byte_offset; }

/* ---- the working precision ---------------------------------------------- */

#ifdef XENT_EXAMPLE_LONG_DOUBLE
typedef long double real;
#define EXP expl
#define LOG1P log1pl
#define LOG logl
#else
typedef double real;
#define EXP exp
#define LOG1P log1p
#define LOG log
#endif

/* ---- elements: float32, float64, bfloat16 or float16 ---------------------- */

typedef enum elem_type { ELEM_F32, ELEM_F64, ELEM_BF16, ELEM_F16, ELEM_OTHER } elem_type;

static elem_type elem_of(const DLTensor* t) {
  if (t->dtype.lanes != 1) return ELEM_OTHER;
  if (t->dtype.code == kDLFloat && t->dtype.bits == 32) return ELEM_F32;
  if (t->dtype.code == kDLFloat && t->dtype.bits == 64) return ELEM_F64;
  if (t->dtype.code == kDLBfloat && t->dtype.bits == 16) return ELEM_BF16;
  if (t->dtype.code == kDLFloat && t->dtype.bits == 16) return ELEM_F16;
  return ELEM_OTHER;
}

/* The address of element i (in elements) past base. */
static void* elem_at(const void* base, int64_t i, elem_type t) {
  return (char*)base + i * (t == ELEM_F64 ? 8 : t == ELEM_F32 ? 4 : 2);
}

/* Element i, widened (exact). */
static real get(const void* base, int64_t i, elem_type t) {
  if (t == ELEM_F32) return ((const float*)base)[i];
  if (t == ELEM_F64) return ((const double*)base)[i];
  const uint16_t b = ((const uint16_t*)base)[i];
  if (t == ELEM_BF16) { /* the high half of a float32 */
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
  }
  { /* float16: (-1)^s 2^(e-15) (1 + m/1024); subnormals 2^-24 m */
    const int e = (b >> 10) & 0x1f, m = b & 0x3ff;
    const double v = e == 0x1f ? (m ? NAN : INFINITY) : e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (b & 0x8000) ? -v : v;
  }
}

/* v rounded once (to nearest, ties to even, subnormals, overflow to inf)
 * into element i: from the working precision directly, never through float
 * (which would round twice). The 16-bit branch reads v as a double: exact
 * with `real` double, the only precision the 16-bit examples use. */
static void put(void* base, int64_t i, real rv, elem_type t) {
  if (t == ELEM_F32) {
    ((float*)base)[i] = (float)rv;
    return;
  }
  if (t == ELEM_F64) {
    ((double*)base)[i] = (double)rv;
    return;
  }
  const double v = (double)rv;
  const int bf = t == ELEM_BF16;
  const int mbits = bf ? 7 : 10, emin = bf ? -126 : -14, emax = bf ? 127 : 15, bias = bf ? 127 : 15;
  const uint16_t sign = signbit(v) ? 0x8000 : 0, inf = bf ? 0x7f80 : 0x7c00;
  uint16_t out;
  if (isnan(v)) {
    out = (uint16_t)(inf | (bf ? 0x40 : 0x200)); /* a quiet NaN */
  } else if (isinf(v)) {
    out = (uint16_t)(sign | inf);
  } else if (v == 0.0) {
    out = sign;
  } else {
    const double a = fabs(v);
    const int e = ilogb(a) < emin ? emin : ilogb(a);
    const double q = ldexp(1.0, e - mbits);  /* the spacing in a's binade */
    const double r = nearbyint(a / q) * q;   /* a / q is exact; ties to even */
    if (r > ldexp(2.0 - ldexp(1.0, -mbits), emax)) {
      out = (uint16_t)(sign | inf);
    } else if (r < ldexp(1.0, emin)) {       /* subnormal: exponent field 0 */
      out = (uint16_t)(sign | (uint16_t)(r / ldexp(1.0, emin - mbits)));
    } else {
      const int re = ilogb(r);
      const int m = (int)(r / ldexp(1.0, re - mbits)) - (1 << mbits);
      out = (uint16_t)(sign | (uint16_t)((re + bias) << mbits) | (uint16_t)m);
    }
  }
  ((uint16_t*)base)[i] = out;
}

/* Offset, in elements, of flat position p (row-major over every dim but
 * `skip`, the class axis, or -1 for position-shaped tensors). */
static int64_t position_offset(const DLTensor* t, int64_t p, int skip) {
  int64_t off = 0;
  for (int d = t->ndim - 1; d >= 0; --d) {
    if (d == skip) continue;
    const int64_t extent = t->shape[d];
    off += (p % extent) * stride_of(t, d);
    p /= extent;
  }
  return off;
}

/* ---- one row ------------------------------------------------------------ */

typedef struct row_in {
  elem_type type;   /* of the logits, probabilities, weights and gradient */
  const void* x;    /* the row's first logit */
  int64_t xs;       /* class stride */
  int64_t C;
  int64_t t;        /* index target, or -1 for probability targets */
  const void* q;    /* probability targets (or NULL) */
  int64_t qs;
  const void* w;    /* weights (or NULL) */
  int64_t ws;
  double eps;
} row_in;

static real weight_at(const row_in* r, int64_t c) { return r->w ? get(r->w, c * r->ws, r->type) : 1.0; }
#define X(cls) get(r->x, (cls) * r->xs, r->type)

/* Writes scale * d loss / d x into g (when not NULL); returns the loss. */
static real row(const row_in* r, void* g, int64_t gs, real scale) {
  const int64_t C = r->C;
  /* Row maximum and its index; NaN or +inf anywhere, or all -inf: NaN. */
  real mf = -INFINITY;
  int64_t k = 0, j, c;
  int undefined = 0;
  for (j = 0; j < C; ++j) {
    const real v = X(j);
    if (isnan(v)) undefined = 1;
    if (v > mf) {
      mf = v;
      k = j;
    }
  }
  if (undefined || isinf(mf)) {
    if (g)
      for (j = 0; j < C; ++j) put(g, j * gs, NAN, r->type);
    return NAN;
  }
#ifndef XENT_EXAMPLE_NO_MAX_SHIFT
  const real m = mf;
  real rest = 0.0; /* sum_{j != k} e^{x_j - m} */
  for (j = 0; j < C; ++j)
    if (j != k) rest += EXP(X(j) - m);
  const real sum = 1.0 + rest;
  const real log_sum = LOG1P(rest); /* lse - m */
#else
  /* The planted bug: no shift. */
  const real m = 0.0;
  real sum = 0.0;
  for (j = 0; j < C; ++j) sum += EXP(X(j));
  const real rest = sum - EXP(X(k));
  const real log_sum = LOG(sum);
#endif
#define GAP(cls) (m - X(cls)) /* lse - x_c = GAP + log_sum */

  const real eps = r->eps, eps_c = eps / (real)C;
  if (r->t >= 0 && eps == 0.0) {
    const int64_t t = r->t;
    const real wt = weight_at(r, t);
    const real loss = wt * (GAP(t) + log_sum); /* before g overwrites x (in-place) */
    if (g) {
      const real others = t == k ? rest : sum - EXP(-GAP(t)); /* 1 - p_t, times sum */
      for (j = 0; j < C; ++j) {
        const real v = j == t ? -wt * (others / sum) : wt * (EXP(-GAP(j)) / sum);
        put(g, j * gs, scale * v, r->type);
      }
    }
    return loss;
  }

  /* Smoothed or probability targets: loss = sum_c b_c (lse - x_c) with
   * b_c = w_c q'_c, q' = (1 - eps) q + eps / C. */
#define B(cls) \
  (weight_at(r, cls) * ((1.0 - eps) * (r->t >= 0 ? ((cls) == r->t ? 1.0 : 0.0) : get(r->q, (cls) * r->qs, r->type)) + eps_c))
  real loss = 0.0, mass = 0.0, mass_rest = 0.0; /* A = sum b; A - b_kb without cancellation */
  int64_t kb = 0;
  for (c = 0; c < C; ++c) {
    const real bc = B(c);
    if (bc > B(kb)) {
      mass_rest += B(kb);
      kb = c;
    } else if (c != kb) {
      mass_rest += bc;
    }
    mass += bc;
  }
  if (r->t >= 0) {
    /* PyTorch's (1 - eps) l + (eps / C) s, so that 0 * inf gives its NaN. */
    real smooth = 0.0;
    for (c = 0; c < C; ++c) smooth += weight_at(r, c) * (GAP(c) + log_sum);
    loss = (1.0 - eps) * (weight_at(r, r->t) * (GAP(r->t) + log_sum)) + eps_c * smooth;
  } else {
    for (c = 0; c < C; ++c) loss += B(c) * GAP(c);
    loss += mass * log_sum;
  }
  if (g) {
    /* p_j A - b_j = p_j (A - b_j) - b_j (1 - p_j): no cancellation in the factors. */
    for (j = 0; j < C; ++j) {
      const real e_j = EXP(-GAP(j));
      const real not_j = j == k ? rest : sum - e_j;
      const real bj = B(j);
      const real mass_not_j = j == kb ? mass_rest : mass - bj;
      put(g, j * gs, scale * ((e_j / sum) * mass_not_j - bj * (not_j / sum)), r->type);
    }
  }
  return loss;
#undef B
#undef GAP
}
#undef X

/* ---- the whole problem ---------------------------------------------------- */

static real pairwise_sum(const real* v, int64_t n) {
  if (n <= 8) {
    real s = 0.0;
    int64_t i;
    for (i = 0; i < n; ++i) s += v[i];
    return s;
  }
  return pairwise_sum(v, n / 2) + pairwise_sum(v + n / 2, n - n / 2);
}

static int32_t fail(char* message, size_t size, int32_t status, const char* text) {
  if (message && size) snprintf(message, size, "%s", text);
  return status;
}

static int32_t run(const DLTensor* logits, const DLTensor* target, const DLTensor* loss, const DLTensor* grad,
                   const DLTensor* upstream, const xent_plugin_options* o, char* message, size_t message_size) {
  /* The host sends only the dtypes a plug-in declares; the check is for
   * other hosts. */
  const elem_type xt = elem_of(logits), lt = elem_of(loss);
  if (xt == ELEM_OTHER || lt == ELEM_OTHER)
    return fail(message, message_size, XENT_PLUGIN_ERROR_UNSUPPORTED,
                "logits must be float32, float64, bfloat16 or float16");
  const int class_axis = logits->ndim == 1 ? 0 : 1;
  const int64_t C = logits->shape[class_axis];
  int64_t P = 1, p;
  int d;
  for (d = 0; d < logits->ndim; ++d)
    if (d != class_axis) P *= logits->shape[d];
#ifdef XENT_EXAMPLE_BEFORE_RUN
  XENT_EXAMPLE_BEFORE_RUN(C); /* a hook for the test fixtures (crashing_plugin.c) */
#endif
#ifdef XENT_EXAMPLE_GUARD
  { /* a hook for the partial fixtures (partial_plugin.c): refuse what they do not handle */
    const int32_t refused = XENT_EXAMPLE_GUARD(logits, target, loss, grad, upstream, o, message, message_size);
    if (refused != XENT_PLUGIN_OK) return refused;
  }
#endif
  const int prob = o->probability_targets != 0;
  const void* x = data_of(logits);
  const int64_t* ti = prob ? NULL : (const int64_t*)data_of(target);
  const void* tq = prob ? data_of(target) : NULL;
  void* out = data_of(loss);
  void* gr = grad ? data_of(grad) : NULL;
  const void* up = upstream ? data_of(upstream) : NULL;
  const int none = o->reduction == XENT_PLUGIN_REDUCTION_NONE;

  row_in r;
  r.type = xt;
  r.xs = stride_of(logits, class_axis);
  r.C = C;
  r.qs = prob ? stride_of(target, class_axis) : 0;
  r.w = o->weight ? data_of(o->weight) : NULL;
  r.ws = o->weight ? stride_of(o->weight, 0) : 0;
  r.eps = o->label_smoothing;

  /* D: sum of the weights of counted positions (index targets), the number
   * of positions (probability targets), 1 for sum and none. */
  real D = 1.0;
  real* buf = (real*)calloc((size_t)(P > 0 ? P : 1), sizeof(real));
  if (!buf) return fail(message, message_size, XENT_PLUGIN_ERROR_INTERNAL, "out of memory");
  if (o->reduction == XENT_PLUGIN_REDUCTION_MEAN) {
    if (prob) {
      D = (real)P;
    } else {
      for (p = 0; p < P; ++p) {
        const int64_t t = ti[position_offset(target, p, -1)];
        buf[p] = t == o->ignore_index ? 0.0 : weight_at(&r, t);
      }
      D = pairwise_sum(buf, P);
    }
  }
  for (p = 0; p < P; ++p) {
    r.x = elem_at(x, position_offset(logits, p, class_axis), xt);
    r.t = prob ? -1 : ti[position_offset(target, p, -1)];
    r.q = prob ? elem_at(tq, position_offset(target, p, class_axis), xt) : NULL;
    void* g = gr ? elem_at(gr, position_offset(grad, p, class_axis), xt) : NULL;
    const int64_t gs = gr ? stride_of(grad, class_axis) : 0;
    real l = 0.0;
    if (!prob && r.t == o->ignore_index) {
#ifdef XENT_EXAMPLE_SKIP_IGNORED_WRITES
      /* The planted bug: an ignored row's loss and gradient are zero, and the
       * kernel trusts the buffers to hold zeros already. */
      if (!none) buf[p] = 0.0;
      continue;
#else
      int64_t c;
      if (g)
        for (c = 0; c < C; ++c) put(g, c * gs, 0.0, xt);
#endif
    } else {
      const real u = up ? get(up, position_offset(upstream, p, -1), lt) : 1.0;
      l = row(&r, g, gs, g ? u / D : 0.0);
    }
    if (none) put(out, position_offset(loss, p, -1), l, lt);
    else buf[p] = l;
  }
  if (!none) {
    const real total = pairwise_sum(buf, P);
    if (o->reduction == XENT_PLUGIN_REDUCTION_SUM) put(out, 0, total, lt);
    /* PyTorch divides the two smoothing terms by W separately: W = 0 gives 0/0. */
    else if (D == 0.0 && !prob && r.eps > 0.0) put(out, 0, NAN, lt);
    else put(out, 0, total / D, lt);
  }
  free(buf);
  return XENT_PLUGIN_OK;
}

static int32_t forward(const DLTensor* logits, const DLTensor* target, const DLTensor* loss,
                       const xent_plugin_options* options, char* message, size_t message_size) {
  return run(logits, target, loss, NULL, NULL, options, message, message_size);
}

static int32_t forward_backward(const DLTensor* logits, const DLTensor* target, const DLTensor* loss,
                                const DLTensor* grad, const DLTensor* upstream,
                                const xent_plugin_options* options, char* message, size_t message_size) {
  return run(logits, target, loss, grad, upstream, options, message, message_size);
}

#ifndef XENT_EXAMPLE_ABI_VERSION
#define XENT_EXAMPLE_ABI_VERSION XENT_PLUGIN_ABI_VERSION
#endif

static const xent_plugin descriptor = {
    XENT_EXAMPLE_ABI_VERSION, sizeof(xent_plugin), XENT_EXAMPLE_NAME, XENT_EXAMPLE_DESCRIPTION,
    XENT_EXAMPLE_TIER,       1 /* single-threaded: thread-count independent */,
    forward,                 forward_backward,
#ifdef XENT_EXAMPLE_CAPABILITIES
    XENT_EXAMPLE_CAPABILITIES /* the appended capability fields (partial_plugin.c) */
#else
    0u /* declared: no declaration, everything supported */, 0u, 0u, 0u, 0u, 0u, 0u, 0u,
#endif
};

__attribute__((visibility("default"))) const xent_plugin* xent_plugin_get(uint32_t host_abi_version) {
  return host_abi_version == XENT_EXAMPLE_ABI_VERSION ? &descriptor : NULL;
}

// The column kernel (positions in vector lanes, see column_rows in
// simd_column.hpp), compiled once per Highway target like the row passes
// (simd_row_passes.cpp) and built from the same per-target vector operations
// (simd_vector_ops-inl.h), so that it performs the row kernel's operations.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "simd_column.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "simd_column.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "simd_vector_ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace xent {
namespace simd {
namespace HWY_NAMESPACE {

static_assert(kBlock == kColumnMaxClasses, "the column kernel mirrors a one-block row");

// Positions in lanes (see column_rows in simd_column.hpp). Every step is
// the row kernel's for the same row: ScanChunkImpl (one block: C <= kBlock) with
// its lane l's partial sums (classes l, l + N, ...) kept per l and combined in
// its order, then simd_row.hpp's index-target formulas and GradStoredImpl.
void ColumnRowsImpl(const column_group& q) {
  const DF d;
  const hn::RebindToSigned<DF> di;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
  const std::int64_t C = q.classes, K = q.count;
  auto load = [&](std::int64_t c) HWY_ATTR {
    const float* p = q.x + c * q.xs;
    return K == N ? hn::LoadU(d, p) : LoadPartial(d, p, K, 0.0f);
  };

  // Each class is its own stream through memory (C of them): prefetch a few
  // groups ahead, which the hardware prefetchers do not track that many of.
  MaxScan scan(d);
  for (std::int64_t c = 0; c < C; ++c) {
    hwy::Prefetch(q.x + c * q.xs + 4 * N);
    scan.add(load(c));
  }
  const VF m = scan.vmax, neg_m = hn::Neg(m);
  HWY_ALIGN float M[kTargetMaxLanes];
  hn::Store(m, d, M);
  const auto nan_lanes = hn::VecFromMask(d, scan.nan);
  HWY_ALIGN float nan[kTargetMaxLanes];
  hn::Store(nan_lanes, d, nan);

  // Pass 2 per row-kernel lane l. With a gradient, each class's e^{x-m} (val
  // + err) is kept in q.kept_val / q.kept_err for the gradient pass, which
  // recomputed it before (loss + gradient 12 % slower at C = 10 and C = 100);
  // the same values, the same bits.
  HWY_ALIGN double P[kTargetMaxLanes * kTargetMaxLanes];
  HWY_ALIGN float E[kTargetMaxLanes * kTargetMaxLanes];
  auto ties = hn::Zero(di);
  for (std::int64_t l = 0; l < N && l < C; ++l) {
    Acc acc;
    VF errs = hn::Zero(d);
    for (std::int64_t c = l; c < C; c += N) {
      VF val, err;
      hn::Mask<DF> keep, tie;
      ExpTerms(d, load(c), m, neg_m, acc, errs, val, err, keep, tie);
      ties = hn::Add(ties, hn::IfThenElseZero(hn::RebindMask(di, tie), hn::Set(di, 1)));
      if (q.g) {  // as ScanChunkT stores them: 0 outside the kept lanes and ties
        const auto used = hn::Or(keep, tie);
        hn::StoreU(hn::IfThenElseZero(used, val), d, q.kept_val + c * N);
        hn::StoreU(hn::IfThenElseZero(used, err), d, q.kept_err + c * N);
      }
    }
#if HWY_TARGET == HWY_SCALAR
    hn::Store(acc.a, DD(), P + l * N);
#else
    hn::Store(acc.a, DD(), P + l * N);
    hn::Store(acc.b, DD(), P + l * N + N / 2);
#endif
    hn::Store(errs, d, E + l * N);
  }
  for (std::int64_t l = C; l < N; ++l)  // lanes past C add nothing in the row kernel
    for (std::int64_t k = 0; k < N; ++k) P[l * N + k] = 0.0, E[l * N + k] = 0.0f;
  HWY_ALIGN std::int32_t tie_count[kTargetMaxLanes];
  hn::Store(ties, di, tie_count);

  // Per position, in float64 lanes: ScanChunkImpl's Combine, then simd_row.hpp's
  // formulas (the same IEEE operations in the same order).
  const DD2 dd;
  const DFH dfh;
  const hn::Rebind<std::int32_t, DD2> dih;
  const std::int64_t ND = static_cast<std::int64_t>(hn::Lanes(dd));
  HWY_ALIGN double Md[kTargetMaxLanes] = {}, xt[kTargetMaxLanes] = {}, wt[kTargetMaxLanes] = {}, sc[kTargetMaxLanes] = {};
  HWY_ALIGN double rest[kTargetMaxLanes] = {}, log_sum[kTargetMaxLanes] = {};
  HWY_ALIGN double a_d[kTargetMaxLanes] = {}, ok[kTargetMaxLanes] = {};
  HWY_ALIGN float a_hi[kTargetMaxLanes] = {}, a_lo[kTargetMaxLanes] = {}, zero[kTargetMaxLanes] = {};
  HWY_ALIGN float ylow[kTargetMaxLanes] = {}, gt[kTargetMaxLanes] = {};
  HWY_ALIGN std::int32_t tcls[kTargetMaxLanes] = {}, bad[kTargetMaxLanes] = {}, skip[kTargetMaxLanes] = {};
  bool any_huge = false, huge[kTargetMaxLanes] = {};
  for (std::int64_t k = 0; k < N; ++k) {
    const bool used = k < K && q.target[k] >= 0;
    skip[k] = k < K && !used ? -1 : 0;
    bad[k] = used && (nan[k] != 0.0f || std::isinf(M[k])) ? -1 : 0;
    ok[k] = used && bad[k] == 0 ? 1.0 : 0.0;
    Md[k] = static_cast<double>(M[k]);
    xt[k] = ok[k] != 0.0 ? static_cast<double>(q.x[k + q.target[k] * q.xs]) : 0.0;
    wt[k] = used ? q.weight[k] : 0.0;
    sc[k] = used && q.g ? q.scale[k] : 0.0;
    tcls[k] = ok[k] != 0.0 ? static_cast<std::int32_t>(q.target[k]) : -1;
    huge[k] = false;
    ylow[k] = 0.0f;
  }
  bool tiny = false;
  for (std::int64_t h = 0; h < N; h += ND) {
    auto restacc = hn::Load(dd, P + h), errsum = hn::Add(hn::Zero(dd), hn::PromoteTo(dd, hn::Load(dfh, E + h)));
    if (N > 1) {
      const std::int64_t H = N / 2;
      auto ev = [&](std::int64_t l) HWY_ATTR {
        return hn::Add(hn::Zero(dd), hn::PromoteTo(dd, hn::Load(dfh, E + l * N + h)));
      };
      restacc = hn::Add(restacc, hn::Load(dd, P + H * N + h));
      errsum = hn::Add(errsum, ev(H));
      for (std::int64_t j = 1; j < H; ++j) {
        restacc = hn::Add(restacc, hn::Add(hn::Load(dd, P + j * N + h), hn::Load(dd, P + (j + H) * N + h)));
        errsum = hn::Add(errsum, hn::Add(ev(j), ev(j + H)));
      }
    }
    const auto ties_rest = hn::Sub(hn::PromoteTo(dd, hn::Load(dih, tie_count + h)), hn::Set(dd, 1.0));
    const auto r = hn::Add(hn::Add(restacc, errsum), ties_rest);
    hn::Store(r, dd, rest + h);
    tiny = tiny || !hn::AllFalse(dd, hn::And(hn::Lt(r, hn::Set(dd, kTinyRest)), hn::Ne(hn::Load(dd, ok + h), hn::Zero(dd))));
  }
  if (HWY_UNLIKELY(tiny)) {  // rare: simd_row.hpp's float64 recomputation
    HWY_ALIGN float buf[kBlock];
    for (std::int64_t k = 0; k < K; ++k) {
      if (ok[k] == 0.0 || !(rest[k] < kTinyRest)) continue;
      for (std::int64_t c = 0; c < C; ++c) buf[c] = q.x[k + c * q.xs];
      rest[k] = (static_cast<double>(tie_count[k]) - 1.0) + RestExactF64(buf, C, M[k]);
    }
  }
  constexpr double qnan = std::numeric_limits<double>::quiet_NaN();
  for (std::int64_t h = 0; h < N; h += ND) {
    const auto r = hn::Load(dd, rest + h), md = hn::Load(dd, Md + h), x_t = hn::Load(dd, xt + h);
    const auto w = hn::Load(dd, wt + h);
    const auto ls = hn::Log1p(dd, r);
    hn::Store(hn::Mul(w, hn::Add(hn::Sub(md, x_t), ls)), dd, log_sum + h);  // the loss
    if (!q.g) continue;
    const auto S = hn::Add(hn::Set(dd, 1.0), r);
    const auto et = hn::Exp(dd, hn::Sub(x_t, md));
    const auto others = hn::IfThenElse(hn::Eq(x_t, md), r, hn::Sub(S, et));
    const auto scale = hn::Load(dd, sc + h);
    hn::Store(ToFloat(dfh, hn::Mul(scale, hn::Mul(hn::Neg(w), hn::Div(others, S)))), dfh, gt + h);
    const auto a = hn::Mul(scale, hn::Div(w, S));
    const auto ahi = ToFloat(dfh, a);
    hn::Store(a, dd, a_d + h);
    hn::Store(ahi, dfh, a_hi + h);
    hn::Store(ToFloat(dfh, hn::Sub(a, hn::PromoteTo(dd, ahi))), dfh, a_lo + h);
    hn::Store(hn::Mul(ahi, hn::Zero(dfh)), dfh, zero + h);  // signed zero, like a * 0
  }
  for (std::int64_t k = 0; k < K; ++k)
    q.loss[k] = skip[k] != 0 ? 0.0 : bad[k] != 0 ? qnan : log_sum[k];
  if (!q.g) return;
  for (std::int64_t k = 0; k < K; ++k) {
    if (ok[k] == 0.0) continue;
    const double abs_a = std::fabs(a_d[k]);
    huge[k] = !(abs_a < 0x1p100);  // huge or non-finite factor: float64 throughout
    any_huge = any_huge || huge[k];
    ylow[k] = SlowBelow(abs_a);
  }

  // GradStoredImpl per lane (a, ylow and the target differ between lanes; one
// block: a_b = a).
  const VF va_hi = hn::Load(d, a_hi), va_lo = hn::Load(d, a_lo), vzero = hn::Load(d, zero);
  const VF vylow = hn::Load(d, ylow);
  HWY_ALIGN float tiny_below[kTargetMaxLanes] = {};
  for (std::int64_t k = 0; k < K; ++k) tiny_below[k] = ok[k] != 0.0 ? TinyBelow(a_d[k]) : 0.0f;
  const VF vtiny = hn::Load(d, tiny_below);
  const VF vnan = hn::Set(d, static_cast<float>(qnan));
  const auto is_bad = hn::RebindMask(d, hn::Ne(hn::Load(di, bad), hn::Zero(di)));
  const auto is_skip = hn::RebindMask(d, hn::Ne(hn::Load(di, skip), hn::Zero(di)));
  const bool any_bad = !hn::AllFalse(d, is_bad) || !hn::AllFalse(d, is_skip);
  // One compare decides whether a vector needs more than the product: lanes
  // below vtiny are the tiny products and every lane with val = 0 (not kept:
  // maybe a float64 lane, or a signed zero); only those vectors reload x.
  const float* kv = q.kept_val;
  const float* ke = q.kept_err;
  const std::int64_t gs = q.gs;
  for (std::int64_t c = 0; c < C; ++c) {
    const VF val = hn::LoadU(d, kv + c * N), verr = hn::LoadU(d, ke + c * N);
    VF gv = hn::MulAdd(va_hi, val, hn::MulAdd(va_lo, val, hn::Mul(va_hi, verr)));
    const auto small = hn::Eq(val, hn::Zero(d));  // GradStoredImpl's v = 0
    gv = hn::IfThenElse(small, vzero, gv);
    if (HWY_UNLIKELY(any_huge || !hn::AllFalse(d, hn::Lt(val, vtiny)))) {
      const VF v = load(c);
      const VF s = hn::Sub(v, m);  // as ExpShifted computed it
      const auto slow = hn::And(small, hn::Ge(s, vylow));
      const auto tiny_lanes = hn::AndNot(small, hn::Lt(val, vtiny));
      if (any_huge || !hn::AllFalse(d, hn::Or(slow, tiny_lanes))) {
        HWY_ALIGN float out[kTargetMaxLanes], xv[kTargetMaxLanes], sv[kTargetMaxLanes], tl[kTargetMaxLanes], vl[kTargetMaxLanes], el[kTargetMaxLanes];
        hn::Store(gv, d, out);
        hn::Store(v, d, xv);
        hn::Store(hn::VecFromMask(d, slow), d, sv);
        hn::Store(hn::VecFromMask(d, tiny_lanes), d, tl);
        hn::Store(val, d, vl);
        hn::Store(verr, d, el);
        for (std::int64_t k = 0; k < K; ++k) {
          if (huge[k] || sv[k] != 0.0f)
            out[k] = static_cast<float>(
                a_d[k] * std::exp(static_cast<double>(xv[k]) - static_cast<double>(M[k])));
          else if (tl[k] != 0.0f)
            out[k] = TinyProduct(a_d[k], vl[k], el[k]);
        }
        gv = hn::Load(d, out);
      }
    }
    if (HWY_UNLIKELY(any_bad)) {
      gv = hn::IfThenElse(is_bad, vnan, gv);
      gv = hn::IfThenZeroElse(is_skip, gv);
    }
    float* gc = q.g + c * gs;
    if (K == N) {
      hn::StoreU(gv, d, gc);
    } else {
      HWY_ALIGN float out[kTargetMaxLanes];
      hn::Store(gv, d, out);
      std::memcpy(gc, out, static_cast<std::size_t>(K) * sizeof(float));
    }
  }
  // The target entries (ok rows only: bad and skipped rows keep NaN and 0).
  for (std::int64_t k = 0; k < K; ++k)
    if (tcls[k] >= 0) q.g[k + tcls[k] * gs] = gt[k];
}

std::int64_t LanesImpl() { return static_cast<std::int64_t>(hn::Lanes(DF())); }

// Lanes of DF (hn::Lanes is not constexpr): a full vector, one float on
// HWY_SCALAR (whose HWY_MAX_BYTES is larger).
#if HWY_TARGET == HWY_SCALAR
constexpr std::int64_t kFullLanes = 1;
#else
constexpr std::int64_t kFullLanes = kTargetMaxLanes;
#endif

// The N x N transpose of v[0..N-1] (row k = v[k]) in registers: log2 N
// rounds of the perfect unshuffle, each of which rotates the bits of an
// element's index r N + c right by one; log2 N rotations swap r and c.
HWY_INLINE void Transpose(DF d, VF* v) {
#if HWY_TARGET != HWY_SCALAR
  constexpr std::int64_t N = kFullLanes;
  // Unrolled completely, so that the arrays live in registers.
  VF t[N];
#pragma GCC unroll 4
  for (std::int64_t round = 1; round < N; round *= 2) {
#pragma GCC unroll 8
    for (std::int64_t i = 0; i < N / 2; ++i) {
      t[i] = hn::ConcatEven(d, v[2 * i + 1], v[2 * i]);
      t[N / 2 + i] = hn::ConcatOdd(d, v[2 * i + 1], v[2 * i]);
    }
#pragma GCC unroll 16
    for (std::int64_t i = 0; i < N; ++i) v[i] = t[i];
  }
#else
  (void)d, (void)v;
#endif
}

// The first n lanes at p, the others 0, reading nothing past p + n: masked
// loads and stores where the target has them (AVX2, AVX-512), a copy
// through a buffer where Highway emulates them by reading or writing the
// whole vector (another thread's row may lie there).
HWY_INLINE VF LoadFirst(DF d, const float* p, std::int64_t n) {
#if HWY_TARGET <= HWY_AVX2
  return hn::MaskedLoad(hn::FirstN(d, static_cast<std::size_t>(n)), d, p);
#else
  return LoadPartial(d, p, n, 0.0f);
#endif
}
HWY_INLINE void StoreFirst(DF d, VF v, float* p, std::int64_t n) {
#if HWY_TARGET <= HWY_AVX2
  hn::BlendedStore(v, hn::FirstN(d, static_cast<std::size_t>(n)), d, p);
#else
  HWY_ALIGN float buf[kTargetMaxLanes];
  hn::Store(v, d, buf);
  std::memcpy(p, buf, static_cast<std::size_t>(n) * sizeof(float));
#endif
}

// A gather group's rows into buf[c * N + k] (gather_columns in
// simd_column.hpp): N x N tiles transposed in registers; one value at a
// time, which cost as much as the column kernel itself at C = 10 and
// C = 100, only for rows whose classes are not adjacent.
void GatherColumnsImpl(const float* const* rows, std::int64_t count, std::int64_t cs, std::int64_t C, float* buf) {
  const DF d;
  constexpr std::int64_t N = kFullLanes;
  if (cs != 1) {
    for (std::int64_t k = 0; k < count; ++k)
      for (std::int64_t c = 0; c < C; ++c) buf[c * N + k] = rows[k][c * cs];
    return;
  }
  VF v[N];
  for (std::int64_t c0 = 0; c0 < C; c0 += N) {
    const std::int64_t n = std::min(N, C - c0);
#pragma GCC unroll 16
    for (std::int64_t k = 0; k < N; ++k)
      v[k] = k >= count ? hn::Zero(d) : n == N ? hn::LoadU(d, rows[k] + c0) : LoadFirst(d, rows[k] + c0, n);
    Transpose(d, v);
#pragma GCC unroll 16
    for (std::int64_t j = 0; j < N; ++j)
      if (j < n) hn::StoreU(v[j], d, buf + (c0 + j) * N);
  }
}

// And the gradient back into the group's `count` rows.
void ScatterColumnsImpl(const float* buf, float* const* rows, std::int64_t count, std::int64_t cs, std::int64_t C) {
  const DF d;
  constexpr std::int64_t N = kFullLanes;
  if (cs != 1) {
    for (std::int64_t k = 0; k < count; ++k)
      for (std::int64_t c = 0; c < C; ++c) rows[k][c * cs] = buf[c * N + k];
    return;
  }
  VF v[N];
  for (std::int64_t c0 = 0; c0 < C; c0 += N) {
    const std::int64_t n = std::min(N, C - c0);
#pragma GCC unroll 16
    for (std::int64_t j = 0; j < N; ++j) v[j] = j < n ? hn::LoadU(d, buf + (c0 + j) * N) : hn::Zero(d);
    Transpose(d, v);
#pragma GCC unroll 16
    for (std::int64_t k = 0; k < N; ++k) {
      if (k >= count) break;
      if (n == N) hn::StoreU(v[k], d, rows[k] + c0);
      else StoreFirst(d, v[k], rows[k] + c0, n);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace simd
}  // namespace xent
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace xent {
namespace simd {

HWY_EXPORT(ColumnRowsImpl);
HWY_EXPORT(LanesImpl);
HWY_EXPORT(GatherColumnsImpl);
HWY_EXPORT(ScatterColumnsImpl);

void column_rows(const column_group& g) { HWY_DYNAMIC_DISPATCH(ColumnRowsImpl)(g); }
std::int64_t column_lanes() { return HWY_DYNAMIC_DISPATCH(LanesImpl)(); }
void gather_columns(const float* const* rows, std::int64_t count, std::int64_t cs, std::int64_t C, float* buf) {
  HWY_DYNAMIC_DISPATCH(GatherColumnsImpl)(rows, count, cs, C, buf);
}
void scatter_columns(const float* buf, float* const* rows, std::int64_t count, std::int64_t cs, std::int64_t C) {
  HWY_DYNAMIC_DISPATCH(ScatterColumnsImpl)(buf, rows, count, cs, C);
}

}  // namespace simd
}  // namespace xent
#endif  // HWY_ONCE

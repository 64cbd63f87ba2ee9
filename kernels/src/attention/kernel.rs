//! The attention algorithm of [`super`], written once over a small vector trait ([`Simd`]) and
//! instantiated per path. Everything here is `#[inline(always)]` so that it is compiled inside
//! each path's `#[target_feature]` entry points ([`Path::tile`], [`Path::merge`]); the driver
//! ([`attend`]) only splits work and calls those entries.

use super::{Attention, KvFormat, CHUNK, MAX_HEAD_DIM, TILE_ROWS};
use crate::formats::{BlockQ8_0, QK8_0};
use rayon::prelude::*;
use std::cell::RefCell;

/// Lane-wise f32 operations a path provides. Each path's arithmetic is self-consistent (its
/// `fma` is fused on SIMD paths, `a·b + c` on the scalar one); nothing requires two paths to
/// agree bit for bit.
///
/// # Safety
/// Every method may only run on a CPU with the path's features; pointer arguments must be valid
/// for the reads/writes stated.
pub(crate) trait Simd {
    /// Lanes per vector.
    const W: usize;
    /// Architectural vector registers: 32 lets the score and P·V blocks keep 16 accumulators
    /// plus their operands in registers (AVX-512, NEON); 16 (AVX2) keeps the smaller blocks.
    const REGS: usize;
    type V: Copy;

    unsafe fn splat(x: f32) -> Self::V;
    /// `W` floats from `p`.
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `W` little-endian f16 values from `p`, exactly converted.
    unsafe fn load_f16(p: *const u8) -> Self::V;
    /// `W` i8 values from `p` as f32.
    unsafe fn load_i8(p: *const u8) -> Self::V;
    /// One f16 value, exactly converted.
    unsafe fn f16_to_f32(bits: u16) -> f32;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// `a · b + c`.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn abs(a: Self::V) -> Self::V;
    /// Round to an integral value (nearest).
    unsafe fn round(a: Self::V) -> Self::V;
    /// `2^n` for integral `n` in `-126..=127`.
    unsafe fn pow2i(n: Self::V) -> Self::V;
    /// Lane-wise `if a < b { x } else { y }`.
    unsafe fn select_lt(a: Self::V, b: Self::V, x: Self::V, y: Self::V) -> Self::V;
    /// Sum of the lanes (a fixed order per path).
    unsafe fn hsum(a: Self::V) -> f32;
    /// `hsum` of 16 vectors, bit for bit (a path may share the shuffles between them).
    #[inline(always)]
    unsafe fn hsum16(a: &[Self::V; 16]) -> [f32; 16] {
        std::array::from_fn(|i| unsafe { Self::hsum(a[i]) })
    }
    /// Hint that the cache line at `p` will be read soon (to the second-level cache); may do
    /// nothing.
    #[inline(always)]
    unsafe fn prefetch(_p: *const u8) {}
    unsafe fn hmax(a: Self::V) -> f32;
    unsafe fn lane0(a: Self::V) -> f32;
}

/// `e^x` for every lane: Cody–Waite range reduction (`x = n·ln2 + r`, `|r| <= ln2/2`), a
/// degree-7 polynomial for `e^r` (Cephes' `expf` coefficients, ~1 ulp) and `2^n` built in the
/// exponent. Returns exactly 0 below -87.3 (so masked scores, `-inf`, weigh exactly nothing)
/// and exactly 1 at 0.
#[inline(always)]
pub(crate) unsafe fn exp<S: Simd>(x: S::V) -> S::V {
    unsafe {
        const LO: f32 = -87.336_54;
        let xc = S::max(S::min(x, S::splat(88.0)), S::splat(LO));
        let n = S::round(S::mul(xc, S::splat(std::f32::consts::LOG2_E)));
        let r = S::fma(n, S::splat(-0.693_359_4), xc);
        let r = S::fma(n, S::splat(2.121_944_4e-4), r);
        let mut p = S::splat(1.987_569_1e-4);
        p = S::fma(p, r, S::splat(1.398_199_9e-3));
        p = S::fma(p, r, S::splat(8.333_452e-3));
        p = S::fma(p, r, S::splat(4.166_579_6e-2));
        p = S::fma(p, r, S::splat(1.666_666_5e-1));
        p = S::fma(p, r, S::splat(0.5));
        let y = S::add(S::fma(p, S::mul(r, r), r), S::splat(1.0));
        S::select_lt(x, S::splat(LO), S::splat(0.0), S::mul(y, S::pow2i(n)))
    }
}

/// `tanh(x)` for every lane: an odd polynomial below |x| = 0.625 (Cephes' `tanhf`), else
/// `1 − 2/(e^{2|x|} + 1)` with the sign restored. ~2 ulp.
#[inline(always)]
pub(crate) unsafe fn tanh<S: Simd>(x: S::V) -> S::V {
    unsafe {
        let ax = S::abs(x);
        let z = S::mul(x, x);
        let mut p = S::splat(-5.704_988_7e-3);
        p = S::fma(p, z, S::splat(2.063_909e-2));
        p = S::fma(p, z, S::splat(-5.373_971_6e-2));
        p = S::fma(p, z, S::splat(1.333_144_2e-1));
        p = S::fma(p, z, S::splat(-3.333_328e-1));
        let small = S::fma(S::mul(p, z), x, x);
        let e = exp::<S>(S::add(ax, ax));
        let big = S::sub(
            S::splat(1.0),
            S::div(S::splat(2.0), S::add(e, S::splat(1.0))),
        );
        let big = S::select_lt(x, S::splat(0.0), S::sub(S::splat(0.0), big), big);
        S::select_lt(ax, S::splat(0.625), small, big)
    }
}

/// Reads head vectors of one storage format as f32 vectors.
trait Load {
    /// Lanes `d .. d + W` of the head vector at `p` (`d` a multiple of `W`, `d + W <= head_dim`).
    unsafe fn load<S: Simd>(p: *const u8, d: usize) -> S::V;
    /// Lanes `d .. d + len` (`len < W`), the rest zero. Only for formats without blocks.
    unsafe fn load_tail<S: Simd>(p: *const u8, d: usize, len: usize) -> S::V;
}

struct LoadF32;
struct LoadF16;
struct LoadQ8;

impl Load for LoadF32 {
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const u8, d: usize) -> S::V {
        unsafe { S::load((p as *const f32).add(d)) }
    }
    #[inline(always)]
    unsafe fn load_tail<S: Simd>(p: *const u8, d: usize, len: usize) -> S::V {
        let mut t = [0.0f32; 16];
        unsafe {
            std::ptr::copy_nonoverlapping((p as *const f32).add(d), t.as_mut_ptr(), len);
            S::load(t.as_ptr())
        }
    }
}

impl Load for LoadF16 {
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const u8, d: usize) -> S::V {
        unsafe { S::load_f16(p.add(2 * d)) }
    }
    #[inline(always)]
    unsafe fn load_tail<S: Simd>(p: *const u8, d: usize, len: usize) -> S::V {
        let mut t = [0u8; 32];
        unsafe {
            std::ptr::copy_nonoverlapping(p.add(2 * d), t.as_mut_ptr(), 2 * len);
            S::load_f16(t.as_ptr())
        }
    }
}

const Q8_BYTES: usize = std::mem::size_of::<BlockQ8_0>();

impl Load for LoadQ8 {
    /// `q as f32 · d`: the same product `dequantize_row_q8_0` computes, so keys read from a
    /// q8_0 ring equal the batch's rounded f32 keys exactly.
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const u8, d: usize) -> S::V {
        unsafe {
            let b = p.add(d / QK8_0 * Q8_BYTES);
            let scale = S::f16_to_f32(std::ptr::read_unaligned(b as *const u16));
            S::mul(S::load_i8(b.add(2 + d % QK8_0)), S::splat(scale))
        }
    }
    #[inline(always)]
    unsafe fn load_tail<S: Simd>(_p: *const u8, _d: usize, _len: usize) -> S::V {
        unreachable!("q8_0 head_dim is a multiple of 32, so of every vector width")
    }
}

/// Scores of `R` query rows against `J` keys: `out[r][j] = Σ_d q_r[d]·k_j[d]`, one
/// accumulator per (row, key) walked in `d` order, so a score does not depend on `R`, `J` or
/// which other rows and keys share the tile.
#[inline(always)]
unsafe fn dots<S: Simd, L: Load, const R: usize, const J: usize>(
    hd: usize,
    q: &[*const f32; R],
    k: &[*const u8; J],
) -> [[f32; J]; R] {
    unsafe {
        let mut acc = [[S::splat(0.0); J]; R];
        let full = hd / S::W * S::W;
        let mut d = 0;
        while d < full {
            let mut kv = [S::splat(0.0); J];
            for j in 0..J {
                kv[j] = L::load::<S>(k[j], d);
            }
            for r in 0..R {
                let qv = S::load(q[r].add(d));
                for j in 0..J {
                    acc[r][j] = S::fma(qv, kv[j], acc[r][j]);
                }
            }
            d += S::W;
        }
        if full < hd {
            let len = hd - full;
            let mut kv = [S::splat(0.0); J];
            for j in 0..J {
                kv[j] = L::load_tail::<S>(k[j], full, len);
            }
            for r in 0..R {
                let qv = LoadF32::load_tail::<S>(q[r] as *const u8, full, len);
                for j in 0..J {
                    acc[r][j] = S::fma(qv, kv[j], acc[r][j]);
                }
            }
        }
        let mut out = [[0.0; J]; R];
        if R * J == 16 {
            let flat: [S::V; 16] = std::array::from_fn(|i| acc[i / J][i % J]);
            let s = S::hsum16(&flat);
            for r in 0..R {
                for j in 0..J {
                    out[r][j] = s[r * J + j];
                }
            }
        } else {
            for r in 0..R {
                for j in 0..J {
                    out[r][j] = S::hsum(acc[r][j]);
                }
            }
        }
        out
    }
}

/// Scores of rows `q` against keys `k` (all of one format), written to `s[r * CHUNK + col0 + j]`.
/// While key `j` is scored, the `pf_lines` cache lines of `pf[j]` (its value vector, if `pf`
/// is not empty) are prefetched, so that the P·V pass that follows finds them in L2: without
/// it that pass waited on the values' loads (25% of the samples of gemma-2b tg@d8000 sat on
/// the one `vcvtph2ps` of the value in `pv_run`).
#[inline(always)]
unsafe fn score_run<S: Simd, L: Load>(
    hd: usize,
    q: &[*const f32],
    k: &[*const u8],
    pf: &[*const u8],
    pf_lines: usize,
    s: &mut [f32],
    col0: usize,
) {
    macro_rules! block {
        ($r0:expr, $R:literal, $J:literal, $pf:expr) => {{
            let r0 = $r0;
            let qr: [*const f32; $R] = std::array::from_fn(|i| q[r0 + i]);
            let mut j = 0;
            while j + $J <= k.len() {
                let kj: [*const u8; $J] = std::array::from_fn(|i| k[j + i]);
                if $pf {
                    for &v in &pf[j..j + $J] {
                        for l in 0..pf_lines {
                            unsafe { S::prefetch(v.wrapping_add(64 * l)) };
                        }
                    }
                }
                let o = unsafe { dots::<S, L, $R, $J>(hd, &qr, &kj) };
                for r in 0..$R {
                    for i in 0..$J {
                        s[(r0 + r) * CHUNK + col0 + j + i] = o[r][i];
                    }
                }
                j += $J;
            }
            while j < k.len() {
                if $pf {
                    for l in 0..pf_lines {
                        unsafe { S::prefetch(pf[j].wrapping_add(64 * l)) };
                    }
                }
                let o = unsafe { dots::<S, L, $R, 1>(hd, &qr, &[k[j]]) };
                for r in 0..$R {
                    s[(r0 + r) * CHUNK + col0 + j] = o[r][0];
                }
                j += 1;
            }
        }};
    }
    // Only the first block of rows prefetches (the values are the same for every row).
    let mut pf_first = !pf.is_empty();
    let mut r = 0;
    // With 32 registers, 8 rows × 2 keys: 16 accumulators, and each key is converted once for
    // 8 rows instead of twice (two blocks of 4), and the 16 sums share their shuffles
    // (`hsum16`).
    if S::REGS >= 32 {
        while r + 8 <= q.len() {
            if pf_first {
                block!(r, 8, 2, true);
                pf_first = false;
            } else {
                block!(r, 8, 2, false);
            }
            r += 8;
        }
    }
    // 4 rows (Gemma 3 270M's group): 4 keys, 16 accumulators and `hsum16`.
    if S::REGS >= 32 && r + 4 <= q.len() {
        if pf_first {
            block!(r, 4, 4, true);
            pf_first = false;
        } else {
            block!(r, 4, 4, false);
        }
        r += 4;
    }
    // Blocks of 4 rows × 2 keys keep 8 independent accumulator chains; fewer rows take more
    // keys at a time for the same reason.
    while r + 4 <= q.len() {
        if pf_first {
            block!(r, 4, 2, true);
            pf_first = false;
        } else {
            block!(r, 4, 2, false);
        }
        r += 4;
    }
    if r + 2 <= q.len() {
        if pf_first {
            block!(r, 2, 4, true);
            pf_first = false;
        } else {
            block!(r, 2, 4, false);
        }
        r += 2;
    }
    if r < q.len() {
        if pf_first {
            block!(r, 1, 8, true);
        } else {
            block!(r, 1, 8, false);
        }
    }
}

/// `acc_r += Σ_j p[r][j]·v_j` for rows `p`/`acc` and values `v` (all of one format), `j`
/// ascending, `NV` vectors of `acc` at a time in registers.
#[inline(always)]
unsafe fn pv_run<S: Simd, L: Load>(hd: usize, p: &[*const f32], v: &[*const u8], acc: &[*mut f32]) {
    macro_rules! block {
        ($r0:expr, $R:literal, $NV:literal) => {{
            let r0 = $r0;
            let mut d = 0;
            // `NV` whole vectors per pass over the keys...
            while d + $NV * S::W <= hd {
                unsafe {
                    let mut a = [[S::splat(0.0); $NV]; $R];
                    for r in 0..$R {
                        for u in 0..$NV {
                            a[r][u] = S::load(acc[r0 + r].add(d + u * S::W));
                        }
                    }
                    for (j, &vp) in v.iter().enumerate() {
                        let vv: [S::V; $NV] =
                            std::array::from_fn(|u| L::load::<S>(vp, d + u * S::W));
                        for r in 0..$R {
                            let pr = S::splat(*p[r0 + r].add(j));
                            for u in 0..$NV {
                                a[r][u] = S::fma(pr, vv[u], a[r][u]);
                            }
                        }
                    }
                    for r in 0..$R {
                        for u in 0..$NV {
                            S::store(acc[r0 + r].add(d + u * S::W), a[r][u]);
                        }
                    }
                }
                d += $NV * S::W;
            }
            // ...then one (possibly partial) vector at a time.
            while d < hd {
                let len = (hd - d).min(S::W);
                unsafe {
                    let mut a = [S::splat(0.0); $R];
                    for r in 0..$R {
                        a[r] = S::load(acc[r0 + r].add(d));
                    }
                    for (j, &vp) in v.iter().enumerate() {
                        let vv = if len == S::W {
                            L::load::<S>(vp, d)
                        } else {
                            L::load_tail::<S>(vp, d, len)
                        };
                        for r in 0..$R {
                            a[r] = S::fma(S::splat(*p[r0 + r].add(j)), vv, a[r]);
                        }
                    }
                    for r in 0..$R {
                        S::store(acc[r0 + r].add(d), a[r]);
                    }
                }
                d += S::W;
            }
        }};
    }
    let mut r = 0;
    // With 32 registers, 8 rows × 2 vectors: half the passes over the chunk's values, each
    // reading whole 64-byte lines of f16 values, and one broadcast of `p` feeds 2 FMAs.
    if S::REGS >= 32 {
        while r + 8 <= p.len() {
            block!(r, 8, 2);
            r += 8;
        }
    }
    while r + 8 <= p.len() {
        block!(r, 8, 1);
        r += 8;
    }
    if S::REGS >= 32 && r + 4 <= p.len() {
        block!(r, 4, 2);
        r += 4;
    }
    if r + 4 <= p.len() {
        block!(r, 4, 1);
        r += 4;
    }
    if r + 2 <= p.len() {
        block!(r, 2, 1);
        r += 2;
    }
    if r < p.len() {
        block!(r, 1, 1);
    }
}

/// A block of query rows: tokens `t0..t1` of the batch × heads `h0..h1` of KV group `g`.
/// Row `r` is token `t0 + r / (h1 - h0)`, head `g · group + h0 + r % (h1 - h0)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tile {
    pub t0: usize,
    pub t1: usize,
    pub g: usize,
    pub h0: usize,
    pub h1: usize,
}

impl Tile {
    pub fn rows(&self) -> usize {
        (self.t1 - self.t0) * (self.h1 - self.h0)
    }
}

/// Head vectors padded to a whole number of vectors of every path (16 lanes at most).
pub(crate) fn padded(hd: usize) -> usize {
    hd.next_multiple_of(16)
}

/// Floats of a merge state for `rows` rows: `M[rows]`, `L[rows]`, `A[rows × padded(hd)]`.
/// An empty row has `M = -inf`.
pub(crate) fn state_len(rows: usize, hd: usize) -> usize {
    rows * (2 + padded(hd))
}

/// Makes `st` the empty state: `M = -inf`, `L = 0`. `A` is left as it is: an empty row's `A`
/// is never read ([`merge_row`] copies over it, and every row sees at least its own key), and
/// not zeroing it saves an 8 KB memset per chunk task in decode (5% of the samples of gemma-2b
/// tg@d8000 at 2 threads went to clearing states).
pub(crate) fn clear_state(st: &mut [f32], rows: usize) {
    st[..rows].fill(f32::NEG_INFINITY);
    st[rows..2 * rows].fill(0.0);
}

/// Merges the partial `(m, l, a)` into row `r` of the state (`M`, `L`, `A` slices).
#[inline(always)]
unsafe fn merge_row<S: Simd>(
    hdp: usize,
    st_m: &mut f32,
    st_l: &mut f32,
    st_a: *mut f32,
    m: f32,
    l: f32,
    a: *const f32,
) {
    unsafe {
        if m == f32::NEG_INFINITY {
            return;
        }
        if *st_m == f32::NEG_INFINITY {
            *st_m = m;
            *st_l = l;
            std::ptr::copy_nonoverlapping(a, st_a, hdp);
            return;
        }
        let mn = st_m.max(m);
        let f1 = exp::<S>(S::splat(*st_m - mn));
        let f2 = exp::<S>(S::splat(m - mn));
        *st_l = S::lane0(S::fma(S::splat(l), f2, S::mul(S::splat(*st_l), f1)));
        *st_m = mn;
        let mut d = 0;
        while d < hdp {
            let v = S::fma(S::load(a.add(d)), f2, S::mul(S::load(st_a.add(d)), f1));
            S::store(st_a.add(d), v);
            d += S::W;
        }
    }
}

/// Merges every row of state `src` into state `dst` (both for `rows` rows).
///
/// # Safety
/// The CPU has `S`'s features; both states are `state_len(rows, hd)` long.
#[inline(always)]
pub(crate) unsafe fn merge<S: Simd>(hd: usize, rows: usize, dst: &mut [f32], src: &[f32]) {
    let hdp = padded(hd);
    assert!(dst.len() >= state_len(rows, hd) && src.len() >= state_len(rows, hd));
    let (dm, rest) = dst.split_at_mut(rows);
    let (dl, da) = rest.split_at_mut(rows);
    let (sm, rest) = src.split_at(rows);
    let (sl, sa) = rest.split_at(rows);
    for r in 0..rows {
        unsafe {
            merge_row::<S>(
                hdp,
                &mut dm[r],
                &mut dl[r],
                da.as_mut_ptr().add(r * hdp),
                sm[r],
                sl[r],
                sa.as_ptr().add(r * hdp),
            )
        };
    }
}

/// Computes the partial of every row of `tile` for chunks `c_begin..c_end` and merges each, in
/// chunk order, into `st` (a state for `tile.rows()` rows); with `each`, `st` holds one state
/// per chunk instead (all cleared) and chunk `c`'s partial goes into state `c - c_begin`.
///
/// # Safety
/// The CPU has `S`'s features; `a` passed `validate`; `tile.rows() <= TILE_ROWS`.
#[inline(always)]
pub(crate) unsafe fn tile<S: Simd>(
    a: &Attention<'_>,
    tile: &Tile,
    c_begin: usize,
    c_end: usize,
    st: &mut [f32],
    each: bool,
) {
    let hd = a.head_dim;
    let hdp = padded(hd);
    let group = a.group();
    let heads = tile.h1 - tile.h0;
    let rows = tile.rows();
    let len = state_len(rows, hd);
    let states = if each { c_end - c_begin } else { 1 };
    assert!(rows <= TILE_ROWS && st.len() >= states * len && S::W <= 16);
    let q_dim = a.n_head * hd;
    let kv_dim = a.n_head_kv * hd;

    let mut qp = [std::ptr::null::<f32>(); TILE_ROWS];
    for (r, p) in qp.iter_mut().enumerate().take(rows) {
        let (t, h) = (tile.t0 + r / heads, group * tile.g + tile.h0 + r % heads);
        *p = a.q[t * q_dim + h * hd..].as_ptr();
    }
    let qp = &qp[..rows];
    let mut sbuf = [0.0f32; TILE_ROWS * CHUNK];
    let mut pacc = [0.0f32; TILE_ROWS * (MAX_HEAD_DIM + 16)];
    let mut pm = [0.0f32; TILE_ROWS];
    let mut pl = [0.0f32; TILE_ROWS];
    let mut kp = [std::ptr::null::<u8>(); CHUNK];
    let mut vp = [std::ptr::null::<u8>(); CHUNK];

    let lo = a.first_visible(a.pos0 + tile.t0);
    let hi = a.pos0 + tile.t1 - 1;
    let cache = &a.cache;
    let inv_cap = a.softcap.map(|c| 1.0 / c);
    // Cache lines of one cached value vector.
    let pf = cache.format.head_bytes(hd).div_ceil(64);
    for c in c_begin..c_end {
        let k0 = c * CHUNK;
        let (jlo, jhi) = (lo.max(k0), hi.min(k0 + CHUNK - 1));
        if jlo > jhi {
            continue;
        }
        // Keys before pos0 come from the ring, the rest from the batch.
        let split = a.pos0.clamp(jlo, jhi + 1);
        for j in jlo..=jhi {
            let i = j - jlo;
            if j < a.pos0 {
                let o = (j % cache.slots) * cache.slot_stride + tile.g * cache.head_stride;
                kp[i] = cache.k[o..].as_ptr();
                vp[i] = cache.v[o..].as_ptr();
            } else {
                let o = (j - a.pos0) * kv_dim + tile.g * hd;
                kp[i] = a.k_new[o..].as_ptr() as *const u8;
                vp[i] = a.v_new[o..].as_ptr() as *const u8;
            }
        }
        let n_old = split - jlo;
        let n_keys = jhi + 1 - jlo;
        let col0 = jlo - k0;
        unsafe {
            // The batch's own keys and values are few and recently written: no prefetch.
            let (kn, sn) = (&kp[n_old..n_keys], &mut sbuf[..]);
            match cache.format {
                KvFormat::F32 => {
                    score_run::<S, LoadF32>(hd, qp, &kp[..n_old], &vp[..n_old], pf, sn, col0);
                    score_run::<S, LoadF32>(hd, qp, kn, &[], 0, sn, col0 + n_old);
                }
                KvFormat::F16 => {
                    score_run::<S, LoadF16>(hd, qp, &kp[..n_old], &vp[..n_old], pf, sn, col0);
                    score_run::<S, LoadF32>(hd, qp, kn, &[], 0, sn, col0 + n_old);
                }
                KvFormat::Q8_0 => {
                    score_run::<S, LoadQ8>(hd, qp, &kp[..n_old], &vp[..n_old], pf, sn, col0);
                    score_run::<S, LoadF32>(hd, qp, kn, &[], 0, sn, col0 + n_old);
                }
            }
        }
        // Vector blocks (chunk-local, aligned) covering the computed scores.
        let b_lo = col0 / S::W * S::W;
        let b_hi = (jhi - k0) / S::W * S::W + S::W;
        for r in 0..rows {
            let pos = a.pos0 + tile.t0 + r / heads;
            let (vlo, vhi) = (a.first_visible(pos).max(k0), pos.min(k0 + CHUNK - 1));
            let row = &mut sbuf[r * CHUNK..(r + 1) * CHUNK];
            if vlo > vhi {
                // Sees nothing here: weigh every key of the tile by exactly 0.
                row[b_lo..b_hi].fill(0.0);
                pm[r] = f32::NEG_INFINITY;
                continue;
            }
            unsafe {
                let mut b = b_lo;
                while b < b_hi {
                    let mut s = S::mul(S::load(row.as_ptr().add(b)), S::splat(a.scale));
                    if let (Some(cap), Some(inv)) = (a.softcap, inv_cap) {
                        s = S::mul(S::splat(cap), tanh::<S>(S::mul(s, S::splat(inv))));
                    }
                    S::store(row.as_mut_ptr().add(b), s);
                    b += S::W;
                }
            }
            row[b_lo..vlo - k0].fill(f32::NEG_INFINITY);
            row[vhi - k0 + 1..b_hi].fill(f32::NEG_INFINITY);
            unsafe {
                let mut mv = S::splat(f32::NEG_INFINITY);
                let mut b = b_lo;
                while b < b_hi {
                    mv = S::max(mv, S::load(row.as_ptr().add(b)));
                    b += S::W;
                }
                let m = S::hmax(mv);
                let mut lv = S::splat(0.0);
                let mut b = b_lo;
                while b < b_hi {
                    let p = exp::<S>(S::sub(S::load(row.as_ptr().add(b)), S::splat(m)));
                    S::store(row.as_mut_ptr().add(b), p);
                    lv = S::add(lv, p);
                    b += S::W;
                }
                pm[r] = m;
                pl[r] = S::hsum(lv);
            }
        }
        pacc[..rows * hdp].fill(0.0);
        let mut pp = [std::ptr::null::<f32>(); TILE_ROWS];
        let mut ap = [std::ptr::null_mut::<f32>(); TILE_ROWS];
        for r in 0..rows {
            pp[r] = sbuf[r * CHUNK + col0..].as_ptr();
            ap[r] = pacc[r * hdp..].as_mut_ptr();
        }
        let (pp, ap) = (&pp[..rows], &ap[..rows]);
        let pp_new: [*const f32; TILE_ROWS] = std::array::from_fn(|r| {
            if r < rows {
                pp[r].wrapping_add(n_old)
            } else {
                pp[0]
            }
        });
        unsafe {
            match cache.format {
                KvFormat::F32 => pv_run::<S, LoadF32>(hd, pp, &vp[..n_keys], ap),
                KvFormat::F16 => {
                    pv_run::<S, LoadF16>(hd, pp, &vp[..n_old], ap);
                    pv_run::<S, LoadF32>(hd, &pp_new[..rows], &vp[n_old..n_keys], ap);
                }
                KvFormat::Q8_0 => {
                    pv_run::<S, LoadQ8>(hd, pp, &vp[..n_old], ap);
                    pv_run::<S, LoadF32>(hd, &pp_new[..rows], &vp[n_old..n_keys], ap);
                }
            }
        }
        let off = if each { (c - c_begin) * len } else { 0 };
        let (st_m, rest) = st[off..off + len].split_at_mut(rows);
        let (st_l, st_a) = rest.split_at_mut(rows);
        for r in 0..rows {
            unsafe {
                merge_row::<S>(
                    hdp,
                    &mut st_m[r],
                    &mut st_l[r],
                    st_a.as_mut_ptr().add(r * hdp),
                    pm[r],
                    pl[r],
                    pacc.as_ptr().add(r * hdp),
                )
            };
        }
    }
}

/// A path's entry points into the algorithm.
pub(crate) trait Path {
    /// [`tile`] compiled with the path's features.
    ///
    /// # Safety
    /// As [`tile`].
    unsafe fn tile(
        a: &Attention<'_>,
        t: &Tile,
        c_begin: usize,
        c_end: usize,
        st: &mut [f32],
        each: bool,
    );
    /// [`merge`] compiled with the path's features.
    ///
    /// # Safety
    /// As [`merge`].
    unsafe fn merge(hd: usize, rows: usize, dst: &mut [f32], src: &[f32]);
}

/// The tiles of a call: tokens × KV groups × head ranges, at most `TILE_ROWS` rows each,
/// into `v` (cleared first; its capacity is kept between calls).
fn tiles(a: &Attention<'_>, v: &mut Vec<Tile>) {
    let group = a.group();
    let (tq, hs) = if group <= TILE_ROWS {
        (TILE_ROWS / group, group)
    } else {
        (1, TILE_ROWS)
    };
    v.clear();
    let mut t0 = 0;
    while t0 < a.n {
        let t1 = (t0 + tq).min(a.n);
        for g in 0..a.n_head_kv {
            let mut h0 = 0;
            while h0 < group {
                let h1 = (h0 + hs).min(group);
                v.push(Tile { t0, t1, g, h0, h1 });
                h0 = h1;
            }
        }
        t0 = t1;
    }
}

/// Chunks tile `t` sees: `c_lo..c_hi`.
fn chunk_range(a: &Attention<'_>, t: &Tile) -> (usize, usize) {
    let lo = a.first_visible(a.pos0 + t.t0);
    let hi = a.pos0 + t.t1 - 1;
    (lo / CHUNK, hi / CHUNK + 1)
}

/// Writes `A / L` of every row of state `st` into `out` (rows of `tile`).
///
/// # Safety
/// `out` points at the `n × n_head × head_dim` output, and no other thread writes this tile's
/// rows.
unsafe fn finish(a: &Attention<'_>, t: &Tile, st: &[f32], out: *mut f32) {
    let hd = a.head_dim;
    let hdp = padded(hd);
    let rows = t.rows();
    let heads = t.h1 - t.h0;
    let (st_l, st_a) = (&st[rows..2 * rows], &st[2 * rows..]);
    for r in 0..rows {
        let (tok, h) = (t.t0 + r / heads, a.group() * t.g + t.h0 + r % heads);
        let inv = 1.0 / st_l[r];
        let src = &st_a[r * hdp..r * hdp + hd];
        let dst = unsafe { out.add((tok * a.n_head + h) * hd) };
        for (d, &x) in src.iter().enumerate() {
            unsafe { *dst.add(d) = x * inv };
        }
    }
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint rows of the output (see `finish`) or disjoint ranges of the
// partials buffer (see `attend`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// A split call's task: tile `tile`, chunks `c0..c1`, their partials at `off` in the buffer.
#[derive(Clone, Copy)]
struct Task {
    tile: usize,
    c0: usize,
    c1: usize,
    off: usize,
}

/// The driver's lists, kept per calling thread with their capacity, so that steady-state
/// decode allocates nothing (`tests/no_alloc_per_token.rs`).
#[derive(Default)]
struct Plan {
    tiles: Vec<Tile>,
    ranges: Vec<(usize, usize)>,
    tasks: Vec<Task>,
    /// Start of each tile's partials in the buffer, and the total at the end.
    offsets: Vec<usize>,
    /// Partials of split calls (decode).
    partials: Vec<f32>,
}

thread_local! {
    static PLAN: RefCell<Plan> = RefCell::new(Plan::default());
}

/// The driver: splits the call over threads and runs path `P` on each piece.
///
/// # Safety
/// As [`super::AttentionFn`].
pub(crate) unsafe fn attend<P: Path>(a: &Attention<'_>, out: &mut [f32]) {
    if a.n == 0 {
        return;
    }
    // Taken out of the thread-local for the call (a nested call on this thread, which the
    // models never make, would start from an empty plan and only allocate).
    let mut plan = PLAN.with(|p| std::mem::take(&mut *p.borrow_mut()));
    unsafe { attend_with::<P>(a, out, &mut plan) };
    PLAN.with(|p| *p.borrow_mut() = plan);
}

unsafe fn attend_with<P: Path>(a: &Attention<'_>, out: &mut [f32], plan: &mut Plan) {
    let hd = a.head_dim;
    tiles(a, &mut plan.tiles);
    let tiles = &plan.tiles;
    let threads = rayon::current_num_threads();
    let outp = OutPtr(out.as_mut_ptr());
    plan.ranges.clear();
    plan.ranges.extend(tiles.iter().map(|t| chunk_range(a, t)));
    let ranges = &plan.ranges;
    let max_chunks = ranges.iter().map(|r| r.1 - r.0).max().unwrap_or(0);
    if threads == 1 || tiles.len() >= 2 * threads || max_chunks <= 1 {
        // Whole tiles per task, chunks merged as they are computed.
        let run = |(t, &(c0, c1)): (&Tile, &(usize, usize))| {
            let mut st = [0.0f32; TILE_ROWS * (2 + MAX_HEAD_DIM + 16)];
            let st = &mut st[..state_len(t.rows(), hd)];
            clear_state(st, t.rows());
            let o = outp;
            unsafe {
                P::tile(a, t, c0, c1, st, false);
                finish(a, t, st, o.0);
            }
        };
        if threads == 1 || tiles.len() == 1 {
            tiles.iter().zip(ranges).for_each(run);
        } else {
            tiles.par_iter().zip(ranges).for_each(run);
        }
        return;
    }
    // Few tiles (decode): tasks of a few consecutive chunks of one tile, each chunk's partial
    // written to its own state; then each tile merges its partials in chunk order. A task per
    // chunk paid the tile call's setup (41 KB of zeroed scratch) and a rayon job per 128 keys;
    // ~4 tasks per thread still balance when the other core is busy.
    let per_task = max_chunks.div_ceil(4 * threads).max(1);
    plan.offsets.clear();
    plan.tasks.clear();
    let mut total = 0;
    for (i, (t, &(c0, c1))) in tiles.iter().zip(ranges).enumerate() {
        plan.offsets.push(total);
        let len = state_len(t.rows(), hd);
        let mut c = c0;
        while c < c1 {
            let e = (c + per_task).min(c1);
            plan.tasks.push(Task {
                tile: i,
                c0: c,
                c1: e,
                off: total + (c - c0) * len,
            });
            c = e;
        }
        total += (c1 - c0) * len;
    }
    plan.offsets.push(total);
    if plan.partials.len() < total {
        plan.partials.resize(total, 0.0);
    }
    let buf = OutPtr(plan.partials.as_mut_ptr());
    let offsets = &plan.offsets;
    plan.tasks.par_iter().for_each(|task| {
        let t = &tiles[task.tile];
        let len = state_len(t.rows(), hd);
        let b = buf;
        // SAFETY: task `task`'s partials, `(c1 - c0) * len` floats at `off`, are inside the
        // buffer (sized to `total` above) and no other task's (tasks cover disjoint chunks).
        let st =
            unsafe { std::slice::from_raw_parts_mut(b.0.add(task.off), (task.c1 - task.c0) * len) };
        for part in st.chunks_exact_mut(len) {
            clear_state(part, t.rows());
        }
        unsafe { P::tile(a, t, task.c0, task.c1, st, true) };
    });
    (0..tiles.len()).into_par_iter().for_each(|i| {
        let t = &tiles[i];
        let len = state_len(t.rows(), hd);
        let b = buf;
        // SAFETY: tile `i`'s partials, `offsets[i]..offsets[i + 1]`, are inside the buffer and
        // no other tile's.
        let s = unsafe {
            std::slice::from_raw_parts_mut(b.0.add(offsets[i]), offsets[i + 1] - offsets[i])
        };
        let (first, rest) = s.split_at_mut(len);
        for part in rest.chunks_exact(len) {
            unsafe { P::merge(hd, t.rows(), first, part) };
        }
        let o = outp;
        unsafe { finish(a, t, first, o.0) };
    });
}

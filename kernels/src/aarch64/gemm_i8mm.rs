//! i8mm prefill microkernels: 4 weight rows × 4 tokens per tile as four 2×2 `smmla` tiles.
//!
//! `smmla` multiplies a 2×8 i8 matrix (two rows' 8 consecutive values) by an 8×2 one (two
//! tokens' 8 values) into a 2×2 i32 tile `[r0t0, r0t1, r1t0, r1t1]`. Weight rows are paired
//! (rows 0-1, 2-3) and tokens paired (0-1, 2-3) on the fly with `zip1`/`zip2` of 64-bit
//! lanes; each 8-value k step is 4 `smmla` for the 16 (row, token) pairs, against 16 `sdot`
//! in the dotprod kernel. Per block the 2×2 tiles are scaled by the outer product of the rows'
//! and tokens' scales and accumulated in f32; at the end `uzp1`/`uzp2` turn them back into
//! one vector of 4 rows per token (the `Tile4` contract). Fewer than 4 tokens are padded with
//! copies of the last one (only at the end of an activation tile).

// The 2×2 tiles are indexed [row pair][token pair] together with their operands.
#![allow(clippy::needless_range_loop)]

use super::gemm::{
    f16_gather4, kquant45_sub, map4, mins4, q6k_scales, q6k_sub, scale_lanes, transpose_scales,
    Tile4,
};
use super::int::{bsum_pairs, ld, Legacy, K_ACT, K_QS, Q4_0W, Q4_1W, Q5_0W, Q5_1W, Q8_0W};
use super::unroll;
use crate::simd_common::unpack_q4k_scales;
use std::arch::aarch64::*;

/// `acc` + the 2×2 `smmla` product of `x` (two rows' 8 values) and `y` (two tokens' 8).
#[inline(always)]
unsafe fn smmla(mut acc: int32x4_t, x: int8x16_t, y: int8x16_t) -> int32x4_t {
    // SAFETY: only reached from `#[target_feature(enable = "i8mm")]` functions.
    unsafe {
        std::arch::asm!(
            "smmla {acc:v}.4s, {x:v}.16b, {y:v}.16b",
            acc = inout(vreg) acc,
            x = in(vreg) x,
            y = in(vreg) y,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// Two 16-value vectors of rows (or tokens) `a`, `b` as `smmla` operands: `[a0-7, b0-7]`,
/// `[a8-15, b8-15]`.
#[inline(always)]
fn pair(a: int8x16_t, b: int8x16_t) -> [int8x16_t; 2] {
    unsafe {
        let (a, b) = (vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b));
        [
            vreinterpretq_s8_s64(vzip1q_s64(a, b)),
            vreinterpretq_s8_s64(vzip2q_s64(a, b)),
        ]
    }
}

/// The 4 k steps of a 32-value block of rows `a`, `b` (two vectors of 16 each).
#[inline(always)]
fn steps4(a: [int8x16_t; 2], b: [int8x16_t; 2]) -> [int8x16_t; 4] {
    let (lo, hi) = (pair(a[0], b[0]), pair(a[1], b[1]));
    [lo[0], lo[1], hi[0], hi[1]]
}

/// `[v0, v0, v1, v1]` and `[v2, v2, v3, v3]`: per-row values laid out like a 2×2 tile.
#[inline(always)]
fn rows2(v: float32x4_t) -> [float32x4_t; 2] {
    unsafe { [vzip1q_f32(v, v), vzip2q_f32(v, v)] }
}

#[inline(always)]
fn rows2_i(v: int32x4_t) -> [int32x4_t; 2] {
    unsafe { [vzip1q_s32(v, v), vzip2q_s32(v, v)] }
}

/// `[t0, t1, t0, t1]` and `[t2, t3, t2, t3]`: per-token values laid out like a 2×2 tile.
#[inline(always)]
fn toks2(v: float32x4_t) -> [float32x4_t; 2] {
    unsafe {
        let d = vreinterpretq_f64_f32(v);
        [
            vreinterpretq_f32_f64(vdupq_laneq_f64::<0>(d)),
            vreinterpretq_f32_f64(vdupq_laneq_f64::<1>(d)),
        ]
    }
}

/// The 2×2 tiles `acc[row pair][token pair]` as one vector of 4 rows per token.
#[inline(always)]
fn untile<const NT: usize>(acc: [[float32x4_t; 2]; 2]) -> [float32x4_t; NT] {
    unsafe {
        let t = [
            vuzp1q_f32(acc[0][0], acc[1][0]),
            vuzp2q_f32(acc[0][0], acc[1][0]),
            vuzp1q_f32(acc[0][1], acc[1][1]),
            vuzp2q_f32(acc[0][1], acc[1][1]),
        ];
        let mut out = [t[0]; NT];
        out.copy_from_slice(&t[..NT]);
        out
    }
}

/// The 4 token pointers of a tile, the last repeated when `NT < 4`.
#[inline(always)]
fn pad<const NT: usize>(a: [*const u8; NT]) -> [*const u8; 4] {
    [a[0], a[1.min(NT - 1)], a[2.min(NT - 1)], a[3.min(NT - 1)]]
}

/// 4 f32 at `p[j] + off`.
#[inline(always)]
unsafe fn f32_gather4(p: [*const u8; 4], off: usize) -> float32x4_t {
    unsafe {
        let v = map4(p, |q| super::rd_f32(q.add(off)));
        vld1q_f32(v.as_ptr())
    }
}

/// Legacy 32-value blocks: 4 k steps of 8 per block.
#[inline(always)]
unsafe fn legacy_mm<L: Legacy, const NT: usize>(
    cols: usize,
    w: [*const u8; 4],
    a: [*const u8; NT],
) -> [float32x4_t; NT] {
    let a = pad(a);
    let a_block = L::A_QS + 32;
    let mut acc = [[unsafe { vdupq_n_f32(0.0) }; 2]; 2];
    for b in 0..cols / 32 {
        let pw = map4(w, |p| unsafe { p.add(b * L::W_BLOCK) });
        let pa = map4(a, |p| unsafe { p.add(b * a_block) });
        let x = map4(pw, |p| unsafe { L::weights(p) });
        // xs[row pair][k step]
        let xs = [steps4(x[0], x[1]), steps4(x[2], x[3])];
        let dw = rows2(unsafe { f16_gather4(pw) });
        let dy = toks2(unsafe { f16_gather4(pa) });
        let (mw, sy) = if L::HAS_MIN {
            (
                rows2(unsafe { f16_gather4(map4(pw, |p| p.add(2))) }),
                toks2(unsafe { f16_gather4(map4(pa, |p| p.add(2))) }),
            )
        } else {
            (dw, dy)
        };
        for q in 0..2 {
            let y0 = unsafe { [ld(pa[2 * q].add(L::A_QS)), ld(pa[2 * q].add(L::A_QS + 16))] };
            let y1 = unsafe {
                [
                    ld(pa[2 * q + 1].add(L::A_QS)),
                    ld(pa[2 * q + 1].add(L::A_QS + 16)),
                ]
            };
            let ys = steps4(y0, y1);
            for p in 0..2 {
                let mut s = unsafe { vdupq_n_s32(0) };
                for k in 0..4 {
                    s = unsafe { smmla(s, xs[p][k], ys[k]) };
                }
                let scale = unsafe { vmulq_f32(dw[p], dy[q]) };
                acc[p][q] = unsafe { vfmaq_f32(acc[p][q], vcvtq_f32_s32(s), scale) };
                if L::HAS_MIN {
                    acc[p][q] = unsafe { vfmaq_f32(acc[p][q], mw[p], sy[q]) };
                }
            }
        }
    }
    untile(acc)
}

/// Q4_K / Q5_K: per sub-block of 32, four 2×2 tiles of 4 k steps, times the rows' scales.
#[inline(always)]
unsafe fn kquant45_mm<const HIGH: bool, const NT: usize>(
    cols: usize,
    w: [*const u8; 4],
    a: [*const u8; NT],
) -> [float32x4_t; NT] {
    let a = pad(a);
    let w_block = if HIGH { 176 } else { 144 };
    let mut acc = [[unsafe { vdupq_n_f32(0.0) }; 2]; 2];
    for b in 0..cols / 256 {
        let pw = map4(w, |p| unsafe { p.add(b * w_block) });
        let pa = map4(a, |p| unsafe { p.add(b * K_ACT) });
        let scm = map4(pw, |p| unsafe { unpack_q4k_scales(p.add(4)) });
        let sc = unsafe { transpose_scales(map4(scm, |(s, _)| s)) };
        let mut sumi = [[unsafe { vdupq_n_s32(0) }; 2]; 2];
        unroll!(s in [0, 1, 2, 3, 4, 5, 6, 7] {
            let x = map4(pw, |p| unsafe { kquant45_sub::<HIGH>(p, s) });
            let xs = [steps4(x[0], x[1]), steps4(x[2], x[3])];
            let scale = rows2_i(unsafe { scale_lanes(&sc, s) });
            for q in 0..2 {
                let y = |t: usize| unsafe {
                    let p = pa[t].add(K_QS + 32 * s);
                    [ld(p), ld(p.add(16))]
                };
                let (y0, y1) = (y(2 * q), y(2 * q + 1));
                let ys = steps4(y0, y1);
                for p in 0..2 {
                    let mut t = unsafe { vdupq_n_s32(0) };
                    for k in 0..4 {
                        t = unsafe { smmla(t, xs[p][k], ys[k]) };
                    }
                    sumi[p][q] = unsafe { vmlaq_s32(sumi[p][q], t, scale[p]) };
                }
            }
        });
        let d = rows2(unsafe { f16_gather4(pw) });
        let dmin = rows2(unsafe { f16_gather4(map4(pw, |p| p.add(2))) });
        let dy = toks2(unsafe { f32_gather4(pa, 0) });
        let mins = unsafe { transpose_scales(map4(scm, |(_, m)| m)) };
        let m = map4(pa, |p| unsafe { mins4(&mins, bsum_pairs(p)) });
        for q in 0..2 {
            // Per token [r0..r3] to tiles [r0t0, r0t1, r1t0, r1t1], [r2t0, ..].
            let mt = unsafe {
                [
                    vzip1q_s32(m[2 * q], m[2 * q + 1]),
                    vzip2q_s32(m[2 * q], m[2 * q + 1]),
                ]
            };
            for p in 0..2 {
                let sd = unsafe { vmulq_f32(d[p], dy[q]) };
                let sm = unsafe { vmulq_f32(dmin[p], dy[q]) };
                acc[p][q] = unsafe { vfmaq_f32(acc[p][q], vcvtq_f32_s32(sumi[p][q]), sd) };
                acc[p][q] = unsafe { vfmsq_f32(acc[p][q], vcvtq_f32_s32(mt[p]), sm) };
            }
        }
    }
    untile(acc)
}

/// Q6_K: per sub-block of 16, four 2×2 tiles of 2 k steps, times the rows' scales.
#[inline(always)]
unsafe fn q6k_mm<const NT: usize>(
    cols: usize,
    w: [*const u8; 4],
    a: [*const u8; NT],
) -> [float32x4_t; NT] {
    let a = pad(a);
    let mut acc = [[unsafe { vdupq_n_f32(0.0) }; 2]; 2];
    for b in 0..cols / 256 {
        let pw = map4(w, |p| unsafe { p.add(b * 210) });
        let pa = map4(a, |p| unsafe { p.add(b * K_ACT) });
        let scales = unsafe { q6k_scales(map4(pw, |p| p.add(192))) };
        let mut sumi = [[unsafe { vdupq_n_s32(0) }; 2]; 2];
        unroll!(g in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
            let x = map4(pw, |p| unsafe { q6k_sub(p, g) });
            let xs = [pair(x[0], x[1]), pair(x[2], x[3])];
            let sv = scales[g / 2];
            let scale = rows2_i(unsafe {
                if g.is_multiple_of(2) {
                    vmovl_s16(vget_low_s16(sv))
                } else {
                    vmovl_high_s16(sv)
                }
            });
            for q in 0..2 {
                let ys = unsafe {
                    pair(
                        ld(pa[2 * q].add(K_QS + 16 * g)),
                        ld(pa[2 * q + 1].add(K_QS + 16 * g)),
                    )
                };
                for p in 0..2 {
                    let t = unsafe { smmla(smmla(vdupq_n_s32(0), xs[p][0], ys[0]), xs[p][1], ys[1]) };
                    sumi[p][q] = unsafe { vmlaq_s32(sumi[p][q], t, scale[p]) };
                }
            }
        });
        let d = rows2(unsafe { f16_gather4(map4(pw, |p| p.add(208))) });
        let dy = toks2(unsafe { f32_gather4(pa, 0) });
        for q in 0..2 {
            for p in 0..2 {
                let sd = unsafe { vmulq_f32(d[p], dy[q]) };
                acc[p][q] = unsafe { vfmaq_f32(acc[p][q], vcvtq_f32_s32(sumi[p][q]), sd) };
            }
        }
    }
    untile(acc)
}

/// `Tile4` for an i8mm body `$body::<$g.., NT>`.
macro_rules! mm_tile {
    ($name:ident, $body:ident $(, $g:tt)*) => {
        pub(crate) struct $name;
        impl Tile4 for $name {
            #[inline]
            unsafe fn tile<const NT: usize>(
                cols: usize,
                w: [*const u8; 4],
                a: [*const u8; NT],
            ) -> [float32x4_t; NT] {
                // Never inlined: one call per tile of whole rows, and a symbol of its own for
                // the cost model (tools/mca).
                #[inline(never)]
                #[target_feature(enable = "neon,dotprod,i8mm")]
                unsafe fn run<const NT: usize>(
                    cols: usize,
                    w: [*const u8; 4],
                    a: [*const u8; NT],
                ) -> [float32x4_t; NT] {
                    unsafe { $body::<$($g,)* NT>(cols, w, a) }
                }
                unsafe { run::<NT>(cols, w, a) }
            }
        }
    };
}

mm_tile!(MmQ4_0, legacy_mm, Q4_0W);
mm_tile!(MmQ4_1, legacy_mm, Q4_1W);
mm_tile!(MmQ5_0, legacy_mm, Q5_0W);
mm_tile!(MmQ5_1, legacy_mm, Q5_1W);
mm_tile!(MmQ8_0, legacy_mm, Q8_0W);
mm_tile!(MmQ4K, kquant45_mm, false);
mm_tile!(MmQ5K, kquant45_mm, true);
mm_tile!(MmQ6K, q6k_mm);

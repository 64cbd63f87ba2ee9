//! i8mm (ARMv8.6 `smmla`) table: recent phones. `smmla` multiplies a 2×8 by an 8×2 i8 matrix
//! into a 2×2 i32 tile, so prefill computes 2 weight rows × 2 activation rows per block with
//! half the instructions of `sdot`. Decode (one activation row), odd rows and the float
//! formats use the dotprod / NEON kernels.

use super::int::{
    bsum_pairs, ld, mins_dot, q6k_half, s8, Legacy, K_ACT, K_QS, Q4_0W, Q4_1W, Q5_0W, Q5_1W, Q8_0W,
};
use super::{dotprod, f16_at, quantize, rd_f32};
use crate::dispatch::{DotRowsFn, Kernels, Path};
use crate::rows::{dot_rows, RowKernel};
use crate::simd_common::unpack_q4k_scales;
use crate::types::GgmlType;
use std::arch::aarch64::*;

pub(crate) static KERNELS: Kernels = Kernels::new(
    Path::I8mm,
    quantize::quantize_act,
    dot_rows_for,
    dot_rows_for,
);

fn dot_rows_for(ty: GgmlType) -> DotRowsFn {
    match ty {
        GgmlType::Q4_0 => dot_rows::<Q4_0, 4, 2, 2>,
        GgmlType::Q4_1 => dot_rows::<Q4_1, 4, 2, 2>,
        GgmlType::Q5_0 => dot_rows::<Q5_0, 4, 2, 2>,
        GgmlType::Q5_1 => dot_rows::<Q5_1, 4, 2, 2>,
        GgmlType::Q8_0 => dot_rows::<Q8_0, 4, 2, 2>,
        GgmlType::Q4_K => dot_rows::<Q4K, 2, 2, 2>,
        GgmlType::Q5_K => dot_rows::<Q5K, 2, 2, 2>,
        GgmlType::Q6_K => dot_rows::<Q6K, 2, 2, 2>,
        _ => dotprod::dot_rows_for(ty),
    }
}

/// A kernel that uses a 2×2 `smmla` tile when the driver asks for one and the dotprod kernel
/// `$fallback` for every other shape.
macro_rules! mm_kernel {
    ($name:ident, $tile:expr, $fallback:ty) => {
        pub(crate) struct $name;
        impl RowKernel for $name {
            #[inline]
            unsafe fn dot<const NW: usize, const NA: usize>(
                cols: usize,
                w: [*const u8; NW],
                a: [*const u8; NA],
            ) -> [[f32; NA]; NW] {
                if NW != 2 || NA != 2 {
                    return unsafe { <$fallback>::dot::<NW, NA>(cols, w, a) };
                }
                let t = unsafe { $tile(cols, [w[0], w[1]], [a[0], a[1]]) };
                let mut out = [[0.0f32; NA]; NW];
                for i in 0..2 {
                    for j in 0..2 {
                        out[i][j] = t[i][j];
                    }
                }
                out
            }
        }
    };
}

mm_kernel!(Q4_0, legacy_tile::<Q4_0W>, dotprod::Q4_0);
mm_kernel!(Q4_1, legacy_tile::<Q4_1W>, dotprod::Q4_1);
mm_kernel!(Q5_0, legacy_tile::<Q5_0W>, dotprod::Q5_0);
mm_kernel!(Q5_1, legacy_tile::<Q5_1W>, dotprod::Q5_1);
mm_kernel!(Q8_0, legacy_tile::<Q8_0W>, dotprod::Q8_0);
mm_kernel!(Q4K, kquant45_tile::<false>, dotprod::Q4K);
mm_kernel!(Q5K, kquant45_tile::<true>, dotprod::Q5K);
mm_kernel!(Q6K, q6k_tile, dotprod::Q6K);

/// `acc` + the 2×2 tile `[x0·y0, x0·y1, x1·y0, x1·y1]` of 16-element rows: the rows are
/// interleaved 8 bytes at a time into `smmla`'s 2×8 operands.
#[inline]
#[target_feature(enable = "neon,dotprod,i8mm")]
unsafe fn mm16(acc: int32x4_t, x: [int8x16_t; 2], y: [int8x16_t; 2]) -> int32x4_t {
    let zip = |a: int8x16_t, b: int8x16_t| {
        let (a, b) = (vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b));
        (
            vreinterpretq_s8_s64(vzip1q_s64(a, b)),
            vreinterpretq_s8_s64(vzip2q_s64(a, b)),
        )
    };
    let (xl, xh) = zip(x[0], x[1]);
    let (yl, yh) = zip(y[0], y[1]);
    let mut acc = acc;
    // SAFETY: i8mm is enabled for this function and detected before the table is used.
    unsafe {
        std::arch::asm!(
            "smmla {acc:v}.4s, {xl:v}.16b, {yl:v}.16b",
            "smmla {acc:v}.4s, {xh:v}.16b, {yh:v}.16b",
            acc = inout(vreg) acc,
            xl = in(vreg) xl,
            yl = in(vreg) yl,
            xh = in(vreg) xh,
            yh = in(vreg) yh,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// `[a0 * b0, a0 * b1, a1 * b0, a1 * b1]`: the scale products matching an `smmla` tile.
#[inline]
#[target_feature(enable = "neon,dotprod,i8mm")]
unsafe fn outer(a: [f32; 2], b: [f32; 2]) -> float32x4_t {
    let av = [a[0], a[0], a[1], a[1]];
    let bv = [b[0], b[1], b[0], b[1]];
    unsafe { vmulq_f32(vld1q_f32(av.as_ptr()), vld1q_f32(bv.as_ptr())) }
}

fn tile(v: float32x4_t) -> [[f32; 2]; 2] {
    let mut t = [0.0f32; 4];
    unsafe { vst1q_f32(t.as_mut_ptr(), v) };
    [[t[0], t[1]], [t[2], t[3]]]
}

#[target_feature(enable = "neon,dotprod,i8mm")]
unsafe fn legacy_tile<L: Legacy>(
    cols: usize,
    w: [*const u8; 2],
    a: [*const u8; 2],
) -> [[f32; 2]; 2] {
    let a_block = L::A_QS + 32;
    let mut acc = vdupq_n_f32(0.0);
    let mut acc_m = vdupq_n_f32(0.0);
    for b in 0..cols / 32 {
        let pa = [unsafe { a[0].add(b * a_block) }, unsafe {
            a[1].add(b * a_block)
        }];
        let pw = [unsafe { w[0].add(b * L::W_BLOCK) }, unsafe {
            w[1].add(b * L::W_BLOCK)
        }];
        let x = [unsafe { L::weights(pw[0]) }, unsafe { L::weights(pw[1]) }];
        let y = pa.map(|p| unsafe { [ld(p.add(L::A_QS)), ld(p.add(L::A_QS + 16))] });
        let mut s = vdupq_n_s32(0);
        for h in 0..2 {
            s = unsafe { mm16(s, [x[0][h], x[1][h]], [y[0][h], y[1][h]]) };
        }
        let dw = pw.map(|p| unsafe { f16_at(p) });
        let dy = pa.map(|p| unsafe { f16_at(p) });
        acc = vfmaq_f32(acc, vcvtq_f32_s32(s), unsafe { outer(dw, dy) });
        if L::HAS_MIN {
            let mw = pw.map(|p| unsafe { f16_at(p.add(2)) });
            let sy = pa.map(|p| unsafe { f16_at(p.add(2)) });
            acc_m = vaddq_f32(acc_m, unsafe { outer(mw, sy) });
        }
    }
    tile(vaddq_f32(acc, acc_m))
}

#[target_feature(enable = "neon,dotprod,i8mm")]
#[allow(clippy::needless_range_loop)] // two rows' vectors indexed together
unsafe fn kquant45_tile<const HIGH: bool>(
    cols: usize,
    w: [*const u8; 2],
    a: [*const u8; 2],
) -> [[f32; 2]; 2] {
    let (w_block, qs_off) = if HIGH { (176, 48) } else { (144, 16) };
    let m4 = vdupq_n_u8(0x0f);
    let bit4 = vdupq_n_u8(0x10);
    let mut acc = vdupq_n_f32(0.0);
    let mut acc_m = vdupq_n_f32(0.0);
    for b in 0..cols / 256 {
        let pa = [unsafe { a[0].add(b * K_ACT) }, unsafe {
            a[1].add(b * K_ACT)
        }];
        let pw = [unsafe { w[0].add(b * w_block) }, unsafe {
            w[1].add(b * w_block)
        }];
        let scm = pw.map(|p| unsafe { unpack_q4k_scales(p.add(4)) });
        let qh = pw.map(|p| unsafe { [vld1q_u8(p.add(16)), vld1q_u8(p.add(32))] });
        let mut sumi = vdupq_n_s32(0);
        for c in 0..4 {
            // Rows' low (sub-block 2c) and high (2c + 1) values, 2 vectors of 16 each.
            let mut lo = [[vdupq_n_s8(0); 2]; 2];
            let mut hi = [[vdupq_n_s8(0); 2]; 2];
            for r in 0..2 {
                for v in 0..2 {
                    let q = unsafe { vld1q_u8(pw[r].add(qs_off + 32 * c + 16 * v)) };
                    let (mut l, mut h) = (vandq_u8(q, m4), vshrq_n_u8::<4>(q));
                    if HIGH {
                        l = vorrq_u8(
                            l,
                            vandq_u8(vtstq_u8(qh[r][v], vdupq_n_u8(1 << (2 * c))), bit4),
                        );
                        h = vorrq_u8(
                            h,
                            vandq_u8(vtstq_u8(qh[r][v], vdupq_n_u8(2 << (2 * c))), bit4),
                        );
                    }
                    lo[r][v] = s8(l);
                    hi[r][v] = s8(h);
                }
            }
            for (sub, vals) in [(2 * c, lo), (2 * c + 1, hi)] {
                let y = pa.map(|p| unsafe { p.add(K_QS + 32 * sub) });
                let mut s = vdupq_n_s32(0);
                for v in 0..2 {
                    let yv = y.map(|p| unsafe { ld(p.add(16 * v)) });
                    s = unsafe { mm16(s, [vals[0][v], vals[1][v]], yv) };
                }
                let sc = scm.map(|(sc, _)| ((sc >> (8 * sub)) & 0xff) as i32);
                let scv = [sc[0], sc[0], sc[1], sc[1]];
                sumi = vmlaq_s32(sumi, s, unsafe { vld1q_s32(scv.as_ptr()) });
            }
        }
        let d = pw.map(|p| unsafe { f16_at(p) });
        let dmin = pw.map(|p| unsafe { f16_at(p.add(2)) });
        let dy = pa.map(|p| unsafe { rd_f32(p) });
        acc = vfmaq_f32(acc, vcvtq_f32_s32(sumi), unsafe { outer(d, dy) });
        let pairs = pa.map(|p| unsafe { bsum_pairs(p) });
        let mut mins = [0i32; 4];
        for r in 0..2 {
            for t in 0..2 {
                mins[2 * r + t] = vaddvq_s32(unsafe { mins_dot(scm[r].1, pairs[t]) });
            }
        }
        let mins = vcvtq_f32_s32(unsafe { vld1q_s32(mins.as_ptr()) });
        acc_m = vfmaq_f32(acc_m, mins, unsafe { outer(dmin, dy) });
    }
    tile(vsubq_f32(acc, acc_m))
}

#[target_feature(enable = "neon,dotprod,i8mm")]
#[allow(clippy::needless_range_loop)] // two rows' vectors indexed together
unsafe fn q6k_tile(cols: usize, w: [*const u8; 2], a: [*const u8; 2]) -> [[f32; 2]; 2] {
    let mut acc = vdupq_n_f32(0.0);
    for b in 0..cols / 256 {
        let pa = [unsafe { a[0].add(b * K_ACT) }, unsafe {
            a[1].add(b * K_ACT)
        }];
        let pw = [unsafe { w[0].add(b * 210) }, unsafe { w[1].add(b * 210) }];
        let mut sumi = vdupq_n_s32(0);
        for h in 0..2 {
            let q = pw.map(|p| unsafe { q6k_half(p.add(64 * h), p.add(128 + 32 * h)) });
            for v in 0..8 {
                let y = pa.map(|p| unsafe { ld(p.add(K_QS + 128 * h + 16 * v)) });
                // One 16-element sub-block: half a `mm16` (zero the other half's operands).
                let s = unsafe { mm16(vdupq_n_s32(0), [q[0][v], q[1][v]], y) };
                let g = 8 * h + v;
                let sc = pw.map(|p| unsafe { *(p.add(192 + g) as *const i8) } as i32);
                let scv = [sc[0], sc[0], sc[1], sc[1]];
                sumi = vmlaq_s32(sumi, s, unsafe { vld1q_s32(scv.as_ptr()) });
            }
        }
        let d = pw.map(|p| unsafe { f16_at(p.add(208)) });
        let dy = pa.map(|p| unsafe { rd_f32(p) });
        acc = vfmaq_f32(acc, vcvtq_f32_s32(sumi), unsafe { outer(d, dy) });
    }
    tile(acc)
}

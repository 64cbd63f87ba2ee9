//! NEON kernel bodies shared by the aarch64 paths: the legacy formats' weight decoding
//! ([`Legacy`], used by the 4-row tiles of `gemm.rs`), the Q6_K per-row decode kernel
//! (dotprod decode) and the float kernels, generic over the 16-byte dot product ([`Dot16`]).
//! Scalar references: `formats/<format>.rs`. Every body is `#[inline(always)]`: it is only
//! ever compiled inside a path's `#[target_feature]` wrapper (see `path_kernel!`).

use super::{f16_at, f16x4_at, hsum_tile, rd_f32, rd_u32, unroll, Dot16};
use std::arch::aarch64::*;

#[inline(always)]
pub(super) unsafe fn ld(p: *const u8) -> int8x16_t {
    unsafe { vld1q_s8(p as *const i8) }
}

/// Low and high nibbles of 16 bytes: elements 0-15 and 16-31 of a 32-element block.
#[inline(always)]
unsafe fn nibbles(qs: *const u8) -> [uint8x16_t; 2] {
    unsafe {
        let q = vld1q_u8(qs);
        [vandq_u8(q, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(q)]
    }
}

/// 0xff in byte `k` of the 32-element block where bit `k` of `qh` is set: a Q5 block's fifth
/// bits as byte masks. One `dup` of the 32 bits, then per 16 elements a `tbl` spreading bytes
/// 0-1 (2-3) over 8 lanes each and a `cmtst` against each lane's bit (llvm-mca, Cortex-A72:
/// Q5_0 decode 16.2 -> 11.6 cycles per block, prefill 7.2 -> 6.2, against 17 instructions per row for the old
/// byte-broadcast version).
#[inline(always)]
unsafe fn high_masks(qh: u32) -> [uint8x16_t; 2] {
    const IDX: [[u8; 16]; 2] = [
        [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
        [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3],
    ];
    const SEL: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    unsafe {
        let v = vreinterpretq_u8_u32(vdupq_n_u32(qh));
        let sel = vld1q_u8(SEL.as_ptr());
        [
            vtstq_u8(vqtbl1q_u8(v, vld1q_u8(IDX[0].as_ptr())), sel),
            vtstq_u8(vqtbl1q_u8(v, vld1q_u8(IDX[1].as_ptr())), sel),
        ]
    }
}

#[inline(always)]
pub(super) fn s8(v: uint8x16_t) -> int8x16_t {
    unsafe { vreinterpretq_s8_u8(v) }
}

/// Decodes a 32-element legacy block's weights as i8 (offset already applied).
pub(super) trait Legacy {
    const W_BLOCK: usize;
    /// Bytes before `qs` in the activation block (Q8_0: 2, Q8_1: 4).
    const A_QS: usize;
    /// Whether the block has a minimum (`m_x * s_y` term).
    const HAS_MIN: bool;
    /// Whether every weight value is in `-32..=31` (see [`Dot16::dot32_small`]).
    const SMALL: bool;
    unsafe fn weights(p: *const u8) -> [int8x16_t; 2];
}

pub(super) struct Q4_0W;
impl Legacy for Q4_0W {
    const W_BLOCK: usize = 18;
    const A_QS: usize = 2;
    const HAS_MIN: bool = false;
    const SMALL: bool = true;
    #[inline(always)]
    unsafe fn weights(p: *const u8) -> [int8x16_t; 2] {
        unsafe {
            let [lo, hi] = nibbles(p.add(2));
            let eight = vdupq_n_s8(8);
            [vsubq_s8(s8(lo), eight), vsubq_s8(s8(hi), eight)]
        }
    }
}

pub(super) struct Q4_1W;
impl Legacy for Q4_1W {
    const W_BLOCK: usize = 20;
    const A_QS: usize = 4;
    const HAS_MIN: bool = true;
    const SMALL: bool = true;
    #[inline(always)]
    unsafe fn weights(p: *const u8) -> [int8x16_t; 2] {
        unsafe {
            let [lo, hi] = nibbles(p.add(4));
            [s8(lo), s8(hi)]
        }
    }
}

pub(super) struct Q5_0W;
impl Legacy for Q5_0W {
    const W_BLOCK: usize = 22;
    const A_QS: usize = 2;
    const HAS_MIN: bool = false;
    const SMALL: bool = true;
    #[inline(always)]
    unsafe fn weights(p: *const u8) -> [int8x16_t; 2] {
        unsafe {
            let qh = rd_u32(p.add(2));
            let [lo, hi] = nibbles(p.add(6));
            let m = high_masks(qh);
            // (q | 16) - 16 = q where the bit is set, q - 16 (+0xf0) where it is not.
            let minus16 = vdupq_n_u8(0xf0);
            [
                s8(vaddq_u8(lo, vbicq_u8(minus16, m[0]))),
                s8(vaddq_u8(hi, vbicq_u8(minus16, m[1]))),
            ]
        }
    }
}

pub(super) struct Q5_1W;
impl Legacy for Q5_1W {
    const W_BLOCK: usize = 24;
    const A_QS: usize = 4;
    const HAS_MIN: bool = true;
    const SMALL: bool = true;
    #[inline(always)]
    unsafe fn weights(p: *const u8) -> [int8x16_t; 2] {
        unsafe {
            let qh = rd_u32(p.add(4));
            let [lo, hi] = nibbles(p.add(8));
            let m = high_masks(qh);
            let bit4 = vdupq_n_u8(0x10);
            [
                s8(vorrq_u8(lo, vandq_u8(m[0], bit4))),
                s8(vorrq_u8(hi, vandq_u8(m[1], bit4))),
            ]
        }
    }
}

pub(super) struct Q8_0W;
impl Legacy for Q8_0W {
    const W_BLOCK: usize = 34;
    const A_QS: usize = 2;
    const HAS_MIN: bool = false;
    const SMALL: bool = false;
    #[inline(always)]
    unsafe fn weights(p: *const u8) -> [int8x16_t; 2] {
        unsafe { [ld(p.add(2)), ld(p.add(18))] }
    }
}

/// Q8_K block layout: f32 `d`, 256 `qs`, 16 i16 `bsums`.
pub(super) const K_ACT: usize = 292;
pub(super) const K_QS: usize = 4;
const K_BSUMS: usize = 260;

/// Q8_K `bsums[2j] + bsums[2j + 1]` for j in 0..8 (what the Q4_K/Q5_K minimums multiply).
#[inline(always)]
pub(super) unsafe fn bsum_pairs(p: *const u8) -> int16x8_t {
    unsafe {
        let b = p.add(K_BSUMS) as *const i16;
        vpaddq_s16(vld1q_s16(b), vld1q_s16(b.add(8)))
    }
}

/// The 128 six-bit values of one Q6_K half (`ql` 64 bytes, `qh` 32 bytes) minus 32, in 8
/// vectors of 16: vector `2k + v` holds elements `32k + 16v ..`, sub-block `2k + v` of the
/// half.
#[inline(always)]
pub(super) unsafe fn q6k_half(ql: *const u8, qh: *const u8) -> [int8x16_t; 8] {
    unsafe {
        let m4 = vdupq_n_u8(0x0f);
        let m3 = vdupq_n_u8(0x03);
        let l = [
            vld1q_u8(ql),
            vld1q_u8(ql.add(16)),
            vld1q_u8(ql.add(32)),
            vld1q_u8(ql.add(48)),
        ];
        let h = [vld1q_u8(qh), vld1q_u8(qh.add(16))];
        let thirty_two = vdupq_n_s8(32);
        let mut out = [vdupq_n_s8(0); 8];
        for v in 0..2 {
            let q = [
                vorrq_u8(vandq_u8(l[v], m4), vshlq_n_u8::<4>(vandq_u8(h[v], m3))),
                vorrq_u8(
                    vandq_u8(l[2 + v], m4),
                    vshlq_n_u8::<2>(vandq_u8(h[v], vdupq_n_u8(0x0c))),
                ),
                vorrq_u8(vshrq_n_u8::<4>(l[v]), vandq_u8(h[v], vdupq_n_u8(0x30))),
                vorrq_u8(
                    vshrq_n_u8::<4>(l[2 + v]),
                    vandq_u8(vshrq_n_u8::<2>(h[v]), vdupq_n_u8(0x30)),
                ),
            ];
            for (k, &qk) in q.iter().enumerate() {
                out[2 * k + v] = vsubq_s8(s8(qk), thirty_two);
            }
        }
        out
    }
}

/// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; each 16-byte vector is one sub-block.
#[inline(always)]
pub(super) unsafe fn q6_k<D: Dot16, const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[unsafe { vdupq_n_f32(0.0) }; NA]; NW];
    for b in 0..cols / 256 {
        let mut ya = [std::ptr::null::<u8>(); NA];
        let mut dy = [0.0f32; NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * K_ACT) };
            dy[j] = unsafe { rd_f32(p) };
            ya[j] = unsafe { p.add(K_QS) };
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * 210) };
            let d = unsafe { f16_at(p.add(208)) };
            let scales = unsafe { p.add(192) as *const i8 };
            let mut sumi = [unsafe { vdupq_n_s32(0) }; NA];
            unroll!(h in [0, 1] {
                let q = unsafe { q6k_half(p.add(64 * h), p.add(128 + 32 * h)) };
                for (v, &qv) in q.iter().enumerate() {
                    // Vector v covers elements 128h + 16v .. +16: sub-block 8h + v.
                    let sc = unsafe { *scales.add(8 * h + v) } as i32;
                    for j in 0..NA {
                        let y = unsafe { ld(ya[j].add(128 * h + 16 * v)) };
                        let s = unsafe { D::dot(vdupq_n_s32(0), qv, y) };
                        sumi[j] = unsafe { vmlaq_n_s32(sumi[j], s, sc) };
                    }
                }
            });
            for j in 0..NA {
                acc[i][j] = unsafe { vfmaq_n_f32(acc[i][j], vcvtq_f32_s32(sumi[j]), d * dy[j]) };
            }
        }
    }
    unsafe { hsum_tile(&acc) }
}

/// Float weights × f32 activations, 4 lanes at a time; `LOAD4` widens 4 weights to f32.
#[inline(always)]
unsafe fn float_dot<const BYTES: usize, const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
    load4: unsafe fn(*const u8) -> float32x4_t,
    load1: unsafe fn(*const u8) -> f32,
) -> [[f32; NA]; NW] {
    let mut acc = [[unsafe { vdupq_n_f32(0.0) }; NA]; NW];
    let body = cols / 4 * 4;
    let mut k = 0;
    while k < body {
        let mut y = [unsafe { vdupq_n_f32(0.0) }; NA];
        for j in 0..NA {
            y[j] = unsafe { vld1q_f32((a[j] as *const f32).add(k)) };
        }
        for i in 0..NW {
            let x = unsafe { load4(w[i].add(BYTES * k)) };
            for j in 0..NA {
                acc[i][j] = unsafe { vfmaq_f32(acc[i][j], x, y[j]) };
            }
        }
        k += 4;
    }
    let mut out = unsafe { hsum_tile(&acc) };
    for k in body..cols {
        for i in 0..NW {
            let x = unsafe { load1(w[i].add(BYTES * k)) };
            for j in 0..NA {
                out[i][j] += x * unsafe { std::ptr::read_unaligned((a[j] as *const f32).add(k)) };
            }
        }
    }
    out
}

#[inline(always)]
unsafe fn load4_f32(p: *const u8) -> float32x4_t {
    unsafe { vld1q_f32(p as *const f32) }
}
#[inline(always)]
unsafe fn load1_f32(p: *const u8) -> f32 {
    unsafe { rd_f32(p) }
}
#[inline(always)]
unsafe fn load4_bf16(p: *const u8) -> float32x4_t {
    unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p as *const u16))) }
}
#[inline(always)]
unsafe fn load1_bf16(p: *const u8) -> f32 {
    f32::from_bits((unsafe { super::rd_u16(p) } as u32) << 16)
}

#[inline(always)]
pub(super) unsafe fn f32w<D: Dot16, const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    unsafe { float_dot::<4, NW, NA>(cols, w, a, load4_f32, load1_f32) }
}

#[inline(always)]
pub(super) unsafe fn f16w<D: Dot16, const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    unsafe { float_dot::<2, NW, NA>(cols, w, a, f16x4_at, f16_at) }
}

#[inline(always)]
pub(super) unsafe fn bf16w<D: Dot16, const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    unsafe { float_dot::<2, NW, NA>(cols, w, a, load4_bf16, load1_bf16) }
}

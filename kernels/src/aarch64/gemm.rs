//! aarch64 prefill (GEMM) microkernels: the `gemm` entries of the `neon`, `dotprod` and `i8mm`
//! tables, and with one token the decode entries of `neon` and `dotprod` (except dotprod
//! Q6_K): llvm-mca puts the 4 × 1 tile below the old per-row decode kernels (e.g. Cortex-A76
//! dotprod Q4_K 4.5 vs 6.1 cycles per block, Cortex-A72 neon Q4_K 7.7 vs 14.5; see
//! docs/arm-cost-model.md).
//!
//! A microkernel computes a tile of 4 weight rows × `NT` activation rows (tokens, `NT` <= 4)
//! over the whole row and returns, per token, one `float32x4_t` whose lanes are the 4 rows:
//! the 4 results land next to each other in the output (`out[t * stride + r ..]`) and the
//! per-block scale arithmetic is done once for 4 rows. Each weight block of the 4 rows is
//! decoded once and used by every token of the tile; the activation tile (<= 256 KiB of
//! quantized rows) is re-read from L2 once per 4 weight rows.
//!
//! - `neon` / `dotprod` ([`Dot16`]): per row and token, the block's products are summed into
//!   4 i32 lanes (`sdot`, or `smull`/`smlal2` + `saddlp`), then the 4 rows' vectors are
//!   reduced with two levels of `addp` into one vector of 4 rows; one `scvtf` and one `fmla`
//!   with the 4 rows' scales times the token's scale per block (K-quants: one `mla` with the
//!   4 rows' sub-block scales per sub-block, the float work once per 256).
//! - `i8mm` (`gemm_i8mm.rs`): `smmla` 2×2 tiles, 4 of them per 8-byte k step.
//!
//! Float weights (F32/F16/BF16 × f32 activations) use the 4×4 f32-FMA tiles of `int.rs`
//! through the shared walker in `rows.rs`.
//!
//! Rows past the end of the matrix (a ragged last group) are computed on a copy of the last
//! row's pointer and not stored; every row's result depends only on its own data, so the
//! output does not depend on how rows are split over threads.

use super::int::{bsum_pairs, ld, s8, Legacy, K_ACT, K_QS, Q4_0W, Q4_1W, Q5_0W, Q5_1W, Q8_0W};
use super::{rd_u16, unroll, Dot16, PlainDot, Sdot};
use crate::simd_common::unpack_q4k_scales;
use crate::types::GgmlType;
use std::arch::aarch64::*;

/// Activation bytes per tile of tokens: re-read once per 4 weight rows, so it should stay in L2
/// (Pi 4: 1 MiB shared, Pi 5: 512 KiB per core) next to the weight rows being streamed.
const ACT_TILE_BYTES: usize = 256 * 1024;

/// How far ahead of the 4 rows being dotted a one-token pass prefetches weights (the value
/// `rows.rs` measured for decode: hardware prefetchers alone reached ~40% of the read
/// bandwidth on Zen 4, 2-4 KiB ahead doubled that).
const PREFETCH_AHEAD: usize = 3072;

/// `prfm pldl1keep` on every cache line of `len` bytes from `p` (a hint: never faults, so
/// running past the end of the matrix is harmless; `wrapping_add` keeps it defined).
#[inline(always)]
fn prefetch_range(p: *const u8, len: usize) {
    let mut off = 0;
    while off < len {
        // SAFETY: prfm never faults, whatever the address.
        unsafe {
            std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p.wrapping_add(off),
                options(nostack, readonly, preserves_flags))
        };
        off += 64;
    }
}

/// A prefill microkernel for one weight format on one instruction set.
pub(crate) trait Tile4 {
    /// Per token `j`, lanes `i` = dot of weight row `w[i]` with activation row `a[j]`.
    ///
    /// # Safety
    /// The CPU has the kernel's features; every pointer is the start of a full row of `cols`
    /// elements in its format; `cols` is a whole number of blocks; `1 <= NT <= 4`.
    unsafe fn tile<const NT: usize>(
        cols: usize,
        w: [*const u8; 4],
        a: [*const u8; NT],
    ) -> [float32x4_t; NT];
}

/// Implements [`Tile4`] for a unit struct by calling the generic body `$body::<$g.., NT>`
/// through a wrapper compiled with `$features`.
macro_rules! tile_kernel {
    ($name:ident, $features:literal, $body:ident $(, $g:ty)*) => {
        pub(crate) struct $name;
        impl Tile4 for $name {
            #[inline]
            unsafe fn tile<const NT: usize>(
                cols: usize,
                w: [*const u8; 4],
                a: [*const u8; NT],
            ) -> [std::arch::aarch64::float32x4_t; NT] {
                // Never inlined: one call per tile of whole rows, and a symbol of its own for
                // the cost model (tools/mca).
                #[inline(never)]
                #[target_feature(enable = $features)]
                unsafe fn run<const NT: usize>(
                    cols: usize,
                    w: [*const u8; 4],
                    a: [*const u8; NT],
                ) -> [std::arch::aarch64::float32x4_t; NT] {
                    unsafe { $body::<$($g,)* NT>(cols, w, a) }
                }
                unsafe { run::<NT>(cols, w, a) }
            }
        }
    };
}

/// The prefill driver: walks the matrix in tiles of 4 weight rows × 4 tokens (1-3 for the
/// last tokens of an activation tile) with kernel `K`.
///
/// # Safety
/// As [`DotRowsFn`](crate::kernel_types::DotRowsFn); additionally the CPU has `K`'s features.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<K: Tile4>(
    ty: GgmlType,
    cols: usize,
    w: &[u8],
    w_row_bytes: usize,
    n_w: usize,
    acts: &[u8],
    act_row_bytes: usize,
    n_act: usize,
    out: *mut f32,
    out_stride: usize,
) {
    // Cheap checks that keep the raw-pointer kernels inside the slices whatever the caller
    // passed (matmul validates these properly; a failure here is a bug).
    let bs = ty.block_size();
    assert!(
        cols.is_multiple_of(bs) && w_row_bytes == cols / bs * ty.type_size(),
        "gemm: {cols} {ty} columns do not match {w_row_bytes} weight bytes per row"
    );
    assert!(w.len() >= n_w * w_row_bytes && acts.len() >= n_act * act_row_bytes);
    if n_w == 0 || n_act == 0 {
        return;
    }
    let dot_ty = crate::formats::vec_dot_type(ty).expect("gemm: a weight type with a dot type");
    assert_eq!(
        act_row_bytes,
        cols / dot_ty.block_size() * dot_ty.type_size()
    );
    let wp = |r: usize| unsafe { w.as_ptr().add(r.min(n_w - 1) * w_row_bytes) };
    let ap = |t: usize| unsafe { acts.as_ptr().add(t * act_row_bytes) };
    let store = |r: usize, t: usize, v: float32x4_t| {
        // SAFETY: the caller owns out[t * out_stride + r] for r < n_w, t < n_act.
        unsafe {
            let dst = out.add(t * out_stride + r);
            if r + 4 <= n_w {
                vst1q_f32(dst, v);
            } else {
                let mut lanes = [0.0f32; 4];
                vst1q_f32(lanes.as_mut_ptr(), v);
                for (i, &x) in lanes.iter().enumerate().take(n_w - r) {
                    *dst.add(i) = x;
                }
            }
        }
    };

    let tile = (ACT_TILE_BYTES / act_row_bytes.max(1)).max(4) / 4 * 4;
    let mut t0 = 0;
    while t0 < n_act {
        let t1 = (t0 + tile).min(n_act);
        let mut r = 0;
        while r < n_w {
            let wr = [wp(r), wp(r + 1), wp(r + 2), wp(r + 3)];
            if t1 - t0 <= 4 {
                // One tile of tokens (decode): the rows are streamed once from memory.
                prefetch_range(
                    w.as_ptr().wrapping_add(r * w_row_bytes + PREFETCH_AHEAD),
                    4 * w_row_bytes,
                );
            }
            let mut t = t0;
            while t + 4 <= t1 {
                let res =
                    unsafe { K::tile::<4>(cols, wr, [ap(t), ap(t + 1), ap(t + 2), ap(t + 3)]) };
                for (j, &v) in res.iter().enumerate() {
                    store(r, t + j, v);
                }
                t += 4;
            }
            let store_all = |t: usize, res: &[float32x4_t]| {
                for (j, &v) in res.iter().enumerate() {
                    store(r, t + j, v);
                }
            };
            match t1 - t {
                0 => {}
                1 => store_all(t, &unsafe { K::tile::<1>(cols, wr, [ap(t)]) }),
                2 => store_all(t, &unsafe { K::tile::<2>(cols, wr, [ap(t), ap(t + 1)]) }),
                _ => store_all(t, &unsafe {
                    K::tile::<3>(cols, wr, [ap(t), ap(t + 1), ap(t + 2)])
                }),
            }
            r += 4;
        }
        t0 = t1;
    }
}

/// The f16 at `p` as f32: `ldr h` + `fcvt` (the f16 intrinsics are not stable).
#[inline(always)]
pub(super) unsafe fn f16_load(p: *const u8) -> f32 {
    let out: f32;
    // SAFETY: a 2-byte read the caller guarantees valid (no alignment needed for `ldr h`).
    unsafe {
        std::arch::asm!(
            "ldr {t:h}, [{p}]",
            "fcvt {o:s}, {t:h}",
            p = in(reg) p,
            t = out(vreg) _,
            o = lateout(vreg) out,
            options(pure, readonly, nostack, preserves_flags)
        );
    }
    out
}

/// The f16 at each of `p[0..4]`, widened to f32 lanes: the 4 rows' block scales.
#[inline(always)]
pub(super) unsafe fn f16_gather4(p: [*const u8; 4]) -> float32x4_t {
    unsafe {
        let mut h = vdup_n_u16(rd_u16(p[0]));
        h = vset_lane_u16::<1>(rd_u16(p[1]), h);
        h = vset_lane_u16::<2>(rd_u16(p[2]), h);
        h = vset_lane_u16::<3>(rd_u16(p[3]), h);
        let out: float32x4_t;
        // SAFETY: register-only conversion, base ARMv8.
        std::arch::asm!(
            "fcvtl {o:v}.4s, {h:v}.4h",
            h = in(vreg) h,
            o = lateout(vreg) out,
            options(pure, nomem, nostack, preserves_flags)
        );
        out
    }
}

/// `[f(a[0]), .., f(a[3])]`. `array::map` is not inlined in these kernels (it goes through
/// `try_map` and a drain guard, seen as out-of-line calls in the emitted assembly); this is.
#[inline(always)]
pub(super) fn map4<T: Copy, U>(a: [T; 4], f: impl Fn(T) -> U) -> [U; 4] {
    [f(a[0]), f(a[1]), f(a[2]), f(a[3])]
}

/// Four rows' 4-lane partial sums reduced to one vector of 4 row totals (two `addp` levels).
#[inline(always)]
pub(super) unsafe fn reduce4(s: [int32x4_t; 4]) -> int32x4_t {
    unsafe { vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3])) }
}

/// Legacy 32-element blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) × Q8_0/Q8_1 activations.
#[inline(always)]
pub(super) unsafe fn legacy4<L: Legacy, D: Dot16, const NT: usize>(
    cols: usize,
    w: [*const u8; 4],
    a: [*const u8; NT],
) -> [float32x4_t; NT] {
    let a_block = L::A_QS + 32;
    let mut acc = [unsafe { vdupq_n_f32(0.0) }; NT];
    for b in 0..cols / 32 {
        let pw = map4(w, |p| unsafe { p.add(b * L::W_BLOCK) });
        let x = map4(pw, |p| unsafe { L::weights(p) });
        let dw = unsafe { f16_gather4(pw) };
        let mw = if L::HAS_MIN {
            unsafe { f16_gather4(map4(pw, |p| p.add(2))) }
        } else {
            dw
        };
        for j in 0..NT {
            let p = unsafe { a[j].add(b * a_block) };
            let y = unsafe { [ld(p.add(L::A_QS)), ld(p.add(L::A_QS + 16))] };
            // Indexing, not `map`: a closure would not inherit this function's target features.
            let s = unsafe {
                if L::SMALL {
                    [
                        D::dot32_small(x[0], y),
                        D::dot32_small(x[1], y),
                        D::dot32_small(x[2], y),
                        D::dot32_small(x[3], y),
                    ]
                } else {
                    [
                        D::dot32(x[0], y),
                        D::dot32(x[1], y),
                        D::dot32(x[2], y),
                        D::dot32(x[3], y),
                    ]
                }
            };
            let s = unsafe { vcvtq_f32_s32(reduce4(s)) };
            let dy = unsafe { f16_load(p) };
            acc[j] = unsafe { vfmaq_f32(acc[j], s, vmulq_n_f32(dw, dy)) };
            if L::HAS_MIN {
                acc[j] = unsafe { vfmaq_n_f32(acc[j], mw, f16_load(p.add(2))) };
            }
        }
    }
    acc
}

/// The 6-bit scales (or minimums) of 4 K-quant rows, each row's 8 bytes in a u64, rearranged
/// so byte `4 * s + r` is row `r`'s value for sub-block `s`, then widened to u16: vector `k`
/// holds sub-blocks `2k` (lanes 0-3, rows 0-3) and `2k + 1` (lanes 4-7).
#[inline(always)]
pub(super) unsafe fn transpose_scales(v: [u64; 4]) -> [uint16x8_t; 4] {
    unsafe {
        let v02 = vcombine_u8(vcreate_u8(v[0]), vcreate_u8(v[2]));
        let v13 = vcombine_u8(vcreate_u8(v[1]), vcreate_u8(v[3]));
        // r0s0 r1s0 r0s1 r1s1 ... | r2s0 r3s0 r2s1 r3s1 ...
        let (a01, a23) = (vzip1q_u8(v02, v13), vzip2q_u8(v02, v13));
        let (a01, a23) = (vreinterpretq_u16_u8(a01), vreinterpretq_u16_u8(a23));
        // r0s0 r1s0 r2s0 r3s0 r0s1 ...: sub-blocks 0-3, then 4-7.
        let t0 = vreinterpretq_u8_u16(vzip1q_u16(a01, a23));
        let t1 = vreinterpretq_u8_u16(vzip2q_u16(a01, a23));
        [
            vmovl_u8(vget_low_u8(t0)),
            vmovl_high_u8(t0),
            vmovl_u8(vget_low_u8(t1)),
            vmovl_high_u8(t1),
        ]
    }
}

/// Sub-block `s`'s values of the 4 rows as i32 lanes, from [`transpose_scales`].
#[inline(always)]
pub(super) unsafe fn scale_lanes(t: &[uint16x8_t; 4], s: usize) -> int32x4_t {
    unsafe {
        let v = t[s / 2];
        vreinterpretq_s32_u32(if s.is_multiple_of(2) {
            vmovl_u16(vget_low_u16(v))
        } else {
            vmovl_high_u16(v)
        })
    }
}

/// Sum over sub-blocks `s` of `mins[r][s] * pairs[s]`, lanes = rows: what the Q4_K/Q5_K
/// minimums contribute, from [`transpose_scales`] of the minimums and the token's Q8_K
/// `bsums` pair sums.
#[inline(always)]
pub(super) unsafe fn mins4(m: &[uint16x8_t; 4], pairs: int16x8_t) -> int32x4_t {
    unsafe {
        let m = map4(*m, |v| vreinterpretq_s16_u16(v));
        let mut acc = vmull_laneq_s16::<0>(vget_low_s16(m[0]), pairs);
        acc = vmlal_high_laneq_s16::<1>(acc, m[0], pairs);
        acc = vmlal_laneq_s16::<2>(acc, vget_low_s16(m[1]), pairs);
        acc = vmlal_high_laneq_s16::<3>(acc, m[1], pairs);
        acc = vmlal_laneq_s16::<4>(acc, vget_low_s16(m[2]), pairs);
        acc = vmlal_high_laneq_s16::<5>(acc, m[2], pairs);
        acc = vmlal_laneq_s16::<6>(acc, vget_low_s16(m[3]), pairs);
        vmlal_high_laneq_s16::<7>(acc, m[3], pairs)
    }
}

/// Sub-block `s` (32 values, 0..=15 or 0..=31) of a Q4_K (`HIGH = false`) or Q5_K block at `p`,
/// as two vectors of 16.
#[inline(always)]
pub(super) unsafe fn kquant45_sub<const HIGH: bool>(p: *const u8, s: usize) -> [int8x16_t; 2] {
    let qs_off = if HIGH { 48 } else { 16 };
    let c = s / 2;
    unsafe {
        let m4 = vdupq_n_u8(0x0f);
        let q = [
            vld1q_u8(p.add(qs_off + 32 * c)),
            vld1q_u8(p.add(qs_off + 32 * c + 16)),
        ];
        let mut v = if s.is_multiple_of(2) {
            [vandq_u8(q[0], m4), vandq_u8(q[1], m4)]
        } else {
            [vshrq_n_u8::<4>(q[0]), vshrq_n_u8::<4>(q[1])]
        };
        if HIGH {
            let bit = vdupq_n_u8(1 << s);
            let bit4 = vdupq_n_u8(0x10);
            for (h, vh) in v.iter_mut().enumerate() {
                let qh = vld1q_u8(p.add(16 + 16 * h));
                *vh = vorrq_u8(*vh, vandq_u8(vtstq_u8(qh, bit), bit4));
            }
        }
        [s8(v[0]), s8(v[1])]
    }
}

/// Q4_K / Q5_K × Q8_K: per sub-block of 32, the 4 rows' sums reduced to a row vector and
/// multiplied by the 4 rows' 6-bit scales; scales `d`, `dmin` and the minimums once per 256.
#[inline(always)]
pub(super) unsafe fn kquant45_4<const HIGH: bool, D: Dot16, const NT: usize>(
    cols: usize,
    w: [*const u8; 4],
    a: [*const u8; NT],
) -> [float32x4_t; NT] {
    let w_block = if HIGH { 176 } else { 144 };
    let mut acc = [unsafe { vdupq_n_f32(0.0) }; NT];
    for b in 0..cols / 256 {
        let pw = map4(w, |p| unsafe { p.add(b * w_block) });
        let scm = map4(pw, |p| unsafe { unpack_q4k_scales(p.add(4)) });
        let sc = unsafe { transpose_scales(map4(scm, |(s, _)| s)) };
        let mut sumi = [unsafe { vdupq_n_s32(0) }; NT];
        unroll!(s in [0, 1, 2, 3, 4, 5, 6, 7] {
            let x = map4(pw, |p| unsafe { kquant45_sub::<HIGH>(p, s) });
            let scale = unsafe { scale_lanes(&sc, s) };
            for j in 0..NT {
                let y = unsafe { a[j].add(b * K_ACT + K_QS + 32 * s) };
                let y = unsafe { [ld(y), ld(y.add(16))] };
                let t = unsafe {
                    [
                        D::dot32_small(x[0], y),
                        D::dot32_small(x[1], y),
                        D::dot32_small(x[2], y),
                        D::dot32_small(x[3], y),
                    ]
                };
                sumi[j] = unsafe { vmlaq_s32(sumi[j], reduce4(t), scale) };
            }
        });
        let d = unsafe { f16_gather4(pw) };
        let dmin = unsafe { f16_gather4(map4(pw, |p| p.add(2))) };
        let mins = unsafe { transpose_scales(map4(scm, |(_, m)| m)) };
        for j in 0..NT {
            let p = unsafe { a[j].add(b * K_ACT) };
            let dy = unsafe { super::rd_f32(p) };
            let m = unsafe { vcvtq_f32_s32(mins4(&mins, bsum_pairs(p))) };
            acc[j] = unsafe { vfmaq_f32(acc[j], vcvtq_f32_s32(sumi[j]), vmulq_n_f32(d, dy)) };
            acc[j] = unsafe { vfmsq_f32(acc[j], m, vmulq_n_f32(dmin, dy)) };
        }
    }
    acc
}

/// Sub-block `g` (16 values, `-32..=31`) of the Q6_K block at `p`.
#[inline(always)]
pub(super) unsafe fn q6k_sub(p: *const u8, g: usize) -> int8x16_t {
    // Sub-block g = 8h + 2k + v holds elements 128h + 32k + 16v..: low nibbles of ql[v] (k
    // even) or ql[2 + v] (k odd) for k < 2, high nibbles for k >= 2; bits 2k..2k+2 of qh[v].
    let (h, k, v) = (g / 8, (g % 8) / 2, g % 2);
    unsafe {
        let l = vld1q_u8(p.add(64 * h + 16 * (v + 2 * (k % 2))));
        let qh = vld1q_u8(p.add(128 + 32 * h + 16 * v));
        let m4 = vdupq_n_u8(0x0f);
        let m30 = vdupq_n_u8(0x30);
        let q = match k {
            0 => vorrq_u8(
                vandq_u8(l, m4),
                vshlq_n_u8::<4>(vandq_u8(qh, vdupq_n_u8(0x03))),
            ),
            1 => vorrq_u8(
                vandq_u8(l, m4),
                vshlq_n_u8::<2>(vandq_u8(qh, vdupq_n_u8(0x0c))),
            ),
            2 => vorrq_u8(vshrq_n_u8::<4>(l), vandq_u8(qh, m30)),
            _ => vorrq_u8(vshrq_n_u8::<4>(l), vandq_u8(vshrq_n_u8::<2>(qh), m30)),
        };
        vsubq_s8(s8(q), vdupq_n_s8(32))
    }
}

/// The signed 8-bit sub-block scales of 4 Q6_K rows (16 bytes at each `p`), rearranged so
/// vector `k` holds, as i16, sub-blocks `2k` (lanes 0-3, rows 0-3) and `2k + 1` (lanes 4-7).
#[inline(always)]
pub(super) unsafe fn q6k_scales(p: [*const u8; 4]) -> [int16x8_t; 8] {
    unsafe {
        let s = map4(p, |q| vld1q_s8(q as *const i8));
        let (a01, b01) = (vzip1q_s8(s[0], s[1]), vzip2q_s8(s[0], s[1]));
        let (a23, b23) = (vzip1q_s8(s[2], s[3]), vzip2q_s8(s[2], s[3]));
        let h = |x: int8x16_t| vreinterpretq_s16_s8(x);
        let b = |x: int16x8_t| vreinterpretq_s8_s16(x);
        // Bytes r0g r1g r2g r3g for g = 0-3, 4-7, 8-11, 12-15.
        let t = [
            b(vzip1q_s16(h(a01), h(a23))),
            b(vzip2q_s16(h(a01), h(a23))),
            b(vzip1q_s16(h(b01), h(b23))),
            b(vzip2q_s16(h(b01), h(b23))),
        ];
        let mut out = [vdupq_n_s16(0); 8];
        for (k, tk) in t.iter().enumerate() {
            out[2 * k] = vmovl_s8(vget_low_s8(*tk));
            out[2 * k + 1] = vmovl_high_s8(*tk);
        }
        out
    }
}

/// Q6_K × Q8_K: per sub-block of 16, the 4 rows' sums reduced to a row vector and multiplied
/// by the 4 rows' scales; `d` once per 256.
#[inline(always)]
pub(super) unsafe fn q6k_4<D: Dot16, const NT: usize>(
    cols: usize,
    w: [*const u8; 4],
    a: [*const u8; NT],
) -> [float32x4_t; NT] {
    let mut acc = [unsafe { vdupq_n_f32(0.0) }; NT];
    for b in 0..cols / 256 {
        let pw = map4(w, |p| unsafe { p.add(b * 210) });
        let scales = unsafe { q6k_scales(map4(pw, |p| p.add(192))) };
        let mut sumi = [unsafe { vdupq_n_s32(0) }; NT];
        unroll!(g in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
            let x = map4(pw, |p| unsafe { q6k_sub(p, g) });
            let sv = scales[g / 2];
            let scale = unsafe {
                if g.is_multiple_of(2) {
                    vmovl_s16(vget_low_s16(sv))
                } else {
                    vmovl_high_s16(sv)
                }
            };
            for j in 0..NT {
                let y = unsafe { ld(a[j].add(b * K_ACT + K_QS + 16 * g)) };
                let t = unsafe {
                    [
                        D::dot16(x[0], y),
                        D::dot16(x[1], y),
                        D::dot16(x[2], y),
                        D::dot16(x[3], y),
                    ]
                };
                sumi[j] = unsafe { vmlaq_s32(sumi[j], reduce4(t), scale) };
            }
        });
        let d = unsafe { f16_gather4(map4(pw, |p| p.add(208))) };
        for j in 0..NT {
            let dy = unsafe { super::rd_f32(a[j].add(b * K_ACT)) };
            acc[j] = unsafe { vfmaq_f32(acc[j], vcvtq_f32_s32(sumi[j]), vmulq_n_f32(d, dy)) };
        }
    }
    acc
}

tile_kernel!(NeonQ4_0, "neon", legacy4, Q4_0W, PlainDot);
tile_kernel!(NeonQ4_1, "neon", legacy4, Q4_1W, PlainDot);
tile_kernel!(NeonQ5_0, "neon", legacy4, Q5_0W, PlainDot);
tile_kernel!(NeonQ5_1, "neon", legacy4, Q5_1W, PlainDot);
tile_kernel!(NeonQ8_0, "neon", legacy4, Q8_0W, PlainDot);
tile_kernel!(NeonQ6K, "neon", q6k_4, PlainDot);
tile_kernel!(DotQ4_0, "neon,dotprod", legacy4, Q4_0W, Sdot);
tile_kernel!(DotQ4_1, "neon,dotprod", legacy4, Q4_1W, Sdot);
tile_kernel!(DotQ5_0, "neon,dotprod", legacy4, Q5_0W, Sdot);
tile_kernel!(DotQ5_1, "neon,dotprod", legacy4, Q5_1W, Sdot);
tile_kernel!(DotQ8_0, "neon,dotprod", legacy4, Q8_0W, Sdot);
tile_kernel!(DotQ6K, "neon,dotprod", q6k_4, Sdot);

/// `kquant45_4` with its `HIGH` flag as a type, so `tile_kernel!` can pass it.
macro_rules! kquant_kernel {
    ($name:ident, $features:literal, $high:literal, $dot:ty) => {
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
                #[target_feature(enable = $features)]
                unsafe fn run<const NT: usize>(
                    cols: usize,
                    w: [*const u8; 4],
                    a: [*const u8; NT],
                ) -> [float32x4_t; NT] {
                    unsafe { kquant45_4::<$high, $dot, NT>(cols, w, a) }
                }
                unsafe { run::<NT>(cols, w, a) }
            }
        }
    };
}
kquant_kernel!(NeonQ4K, "neon", false, PlainDot);
kquant_kernel!(NeonQ5K, "neon", true, PlainDot);
kquant_kernel!(DotQ4K, "neon,dotprod", false, Sdot);
kquant_kernel!(DotQ5K, "neon,dotprod", true, Sdot);

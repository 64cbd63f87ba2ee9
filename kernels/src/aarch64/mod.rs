//! aarch64 SIMD kernels: `neon` (ARMv8.0: Raspberry Pi 4, Cortex-A53/A72), `dotprod` (ARMv8.2
//! `sdot`: Pi 5, most phones) and `i8mm` (ARMv8.6 `smmla`: recent phones); which
//! kernel each runs for which format is the table in `dispatch.rs`.
//!
//! The integer kernels (`int.rs`) are written once, generic over [`Dot16`], the 16-byte signed
//! dot product: plain NEON widens with `smull` + `sadalp`, the dotprod path issues `sdot`. The
//! generic bodies are `#[inline(always)]` and only instantiated inside the path's own
//! `#[target_feature]` wrappers, so `sdot` is only ever assembled (and run) where dotprod was
//! detected. `sdot` / `smmla` go through `asm!`: their intrinsics are not stable yet.

pub(crate) mod dotprod;
pub(crate) mod gemm;
pub(crate) mod gemm_i8mm;
mod int;
pub(crate) mod neon;
pub(crate) mod quantize;

use std::arch::aarch64::*;

/// `acc` plus the products of the 16 signed bytes of `a` and `b`, summed into 4 i32 lanes.
/// How the 16 products are split over the lanes depends on the instruction; their total is
/// exact either way (16 products of at most 2^14 each).
///
/// The fresh sums (`dot16`, `dot32`, `dot32_small`) let plain NEON keep pairs (or quads) of
/// products in i16 lanes before widening: that is exact because activation bytes are in
/// `-127..=127` (every activation quantizer here produces that range), so two products of
/// i8 weights stay within 2 * 128 * 127 < 2^15 and four products of weights in `-32..=31`
/// within 4 * 32 * 127 < 2^15.
pub(crate) trait Dot16 {
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;

    /// The products of 16 bytes in 4 i32 lanes.
    #[inline(always)]
    unsafe fn dot16(a: int8x16_t, b: int8x16_t) -> int32x4_t {
        unsafe { Self::dot(vdupq_n_s32(0), a, b) }
    }

    /// The products of 32 bytes (two vectors) in 4 i32 lanes.
    #[inline(always)]
    unsafe fn dot32(x: [int8x16_t; 2], y: [int8x16_t; 2]) -> int32x4_t {
        unsafe { Self::dot(Self::dot(vdupq_n_s32(0), x[0], y[0]), x[1], y[1]) }
    }

    /// [`dot32`](Self::dot32) for weights in `-32..=31`.
    #[inline(always)]
    unsafe fn dot32_small(x: [int8x16_t; 2], y: [int8x16_t; 2]) -> int32x4_t {
        unsafe { Self::dot32(x, y) }
    }
}

/// ARMv8.0: widening multiplies to i16, pairwise accumulate to i32.
pub(crate) struct PlainDot;

impl Dot16 for PlainDot {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        unsafe {
            let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
            let hi = vmull_high_s8(a, b);
            vpadalq_s16(vpadalq_s16(acc, lo), hi)
        }
    }

    #[inline(always)]
    unsafe fn dot16(a: int8x16_t, b: int8x16_t) -> int32x4_t {
        unsafe {
            let p = vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b);
            vpaddlq_s16(p)
        }
    }

    #[inline(always)]
    unsafe fn dot32(x: [int8x16_t; 2], y: [int8x16_t; 2]) -> int32x4_t {
        unsafe {
            let p = vmlal_high_s8(vmull_s8(vget_low_s8(x[0]), vget_low_s8(y[0])), x[0], y[0]);
            let q = vmlal_high_s8(vmull_s8(vget_low_s8(x[1]), vget_low_s8(y[1])), x[1], y[1]);
            vpadalq_s16(vpaddlq_s16(p), q)
        }
    }

    #[inline(always)]
    unsafe fn dot32_small(x: [int8x16_t; 2], y: [int8x16_t; 2]) -> int32x4_t {
        unsafe {
            let mut p = vmull_s8(vget_low_s8(x[0]), vget_low_s8(y[0]));
            p = vmlal_high_s8(p, x[0], y[0]);
            p = vmlal_s8(p, vget_low_s8(x[1]), vget_low_s8(y[1]));
            p = vmlal_high_s8(p, x[1], y[1]);
            vpaddlq_s16(p)
        }
    }
}

/// ARMv8.2 dotprod: one `sdot` (lane k gets bytes 4k..4k+4).
pub(crate) struct Sdot;

impl Dot16 for Sdot {
    #[inline(always)]
    unsafe fn dot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: only reached from `#[target_feature(enable = "dotprod")]` functions, called
        // after the feature was detected.
        unsafe {
            std::arch::asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }
}

/// Unaligned little-endian u16 at `p`.
#[inline(always)]
pub(crate) unsafe fn rd_u16(p: *const u8) -> u16 {
    unsafe { std::ptr::read_unaligned(p as *const u16) }
}

/// Unaligned little-endian u32 at `p`.
#[inline(always)]
pub(crate) unsafe fn rd_u32(p: *const u8) -> u32 {
    unsafe { std::ptr::read_unaligned(p as *const u32) }
}

/// Unaligned f32 at `p`.
#[inline(always)]
pub(crate) unsafe fn rd_f32(p: *const u8) -> f32 {
    unsafe { std::ptr::read_unaligned(p as *const f32) }
}

/// The f16 at `p` as f32: `fcvt` (base ARMv8 floating point, exact; the f16 intrinsics and
/// types are not stable).
#[inline(always)]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    let h = unsafe { rd_u16(p) };
    let out: f32;
    // SAFETY: a register-only conversion available on every aarch64 CPU.
    unsafe {
        std::arch::asm!(
            "fmov {t:s}, {h:w}",
            "fcvt {o:s}, {t:h}",
            h = in(reg) h as u32,
            t = out(vreg) _,
            o = lateout(vreg) out,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// 4 f16 (8 bytes at `p`) widened to f32 with `fcvtl`.
#[inline(always)]
pub(crate) unsafe fn f16x4_at(p: *const u8) -> float32x4_t {
    let h = unsafe { vld1_u16(p as *const u16) };
    let out: float32x4_t;
    // SAFETY: register-only conversion, base ARMv8.
    unsafe {
        std::arch::asm!(
            "fcvtl {o:v}.4s, {h:v}.4h",
            h = in(vreg) h,
            o = lateout(vreg) out,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// Reduces every accumulator of a tile.
#[inline(always)]
pub(crate) unsafe fn hsum_tile<const NW: usize, const NA: usize>(
    acc: &[[float32x4_t; NA]; NW],
) -> [[f32; NA]; NW] {
    let mut out = [[0.0f32; NA]; NW];
    for i in 0..NW {
        for j in 0..NA {
            out[i][j] = unsafe { vaddvq_f32(acc[i][j]) };
        }
    }
    out
}

/// Runs `$body` once for each listed value of `$i`, a `const` in each copy: the sub-block
/// loops of the K-quant kernels, fully unrolled so shifts, masks and offsets are immediates
/// and the block loop is one straight loop body (what the cost model in tools/mca reads).
macro_rules! unroll {
    ($i:ident in [$($v:literal),* $(,)?] $body:block) => {
        $({
            #[allow(non_upper_case_globals)]
            const $i: usize = $v;
            $body
        })*
    };
}
pub(crate) use unroll;

/// Implements [`RowKernel`](crate::rows::RowKernel) for a unit struct by calling a generic
/// body through a wrapper compiled with the path's target features.
macro_rules! path_kernel {
    ($name:ident, $features:literal, $body:ident, $dot:ty) => {
        pub(crate) struct $name;
        impl crate::rows::RowKernel for $name {
            #[inline]
            unsafe fn dot<const NW: usize, const NA: usize>(
                cols: usize,
                w: [*const u8; NW],
                a: [*const u8; NA],
            ) -> [[f32; NA]; NW] {
                // Never inlined: one call per tile of whole rows, and a symbol of its own for
                // the cost model (tools/mca).
                #[inline(never)]
                #[target_feature(enable = $features)]
                unsafe fn run<const NW: usize, const NA: usize>(
                    cols: usize,
                    w: [*const u8; NW],
                    a: [*const u8; NA],
                ) -> [[f32; NA]; NW] {
                    unsafe { $body::<$dot, NW, NA>(cols, w, a) }
                }
                unsafe { run::<NW, NA>(cols, w, a) }
            }
        }
    };
}
pub(crate) use path_kernel;

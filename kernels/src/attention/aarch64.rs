//! NEON (ARMv8.0, 4 lanes) instantiation of the attention algorithm, for every aarch64 path
//! (dotprod and i8mm add nothing to float attention). f16 keys and values are widened with
//! `fcvtl` (issued with `asm!`: the f16 vector types are not stable in `std::arch`).

use super::kernel::{self, Simd, Tile};
use super::{Attention, AttentionFn};
use std::arch::aarch64::*;

pub(crate) struct Neon;

/// `fcvtl`: 4 f16 (as bits) to 4 f32, exactly.
#[inline(always)]
unsafe fn fcvtl(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    unsafe {
        std::arch::asm!(
            "fcvtl {o:v}.4s, {i:v}.4h",
            o = lateout(vreg) out,
            i = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

impl Simd for Neon {
    const W: usize = 4;
    const REGS: usize = 32;
    type V = float32x4_t;

    #[inline(always)]
    unsafe fn splat(x: f32) -> float32x4_t {
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u8) -> float32x4_t {
        unsafe { fcvtl(vld1_u16(p as *const u16)) }
    }
    #[inline(always)]
    unsafe fn load_i8(p: *const u8) -> float32x4_t {
        unsafe {
            let b = vcreate_s8((p as *const u32).read_unaligned() as u64);
            let w = vmovl_s16(vget_low_s16(vmovl_s8(b)));
            vcvtq_f32_s32(w)
        }
    }
    #[inline(always)]
    unsafe fn f16_to_f32(bits: u16) -> f32 {
        unsafe { vgetq_lane_f32::<0>(fcvtl(vdup_n_u16(bits))) }
    }
    #[inline(always)]
    unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn div(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vdivq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vmaxq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn min(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vminq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn abs(a: float32x4_t) -> float32x4_t {
        unsafe { vabsq_f32(a) }
    }
    #[inline(always)]
    unsafe fn round(a: float32x4_t) -> float32x4_t {
        unsafe { vrndnq_f32(a) }
    }
    #[inline(always)]
    unsafe fn pow2i(n: float32x4_t) -> float32x4_t {
        unsafe {
            let e = vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127));
            vreinterpretq_f32_s32(vshlq_n_s32::<23>(e))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(
        a: float32x4_t,
        b: float32x4_t,
        x: float32x4_t,
        y: float32x4_t,
    ) -> float32x4_t {
        unsafe { vbslq_f32(vcltq_f32(a, b), x, y) }
    }
    #[inline(always)]
    unsafe fn hsum(a: float32x4_t) -> f32 {
        unsafe { vaddvq_f32(a) }
    }
    #[inline(always)]
    unsafe fn hmax(a: float32x4_t) -> f32 {
        unsafe { vmaxvq_f32(a) }
    }
    #[inline(always)]
    unsafe fn lane0(a: float32x4_t) -> f32 {
        unsafe { vgetq_lane_f32::<0>(a) }
    }
}

pub(crate) struct NeonPath;

impl kernel::Path for NeonPath {
    unsafe fn tile(a: &Attention<'_>, t: &Tile, c0: usize, c1: usize, st: &mut [f32], each: bool) {
        #[target_feature(enable = "neon")]
        unsafe fn inner(
            a: &Attention<'_>,
            t: &Tile,
            c0: usize,
            c1: usize,
            st: &mut [f32],
            each: bool,
        ) {
            unsafe { kernel::tile::<Neon>(a, t, c0, c1, st, each) }
        }
        unsafe { inner(a, t, c0, c1, st, each) }
    }
    unsafe fn merge(hd: usize, rows: usize, dst: &mut [f32], src: &[f32]) {
        #[target_feature(enable = "neon")]
        unsafe fn inner(hd: usize, rows: usize, dst: &mut [f32], src: &[f32]) {
            unsafe { kernel::merge::<Neon>(hd, rows, dst, src) }
        }
        unsafe { inner(hd, rows, dst, src) }
    }
}

/// The NEON attention entry (shared by the neon, dotprod and i8mm tables).
pub(crate) const NEON: AttentionFn = kernel::attend::<NeonPath>;

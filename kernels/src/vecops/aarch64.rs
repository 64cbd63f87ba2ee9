//! The NEON (4 lanes) instance of the SIMD ops, shared by the `neon`, `dotprod` and `i8mm`
//! tables (none of these ops has a use for the dot-product instructions).

use super::simd::{vec_ops_table, Lanes};
use crate::kernel_types::Path;
use std::arch::aarch64::*;

#[derive(Clone, Copy)]
pub(super) struct F32x4(float32x4_t);

impl Lanes for F32x4 {
    const N: usize = 4;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { F32x4(vld1q_f32(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { vst1q_f32(p, self.0) }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        unsafe { F32x4(vdupq_n_f32(v)) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { F32x4(vaddq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        unsafe { F32x4(vsubq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { F32x4(vmulq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        unsafe { F32x4(vdivq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { F32x4(vfmaq_f32(c.0, self.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        unsafe { F32x4(vminq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        unsafe { F32x4(vmaxq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        unsafe { F32x4(vabsq_f32(self.0)) }
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        unsafe { F32x4(vsqrtq_f32(self.0)) }
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        unsafe { F32x4(vrndnq_f32(self.0)) }
    }
    #[inline(always)]
    unsafe fn pow2(self) -> Self {
        unsafe {
            let e = vaddq_s32(vcvtq_s32_f32(self.0), vdupq_n_s32(127));
            F32x4(vreinterpretq_f32_s32(vshlq_n_s32::<23>(e)))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
        unsafe { F32x4(vbslq_f32(vcltq_f32(self.0, o.0), a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn with_sign_of(self, sign: Self) -> Self {
        unsafe {
            let s = vandq_u32(vreinterpretq_u32_f32(sign.0), vdupq_n_u32(0x8000_0000));
            F32x4(vreinterpretq_f32_u32(vorrq_u32(
                vreinterpretq_u32_f32(self.0),
                s,
            )))
        }
    }
    #[inline(always)]
    unsafe fn sum_squares(x: *const f32, n: usize) -> f64 {
        unsafe {
            let (mut lo, mut hi) = (vdupq_n_f64(0.0), vdupq_n_f64(0.0));
            let mut i = 0;
            while i + 4 <= n {
                let v = vld1q_f32(x.add(i));
                let a = vcvt_f64_f32(vget_low_f32(v));
                let b = vcvt_high_f64_f32(v);
                lo = vfmaq_f64(lo, a, a);
                hi = vfmaq_f64(hi, b, b);
                i += 4;
            }
            let mut s = vaddvq_f64(vaddq_f64(lo, hi));
            while i < n {
                let v = *x.add(i) as f64;
                s += v * v;
                i += 1;
            }
            s
        }
    }
}

vec_ops_table!(NEON, neon, Path::Neon, F32x4, "neon");

/// The same functions under the other aarch64 paths' names.
pub(super) const DOTPROD: super::VecOps = super::VecOps {
    path: Path::Dotprod,
    ..NEON
};
pub(super) const I8MM: super::VecOps = super::VecOps {
    path: Path::I8mm,
    ..NEON
};

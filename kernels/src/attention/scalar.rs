//! The portable path: the same algorithm with one-lane "vectors" and plain f32 arithmetic
//! (`fma` is `a·b + c`, two roundings, so no software fused multiply-add on CPUs without one).

use super::kernel::{self, Simd, Tile};
use super::{Attention, AttentionFn};

pub(crate) struct Scalar;

impl Simd for Scalar {
    const W: usize = 1;
    const REGS: usize = 16;
    type V = f32;

    #[inline(always)]
    unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        unsafe { p.write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u8) -> f32 {
        crate::formats::f16_bits_to_f32(unsafe { (p as *const u16).read_unaligned() })
    }
    #[inline(always)]
    unsafe fn load_i8(p: *const u8) -> f32 {
        unsafe { *p as i8 as f32 }
    }
    #[inline(always)]
    unsafe fn f16_to_f32(bits: u16) -> f32 {
        crate::formats::f16_bits_to_f32(bits)
    }
    #[inline(always)]
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    unsafe fn div(a: f32, b: f32) -> f32 {
        a / b
    }
    #[inline(always)]
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    unsafe fn max(a: f32, b: f32) -> f32 {
        if a > b {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    unsafe fn min(a: f32, b: f32) -> f32 {
        if a < b {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    unsafe fn abs(a: f32) -> f32 {
        a.abs()
    }
    #[inline(always)]
    unsafe fn round(a: f32) -> f32 {
        a.round()
    }
    #[inline(always)]
    unsafe fn pow2i(n: f32) -> f32 {
        f32::from_bits(((n as i32 + 127) as u32) << 23)
    }
    #[inline(always)]
    unsafe fn select_lt(a: f32, b: f32, x: f32, y: f32) -> f32 {
        if a < b {
            x
        } else {
            y
        }
    }
    #[inline(always)]
    unsafe fn hsum(a: f32) -> f32 {
        a
    }
    #[inline(always)]
    unsafe fn hmax(a: f32) -> f32 {
        a
    }
    #[inline(always)]
    unsafe fn lane0(a: f32) -> f32 {
        a
    }
}

pub(crate) struct ScalarPath;

impl kernel::Path for ScalarPath {
    unsafe fn tile(a: &Attention<'_>, t: &Tile, c0: usize, c1: usize, st: &mut [f32], each: bool) {
        unsafe { kernel::tile::<Scalar>(a, t, c0, c1, st, each) }
    }
    unsafe fn merge(hd: usize, rows: usize, dst: &mut [f32], src: &[f32]) {
        unsafe { kernel::merge::<Scalar>(hd, rows, dst, src) }
    }
}

/// The scalar attention entry.
pub(crate) const SCALAR: AttentionFn = kernel::attend::<ScalarPath>;

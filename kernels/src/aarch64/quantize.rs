//! Activation quantizers Q8_0 / Q8_1 / Q8_K (NEON, shared by all aarch64 paths),
//! byte-identical to the scalar reference quantizers in `formats/q8_{0,1,k}.rs`: same scalar
//! scale arithmetic, the same products, and the same rounding (`fcvtas`: half away from zero
//! like `f32::round`; `fcvtns`: half to even like `round_ties_even`; both give 0 for NaN).
//! `fmaxnm` ignores NaN like `f32::max`. Blocks whose inverse scale is not finite go through
//! the scalar code.

use crate::formats::{self, BlockQ8_0, BlockQ8_1, BlockQ8_K, FormatError, QK_K};
use crate::types::GgmlType;
use bytemuck::Zeroable;
use std::arch::aarch64::*;

/// The `quantize_act` entry of the aarch64 tables.
pub(crate) fn quantize_act(dot_ty: GgmlType, x: &[f32], dst: &mut [u8]) -> Result<(), FormatError> {
    let fits = dot_ty.row_bytes(x.len() as u64) == Some(dst.len() as u64);
    // SAFETY: NEON is part of every aarch64 target these tables are built for; sizes checked.
    match dot_ty {
        GgmlType::Q8_0 if fits => unsafe { quantize_q8_0(x, dst) },
        GgmlType::Q8_1 if fits => unsafe { quantize_q8_1(x, dst) },
        GgmlType::Q8_K if fits => unsafe { quantize_q8_k(x, dst) },
        _ => return formats::quantize_row(dot_ty, x, dst),
    }
    Ok(())
}

/// f32 to f16 bits with `fcvt` (round to nearest even, the default FPCR mode), like
/// `formats::f32_to_f16_bits` for the finite scales it is called with.
#[inline(always)]
fn f16_bits(x: f32) -> [u8; 2] {
    let h: u32;
    // SAFETY: register-only conversion, base ARMv8 floating point.
    unsafe {
        std::arch::asm!(
            "fcvt {t:h}, {x:s}",
            "fmov {h:w}, {t:s}",
            x = in(vreg) x,
            t = out(vreg) _,
            h = lateout(reg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    (h as u16).to_le_bytes()
}

/// Largest |v| of 32 values (NaN ignored).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn abs_max32(x: *const f32) -> f32 {
    let mut m = vdupq_n_f32(0.0);
    for k in 0..8 {
        m = vmaxnmq_f32(m, vabsq_f32(unsafe { vld1q_f32(x.add(4 * k)) }));
    }
    vmaxnmvq_f32(m)
}

/// Rounds 32 values times `id` half away from zero into 32 bytes at `dst`; returns their sum.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q8_32(x: *const f32, id: f32, dst: *mut u8) -> i32 {
    let mut sum = vdupq_n_s32(0);
    for h in 0..2 {
        let mut q16 = [vdupq_n_s16(0); 2];
        for (v, q) in q16.iter_mut().enumerate() {
            let base = 16 * h + 8 * v;
            let i0 = vcvtaq_s32_f32(vmulq_n_f32(unsafe { vld1q_f32(x.add(base)) }, id));
            let i1 = vcvtaq_s32_f32(vmulq_n_f32(unsafe { vld1q_f32(x.add(base + 4)) }, id));
            sum = vaddq_s32(sum, vaddq_s32(i0, i1));
            *q = vcombine_s16(vqmovn_s32(i0), vqmovn_s32(i1));
        }
        let b = vcombine_s8(vqmovn_s16(q16[0]), vqmovn_s16(q16[1]));
        unsafe { vst1q_s8(dst.add(16 * h) as *mut i8, b) };
    }
    vaddvq_s32(sum)
}

#[target_feature(enable = "neon")]
unsafe fn quantize_q8_0(x: &[f32], dst: &mut [u8]) {
    for (xb, yb) in x.chunks_exact(32).zip(dst.chunks_exact_mut(34)) {
        let amax = unsafe { abs_max32(xb.as_ptr()) };
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !id.is_finite() || !amax.is_finite() {
            let mut blk = BlockQ8_0::zeroed();
            formats::quantize_row_q8_0(xb, std::slice::from_mut(&mut blk));
            yb.copy_from_slice(bytemuck::bytes_of(&blk));
            continue;
        }
        yb[..2].copy_from_slice(&f16_bits(d));
        unsafe { q8_32(xb.as_ptr(), id, yb.as_mut_ptr().add(2)) };
    }
}

#[target_feature(enable = "neon")]
unsafe fn quantize_q8_1(x: &[f32], dst: &mut [u8]) {
    for (xb, yb) in x.chunks_exact(32).zip(dst.chunks_exact_mut(36)) {
        let amax = unsafe { abs_max32(xb.as_ptr()) };
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !id.is_finite() || !amax.is_finite() {
            let mut blk = BlockQ8_1::zeroed();
            formats::quantize_row_q8_1(xb, std::slice::from_mut(&mut blk));
            yb.copy_from_slice(bytemuck::bytes_of(&blk));
            continue;
        }
        let sum = unsafe { q8_32(xb.as_ptr(), id, yb.as_mut_ptr().add(4)) };
        yb[..2].copy_from_slice(&f16_bits(d));
        yb[2..4].copy_from_slice(&f16_bits(sum as f32 * d));
    }
}

#[target_feature(enable = "neon")]
unsafe fn quantize_q8_k(x: &[f32], dst: &mut [u8]) {
    for (xb, yb) in x.chunks_exact(QK_K).zip(dst.chunks_exact_mut(292)) {
        let p = xb.as_ptr();
        let (mut vmax, mut vmin) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        for k in 0..QK_K / 4 {
            let v = unsafe { vld1q_f32(p.add(4 * k)) };
            vmax = vmaxnmq_f32(vmax, v);
            vmin = vminnmq_f32(vmin, v);
        }
        let (hi, lo) = (vmaxnmvq_f32(vmax), vminnmvq_f32(vmin));
        // The reference keeps the first value of largest magnitude, with its sign.
        let max = if hi > -lo {
            hi
        } else if -lo > hi {
            lo
        } else {
            xb.iter()
                .copied()
                .fold(0.0f32, |m, v| if v.abs() > m.abs() { v } else { m })
        };
        let iscale = -127.0 / max;
        if max == 0.0 || !iscale.is_finite() || !max.is_finite() {
            let mut blk = BlockQ8_K::zeroed();
            formats::quantize_row_q8_k(xb, std::slice::from_mut(&mut blk));
            yb.copy_from_slice(bytemuck::bytes_of(&blk));
            continue;
        }
        for g in 0..QK_K / 16 {
            let mut q16 = [vdupq_n_s16(0); 2];
            for (v, q) in q16.iter_mut().enumerate() {
                let base = 16 * g + 8 * v;
                let i0 = vcvtnq_s32_f32(vmulq_n_f32(unsafe { vld1q_f32(p.add(base)) }, iscale));
                let i1 = vcvtnq_s32_f32(vmulq_n_f32(unsafe { vld1q_f32(p.add(base + 4)) }, iscale));
                *q = vcombine_s16(vqmovn_s32(i0), vqmovn_s32(i1));
            }
            let b = vcombine_s8(vqmovn_s16(q16[0]), vqmovn_s16(q16[1]));
            unsafe { vst1q_s8(yb.as_mut_ptr().add(4 + 16 * g) as *mut i8, b) };
            let sum = vaddvq_s16(vaddq_s16(q16[0], q16[1]));
            yb[260 + 2 * g..262 + 2 * g].copy_from_slice(&sum.to_le_bytes());
        }
        yb[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

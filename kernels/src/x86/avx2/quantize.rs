//! Activation quantizers Q8_0 / Q8_1 / Q8_K (AVX2), byte-identical to the scalar reference
//! quantizers in `formats/q8_{0,1,k}.rs`: the scale is computed with the same scalar f32
//! operations, each value is multiplied by the same inverse scale and rounded the same way
//! (Q8_0/Q8_1: half away from zero, Q8_K: half to even). Blocks whose inverse scale is not
//! finite (subnormal maxima, infinities) go through the scalar code.

use crate::formats::{self, BlockQ8_0, BlockQ8_1, BlockQ8_K, FormatError, QK_K};
use crate::types::GgmlType;
use bytemuck::Zeroable;
use std::arch::x86_64::*;

/// The `quantize_act` entry of the AVX2 (and AVX-512) tables.
pub(crate) fn quantize_act(dot_ty: GgmlType, x: &[f32], dst: &mut [u8]) -> Result<(), FormatError> {
    let fits = dot_ty.row_bytes(x.len() as u64) == Some(dst.len() as u64);
    // SAFETY: this table is only reachable when AVX2/FMA/F16C were detected; sizes checked.
    match dot_ty {
        GgmlType::Q8_0 if fits => unsafe { quantize_q8_0(x, dst) },
        GgmlType::Q8_1 if fits => unsafe { quantize_q8_1(x, dst) },
        GgmlType::Q8_K if fits => unsafe { quantize_q8_k(x, dst) },
        // F32 activations, and any size error, the reference handles.
        _ => return formats::quantize_row(dot_ty, x, dst),
    }
    Ok(())
}

/// f32 to f16 bits with F16C, rounding to nearest even like `formats::f32_to_f16_bits` (only
/// called with finite scales).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_bits(x: f32) -> [u8; 2] {
    let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(x));
    (_mm_extract_epi16::<0>(h) as u16).to_le_bytes()
}

/// Largest |v| over `n` vectors at `x` (NaN lanes ignored, as `f32::max` does).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn abs_max(x: *const f32, n: usize) -> f32 {
    let sign = _mm256_set1_ps(-0.0);
    let mut m = _mm256_setzero_ps();
    for k in 0..n {
        let v = _mm256_andnot_ps(sign, unsafe { _mm256_loadu_ps(x.add(8 * k)) });
        m = _mm256_max_ps(v, m);
    }
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// `round(v * id)` with halves away from zero (`f32::round`), as i32; NaN gives 0 like
/// `as i8` does.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn round_away(v: __m256, id: __m256) -> __m256i {
    let sign = _mm256_set1_ps(-0.0);
    let p = _mm256_mul_ps(v, id);
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(p);
    // p - trunc(p) is exact; step one away from zero when its magnitude is at least 1/2.
    let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(p, t));
    let up = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5));
    let step = _mm256_or_ps(_mm256_and_ps(p, sign), _mm256_set1_ps(1.0));
    let r = _mm256_add_ps(t, _mm256_and_ps(up, step));
    let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(p, p));
    _mm256_cvttps_epi32(r)
}

/// Packs four vectors of i32 (each in -128..=127) into 32 bytes in order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack_i8(i: [__m256i; 4], dst: *mut u8) {
    let p01 = _mm256_packs_epi32(i[0], i[1]);
    let p23 = _mm256_packs_epi32(i[2], i[3]);
    let b = _mm256_packs_epi16(p01, p23);
    // The packs work within 128-bit lanes; restore element order.
    let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    unsafe { _mm256_storeu_si256(dst as *mut __m256i, b) };
}

/// Quantizes the 32 values at `x` with inverse scale `id` into `dst`; returns their sum.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_32(x: *const f32, id: f32, dst: *mut u8) -> i32 {
    let idv = _mm256_set1_ps(id);
    let q: [__m256i; 4] =
        std::array::from_fn(|k| unsafe { round_away(_mm256_loadu_ps(x.add(8 * k)), idv) });
    unsafe { pack_i8(q, dst) };
    let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s)))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_q8_0(x: &[f32], dst: &mut [u8]) {
    for (xb, yb) in x.chunks_exact(32).zip(dst.chunks_exact_mut(34)) {
        let amax = unsafe { abs_max(xb.as_ptr(), 4) };
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !id.is_finite() || !amax.is_finite() {
            let mut blk = BlockQ8_0::zeroed();
            formats::quantize_row_q8_0(xb, std::slice::from_mut(&mut blk));
            yb.copy_from_slice(bytemuck::bytes_of(&blk));
            continue;
        }
        yb[..2].copy_from_slice(&unsafe { f16_bits(d) });
        unsafe { q8_32(xb.as_ptr(), id, yb.as_mut_ptr().add(2)) };
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_q8_1(x: &[f32], dst: &mut [u8]) {
    for (xb, yb) in x.chunks_exact(32).zip(dst.chunks_exact_mut(36)) {
        let amax = unsafe { abs_max(xb.as_ptr(), 4) };
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !id.is_finite() || !amax.is_finite() {
            let mut blk = BlockQ8_1::zeroed();
            formats::quantize_row_q8_1(xb, std::slice::from_mut(&mut blk));
            yb.copy_from_slice(bytemuck::bytes_of(&blk));
            continue;
        }
        let sum = unsafe { q8_32(xb.as_ptr(), id, yb.as_mut_ptr().add(4)) };
        yb[..2].copy_from_slice(&unsafe { f16_bits(d) });
        yb[2..4].copy_from_slice(&unsafe { f16_bits(sum as f32 * d) });
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_q8_k(x: &[f32], dst: &mut [u8]) {
    for (xb, yb) in x.chunks_exact(QK_K).zip(dst.chunks_exact_mut(292)) {
        let p = xb.as_ptr();
        let (mut vmax, mut vmin) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for k in 0..QK_K / 8 {
            let v = unsafe { _mm256_loadu_ps(p.add(8 * k)) };
            vmax = _mm256_max_ps(v, vmax);
            vmin = _mm256_min_ps(v, vmin);
        }
        let hi = unsafe { lanes_max(vmax) };
        let lo = -unsafe { lanes_max(_mm256_sub_ps(_mm256_setzero_ps(), vmin)) };
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
        let isv = _mm256_set1_ps(iscale);
        let mut sums = [_mm256_setzero_si256(); 16];
        for c in 0..QK_K / 32 {
            let q: [__m256i; 4] = std::array::from_fn(|k| {
                let v = unsafe { _mm256_loadu_ps(p.add(32 * c + 8 * k)) };
                let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm256_mul_ps(v, isv),
                );
                _mm256_cvttps_epi32(_mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r)))
            });
            unsafe { pack_i8(q, yb.as_mut_ptr().add(4 + 32 * c)) };
            sums[2 * c] = _mm256_add_epi32(q[0], q[1]);
            sums[2 * c + 1] = _mm256_add_epi32(q[2], q[3]);
        }
        // Sixteen 8-lane partial sums to sixteen totals, four at a time.
        for g in 0..4 {
            let s = &sums[4 * g..4 * g + 4];
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
            let t = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
            let t16 = _mm_packs_epi32(t, t);
            let off = 260 + 8 * g;
            unsafe { _mm_storel_epi64(yb.as_mut_ptr().add(off) as *mut __m128i, t16) };
        }
        yb[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// Largest lane (NaN lanes ignored).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lanes_max(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

//! Q4_K × Q8_K (AVX2). Scalar reference: `formats/q4_k.rs`.

use super::{f16_to_f32, hsum128_ps, hsum_ps, load128, load256, rd_f32, rd_u16};
use crate::simd_common::unpack_q4k_scales;
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const W_BLOCK: usize = 144;
pub(super) const A_BLOCK: usize = 292;
/// Offset of `bsums` in a Q8_K block.
pub(super) const A_BSUMS: usize = 260;

row_kernel!(Q4K => dot);

/// `vpshufb` controls broadcasting i16 element `k` (0..8) to all 16 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn broadcast_i16(v: __m256i, k: usize) -> __m256i {
    let lo = (2 * k) as i16;
    _mm256_shuffle_epi8(v, _mm256_set1_epi16(lo | ((lo + 1) << 8)))
}

/// Q8_K block-sum pairs `bsums[2j] + bsums[2j + 1]` (j in 0..8) as 8 i16: the sums the
/// 32-element sub-block minimums multiply.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn bsum_pairs(act_block: *const u8) -> __m128i {
    let p = unsafe { act_block.add(A_BSUMS) };
    unsafe { _mm_hadd_epi16(load128(p), load128(p.add(16))) }
}

/// Per super-block: `d d_y sum_j(sc_j sum(q y)) - dmin d_y sum_j(m_j bsum_j)` with both sums
/// exact in i32 (|sc_j * maddubs pair| <= 63 * 3810 per lane).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    let mut acc_m = [[_mm_setzero_ps(); NA]; NW];
    let low4 = _mm256_set1_epi8(0x0f);
    for b in 0..cols / 256 {
        let mut ya = [std::ptr::null::<u8>(); NA];
        let mut dy = [0.0f32; NA];
        let mut ysums = [_mm_setzero_si128(); NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * A_BLOCK) };
            dy[j] = unsafe { rd_f32(p) };
            ysums[j] = unsafe { bsum_pairs(p) };
            ya[j] = unsafe { p.add(4) };
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * W_BLOCK) };
            let d = unsafe { f16_to_f32(rd_u16(p)) };
            let dmin = unsafe { f16_to_f32(rd_u16(p.add(2))) };
            let (sc, m) = unsafe { unpack_q4k_scales(p.add(4)) };
            let mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m as i64));
            let scales =
                _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
            let qs = unsafe { p.add(16) };
            let mut sumi = [_mm256_setzero_si256(); NA];
            for c in 0..4 {
                let q = unsafe { load256(qs.add(32 * c)) };
                let lo = _mm256_and_si256(q, low4);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), low4);
                let sc_lo = unsafe { broadcast_i16(scales, 2 * c) };
                let sc_hi = unsafe { broadcast_i16(scales, 2 * c + 1) };
                for j in 0..NA {
                    let y0 = unsafe { load256(ya[j].add(64 * c)) };
                    let y1 = unsafe { load256(ya[j].add(64 * c + 32)) };
                    let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), sc_lo);
                    let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), sc_hi);
                    sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(p0, p1));
                }
            }
            for j in 0..NA {
                let s = _mm256_cvtepi32_ps(sumi[j]);
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy[j]), s, acc[i][j]);
                let mm = _mm_cvtepi32_ps(_mm_madd_epi16(mins, ysums[j]));
                acc_m[i][j] = _mm_fmadd_ps(_mm_set1_ps(dmin * dy[j]), mm, acc_m[i][j]);
            }
        }
    }
    let mut out = [[0.0f32; NA]; NW];
    for i in 0..NW {
        for j in 0..NA {
            out[i][j] = unsafe { hsum_ps(acc[i][j]) - hsum128_ps(acc_m[i][j]) };
        }
    }
    out
}

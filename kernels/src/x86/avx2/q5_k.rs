//! Q5_K × Q8_K (AVX2). Scalar reference: `formats/q5_k.rs`.

use super::q4_k::{broadcast_i16, bsum_pairs, A_BLOCK};
use super::{f16_to_f32, hsum128_ps, hsum_ps, load256, rd_f32, rd_u16};
use crate::simd_common::unpack_q4k_scales;
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const W_BLOCK: usize = 176;

row_kernel!(Q5K => dot);

/// As Q4_K, with bit 4 of each value from `qh` (bit `2c` for the low nibbles of chunk `c`,
/// `2c + 1` for the high ones). Lanes stay exact: 63 * 2 * 31 * 127 < 2^31.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    let mut acc_m = [[_mm_setzero_ps(); NA]; NW];
    let low4 = _mm256_set1_epi8(0x0f);
    let bit4 = _mm256_set1_epi8(0x10);
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
            let qh = unsafe { load256(p.add(16)) };
            let qs = unsafe { p.add(48) };
            let mut sumi = [_mm256_setzero_si256(); NA];
            for c in 0..4 {
                let q = unsafe { load256(qs.add(32 * c)) };
                // Bit 2c (resp. 2c + 1) of each qh byte, moved to bit 4.
                let h_lo = _mm256_and_si256(
                    _mm256_sll_epi16(
                        _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c as i32)),
                        _mm_cvtsi32_si128(4),
                    ),
                    bit4,
                );
                let h_hi = _mm256_and_si256(
                    _mm256_sll_epi16(
                        _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c as i32 + 1)),
                        _mm_cvtsi32_si128(4),
                    ),
                    bit4,
                );
                let lo = _mm256_or_si256(_mm256_and_si256(q, low4), h_lo);
                let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(q), low4), h_hi);
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

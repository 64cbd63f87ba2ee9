//! Q6_K × Q8_K (AVX2). Scalar reference: `formats/q6_k.rs`.

use super::q4_k::{A_BLOCK, A_BSUMS};
use super::{f16_to_f32, hsum_tile, load128, load256, rd_f32, rd_u16};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const W_BLOCK: usize = 210;

row_kernel!(Q6K => dot);

/// Values are dotted unsigned (0..64) and the zero point comes off once per super-block as
/// `32 * sum_g(scale_g * bsum_g)`, so the i32 result equals the reference's
/// `sum_g scale_g * sum((q - 32) y)`. Lanes: 2 * 63 * 128 * 128 * 8 < 2^31.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    let low4 = _mm256_set1_epi8(0x0f);
    let m03 = _mm256_set1_epi8(0x03);
    let m0c = _mm256_set1_epi8(0x0c);
    let m30 = _mm256_set1_epi8(0x30);
    let mc0 = _mm256_set1_epi8(0xc0u8 as i8);
    for b in 0..cols / 256 {
        let mut ya = [std::ptr::null::<u8>(); NA];
        let mut dy = [0.0f32; NA];
        let mut bsums = [_mm256_setzero_si256(); NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * A_BLOCK) };
            dy[j] = unsafe { rd_f32(p) };
            bsums[j] = unsafe { load256(p.add(A_BSUMS)) };
            ya[j] = unsafe { p.add(4) };
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * W_BLOCK) };
            let d = unsafe { f16_to_f32(rd_u16(p.add(208))) };
            let sc8 = unsafe { load128(p.add(192)) };
            let sc16 = _mm256_cvtepi8_epi16(sc8);
            let mut sumi = [_mm256_setzero_si256(); NA];
            for j in 0..NA {
                let zero_point = _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bsums[j]));
                sumi[j] = _mm256_sub_epi32(sumi[j], zero_point);
            }
            for h in 0..2 {
                let ql0 = unsafe { load256(p.add(64 * h)) };
                let ql1 = unsafe { load256(p.add(64 * h + 32)) };
                let qh = unsafe { load256(p.add(128 + 32 * h)) };
                let q = [
                    _mm256_or_si256(
                        _mm256_and_si256(ql0, low4),
                        _mm256_slli_epi16::<4>(_mm256_and_si256(qh, m03)),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(ql1, low4),
                        _mm256_slli_epi16::<2>(_mm256_and_si256(qh, m0c)),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), low4),
                        _mm256_and_si256(qh, m30),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), low4),
                        _mm256_srli_epi16::<2>(_mm256_and_si256(qh, mc0)),
                    ),
                ];
                for (k, &qk) in q.iter().enumerate() {
                    // Sub-blocks 8h + 2k and 8h + 2k + 1: their scales in the low / high 8 lanes.
                    let g = (8 * h + 2 * k) as i8;
                    let pick = _mm_set_epi8(
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g,
                        g,
                        g,
                        g,
                        g,
                        g,
                        g,
                        g,
                    );
                    let sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pick));
                    for j in 0..NA {
                        let y = unsafe { load256(ya[j].add(128 * h + 32 * k)) };
                        let s = _mm256_madd_epi16(_mm256_maddubs_epi16(qk, y), sc);
                        sumi[j] = _mm256_add_epi32(sumi[j], s);
                    }
                }
            }
            for j in 0..NA {
                let s = _mm256_cvtepi32_ps(sumi[j]);
                acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy[j]), s, acc[i][j]);
            }
        }
    }
    unsafe { hsum_tile(&acc) }
}

//! Q4_0 × Q8_0 (AVX2). Scalar reference: `formats/q4_0.rs`.

use super::{f16_bcast, hsum_tile, load256, nibbles32};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const W_BLOCK: usize = 18;
const A_BLOCK: usize = 34;

row_kernel!(Q4_0 => dot);

/// Per block: `vpmaddubsw(q, y) - vpmaddubsw(8, y)` is the exact i16 pair sum of `(q - 8) * y`
/// (|.| <= 5872); the `8 * y` term depends on the activation only, so it is computed once per
/// block and shared by all `NW` weight rows.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    let eight = _mm256_set1_epi8(8);
    let ones = _mm256_set1_epi16(1);
    for b in 0..cols / 32 {
        let mut y = [_mm256_setzero_si256(); NA];
        let mut y8 = [_mm256_setzero_si256(); NA];
        let mut dy = [_mm256_setzero_ps(); NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * A_BLOCK) };
            dy[j] = unsafe { f16_bcast(p) };
            y[j] = unsafe { load256(p.add(2)) };
            y8[j] = _mm256_maddubs_epi16(eight, y[j]);
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * W_BLOCK) };
            let dw = unsafe { f16_bcast(p) };
            let q = unsafe { nibbles32(p.add(2)) };
            for j in 0..NA {
                let s16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y[j]), y8[j]);
                let s = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones));
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(s, dw), dy[j], acc[i][j]);
            }
        }
    }
    unsafe { hsum_tile(&acc) }
}

//! Q5_0 × Q8_0 (AVX2). Scalar reference: `formats/q5_0.rs`.

use super::{bytes_from_bits32, f16_bcast, hsum_tile, load256, nibbles32, rd_u32};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const W_BLOCK: usize = 22;
const A_BLOCK: usize = 34;

row_kernel!(Q5_0 => dot);

/// The 5-bit values are dotted unsigned (`vpmaddubsw(q, y)`, |pair| <= 7874) and the zero
/// point comes off as `vpmaddubsw(16, y)`, computed once per activation block for all rows:
/// the i16 difference is the exact pair sum of `(q - 16) y`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    let bit4 = _mm256_set1_epi8(0x10);
    let ones = _mm256_set1_epi16(1);
    for b in 0..cols / 32 {
        let mut y = [_mm256_setzero_si256(); NA];
        let mut y16 = [_mm256_setzero_si256(); NA];
        let mut dy = [_mm256_setzero_ps(); NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * A_BLOCK) };
            dy[j] = unsafe { f16_bcast(p) };
            y[j] = unsafe { load256(p.add(2)) };
            y16[j] = _mm256_maddubs_epi16(bit4, y[j]);
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * W_BLOCK) };
            let dw = unsafe { f16_bcast(p) };
            let hi = _mm256_and_si256(unsafe { bytes_from_bits32(rd_u32(p.add(2))) }, bit4);
            let q = _mm256_or_si256(unsafe { nibbles32(p.add(6)) }, hi);
            for j in 0..NA {
                let s16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y[j]), y16[j]);
                let s = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones));
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(s, dw), dy[j], acc[i][j]);
            }
        }
    }
    unsafe { hsum_tile(&acc) }
}

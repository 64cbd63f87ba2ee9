//! Q5_0 × Q8_0 (AVX2). Scalar reference: `formats/q5_0.rs`.

use super::rd_u32;
use super::{bytes_from_bits32, dot_i8_lanes, f16_bcast, hsum_tile, load256, nibbles32};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const W_BLOCK: usize = 22;
const A_BLOCK: usize = 34;

row_kernel!(Q5_0 => dot);

/// The signed value `q - 16` is the nibble when the high bit is set and `nibble - 16`
/// (= `nibble | 0xf0` as i8) when it is clear, so one OR builds the i8 weights.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    let f0 = _mm256_set1_epi8(0xf0u8 as i8);
    for b in 0..cols / 32 {
        let mut y = [_mm256_setzero_si256(); NA];
        let mut dy = [_mm256_setzero_ps(); NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * A_BLOCK) };
            dy[j] = unsafe { f16_bcast(p) };
            y[j] = unsafe { load256(p.add(2)) };
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * W_BLOCK) };
            let dw = unsafe { f16_bcast(p) };
            let hi = unsafe { bytes_from_bits32(rd_u32(p.add(2))) };
            let x = _mm256_or_si256(unsafe { nibbles32(p.add(6)) }, _mm256_andnot_si256(hi, f0));
            for j in 0..NA {
                let s = _mm256_cvtepi32_ps(unsafe { dot_i8_lanes(x, y[j]) });
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(s, dw), dy[j], acc[i][j]);
            }
        }
    }
    unsafe { hsum_tile(&acc) }
}

//! Q8_0 × Q8_0 (AVX2). Scalar reference: `formats/q8_0.rs`.

use super::{dot_i8_lanes, f16_bcast, hsum_tile, load256};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const BLOCK: usize = 34;

row_kernel!(Q8_0 => dot);

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    for b in 0..cols / 32 {
        let mut y = [_mm256_setzero_si256(); NA];
        let mut dy = [_mm256_setzero_ps(); NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * BLOCK) };
            dy[j] = unsafe { f16_bcast(p) };
            y[j] = unsafe { load256(p.add(2)) };
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * BLOCK) };
            let dw = unsafe { f16_bcast(p) };
            let x = unsafe { load256(p.add(2)) };
            for j in 0..NA {
                let s = _mm256_cvtepi32_ps(unsafe { dot_i8_lanes(x, y[j]) });
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(s, dw), dy[j], acc[i][j]);
            }
        }
    }
    unsafe { hsum_tile(&acc) }
}

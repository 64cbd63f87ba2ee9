//! Q4_0 × Q8_0 (AVX-512 VNNI). Scalar reference: `formats/q4_0.rs`.

use super::neg_offset_sum;
use crate::x86::avx2::{f16_bcast, hsum_tile, load256, nibbles32};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const W_BLOCK: usize = 18;
const A_BLOCK: usize = 34;

row_kernel!(Q4_0 => dot);

/// Per block `vpdpbusd(-8 sum(y), q, y)` = the exact `sum((q - 8) y)`; the start value depends
/// on the activation only and is shared by the `NW` rows.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    for b in 0..cols / 32 {
        let mut y = [_mm256_setzero_si256(); NA];
        let mut y0 = [_mm256_setzero_si256(); NA];
        let mut dy = [_mm256_setzero_ps(); NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * A_BLOCK) };
            dy[j] = unsafe { f16_bcast(p) };
            y[j] = unsafe { load256(p.add(2)) };
            y0[j] = unsafe { neg_offset_sum(8, y[j]) };
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * W_BLOCK) };
            let dw = unsafe { f16_bcast(p) };
            let q = unsafe { nibbles32(p.add(2)) };
            for j in 0..NA {
                let s = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(y0[j], q, y[j]));
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(s, dw), dy[j], acc[i][j]);
            }
        }
    }
    unsafe { hsum_tile(&acc) }
}

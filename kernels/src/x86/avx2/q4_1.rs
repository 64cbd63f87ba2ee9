//! Q4_1 × Q8_1 (AVX2). Scalar reference: `formats/q4_1.rs`.

use super::{f16_at, f16_bcast, hsum_tile, load256, nibbles32};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const W_BLOCK: usize = 20;
const A_BLOCK: usize = 36;

row_kernel!(Q4_1 => dot);

/// Per block `d_x d_y sum(q y) + m_x s_y`: the integer part in vector lanes, the minimum term
/// in a scalar accumulator per output.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    let mut acc_m = [[0.0f32; NA]; NW];
    let ones = _mm256_set1_epi16(1);
    for b in 0..cols / 32 {
        let mut y = [_mm256_setzero_si256(); NA];
        let mut dy = [_mm256_setzero_ps(); NA];
        let mut sy = [0.0f32; NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * A_BLOCK) };
            dy[j] = unsafe { f16_bcast(p) };
            sy[j] = unsafe { f16_at(p.add(2)) };
            y[j] = unsafe { load256(p.add(4)) };
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * W_BLOCK) };
            let dw = unsafe { f16_bcast(p) };
            let mw = unsafe { f16_at(p.add(2)) };
            let q = unsafe { nibbles32(p.add(4)) };
            for j in 0..NA {
                let s = _mm256_madd_epi16(_mm256_maddubs_epi16(q, y[j]), ones);
                let s = _mm256_cvtepi32_ps(s);
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(s, dw), dy[j], acc[i][j]);
                acc_m[i][j] += mw * sy[j];
            }
        }
    }
    let mut out = unsafe { hsum_tile(&acc) };
    for i in 0..NW {
        for j in 0..NA {
            out[i][j] += acc_m[i][j];
        }
    }
    out
}

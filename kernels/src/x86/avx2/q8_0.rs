//! Q8_0 × Q8_0 (AVX2). Scalar reference: `formats/q8_0.rs`.

use super::{dot_i8_lanes, f16_to_f32, gather_f16x8, hsum_tile, load256, rd_u16};
use crate::rows::row_kernel;
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
    let nb = cols / 32;
    let mut b = 0;
    while b + 8 <= nb {
        let mut dy = [_mm256_setzero_ps(); NA];
        for j in 0..NA {
            dy[j] = unsafe { gather_f16x8::<BLOCK>(a[j].add(b * BLOCK)) };
        }
        for i in 0..NW {
            let dw = unsafe { gather_f16x8::<BLOCK>(w[i].add(b * BLOCK)) };
            let mut d = [_mm256_setzero_ps(); NA];
            for j in 0..NA {
                d[j] = _mm256_mul_ps(dw, dy[j]);
            }
            for k in 0..8 {
                let x = unsafe { load256(w[i].add((b + k) * BLOCK + 2)) };
                let pick = _mm256_set1_epi32(k as i32);
                for j in 0..NA {
                    let y = unsafe { load256(a[j].add((b + k) * BLOCK + 2)) };
                    let s = _mm256_cvtepi32_ps(unsafe { dot_i8_lanes(x, y) });
                    let dk = _mm256_permutevar8x32_ps(d[j], pick);
                    acc[i][j] = _mm256_fmadd_ps(s, dk, acc[i][j]);
                }
            }
        }
        b += 8;
    }
    while b < nb {
        let mut y = [_mm256_setzero_si256(); NA];
        let mut dy = [0.0f32; NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * BLOCK) };
            dy[j] = unsafe { f16_to_f32(rd_u16(p)) };
            y[j] = unsafe { load256(p.add(2)) };
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * BLOCK) };
            let dw = unsafe { f16_to_f32(rd_u16(p)) };
            let x = unsafe { load256(p.add(2)) };
            for j in 0..NA {
                let s = _mm256_cvtepi32_ps(unsafe { dot_i8_lanes(x, y[j]) });
                acc[i][j] = _mm256_fmadd_ps(s, _mm256_set1_ps(dw * dy[j]), acc[i][j]);
            }
        }
        b += 1;
    }
    unsafe { hsum_tile(&acc) }
}

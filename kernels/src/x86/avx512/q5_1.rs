//! Q5_1 × Q8_1 (AVX-512 VNNI). Scalar reference: `formats/q5_1.rs`.

use crate::x86::avx2::{f16_at, f16_bcast, hsum_tile, load256, nibbles32, rd_u32};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const W_BLOCK: usize = 24;
const A_BLOCK: usize = 36;

row_kernel!(Q5_1 => dot);

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    let mut acc_m = [[0.0f32; NA]; NW];
    let bit4 = _mm256_set1_epi8(0x10);
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
            let lo = unsafe { nibbles32(p.add(8)) };
            // Bit 4 from the mask register of the 32 high bits.
            let q = _mm256_mask_add_epi8(lo, unsafe { rd_u32(p.add(4)) }, lo, bit4);
            for j in 0..NA {
                let s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, y[j]);
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

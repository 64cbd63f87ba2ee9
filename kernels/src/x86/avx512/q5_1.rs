//! Q5_1 × Q8_1 (AVX-512 VNNI). Scalar reference: `formats/q5_1.rs`.

use super::decode::{
    act_low, act_pair, f16_low, f16_pair, hsum_rows, nibbles_pair, prefetch_rows, DecodeRows,
};
use crate::formats::{BlockQ5_1, BlockQ8_1};
use crate::x86::avx2::{f16_at, f16_bcast, hsum_tile, load256, nibbles32, rd_u32};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const W_BLOCK: usize = size_of::<BlockQ5_1>();
const A_BLOCK: usize = size_of::<BlockQ8_1>();

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

/// Decode: two blocks per 512-bit step (see `decode.rs`), high bits from a mask register, minimum terms as Q4_1.
pub(crate) struct Q5_1Rows;

impl DecodeRows for Q5_1Rows {
    #[inline]
    unsafe fn rows<const R: usize>(
        cols: usize,
        w: *const u8,
        row_bytes: usize,
        a: *const u8,
    ) -> [f32; R] {
        unsafe { rows::<R>(cols, w, row_bytes, a) }
    }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn rows<const R: usize>(cols: usize, w: *const u8, rb: usize, a: *const u8) -> [f32; R] {
    let nb = cols / 32;
    let mut next_pf = 0;
    let mut acc = [_mm512_setzero_ps(); R];
    let bit4 = _mm512_set1_epi8(0x10);
    let mut b = 0;
    while b + 2 <= nb {
        let pa = unsafe { a.add(b * A_BLOCK) };
        let y = unsafe { act_pair(pa, 4, A_BLOCK) };
        let dy = unsafe { f16_pair(pa, pa.add(A_BLOCK)) };
        let sy = unsafe { f16_pair(pa.add(2), pa.add(A_BLOCK + 2)) };
        prefetch_rows::<R>(w, rb, &mut next_pf, (b + 2) * W_BLOCK);
        for (i, acc) in acc.iter_mut().enumerate() {
            let p = unsafe { w.add(i * rb + b * W_BLOCK) };
            let lo = unsafe { nibbles_pair(p.add(8), p.add(W_BLOCK + 8)) };
            let hb = unsafe { rd_u32(p.add(4)) as u64 | (rd_u32(p.add(W_BLOCK + 4)) as u64) << 32 };
            let q = _mm512_mask_add_epi8(lo, hb, lo, bit4);
            let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y));
            let d = _mm512_mul_ps(unsafe { f16_pair(p, p.add(W_BLOCK)) }, dy);
            let m = unsafe { f16_pair(p.add(2), p.add(W_BLOCK + 2)) };
            *acc = _mm512_mask3_fmadd_ps(m, sy, _mm512_fmadd_ps(s, d, *acc), 0x0101);
        }
        b += 2;
    }
    if b < nb {
        // The odd last block in the low half; the high half's activations are zero.
        let pa = unsafe { a.add(b * A_BLOCK) };
        let y = unsafe { act_low(pa, 4) };
        let dy = unsafe { f16_low(pa) };
        let sy = unsafe { f16_low(pa.add(2)) };
        for (i, acc) in acc.iter_mut().enumerate() {
            let p = unsafe { w.add(i * rb + b * W_BLOCK) };
            let lo = unsafe { nibbles_pair(p.add(8), p.add(8)) };
            let q = _mm512_mask_add_epi8(lo, unsafe { rd_u32(p.add(4)) } as u64, lo, bit4);
            let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y));
            let d = _mm512_mul_ps(unsafe { f16_pair(p, p) }, dy);
            let m = unsafe { f16_pair(p.add(2), p.add(2)) };
            *acc = _mm512_mask3_fmadd_ps(m, sy, _mm512_fmadd_ps(s, d, *acc), 0x0101);
        }
    }
    unsafe { hsum_rows(&acc) }
}

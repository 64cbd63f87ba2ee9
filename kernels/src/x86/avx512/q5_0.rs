//! Q5_0 × Q8_0 (AVX-512 VNNI). Scalar reference: `formats/q5_0.rs`.

use super::decode::{
    act_low, act_pair, f16_low, f16_pair, hsum_rows, neg_offset_sum512, nibbles_pair,
    prefetch_rows, DecodeRows,
};
use super::neg_offset_sum;
use crate::formats::{BlockQ5_0, BlockQ8_0};
use crate::x86::avx2::{f16_bcast, hsum_tile, load256, nibbles32, rd_u32};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const W_BLOCK: usize = size_of::<BlockQ5_0>();
const A_BLOCK: usize = size_of::<BlockQ8_0>();

row_kernel!(Q5_0 => dot);

/// The 32 high bits are a mask register: one masked add sets bit 4 of the selected bytes.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    let bit4 = _mm256_set1_epi8(0x10);
    for b in 0..cols / 32 {
        let mut y = [_mm256_setzero_si256(); NA];
        let mut y0 = [_mm256_setzero_si256(); NA];
        let mut dy = [_mm256_setzero_ps(); NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * A_BLOCK) };
            dy[j] = unsafe { f16_bcast(p) };
            y[j] = unsafe { load256(p.add(2)) };
            y0[j] = unsafe { neg_offset_sum(16, y[j]) };
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * W_BLOCK) };
            let dw = unsafe { f16_bcast(p) };
            let lo = unsafe { nibbles32(p.add(6)) };
            let q = _mm256_mask_add_epi8(lo, unsafe { rd_u32(p.add(2)) }, lo, bit4);
            for j in 0..NA {
                let s = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(y0[j], q, y[j]));
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(s, dw), dy[j], acc[i][j]);
            }
        }
    }
    unsafe { hsum_tile(&acc) }
}

/// Decode: two blocks per 512-bit step (see `decode.rs`); the two blocks' 64 high bits are one mask register.
pub(crate) struct Q5_0Rows;

impl DecodeRows for Q5_0Rows {
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
        let y = unsafe { act_pair(pa, 2, A_BLOCK) };
        let y0 = unsafe { neg_offset_sum512(16, y) };
        let dy = unsafe { f16_pair(pa, pa.add(A_BLOCK)) };
        prefetch_rows::<R>(w, rb, &mut next_pf, (b + 2) * W_BLOCK);
        for (i, acc) in acc.iter_mut().enumerate() {
            let p = unsafe { w.add(i * rb + b * W_BLOCK) };
            let lo = unsafe { nibbles_pair(p.add(6), p.add(W_BLOCK + 6)) };
            let hb = unsafe { rd_u32(p.add(2)) as u64 | (rd_u32(p.add(W_BLOCK + 2)) as u64) << 32 };
            let q = _mm512_mask_add_epi8(lo, hb, lo, bit4);
            let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(y0, q, y));
            let d = _mm512_mul_ps(unsafe { f16_pair(p, p.add(W_BLOCK)) }, dy);
            *acc = _mm512_fmadd_ps(s, d, *acc);
        }
        b += 2;
    }
    if b < nb {
        // The odd last block in the low half; the high half's activations are zero.
        let pa = unsafe { a.add(b * A_BLOCK) };
        let y = unsafe { act_low(pa, 2) };
        let y0 = unsafe { neg_offset_sum512(16, y) };
        let dy = unsafe { f16_low(pa) };
        for (i, acc) in acc.iter_mut().enumerate() {
            let p = unsafe { w.add(i * rb + b * W_BLOCK) };
            let lo = unsafe { nibbles_pair(p.add(6), p.add(6)) };
            let q = _mm512_mask_add_epi8(lo, unsafe { rd_u32(p.add(2)) } as u64, lo, bit4);
            let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(y0, q, y));
            let d = _mm512_mul_ps(unsafe { f16_pair(p, p) }, dy);
            *acc = _mm512_fmadd_ps(s, d, *acc);
        }
    }
    unsafe { hsum_rows(&acc) }
}

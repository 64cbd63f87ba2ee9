//! Q4_1 × Q8_1 decode (AVX-512 VNNI); prefill uses the AVX2 row kernel. Scalar reference:
//! `formats/q4_1.rs`.

use super::decode::{
    act_low, act_pair, f16_low, f16_pair, hsum_rows, nibbles_pair, prefetch_rows, DecodeRows,
};
use crate::formats::{BlockQ4_1, BlockQ8_1};
use std::arch::x86_64::*;

const W_BLOCK: usize = size_of::<BlockQ4_1>();
const A_BLOCK: usize = size_of::<BlockQ8_1>();

/// Decode: two blocks per 512-bit step (see `decode.rs`); the minimum term `m_x s_y` of each block goes into the first lane of its half.
pub(crate) struct Q4_1Rows;

impl DecodeRows for Q4_1Rows {
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
    let mut b = 0;
    while b + 2 <= nb {
        let pa = unsafe { a.add(b * A_BLOCK) };
        let y = unsafe { act_pair(pa, 4, A_BLOCK) };
        let dy = unsafe { f16_pair(pa, pa.add(A_BLOCK)) };
        let sy = unsafe { f16_pair(pa.add(2), pa.add(A_BLOCK + 2)) };
        prefetch_rows::<R>(w, rb, &mut next_pf, (b + 2) * W_BLOCK);
        for (i, acc) in acc.iter_mut().enumerate() {
            let p = unsafe { w.add(i * rb + b * W_BLOCK) };
            let q = unsafe { nibbles_pair(p.add(4), p.add(W_BLOCK + 4)) };
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
            let q = unsafe { nibbles_pair(p.add(4), p.add(4)) };
            let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y));
            let d = _mm512_mul_ps(unsafe { f16_pair(p, p) }, dy);
            let m = unsafe { f16_pair(p.add(2), p.add(2)) };
            *acc = _mm512_mask3_fmadd_ps(m, sy, _mm512_fmadd_ps(s, d, *acc), 0x0101);
        }
    }
    unsafe { hsum_rows(&acc) }
}

//! Q8_0 × Q8_0 (AVX-512 VNNI). Scalar reference: `formats/q8_0.rs`.

use super::decode::{f16_low, f16_pair, hsum_rows, load2x256, prefetch_rows, DecodeRows};
use super::neg_offset_sum;
use crate::formats::BlockQ8_0;
use crate::x86::avx2::{f16_bcast, hsum_tile, load256};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

const BLOCK: usize = size_of::<BlockQ8_0>();

row_kernel!(Q8_0 => dot);

/// Signed weights made unsigned by flipping the top bit (`x + 128`), with `-128 sum(y)` as the
/// start value: `vpdpbusd` then gives the exact `sum(x y)` for every i8 input.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot<const NW: usize, const NA: usize>(
    cols: usize,
    w: [*const u8; NW],
    a: [*const u8; NA],
) -> [[f32; NA]; NW] {
    let mut acc = [[_mm256_setzero_ps(); NA]; NW];
    let flip = _mm256_set1_epi8(0x80u8 as i8);
    for b in 0..cols / 32 {
        let mut y = [_mm256_setzero_si256(); NA];
        let mut y0 = [_mm256_setzero_si256(); NA];
        let mut dy = [_mm256_setzero_ps(); NA];
        for j in 0..NA {
            let p = unsafe { a[j].add(b * BLOCK) };
            dy[j] = unsafe { f16_bcast(p) };
            y[j] = unsafe { load256(p.add(2)) };
            y0[j] = unsafe { neg_offset_sum(0x80, y[j]) };
        }
        for i in 0..NW {
            let p = unsafe { w[i].add(b * BLOCK) };
            let dw = unsafe { f16_bcast(p) };
            let x = _mm256_xor_si256(unsafe { load256(p.add(2)) }, flip);
            for j in 0..NA {
                let s = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(y0[j], x, y[j]));
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(s, dw), dy[j], acc[i][j]);
            }
        }
    }
    unsafe { hsum_tile(&acc) }
}

/// Decode: two blocks per 512-bit step (see `decode.rs`), with the same `x + 128` /
/// `-128 sum(y)` trick as [`dot`].
pub(crate) struct Q8_0Rows;

impl DecodeRows for Q8_0Rows {
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
    let flip = _mm512_set1_epi8(0x80u8 as i8);
    let mut acc = [_mm512_setzero_ps(); R];
    let mut b = 0;
    while b + 2 <= nb {
        let pa = unsafe { a.add(b * BLOCK) };
        let y = unsafe { load2x256(pa.add(2), pa.add(BLOCK + 2)) };
        let y0 = _mm512_sub_epi32(
            _mm512_setzero_si512(),
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, y),
        );
        let dy = unsafe { f16_pair(pa, pa.add(BLOCK)) };
        prefetch_rows::<R>(w, rb, &mut next_pf, (b + 2) * BLOCK);
        for (i, acc) in acc.iter_mut().enumerate() {
            let p = unsafe { w.add(i * rb + b * BLOCK) };
            let x = _mm512_xor_si512(unsafe { load2x256(p.add(2), p.add(BLOCK + 2)) }, flip);
            let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(y0, x, y));
            let d = _mm512_mul_ps(unsafe { f16_pair(p, p.add(BLOCK)) }, dy);
            *acc = _mm512_fmadd_ps(s, d, *acc);
        }
        b += 2;
    }
    if b < nb {
        // The odd last block in the low half; the high half's activations are zero.
        let pa = unsafe { a.add(b * BLOCK) };
        let y = _mm512_zextsi256_si512(unsafe { load256(pa.add(2)) });
        let y0 = _mm512_sub_epi32(
            _mm512_setzero_si512(),
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, y),
        );
        let dy = unsafe { f16_low(pa) };
        for (i, acc) in acc.iter_mut().enumerate() {
            let p = unsafe { w.add(i * rb + b * BLOCK) };
            let x = _mm512_xor_si512(_mm512_zextsi256_si512(unsafe { load256(p.add(2)) }), flip);
            let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(y0, x, y));
            let d = _mm512_mul_ps(unsafe { f16_pair(p, p) }, dy);
            *acc = _mm512_fmadd_ps(s, d, *acc);
        }
    }
    unsafe { hsum_rows(&acc) }
}

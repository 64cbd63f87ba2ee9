//! Q4_K, Q5_K, Q6_K × Q8_K decode (AVX-512 VNNI); prefill uses the AVX2 row kernels. Scalar
//! references: `formats/q{4,5,6}_k.rs`.
//!
//! Per 256-element super-block the weights are expanded into four 64-byte vectors (two
//! sub-blocks each), dotted with `vpdpbusd`, and scaled per sub-block in i32 with `vpmulld`
//! (one multiply per 64 values; the scales are 6 or 8 bits, every lane stays far inside i32),
//! so the super-block costs one conversion and one f32 multiply-add. Minimums (Q4_K, Q5_K) and
//! the zero point (Q6_K) come off through the activation block sums, as in the AVX2 kernels.

use super::decode::{hsum512, hsum_rows, load2x256, prefetch_rows, DecodeRows};
use crate::formats::{BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_K};
use crate::simd_common::{unpack_q4k_scales, F16_TO_F32};
use crate::x86::avx2::{hsum128_ps, rd_f32, rd_u16};
use std::arch::x86_64::*;
use std::mem::offset_of;

const A_BLOCK: usize = size_of::<BlockQ8_K>();
const A_BSUMS: usize = offset_of!(BlockQ8_K, bsums);

/// The f16 at `p` as f32, through the table.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    F16_TO_F32[unsafe { rd_u16(p) } as usize]
}

/// 16 i32 lanes: sub-block scale `a` in lanes 0-7, `b` in 8-15, from the 8 scales in `sc32`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pick2(sc32: __m512i, a: i32, b: i32) -> __m512i {
    let idx = _mm512_set_epi32(b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a);
    _mm512_permutexvar_epi32(idx, sc32)
}

/// The Q4_K / Q5_K part shared by both: `d`, `dmin`, the unpacked scales as i32 lanes and the
/// minimum term's i32 sums for super-block `p` against activation block `pa`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn k45_head(p: *const u8, pa: *const u8) -> (f32, f32, __m512i, __m128i) {
    let d = unsafe { f16_at(p) };
    let dmin = unsafe { f16_at(p.add(2)) };
    let (sc, m) = unsafe { unpack_q4k_scales(p.add(4)) };
    let sc32 = _mm512_cvtepu8_epi32(_mm_cvtsi64_si128(sc as i64));
    let mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m as i64));
    let bs = unsafe { pa.add(A_BSUMS) };
    let pairs = unsafe {
        _mm_hadd_epi16(
            _mm_loadu_si128(bs as *const __m128i),
            _mm_loadu_si128(bs.add(16) as *const __m128i),
        )
    };
    (d, dmin, sc32, _mm_madd_epi16(mins, pairs))
}

/// Q4_K decode: per half `h` of the super-block one 64-byte load holds sub-blocks
/// `4h, 4h + 1, 4h + 2, 4h + 3` (low nibbles `4h`, `4h + 2`; high `4h + 1`, `4h + 3`).
pub(crate) struct Q4KRows;

impl DecodeRows for Q4KRows {
    #[inline]
    unsafe fn rows<const R: usize>(
        cols: usize,
        w: *const u8,
        row_bytes: usize,
        a: *const u8,
    ) -> [f32; R] {
        unsafe { rows_q4k::<R>(cols, w, row_bytes, a) }
    }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn rows_q4k<const R: usize>(cols: usize, w: *const u8, rb: usize, a: *const u8) -> [f32; R] {
    const W_BLOCK: usize = size_of::<BlockQ4_K>();
    let low4 = _mm512_set1_epi8(0x0f);
    let mut next_pf = 0;
    let mut acc = [_mm512_setzero_ps(); R];
    let mut acc_m = [_mm_setzero_ps(); R];
    for b in 0..cols / 256 {
        let pa = unsafe { a.add(b * A_BLOCK) };
        let dy = unsafe { rd_f32(pa) };
        let ya = unsafe { pa.add(4) };
        prefetch_rows::<R>(w, rb, &mut next_pf, (b + 1) * W_BLOCK);
        for i in 0..R {
            let p = unsafe { w.add(i * rb + b * W_BLOCK) };
            let (d, dmin, sc32, msum) = unsafe { k45_head(p, pa) };
            let mut sumi = _mm512_setzero_si512();
            for h in 0..2 {
                let z = unsafe { _mm512_loadu_si512(p.add(16 + 64 * h) as *const __m512i) };
                let lo = _mm512_and_si512(z, low4);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(z), low4);
                let y_lo = unsafe { load2x256(ya.add(128 * h), ya.add(128 * h + 64)) };
                let y_hi = unsafe { load2x256(ya.add(128 * h + 32), ya.add(128 * h + 96)) };
                let s = 4 * h as i32;
                let p_lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, y_lo);
                let p_hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, y_hi);
                let t_lo = _mm512_mullo_epi32(p_lo, unsafe { pick2(sc32, s, s + 2) });
                let t_hi = _mm512_mullo_epi32(p_hi, unsafe { pick2(sc32, s + 1, s + 3) });
                sumi = _mm512_add_epi32(sumi, _mm512_add_epi32(t_lo, t_hi));
            }
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(d * dy), acc[i]);
            acc_m[i] = _mm_fmadd_ps(_mm_cvtepi32_ps(msum), _mm_set1_ps(dmin * dy), acc_m[i]);
        }
    }
    std::array::from_fn(|i| unsafe { hsum512(acc[i]) - hsum128_ps(acc_m[i]) })
}

/// Q5_K decode: as Q4_K, with bit 4 of every value from `qh` (bit `j` of byte `l` for element
/// `l` of sub-block `j`), tested into a mask register per 64 values and added in one masked
/// byte add.
pub(crate) struct Q5KRows;

impl DecodeRows for Q5KRows {
    #[inline]
    unsafe fn rows<const R: usize>(
        cols: usize,
        w: *const u8,
        row_bytes: usize,
        a: *const u8,
    ) -> [f32; R] {
        unsafe { rows_q5k::<R>(cols, w, row_bytes, a) }
    }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn rows_q5k<const R: usize>(cols: usize, w: *const u8, rb: usize, a: *const u8) -> [f32; R] {
    const W_BLOCK: usize = size_of::<BlockQ5_K>();
    let low4 = _mm512_set1_epi8(0x0f);
    let bit4 = _mm512_set1_epi8(0x10);
    // Bit `j` in the low 32 bytes, bit `j + 2` in the high 32, for the sub-block pairs
    // (4h, 4h + 2) and (4h + 1, 4h + 3).
    let sel = |j: i32| {
        let lo = (1i64 << j) * 0x0101_0101_0101_0101;
        let hi = (1i64 << (j + 2)) * 0x0101_0101_0101_0101;
        _mm512_set_epi64(hi, hi, hi, hi, lo, lo, lo, lo)
    };
    let sels = [sel(0), sel(1), sel(4), sel(5)];
    let mut next_pf = 0;
    let mut acc = [_mm512_setzero_ps(); R];
    let mut acc_m = [_mm_setzero_ps(); R];
    for b in 0..cols / 256 {
        let pa = unsafe { a.add(b * A_BLOCK) };
        let dy = unsafe { rd_f32(pa) };
        let ya = unsafe { pa.add(4) };
        prefetch_rows::<R>(w, rb, &mut next_pf, (b + 1) * W_BLOCK);
        for i in 0..R {
            let p = unsafe { w.add(i * rb + b * W_BLOCK) };
            let (d, dmin, sc32, msum) = unsafe { k45_head(p, pa) };
            let qh =
                _mm512_broadcast_i64x4(unsafe { _mm256_loadu_si256(p.add(16) as *const __m256i) });
            let mut sumi = _mm512_setzero_si512();
            for h in 0..2 {
                let z = unsafe { _mm512_loadu_si512(p.add(48 + 64 * h) as *const __m512i) };
                let lo = _mm512_and_si512(z, low4);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(z), low4);
                let lo = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(qh, sels[2 * h]), lo, bit4);
                let hi =
                    _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(qh, sels[2 * h + 1]), hi, bit4);
                let y_lo = unsafe { load2x256(ya.add(128 * h), ya.add(128 * h + 64)) };
                let y_hi = unsafe { load2x256(ya.add(128 * h + 32), ya.add(128 * h + 96)) };
                let s = 4 * h as i32;
                let p_lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, y_lo);
                let p_hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, y_hi);
                let t_lo = _mm512_mullo_epi32(p_lo, unsafe { pick2(sc32, s, s + 2) });
                let t_hi = _mm512_mullo_epi32(p_hi, unsafe { pick2(sc32, s + 1, s + 3) });
                sumi = _mm512_add_epi32(sumi, _mm512_add_epi32(t_lo, t_hi));
            }
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(d * dy), acc[i]);
            acc_m[i] = _mm_fmadd_ps(_mm_cvtepi32_ps(msum), _mm_set1_ps(dmin * dy), acc_m[i]);
        }
    }
    std::array::from_fn(|i| unsafe { hsum512(acc[i]) - hsum128_ps(acc_m[i]) })
}

/// Q6_K decode: per half `h` one 64-byte load of `ql` and the half's 32 `qh` bytes in both
/// 256-bit halves give the values of sub-blocks `8h..8h + 4` (low nibbles) and `8h + 4..8h + 8`
/// (high nibbles), 16 elements each, in element order; values are dotted unsigned (0..64) and
/// `32 sum_g(scale_g bsum_g)` comes off once per super-block.
pub(crate) struct Q6KRows;

impl DecodeRows for Q6KRows {
    #[inline]
    unsafe fn rows<const R: usize>(
        cols: usize,
        w: *const u8,
        row_bytes: usize,
        a: *const u8,
    ) -> [f32; R] {
        unsafe { rows_q6k::<R>(cols, w, row_bytes, a) }
    }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn rows_q6k<const R: usize>(cols: usize, w: *const u8, rb: usize, a: *const u8) -> [f32; R] {
    const W_BLOCK: usize = size_of::<BlockQ6_K>();
    let low4 = _mm512_set1_epi8(0x0f);
    let m30 = _mm512_set1_epi8(0x30);
    // qh bits 2k, 2k + 1 to bits 4, 5: k = 0 / 1 (low nibbles, low / high 256 bits) shift left
    // by 4 / 2; k = 2 / 3 (high nibbles) shift right by 0 / 2. Bits never cross a byte
    // boundary into bits 4-5 of the other byte for these shifts.
    let shl = _mm512_set_epi64(
        0x0002_0002_0002_0002,
        0x0002_0002_0002_0002,
        0x0002_0002_0002_0002,
        0x0002_0002_0002_0002,
        0x0004_0004_0004_0004,
        0x0004_0004_0004_0004,
        0x0004_0004_0004_0004,
        0x0004_0004_0004_0004,
    );
    let shr = _mm512_set_epi64(
        0x0002_0002_0002_0002,
        0x0002_0002_0002_0002,
        0x0002_0002_0002_0002,
        0x0002_0002_0002_0002,
        0,
        0,
        0,
        0,
    );
    // Lanes 4j..4j + 4 (16 elements) take scale `4k + j` for vector k.
    let idx: [__m512i; 4] = std::array::from_fn(|k| {
        let g = 4 * k as i32;
        _mm512_set_epi32(
            g + 3,
            g + 3,
            g + 3,
            g + 3,
            g + 2,
            g + 2,
            g + 2,
            g + 2,
            g + 1,
            g + 1,
            g + 1,
            g + 1,
            g,
            g,
            g,
            g,
        )
    });
    let mut next_pf = 0;
    let mut acc = [_mm512_setzero_ps(); R];
    for b in 0..cols / 256 {
        let pa = unsafe { a.add(b * A_BLOCK) };
        let dy = unsafe { rd_f32(pa) };
        let ya = unsafe { pa.add(4) };
        let bsums = unsafe { _mm256_loadu_si256(pa.add(A_BSUMS) as *const __m256i) };
        prefetch_rows::<R>(w, rb, &mut next_pf, (b + 1) * W_BLOCK);
        for (i, acc) in acc.iter_mut().enumerate() {
            let p = unsafe { w.add(i * rb + b * W_BLOCK) };
            let d = unsafe { f16_at(p.add(208)) };
            let sc8 = unsafe { _mm_loadu_si128(p.add(192) as *const __m128i) };
            let sc32 = _mm512_cvtepi8_epi32(sc8);
            let zero_point = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), bsums);
            let mut sumi = _mm512_sub_epi32(
                _mm512_setzero_si512(),
                _mm512_zextsi256_si512(_mm256_slli_epi32::<5>(zero_point)),
            );
            for h in 0..2 {
                let ql = unsafe { _mm512_loadu_si512(p.add(64 * h) as *const __m512i) };
                let qh = _mm512_broadcast_i64x4(unsafe {
                    _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i)
                });
                let q_lo = _mm512_or_si512(
                    _mm512_and_si512(ql, low4),
                    _mm512_and_si512(_mm512_sllv_epi16(qh, shl), m30),
                );
                let q_hi = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(ql), low4),
                    _mm512_and_si512(_mm512_srlv_epi16(qh, shr), m30),
                );
                let y_lo = unsafe { _mm512_loadu_si512(ya.add(128 * h) as *const __m512i) };
                let y_hi = unsafe { _mm512_loadu_si512(ya.add(128 * h + 64) as *const __m512i) };
                let p_lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q_lo, y_lo);
                let p_hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q_hi, y_hi);
                let t_lo = _mm512_mullo_epi32(p_lo, _mm512_permutexvar_epi32(idx[2 * h], sc32));
                let t_hi = _mm512_mullo_epi32(p_hi, _mm512_permutexvar_epi32(idx[2 * h + 1], sc32));
                sumi = _mm512_add_epi32(sumi, _mm512_add_epi32(t_lo, t_hi));
            }
            *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(d * dy), *acc);
        }
    }
    unsafe { hsum_rows(&acc) }
}

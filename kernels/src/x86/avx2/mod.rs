//! AVX2 + FMA + F16C kernels (x86-64-v3): one file per weight format, plus the activation
//! quantizers. Which kernel runs for which format: the `avx2` rows of the table in
//! `dispatch.rs`. Integer dot products use `vpmaddubsw` (u8 × i8 pairs to i16) and `vpmaddwd`
//! (i16 pairs to i32), exactly as the scalar reference sums them; each block's i32 lanes are
//! scaled in f32 and accumulated per row, and reduced once at the end of the row.

mod float;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
pub(crate) mod quantize;

pub(crate) use float::{Bf16, F16, F32};
pub(crate) use q4_0::Q4_0;
pub(crate) use q4_1::Q4_1;
pub(crate) use q4_k::Q4K;
pub(crate) use q5_0::Q5_0;
pub(crate) use q5_1::Q5_1;
pub(crate) use q5_k::Q5K;
pub(crate) use q6_k::Q6K;
pub(crate) use q8_0::Q8_0;

use crate::simd_common::F16_TO_F32;
use std::arch::x86_64::*;

/// Unaligned little-endian u16 at `p`.
#[inline(always)]
pub(crate) unsafe fn rd_u16(p: *const u8) -> u16 {
    unsafe { std::ptr::read_unaligned(p as *const u16) }
}

/// Unaligned little-endian u32 at `p`.
#[inline(always)]
pub(crate) unsafe fn rd_u32(p: *const u8) -> u32 {
    unsafe { std::ptr::read_unaligned(p as *const u32) }
}

/// Unaligned f32 at `p`.
#[inline(always)]
pub(crate) unsafe fn rd_f32(p: *const u8) -> f32 {
    unsafe { std::ptr::read_unaligned(p as *const f32) }
}

/// 32 unaligned bytes at `p`.
#[inline(always)]
pub(crate) unsafe fn load256(p: *const u8) -> __m256i {
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

/// 16 unaligned bytes at `p`.
#[inline(always)]
pub(crate) unsafe fn load128(p: *const u8) -> __m128i {
    unsafe { _mm_loadu_si128(p as *const __m128i) }
}

/// The f16 at `p` as f32, through the table (see `simd_common::F16_TO_F32`).
#[inline(always)]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    F16_TO_F32[unsafe { rd_u16(p) } as usize]
}

/// The f16 at `p` as f32 in all 8 lanes: a table load straight into a broadcast.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16_bcast(p: *const u8) -> __m256 {
    _mm256_broadcast_ss(&F16_TO_F32[unsafe { rd_u16(p) } as usize])
}

/// f16 bits to f32 (exact, F16C).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16_to_f32(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// Sum of the 4 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn hsum128_ps(s: __m128) -> f32 {
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn hsum_ps(v: __m256) -> f32 {
    hsum128_ps(_mm_add_ps(
        _mm256_castps256_ps128(v),
        _mm256_extractf128_ps::<1>(v),
    ))
}

/// Reduces every accumulator of a tile.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn hsum_tile<const NW: usize, const NA: usize>(
    acc: &[[__m256; NA]; NW],
) -> [[f32; NA]; NW] {
    let mut out = [[0.0f32; NA]; NW];
    for i in 0..NW {
        for j in 0..NA {
            out[i][j] = hsum_ps(acc[i][j]);
        }
    }
    out
}

/// The 32 4-bit values of a Q4_0 / Q4_1 / Q5 block's `qs` as bytes in element order (low
/// nibbles are elements 0-15, high nibbles 16-31): the 16 bytes are loaded into both halves
/// (a load-only broadcast) and the upper half shifted by 4.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn nibbles32(qs: *const u8) -> __m256i {
    let both = _mm256_broadcastsi128_si256(unsafe { load128(qs) });
    let shifted = _mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    _mm256_and_si256(shifted, _mm256_set1_epi8(0x0f))
}

/// Byte `i` is 0xff where bit `i` of `bits` is set, else 0 (Q5 high bits).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn bytes_from_bits32(bits: u32) -> __m256i {
    let t = _mm256_set1_epi32(bits as i32);
    let spread = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(t, spread);
    // Every bit except bit (i % 8) set in byte i: all ones exactly where that bit was set.
    let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(bytes, others), _mm256_set1_epi64x(-1))
}

/// Sum of i8 × i8 products in 8 i32 lanes (each lane 4 adjacent products), exact for any
/// weights `x` as long as the activations `y` avoid -128 (the activation quantizers stay in
/// -127..=127): `|x| <= 128` times `|y| <= 127`, two per i16, cannot saturate `vpmaddubsw`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_i8_lanes(x: __m256i, y: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1))
}

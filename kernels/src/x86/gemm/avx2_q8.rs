//! AVX2 prefill microkernels for Q8_0, Q4_0, Q5_0 (× Q8_0 activations) and Q4_1 (× Q8_1)
//! weights (Q5_1 is handled too but measured no faster than its decode kernel, see `mod.rs`). Scalar references: `formats/{q8_0,q4_0,q5_0,q4_1,q5_1}.rs`.
//!
//! A step covers 2 blocks in two ymm: `lo` holds elements 0-15 of both blocks (block 1 in
//! bytes 16-31), `hi` elements 16-31, the order the nibbles of two Q4_0 / Q5_0 blocks unpack
//! to. Without VNNI the integer dot is `vpmaddubsw` (u8 × i8 pairs to i16) + `vpmaddwd` with
//! ones: block `k`'s exact sum lands in i32 lanes `4k..4k + 4` and is scaled once per step.
//! Q4_0 / Q5_0 values are dotted unsigned (`q`, at most 31: two pairs of `lo` and `hi` added
//! in i16 stay below 2^15) with the start value `-c * sum(y)` prepared with the activations;
//! Q8_0 uses the sign trick (`|w|` × `y` with `w`'s sign), exact since activations avoid -128.
//! Activations are prepared once per token tile: `lo`, `hi`, 8 lane scales, 8 start values.
//! The tile is 2 rows × 4 tokens: 8 accumulators and 6 weight registers of the 16.
//! Q4_1 / Q5_1 add `m s_y` per block with one FMA per step (`m` in the block's lanes times
//! `s_y / 4`, prepared), in 2 × 3 tiles (one more register per row).

use super::walk::GemmKernel;
use crate::formats::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
use crate::simd_common::F16_TO_F32;
use std::arch::x86_64::*;
use std::mem::offset_of;

/// Bytes of an activation block: Q8_0 (`d`, quants) or Q8_1 (`d`, `s`, quants).
const fn a_block(f: u8) -> usize {
    if has_min(f) {
        size_of::<BlockQ8_1>()
    } else {
        size_of::<BlockQ8_0>()
    }
}
/// Prepared bytes per step (2 blocks): `lo`, `hi`, 8 lane scales, 8 start values, and for
/// Q4_1 / Q5_1 8 `s_y / 4`.
const fn prep_step(f: u8) -> usize {
    if has_min(f) {
        160
    } else {
        128
    }
}

/// Offset of the quants in a Q8_0 block.
const Q8_QS: usize = offset_of!(BlockQ8_0, qs);

const Q8_0: u8 = 0;
const Q4_0: u8 = 1;
const Q5_0: u8 = 2;
const Q4_1: u8 = 3;
const Q5_1: u8 = 4;

const fn has_min(f: u8) -> bool {
    f == Q4_1 || f == Q5_1
}

const fn w_block(f: u8) -> usize {
    match f {
        Q8_0 => size_of::<BlockQ8_0>(),
        Q4_0 => size_of::<BlockQ4_0>(),
        Q5_0 => size_of::<BlockQ5_0>(),
        Q4_1 => size_of::<BlockQ4_1>(),
        _ => size_of::<BlockQ5_1>(),
    }
}

/// Offsets of `qs` and (Q5) `qh` in a weight block.
const fn qs_off(f: u8) -> usize {
    match f {
        Q4_0 => offset_of!(BlockQ4_0, qs),
        Q5_0 => offset_of!(BlockQ5_0, qs),
        Q4_1 => offset_of!(BlockQ4_1, qs),
        _ => offset_of!(BlockQ5_1, qs),
    }
}
const fn qh_off(f: u8) -> usize {
    if f == Q5_0 {
        offset_of!(BlockQ5_0, qh)
    } else {
        offset_of!(BlockQ5_1, qh)
    }
}

/// The zero point subtracted from the unsigned 4/5-bit values (0 for Q8_0, dotted signed).
const fn w_offset(f: u8) -> i32 {
    match f {
        Q8_0 => 0,
        Q4_0 => 8,
        Q5_0 => 16,
        _ => 0,
    }
}

#[inline(always)]
fn f16_val(p: *const u8) -> f32 {
    // SAFETY: callers pass a pointer to 2 readable bytes.
    F16_TO_F32[unsafe { std::ptr::read_unaligned(p as *const u16) } as usize]
}

#[inline(always)]
unsafe fn ld128(p: *const u8) -> __m128i {
    unsafe { _mm_loadu_si128(p as *const __m128i) }
}

/// `d0` in lanes 0-3, `d1` in lanes 4-7.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lane_scales(d0: f32, d1: f32) -> __m256 {
    _mm256_set_m128(_mm_set1_ps(d1), _mm_set1_ps(d0))
}

/// Pairs of i16 to i32 (`vpmaddwd` with ones).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn widen(v: __m256i) -> __m256i {
    _mm256_madd_epi16(v, _mm256_set1_epi16(1))
}

/// Prepares one Q8_0 activation row; an odd last block is paired with zeros.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn prep<const F: u8>(cols: usize, act: *const u8, dst: *mut u8) {
    let nb = cols / 32;
    let c = w_offset(F);
    let q = if has_min(F) { 4 } else { 2 };
    for s in 0..nb.div_ceil(2) {
        let p0 = unsafe { act.add(2 * s * a_block(F)) };
        let (lo0, hi0) = unsafe { (ld128(p0.add(q)), ld128(p0.add(q + 16))) };
        let (lo1, hi1, d1, s1) = if 2 * s + 1 < nb {
            let p1 = unsafe { p0.add(a_block(F)) };
            unsafe {
                (
                    ld128(p1.add(q)),
                    ld128(p1.add(q + 16)),
                    f16_val(p1),
                    f16_val(p1.add(2)),
                )
            }
        } else {
            (_mm_setzero_si128(), _mm_setzero_si128(), 0.0, 0.0)
        };
        let lo = _mm256_set_m128i(lo1, lo0);
        let hi = _mm256_set_m128i(hi1, hi0);
        // -c * (sum of each i32 lane's 8 activations: 4 of lo, 4 of hi).
        let sum = widen(_mm256_add_epi16(
            _mm256_maddubs_epi16(_mm256_set1_epi8(1), lo),
            _mm256_maddubs_epi16(_mm256_set1_epi8(1), hi),
        ));
        let start = _mm256_mullo_epi32(sum, _mm256_set1_epi32(-c));
        let o = unsafe { dst.add(s * prep_step(F)) };
        unsafe {
            _mm256_store_si256(o as *mut __m256i, lo);
            _mm256_store_si256(o.add(32) as *mut __m256i, hi);
            _mm256_store_ps(o.add(64) as *mut f32, lane_scales(f16_val(p0), d1));
            _mm256_store_si256(o.add(96) as *mut __m256i, start);
            if has_min(F) {
                let sv = lane_scales(f16_val(p0.wrapping_add(2)) * 0.25, s1 * 0.25);
                _mm256_store_ps(o.add(128) as *mut f32, sv);
            }
        }
    }
}

/// Two blocks of weights at `p` as `(lo, hi)` in the step order (Q4_0 / Q5_0 unsigned, Q8_0
/// signed) and their lane scales. `HALF`: only the first block exists.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack<const F: u8, const HALF: bool>(
    p: *const u8,
) -> (__m256i, __m256i, __m256, __m256) {
    let p1 = p.wrapping_add(w_block(F));
    let d1 = if HALF { 0.0 } else { f16_val(p1) };
    let d = unsafe { lane_scales(f16_val(p), d1) };
    let m = if has_min(F) {
        let m1 = if HALF {
            0.0
        } else {
            f16_val(p1.wrapping_add(2))
        };
        unsafe { lane_scales(f16_val(p.wrapping_add(2)), m1) }
    } else {
        _mm256_setzero_ps()
    };
    let part = |q: *const u8, off: usize| {
        if HALF && q == p1 {
            _mm_setzero_si128()
        } else {
            unsafe { ld128(q.add(off)) }
        }
    };
    let (lo, hi) = match F {
        Q8_0 => (
            _mm256_set_m128i(part(p1, Q8_QS), part(p, Q8_QS)),
            _mm256_set_m128i(part(p1, Q8_QS + 16), part(p, Q8_QS + 16)),
        ),
        _ => {
            let off = qs_off(F);
            let qs = _mm256_set_m128i(part(p1, off), part(p, off));
            let low4 = _mm256_set1_epi8(0x0f);
            let lo = _mm256_and_si256(qs, low4);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(qs), low4);
            if F == Q4_0 || F == Q4_1 {
                (lo, hi)
            } else {
                let rd = |q: *const u8| unsafe {
                    std::ptr::read_unaligned(q.add(qh_off(F)) as *const u32)
                };
                let (h0, h1) = (rd(p), if HALF { 0 } else { rd(p1) });
                let bit4 = _mm256_set1_epi8(0x10);
                let bits = |b: u32| unsafe {
                    _mm256_and_si256(crate::x86::avx2::bytes_from_bits32(b), bit4)
                };
                (
                    _mm256_or_si256(lo, bits((h0 & 0xffff) | (h1 << 16))),
                    _mm256_or_si256(hi, bits((h0 >> 16) | (h1 & 0xffff_0000))),
                )
            }
        }
    };
    (lo, hi, d, m)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn step<const F: u8, const R: usize, const T: usize, const HALF: bool>(
    s: usize,
    w: &[*const u8; R],
    a: &[*const u8; T],
    acc: &mut [[__m256; T]; R],
) {
    let mut wlo = [_mm256_setzero_si256(); R];
    let mut whi = [_mm256_setzero_si256(); R];
    let mut wd = [_mm256_setzero_ps(); R];
    let mut wm = [_mm256_setzero_ps(); R];
    for i in 0..R {
        (wlo[i], whi[i], wd[i], wm[i]) = unsafe { unpack::<F, HALF>(w[i].add(2 * s * w_block(F))) };
    }
    for j in 0..T {
        let pa = unsafe { a[j].add(s * prep_step(F)) };
        let ylo = unsafe { _mm256_load_si256(pa as *const __m256i) };
        let yhi = unsafe { _mm256_load_si256(pa.add(32) as *const __m256i) };
        let dy = unsafe { _mm256_load_ps(pa.add(64) as *const f32) };
        for i in 0..R {
            let si = if F == Q8_0 {
                let lo = _mm256_maddubs_epi16(
                    _mm256_sign_epi8(wlo[i], wlo[i]),
                    _mm256_sign_epi8(ylo, wlo[i]),
                );
                let hi = _mm256_maddubs_epi16(
                    _mm256_sign_epi8(whi[i], whi[i]),
                    _mm256_sign_epi8(yhi, whi[i]),
                );
                unsafe { _mm256_add_epi32(widen(lo), widen(hi)) }
            } else {
                let start = unsafe { _mm256_load_si256(pa.add(96) as *const __m256i) };
                let pairs = _mm256_add_epi16(
                    _mm256_maddubs_epi16(wlo[i], ylo),
                    _mm256_maddubs_epi16(whi[i], yhi),
                );
                _mm256_add_epi32(start, unsafe { widen(pairs) })
            };
            acc[i][j] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), _mm256_mul_ps(wd[i], dy), acc[i][j]);
            if has_min(F) {
                let sy = unsafe { _mm256_load_ps(pa.add(128) as *const f32) };
                acc[i][j] = _mm256_fmadd_ps(wm[i], sy, acc[i][j]);
            }
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const F: u8, const R: usize, const T: usize>(
    cols: usize,
    w: [*const u8; R],
    a: [*const u8; T],
) -> [[f32; T]; R] {
    let nb = cols / 32;
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    for s in 0..nb / 2 {
        unsafe { step::<F, R, T, false>(s, &w, &a, &mut acc) };
    }
    if nb % 2 == 1 {
        unsafe { step::<F, R, T, true>(nb / 2, &w, &a, &mut acc) };
    }
    unsafe { crate::x86::avx2::hsum_tile(&acc) }
}

macro_rules! q8_family {
    ($name:ident, $f:expr) => {
        pub(crate) struct $name;
        impl GemmKernel for $name {
            fn prep_bytes(cols: usize) -> usize {
                // Whole 64-byte lines: an odd step count gets one spare line pair.
                ((cols / 32).div_ceil(2) * prep_step($f)).div_ceil(64) * 64
            }
            unsafe fn prep(cols: usize, act: *const u8, dst: *mut u8) {
                unsafe { prep::<{ $f }>(cols, act, dst) }
            }
            #[inline]
            unsafe fn tile<const R: usize, const T: usize>(
                cols: usize,
                w: [*const u8; R],
                a: [*const u8; T],
            ) -> [[f32; T]; R] {
                unsafe { tile::<{ $f }, R, T>(cols, w, a) }
            }
        }
    };
}

q8_family!(GemmQ8_0, Q8_0);
q8_family!(GemmQ4_0, Q4_0);
q8_family!(GemmQ5_0, Q5_0);
q8_family!(GemmQ4_1, Q4_1);

//! AVX-512 VNNI prefill microkernels for the 32-element block formats: Q8_0, Q4_0, Q5_0 (× Q8_0
//! activations) and Q4_1, Q5_1 (× Q8_1). Scalar references: `formats/{q8_0,q4_0,q5_0,q4_1,
//! q5_1}.rs`.
//!
//! A step covers 4 blocks (128 elements) in two zmm: `lo` holds elements 0-15 of the 4
//! blocks (16 bytes each, block `k` in bytes `16k..16k + 16`), `hi` elements 16-31. That is
//! the order the nibbles of 4 Q4_0 / Q5_0 blocks unpack to (low nibbles, high nibbles), and
//! two `vpdpbusd` into the same accumulator leave block `k`'s exact integer dot in i32 lanes
//! `4k..4k + 4`, so the float part (conversion, product of the lane scales, FMA) runs once
//! per 4 blocks: on Zen 5 that halved the FP-pipe work of a 2-blocks-per-zmm layout.
//!
//! Weights are unpacked to unsigned bytes `w + c` (the stored Q4_0 / Q5_0 values; Q8_0 with
//! its top bit flipped). Activations are prepared once per token tile in the same order,
//! next to their lane scales and the start values `-c * sum(y)` of each lane, so
//! `vpdpbusd(vpdpbusd(-c sum(y), lo_w, lo_y), hi_w, hi_y)` is the exact `sum(w y)` per block.
//! Unpacking is shared by the tile's `T` tokens, activation loads by its `R` rows.
//!
//! Q4_1 / Q5_1 (`d q + m`) dot their unsigned values with start 0 and add each block's
//! `m s_y` with one more FMA per step: block `k`'s `m` in its 4 lanes times `s_y / 4`
//! (exact: a power of two) prepared with the activations.
//!
//! Tried and not kept (Sapphire Rapids vCPU, 2026-12-02, `benches/gemm.rs` and
//! `benches/matvec.rs` with `EDGEGEMMA_BENCH_CLOCK=cpu`, base and change alternating, best of
//! 3): unpacking a whole 4-block group from two overlapping 64-byte loads with `vpermt2w`
//! (quants and f16 scales, then one `vcvtph2ps`) instead of a load and insert per block and a
//! table lookup per scale: Q4_0 within ±3% at load 7, Q4_1 3-10% and Q5_1 5-8% slower at load
//! 18, Q5_0 within noise. Running decode as this step on one row and one token (4 blocks per
//! step, rows in address order, prefetch as `avx512/decode.rs`): Q4_0 / Q5_0 / Q4_1 / Q5_1
//! 5-10% below the 2-blocks-per-zmm decode kernels on every shape. So the unpacking is not what
//! bounds a step here; the per-(row, token) work is: two `vpdpbusd`, a convert, a multiply and
//! an FMA per 4 blocks, the float part repeated over the 4 partial lanes of each block. A
//! layout with one block per i32 lane (16 blocks, e.g. rows interleaved at load as llama.cpp's
//! repack does) would need that float part once per 16 blocks.
//!
//! That layout is now `formats/interleaved.rs` (16 rows packed at load, the runtime's choice)
//! with its kernel in `avx512/x16.rs`: 2.0-3.3x these tiles on Q4_0 / Q5_0 / Q8_0 there.
//! These tiles stay for matrices left in ggml rows.

use super::walk::GemmKernel;
use crate::formats::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
use crate::simd_common::F16_TO_F32;
use std::arch::x86_64::*;
use std::mem::offset_of;

/// Bytes of an activation block: Q8_0 (`d`, 32 quants) or Q8_1 (`d`, `s`, 32 quants).
const fn a_block(f: u8) -> usize {
    if has_min(f) {
        size_of::<BlockQ8_1>()
    } else {
        size_of::<BlockQ8_0>()
    }
}
/// Blocks per step.
const STEP_BLOCKS: usize = 4;
/// Prepared bytes per step: `lo` and `hi` quants, 16 f32 lane scales, 16 i32 start values, and
/// for Q4_1 / Q5_1 16 f32 `s_y / 4`.
const fn prep_step(f: u8) -> usize {
    if has_min(f) {
        320
    } else {
        256
    }
}

/// Weight formats of this family (the `F` parameter).
const Q8_0: u8 = 0;
const Q4_0: u8 = 1;
const Q5_0: u8 = 2;
const Q4_1: u8 = 3;
const Q5_1: u8 = 4;

/// Whether the format has a block minimum (`d q + m`, dotted with Q8_1).
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
const fn is_q5(f: u8) -> bool {
    f == Q5_0 || f == Q5_1
}

/// The offset that makes the weights unsigned: stored value minus it is the weight.
const fn w_offset(f: u8) -> u8 {
    match f {
        Q8_0 => 0x80,
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

/// Block `k`'s value in lanes `4k..4k + 4` (`v` holds the 4 values).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn spread4(v: __m128) -> __m512 {
    _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
        _mm512_castps128_ps512(v),
    )
}

/// Prepares one Q8_0 activation row for format `F` (see the module comment); blocks past the
/// end of the row are zeros (quants, scale and start value).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn prep<const F: u8>(cols: usize, act: *const u8, dst: *mut u8) {
    let nb = cols / 32;
    let offset = _mm512_set1_epi8(w_offset(F) as i8);
    let q = if has_min(F) { 4 } else { 2 };
    for s in 0..nb.div_ceil(STEP_BLOCKS) {
        let o = unsafe { dst.add(s * prep_step(F)) };
        let mut d = [0.0f32; 4];
        let mut sy = [0.0f32; 4];
        for (k, dk) in d.iter_mut().enumerate() {
            let b = STEP_BLOCKS * s + k;
            let (lo, hi) = if b < nb {
                let p = unsafe { act.add(b * a_block(F)) };
                *dk = f16_val(p);
                sy[k] = f16_val(p.wrapping_add(2)) * 0.25;
                unsafe { (ld128(p.add(q)), ld128(p.add(q + 16))) }
            } else {
                (_mm_setzero_si128(), _mm_setzero_si128())
            };
            unsafe { _mm_store_si128(o.add(16 * k) as *mut __m128i, lo) };
            unsafe { _mm_store_si128(o.add(64 + 16 * k) as *mut __m128i, hi) };
        }
        let lo = unsafe { _mm512_load_si512(o as *const __m512i) };
        let hi = unsafe { _mm512_load_si512(o.add(64) as *const __m512i) };
        let sum = _mm512_dpbusd_epi32(
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, lo),
            offset,
            hi,
        );
        let start = _mm512_sub_epi32(_mm512_setzero_si512(), sum);
        let dv = unsafe { spread4(_mm_loadu_ps(d.as_ptr())) };
        unsafe { _mm512_store_ps(o.add(128) as *mut f32, dv) };
        unsafe { _mm512_store_si512(o.add(192) as *mut __m512i, start) };
        if has_min(F) {
            let sv = unsafe { spread4(_mm_loadu_ps(sy.as_ptr())) };
            unsafe { _mm512_store_ps(o.add(256) as *mut f32, sv) };
        }
    }
}

/// `N` (1..=4) blocks of weights from `p` as unsigned `(lo, hi)` bytes in the step order, and
/// their lane scales; missing blocks are zeros with scale 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn unpack<const F: u8, const N: usize>(p: *const u8) -> (__m512i, __m512i, __m512, __m512) {
    let wb = w_block(F);
    let blk = |k: usize| p.wrapping_add(k * wb);
    let mut d = [0.0f32; 4];
    let mut m = [0.0f32; 4];
    for k in 0..N {
        d[k] = f16_val(blk(k));
        if has_min(F) {
            m[k] = f16_val(blk(k).wrapping_add(2));
        }
    }
    let dv = unsafe { spread4(_mm_setr_ps(d[0], d[1], d[2], d[3])) };
    let mv = if has_min(F) {
        unsafe { spread4(_mm_setr_ps(m[0], m[1], m[2], m[3])) }
    } else {
        _mm512_setzero_ps()
    };
    // The 16 bytes at `off` of each block, block k in bytes 16k..16k + 16.
    let gather = |off: usize| {
        let part = |k: usize| {
            if k < N {
                unsafe { ld128(blk(k).add(off)) }
            } else {
                _mm_setzero_si128()
            }
        };
        let z = _mm512_castsi128_si512(part(0));
        let z = _mm512_inserti32x4::<1>(z, part(1));
        let z = _mm512_inserti32x4::<2>(z, part(2));
        _mm512_inserti32x4::<3>(z, part(3))
    };
    let (lo, hi) = match F {
        Q8_0 if N == 4 => {
            // Whole blocks as [b0 | b1], [b2 | b3] (two 256-bit loads and inserts each), then
            // the 128-bit halves picked into lo / hi: 4 shuffles instead of 6 inserts.
            let flip = _mm512_set1_epi8(0x80u8 as i8);
            let ld = |k: usize| unsafe { _mm256_loadu_si256(blk(k).add(2) as *const __m256i) };
            let z01 = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(ld(0)), ld(1));
            let z23 = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(ld(2)), ld(3));
            (
                _mm512_xor_si512(_mm512_shuffle_i64x2::<0b10_00_10_00>(z01, z23), flip),
                _mm512_xor_si512(_mm512_shuffle_i64x2::<0b11_01_11_01>(z01, z23), flip),
            )
        }
        Q8_0 => {
            let flip = _mm512_set1_epi8(0x80u8 as i8);
            (
                _mm512_xor_si512(gather(offset_of!(BlockQ8_0, qs)), flip),
                _mm512_xor_si512(gather(offset_of!(BlockQ8_0, qs) + 16), flip),
            )
        }
        _ => {
            let low4 = _mm512_set1_epi8(0x0f);
            let qs = gather(qs_off(F));
            let lo = _mm512_and_si512(qs, low4);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(qs), low4);
            if !is_q5(F) {
                (lo, hi)
            } else {
                // Bit 4 of element l of block k: qh bit l; as masks over the lo / hi bytes.
                let (mut mlo, mut mhi) = (0u64, 0u64);
                for k in 0..N {
                    let qh =
                        unsafe { std::ptr::read_unaligned(blk(k).add(qh_off(F)) as *const u32) };
                    mlo |= ((qh & 0xffff) as u64) << (16 * k);
                    mhi |= ((qh >> 16) as u64) << (16 * k);
                }
                let bit4 = _mm512_set1_epi8(0x10);
                (
                    _mm512_mask_add_epi8(lo, mlo, lo, bit4),
                    _mm512_mask_add_epi8(hi, mhi, hi, bit4),
                )
            }
        }
    };
    (lo, hi, dv, mv)
}

/// Adds step `s` (blocks `4s..4s + N`) of the `R` rows and `T` tokens into `acc`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn step<const F: u8, const R: usize, const T: usize, const N: usize>(
    s: usize,
    w: &[*const u8; R],
    a: &[*const u8; T],
    acc: &mut [[__m512; T]; R],
) {
    let mut wlo = [_mm512_setzero_si512(); R];
    let mut whi = [_mm512_setzero_si512(); R];
    let mut wd = [_mm512_setzero_ps(); R];
    let mut wm = [_mm512_setzero_ps(); R];
    for i in 0..R {
        let (lo, hi, d, m) = unsafe { unpack::<F, N>(w[i].add(STEP_BLOCKS * s * w_block(F))) };
        wlo[i] = lo;
        whi[i] = hi;
        wd[i] = d;
        wm[i] = m;
    }
    for j in 0..T {
        let pa = unsafe { a[j].add(s * prep_step(F)) };
        let ylo = unsafe { _mm512_load_si512(pa as *const __m512i) };
        let yhi = unsafe { _mm512_load_si512(pa.add(64) as *const __m512i) };
        let dy = unsafe { _mm512_load_ps(pa.add(128) as *const f32) };
        for i in 0..R {
            let start = unsafe { _mm512_load_si512(pa.add(192) as *const __m512i) };
            let si = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start, wlo[i], ylo), whi[i], yhi);
            acc[i][j] =
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(si), _mm512_mul_ps(wd[i], dy), acc[i][j]);
            if has_min(F) {
                let sy = unsafe { _mm512_load_ps(pa.add(256) as *const f32) };
                acc[i][j] = _mm512_fmadd_ps(wm[i], sy, acc[i][j]);
            }
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const F: u8, const R: usize, const T: usize>(
    cols: usize,
    w: [*const u8; R],
    a: [*const u8; T],
) -> [[f32; T]; R] {
    let nb = cols / 32;
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    let full = nb / STEP_BLOCKS;
    for s in 0..full {
        unsafe { step::<F, R, T, 4>(s, &w, &a, &mut acc) };
    }
    match nb % STEP_BLOCKS {
        1 => unsafe { step::<F, R, T, 1>(full, &w, &a, &mut acc) },
        2 => unsafe { step::<F, R, T, 2>(full, &w, &a, &mut acc) },
        3 => unsafe { step::<F, R, T, 3>(full, &w, &a, &mut acc) },
        _ => {}
    }
    let mut out = [[0.0f32; T]; R];
    for i in 0..R {
        for j in 0..T {
            out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
        }
    }
    out
}

macro_rules! q8_family {
    ($name:ident, $f:expr) => {
        pub(crate) struct $name;
        impl GemmKernel for $name {
            fn prep_bytes(cols: usize) -> usize {
                (cols / 32).div_ceil(STEP_BLOCKS) * prep_step($f)
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
q8_family!(GemmQ5_1, Q5_1);

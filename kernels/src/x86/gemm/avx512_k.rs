//! AVX-512 VNNI prefill microkernels for the K-quants (Q4_K, Q5_K, Q6_K × Q8_K). Scalar
//! references: `formats/{q4_k,q5_k,q6_k}.rs`.
//!
//! Per 64 elements (one zmm) and (row, token): `vpmaddubsw` of the unsigned weights with the
//! Q8_K bytes (pairs to i16, no saturation: `2 * 63 * 127 < 2^15`), then `vpdpwssd` with the
//! integer sub-block scales, accumulating the reference's exact `sum_j sc_j * dot_j` in i32.
//! Per super-block the i32 sums go to f32 once, as in the reference: Q4_K / Q5_K subtract the
//! minimums through the Q8_K block sums, Q6_K's zero point (32) is folded into the integer
//! sum through them too. The activations are read as quantized (their element order is the
//! order the weights unpack to), so nothing is prepared.

use super::walk::GemmKernel;
use crate::formats::{BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_K};
use crate::simd_common::{unpack_q4k_scales, F16_TO_F32};
use std::arch::x86_64::*;
use std::mem::offset_of;

/// Q8_K block: f32 `d`, 256 `qs`, 16 i16 `bsums`.
const A_BLOCK: usize = size_of::<BlockQ8_K>();
const A_QS: usize = offset_of!(BlockQ8_K, qs);
const A_BSUMS: usize = offset_of!(BlockQ8_K, bsums);

const Q4_K: u8 = 0;
const Q5_K: u8 = 1;

#[inline(always)]
fn f16_val(p: *const u8) -> f32 {
    // SAFETY: callers pass a pointer to 2 readable bytes.
    F16_TO_F32[unsafe { std::ptr::read_unaligned(p as *const u16) } as usize]
}

/// `acc + sum of the pairwise products of the i16 lanes of a and b` (`vpdpwssd`), as written:
/// left to LLVM, the generic x86-64 tuning splits it into `vpmaddwd` + `vpaddd` (and then
/// re-associates the accumulation chains, which spilled the 4×4 tile's accumulators).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dpwssd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
    let mut acc = acc;
    // SAFETY: callers run with AVX-512 VNNI (the tile functions' target features).
    unsafe {
        std::arch::asm!(
            "vpdpwssd {acc}, {a}, {b}",
            acc = inout(zmm_reg) acc,
            a = in(zmm_reg) a,
            b = in(zmm_reg) b,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    acc
}

/// `*p += f * dy`, through memory: the tile keeps its integer sums in registers and its f32
/// accumulators in L1 (they change once per super-block), which a 4×4 tile needs to fit the
/// 32 zmm registers.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn acc_update(p: *mut __m512, f: __m512, dy: __m512) {
    unsafe { p.write_volatile(_mm512_fmadd_ps(f, dy, p.read_volatile())) };
}

#[inline(always)]
unsafe fn rd_f32(p: *const u8) -> f32 {
    unsafe { std::ptr::read_unaligned(p as *const f32) }
}

/// `vpermw` indices putting i16 element `first` in lanes 0-15 and `first + 1` in 16-31.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn halves_idx(first: i16) -> __m512i {
    _mm512_mask_set1_epi16(_mm512_set1_epi16(first), 0xffff_0000, first + 1)
}

/// Q4_K / Q5_K: `F` is `Q4_K` or `Q5_K`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_q45k<const F: u8, const R: usize, const T: usize>(
    cols: usize,
    w: [*const u8; R],
    a: [*const u8; T],
) -> [[f32; T]; R] {
    let w_block = if F == Q4_K {
        size_of::<BlockQ4_K>()
    } else {
        size_of::<BlockQ5_K>()
    };
    let qs_off = if F == Q4_K {
        offset_of!(BlockQ4_K, qs)
    } else {
        offset_of!(BlockQ5_K, qs)
    };
    let low4 = _mm512_set1_epi8(0x0f);
    let nib_shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
    let qh_shift = _mm512_setr_epi64(0, 0, 0, 0, 1, 1, 1, 1);
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    for b in 0..cols / 256 {
        let pa: [*const u8; T] = std::array::from_fn(|j| unsafe { a[j].add(b * A_BLOCK) });
        let pw: [*const u8; R] = std::array::from_fn(|i| unsafe { w[i].add(b * w_block) });
        let mut sc = [_mm512_setzero_si512(); R];
        let mut mins = [_mm_setzero_si128(); R];
        let mut qh = [_mm512_setzero_si512(); R];
        for i in 0..R {
            let (s, m) = unsafe { unpack_q4k_scales(pw[i].add(4)) };
            sc[i] = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(s as i64)));
            mins[i] = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m as i64));
            if F == Q5_K {
                // qh bit 2c of byte l is element 64c + l's bit 4, bit 2c + 1 element
                // 64c + 32 + l's: shifting the upper copy by one lines both up on bit 2c.
                let h = unsafe { _mm256_loadu_si256(pw[i].add(16) as *const __m256i) };
                qh[i] = _mm512_srlv_epi64(_mm512_broadcast_i64x4(h), qh_shift);
            }
        }
        let mut sumi = [[_mm512_setzero_si512(); T]; R];
        for c in 0..4 {
            let idx = unsafe { halves_idx(2 * c as i16) };
            let mut wq = [_mm512_setzero_si512(); R];
            let mut ws = [_mm512_setzero_si512(); R];
            for i in 0..R {
                let q = unsafe { _mm256_loadu_si256(pw[i].add(qs_off + 32 * c) as *const __m256i) };
                let mut z = _mm512_and_si512(
                    _mm512_srlv_epi64(_mm512_broadcast_i64x4(q), nib_shift),
                    low4,
                );
                if F == Q5_K {
                    let k = _mm512_test_epi8_mask(qh[i], _mm512_set1_epi8(1 << (2 * c)));
                    z = _mm512_mask_add_epi8(z, k, z, _mm512_set1_epi8(0x10));
                }
                wq[i] = z;
                ws[i] = _mm512_permutexvar_epi16(idx, sc[i]);
            }
            for j in 0..T {
                let y = unsafe { _mm512_loadu_si512(pa[j].add(A_QS + 64 * c) as *const __m512i) };
                for i in 0..R {
                    let p = _mm512_maddubs_epi16(wq[i], y);
                    sumi[i][j] = unsafe { dpwssd(sumi[i][j], p, ws[i]) };
                }
            }
        }
        for j in 0..T {
            let dy = unsafe { rd_f32(pa[j]) };
            let bs = unsafe { pa[j].add(A_BSUMS) };
            // bsums[2k] + bsums[2k + 1]: the sums the sub-block minimums multiply.
            let pairs = _mm_hadd_epi16(unsafe { _mm_loadu_si128(bs as *const __m128i) }, unsafe {
                _mm_loadu_si128(bs.add(16) as *const __m128i)
            });
            for i in 0..R {
                let d = f16_val(pw[i]);
                let dmin = f16_val(unsafe { pw[i].add(2) });
                let mn = _mm_cvtepi32_ps(_mm_madd_epi16(mins[i], pairs));
                let f = _mm512_mul_ps(_mm512_cvtepi32_ps(sumi[i][j]), _mm512_set1_ps(d));
                let f = _mm512_fnmadd_ps(_mm512_zextps128_ps512(mn), _mm512_set1_ps(dmin), f);
                unsafe { acc_update(&mut acc[i][j], f, _mm512_set1_ps(dy)) };
            }
        }
    }
    reduce(&acc)
}

/// Q6_K: values unsigned (0..64); `-32 sum_g(sc_g bsum_g)` starts each super-block's sum.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_q6k<const R: usize, const T: usize>(
    cols: usize,
    w: [*const u8; R],
    a: [*const u8; T],
) -> [[f32; T]; R] {
    const W_BLOCK: usize = size_of::<BlockQ6_K>();
    let low4 = _mm512_set1_epi8(0x0f);
    let m30 = _mm512_set1_epi8(0x30);
    let qh_shift = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    for b in 0..cols / 256 {
        let pa: [*const u8; T] = std::array::from_fn(|j| unsafe { a[j].add(b * A_BLOCK) });
        let pw: [*const u8; R] = std::array::from_fn(|i| unsafe { w[i].add(b * W_BLOCK) });
        let mut sc = [_mm512_setzero_si512(); R];
        let mut sumi = [[_mm512_setzero_si512(); T]; R];
        for i in 0..R {
            let s16 =
                _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(pw[i].add(192) as *const __m128i) });
            sc[i] = _mm512_castsi256_si512(s16);
            let zp = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16::<5>(s16));
            for j in 0..T {
                let bs = unsafe { _mm256_loadu_si256(pa[j].add(A_BSUMS) as *const __m256i) };
                sumi[i][j] =
                    _mm512_zextsi256_si512(_mm256_dpwssd_epi32(_mm256_setzero_si256(), zp, bs));
            }
        }
        for h in 0..2 {
            for s in 0..2 {
                let t = 2 * h + s;
                // i16 lane k of this step is in group 4t + k / 8.
                let g = 4 * t as i16;
                let idx = _mm512_mask_set1_epi16(
                    _mm512_mask_set1_epi16(
                        _mm512_mask_set1_epi16(_mm512_set1_epi16(g), 0x0000_ff00, g + 1),
                        0x00ff_0000,
                        g + 2,
                    ),
                    0xff00_0000,
                    g + 3,
                );
                let mut wq = [_mm512_setzero_si512(); R];
                let mut ws = [_mm512_setzero_si512(); R];
                for i in 0..R {
                    let ql = unsafe { _mm512_loadu_si512(pw[i].add(64 * h) as *const __m512i) };
                    let qh =
                        unsafe { _mm256_loadu_si256(pw[i].add(128 + 32 * h) as *const __m256i) };
                    // Upper copy shifted by 2: bits (0-1, 4-5) of the lower half are elements
                    // l / 64 + l, of the upper half 32 + l / 96 + l.
                    let qhz = _mm512_srlv_epi64(_mm512_broadcast_i64x4(qh), qh_shift);
                    wq[i] = if s == 0 {
                        _mm512_or_si512(
                            _mm512_and_si512(ql, low4),
                            _mm512_and_si512(_mm512_slli_epi16::<4>(qhz), m30),
                        )
                    } else {
                        _mm512_or_si512(
                            _mm512_and_si512(_mm512_srli_epi16::<4>(ql), low4),
                            _mm512_and_si512(qhz, m30),
                        )
                    };
                    ws[i] = _mm512_permutexvar_epi16(idx, sc[i]);
                }
                for j in 0..T {
                    let y =
                        unsafe { _mm512_loadu_si512(pa[j].add(A_QS + 64 * t) as *const __m512i) };
                    for i in 0..R {
                        let p = _mm512_maddubs_epi16(wq[i], y);
                        sumi[i][j] = unsafe { dpwssd(sumi[i][j], p, ws[i]) };
                    }
                }
            }
        }
        for j in 0..T {
            let dy = unsafe { rd_f32(pa[j]) };
            for i in 0..R {
                let d = f16_val(unsafe { pw[i].add(208) });
                let f = _mm512_cvtepi32_ps(sumi[i][j]);
                unsafe { acc_update(&mut acc[i][j], f, _mm512_set1_ps(d * dy)) };
            }
        }
    }
    reduce(&acc)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn reduce<const R: usize, const T: usize>(acc: &[[__m512; T]; R]) -> [[f32; T]; R] {
    let mut out = [[0.0f32; T]; R];
    for i in 0..R {
        for j in 0..T {
            out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
        }
    }
    out
}

macro_rules! k_kernel {
    ($name:ident, $tile:ident $(, $f:expr)?) => {
        pub(crate) struct $name;
        impl GemmKernel for $name {
            fn prep_bytes(_cols: usize) -> usize {
                0
            }
            unsafe fn prep(_cols: usize, _act: *const u8, _dst: *mut u8) {
                unreachable!("K-quant gemm reads the Q8_K rows as they are")
            }
            #[inline]
            unsafe fn tile<const R: usize, const T: usize>(
                cols: usize,
                w: [*const u8; R],
                a: [*const u8; T],
            ) -> [[f32; T]; R] {
                unsafe { $tile::<$({ $f },)? R, T>(cols, w, a) }
            }
        }
    };
}

k_kernel!(GemmQ4K, tile_q45k, Q4_K);
k_kernel!(GemmQ5K, tile_q45k, Q5_K);
k_kernel!(GemmQ6K, tile_q6k);

//! AVX-512 prefill microkernels for the 16-bit float weight formats (F16, BF16 × f32
//! activations). Scalar references: `formats/{f16,bf16}.rs`.
//!
//! F32 weights keep the decode kernel for prefill too: this kernel's 16-lane sums differ from
//! the decode kernel's 8-lane ones in the last bits, and on the tiny f32 Gemma 2 with an F16
//! KV cache that moved the batched logits 1.2e-4 from token-by-token decoding (e2e_tiny allows
//! 1e-4; F16 rounding of K/V amplifies the difference). The loads still handle F32 (`F32`).
//!
//! Per 16 elements: each weight row is widened to f32 once (`vcvtph2ps`; BF16 by a 16-bit
//! shift) and used for the tile's `T` tokens, each activation vector loaded once for its `R`
//! rows; one FMA per (row, token). A ragged end of the row goes through masked loads (zeros).

use super::walk::GemmKernel;
use std::arch::x86_64::*;

const F32: u8 = 0;
const F16: u8 = 1;
const BF16: u8 = 2;

/// 16 weights from element `k` of the row at `p` as f32, lanes past `mask` zero.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn load_w<const F: u8>(p: *const u8, k: usize, mask: __mmask16) -> __m512 {
    match F {
        F32 => unsafe { _mm512_maskz_loadu_ps(mask, p.add(4 * k) as *const f32) },
        F16 => {
            _mm512_cvtph_ps(unsafe { _mm256_maskz_loadu_epi16(mask, p.add(2 * k) as *const i16) })
        }
        _ => {
            let h = unsafe { _mm256_maskz_loadu_epi16(mask, p.add(2 * k) as *const i16) };
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn step<const F: u8, const R: usize, const T: usize>(
    k: usize,
    mask: __mmask16,
    w: &[*const u8; R],
    a: &[*const u8; T],
    acc: &mut [[__m512; T]; R],
) {
    let wv: [__m512; R] = std::array::from_fn(|i| unsafe { load_w::<F>(w[i], k, mask) });
    for j in 0..T {
        let y = unsafe { _mm512_maskz_loadu_ps(mask, a[j].add(4 * k) as *const f32) };
        for i in 0..R {
            acc[i][j] = _mm512_fmadd_ps(wv[i], y, acc[i][j]);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const F: u8, const R: usize, const T: usize>(
    cols: usize,
    w: [*const u8; R],
    a: [*const u8; T],
) -> [[f32; T]; R] {
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    let full = cols / 16 * 16;
    let mut k = 0;
    while k < full {
        unsafe { step::<F, R, T>(k, 0xffff, &w, &a, &mut acc) };
        k += 16;
    }
    if k < cols {
        let mask = ((1u32 << (cols - k)) - 1) as __mmask16;
        unsafe { step::<F, R, T>(k, mask, &w, &a, &mut acc) };
    }
    let mut out = [[0.0f32; T]; R];
    for i in 0..R {
        for j in 0..T {
            out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
        }
    }
    out
}

macro_rules! float_kernel {
    ($name:ident, $f:expr) => {
        pub(crate) struct $name;
        impl GemmKernel for $name {
            fn prep_bytes(_cols: usize) -> usize {
                0
            }
            unsafe fn prep(_cols: usize, _act: *const u8, _dst: *mut u8) {
                unreachable!("float gemm reads the f32 activation rows as they are")
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

float_kernel!(GemmF16, F16);
float_kernel!(GemmBf16, BF16);

//! F32 / F16 / BF16 weights × f32 activations (AVX2 + FMA + F16C). Scalar references:
//! `formats/{f32,f16,bf16}.rs` (which sum in f64; these sum in f32 lanes, see the tests' bound).

use super::{f16_to_f32, hsum_tile, load128, rd_u16};
use crate::x86::row_kernel;
use std::arch::x86_64::*;

/// One kernel per float format; `$load8` widens 8 weights at element `k` of row `p` to f32,
/// `$load1` one weight (row tails).
macro_rules! float_kernel {
    ($name:ident, $f:ident, $bytes:expr, $load8:ident, $load1:ident) => {
        row_kernel!($name => $f);

        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $f<const NW: usize, const NA: usize>(
            cols: usize,
            w: [*const u8; NW],
            a: [*const u8; NA],
        ) -> [[f32; NA]; NW] {
            let mut acc = [[_mm256_setzero_ps(); NA]; NW];
            let body = cols / 8 * 8;
            let mut k = 0;
            while k < body {
                let mut y = [_mm256_setzero_ps(); NA];
                for j in 0..NA {
                    y[j] = unsafe { _mm256_loadu_ps((a[j] as *const f32).add(k)) };
                }
                for i in 0..NW {
                    let x = unsafe { $load8(w[i].add($bytes * k)) };
                    for j in 0..NA {
                        acc[i][j] = _mm256_fmadd_ps(x, y[j], acc[i][j]);
                    }
                }
                k += 8;
            }
            let mut out = unsafe { hsum_tile(&acc) };
            for k in body..cols {
                for i in 0..NW {
                    let x = unsafe { $load1(w[i].add($bytes * k)) };
                    for j in 0..NA {
                        let y = unsafe { std::ptr::read_unaligned((a[j] as *const f32).add(k)) };
                        out[i][j] += x * y;
                    }
                }
            }
            out
        }
    };
}

float_kernel!(F32, dot_f32, 4, load8_f32, load1_f32);
float_kernel!(F16, dot_f16, 2, load8_f16, load1_f16);
float_kernel!(Bf16, dot_bf16, 2, load8_bf16, load1_bf16);

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8_f32(p: *const u8) -> __m256 {
    unsafe { _mm256_loadu_ps(p as *const f32) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load1_f32(p: *const u8) -> f32 {
    unsafe { std::ptr::read_unaligned(p as *const f32) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8_f16(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(unsafe { load128(p) })
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load1_f16(p: *const u8) -> f32 {
    unsafe { f16_to_f32(rd_u16(p)) }
}

/// bf16 is the top half of an f32: widen to u32 and shift.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8_bf16(p: *const u8) -> __m256 {
    let wide = _mm256_cvtepu16_epi32(unsafe { load128(p) });
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load1_bf16(p: *const u8) -> f32 {
    f32::from_bits((unsafe { rd_u16(p) } as u32) << 16)
}

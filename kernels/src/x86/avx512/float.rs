//! F32 / F16 / BF16 weights × f32 activations, decode (AVX-512F); prefill uses the AVX2 row
//! kernels. Scalar references: `formats/{f32,f16,bf16}.rs` (which sum in f64; these sum in f32
//! lanes, as the AVX2 kernels do).

use super::decode::{hsum512, prefetch_rows, DecodeRows};
use std::arch::x86_64::*;

/// One kernel per float format: `$load16` widens 16 weights at `p` to f32, `$load_tail` the
/// first `n < 16` (masked, nothing read past them).
macro_rules! float_rows {
    ($name:ident, $f:ident, $bytes:expr, $load16:ident, $load_tail:ident) => {
        /// Decode: 32 elements per step in two accumulators per row (two independent
        /// multiply-add chains), a masked step for the last `cols % 16`.
        pub(crate) struct $name;

        impl DecodeRows for $name {
            #[inline]
            unsafe fn rows<const R: usize>(
                cols: usize,
                w: *const u8,
                row_bytes: usize,
                a: *const u8,
            ) -> [f32; R] {
                unsafe { $f::<R>(cols, w, row_bytes, a) }
            }
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $f<const R: usize>(
            cols: usize,
            w: *const u8,
            rb: usize,
            a: *const u8,
        ) -> [f32; R] {
            let y = a as *const f32;
            let mut next_pf = 0;
            let mut acc0 = [_mm512_setzero_ps(); R];
            let mut acc1 = [_mm512_setzero_ps(); R];
            let mut k = 0;
            while k + 32 <= cols {
                prefetch_rows::<R>(w, rb, &mut next_pf, (k + 32) * $bytes);
                let y0 = unsafe { _mm512_loadu_ps(y.add(k)) };
                let y1 = unsafe { _mm512_loadu_ps(y.add(k + 16)) };
                for i in 0..R {
                    let p = unsafe { w.add(i * rb + k * $bytes) };
                    let x0 = unsafe { $load16(p) };
                    let x1 = unsafe { $load16(p.add(16 * $bytes)) };
                    acc0[i] = _mm512_fmadd_ps(x0, y0, acc0[i]);
                    acc1[i] = _mm512_fmadd_ps(x1, y1, acc1[i]);
                }
                k += 32;
            }
            if k + 16 <= cols {
                let y0 = unsafe { _mm512_loadu_ps(y.add(k)) };
                for i in 0..R {
                    let x0 = unsafe { $load16(w.add(i * rb + k * $bytes)) };
                    acc0[i] = _mm512_fmadd_ps(x0, y0, acc0[i]);
                }
                k += 16;
            }
            if k < cols {
                let m: __mmask16 = (1u16 << (cols - k)) - 1;
                let y1 = unsafe { _mm512_maskz_loadu_ps(m, y.add(k)) };
                for i in 0..R {
                    let x1 = unsafe { $load_tail(w.add(i * rb + k * $bytes), m) };
                    acc1[i] = _mm512_fmadd_ps(x1, y1, acc1[i]);
                }
            }
            std::array::from_fn(|i| unsafe { hsum512(_mm512_add_ps(acc0[i], acc1[i])) })
        }
    };
}

float_rows!(F32Rows, rows_f32, 4, load16_f32, tail_f32);
float_rows!(F16Rows, rows_f16, 2, load16_f16, tail_f16);
float_rows!(Bf16Rows, rows_bf16, 2, load16_bf16, tail_bf16);

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn load16_f32(p: *const u8) -> __m512 {
    unsafe { _mm512_loadu_ps(p as *const f32) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tail_f32(p: *const u8, m: __mmask16) -> __m512 {
    unsafe { _mm512_maskz_loadu_ps(m, p as *const f32) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn load16_f16(p: *const u8) -> __m512 {
    _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p as *const __m256i) })
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tail_f16(p: *const u8, m: __mmask16) -> __m512 {
    _mm512_cvtph_ps(unsafe { _mm256_maskz_loadu_epi16(m, p as *const i16) })
}

/// bf16 is the top half of an f32: widen to u32 and shift.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn load16_bf16(p: *const u8) -> __m512 {
    let wide = _mm512_cvtepu16_epi32(unsafe { _mm256_loadu_si256(p as *const __m256i) });
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tail_bf16(p: *const u8, m: __mmask16) -> __m512 {
    let wide = _mm512_cvtepu16_epi32(unsafe { _mm256_maskz_loadu_epi16(m, p as *const i16) });
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
}

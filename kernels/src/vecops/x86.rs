//! AVX2 (8 lanes) and AVX-512 (16 lanes) instances of the SIMD ops.

use super::simd::{vec_ops_table, Lanes};
use crate::kernel_types::Path;
use std::arch::x86_64::*;

#[derive(Clone, Copy)]
pub(super) struct F32x8(__m256);

impl Lanes for F32x8 {
    const N: usize = 8;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { F32x8(_mm256_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        unsafe { F32x8(_mm256_set1_ps(v)) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { F32x8(_mm256_add_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        unsafe { F32x8(_mm256_sub_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { F32x8(_mm256_mul_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        unsafe { F32x8(_mm256_div_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { F32x8(_mm256_fmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        unsafe { F32x8(_mm256_min_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        unsafe { F32x8(_mm256_max_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        unsafe { F32x8(_mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0)) }
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        unsafe { F32x8(_mm256_sqrt_ps(self.0)) }
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        unsafe {
            F32x8(_mm256_round_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(self.0))
        }
    }
    #[inline(always)]
    unsafe fn pow2(self) -> Self {
        unsafe {
            let e = _mm256_add_epi32(_mm256_cvtps_epi32(self.0), _mm256_set1_epi32(127));
            F32x8(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(e)))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
        unsafe {
            F32x8(_mm256_blendv_ps(
                b.0,
                a.0,
                _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0),
            ))
        }
    }
    #[inline(always)]
    unsafe fn with_sign_of(self, sign: Self) -> Self {
        unsafe {
            F32x8(_mm256_or_ps(
                self.0,
                _mm256_and_ps(sign.0, _mm256_set1_ps(-0.0)),
            ))
        }
    }
    #[inline(always)]
    unsafe fn sum_squares(x: *const f32, n: usize) -> f64 {
        unsafe {
            let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
            let mut i = 0;
            while i + 8 <= n {
                let a = _mm256_cvtps_pd(_mm_loadu_ps(x.add(i)));
                let b = _mm256_cvtps_pd(_mm_loadu_ps(x.add(i + 4)));
                lo = _mm256_fmadd_pd(a, a, lo);
                hi = _mm256_fmadd_pd(b, b, hi);
                i += 8;
            }
            let mut lanes = [0.0f64; 4];
            _mm256_storeu_pd(lanes.as_mut_ptr(), _mm256_add_pd(lo, hi));
            let mut s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
            while i < n {
                let v = *x.add(i) as f64;
                s += v * v;
                i += 1;
            }
            s
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct F32x16(__m512);

impl Lanes for F32x16 {
    const N: usize = 16;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { F32x16(_mm512_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        unsafe { F32x16(_mm512_set1_ps(v)) }
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        unsafe { F32x16(_mm512_add_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        unsafe { F32x16(_mm512_sub_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        unsafe { F32x16(_mm512_mul_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        unsafe { F32x16(_mm512_div_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { F32x16(_mm512_fmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn min(self, o: Self) -> Self {
        unsafe { F32x16(_mm512_min_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        unsafe { F32x16(_mm512_max_ps(self.0, o.0)) }
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        unsafe { F32x16(_mm512_abs_ps(self.0)) }
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        unsafe { F32x16(_mm512_sqrt_ps(self.0)) }
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        unsafe {
            F32x16(_mm512_roundscale_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(self.0))
        }
    }
    #[inline(always)]
    unsafe fn pow2(self) -> Self {
        unsafe {
            let e = _mm512_add_epi32(_mm512_cvtps_epi32(self.0), _mm512_set1_epi32(127));
            F32x16(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(e)))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
        unsafe {
            let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, o.0);
            F32x16(_mm512_mask_blend_ps(lt, b.0, a.0))
        }
    }
    #[inline(always)]
    unsafe fn with_sign_of(self, sign: Self) -> Self {
        // Integer and/or: the f32 forms are AVX-512 DQ, which the path does not require.
        unsafe {
            let s = _mm512_and_si512(_mm512_castps_si512(sign.0), _mm512_set1_epi32(i32::MIN));
            F32x16(_mm512_castsi512_ps(_mm512_or_si512(
                _mm512_castps_si512(self.0),
                s,
            )))
        }
    }
    #[inline(always)]
    unsafe fn sum_squares(x: *const f32, n: usize) -> f64 {
        unsafe {
            let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
            let mut i = 0;
            while i + 16 <= n {
                let a = _mm512_cvtps_pd(_mm256_loadu_ps(x.add(i)));
                let b = _mm512_cvtps_pd(_mm256_loadu_ps(x.add(i + 8)));
                lo = _mm512_fmadd_pd(a, a, lo);
                hi = _mm512_fmadd_pd(b, b, hi);
                i += 16;
            }
            let mut s = _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
            while i < n {
                let v = *x.add(i) as f64;
                s += v * v;
                i += 1;
            }
            s
        }
    }
}

vec_ops_table!(AVX2, avx2, Path::Avx2, F32x8, "avx2,fma");
vec_ops_table!(
    AVX512,
    avx512,
    Path::Avx512,
    F32x16,
    "avx512f,avx512bw,avx512vl,avx2,fma"
);

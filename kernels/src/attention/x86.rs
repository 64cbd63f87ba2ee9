//! AVX2 (8 lanes) and AVX-512 (16 lanes) instantiations of the attention algorithm. f16 keys
//! and values are widened with F16C `vcvtph2ps`; q8_0 with `vpmovsxbd` + `vcvtdq2ps` and one
//! multiply by the block scale.

use super::kernel::{self, Simd, Tile};
use super::{Attention, AttentionFn};
use std::arch::x86_64::*;

pub(crate) struct Avx2;

impl Simd for Avx2 {
    const W: usize = 8;
    const REGS: usize = 16;
    type V = __m256;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u8) -> __m256 {
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
    #[inline(always)]
    unsafe fn load_i8(p: *const u8) -> __m256 {
        unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i))) }
    }
    #[inline(always)]
    unsafe fn f16_to_f32(bits: u16) -> f32 {
        unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32))) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn div(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn abs(a: __m256) -> __m256 {
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
    }
    #[inline(always)]
    unsafe fn round(a: __m256) -> __m256 {
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m256) -> __m256 {
        unsafe {
            let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(a: __m256, b: __m256, x: __m256, y: __m256) -> __m256 {
        unsafe { _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_LT_OQ>(a, b)) }
    }
    #[inline(always)]
    unsafe fn hsum(a: __m256) -> f32 {
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }
    }
    #[inline(always)]
    unsafe fn hmax(a: __m256) -> f32 {
        unsafe {
            let s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
            let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)))
        }
    }
    #[inline(always)]
    unsafe fn lane0(a: __m256) -> f32 {
        unsafe { _mm256_cvtss_f32(a) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p as *const i8) }
    }
}

pub(crate) struct Avx512;

impl Simd for Avx512 {
    const W: usize = 16;
    const REGS: usize = 32;
    type V = __m512;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u8) -> __m512 {
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
    #[inline(always)]
    unsafe fn load_i8(p: *const u8) -> __m512 {
        unsafe { _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i))) }
    }
    #[inline(always)]
    unsafe fn f16_to_f32(bits: u16) -> f32 {
        unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32))) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn div(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn abs(a: __m512) -> __m512 {
        unsafe { _mm512_abs_ps(a) }
    }
    #[inline(always)]
    unsafe fn round(a: __m512) -> __m512 {
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m512) -> __m512 {
        unsafe {
            let e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(e))
        }
    }
    #[inline(always)]
    unsafe fn select_lt(a: __m512, b: __m512, x: __m512, y: __m512) -> __m512 {
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b), y, x) }
    }
    #[inline(always)]
    unsafe fn hsum(a: __m512) -> f32 {
        unsafe {
            let s = _mm256_add_ps(
                _mm512_castps512_ps256(a),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a))),
            );
            Avx2::hsum(s)
        }
    }
    #[inline(always)]
    unsafe fn hmax(a: __m512) -> f32 {
        unsafe {
            let s = _mm256_max_ps(
                _mm512_castps512_ps256(a),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a))),
            );
            Avx2::hmax(s)
        }
    }
    #[inline(always)]
    unsafe fn lane0(a: __m512) -> f32 {
        unsafe { _mm512_cvtss_f32(a) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p as *const i8) }
    }
    /// The tree of `hsum` (lane `i` + `i+8`, then `i+4`, `i+2`, `i+1`), each level done for
    /// several vectors at once: 31 shuffles and 15 adds for 16 sums instead of 64 and 64.
    #[inline(always)]
    unsafe fn hsum16(a: &[__m512; 16]) -> [f32; 16] {
        unsafe {
            // Level 1, pairs (x, y): [x.lo256 + x.hi256, y.lo256 + y.hi256].
            let z: [__m512; 8] = std::array::from_fn(|k| {
                let (x, y) = (a[2 * k], a[2 * k + 1]);
                _mm512_add_ps(
                    _mm512_shuffle_f32x4::<0x44>(x, y),
                    _mm512_shuffle_f32x4::<0xEE>(x, y),
                )
            });
            // Level 2: 128-bit quarter t of y[m] holds the 4 partial sums of a[4m + t].
            let y: [__m512; 4] = std::array::from_fn(|m| {
                let (u, w) = (z[2 * m], z[2 * m + 1]);
                _mm512_add_ps(
                    _mm512_shuffle_f32x4::<0x88>(u, w),
                    _mm512_shuffle_f32x4::<0xDD>(u, w),
                )
            });
            // Level 3: quarter t of x[n] is [2 sums of a[8n+t], 2 sums of a[8n+4+t]].
            let x: [__m512; 2] = std::array::from_fn(|n| {
                let (p, r) = (_mm512_castps_pd(y[2 * n]), _mm512_castps_pd(y[2 * n + 1]));
                _mm512_add_ps(
                    _mm512_castpd_ps(_mm512_unpacklo_pd(p, r)),
                    _mm512_castpd_ps(_mm512_unpackhi_pd(p, r)),
                )
            });
            // Level 4: lane 4t + s is the sum of a[4s + t]; transpose back to lane k = a[k].
            let s = _mm512_add_ps(
                _mm512_shuffle_ps::<0x88>(x[0], x[1]),
                _mm512_shuffle_ps::<0xDD>(x[0], x[1]),
            );
            let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
            let mut out = [0.0f32; 16];
            _mm512_storeu_ps(out.as_mut_ptr(), _mm512_permutexvar_ps(idx, s));
            out
        }
    }
}

macro_rules! path {
    ($name:ident, $simd:ty, $features:literal) => {
        pub(crate) struct $name;

        impl kernel::Path for $name {
            unsafe fn tile(
                a: &Attention<'_>,
                t: &Tile,
                c0: usize,
                c1: usize,
                st: &mut [f32],
                each: bool,
            ) {
                #[target_feature(enable = $features)]
                unsafe fn inner(
                    a: &Attention<'_>,
                    t: &Tile,
                    c0: usize,
                    c1: usize,
                    st: &mut [f32],
                    each: bool,
                ) {
                    unsafe { kernel::tile::<$simd>(a, t, c0, c1, st, each) }
                }
                unsafe { inner(a, t, c0, c1, st, each) }
            }
            unsafe fn merge(hd: usize, rows: usize, dst: &mut [f32], src: &[f32]) {
                #[target_feature(enable = $features)]
                unsafe fn inner(hd: usize, rows: usize, dst: &mut [f32], src: &[f32]) {
                    unsafe { kernel::merge::<$simd>(hd, rows, dst, src) }
                }
                unsafe { inner(hd, rows, dst, src) }
            }
        }
    };
}

path!(Avx2Path, Avx2, "avx2,fma,f16c");
path!(
    Avx512Path,
    Avx512,
    "avx512f,avx512bw,avx512vl,avx2,fma,f16c"
);

/// The AVX2 + FMA + F16C attention entry.
pub(crate) const AVX2: AttentionFn = kernel::attend::<Avx2Path>;
/// The AVX-512 attention entry (512-bit vectors: 16 lanes).
pub(crate) const AVX512: AttentionFn = kernel::attend::<Avx512Path>;

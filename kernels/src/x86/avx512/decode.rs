//! The decode (one activation row) driver of the AVX-512 path and the helpers its kernels
//! share.
//!
//! A decode matmul is a stream of weight bytes, and what limits it is how well that stream
//! keeps the memory system busy. Each kernel ([`DecodeRows`]) dots `R` consecutive weight rows
//! with the one activation row, two 32-element blocks per 512-bit vector, one f32 accumulator
//! vector per row reduced once at the end of the row, and a software prefetch of every line
//! [`PREFETCH_AHEAD`] bytes ahead of each row.
//!
//! Measured on Zen 5 (1 thread, matrices streamed from DRAM, best of 20, loaded machine):
//! for Q8_0, the K-quants and the floats, `R = 1` (rows read strictly in address order, one
//! stream the hardware prefetchers follow) beat four interleaved rows, the layout the walker
//! in `rows.rs` uses, by 0-50% on every shape, even with that walker's burst prefetch of the
//! next tile (without it interleaved rows ran at half speed). Q4_0 / Q5_0 / Q4_1 / Q5_1 do
//! more work per byte (18-24-byte blocks) and are compute-bound at `R = 1` (Q4_0 ran 21 GB/s
//! even from L2): `R = 2` shares the activation-side work of a step between two rows and ran
//! 640- and 2048-column rows 20-30% faster, but 16384-column rows at half speed, so tiles are
//! used only while `R` rows fit in the prefetch distance. With the weights in 2 MiB pages
//! (1 thread, thread CPU time, two alternations) the K-quants gain from `R = 2` too: Q4_K
//! 2048-column rows 15.2-16.9 → 19.1-22.0 GB/s (65-77% → 87-92% of the read probe), Q6_K 640
//! rows 20-24 → 25 GB/s, 16384 rows unchanged; Q8_0 stayed within noise at `R = 1, 2, 4`.
//!
//! Every row is computed by the same sequence of operations wherever it falls in the matrix,
//! so a threaded split gives the same bits as a single call.

use crate::rows::{dot_rows, RowKernel};
use crate::types::GgmlType;
use std::arch::x86_64::*;

/// How far ahead of the bytes a row is dotting it prefetches. Measured on Zen 5 (Q8_0, 1
/// thread, matrices streamed from DRAM, thread CPU time, best of 20 on a loaded machine):
/// 4, 8 and 16 KiB within noise of each other on 640- and 16384-column rows, 2 KiB 10-20%
/// slower on 640 columns; without prefetching 5-40% slower.
const PREFETCH_AHEAD: usize = 8192;

/// Dot products of `R` consecutive weight rows with one activation row.
pub(crate) trait DecodeRows {
    /// `out[i]` = dot of the weight row at `w + i * row_bytes` with the activation row `a`.
    ///
    /// # Safety
    /// The CPU has the AVX-512 path's features; `R` full weight rows of `cols` elements start
    /// at `w`, `row_bytes` apart, and a full activation row (the weight type's vec-dot format)
    /// at `a`; `cols` is a whole number of blocks.
    unsafe fn rows<const R: usize>(
        cols: usize,
        w: *const u8,
        row_bytes: usize,
        a: *const u8,
    ) -> [f32; R];
}

/// A [`DotRowsFn`](crate::kernel_types::DotRowsFn) for decode: `D` kernel over tiles of `R` rows
/// when there is one activation row (one row at a time where a tile would be longer than the
/// prefetch distance); any other `n_act` goes to the tile walker with the row kernel `P` (the
/// entry accepts any batch).
///
/// # Safety
/// As `DotRowsFn`, on a CPU with the AVX-512 path's features.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn decode<D: DecodeRows, P: RowKernel, const R: usize>(
    ty: GgmlType,
    cols: usize,
    w: &[u8],
    w_row_bytes: usize,
    n_w: usize,
    acts: &[u8],
    act_row_bytes: usize,
    n_act: usize,
    out: *mut f32,
    out_stride: usize,
) {
    if n_act != 1 {
        // SAFETY: forwarded as received.
        return unsafe {
            dot_rows::<P, 4, 1, 4>(
                ty,
                cols,
                w,
                w_row_bytes,
                n_w,
                acts,
                act_row_bytes,
                n_act,
                out,
                out_stride,
            )
        };
    }
    // Cheap checks that keep the raw-pointer kernels inside the slices whatever the caller
    // passed (matmul validates these properly; a failure here is a bug). Once per call.
    let bs = ty.block_size();
    assert!(
        cols.is_multiple_of(bs)
            && w_row_bytes == cols / bs * ty.type_size()
            && w.len() >= n_w * w_row_bytes
            && crate::formats::vec_dot_type(ty).is_some_and(|d| {
                act_row_bytes == cols / d.block_size() * d.type_size()
                    && acts.len() >= act_row_bytes
            }),
        "decode: {cols} {ty} columns do not match the buffers"
    );
    let a = acts.as_ptr();
    // SAFETY: checked above; the caller owns out[..n_w].
    unsafe {
        if R > 1 && R * w_row_bytes <= PREFETCH_AHEAD {
            decode_tiles::<D, R>(cols, w.as_ptr(), w_row_bytes, n_w, a, out)
        } else {
            decode_tiles::<D, 1>(cols, w.as_ptr(), w_row_bytes, n_w, a, out)
        }
    }
}

/// Rows `0..n_w` in tiles of `R`, the last `n_w % R` one at a time.
///
/// # Safety
/// `n_w` full rows at `w`, a full activation row at `a`, `out[..n_w]` writable.
#[inline(always)]
unsafe fn decode_tiles<D: DecodeRows, const R: usize>(
    cols: usize,
    w: *const u8,
    w_row_bytes: usize,
    n_w: usize,
    a: *const u8,
    out: *mut f32,
) {
    let mut r = 0;
    while r + R <= n_w {
        // SAFETY: rows r..r + R are inside `w`; the caller owns out[r..r + R].
        unsafe {
            let res = D::rows::<R>(cols, w.add(r * w_row_bytes), w_row_bytes, a);
            std::ptr::copy_nonoverlapping(res.as_ptr(), out.add(r), R);
        }
        r += R;
    }
    while r < n_w {
        // SAFETY: as above, one row.
        unsafe { *out.add(r) = D::rows::<1>(cols, w.add(r * w_row_bytes), w_row_bytes, a)[0] };
        r += 1;
    }
}

/// Prefetches the lines a row tile will have read `PREFETCH_AHEAD` bytes further on, exactly
/// one prefetch per 64 bytes per row: called once per step with the step's end offset `end`
/// (bytes into the rows); `next` is the first offset not yet prefetched.
#[inline(always)]
pub(super) fn prefetch_rows<const R: usize>(w: *const u8, rb: usize, next: &mut usize, end: usize) {
    while *next < end {
        for i in 0..R {
            // SAFETY: a prefetch never faults, whatever the address.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(
                    w.wrapping_add(i * rb + *next + PREFETCH_AHEAD) as *const i8
                )
            };
        }
        *next += 64;
    }
}

/// Two 32-byte pieces at `p` and `q` as one vector (`p` low half).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn load2x256(p: *const u8, q: *const u8) -> __m512i {
    unsafe {
        let lo = _mm512_castsi256_si512(_mm256_loadu_si256(p as *const __m256i));
        _mm512_inserti64x4::<1>(lo, _mm256_loadu_si256(q as *const __m256i))
    }
}

/// The f16 scales at `p` (lanes 0-7) and `q` (lanes 8-15) as f32, through the table.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn f16_pair(p: *const u8, q: *const u8) -> __m512 {
    use crate::simd_common::F16_TO_F32;
    unsafe {
        let lo = F16_TO_F32[std::ptr::read_unaligned(p as *const u16) as usize];
        let hi = F16_TO_F32[std::ptr::read_unaligned(q as *const u16) as usize];
        _mm512_mask_broadcastss_ps(_mm512_set1_ps(lo), 0xff00, _mm_set_ss(hi))
    }
}

/// The f16 scale at `p` in lanes 0-7, zero above (the odd last block of a row).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn f16_low(p: *const u8) -> __m512 {
    use crate::simd_common::F16_TO_F32;
    let v = F16_TO_F32[unsafe { std::ptr::read_unaligned(p as *const u16) } as usize];
    _mm512_maskz_mov_ps(0x00ff, _mm512_set1_ps(v))
}

/// Sum of the 16 lanes, by one fixed tree (the same for every row).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn hsum512(v: __m512) -> f32 {
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let s = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
    let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Reduces `R` accumulators.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn hsum_rows<const R: usize>(acc: &[__m512; R]) -> [f32; R] {
    std::array::from_fn(|i| unsafe { hsum512(acc[i]) })
}

/// The 4-bit values of two blocks' 16-byte `qs` (at `p` and `q`) as bytes in element order:
/// block `p` in the low 256 bits, block `q` in the high (each: low nibbles are elements 0-15,
/// high nibbles 16-31).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn nibbles_pair(p: *const u8, q: *const u8) -> __m512i {
    let both = unsafe {
        _mm256_inserti128_si256::<1>(
            _mm256_castsi128_si256(_mm_loadu_si128(p as *const __m128i)),
            _mm_loadu_si128(q as *const __m128i),
        )
    };
    let wide = _mm512_castsi256_si512(both);
    // 128-bit lanes [p, p, q, q], the odd lanes shifted down by 4.
    let spread = _mm512_shuffle_i64x2::<0b01_01_00_00>(wide, wide);
    let shifted = _mm512_srlv_epi64(spread, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
    _mm512_and_si512(shifted, _mm512_set1_epi8(0x0f))
}

/// `-c * sum(y)` in each i32 lane's share (4 bytes per lane): the start value that makes
/// `vpdpbusd(start, q, y)` the exact sum of `(q - c) * y` for unsigned `q`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn neg_offset_sum512(c: u8, y: __m512i) -> __m512i {
    let s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(c as i8), y);
    _mm512_sub_epi32(_mm512_setzero_si512(), s)
}

/// The activation side of a two-block step of a Q8_0 / Q8_1 row: the 64 values (block at
/// `pa` low, the next high) from the quants at offset `qoff` of each `bsize`-byte block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn act_pair(pa: *const u8, qoff: usize, bsize: usize) -> __m512i {
    unsafe { load2x256(pa.add(qoff), pa.add(bsize + qoff)) }
}

/// The odd last block's 32 activation values, zero above.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn act_low(pa: *const u8, qoff: usize) -> __m512i {
    _mm512_zextsi256_si512(unsafe { _mm256_loadu_si256(pa.add(qoff) as *const __m256i) })
}

//! AVX-512 VNNI kernels of the interleaved 16-row layout (x16) of Q4_0, Q5_0 and Q8_0 weights
//! (layout and scalar reference: `formats/interleaved.rs`), decode and prefill in one.
//!
//! Per 16-row group, block column and token: the block's weights unpack to 8 zmm (Q8_0: 8
//! loads; Q4_0: 4 loads, an `and` and a shift + `and` each; Q5_0: also one masked `vpaddb` per
//! vector, its mask a `kmovq` from memory), shared by every token of the tile; then 8
//! `vpdpbusd` with an embedded broadcast of the token's activation dwords into an i32 vector
//! started from the block's `-c * sum(y)`, one `vcvtdq2ps`, one multiply of the 16 row scales
//! by the token's block scale and one FMA into the f32 accumulator whose lane `r` is row `r`.
//! No horizontal sums: after the last block lane `r` is the result.
//!
//! Decode (one token) and prefill (a tile of up to `T = 8` tokens: 8 f32 accumulators, the 8
//! weight vectors and the scales stay in registers) run the same [`group`] function, only
//! with a different `T`: each (row, token) sees the same float operations in the same block
//! order, so batched logits are bit-identical to token-by-token ones.
//!
//! Measured on the Sapphire Rapids VM (2026-12-02, 1 thread, thread CPU time,
//! `EDGEGEMMA_BENCH_CLOCK=cpu`, a machine shared with other work), ggml-row kernels → x16:
//! - decode (`benches/matvec.rs`, weights streamed from DRAM in 2 MiB pages; GB/s and share
//!   of the read probe of the same run): Q4_0 640x2048 6.9 (74%) → 8.4 (93%), 2048x640 8.6
//!   (92%) → 9.0 (93%), 640x262144 6.7 (72%) → 9.0 (90%); Q5_0 6.8 (75%) → 9.2 (96%), 7.3
//!   (82%) → 7.8 (98%), 6.6 (67%) → 8.8 (95%); Q8_0 8.6 (92%) → 9.5 (97%), 8.6 (92%) → 9.9
//!   (100%), 6.8 (71%) → 9.2 (104%: the probe varies by a few % between passes).
//! - prefill (`benches/gemm.rs`, 128 tokens, GOP/s, against the 4 × 4 tiles of
//!   `gemm/avx512_q8.rs`): Q8_0 640x2048 85 → 222, 2048x640 85 → 191; Q4_0 73 → 194,
//!   105 → 218; Q5_0 64 → 207, 64 → 160 (2.0-3.3x on every shape of the bench). The float
//!   part per (row, token, block) is 3/16 of an op instead of the tiles' 3/4 per 4 lanes, so
//!   the `vpdpbusd` (port 0 only on Intel) are most of what is left.
//!
//! Activations are prepared once per call per token tile (that tile stays in L2, as in
//! `gemm/walk.rs`), in a thread-local buffer reused across calls: per block 40 bytes, the 32
//! quants (so the dword broadcasts never split a cache line), the i32 start value and the f32
//! scale.

use crate::formats::interleaved::INTERLEAVE_ROWS;
use crate::formats::{BlockQ4_0, BlockQ5_0, BlockQ8_0};
use crate::kernel_types::DotRowsFn;
use crate::simd_common::F16_TO_F32;
use crate::types::GgmlType;
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::mem::offset_of;

/// Weight formats (the `F` parameter).
const Q8_0: u8 = 0;
const Q4_0: u8 = 1;
const Q5_0: u8 = 2;

/// Bytes of one record (16 rows' block `b`).
const fn rec(f: u8) -> usize {
    INTERLEAVE_ROWS
        * match f {
            Q8_0 => size_of::<BlockQ8_0>(),
            Q4_0 => size_of::<BlockQ4_0>(),
            _ => size_of::<BlockQ5_0>(),
        }
}

/// The offset stored in the weights (`q = w + c`): the start value is `-c * sum(y)`.
const fn offset(f: u8) -> i32 {
    match f {
        Q8_0 => 128,
        Q4_0 => 8,
        _ => 16,
    }
}

/// Offset of the nibbles / quants in a record.
const fn quants_off(f: u8) -> usize {
    if f == Q5_0 {
        96
    } else {
        32
    }
}

/// A Q8_0 activation block: its bytes and the offset of its 32 quants.
const A_BLOCK: usize = size_of::<BlockQ8_0>();
const A_QS: usize = offset_of!(BlockQ8_0, qs);

/// Bytes of one prepared activation block: 32 quants, the i32 start value, the f32 scale.
const PREP_BLOCK: usize = 40;

/// Tokens per prefill register tile.
const T_TILE: usize = 8;

/// Prepared activation bytes per token tile: re-read once per 16-row group, so it should stay
/// in L2 (2 MiB per core on Sapphire Rapids) next to the group being streamed.
const ACT_TILE_BYTES: usize = 384 * 1024;

/// How far ahead of the record being dotted decode prefetches (as `decode.rs`, whose 8 KiB
/// measured best there; the groups are read strictly in address order, one stream).
const PREFETCH_AHEAD: usize = 8192;

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

thread_local! {
    /// Prepared activations of the current token tile, kept between calls.
    static PREP: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

fn prep_row_bytes(cols: usize) -> usize {
    (cols / 32 * PREP_BLOCK).div_ceil(64) * 64
}

/// Prepares one Q8_0 activation row (`nb` blocks at `act`) into `dst`.
fn prep<const F: u8>(nb: usize, act: &[u8], dst: &mut [u8]) {
    for (a, o) in act
        .chunks_exact(A_BLOCK)
        .zip(dst.chunks_exact_mut(PREP_BLOCK))
        .take(nb)
    {
        o[..32].copy_from_slice(&a[A_QS..A_BLOCK]);
        let sum: i32 = a[A_QS..A_BLOCK].iter().map(|&q| q as i8 as i32).sum();
        o[32..36].copy_from_slice(&(-offset(F) * sum).to_le_bytes());
        let d = F16_TO_F32[u16::from_le_bytes([a[0], a[1]]) as usize];
        o[36..40].copy_from_slice(&d.to_le_bytes());
    }
}

/// The 8 unsigned weight vectors of the record at `p`, vector `k` dotted with activation
/// dword `k`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn unpack<const F: u8>(p: *const u8) -> [__m512i; 8] {
    let ld = |off: usize| unsafe { _mm512_loadu_si512(p.add(off) as *const __m512i) };
    let mut v = [_mm512_setzero_si512(); 8];
    if F == Q8_0 {
        for (k, v) in v.iter_mut().enumerate() {
            *v = ld(32 + 64 * k);
        }
    } else {
        let low4 = _mm512_set1_epi8(0x0f);
        let bit4 = _mm512_set1_epi8(0x10);
        for j in 0..4 {
            let x = ld(quants_off(F) + 64 * j);
            let mut lo = _mm512_and_si512(x, low4);
            let mut hi = _mm512_and_si512(_mm512_srli_epi16::<4>(x), low4);
            if F == Q5_0 {
                let m =
                    |m: usize| unsafe { std::ptr::read_unaligned(p.add(32 + 8 * m) as *const u64) };
                lo = _mm512_mask_add_epi8(lo, m(j), lo, bit4);
                hi = _mm512_mask_add_epi8(hi, m(4 + j), hi, bit4);
            }
            v[j] = lo;
            v[4 + j] = hi;
        }
    }
    v
}

/// One 16-row group (`nb` records at `w`) against `T` prepared activation rows: lane `r` of
/// result `t` is the dot of row `r` with token `t`. `PF`: prefetch `PREFETCH_AHEAD` bytes
/// ahead of every record read (the first pass over a group).
///
/// # Safety
/// AVX-512 path features; `nb` records at `w`, `nb` prepared blocks at every `a[t]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn group<const F: u8, const T: usize, const PF: bool>(
    nb: usize,
    w: *const u8,
    a: [*const u8; T],
) -> [__m512; T] {
    let mut acc = [_mm512_setzero_ps(); T];
    let mut next_pf = 0;
    for b in 0..nb {
        let p = unsafe { w.add(b * rec(F)) };
        if PF {
            while next_pf < (b + 1) * rec(F) {
                // A prefetch never faults, whatever the address.
                _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(next_pf + PREFETCH_AHEAD) as *const i8);
                next_pf += 64;
            }
        }
        let d = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p as *const __m256i) });
        let wv = unsafe { unpack::<F>(p) };
        for t in 0..T {
            let pa = unsafe { a[t].add(b * PREP_BLOCK) };
            let rd = |off: usize| unsafe { std::ptr::read(pa.add(off) as *const i32) };
            let mut s = _mm512_set1_epi32(rd(32));
            for (k, &wk) in wv.iter().enumerate() {
                s = _mm512_dpbusd_epi32(s, wk, _mm512_set1_epi32(rd(4 * k)));
            }
            let dd = _mm512_mul_ps(d, _mm512_set1_ps(f32::from_bits(rd(36) as u32)));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), dd, acc[t]);
        }
    }
    acc
}

/// Group `g` against tokens `t..t + T` of the prepared tile at `a0`, stored to `out`.
///
/// # Safety
/// As [`x16`], inside its bounds.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn run<const F: u8, const T: usize, const PF: bool>(
    nb: usize,
    w: *const u8,
    a0: *const u8,
    pb: usize,
    t: usize,
    out: *mut f32,
    out_stride: usize,
) {
    let a: [*const u8; T] = std::array::from_fn(|j| unsafe { a0.add((t + j) * pb) });
    let acc = unsafe { group::<F, T, PF>(nb, w, a) };
    for (j, v) in acc.iter().enumerate() {
        unsafe { _mm512_storeu_ps(out.add((t + j) * out_stride), *v) };
    }
}

/// The `DotRowsFn` of packed (x16) weights of format `F`: `w` holds `n_w / 16` packed groups.
///
/// # Safety
/// As `DotRowsFn`, on a CPU with the AVX-512 path's features.
#[allow(clippy::too_many_arguments)]
unsafe fn x16<const F: u8>(
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
    let nb = cols / 32;
    // Cheap checks that keep the raw-pointer kernel inside the slices (matmul validates these
    // properly; a failure here is a bug).
    assert!(
        cols.is_multiple_of(32)
            && w_row_bytes == nb * ty.type_size()
            && rec(F) == INTERLEAVE_ROWS * ty.type_size()
            && n_w.is_multiple_of(INTERLEAVE_ROWS)
            && w.len() >= n_w * w_row_bytes
            && act_row_bytes == nb * A_BLOCK
            && acts.len() >= n_act * act_row_bytes,
        "x16: {cols} {ty} columns, {n_w} rows do not match the buffers"
    );
    if n_w == 0 || n_act == 0 {
        return;
    }
    let gb = INTERLEAVE_ROWS * w_row_bytes;
    let groups = n_w / INTERLEAVE_ROWS;
    let pb = prep_row_bytes(cols);
    let tile_tokens = (ACT_TILE_BYTES / pb.max(1)).max(T_TILE) / T_TILE * T_TILE;
    PREP.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut t0 = 0;
        while t0 < n_act {
            let t1 = (t0 + tile_tokens).min(n_act);
            let nt = t1 - t0;
            let lines = nt * pb / 64;
            if buf.len() < lines {
                buf.resize(lines, Line([0; 64]));
            }
            // SAFETY: Line is plain bytes.
            let bytes: &mut [u8] =
                unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, lines * 64) };
            for (t, dst) in bytes.chunks_exact_mut(pb).enumerate().take(nt) {
                let a = &acts[(t0 + t) * act_row_bytes..(t0 + t + 1) * act_row_bytes];
                prep::<F>(nb, a, dst);
            }
            let a0 = bytes.as_ptr();
            let full = nt / T_TILE * T_TILE;
            for g in 0..groups {
                let wg = unsafe { w.as_ptr().add(g * gb) };
                // SAFETY: out[(t0 + t) * out_stride + 16 g + r] for t < nt, r < 16 is the
                // caller's to write; wg addresses a whole group, a0 nt prepared rows.
                let o = unsafe { out.add(t0 * out_stride + g * INTERLEAVE_ROWS) };
                unsafe {
                    let mut t = 0;
                    while t < full {
                        if t == 0 {
                            run::<F, T_TILE, true>(nb, wg, a0, pb, t, o, out_stride);
                        } else {
                            run::<F, T_TILE, false>(nb, wg, a0, pb, t, o, out_stride);
                        }
                        t += T_TILE;
                    }
                    match nt - full {
                        0 => {}
                        1 if full == 0 => run::<F, 1, true>(nb, wg, a0, pb, t, o, out_stride),
                        1 => run::<F, 1, false>(nb, wg, a0, pb, t, o, out_stride),
                        2 => run::<F, 2, false>(nb, wg, a0, pb, t, o, out_stride),
                        3 => run::<F, 3, false>(nb, wg, a0, pb, t, o, out_stride),
                        4 => run::<F, 4, false>(nb, wg, a0, pb, t, o, out_stride),
                        5 => run::<F, 5, false>(nb, wg, a0, pb, t, o, out_stride),
                        6 => run::<F, 6, false>(nb, wg, a0, pb, t, o, out_stride),
                        7 => run::<F, 7, false>(nb, wg, a0, pb, t, o, out_stride),
                        _ => unreachable!("tails are shorter than the tile"),
                    }
                }
            }
            t0 = t1;
        }
    });
}

/// The x16 kernel of the AVX-512 table for `ty`, if it has one.
/// The x16 kernels of the `avx512` table, one per format.
pub(crate) const X16_Q8_0: DotRowsFn = x16::<Q8_0>;
pub(crate) const X16_Q4_0: DotRowsFn = x16::<Q4_0>;
pub(crate) const X16_Q5_0: DotRowsFn = x16::<Q5_0>;

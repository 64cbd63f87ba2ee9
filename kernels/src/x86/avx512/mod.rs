//! AVX-512 (F/BW/VL) + VNNI kernels. `vpdpbusd` does the u8 × i8 multiply-accumulate that
//! AVX2 needs `vpmaddubsw` + `vpmaddwd` (+ sign tricks) for, with no i16 saturation; AVX-512BW
//! mask registers expand Q5 high bits in one instruction.
//!
//! Decode (one activation row, the `dot_rows` entry) has its own 512-bit kernels for every
//! weight format, two 32-element blocks per vector (`decode.rs` says why rows are walked as
//! they are). Zen 5 executes zmm operations at full width; measured against the 256-bit
//! kernels from DRAM, 1 thread: Q4_K 23 → 28 GB/s, Q6_K 26 → 34, F16 27 → 33, Q5_0 16 → 21.
//! Other batch sizes use the 256-bit row kernels below (VNNI for Q4_0, Q5_0, Q5_1, Q8_0; AVX2
//! for the rest) through the tile walker in `rows.rs`. Which kernel runs for which format: the
//! `avx512` rows of the table in `dispatch.rs`.

pub(crate) mod decode;
pub(crate) mod float;
pub(crate) mod kquants;
pub(crate) mod q4_0;
pub(crate) mod q4_1;
pub(crate) mod q5_0;
pub(crate) mod q5_1;
pub(crate) mod q8_0;
pub(crate) mod x16;

use std::arch::x86_64::*;

/// `-c * sum(y)` in each i32 lane's share (4 bytes per lane): the start value that makes
/// `vpdpbusd(start, q, y)` the exact sum of `(q - c) * y` for unsigned `q`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn neg_offset_sum(c: u8, y: __m256i) -> __m256i {
    let s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(c as i8), y);
    _mm256_sub_epi32(_mm256_setzero_si256(), s)
}

//! AVX-512 (F/BW/VL) + VNNI kernels. `vpdpbusd` does the u8 × i8 multiply-accumulate that
//! AVX2 needs `vpmaddubsw` + `vpmaddwd` (+ sign tricks) for, with no i16 saturation; AVX-512BW
//! mask registers expand Q5 high bits in one instruction.
//!
//! Decode (one activation row, the `dot_rows` entry) has its own 512-bit kernels for every
//! weight format, two 32-element blocks per vector (`decode.rs` says why rows are walked as
//! they are). Zen 5 executes zmm operations at full width; measured against the 256-bit
//! kernels from DRAM, 1 thread: Q4_K 23 → 28 GB/s, Q6_K 26 → 34, F16 27 → 33, Q5_0 16 → 21.
//! Other batch sizes use the 256-bit row kernels below (VNNI for Q4_0, Q5_0, Q5_1, Q8_0; AVX2
//! for the rest) through the tile walker in `rows.rs`.

mod decode;
mod float;
mod kquants;
mod q4_0;
mod q4_1;
mod q5_0;
mod q5_1;
mod q8_0;
mod x16;

pub(crate) use x16::x16_for;

use super::avx2;
use crate::dispatch::Kernels;
use crate::kernel_types::{DotRowsFn, Path};
use crate::types::GgmlType;
use decode::decode;
use std::arch::x86_64::*;

pub(crate) static KERNELS: Kernels = Kernels::new(
    Path::Avx512,
    super::avx2::quantize::quantize_act,
    dot_rows_for,
    crate::x86::gemm::avx512_for,
    crate::attention::AVX512,
);

pub(crate) fn dot_rows_for(ty: GgmlType) -> DotRowsFn {
    match ty {
        GgmlType::Q4_0 => decode::<q4_0::Q4_0Rows, q4_0::Q4_0, 2>,
        GgmlType::Q4_1 => decode::<q4_1::Q4_1Rows, avx2::Q4_1, 2>,
        GgmlType::Q5_0 => decode::<q5_0::Q5_0Rows, q5_0::Q5_0, 2>,
        GgmlType::Q5_1 => decode::<q5_1::Q5_1Rows, q5_1::Q5_1, 2>,
        GgmlType::Q8_0 => decode::<q8_0::Q8_0Rows, q8_0::Q8_0, 1>,
        GgmlType::Q4_K => decode::<kquants::Q4KRows, avx2::Q4K, 2>,
        GgmlType::Q5_K => decode::<kquants::Q5KRows, avx2::Q5K, 2>,
        GgmlType::Q6_K => decode::<kquants::Q6KRows, avx2::Q6K, 2>,
        GgmlType::F32 => decode::<float::F32Rows, avx2::F32, 1>,
        GgmlType::F16 => decode::<float::F16Rows, avx2::F16, 1>,
        GgmlType::BF16 => decode::<float::Bf16Rows, avx2::Bf16, 1>,
        _ => super::avx2::KERNELS.dot_rows(ty),
    }
}

/// `-c * sum(y)` in each i32 lane's share (4 bytes per lane): the start value that makes
/// `vpdpbusd(start, q, y)` the exact sum of `(q - c) * y` for unsigned `q`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn neg_offset_sum(c: u8, y: __m256i) -> __m256i {
    let s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(c as i8), y);
    _mm256_sub_epi32(_mm256_setzero_si256(), s)
}

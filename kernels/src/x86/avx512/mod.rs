//! AVX-512 (F/BW/VL) + VNNI kernels: `vpdpbusd` does the u8 × i8 multiply-accumulate of
//! `vpmaddubsw` + `vpmaddwd` in one instruction (and without the i16 saturation limit), and
//! 512-bit registers hold two 32-element blocks. Formats where this measured no faster than
//! AVX2 use the AVX2 kernels.

use crate::dispatch::{DotRowsFn, Kernels, Path};
use crate::types::GgmlType;

pub(crate) static KERNELS: Kernels =
    Kernels::new(Path::Avx512, super::avx2::quantize::quantize_act, dot_rows_for);

fn dot_rows_for(ty: GgmlType) -> DotRowsFn {
    super::avx2::KERNELS.dot_rows(ty)
}

//! dotprod (ARMv8.2) table: Raspberry Pi 5, most phones. Kernel bodies in `int.rs` with
//! `sdot`; the float formats use the plain NEON kernels.

use super::int::{q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0};
use super::{path_kernel, quantize, Sdot};
use crate::dispatch::{DotRowsFn, Kernels, Path};
use crate::rows::dot_rows;
use crate::types::GgmlType;

path_kernel!(Q4_0, "neon,dotprod", q4_0, Sdot);
path_kernel!(Q4_1, "neon,dotprod", q4_1, Sdot);
path_kernel!(Q5_0, "neon,dotprod", q5_0, Sdot);
path_kernel!(Q5_1, "neon,dotprod", q5_1, Sdot);
path_kernel!(Q8_0, "neon,dotprod", q8_0, Sdot);
path_kernel!(Q4K, "neon,dotprod", q4_k, Sdot);
path_kernel!(Q5K, "neon,dotprod", q5_k, Sdot);
path_kernel!(Q6K, "neon,dotprod", q6_k, Sdot);

pub(crate) static KERNELS: Kernels = Kernels::new(
    Path::Dotprod,
    quantize::quantize_act,
    dot_rows_for,
    super::gemm::dotprod_for,
);

/// Decode: 4 rows per call (2 for the K-quants, whose per-row state is larger).
pub(super) fn dot_rows_for(ty: GgmlType) -> DotRowsFn {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => super::neon::dot_rows_for(ty),
        GgmlType::Q4_0 => dot_rows::<Q4_0, 4, 1, 4>,
        GgmlType::Q4_1 => dot_rows::<Q4_1, 4, 1, 4>,
        GgmlType::Q5_0 => dot_rows::<Q5_0, 4, 1, 4>,
        GgmlType::Q5_1 => dot_rows::<Q5_1, 4, 1, 4>,
        GgmlType::Q8_0 => dot_rows::<Q8_0, 4, 1, 4>,
        GgmlType::Q4_K => dot_rows::<Q4K, 2, 1, 4>,
        GgmlType::Q5_K => dot_rows::<Q5K, 2, 1, 4>,
        GgmlType::Q6_K => dot_rows::<Q6K, 2, 1, 4>,
        _ => crate::dispatch::scalar().dot_rows(ty),
    }
}

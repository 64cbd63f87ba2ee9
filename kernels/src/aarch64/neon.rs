//! Plain NEON (ARMv8.0) table: Raspberry Pi 3/4, Cortex-A53/A72. Kernel bodies in `int.rs`,
//! with the `smull`/`sadalp` dot product.

use super::int::{bf16w, f16w, f32w, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0};
use super::{path_kernel, quantize, PlainDot};
use crate::dispatch::{DotRowsFn, Kernels, Path};
use crate::rows::dot_rows;
use crate::types::GgmlType;

path_kernel!(F32, "neon", f32w, PlainDot);
path_kernel!(F16, "neon", f16w, PlainDot);
path_kernel!(Bf16, "neon", bf16w, PlainDot);
path_kernel!(Q4_0, "neon", q4_0, PlainDot);
path_kernel!(Q4_1, "neon", q4_1, PlainDot);
path_kernel!(Q5_0, "neon", q5_0, PlainDot);
path_kernel!(Q5_1, "neon", q5_1, PlainDot);
path_kernel!(Q8_0, "neon", q8_0, PlainDot);
path_kernel!(Q4K, "neon", q4_k, PlainDot);
path_kernel!(Q5K, "neon", q5_k, PlainDot);
path_kernel!(Q6K, "neon", q6_k, PlainDot);

pub(crate) static KERNELS: Kernels = Kernels::new(
    Path::Neon,
    quantize::quantize_act,
    dot_rows_for,
    super::gemm::neon_for,
);

/// Decode: 4 rows per call (2 for the K-quants, whose per-row state is larger).
pub(super) fn dot_rows_for(ty: GgmlType) -> DotRowsFn {
    match ty {
        GgmlType::F32 => dot_rows::<F32, 4, 1, 4>,
        GgmlType::F16 => dot_rows::<F16, 4, 1, 4>,
        GgmlType::BF16 => dot_rows::<Bf16, 4, 1, 4>,
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

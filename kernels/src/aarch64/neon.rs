//! Plain NEON (ARMv8.0) table: Raspberry Pi 3/4, Cortex-A53/A72. Quantized formats use the
//! 4-row tiles of `gemm.rs` for decode and prefill (`smull`/`smlal2` + `saddlp`); the float
//! formats the f32 FMA kernels of `int.rs`.

use super::int::{bf16w, f16w, f32w};
use super::{path_kernel, quantize, PlainDot};
use crate::dispatch::Kernels;
use crate::kernel_types::{DotRowsFn, Path};
use crate::rows::dot_rows;
use crate::types::GgmlType;

path_kernel!(F32, "neon", f32w, PlainDot);
path_kernel!(F16, "neon", f16w, PlainDot);
path_kernel!(Bf16, "neon", bf16w, PlainDot);

pub(crate) static KERNELS: Kernels = Kernels::new(
    Path::Neon,
    quantize::quantize_act,
    dot_rows_for,
    super::gemm::neon_for,
    crate::attention::NEON,
);

/// Decode: quantized formats through the 4-row tiles (one token), floats 4 rows per call.
pub(super) fn dot_rows_for(ty: GgmlType) -> DotRowsFn {
    match ty {
        GgmlType::F32 => dot_rows::<F32, 4, 1, 4>,
        GgmlType::F16 => dot_rows::<F16, 4, 1, 4>,
        GgmlType::BF16 => dot_rows::<Bf16, 4, 1, 4>,
        _ => super::gemm::neon_for(ty),
    }
}

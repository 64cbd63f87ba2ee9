//! dotprod (ARMv8.2) table: Raspberry Pi 5, most phones. Quantized formats use the 4-row
//! `sdot` tiles of `gemm.rs` for decode and prefill, except Q6_K decode, where the per-row
//! kernel of `int.rs` is cheaper (llvm-mca, Cortex-A76: 8.9 vs 9.7 cycles per 32 weights);
//! the float formats use the plain NEON kernels.

use super::int::q6_k;
use super::{path_kernel, quantize, Sdot};
use crate::dispatch::Kernels;
use crate::kernel_types::{DotRowsFn, Path};
use crate::rows::dot_rows;
use crate::types::GgmlType;

path_kernel!(Q6K, "neon,dotprod", q6_k, Sdot);

pub(crate) static KERNELS: Kernels = Kernels::new(
    Path::Dotprod,
    quantize::quantize_act,
    dot_rows_for,
    super::gemm::dotprod_for,
    crate::attention::NEON,
);

/// Decode: the 4-row tiles with one token; Q6_K 2 rows per call of the per-row kernel.
pub(super) fn dot_rows_for(ty: GgmlType) -> DotRowsFn {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => super::neon::dot_rows_for(ty),
        GgmlType::Q6_K => dot_rows::<Q6K, 2, 1, 4>,
        _ => super::gemm::dotprod_for(ty),
    }
}

//! Prefill (batch of tokens × weight matrix) kernels for x86_64: the `gemm` entries of the
//! `avx2` and `avx512` tables. A format with a register-tiled microkernel here
//! ([`walk::GemmKernel`]) runs through [`walk::gemm`]; the others use the decode path's row
//! kernels through the tile walker in `rows.rs`.

mod avx512_k;
mod avx512_q8;
mod walk;

use crate::dispatch::DotRowsFn;
use crate::types::GgmlType;
use walk::gemm;

/// The `avx2` table's prefill kernel for weights of type `ty`.
pub(crate) fn avx2_for(ty: GgmlType) -> DotRowsFn {
    super::avx2::dot_rows_for(ty)
}

/// The `avx512` table's prefill kernel for weights of type `ty`.
pub(crate) fn avx512_for(ty: GgmlType) -> DotRowsFn {
    match ty {
        GgmlType::Q8_0 => gemm::<avx512_q8::GemmQ8_0, 4, 4>,
        GgmlType::Q4_0 => gemm::<avx512_q8::GemmQ4_0, 4, 4>,
        GgmlType::Q5_0 => gemm::<avx512_q8::GemmQ5_0, 4, 4>,
        GgmlType::Q4_K => gemm::<avx512_k::GemmQ4K, 4, 4>,
        GgmlType::Q5_K => gemm::<avx512_k::GemmQ5K, 4, 4>,
        GgmlType::Q6_K => gemm::<avx512_k::GemmQ6K, 4, 4>,
        _ => super::avx512::dot_rows_for(ty),
    }
}

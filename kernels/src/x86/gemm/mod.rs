//! Prefill (batch of tokens × weight matrix) kernels for x86_64: the `gemm` entries of the
//! `avx2` and `avx512` tables. Until a format has its own register-tiled microkernel it uses
//! the decode path's row kernels through the tile walker in `rows.rs`.

use crate::dispatch::DotRowsFn;
use crate::types::GgmlType;

/// The `avx2` table's prefill kernel for weights of type `ty`.
pub(crate) fn avx2_for(ty: GgmlType) -> DotRowsFn {
    super::avx2::dot_rows_for(ty)
}

/// The `avx512` table's prefill kernel for weights of type `ty`.
pub(crate) fn avx512_for(ty: GgmlType) -> DotRowsFn {
    super::avx512::dot_rows_for(ty)
}

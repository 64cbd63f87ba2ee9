//! i8mm (ARMv8.6 `smmla`) table: recent phones. Prefill uses the 4 rows × 4 tokens `smmla`
//! microkernels of `gemm_i8mm.rs`; decode (one token: `smmla`'s second token column would be
//! wasted) uses the dotprod kernels, the float formats the NEON ones.

use super::{dotprod, quantize};
use crate::dispatch::Kernels;
use crate::kernel_types::Path;

pub(crate) static KERNELS: Kernels = Kernels::new(
    Path::I8mm,
    quantize::quantize_act,
    dotprod::dot_rows_for,
    super::gemm_i8mm::i8mm_for,
    crate::attention::NEON,
);

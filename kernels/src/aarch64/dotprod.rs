//! dotprod (ARMv8.2) table: Raspberry Pi 5, most phones. Quantized formats use the 4-row
//! `sdot` tiles of `gemm.rs` for decode and prefill, except Q6_K decode, where the per-row
//! kernel of `int.rs` is cheaper (llvm-mca, Cortex-A76: 8.9 vs 9.7 cycles per 32 weights);
//! the float formats use the plain NEON kernels. The table itself: the `dotprod` rows in
//! `dispatch.rs`.

use super::int::q6_k;
use super::{path_kernel, Sdot};

path_kernel!(Q6K, "neon,dotprod", q6_k, Sdot);

//! Plain NEON (ARMv8.0) table: Raspberry Pi 3/4, Cortex-A53/A72. Quantized formats use the
//! 4-row tiles of `gemm.rs` for decode and prefill (`smull`/`smlal2` + `saddlp`); the float
//! formats the f32 FMA kernels of `int.rs`. The table itself (which kernel runs for which
//! format): the `neon` rows in `dispatch.rs`.

use super::int::{bf16w, f16w, f32w};
use super::{path_kernel, PlainDot};

path_kernel!(F32, "neon", f32w, PlainDot);
path_kernel!(F16, "neon", f16w, PlainDot);
path_kernel!(Bf16, "neon", bf16w, PlainDot);

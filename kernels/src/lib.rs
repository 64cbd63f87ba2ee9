//! Quantized block formats (byte-for-byte ggml layouts), scalar reference kernels,
//! SIMD kernels and run-time dispatch. Knows nothing about models.

pub mod attention;
pub mod dispatch;
pub mod formats;
pub mod matmul;
pub mod types;
pub mod vecops;

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod kernel_types;
mod rows;
mod simd_common;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use dispatch::kernels;
pub use formats::interleaved::{deinterleave_row, interleave, INTERLEAVE_ROWS};
pub use matmul::{matmul, matmul_many, matmul_many_with, matmul_with, QuantizedActs, WeightMatrix};
pub use types::GgmlType;

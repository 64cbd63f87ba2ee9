//! Quantized block formats, one file per format, laid out byte for byte like ggml's blocks,
//! with scalar reference quantize / dequantize / dot kernels.
//!
//! The typed per-format functions (`quantize_row_q4_0`, `vec_dot_q4_k_q8_k`, ...) panic if the
//! slice lengths disagree (a caller bug); the byte-level functions in this module validate
//! everything and return a [`FormatError`] instead.
//!
//! The scalar dot products are the reference every SIMD kernel is tested against: integer sums
//! per block exactly as ggml forms them, then scaled and accumulated in f32.

pub mod bf16;
pub mod f16;
pub mod f32;
pub mod interleaved;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_1;
pub mod q8_k;

mod kquant_search;

pub use bf16::{dequantize_row_bf16, quantize_row_bf16, vec_dot_bf16_f32};
pub use f16::{dequantize_row_f16, quantize_row_f16, vec_dot_f16_f32};
pub use f32::{dequantize_row_f32, quantize_row_f32, vec_dot_f32_f32};
pub use q4_0::{dequantize_row_q4_0, quantize_row_q4_0, vec_dot_q4_0_q8_0, BlockQ4_0, QK4_0};
pub use q4_1::{dequantize_row_q4_1, quantize_row_q4_1, vec_dot_q4_1_q8_1, BlockQ4_1, QK4_1};
pub use q4_k::{dequantize_row_q4_k, quantize_row_q4_k, vec_dot_q4_k_q8_k, BlockQ4_K};
pub use q5_0::{dequantize_row_q5_0, quantize_row_q5_0, vec_dot_q5_0_q8_0, BlockQ5_0, QK5_0};
pub use q5_1::{dequantize_row_q5_1, quantize_row_q5_1, vec_dot_q5_1_q8_1, BlockQ5_1, QK5_1};
pub use q5_k::{dequantize_row_q5_k, quantize_row_q5_k, vec_dot_q5_k_q8_k, BlockQ5_K};
pub use q6_k::{dequantize_row_q6_k, quantize_row_q6_k, vec_dot_q6_k_q8_k, BlockQ6_K};
pub use q8_0::{dequantize_row_q8_0, quantize_row_q8_0, vec_dot_q8_0_q8_0, BlockQ8_0, QK8_0};
pub use q8_1::{dequantize_row_q8_1, quantize_row_q8_1, BlockQ8_1, QK8_1};
pub use q8_k::{dequantize_row_q8_k, quantize_row_q8_k, BlockQ8_K};

use crate::types::GgmlType;
use bytemuck::Pod;

/// Elements per k-quant super-block (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// f16 bits (as stored in blocks) to f32; exact.
#[inline]
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// f32 to f16 bits, rounding to nearest even (what ggml's `GGML_FP32_TO_FP16` and numpy do).
#[inline]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// ggml's `nearest_int`: round to nearest, ties to even (ggml gets this by adding 1.5 * 2^23;
/// the inputs it sees are far below that range).
#[inline]
pub(crate) fn nearest_int(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// What went wrong in a byte-level format call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The type has no implementation of the requested operation in this crate.
    Unsupported { ty: GgmlType, op: &'static str },
    /// The element count is not a whole number of blocks.
    PartialBlock { ty: GgmlType, n: usize },
    /// A buffer has the wrong length for the element count.
    SizeMismatch {
        ty: GgmlType,
        buffer: &'static str,
        expected: usize,
        got: usize,
    },
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::Unsupported { ty, op } => {
                write!(f, "{op} is not supported for tensor type {ty}")
            }
            FormatError::PartialBlock { ty, n } => write!(
                f,
                "{n} elements is not a multiple of the {ty} block size {}",
                ty.block_size()
            ),
            FormatError::SizeMismatch {
                ty,
                buffer,
                expected,
                got,
            } => write!(
                f,
                "{ty} {buffer} buffer is {got} bytes/elements, expected {expected}"
            ),
        }
    }
}

impl std::error::Error for FormatError {}

/// The format ggml quantizes the activation row to before dotting it with a weight row of type
/// `w`, or `None` if `w` cannot be used as a weight here. Float weights dot against f32.
pub fn vec_dot_type(w: GgmlType) -> Option<GgmlType> {
    match w {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => Some(GgmlType::F32),
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => Some(GgmlType::Q8_0),
        GgmlType::Q4_1 | GgmlType::Q5_1 => Some(GgmlType::Q8_1),
        GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => Some(GgmlType::Q8_K),
        _ => None,
    }
}

/// Checks that `n` elements are whole blocks of `ty` and that `bytes` holds exactly them.
fn check_row(
    ty: GgmlType,
    n: usize,
    bytes: usize,
    buffer: &'static str,
) -> Result<(), FormatError> {
    if !n.is_multiple_of(ty.block_size()) {
        return Err(FormatError::PartialBlock { ty, n });
    }
    let expected = n / ty.block_size() * ty.type_size();
    if bytes != expected {
        return Err(FormatError::SizeMismatch {
            ty,
            buffer,
            expected,
            got: bytes,
        });
    }
    Ok(())
}

/// Blocks copied at a time when a byte buffer is not aligned for its block type.
const CHUNK_BLOCKS: usize = 8;

/// Runs a typed dequantizer over `src` bytes (already validated to hold whole blocks for `dst`).
fn dequantize_bytes<B: Pod>(src: &[u8], dst: &mut [f32], f: fn(&[B], &mut [f32])) {
    let block_bytes = std::mem::size_of::<B>();
    let n_blocks = src.len() / block_bytes;
    if n_blocks == 0 {
        return;
    }
    if let Ok(blocks) = bytemuck::try_cast_slice::<u8, B>(src) {
        f(blocks, dst);
        return;
    }
    // Misaligned (e.g. an odd offset into a file): copy a few blocks at a time to the stack.
    let qk = dst.len() / n_blocks;
    let mut buf = [B::zeroed(); CHUNK_BLOCKS];
    for (src_chunk, dst_chunk) in src
        .chunks(CHUNK_BLOCKS * block_bytes)
        .zip(dst.chunks_mut(CHUNK_BLOCKS * qk))
    {
        let k = src_chunk.len() / block_bytes;
        for (slot, bytes) in buf.iter_mut().zip(src_chunk.chunks_exact(block_bytes)) {
            *slot = bytemuck::pod_read_unaligned(bytes);
        }
        f(&buf[..k], dst_chunk);
    }
}

/// Runs a typed quantizer writing into `dst` bytes (already validated).
fn quantize_bytes<B: Pod>(src: &[f32], dst: &mut [u8], f: fn(&[f32], &mut [B])) {
    let block_bytes = std::mem::size_of::<B>();
    let n_blocks = dst.len() / block_bytes;
    if n_blocks == 0 {
        return;
    }
    if let Ok(blocks) = bytemuck::try_cast_slice_mut::<u8, B>(dst) {
        f(src, blocks);
        return;
    }
    let qk = src.len() / n_blocks;
    let mut buf = [B::zeroed(); CHUNK_BLOCKS];
    for (src_chunk, dst_chunk) in src
        .chunks(CHUNK_BLOCKS * qk)
        .zip(dst.chunks_mut(CHUNK_BLOCKS * block_bytes))
    {
        let k = dst_chunk.len() / block_bytes;
        f(src_chunk, &mut buf[..k]);
        dst_chunk.copy_from_slice(bytemuck::cast_slice(&buf[..k]));
    }
}

/// Runs a typed dot product over two validated byte rows with the same block count.
fn dot_bytes<W: Pod, A: Pod>(w: &[u8], a: &[u8], f: fn(&[W], &[A]) -> f32) -> f32 {
    let w_bytes = std::mem::size_of::<W>();
    let a_bytes = std::mem::size_of::<A>();
    if let (Ok(wb), Ok(ab)) = (
        bytemuck::try_cast_slice::<u8, W>(w),
        bytemuck::try_cast_slice::<u8, A>(a),
    ) {
        return f(wb, ab);
    }
    // Misaligned: the weight and activation blocks correspond one to one, so dot a few blocks
    // at a time from stack copies and add the partial sums.
    let mut wbuf = [W::zeroed(); CHUNK_BLOCKS];
    let mut abuf = [A::zeroed(); CHUNK_BLOCKS];
    let mut sum = 0.0f32;
    for (wc, ac) in w
        .chunks(CHUNK_BLOCKS * w_bytes)
        .zip(a.chunks(CHUNK_BLOCKS * a_bytes))
    {
        let k = wc.len() / w_bytes;
        for (slot, bytes) in wbuf.iter_mut().zip(wc.chunks_exact(w_bytes)) {
            *slot = bytemuck::pod_read_unaligned(bytes);
        }
        for (slot, bytes) in abuf.iter_mut().zip(ac.chunks_exact(a_bytes)) {
            *slot = bytemuck::pod_read_unaligned(bytes);
        }
        sum += f(&wbuf[..k], &abuf[..k]);
    }
    sum
}

/// Dequantizes one row: `src` holds `dst.len()` elements of type `ty`.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), FormatError> {
    if !ty.is_supported() {
        return Err(FormatError::Unsupported {
            ty,
            op: "dequantize",
        });
    }
    check_row(ty, dst.len(), src.len(), "source")?;
    match ty {
        GgmlType::F32 => dequantize_bytes(src, dst, dequantize_row_f32),
        GgmlType::F16 => dequantize_bytes(src, dst, dequantize_row_f16),
        GgmlType::BF16 => dequantize_bytes(src, dst, dequantize_row_bf16),
        GgmlType::Q4_0 => dequantize_bytes(src, dst, dequantize_row_q4_0),
        GgmlType::Q4_1 => dequantize_bytes(src, dst, dequantize_row_q4_1),
        GgmlType::Q5_0 => dequantize_bytes(src, dst, dequantize_row_q5_0),
        GgmlType::Q5_1 => dequantize_bytes(src, dst, dequantize_row_q5_1),
        GgmlType::Q8_0 => dequantize_bytes(src, dst, dequantize_row_q8_0),
        GgmlType::Q8_1 => dequantize_bytes(src, dst, dequantize_row_q8_1),
        GgmlType::Q4_K => dequantize_bytes(src, dst, dequantize_row_q4_k),
        GgmlType::Q5_K => dequantize_bytes(src, dst, dequantize_row_q5_k),
        GgmlType::Q6_K => dequantize_bytes(src, dst, dequantize_row_q6_k),
        GgmlType::Q8_K => dequantize_bytes(src, dst, dequantize_row_q8_k),
        _ => unreachable!("is_supported() covers exactly the types above"),
    }
    Ok(())
}

/// Quantizes one row of `src.len()` elements to type `ty` into `dst`, producing the same bytes
/// as ggml's reference quantizers (no importance matrix).
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), FormatError> {
    if !ty.is_supported() {
        return Err(FormatError::Unsupported { ty, op: "quantize" });
    }
    check_row(ty, src.len(), dst.len(), "destination")?;
    match ty {
        GgmlType::F32 => quantize_bytes(src, dst, quantize_row_f32),
        GgmlType::F16 => quantize_bytes(src, dst, quantize_row_f16),
        GgmlType::BF16 => quantize_bytes(src, dst, quantize_row_bf16),
        GgmlType::Q4_0 => quantize_bytes(src, dst, quantize_row_q4_0),
        GgmlType::Q4_1 => quantize_bytes(src, dst, quantize_row_q4_1),
        GgmlType::Q5_0 => quantize_bytes(src, dst, quantize_row_q5_0),
        GgmlType::Q5_1 => quantize_bytes(src, dst, quantize_row_q5_1),
        GgmlType::Q8_0 => quantize_bytes(src, dst, quantize_row_q8_0),
        GgmlType::Q8_1 => quantize_bytes(src, dst, quantize_row_q8_1),
        GgmlType::Q4_K => quantize_bytes(src, dst, quantize_row_q4_k),
        GgmlType::Q5_K => quantize_bytes(src, dst, quantize_row_q5_k),
        GgmlType::Q6_K => quantize_bytes(src, dst, quantize_row_q6_k),
        GgmlType::Q8_K => quantize_bytes(src, dst, quantize_row_q8_k),
        _ => unreachable!("is_supported() covers exactly the types above"),
    }
    Ok(())
}

/// Scalar reference dot product of a weight row of `n` elements of type `ty` with an activation
/// row already quantized to `vec_dot_type(ty)` (f32 bytes for float weights).
pub fn vec_dot_scalar(
    ty: GgmlType,
    n: usize,
    w_row: &[u8],
    act: &[u8],
) -> Result<f32, FormatError> {
    let act_ty = vec_dot_type(ty).ok_or(FormatError::Unsupported { ty, op: "vec_dot" })?;
    check_row(ty, n, w_row.len(), "weight")?;
    check_row(act_ty, n, act.len(), "activation")?;
    Ok(match ty {
        GgmlType::F32 => dot_bytes(w_row, act, vec_dot_f32_f32),
        GgmlType::F16 => dot_bytes(w_row, act, vec_dot_f16_f32),
        GgmlType::BF16 => dot_bytes(w_row, act, vec_dot_bf16_f32),
        GgmlType::Q4_0 => dot_bytes(w_row, act, vec_dot_q4_0_q8_0),
        GgmlType::Q4_1 => dot_bytes(w_row, act, vec_dot_q4_1_q8_1),
        GgmlType::Q5_0 => dot_bytes(w_row, act, vec_dot_q5_0_q8_0),
        GgmlType::Q5_1 => dot_bytes(w_row, act, vec_dot_q5_1_q8_1),
        GgmlType::Q8_0 => dot_bytes(w_row, act, vec_dot_q8_0_q8_0),
        GgmlType::Q4_K => dot_bytes(w_row, act, vec_dot_q4_k_q8_k),
        GgmlType::Q5_K => dot_bytes(w_row, act, vec_dot_q5_k_q8_k),
        GgmlType::Q6_K => dot_bytes(w_row, act, vec_dot_q6_k_q8_k),
        _ => unreachable!("vec_dot_type() is Some exactly for the types above"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's `nearest_int`: add 1.5 * 2^23 so the FPU rounds (to nearest even) into the low
    /// mantissa bits, then read them back.
    fn ggml_nearest_int(x: f32) -> i32 {
        let bits = (x + 12_582_912.0f32).to_bits() as i32;
        (bits & 0x007f_ffff) - 0x0040_0000
    }

    #[test]
    fn nearest_int_matches_ggml_bit_trick() {
        let mut values = vec![
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            0.49999997,
            -0.49999997,
            4194303.0,
        ];
        values.extend((-4000..4000).map(|i| i as f32 * 0.25 + 0.125));
        values.extend((-2000..2000).map(|i| i as f32 * 1.37e-3));
        values.extend((0..200).map(|i| 4194303.0 - i as f32 * 0.5));
        for v in values {
            assert_eq!(nearest_int(v), ggml_nearest_int(v), "{v}");
            assert_eq!(nearest_int(-v), ggml_nearest_int(-v), "{}", -v);
        }
    }

    #[test]
    fn f16_conversion_rounds_to_nearest_even() {
        // 1 + 2^-11 is halfway between 1 and the next f16: ties go to the even (1.0).
        assert_eq!(f32_to_f16_bits(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f32_to_f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7c00);
        assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
    }
}

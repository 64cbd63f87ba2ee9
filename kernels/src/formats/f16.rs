//! F16: IEEE half floats (block size 1), stored as their bit patterns.
//! SIMD kernels (kernels/src/): x86/avx2/float.rs, aarch64/int.rs.

use super::{f16_bits_to_f32, f32_to_f16_bits};

/// Rounds each value to the nearest f16 (ties to even), like ggml's `GGML_FP32_TO_FP16`
/// and numpy's `astype(float16)`; overflow goes to infinity.
pub fn quantize_row_f16(x: &[f32], y: &mut [u16]) {
    assert_eq!(x.len(), y.len(), "f16 row length mismatch");
    for (o, &v) in y.iter_mut().zip(x) {
        *o = f32_to_f16_bits(v);
    }
}

/// Widens each f16 to f32 (exact).
pub fn dequantize_row_f16(x: &[u16], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "f16 row length mismatch");
    for (o, &b) in y.iter_mut().zip(x) {
        *o = f16_bits_to_f32(b);
    }
}

/// Dot product of an f16 weight row with f32 activations; products are exact in f32 widening
/// and accumulated in f64 (see `vec_dot_f32_f32`).
pub fn vec_dot_f16_f32(x: &[u16], y: &[f32]) -> f32 {
    assert_eq!(x.len(), y.len(), "f16 dot length mismatch");
    let mut sum = 0.0f64;
    for (&a, &b) in x.iter().zip(y) {
        sum += (f16_bits_to_f32(a) * b) as f64;
    }
    sum as f32
}

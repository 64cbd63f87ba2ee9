//! F32: plain little-endian floats (block size 1). Float weights dot against f32 activations.
//! SIMD kernels (kernels/src/): x86/avx2/float.rs, aarch64/int.rs.

/// Copies `x` into `y` (the "quantizer" of the identity format).
pub fn quantize_row_f32(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "f32 row length mismatch");
    y.copy_from_slice(x);
}

/// Copies `x` into `y`.
pub fn dequantize_row_f32(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "f32 row length mismatch");
    y.copy_from_slice(x);
}

/// Dot product: f32 products summed in f64, as ggml's generic `ggml_vec_dot_f32` does (it sums
/// in `ggml_float`, a double). That keeps the reference nearly independent of summation order,
/// which is what SIMD kernels are compared against.
pub fn vec_dot_f32_f32(x: &[f32], y: &[f32]) -> f32 {
    assert_eq!(x.len(), y.len(), "f32 dot length mismatch");
    let mut sum = 0.0f64;
    for (&a, &b) in x.iter().zip(y) {
        sum += (a * b) as f64;
    }
    sum as f32
}

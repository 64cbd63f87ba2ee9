//! BF16: the upper 16 bits of an f32 (block size 1), stored as their bit patterns.
//! SIMD kernels (kernels/src/): x86/avx2/float.rs, aarch64/int.rs.

/// f32 to bf16 bits like ggml's `ggml_compute_fp32_to_bf16`: NaN is kept and forced quiet,
/// everything else is rounded to nearest, ties to even (overflow goes to infinity).
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if (bits & 0x7fff_ffff) > 0x7f80_0000 {
        return ((bits >> 16) | 64) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    ((bits as u64 + round as u64) >> 16) as u16
}

/// bf16 bits to f32 (exact).
#[inline]
pub fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

pub fn quantize_row_bf16(x: &[f32], y: &mut [u16]) {
    assert_eq!(x.len(), y.len(), "bf16 row length mismatch");
    for (o, &v) in y.iter_mut().zip(x) {
        *o = f32_to_bf16_bits(v);
    }
}

pub fn dequantize_row_bf16(x: &[u16], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "bf16 row length mismatch");
    for (o, &b) in y.iter_mut().zip(x) {
        *o = bf16_bits_to_f32(b);
    }
}

/// Dot product of a bf16 weight row with f32 activations, accumulated in f64
/// (see `vec_dot_f32_f32`).
pub fn vec_dot_bf16_f32(x: &[u16], y: &[f32]) -> f32 {
    assert_eq!(x.len(), y.len(), "bf16 dot length mismatch");
    let mut sum = 0.0f64;
    for (&a, &b) in x.iter().zip(y) {
        sum += (bf16_bits_to_f32(a) * b) as f64;
    }
    sum as f32
}

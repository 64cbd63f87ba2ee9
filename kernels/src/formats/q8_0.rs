//! Q8_0: blocks of 32 signed 8-bit values with one f16 scale (8.5 bits per weight).
//! Also the activation format Q4_0, Q5_0 and Q8_0 weights dot against.
//! SIMD kernels (kernels/src/): x86/avx2/q8_0.rs, x86/avx512/q8_0.rs, aarch64/{int,i8mm}.rs;
//! activation quantizer: x86/avx2/quantize.rs, aarch64/quantize.rs.

use super::{f16_bits_to_f32, f32_to_f16_bits};
use bytemuck::{Pod, Zeroable};

/// Elements per Q8_0 block.
pub const QK8_0: usize = 32;

/// ggml's `block_q8_0`: value `i` is `d * qs[i]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale, f16 bits.
    pub d: u16,
    pub qs: [i8; QK8_0],
}
const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);

/// ggml's `quantize_row_q8_0_ref`: `d = max|x| / 127`, `q = round(x / d)` (half away from zero).
pub fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    assert_eq!(x.len(), y.len() * QK8_0, "q8_0 row length mismatch");
    for (xb, yb) in x.chunks_exact(QK8_0).zip(y.iter_mut()) {
        let amax = xb.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb.d = f32_to_f16_bits(d);
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = (v * id).round() as i8;
        }
    }
}

pub fn dequantize_row_q8_0(x: &[BlockQ8_0], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK8_0, "q8_0 row length mismatch");
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK8_0)) {
        let d = f16_bits_to_f32(xb.d);
        for (o, &q) in yb.iter_mut().zip(&xb.qs) {
            *o = q as f32 * d;
        }
    }
}

/// Per block: integer sum of q_x * q_y, times d_x * d_y.
pub fn vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len(), "q8_0 dot block count mismatch");
    let mut sumf = 0.0f32;
    for (xb, yb) in x.iter().zip(y) {
        let sumi: i32 = xb
            .qs
            .iter()
            .zip(&yb.qs)
            .map(|(&a, &b)| a as i32 * b as i32)
            .sum();
        sumf += sumi as f32 * (f16_bits_to_f32(xb.d) * f16_bits_to_f32(yb.d));
    }
    sumf
}

//! Q4_0: blocks of 32 4-bit values with one f16 scale, zero point 8 (4.5 bits per weight).
//! SIMD kernels (kernels/src/): x86/avx2/q4_0.rs, x86/avx512/q4_0.rs, aarch64/{int,i8mm}.rs.

use super::q8_0::BlockQ8_0;
use super::{f16_bits_to_f32, f32_to_f16_bits};
use bytemuck::{Pod, Zeroable};

/// Elements per Q4_0 block.
pub const QK4_0: usize = 32;

/// ggml's `block_q4_0`: byte `j` of `qs` holds element `j` in its low nibble and element
/// `j + 16` in its high nibble; value is `d * (q - 8)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale, f16 bits.
    pub d: u16,
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ4_0>() == 18);

/// ggml's `quantize_row_q4_0_ref`: the signed value of largest magnitude maps to -8
/// (`d = max / -8`), `q = min(15, trunc(x / d + 8.5))`.
pub fn quantize_row_q4_0(x: &[f32], y: &mut [BlockQ4_0]) {
    assert_eq!(x.len(), y.len() * QK4_0, "q4_0 row length mismatch");
    for (xb, yb) in x.chunks_exact(QK4_0).zip(y.iter_mut()) {
        let max = signed_absmax(xb);
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb.d = f32_to_f16_bits(d);
        for j in 0..QK4_0 / 2 {
            let q0 = ((xb[j] * id + 8.5) as i8).min(15) as u8;
            let q1 = ((xb[j + QK4_0 / 2] * id + 8.5) as i8).min(15) as u8;
            yb.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// The element of largest magnitude, with its sign (the first one on ties).
pub(crate) fn signed_absmax(xb: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in xb {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

pub fn dequantize_row_q4_0(x: &[BlockQ4_0], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK4_0, "q4_0 row length mismatch");
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK4_0)) {
        let d = f16_bits_to_f32(xb.d);
        for (j, &byte) in xb.qs.iter().enumerate() {
            yb[j] = ((byte & 0x0f) as i32 - 8) as f32 * d;
            yb[j + QK4_0 / 2] = ((byte >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// Per block: integer sum of (q - 8) * q8, times d_x * d_y.
pub fn vec_dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len(), "q4_0 dot block count mismatch");
    let mut sumf = 0.0f32;
    for (xb, yb) in x.iter().zip(y) {
        let mut sumi = 0i32;
        for (j, &byte) in xb.qs.iter().enumerate() {
            let v0 = (byte & 0x0f) as i32 - 8;
            let v1 = (byte >> 4) as i32 - 8;
            sumi += v0 * yb.qs[j] as i32 + v1 * yb.qs[j + QK4_0 / 2] as i32;
        }
        sumf += sumi as f32 * (f16_bits_to_f32(xb.d) * f16_bits_to_f32(yb.d));
    }
    sumf
}

//! Q5_0: blocks of 32 5-bit values with one f16 scale, zero point 16 (5.5 bits per weight).
//! SIMD kernels (kernels/src/): x86/avx2/q5_0.rs, x86/avx512/q5_0.rs, aarch64/{int,i8mm}.rs.

use super::q4_0::signed_absmax;
use super::q8_0::BlockQ8_0;
use super::{f16_bits_to_f32, f32_to_f16_bits};
use bytemuck::{Pod, Zeroable};

/// Elements per Q5_0 block.
pub const QK5_0: usize = 32;

/// ggml's `block_q5_0`: low nibbles packed as in Q4_0; bit `i` of the little-endian u32 `qh`
/// is bit 4 of element `i`. Value is `d * (q - 16)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale, f16 bits.
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK5_0 / 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ5_0>() == 22);

/// The 5-bit value of element `j` (0..32).
#[inline]
pub(crate) fn q5_value(qs: &[u8; 16], qh: u32, j: usize) -> u8 {
    let low = if j < 16 {
        qs[j] & 0x0f
    } else {
        qs[j - 16] >> 4
    };
    low | ((((qh >> j) & 1) as u8) << 4)
}

/// ggml's `quantize_row_q5_0_ref`: the signed value of largest magnitude maps to -16
/// (`d = max / -16`), `q = min(31, trunc(x / d + 16.5))`.
pub fn quantize_row_q5_0(x: &[f32], y: &mut [BlockQ5_0]) {
    assert_eq!(x.len(), y.len() * QK5_0, "q5_0 row length mismatch");
    for (xb, yb) in x.chunks_exact(QK5_0).zip(y.iter_mut()) {
        let max = signed_absmax(xb);
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb.d = f32_to_f16_bits(d);
        let mut qh = 0u32;
        for j in 0..QK5_0 / 2 {
            let q0 = ((xb[j] * id + 16.5) as i8).min(31) as u8;
            let q1 = ((xb[j + QK5_0 / 2] * id + 16.5) as i8).min(31) as u8;
            yb.qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
            qh |= ((q0 as u32 >> 4) & 1) << j;
            qh |= ((q1 as u32 >> 4) & 1) << (j + QK5_0 / 2);
        }
        yb.qh = qh.to_le_bytes();
    }
}

pub fn dequantize_row_q5_0(x: &[BlockQ5_0], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK5_0, "q5_0 row length mismatch");
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK5_0)) {
        let d = f16_bits_to_f32(xb.d);
        let qh = u32::from_le_bytes(xb.qh);
        for (j, o) in yb.iter_mut().enumerate() {
            *o = (q5_value(&xb.qs, qh, j) as i32 - 16) as f32 * d;
        }
    }
}

/// Per block: integer sum of (q - 16) * q8, times d_x * d_y.
pub fn vec_dot_q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    assert_eq!(x.len(), y.len(), "q5_0 dot block count mismatch");
    let mut sumf = 0.0f32;
    for (xb, yb) in x.iter().zip(y) {
        let qh = u32::from_le_bytes(xb.qh);
        let mut sumi = 0i32;
        for (j, &q8) in yb.qs.iter().enumerate() {
            sumi += (q5_value(&xb.qs, qh, j) as i32 - 16) * q8 as i32;
        }
        sumf += sumi as f32 * (f16_bits_to_f32(xb.d) * f16_bits_to_f32(yb.d));
    }
    sumf
}

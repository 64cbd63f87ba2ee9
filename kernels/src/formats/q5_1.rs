//! Q5_1: blocks of 32 5-bit values with an f16 scale and an f16 minimum (6 bits per weight).
//! SIMD kernels (kernels/src/): x86/avx2/q5_1.rs, x86/avx512/q5_1.rs, aarch64/{int,i8mm}.rs.

use super::q4_1::min_max;
use super::q5_0::q5_value;
use super::q8_1::BlockQ8_1;
use super::{f16_bits_to_f32, f32_to_f16_bits};
use bytemuck::{Pod, Zeroable};

/// Elements per Q5_1 block.
pub const QK5_1: usize = 32;

/// ggml's `block_q5_1`: bits packed as in Q5_0; value is `d * q + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Block minimum, f16 bits.
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; QK5_1 / 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ5_1>() == 24);

/// ggml's `quantize_row_q5_1_ref`: `d = (max - min) / 31`, `q = min(31, trunc((x - min) / d + 0.5))`.
pub fn quantize_row_q5_1(x: &[f32], y: &mut [BlockQ5_1]) {
    assert_eq!(x.len(), y.len() * QK5_1, "q5_1 row length mismatch");
    for (xb, yb) in x.chunks_exact(QK5_1).zip(y.iter_mut()) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb.d = f32_to_f16_bits(d);
        yb.m = f32_to_f16_bits(min);
        let mut qh = 0u32;
        for j in 0..QK5_1 / 2 {
            let q0 = (((xb[j] - min) * id + 0.5) as i8).min(31) as u8;
            let q1 = (((xb[j + QK5_1 / 2] - min) * id + 0.5) as i8).min(31) as u8;
            yb.qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
            qh |= ((q0 as u32 >> 4) & 1) << j;
            qh |= ((q1 as u32 >> 4) & 1) << (j + QK5_1 / 2);
        }
        yb.qh = qh.to_le_bytes();
    }
}

pub fn dequantize_row_q5_1(x: &[BlockQ5_1], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK5_1, "q5_1 row length mismatch");
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK5_1)) {
        let d = f16_bits_to_f32(xb.d);
        let m = f16_bits_to_f32(xb.m);
        let qh = u32::from_le_bytes(xb.qh);
        for (j, o) in yb.iter_mut().enumerate() {
            *o = q5_value(&xb.qs, qh, j) as f32 * d + m;
        }
    }
}

/// Per block: `d_x * d_y * sum(q * q8) + m_x * s_y` (`s_y` = d_y * sum(q8)).
pub fn vec_dot_q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    assert_eq!(x.len(), y.len(), "q5_1 dot block count mismatch");
    let mut sumf = 0.0f32;
    for (xb, yb) in x.iter().zip(y) {
        let qh = u32::from_le_bytes(xb.qh);
        let mut sumi = 0i32;
        for (j, &q8) in yb.qs.iter().enumerate() {
            sumi += q5_value(&xb.qs, qh, j) as i32 * q8 as i32;
        }
        sumf += (f16_bits_to_f32(xb.d) * f16_bits_to_f32(yb.d)) * sumi as f32
            + f16_bits_to_f32(xb.m) * f16_bits_to_f32(yb.s);
    }
    sumf
}

//! Q4_1: blocks of 32 4-bit values with an f16 scale and an f16 minimum (5 bits per weight).
//! SIMD kernels (kernels/src/): x86/avx2/q4_1.rs, aarch64/{int,i8mm}.rs.

use super::q8_1::BlockQ8_1;
use super::{f16_bits_to_f32, f32_to_f16_bits};
use bytemuck::{Pod, Zeroable};

/// Elements per Q4_1 block.
pub const QK4_1: usize = 32;

/// ggml's `block_q4_1`: nibbles packed as in Q4_0; value is `d * q + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale, f16 bits.
    pub d: u16,
    /// Block minimum, f16 bits.
    pub m: u16,
    pub qs: [u8; QK4_1 / 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ4_1>() == 20);

/// Smallest and largest element (ggml starts from +-FLT_MAX and compares with `<` / `>`).
pub(crate) fn min_max(xb: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in xb {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// ggml's `quantize_row_q4_1_ref`: `d = (max - min) / 15`, `q = min(15, trunc((x - min) / d + 0.5))`.
pub fn quantize_row_q4_1(x: &[f32], y: &mut [BlockQ4_1]) {
    assert_eq!(x.len(), y.len() * QK4_1, "q4_1 row length mismatch");
    for (xb, yb) in x.chunks_exact(QK4_1).zip(y.iter_mut()) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb.d = f32_to_f16_bits(d);
        yb.m = f32_to_f16_bits(min);
        for j in 0..QK4_1 / 2 {
            let q0 = (((xb[j] - min) * id + 0.5) as i8).min(15) as u8;
            let q1 = (((xb[j + QK4_1 / 2] - min) * id + 0.5) as i8).min(15) as u8;
            yb.qs[j] = q0 | (q1 << 4);
        }
    }
}

pub fn dequantize_row_q4_1(x: &[BlockQ4_1], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK4_1, "q4_1 row length mismatch");
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK4_1)) {
        let d = f16_bits_to_f32(xb.d);
        let m = f16_bits_to_f32(xb.m);
        for (j, &byte) in xb.qs.iter().enumerate() {
            yb[j] = (byte & 0x0f) as f32 * d + m;
            yb[j + QK4_1 / 2] = (byte >> 4) as f32 * d + m;
        }
    }
}

/// Per block: `d_x * d_y * sum(q * q8) + m_x * s_y` (`s_y` = d_y * sum(q8)).
pub fn vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    assert_eq!(x.len(), y.len(), "q4_1 dot block count mismatch");
    let mut sumf = 0.0f32;
    for (xb, yb) in x.iter().zip(y) {
        let mut sumi = 0i32;
        for (j, &byte) in xb.qs.iter().enumerate() {
            sumi += (byte & 0x0f) as i32 * yb.qs[j] as i32
                + (byte >> 4) as i32 * yb.qs[j + QK4_1 / 2] as i32;
        }
        sumf += (f16_bits_to_f32(xb.d) * f16_bits_to_f32(yb.d)) * sumi as f32
            + f16_bits_to_f32(xb.m) * f16_bits_to_f32(yb.s);
    }
    sumf
}

//! Q5_K: like Q4_K with a fifth bit per value (5.5 bits per weight).
//! SIMD kernels (kernels/src/): x86/avx2/q5_k.rs, aarch64/{int,i8mm}.rs.

use super::kquant_search::{make_qkx2_quants, pack_scale_mins, subblock_weights};
use super::q4_k::{get_scale_min_k4, requantize_with_block_scales, K_SCALE_SIZE};
use super::q8_k::BlockQ8_K;
use super::{f16_bits_to_f32, f32_to_f16_bits, QK_K};
use bytemuck::{Pod, Zeroable};

/// ggml's `block_q5_K`. Low 4 bits are packed as in Q4_K; bit 4 of element `64c + l` is bit
/// `2c` of `qh[l]`, and of element `64c + 32 + l` bit `2c + 1` of `qh[l]`.
/// Value is `d * scale[j] * q - dmin * min[j]`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ5_K {
    /// Super-block scale for the 6-bit scales, f16 bits.
    pub d: u16,
    /// Super-block scale for the 6-bit minimums, f16 bits.
    pub dmin: u16,
    /// Packed like Q4_K's (see [`get_scale_min_k4`]).
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ5_K>() == 176);

/// The 5-bit value of element `i` (0..256).
#[inline]
fn q5k_value(xb: &BlockQ5_K, i: usize) -> u8 {
    let (c, r) = (i / 64, i % 64);
    let (l, high) = (r % 32, r >= 32);
    let byte = xb.qs[32 * c + l];
    let low = if high { byte >> 4 } else { byte & 0x0f };
    let bit = 2 * c + high as usize;
    low | (((xb.qh[l] >> bit) & 1) << 4)
}

/// llama.cpp's `quantize_row_q5_K_ref` (no importance matrix): as Q4_K with 31 levels and the
/// search parameters ggml uses for 5 bits (`rmin = -0.5`, 15 steps).
pub fn quantize_row_q5_k(x: &[f32], y: &mut [BlockQ5_K]) {
    assert_eq!(x.len(), y.len() * QK_K, "q5_K row length mismatch");
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        let mut levels = [0u8; QK_K];
        let mut scales = [0.0f32; QK_K / 32];
        let mut mins = [0.0f32; QK_K / 32];
        for (j, (xs, ls)) in xb
            .chunks_exact(32)
            .zip(levels.chunks_exact_mut(32))
            .enumerate()
        {
            let weights = subblock_weights(xs);
            let (scale, min) = make_qkx2_quants(31, xs, &weights, ls, -0.5, 0.1, 15);
            scales[j] = scale;
            mins[j] = min;
        }
        let (d, dmin) = pack_scale_mins(&scales, &mins, &mut yb.scales);
        yb.d = f32_to_f16_bits(d);
        yb.dmin = f32_to_f16_bits(dmin);
        requantize_with_block_scales(xb, &yb.scales, yb.d, yb.dmin, 31, &mut levels);
        yb.qh = [0; QK_K / 8];
        for (c, chunk) in levels.chunks_exact(64).enumerate() {
            for l in 0..32 {
                let (lo, hi) = (chunk[l], chunk[32 + l]);
                yb.qs[32 * c + l] = (lo & 0x0f) | ((hi & 0x0f) << 4);
                yb.qh[l] |= ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1));
            }
        }
    }
}

pub fn dequantize_row_q5_k(x: &[BlockQ5_K], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK_K, "q5_K row length mismatch");
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = f16_bits_to_f32(xb.d);
        let dmin = f16_bits_to_f32(xb.dmin);
        for (j, out) in yb.chunks_exact_mut(32).enumerate() {
            let (sc, m) = get_scale_min_k4(j, &xb.scales);
            let (d1, m1) = (d * sc as f32, dmin * m as f32);
            for (l, o) in out.iter_mut().enumerate() {
                *o = d1 * q5k_value(xb, 32 * j + l) as f32 - m1;
            }
        }
    }
}

/// Per super-block: `d_x * d_y * sum_j(scale_j * sum(q * q8))
/// - dmin_x * d_y * sum_j(min_j * (bsum_2j + bsum_2j+1))`, integer sums as in ggml.
pub fn vec_dot_q5_k_q8_k(x: &[BlockQ5_K], y: &[BlockQ8_K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q5_K dot block count mismatch");
    let mut sumf = 0.0f32;
    for (xb, yb) in x.iter().zip(y) {
        let mut sumi = 0i32;
        let mut sumi_mins = 0i32;
        for j in 0..QK_K / 32 {
            let (sc, m) = get_scale_min_k4(j, &xb.scales);
            let mut dot = 0i32;
            for l in 0..32 {
                dot += q5k_value(xb, 32 * j + l) as i32 * yb.qs[32 * j + l] as i32;
            }
            sumi += sc as i32 * dot;
            sumi_mins += m as i32 * (yb.bsums[2 * j] as i32 + yb.bsums[2 * j + 1] as i32);
        }
        sumf += f16_bits_to_f32(xb.d) * yb.d * sumi as f32
            - f16_bits_to_f32(xb.dmin) * yb.d * sumi_mins as f32;
    }
    sumf
}

//! Q4_K: super-blocks of 256 4-bit values in 8 sub-blocks of 32, each with a 6-bit scale and a
//! 6-bit minimum, themselves scaled by f16 `d` and `dmin` (4.5 bits per weight).
//! SIMD kernels (kernels/src/): x86/avx2/q4_k.rs, aarch64/{int,i8mm}.rs.

use super::kquant_search::{make_qkx2_quants, pack_scale_mins, subblock_weights};
use super::q8_k::BlockQ8_K;
use super::{f16_bits_to_f32, f32_to_f16_bits, nearest_int, QK_K};
use bytemuck::{Pod, Zeroable};

/// Bytes of packed 6-bit scales and minimums in Q4_K and Q5_K blocks.
pub const K_SCALE_SIZE: usize = 12;

/// ggml's `block_q4_K`. Value `i` of sub-block `j` is `d * scale[j] * q - dmin * min[j]`.
/// `qs` holds 4 chunks of 64 values: byte `l` of chunk `c` (`qs[32c + l]`) has element
/// `64c + l` in its low nibble and `64c + 32 + l` in its high nibble.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ4_K {
    /// Super-block scale for the 6-bit scales, f16 bits.
    pub d: u16,
    /// Super-block scale for the 6-bit minimums, f16 bits.
    pub dmin: u16,
    /// 8 scales and 8 minimums, 6 bits each (see [`get_scale_min_k4`]).
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(core::mem::size_of::<BlockQ4_K>() == 144);

/// The 6-bit (scale, min) of sub-block `j` (0..8). Bytes 0-3 hold scales 0-3 in their low 6
/// bits, bytes 4-7 minimums 0-3; sub-blocks 4-7 keep their low 4 bits in bytes 8-11
/// (scale low nibble, min high nibble) and their top 2 bits in the spare top bits of bytes 0-7.
#[inline]
pub fn get_scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// llama.cpp's `quantize_row_q4_K_ref` (no importance matrix): per sub-block a weighted
/// least-squares search for scale and min (`make_qkx2_quants`, weights `rms + |x|`), the 8
/// scales and mins quantized to 6 bits against the largest of each, then every value
/// re-quantized with the final rounded scales.
pub fn quantize_row_q4_k(x: &[f32], y: &mut [BlockQ4_K]) {
    assert_eq!(x.len(), y.len() * QK_K, "q4_K row length mismatch");
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
            let (scale, min) = make_qkx2_quants(15, xs, &weights, ls, -1.0, 0.1, 20);
            scales[j] = scale;
            mins[j] = min;
        }
        let (d, dmin) = pack_scale_mins(&scales, &mins, &mut yb.scales);
        yb.d = f32_to_f16_bits(d);
        yb.dmin = f32_to_f16_bits(dmin);
        requantize_with_block_scales(xb, &yb.scales, yb.d, yb.dmin, 15, &mut levels);
        for (c, chunk) in levels.chunks_exact(64).enumerate() {
            for l in 0..32 {
                yb.qs[32 * c + l] = chunk[l] | (chunk[32 + l] << 4);
            }
        }
    }
}

/// Re-quantizes each sub-block with its final (6-bit, f16-scaled) scale and min, clamping to
/// `0..=nmax`. Sub-blocks whose scale came out 0 keep the levels of the search (as ggml does).
pub(crate) fn requantize_with_block_scales(
    xb: &[f32],
    packed: &[u8; K_SCALE_SIZE],
    d_bits: u16,
    dmin_bits: u16,
    nmax: i32,
    levels: &mut [u8; QK_K],
) {
    for (j, (xs, ls)) in xb
        .chunks_exact(32)
        .zip(levels.chunks_exact_mut(32))
        .enumerate()
    {
        let (sc, m) = get_scale_min_k4(j, packed);
        let d = f16_bits_to_f32(d_bits) * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = f16_bits_to_f32(dmin_bits) * m as f32;
        for (l, &v) in ls.iter_mut().zip(xs) {
            *l = nearest_int((v + dm) / d).clamp(0, nmax) as u8;
        }
    }
}

pub fn dequantize_row_q4_k(x: &[BlockQ4_K], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK_K, "q4_K row length mismatch");
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = f16_bits_to_f32(xb.d);
        let dmin = f16_bits_to_f32(xb.dmin);
        for (c, out) in yb.chunks_exact_mut(64).enumerate() {
            let (sc1, m1) = get_scale_min_k4(2 * c, &xb.scales);
            let (sc2, m2) = get_scale_min_k4(2 * c + 1, &xb.scales);
            let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
            let q = &xb.qs[32 * c..32 * c + 32];
            for l in 0..32 {
                out[l] = d1 * (q[l] & 0x0f) as f32 - m1;
                out[32 + l] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

/// Per super-block: `d_x * d_y * sum_j(scale_j * sum(q * q8))
/// - dmin_x * d_y * sum_j(min_j * (bsum_2j + bsum_2j+1))`, integer sums as in ggml.
pub fn vec_dot_q4_k_q8_k(x: &[BlockQ4_K], y: &[BlockQ8_K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q4_K dot block count mismatch");
    let mut sumf = 0.0f32;
    for (xb, yb) in x.iter().zip(y) {
        let mut sumi = 0i32;
        let mut sumi_mins = 0i32;
        for j in 0..QK_K / 32 {
            let (sc, m) = get_scale_min_k4(j, &xb.scales);
            let (c, high) = (j / 2, j % 2 == 1);
            let mut dot = 0i32;
            for l in 0..32 {
                let byte = xb.qs[32 * c + l];
                let q = if high { byte >> 4 } else { byte & 0x0f };
                dot += q as i32 * yb.qs[32 * j + l] as i32;
            }
            sumi += sc as i32 * dot;
            sumi_mins += m as i32 * (yb.bsums[2 * j] as i32 + yb.bsums[2 * j + 1] as i32);
        }
        sumf += f16_bits_to_f32(xb.d) * yb.d * sumi as f32
            - f16_bits_to_f32(xb.dmin) * yb.d * sumi_mins as f32;
    }
    sumf
}

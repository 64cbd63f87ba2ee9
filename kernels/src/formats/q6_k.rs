//! Q6_K: super-blocks of 256 6-bit values in 16 sub-blocks of 16, each with a signed 8-bit
//! scale, scaled by an f16 `d`; zero point 32 (6.5625 bits per weight).
//! SIMD kernels (kernels/src/): x86/avx2/q6_k.rs, aarch64/{int,i8mm}.rs.

use super::kquant_search::{make_qx_quants, GROUP_MAX_EPS};
use super::q8_k::BlockQ8_K;
use super::{f16_bits_to_f32, f32_to_f16_bits, nearest_int, QK_K};
use bytemuck::{Pod, Zeroable};

/// ggml's `block_q6_K`. Value `i` of sub-block `g` is `d * scales[g] * (q - 32)`.
/// Per 128-element half `h`, with `ql = ql[64h..]`, `qh = qh[32h..]` and `l` in 0..32:
/// element `128h + l + 32k` has its low nibble in `ql[l + 32(k % 2)]` (low nibble for k < 2,
/// high nibble otherwise) and its top 2 bits in bits `2k..2k+2` of `qh[l]`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ6_K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    /// Super-block scale, f16 bits.
    pub d: u16,
}
const _: () = assert!(core::mem::size_of::<BlockQ6_K>() == 210);

/// The unsigned 6-bit value (0..64) of element `i` (0..256).
#[inline]
fn q6_value(xb: &BlockQ6_K, i: usize) -> u8 {
    let (h, r) = (i / 128, i % 128);
    let (k, l) = (r / 32, r % 32);
    let byte = xb.ql[64 * h + l + 32 * (k % 2)];
    let low = if k < 2 { byte & 0x0f } else { byte >> 4 };
    let high = (xb.qh[32 * h + l] >> (2 * k)) & 3;
    low | (high << 4)
}

/// llama.cpp's `quantize_row_q6_K_ref` (no importance matrix): per 16-value sub-block the
/// `make_qx_quants` scale search (weights `x^2`), the 16 scales quantized to signed 8 bits
/// against the one of largest magnitude (mapped to -128), then values re-quantized.
pub fn quantize_row_q6_k(x: &[f32], y: &mut [BlockQ6_K]) {
    assert_eq!(x.len(), y.len() * QK_K, "q6_K row length mismatch");
    for (xb, yb) in x.chunks_exact(QK_K).zip(y.iter_mut()) {
        // Levels with the +32 offset applied (0..64).
        let mut levels = [0u8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let mut max_scale = 0.0f32;
        let mut max_abs_scale = 0.0f32;
        for (g, (xs, ls)) in xb
            .chunks_exact(16)
            .zip(levels.chunks_exact_mut(16))
            .enumerate()
        {
            let scale = make_qx_quants(32, xs, ls);
            scales[g] = scale;
            if scale.abs() > max_abs_scale {
                max_abs_scale = scale.abs();
                max_scale = scale;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            *yb = BlockQ6_K::zeroed();
            continue;
        }
        let iscale = -128.0 / max_scale;
        yb.d = f32_to_f16_bits(1.0 / iscale);
        for (s, &scale) in yb.scales.iter_mut().zip(&scales) {
            *s = nearest_int(iscale * scale).min(127) as i8;
        }
        for (g, (xs, ls)) in xb
            .chunks_exact(16)
            .zip(levels.chunks_exact_mut(16))
            .enumerate()
        {
            let d = f16_bits_to_f32(yb.d) * yb.scales[g] as f32;
            if d == 0.0 {
                continue;
            }
            for (l, &v) in ls.iter_mut().zip(xs) {
                *l = (nearest_int(v / d).clamp(-32, 31) + 32) as u8;
            }
        }
        for h in 0..2 {
            let lv = &levels[128 * h..128 * h + 128];
            for l in 0..32 {
                let (q1, q2, q3, q4) = (lv[l], lv[l + 32], lv[l + 64], lv[l + 96]);
                yb.ql[64 * h + l] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
                yb.ql[64 * h + l + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
                yb.qh[32 * h + l] =
                    (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
            }
        }
    }
}

pub fn dequantize_row_q6_k(x: &[BlockQ6_K], y: &mut [f32]) {
    assert_eq!(y.len(), x.len() * QK_K, "q6_K row length mismatch");
    for (xb, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = f16_bits_to_f32(xb.d);
        for (g, out) in yb.chunks_exact_mut(16).enumerate() {
            let dg = d * xb.scales[g] as f32;
            for (l, o) in out.iter_mut().enumerate() {
                *o = dg * (q6_value(xb, 16 * g + l) as i32 - 32) as f32;
            }
        }
    }
}

/// Per super-block: `d_x * d_y * sum_g(scale_g * sum((q - 32) * q8))`, integer sums as in ggml.
pub fn vec_dot_q6_k_q8_k(x: &[BlockQ6_K], y: &[BlockQ8_K]) -> f32 {
    assert_eq!(x.len(), y.len(), "q6_K dot block count mismatch");
    let mut sumf = 0.0f32;
    for (xb, yb) in x.iter().zip(y) {
        let mut sumi = 0i32;
        for g in 0..QK_K / 16 {
            let mut dot = 0i32;
            for l in 0..16 {
                let i = 16 * g + l;
                dot += (q6_value(xb, i) as i32 - 32) * yb.qs[i] as i32;
            }
            sumi += xb.scales[g] as i32 * dot;
        }
        sumf += f16_bits_to_f32(xb.d) * yb.d * sumi as f32;
    }
    sumf
}

//! The reference the kernel paths are tested against: for each query row, every score in f64,
//! a two-pass softmax, the weighted sum of the values in f64. Keys and values are read through
//! the format's scalar decoders (`half`, `dequantize_row_q8_0`). Slow and plain on purpose.

use super::{Attention, AttentionError, KvFormat};
use crate::formats::{dequantize_row_q8_0, f16_bits_to_f32, BlockQ8_0};

/// Key and value of KV head `g` at position `j`, as f32.
fn key_value(a: &Attention<'_>, j: usize, g: usize) -> (Vec<f32>, Vec<f32>) {
    let hd = a.head_dim;
    if j >= a.pos0 {
        let o = ((j - a.pos0) * a.n_head_kv + g) * hd;
        return (a.k_new[o..o + hd].to_vec(), a.v_new[o..o + hd].to_vec());
    }
    let c = &a.cache;
    let o = (j % c.slots) * c.slot_stride + g * c.head_stride;
    let bytes = c.format.head_bytes(hd);
    let decode = |b: &[u8]| -> Vec<f32> {
        match c.format {
            KvFormat::F32 => b
                .chunks_exact(4)
                .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
                .collect(),
            KvFormat::F16 => b
                .chunks_exact(2)
                .map(|x| f16_bits_to_f32(u16::from_le_bytes([x[0], x[1]])))
                .collect(),
            KvFormat::Q8_0 => {
                let blocks: Vec<BlockQ8_0> = b
                    .chunks_exact(std::mem::size_of::<BlockQ8_0>())
                    .map(bytemuck::pod_read_unaligned)
                    .collect();
                let mut y = vec![0.0; hd];
                dequantize_row_q8_0(&blocks, &mut y);
                y
            }
        }
    };
    (decode(&c.k[o..o + bytes]), decode(&c.v[o..o + bytes]))
}

/// Reference attention (see the module comment). Same contract as [`super::attend`].
pub fn attend(a: &Attention<'_>, out: &mut [f32]) -> Result<(), AttentionError> {
    a.validate(out)?;
    let hd = a.head_dim;
    let group = a.group();
    // Decoded keys/values of every position the batch sees, per KV head, from the first
    // token's first visible position on.
    let mut kv_cache: Vec<Vec<(Vec<f32>, Vec<f32>)>> = vec![Vec::new(); a.n_head_kv];
    let mut kv_first = vec![0usize; a.n_head_kv];
    for t in 0..a.n {
        let pos = a.pos0 + t;
        let first = a.first_visible(pos);
        for g in 0..a.n_head_kv {
            if kv_cache[g].is_empty() {
                kv_cache[g] = (first..a.pos0 + a.n).map(|j| key_value(a, j, g)).collect();
                kv_first[g] = first;
            }
            let kvs = &kv_cache[g][first - kv_first[g]..=pos - kv_first[g]];
            for h in g * group..(g + 1) * group {
                let q = &a.q[(t * a.n_head + h) * hd..][..hd];
                let scores: Vec<f64> = kvs
                    .iter()
                    .map(|(k, _)| {
                        let dot: f64 = q.iter().zip(k).map(|(&x, &y)| x as f64 * y as f64).sum();
                        let s = dot * a.scale as f64;
                        match a.softcap {
                            Some(c) => c as f64 * (s / c as f64).tanh(),
                            None => s,
                        }
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let sum: f64 = w.iter().sum();
                let o = &mut out[(t * a.n_head + h) * hd..][..hd];
                for (d, od) in o.iter_mut().enumerate() {
                    let acc: f64 = w.iter().zip(kvs).map(|(wi, (_, v))| wi * v[d] as f64).sum();
                    *od = (acc / sum) as f32;
                }
            }
        }
    }
    Ok(())
}

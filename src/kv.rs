//! Key/value cache rings. A global-attention layer keeps one slot per context position; a
//! sliding-window layer keeps exactly `window` slots, position `p` living in slot `p % slots`.
//! Keys and values are stored in F16 (default) or Q8_0 and read back as f32.

use crate::kernels::formats::{self, BlockQ8_0, QK8_0};
use half::f16;

/// Storage format of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheType {
    /// Exact; for comparisons against f32 references.
    F32,
    F16,
    Q8_0,
}

impl CacheType {
    pub fn parse(s: &str) -> Option<CacheType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Some(CacheType::F32),
            "f16" => Some(CacheType::F16),
            "q8_0" => Some(CacheType::Q8_0),
            _ => None,
        }
    }

    /// Bytes to store `n` values (`n` a multiple of 32 for Q8_0).
    pub fn bytes_for(self, n: usize) -> usize {
        match self {
            CacheType::F32 => 4 * n,
            CacheType::F16 => 2 * n,
            CacheType::Q8_0 => n / QK8_0 * std::mem::size_of::<BlockQ8_0>(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CacheType::F32 => "f32",
            CacheType::F16 => "f16",
            CacheType::Q8_0 => "q8_0",
        }
    }

    /// Rounds `x` to what storing and reloading it would give, so that a batch attending to its
    /// own fresh keys sees exactly what a later step will read from the cache.
    pub fn round_trip(self, x: &mut [f32]) {
        match self {
            CacheType::F32 => {}
            CacheType::F16 => {
                for v in x {
                    *v = f16::from_f32(*v).to_f32();
                }
            }
            CacheType::Q8_0 => {
                let mut blk = [<BlockQ8_0 as bytemuck::Zeroable>::zeroed()];
                for chunk in x.chunks_exact_mut(QK8_0) {
                    formats::quantize_row_q8_0(chunk, &mut blk);
                    formats::dequantize_row_q8_0(&blk, chunk);
                }
            }
        }
    }

    fn store(self, src: &[f32], dst: &mut [u8]) {
        match self {
            CacheType::F32 => dst.copy_from_slice(bytemuck::cast_slice(src)),
            CacheType::F16 => {
                for (v, out) in src.iter().zip(dst.chunks_exact_mut(2)) {
                    out.copy_from_slice(&f16::from_f32(*v).to_bits().to_le_bytes());
                }
            }
            CacheType::Q8_0 => {
                let blocks: &mut [BlockQ8_0] = bytemuck::cast_slice_mut(dst);
                formats::quantize_row_q8_0(src, blocks);
            }
        }
    }

    fn load(self, src: &[u8], dst: &mut [f32]) {
        match self {
            CacheType::F32 => {
                for (out, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
                    *out = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            CacheType::F16 => {
                for (out, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                    *out = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
                }
            }
            CacheType::Q8_0 => {
                let blocks: &[BlockQ8_0] = bytemuck::cast_slice(src);
                formats::dequantize_row_q8_0(blocks, dst);
            }
        }
    }
}

/// One layer's keys and values: `slots` positions of `n_kv_heads × head_dim` values each.
pub struct KvRing {
    ty: CacheType,
    slots: usize,
    head_dim: usize,
    n_kv_heads: usize,
    head_bytes: usize,
    k: Vec<u8>,
    v: Vec<u8>,
}

impl KvRing {
    pub fn new(ty: CacheType, slots: usize, n_kv_heads: usize, head_dim: usize) -> KvRing {
        let head_bytes = ty.bytes_for(head_dim);
        let total = slots * n_kv_heads * head_bytes;
        KvRing {
            ty,
            slots,
            head_dim,
            n_kv_heads,
            head_bytes,
            // Zeroed pages are only touched when written: a long context costs memory as it fills.
            k: vec![0; total],
            v: vec![0; total],
        }
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    pub fn cache_type(&self) -> CacheType {
        self.ty
    }

    /// Bytes held by keys and values.
    pub fn bytes(&self) -> usize {
        self.k.len() + self.v.len()
    }

    fn offset(&self, pos: usize, kv_head: usize) -> usize {
        ((pos % self.slots) * self.n_kv_heads + kv_head) * self.head_bytes
    }

    /// Stores the keys and values of position `pos` (`n_kv_heads × head_dim` floats each).
    pub fn write(&mut self, pos: usize, k: &[f32], v: &[f32]) {
        for h in 0..self.n_kv_heads {
            let o = self.offset(pos, h);
            let src = h * self.head_dim..(h + 1) * self.head_dim;
            self.ty
                .store(&k[src.clone()], &mut self.k[o..o + self.head_bytes]);
            self.ty.store(&v[src], &mut self.v[o..o + self.head_bytes]);
        }
    }

    /// Reads the key and value of `kv_head` at position `pos` into `k` and `v` (`head_dim` each).
    #[inline]
    pub fn read(&self, pos: usize, kv_head: usize, k: &mut [f32], v: &mut [f32]) {
        let o = self.offset(pos, kv_head);
        self.ty.load(&self.k[o..o + self.head_bytes], k);
        self.ty.load(&self.v[o..o + self.head_bytes], v);
    }

    /// The raw bytes (for state files).
    pub fn raw(&self) -> (&[u8], &[u8]) {
        (&self.k, &self.v)
    }

    pub fn raw_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        (&mut self.k, &mut self.v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_exactly_its_slots() {
        let mut ring = KvRing::new(CacheType::F16, 4, 1, 32);
        for p in 0..10 {
            let k = vec![p as f32; 32];
            ring.write(p, &k, &k);
        }
        let (mut k, mut v) = (vec![0.0; 32], vec![0.0; 32]);
        for p in 6..10 {
            ring.read(p, 0, &mut k, &mut v);
            assert_eq!(k[0], p as f32);
        }
        // Position 5 has been overwritten by position 9.
        ring.read(5, 0, &mut k, &mut v);
        assert_eq!(k[0], 9.0);
    }

    #[test]
    fn round_trip_equals_store_then_load() {
        for ty in [CacheType::F32, CacheType::F16, CacheType::Q8_0] {
            let x: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let mut ring = KvRing::new(ty, 2, 2, 32);
            ring.write(1, &x, &x);
            let mut rounded = x.clone();
            ty.round_trip(&mut rounded);
            let (mut k, mut v) = (vec![0.0; 32], vec![0.0; 32]);
            ring.read(1, 1, &mut k, &mut v);
            assert_eq!(&k[..], &rounded[32..]);
            assert_eq!(&v[..], &rounded[32..]);
        }
    }
}

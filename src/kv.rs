//! Key/value cache rings. A global-attention layer keeps one slot per context position; a
//! sliding-window layer keeps exactly `window` slots, position `p` living in slot `p % slots`.
//! Keys and values are stored in F16 (default), Q8_0 or F32; the attention kernel
//! (`kernels::attention`) reads the ring's bytes in place through [`KvRing::view`].

use crate::kernels::attention::{KvCache, KvFormat};
use crate::kernels::formats::{self, BlockQ8_0, QK8_0};
use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

/// Values converted per f16 slice call in `round_trip` (a stack buffer).
const F16_CHUNK: usize = 256;

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

    /// The kernel's name for this format.
    pub fn format(self) -> KvFormat {
        match self {
            CacheType::F32 => KvFormat::F32,
            CacheType::F16 => KvFormat::F16,
            CacheType::Q8_0 => KvFormat::Q8_0,
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
                // `half`'s slice conversions use F16C / FP16 instructions when the CPU has
                // them (detected at run time), 8 values per instruction.
                let mut tmp = [f16::ZERO; F16_CHUNK];
                for chunk in x.chunks_mut(F16_CHUNK) {
                    let t = &mut tmp[..chunk.len()];
                    t.convert_from_f32_slice(chunk);
                    t.convert_to_f32_slice(chunk);
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
                let bits: &mut [u16] = bytemuck::cast_slice_mut(dst);
                bits.reinterpret_cast_mut::<f16>()
                    .convert_from_f32_slice(src);
            }
            CacheType::Q8_0 => {
                let blocks: &mut [BlockQ8_0] = bytemuck::cast_slice_mut(dst);
                formats::quantize_row_q8_0(src, blocks);
            }
        }
    }

    fn load(self, src: &[u8], dst: &mut [f32]) {
        match self {
            CacheType::F32 => dst.copy_from_slice(bytemuck::cast_slice(src)),
            CacheType::F16 => {
                let bits: &[u16] = bytemuck::cast_slice(src);
                bits.reinterpret_cast::<f16>().convert_to_f32_slice(dst);
            }
            CacheType::Q8_0 => {
                let blocks: &[BlockQ8_0] = bytemuck::cast_slice(src);
                formats::dequantize_row_q8_0(blocks, dst);
            }
        }
    }
}

/// `n` zero words, or `None` when the allocator refuses. Like `vec![0; n]` (calloc: fresh
/// zero pages cost nothing until written), but fallible: `Vec::try_reserve` has no zeroed
/// variant, and writing the zeros would make the whole ring resident at once.
fn zeroed_words(n: usize) -> Option<Vec<u32>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u32>(n).ok()?;
    // SAFETY: `layout` has a non-zero size. A non-null result is a fresh allocation from the
    // global allocator with exactly the layout a `Vec<u32>` of capacity `n` uses, and `n`
    // zeroed `u32`s are initialised values, so the Vec may own it with length `n`.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<u32>();
        (!p.is_null()).then(|| Vec::from_raw_parts(p, n, n))
    }
}

/// One layer's keys and values: `slots` positions of `n_kv_heads × head_dim` values each.
/// Stored in `u32` words so that every head vector (an even number of bytes from a 4-aligned
/// start) can be viewed as f16 / f32 / `BlockQ8_0` slices in place; `len` bytes are used.
pub struct KvRing {
    ty: CacheType,
    slots: usize,
    head_dim: usize,
    n_kv_heads: usize,
    head_bytes: usize,
    len: usize,
    k: Vec<u32>,
    v: Vec<u32>,
}

impl KvRing {
    pub fn new(ty: CacheType, slots: usize, n_kv_heads: usize, head_dim: usize) -> KvRing {
        KvRing::try_new(ty, slots, n_kv_heads, head_dim).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`KvRing::new`], but a size that overflows or that the allocator refuses (a long
    /// context under a memory limit) is an error instead of an abort.
    pub fn try_new(
        ty: CacheType,
        slots: usize,
        n_kv_heads: usize,
        head_dim: usize,
    ) -> Result<KvRing, String> {
        let head_bytes = ty.bytes_for(head_dim);
        let too_big = || {
            format!(
                "a KV cache of {slots} positions × {n_kv_heads} heads × {head_dim} dims is too large to allocate"
            )
        };
        let total = slots
            .checked_mul(n_kv_heads)
            .and_then(|x| x.checked_mul(head_bytes))
            .ok_or_else(too_big)?;
        let words = total.div_ceil(4);
        // Zeroed pages are only touched when written: a long context costs memory as it fills.
        let k = zeroed_words(words).ok_or_else(too_big)?;
        let v = zeroed_words(words).ok_or_else(too_big)?;
        Ok(KvRing {
            ty,
            slots,
            head_dim,
            n_kv_heads,
            head_bytes,
            len: total,
            k,
            v,
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    pub fn cache_type(&self) -> CacheType {
        self.ty
    }

    /// Bytes held by keys and values.
    pub fn bytes(&self) -> usize {
        2 * self.len
    }

    fn k_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.k)[..self.len]
    }

    fn v_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.v)[..self.len]
    }

    /// The ring as the attention kernel reads it (bytes in place, slot/head strides).
    pub fn view(&self) -> KvCache<'_> {
        KvCache {
            format: self.ty.format(),
            k: self.k_bytes(),
            v: self.v_bytes(),
            slots: self.slots,
            slot_stride: self.n_kv_heads * self.head_bytes,
            head_stride: self.head_bytes,
        }
    }

    fn offset(&self, pos: usize, kv_head: usize) -> usize {
        ((pos % self.slots) * self.n_kv_heads + kv_head) * self.head_bytes
    }

    /// Stores the keys and values of position `pos` (`n_kv_heads × head_dim` floats each).
    pub fn write(&mut self, pos: usize, k: &[f32], v: &[f32]) {
        let len = self.len;
        for h in 0..self.n_kv_heads {
            let o = self.offset(pos, h);
            let src = h * self.head_dim..(h + 1) * self.head_dim;
            let kb: &mut [u8] = &mut bytemuck::cast_slice_mut(&mut self.k)[..len];
            self.ty
                .store(&k[src.clone()], &mut kb[o..o + self.head_bytes]);
            let vb: &mut [u8] = &mut bytemuck::cast_slice_mut(&mut self.v)[..len];
            self.ty.store(&v[src], &mut vb[o..o + self.head_bytes]);
        }
    }

    /// Reads the key and value of `kv_head` at position `pos` into `k` and `v` (`head_dim` each).
    #[inline]
    pub fn read(&self, pos: usize, kv_head: usize, k: &mut [f32], v: &mut [f32]) {
        let o = self.offset(pos, kv_head);
        self.ty.load(&self.k_bytes()[o..o + self.head_bytes], k);
        self.ty.load(&self.v_bytes()[o..o + self.head_bytes], v);
    }

    /// The raw bytes (for state files).
    pub fn raw(&self) -> (&[u8], &[u8]) {
        (self.k_bytes(), self.v_bytes())
    }

    pub fn raw_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let len = self.len;
        (
            &mut bytemuck::cast_slice_mut(&mut self.k)[..len],
            &mut bytemuck::cast_slice_mut(&mut self.v)[..len],
        )
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

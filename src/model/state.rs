//! Conversation state files (`--save-state` / `--load-state`): the position and every state
//! buffer of a model, byte for byte, behind a header that ties them to one model file and
//! run configuration. Restoring gives bit-identical next-token logits.
//!
//! Layout (format version 2, little-endian):
//!
//! ```text
//! magic        8 bytes  "EGSTATE\0"
//! version      u32      2
//! fingerprint  u64      Fingerprint of the model and settings (see below)
//! position     u64      positions consumed; at most the model's context length
//! buffers      u32      number of state buffers; must equal the model's
//! per buffer:  u64 length (must equal the model's buffer), then the bytes
//! checksum     u64      Checksum of every byte before it
//! ```
//!
//! The fingerprint hashes named fields in a fixed order (architecture, every dimension and
//! count, the float hyperparameters' bits, the cache type, the context and ring sizes, and
//! each tensor's name, type and shape), each written by the architecture as `name = value`.
//! It never hashes a `Debug` print, so renaming a Rust field leaves old files readable; a
//! change to what the fingerprint covers is a new format version.
//!
//! Every count, length and the position are checked against the model before they are
//! used, and the bytes are read straight into the model's own buffers, so a hostile file
//! sizes no allocation. The checksum catches any corrupted byte (every step of it is a
//! bijection of the running value, so a file that differs in one byte, or one aligned
//! 8-byte word, always fails); it is an integrity check, not a signature.
//!
//! Version 1 files (magic `EGSTATE1`, written before the format was versioned, with a
//! fingerprint taken from a `Debug` print of the configuration) are recognised and refused
//! with a message saying so: their fingerprint cannot be recomputed, so nothing would tie
//! them to the model they came from.

use super::{ModelError, Result};
use std::io::{Read, Write};

const MAGIC: &[u8; 8] = b"EGSTATE\0";
/// The unversioned format's magic.
const MAGIC_V1: &[u8; 8] = b"EGSTATE1";
pub const FORMAT_VERSION: u32 = 2;

/// Largest position a state file may hold for a model without a context limit (the
/// recurrent one): positions are int32 in llama.cpp, and no conversation gets near 2^31.
/// Without a bound a forged position reached the attention arithmetic unchecked (the
/// `state_load` fuzz target: a position near 2^64 overflowed `pos + n`).
pub const MAX_UNBOUNDED_POS: usize = i32::MAX as usize;

/// FNV-1a (64-bit) over named fields: `name`, its length, `value`, its length, in the order
/// written. The lengths keep `("ab", "c")` and `("a", "bc")` apart.
#[derive(Clone, Debug)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b.iter().chain((b.len() as u64).to_le_bytes().iter()) {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// A field as raw bytes.
    pub fn field(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.bytes(name.as_bytes());
        self.bytes(value);
        self
    }

    pub fn str(&mut self, name: &str, value: &str) -> &mut Self {
        self.field(name, value.as_bytes())
    }

    pub fn u64(&mut self, name: &str, value: u64) -> &mut Self {
        self.field(name, &value.to_le_bytes())
    }

    pub fn usize(&mut self, name: &str, value: usize) -> &mut Self {
        self.u64(name, value as u64)
    }

    /// An optional count; absent hashes differently from every value.
    pub fn usize_opt(&mut self, name: &str, value: Option<usize>) -> &mut Self {
        match value {
            Some(v) => self.field(name, &(v as u64).to_le_bytes()),
            None => self.field(name, b"none"),
        }
    }

    /// A float by its bits (so -0.0, 0.0 and every NaN are told apart).
    pub fn f32(&mut self, name: &str, value: f32) -> &mut Self {
        self.field(name, &value.to_bits().to_le_bytes())
    }

    pub fn f32_opt(&mut self, name: &str, value: Option<f32>) -> &mut Self {
        match value {
            Some(v) => self.f32(name, v),
            None => self.field(name, b"none"),
        }
    }

    /// One flag per layer, as bytes 0/1.
    pub fn flags(&mut self, name: &str, value: &[bool]) -> &mut Self {
        let b: Vec<u8> = value.iter().map(|&f| f as u8).collect();
        self.field(name, &b)
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The file's integrity check: one multiply–xorshift step per aligned 8-byte word (the tail
/// zero-padded), each a bijection of the running value. It runs at memory speed over the
/// state buffers (tens of MB for a long context), which FNV's byte-at-a-time loop does not.
struct Checksum {
    h: u64,
    pending: [u8; 8],
    filled: usize,
}

impl Checksum {
    fn new() -> Checksum {
        Checksum {
            h: 0x9e37_79b9_7f4a_7c15,
            pending: [0; 8],
            filled: 0,
        }
    }

    fn mix(&mut self, word: u64) {
        let mut h = (self.h ^ word).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 31;
        self.h = h;
    }

    fn update(&mut self, mut b: &[u8]) {
        if self.filled > 0 {
            let take = (8 - self.filled).min(b.len());
            self.pending[self.filled..self.filled + take].copy_from_slice(&b[..take]);
            self.filled += take;
            b = &b[take..];
            if self.filled < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.pending));
            self.filled = 0;
        }
        let mut words = b.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    fn finish(mut self, total_len: u64) -> u64 {
        if self.filled > 0 {
            self.pending[self.filled..].fill(0);
            self.mix(u64::from_le_bytes(self.pending));
        }
        // The length tells a zero tail from zero padding.
        self.mix(total_len);
        self.h
    }
}

/// Writes through a running checksum.
struct Summed<'a> {
    w: &'a mut dyn Write,
    sum: Checksum,
    len: u64,
}

impl Summed<'_> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.sum.update(b);
        self.len += b.len() as u64;
        self.w.write_all(b)
    }
}

/// Writes a state: `fp` from [`Fingerprint`], the position and the buffers in order.
pub fn write(w: &mut dyn Write, fp: u64, pos: usize, buffers: &[&[u8]]) -> Result<()> {
    let io = |e: std::io::Error| ModelError(format!("cannot write state: {e}"));
    let mut s = Summed {
        w,
        sum: Checksum::new(),
        len: 0,
    };
    s.put(MAGIC).map_err(io)?;
    s.put(&FORMAT_VERSION.to_le_bytes()).map_err(io)?;
    s.put(&fp.to_le_bytes()).map_err(io)?;
    s.put(&(pos as u64).to_le_bytes()).map_err(io)?;
    s.put(&(buffers.len() as u32).to_le_bytes()).map_err(io)?;
    for b in buffers {
        s.put(&(b.len() as u64).to_le_bytes()).map_err(io)?;
        s.put(b).map_err(io)?;
    }
    let Summed { w, sum, len } = s;
    w.write_all(&sum.finish(len).to_le_bytes()).map_err(io)?;
    w.flush().map_err(io)
}

/// Reads through a running checksum.
struct SummedReader<'a> {
    r: &'a mut dyn Read,
    sum: Checksum,
    len: u64,
}

impl SummedReader<'_> {
    fn take(&mut self, b: &mut [u8], what: &str) -> Result<()> {
        self.r.read_exact(b).map_err(|e| {
            ModelError(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                format!("state file is truncated (in the {what})")
            } else {
                format!("cannot read state: {e}")
            })
        })?;
        self.sum.update(b);
        self.len += b.len() as u64;
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let mut b = [0u8; 4];
        self.take(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let mut b = [0u8; 8];
        self.take(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Reads a state into `buffers` (whose sizes must match the file's), returning the
/// position, which must not exceed `max_pos`. On an error the buffers may hold part of the
/// file: the caller starts the model over.
pub fn read(r: &mut dyn Read, fp: u64, max_pos: usize, buffers: &mut [&mut [u8]]) -> Result<usize> {
    let mut s = SummedReader {
        r,
        sum: Checksum::new(),
        len: 0,
    };
    let mut magic = [0u8; 8];
    s.take(&mut magic, "magic")?;
    if &magic == MAGIC_V1 {
        return Err(ModelError(
            "state file is in the unversioned format of older edgegemma builds, which is no longer read; save the state again".into(),
        ));
    }
    if &magic != MAGIC {
        return Err(ModelError("not an edgegemma state file".into()));
    }
    let version = s.u32("format version")?;
    if version != FORMAT_VERSION {
        return Err(ModelError(format!(
            "state file format version {version} is not supported (this build reads version {FORMAT_VERSION})"
        )));
    }
    if s.u64("fingerprint")? != fp {
        return Err(ModelError(
            "state file was saved with another model or another context/cache setting".into(),
        ));
    }
    let pos = s.u64("position")?;
    if pos > max_pos as u64 {
        return Err(ModelError(format!(
            "state position {pos} exceeds the context length {max_pos}"
        )));
    }
    let count = s.u32("buffer count")?;
    if count as usize != buffers.len() {
        return Err(ModelError(format!(
            "state file has {count} buffers, the model has {}",
            buffers.len()
        )));
    }
    for (i, b) in buffers.iter_mut().enumerate() {
        let len = s.u64("buffer length")?;
        if len != b.len() as u64 {
            return Err(ModelError(format!(
                "state buffer {i} is {len} bytes, the model's is {}",
                b.len()
            )));
        }
        s.take(b, "buffer data")?;
    }
    let SummedReader { r, sum, len } = s;
    let want = sum.finish(len);
    let mut got = [0u8; 8];
    r.read_exact(&mut got).map_err(|e| {
        ModelError(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "state file is truncated (in the checksum)".to_string()
        } else {
            format!("cannot read state: {e}")
        })
    })?;
    if u64::from_le_bytes(got) != want {
        return Err(ModelError(
            "state file is corrupted (checksum mismatch)".into(),
        ));
    }
    let mut extra = [0u8; 1];
    if r.read(&mut extra)
        .map_err(|e| ModelError(format!("cannot read state: {e}")))?
        != 0
    {
        return Err(ModelError("state file has trailing bytes".into()));
    }
    usize::try_from(pos).map_err(|_| ModelError("state position out of range".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(pos: usize, bufs: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, 42, pos, bufs).unwrap();
        out
    }

    #[test]
    fn round_trip_and_every_corruption_is_refused() {
        let (a, b) = (vec![7u8; 13], vec![1u8, 2, 3]);
        let file = saved(5, &[&a, &b]);
        let (mut ra, mut rb) = (vec![0u8; 13], vec![0u8; 3]);
        let pos = read(&mut &file[..], 42, 5, &mut [&mut ra, &mut rb]).unwrap();
        assert_eq!((pos, &ra, &rb), (5, &a, &b));
        for i in 0..file.len() {
            for flip in [1u8, 0x80] {
                let mut bad = file.clone();
                bad[i] ^= flip;
                let (mut ra, mut rb) = (vec![0u8; 13], vec![0u8; 3]);
                assert!(
                    read(&mut &bad[..], 42, 5, &mut [&mut ra, &mut rb]).is_err(),
                    "byte {i} ^ {flip} accepted"
                );
            }
        }
        for cut in 0..file.len() {
            let (mut ra, mut rb) = (vec![0u8; 13], vec![0u8; 3]);
            let e = read(&mut &file[..cut], 42, 5, &mut [&mut ra, &mut rb]).unwrap_err();
            assert!(e.0.contains("truncated"), "cut at {cut}: {e}");
        }
    }

    #[test]
    fn header_fields_are_checked_against_the_model() {
        let a = vec![0u8; 8];
        let file = saved(9, &[&a]);
        let mut ra = vec![0u8; 8];
        let e = read(&mut &file[..], 42, 8, &mut [&mut ra]).unwrap_err();
        assert!(
            e.0.contains("position 9 exceeds the context length 8"),
            "{e}"
        );
        let e = read(&mut &file[..], 43, 9, &mut [&mut ra]).unwrap_err();
        assert!(e.0.contains("another model"), "{e}");
        let mut rb = vec![0u8; 7];
        let e = read(&mut &file[..], 42, 9, &mut [&mut rb]).unwrap_err();
        assert!(e.0.contains("buffer 0 is 8 bytes, the model's is 7"), "{e}");
        let e = read(&mut &file[..], 42, 9, &mut []).unwrap_err();
        assert!(e.0.contains("1 buffers, the model has 0"), "{e}");
        let mut old = b"EGSTATE1".to_vec();
        old.extend_from_slice(&[0; 32]);
        let e = read(&mut &old[..], 42, 9, &mut [&mut ra]).unwrap_err();
        assert!(e.0.contains("unversioned format"), "{e}");
        let mut long = file.clone();
        long.push(0);
        let e = read(&mut &long[..], 42, 9, &mut [&mut ra]).unwrap_err();
        assert!(e.0.contains("trailing bytes"), "{e}");
    }

    #[test]
    fn fingerprint_fields_are_named() {
        let mut a = Fingerprint::default();
        a.usize("n_embd", 64).usize("n_layer", 2);
        let mut b = Fingerprint::default();
        b.usize("n_layer", 2).usize("n_embd", 64);
        assert_ne!(a.finish(), b.finish());
        let mut c = Fingerprint::default();
        c.usize_opt("window", None);
        let mut d = Fingerprint::default();
        d.usize_opt("window", Some(0));
        assert_ne!(c.finish(), d.finish());
    }
}

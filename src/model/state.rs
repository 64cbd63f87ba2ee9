//! Conversation state files (`--save-state` / `--load-state`): the position and every state
//! buffer of a model, byte for byte, behind a header that ties them to one model file and
//! run configuration. Restoring gives bit-identical next-token logits.
//!
//! Layout (little-endian): `EGSTATE1`, fingerprint u64, position u64, buffer count u32, then
//! per buffer its length u64 and bytes.

use super::{ModelError, Result};
use std::io::{Read, Write};

const MAGIC: &[u8; 8] = b"EGSTATE1";

/// FNV-1a over the parts that must match for a state to be meaningful.
pub fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter().chain((p.len() as u64).to_le_bytes().iter()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

pub fn write(w: &mut dyn Write, fp: u64, pos: usize, buffers: &[&[u8]]) -> Result<()> {
    let io = |e: std::io::Error| ModelError(format!("cannot write state: {e}"));
    w.write_all(MAGIC).map_err(io)?;
    w.write_all(&fp.to_le_bytes()).map_err(io)?;
    w.write_all(&(pos as u64).to_le_bytes()).map_err(io)?;
    w.write_all(&(buffers.len() as u32).to_le_bytes())
        .map_err(io)?;
    for b in buffers {
        w.write_all(&(b.len() as u64).to_le_bytes()).map_err(io)?;
        w.write_all(b).map_err(io)?;
    }
    w.flush().map_err(io)
}

/// A position read from a state file, refused when it is past what the model can hold
/// (`max`: the context length, or [`MAX_UNBOUNDED_POS`] for a recurrent model). Without
/// this a file's position reached the attention arithmetic unchecked (the state_load fuzz
/// target: a position near 2^64 overflowed `pos + n`).
pub fn check_position(pos: usize, max: usize) -> Result<usize> {
    if pos > max {
        return Err(ModelError(format!(
            "state position {pos} is past the {max} positions this model can hold"
        )));
    }
    Ok(pos)
}

/// Largest position a state file may hold for a model without a context limit (the
/// recurrent one): llama.cpp's positions are int32, and no conversation gets near 2^31.
pub const MAX_UNBOUNDED_POS: usize = i32::MAX as usize;

/// Reads a state into `buffers` (whose sizes must match the file's), returning the position.
pub fn read(r: &mut dyn Read, fp: u64, buffers: &mut [&mut [u8]]) -> Result<usize> {
    let io = |e: std::io::Error| {
        ModelError(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "state file is truncated".to_string()
        } else {
            format!("cannot read state: {e}")
        })
    };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(io)?;
    if &magic != MAGIC {
        return Err(ModelError("not an edgegemma state file".into()));
    }
    let mut u64b = [0u8; 8];
    r.read_exact(&mut u64b).map_err(io)?;
    if u64::from_le_bytes(u64b) != fp {
        return Err(ModelError(
            "state file was saved with another model or another context/cache setting".into(),
        ));
    }
    r.read_exact(&mut u64b).map_err(io)?;
    let pos = usize::try_from(u64::from_le_bytes(u64b))
        .map_err(|_| ModelError("state position out of range".into()))?;
    let mut u32b = [0u8; 4];
    r.read_exact(&mut u32b).map_err(io)?;
    if u32::from_le_bytes(u32b) as usize != buffers.len() {
        return Err(ModelError(
            "state file has the wrong number of buffers".into(),
        ));
    }
    for (i, b) in buffers.iter_mut().enumerate() {
        r.read_exact(&mut u64b).map_err(io)?;
        if u64::from_le_bytes(u64b) != b.len() as u64 {
            return Err(ModelError(format!("state buffer {i} has the wrong size")));
        }
        r.read_exact(b).map_err(io)?;
    }
    let mut extra = [0u8; 1];
    if r.read(&mut extra).map_err(io)? != 0 {
        return Err(ModelError("state file has trailing bytes".into()));
    }
    Ok(pos)
}

//! The interleaved 16-row layout ("x16") of Q4_0, Q5_0 and Q8_0 weights, built at load time,
//! and its scalar reference: packing, unpacking one row, and the dot of a packed group.
//! SIMD kernels: x86/avx512/x16.rs (the only path with one; every other path runs
//! [`dot_group`] through the scalar x16 entry of its table).
//!
//! Why: the ggml layouts keep the 32 quants of a block in one row, so a SIMD kernel dots one
//! row's block per lane group and pays the float part (convert, scale product, FMA) and a
//! horizontal reduction per row. With 16 rows interleaved, one `vpdpbusd` with an embedded
//! broadcast of one activation dword (`vpdpbusd zmm, zmm, dword [a]{1to16}`) does 4 MACs for
//! each of the 16 rows, i32 lane `r` being row `r`, so 8 of them give the exact integer dot
//! of a whole block for 16 rows and the float part runs once per 16 (row, block) pairs, with
//! no reduction at the end (lane `r` of the f32 accumulator is row `r`'s result).
//!
//! # Layout
//! A matrix of `rows` (a multiple of [`INTERLEAVE_ROWS`]) rows is a sequence of groups of 16
//! consecutive rows; a group takes exactly the bytes of its 16 ggml rows (`16 * row_bytes`,
//! so sizes, RSS and bandwidth are unchanged), and is a sequence of one record per block
//! column `b` (`16 * type_size` bytes). In record `b`, with `x_r` the ggml block `b` of row
//! `r` of the group (all multi-byte values little-endian):
//!
//! - bytes `0..32`: the 16 f16 scales `d` of rows 0..15 (one `vcvtph2ps` makes them a zmm).
//! - Q8_0 (`16 * 34 = 32 + 512` bytes): 8 vectors of 64 bytes at `32 + 64 k`; byte
//!   `4 r + i` of vector `k` is `x_r.qs[4 k + i] ^ 0x80` (the signed quant plus 128, i.e.
//!   unsigned, so `vpdpbusd` takes it as is; the dot starts from `-128 * sum(y)`). Vector `k`
//!   multiplies activation dword `k` (quants `4k..4k + 4`).
//! - Q4_0 (`16 * 18 = 32 + 256` bytes): 4 vectors of 64 bytes at `32 + 64 j`; byte `4 r + i`
//!   of vector `j` is `x_r.qs[4 j + i]` unchanged: its low nibble is element `4 j + i`
//!   (dotted with activation dword `j`), its high nibble element `16 + 4 j + i` (dword
//!   `4 + j`). The stored nibbles are `q = w + 8`, unsigned; the dot starts from `-8 sum(y)`.
//!   One `and` gives the low vector, a shift and an `and` the high one.
//! - Q5_0 (`16 * 22 = 32 + 64 + 256` bytes): at `32`, 8 masks of 64 bits (`u64` at
//!   `32 + 8 m`), bit `4 r + i` of mask `m` being bit `4 m + i` of `x_r.qh` (the high bit of
//!   element `4 m + i`); at `96`, the nibbles as Q4_0's. Mask `j` sets bit 4 of the low-nibble
//!   vector `j` and mask `4 + j` of the high-nibble vector `j` (one `kmovq` from memory and a
//!   masked `vpaddb` each); the values are `q = w + 16`, the dot starts from `-16 sum(y)`.
//!
//! So for every format the unpacked vectors are, in order, the ones dotted with activation
//! dwords `0..8` of a Q8_0 activation block (as `quantize_act` writes it: f16 `d`, 32 i8).
//!
//! [`dot_group`] computes each row's sum exactly as `formats::vec_dot_scalar` does on the
//! ggml row (the same integer sums, `sumf += sumi * (d_x * d_y)` in block order), so on the
//! scalar path a packed matrix gives the bits of the unpacked one. The AVX-512 kernel fuses
//! that multiply-add (one FMA): it differs from the reference by at most one f32 rounding per
//! block, `|err| <= nb * 2^-24 * sum_b |sumi_b * d_x * d_y|` (0 when the terms are exact).

use super::{FormatError, QK8_0};
use crate::types::GgmlType;

/// Rows per interleaved group.
pub const INTERLEAVE_ROWS: usize = 16;

/// Whether `ty` has an interleaved layout.
pub fn can_interleave(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0)
}

/// Bytes of one record (one block column of a group).
pub fn record_bytes(ty: GgmlType) -> usize {
    INTERLEAVE_ROWS * ty.type_size()
}

/// Checks the type, the columns and that `len` bytes are whole groups; returns the row bytes.
fn check(
    ty: GgmlType,
    cols: usize,
    len: usize,
    buffer: &'static str,
) -> Result<usize, FormatError> {
    if !can_interleave(ty) {
        return Err(FormatError::Unsupported {
            ty,
            op: "interleave",
        });
    }
    if !cols.is_multiple_of(QK8_0) {
        return Err(FormatError::PartialBlock { ty, n: cols });
    }
    let rb = cols / QK8_0 * ty.type_size();
    let group = rb * INTERLEAVE_ROWS;
    if group == 0 || !len.is_multiple_of(group) {
        return Err(FormatError::SizeMismatch {
            ty,
            buffer,
            expected: len.div_ceil(group.max(1)) * group,
            got: len,
        });
    }
    Ok(rb)
}

#[inline(always)]
fn rd32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Packs `src` (`k * 16` ggml rows of `cols` elements of `ty`, back to back) into `dst` (the
/// same length) in the x16 layout of the module comment. Groups are independent, so a
/// matrix may be packed in pieces of whole groups (by several threads).
pub fn interleave(
    ty: GgmlType,
    cols: usize,
    src: &[u8],
    dst: &mut [u8],
) -> Result<(), FormatError> {
    let rb = check(ty, cols, src.len(), "interleave source")?;
    if dst.len() != src.len() {
        return Err(FormatError::SizeMismatch {
            ty,
            buffer: "interleave destination",
            expected: src.len(),
            got: dst.len(),
        });
    }
    match ty {
        GgmlType::Q8_0 => pack::<34>(rb, src, dst),
        GgmlType::Q4_0 => pack::<18>(rb, src, dst),
        _ => pack::<22>(rb, src, dst),
    }
    Ok(())
}

/// [`interleave`] for the type whose blocks are `TS` bytes (lengths checked by the caller:
/// `src` and `dst` the same whole groups of `rb`-byte rows). Raw 2- / 4- / 8-byte moves,
/// the format a constant: on this Sapphire Rapids VM (1 thread, best of 5) Q4_0 3.5-6.0 GB/s,
/// Q5_0 2.5-3.1, Q8_0 3.5-5.0 (the low ends from DRAM, 640x65536) against 2.3-3.8, 1.3-1.7
/// and 1.7-2.3 for the same loops on bounds-checked slices with the format matched per
/// block. Packing runs at load over up to ~250 MB.
fn pack<const TS: usize>(rb: usize, src: &[u8], dst: &mut [u8]) {
    let gb = rb * INTERLEAVE_ROWS;
    let nb = rb / TS;
    assert!(src.len() == dst.len() && src.len().is_multiple_of(gb) && rb == nb * TS);
    let rec = INTERLEAVE_ROWS * TS;
    for g in 0..src.len() / gb {
        for b in 0..nb {
            // SAFETY: group g's rows are src[g gb..(g + 1) gb], row r's block b is the TS bytes
            // at r rb + b TS inside it (b < nb), and record b of the group is the rec bytes at
            // g gb + b rec of dst (nb rec = gb); every access below stays inside those.
            unsafe {
                let blk = |r: usize| src.as_ptr().add(g * gb + r * rb + b * TS);
                let out = dst.as_mut_ptr().add(g * gb + b * rec);
                let rd32 = |p: *const u8| std::ptr::read_unaligned(p as *const u32);
                let wr32 = |p: *mut u8, v: u32| std::ptr::write_unaligned(p as *mut u32, v);
                let mut masks = [0u64; 8];
                for r in 0..INTERLEAVE_ROWS {
                    let x = blk(r);
                    std::ptr::copy_nonoverlapping(x, out.add(2 * r), 2);
                    match TS {
                        34 => {
                            for k in 0..8 {
                                wr32(
                                    out.add(32 + 64 * k + 4 * r),
                                    rd32(x.add(2 + 4 * k)) ^ 0x8080_8080,
                                );
                            }
                        }
                        18 => {
                            for j in 0..4 {
                                wr32(out.add(32 + 64 * j + 4 * r), rd32(x.add(2 + 4 * j)));
                            }
                        }
                        _ => {
                            let qh = rd32(x.add(2)) as u64;
                            for (m, mask) in masks.iter_mut().enumerate() {
                                *mask |= ((qh >> (4 * m)) & 0xf) << (4 * r);
                            }
                            for j in 0..4 {
                                wr32(out.add(96 + 64 * j + 4 * r), rd32(x.add(6 + 4 * j)));
                            }
                        }
                    }
                }
                if TS == 22 {
                    for (m, &mask) in masks.iter().enumerate() {
                        std::ptr::write_unaligned(out.add(32 + 8 * m) as *mut u64, mask.to_le());
                    }
                }
            }
        }
    }
}

/// The ggml bytes of row `r`'s block in a record: writes `ty.type_size()` bytes to `x`.
fn block_of(ty: GgmlType, rec: &[u8], r: usize, x: &mut [u8]) {
    x[..2].copy_from_slice(&rec[2 * r..2 * r + 2]);
    match ty {
        GgmlType::Q8_0 => {
            for k in 0..8 {
                let v = rd32(rec, 32 + 64 * k + 4 * r) ^ 0x8080_8080;
                x[2 + 4 * k..6 + 4 * k].copy_from_slice(&v.to_le_bytes());
            }
        }
        GgmlType::Q4_0 => {
            for j in 0..4 {
                let o = 32 + 64 * j + 4 * r;
                x[2 + 4 * j..6 + 4 * j].copy_from_slice(&rec[o..o + 4]);
            }
        }
        _ => {
            let mut qh = 0u32;
            for m in 0..8 {
                let mask = u64::from_le_bytes(rec[32 + 8 * m..40 + 8 * m].try_into().unwrap());
                qh |= (((mask >> (4 * r)) & 0xf) as u32) << (4 * m);
            }
            x[2..6].copy_from_slice(&qh.to_le_bytes());
            for j in 0..4 {
                let o = 96 + 64 * j + 4 * r;
                x[6 + 4 * j..10 + 4 * j].copy_from_slice(&rec[o..o + 4]);
            }
        }
    }
}

/// Writes into `dst` (`row_bytes` long) the ggml bytes of row `r` of the packed matrix
/// `packed` (whole groups of `cols`-element rows of `ty`).
///
/// # Panics
/// If the type cannot be interleaved, `packed` is not whole groups, `r` is past its rows or
/// `dst` is not one row long.
pub fn deinterleave_row(ty: GgmlType, cols: usize, packed: &[u8], r: usize, dst: &mut [u8]) {
    let rb = check(ty, cols, packed.len(), "packed matrix").expect("deinterleave_row");
    assert_eq!(
        dst.len(),
        rb,
        "deinterleave_row: destination is not one row"
    );
    assert!(
        r < packed.len() / rb.max(1),
        "deinterleave_row: row {r} out of range"
    );
    let ts = ty.type_size();
    let rec = record_bytes(ty);
    let g = &packed[r / INTERLEAVE_ROWS * rb * INTERLEAVE_ROWS..][..rb * INTERLEAVE_ROWS];
    for (b, x) in dst.chunks_exact_mut(ts).enumerate() {
        block_of(ty, &g[b * rec..(b + 1) * rec], r % INTERLEAVE_ROWS, x);
    }
}

/// Unpacks a whole packed buffer back to ggml rows (the inverse of [`interleave`]).
pub fn deinterleave(
    ty: GgmlType,
    cols: usize,
    src: &[u8],
    dst: &mut [u8],
) -> Result<(), FormatError> {
    let rb = check(ty, cols, src.len(), "deinterleave source")?;
    if dst.len() != src.len() {
        return Err(FormatError::SizeMismatch {
            ty,
            buffer: "deinterleave destination",
            expected: src.len(),
            got: dst.len(),
        });
    }
    for (r, row) in dst.chunks_exact_mut(rb).enumerate() {
        deinterleave_row(ty, cols, src, r, row);
    }
    Ok(())
}

/// Dequantizes row `r` of a packed matrix into `out` (`cols` floats).
pub fn dequantize_row(
    ty: GgmlType,
    cols: usize,
    packed: &[u8],
    r: usize,
    out: &mut [f32],
) -> Result<(), FormatError> {
    let rb = check(ty, cols, packed.len(), "packed matrix")?;
    if out.len() != cols || r >= packed.len() / rb {
        return Err(FormatError::SizeMismatch {
            ty,
            buffer: "dequantized row",
            expected: cols,
            got: out.len(),
        });
    }
    let ts = ty.type_size();
    let rec = record_bytes(ty);
    let g = &packed[r / INTERLEAVE_ROWS * rb * INTERLEAVE_ROWS..][..rb * INTERLEAVE_ROWS];
    let mut x = [0u8; 34];
    for (b, o) in out.chunks_exact_mut(QK8_0).enumerate() {
        block_of(
            ty,
            &g[b * rec..(b + 1) * rec],
            r % INTERLEAVE_ROWS,
            &mut x[..ts],
        );
        super::dequantize_row(ty, &x[..ts], o)?;
    }
    Ok(())
}

/// The 16 dots of one packed group (`16 * row_bytes` bytes) with one Q8_0 activation row:
/// `out[r]` is bit for bit what `formats::vec_dot_scalar` gives for row `r` of the group
/// (module comment).
///
/// # Panics
/// If the sizes or the type do not fit.
pub fn dot_group(ty: GgmlType, cols: usize, group: &[u8], act: &[u8]) -> [f32; INTERLEAVE_ROWS] {
    let rb = check(ty, cols, group.len(), "packed group").expect("dot_group");
    assert_eq!(
        group.len(),
        rb * INTERLEAVE_ROWS,
        "dot_group: not one group"
    );
    let nb = cols / QK8_0;
    assert_eq!(act.len(), nb * 34, "dot_group: activation row size");
    let ts = ty.type_size();
    let rec = record_bytes(ty);
    let mut out = [0.0f32; INTERLEAVE_ROWS];
    let mut x = [0u8; 34];
    for b in 0..nb {
        let a = &act[b * 34..(b + 1) * 34];
        for (r, o) in out.iter_mut().enumerate() {
            block_of(ty, &group[b * rec..(b + 1) * rec], r, &mut x[..ts]);
            // One block from 0.0: exactly the term the reference adds for this block.
            *o += super::vec_dot_scalar(ty, QK8_0, &x[..ts], a).expect("sizes checked");
        }
    }
    out
}

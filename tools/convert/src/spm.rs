//! Just enough of the protobuf wire format to read the pieces of a SentencePiece
//! `tokenizer.model` (`ModelProto.pieces`: text, score, type); everything else is skipped.

use std::path::Path;

use crate::error::{Error, Result};

/// SentencePiece piece types (`ModelProto.SentencePiece.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub text: String,
    pub score: f32,
    pub ty: PieceType,
}

/// Reads every piece of the model in `bytes` (read from `path`, named in errors).
pub fn read_pieces(path: &Path, bytes: &[u8]) -> Result<Vec<Piece>> {
    let mut r = Reader {
        path,
        bytes,
        pos: 0,
    };
    let mut pieces = Vec::new();
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 1 && wire == WIRE_LEN {
            let body = r.len_delimited()?;
            pieces.push(read_piece(path, body, r.pos - body.len())?);
        } else {
            r.skip(wire)?;
        }
    }
    if pieces.is_empty() {
        return Err(Error::at(path, "no SentencePiece pieces found"));
    }
    Ok(pieces)
}

const WIRE_VARINT: u32 = 0;
const WIRE_I64: u32 = 1;
const WIRE_LEN: u32 = 2;
const WIRE_I32: u32 = 5;

fn read_piece(path: &Path, bytes: &[u8], base: usize) -> Result<Piece> {
    let mut r = Reader {
        path,
        bytes,
        pos: 0,
    };
    let mut piece = Piece {
        text: String::new(),
        score: 0.0,
        ty: PieceType::Normal,
    };
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, WIRE_LEN) => {
                let text = r.len_delimited()?;
                piece.text = String::from_utf8(text.to_vec()).map_err(|_| {
                    Error::at(
                        path,
                        format!("piece at byte {} is not valid UTF-8", base + r.pos),
                    )
                })?;
            }
            (2, WIRE_I32) => piece.score = f32::from_le_bytes(r.fixed4()?),
            (3, WIRE_VARINT) => {
                piece.ty = match r.varint()? {
                    1 => PieceType::Normal,
                    2 => PieceType::Unknown,
                    3 => PieceType::Control,
                    4 => PieceType::UserDefined,
                    5 => PieceType::Unused,
                    6 => PieceType::Byte,
                    other => {
                        return Err(Error::at(
                            path,
                            format!("piece {:?} has unknown type {other}", piece.text),
                        ))
                    }
                }
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(piece)
}

struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn truncated(&self) -> Error {
        Error::at(
            self.path,
            format!(
                "truncated or malformed SentencePiece model at byte {}",
                self.pos
            ),
        )
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.pos).ok_or_else(|| self.truncated())?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.truncated())
    }

    fn key(&mut self) -> Result<(u64, u32)> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u32))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.truncated())?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| self.truncated())?;
        self.take(n)
    }

    fn fixed4(&mut self) -> Result<[u8; 4]> {
        Ok(self.take(4)?.try_into().expect("4 bytes"))
    }

    fn skip(&mut self, wire: u32) -> Result<()> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_I64 => self.take(8).map(drop),
            WIRE_LEN => self.len_delimited().map(drop),
            WIRE_I32 => self.take(4).map(drop),
            _ => Err(Error::at(
                self.path,
                format!("unsupported protobuf wire type {wire} at byte {}", self.pos),
            )),
        }
    }
}

/// Encodes pieces as a `ModelProto` (tests build `tokenizer.model` files with it).
pub fn encode_pieces(pieces: &[Piece]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = Vec::new();
    for p in pieces {
        let mut body = Vec::new();
        varint(&mut body, (1 << 3) | u64::from(WIRE_LEN));
        varint(&mut body, p.text.len() as u64);
        body.extend_from_slice(p.text.as_bytes());
        varint(&mut body, (2 << 3) | u64::from(WIRE_I32));
        body.extend_from_slice(&p.score.to_le_bytes());
        let ty = match p.ty {
            PieceType::Normal => 1,
            PieceType::Unknown => 2,
            PieceType::Control => 3,
            PieceType::UserDefined => 4,
            PieceType::Unused => 5,
            PieceType::Byte => 6,
        };
        varint(&mut body, 3 << 3);
        varint(&mut body, ty);
        varint(&mut out, (1 << 3) | u64::from(WIRE_LEN));
        varint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    // A trainer_spec-like field that readers must skip.
    varint(&mut out, (2 << 3) | u64::from(WIRE_LEN));
    varint(&mut out, 2);
    out.extend_from_slice(&[0x08, 0x01]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let pieces = vec![
            Piece {
                text: "<unk>".into(),
                score: 0.0,
                ty: PieceType::Unknown,
            },
            Piece {
                text: "▁the".into(),
                score: -3.5,
                ty: PieceType::Normal,
            },
            Piece {
                text: "<0x0A>".into(),
                score: 0.0,
                ty: PieceType::Byte,
            },
        ];
        let bytes = encode_pieces(&pieces);
        let path = Path::new("tokenizer.model");
        assert_eq!(read_pieces(path, &bytes).unwrap(), pieces);
        for cut in [1, 5, bytes.len() - 7] {
            let e = read_pieces(path, &bytes[..cut]).unwrap_err();
            assert!(e.message().starts_with("tokenizer.model: "), "{e}");
        }
    }
}

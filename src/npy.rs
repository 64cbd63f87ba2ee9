//! Minimal NumPy `.npy` (format 1.0) reading and writing for little-endian f32/i32/i64 arrays:
//! how logits leave the `logits` command and how test goldens come in.

use std::io::{self, Read, Write};

/// Writes the header of a C-order little-endian f32 array of `shape`.
pub fn write_f32_header<W: Write>(w: &mut W, shape: &[usize]) -> io::Result<()> {
    write_header(w, "<f4", shape)
}

fn write_header<W: Write>(w: &mut W, descr: &str, shape: &[usize]) -> io::Result<()> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())
}

/// Writes f32 values (the array body) in little-endian order.
pub fn write_f32_values<W: Write>(w: &mut W, values: &[f32]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(values.len() * 4);
    for v in values {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    w.write_all(&buf)
}

/// A loaded array: shape and values widened to f64 (exact for f32/i32; i64 ids fit).
#[derive(Debug, Clone)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub descr: String,
    pub data: Vec<f64>,
}

impl NpyArray {
    pub fn as_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v as f32).collect()
    }
    pub fn as_u32(&self) -> Vec<u32> {
        self.data.iter().map(|&v| v as u32).collect()
    }
}

/// Reads a little-endian, C-order `.npy` of f32, f64, i32 or i64.
pub fn read<R: Read>(mut r: R) -> io::Result<NpyArray> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let hlen = if magic[6] == 1 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b)?;
        u16::from_le_bytes(b) as usize
    } else {
        let mut b = [0u8; 4];
        r.read_exact(&mut b)?;
        u32::from_le_bytes(b) as usize
    };
    if hlen > 1 << 16 {
        return Err(bad("npy header too long"));
    }
    let mut header = vec![0u8; hlen];
    r.read_exact(&mut header)?;
    let header = String::from_utf8_lossy(&header).to_string();
    let field = |name: &str| -> Option<String> {
        let i = header.find(&format!("'{name}'"))? + name.len() + 2;
        Some(header[i..].trim_start_matches([':', ' ']).to_string())
    };
    let descr_raw = field("descr").ok_or_else(|| bad("npy header without descr"))?;
    let descr = descr_raw
        .trim_start_matches('\'')
        .split('\'')
        .next()
        .unwrap_or("")
        .to_string();
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err(bad("fortran-order npy arrays are not supported"));
    }
    let shape_raw = field("shape").ok_or_else(|| bad("npy header without shape"))?;
    let inner = shape_raw
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("");
    let shape: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad npy shape")))
        .collect::<io::Result<_>>()?;
    let count: usize = shape.iter().product();
    let width = match descr.as_str() {
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        other => return Err(bad(&format!("unsupported npy dtype {other}"))),
    };
    let mut raw = Vec::new();
    r.read_to_end(&mut raw)?;
    if raw.len() != count * width {
        return Err(bad("npy body size does not match its shape"));
    }
    let data = raw
        .chunks_exact(width)
        .map(|c| match descr.as_str() {
            "<f4" => f32::from_le_bytes(c.try_into().unwrap()) as f64,
            "<i4" => i32::from_le_bytes(c.try_into().unwrap()) as f64,
            "<f8" => f64::from_le_bytes(c.try_into().unwrap()),
            _ => i64::from_le_bytes(c.try_into().unwrap()) as f64,
        })
        .collect();
    Ok(NpyArray { shape, descr, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_round_trip() {
        let mut buf = Vec::new();
        write_f32_header(&mut buf, &[2, 3]).unwrap();
        assert_eq!(buf.len() % 64, 0);
        write_f32_values(&mut buf, &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).unwrap();
        let a = read(&buf[..]).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.as_f32(), vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
    }

    #[test]
    fn rejects_truncated_body() {
        let mut buf = Vec::new();
        write_f32_header(&mut buf, &[4]).unwrap();
        write_f32_values(&mut buf, &[1.0]).unwrap();
        assert!(read(&buf[..]).is_err());
    }
}

//! A byte-level GGUF builder that can write invalid files (the library writer refuses to):
//! every count, type id, offset and length is free to be wrong.

/// GGUF value type ids.
pub mod vt {
    pub const U8: u32 = 0;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STR: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
}

/// ggml type ids used by the tests.
pub mod gt {
    pub const F32: u32 = 0;
    pub const Q8_0: u32 = 8;
}

/// A GGUF string: u64 length, then the bytes.
pub fn enc_str(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

/// One encoded key/value pair: key, type id, payload.
pub fn kv(key: &[u8], ty: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = enc_str(key);
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn kv_str(key: &str, s: &str) -> Vec<u8> {
    kv(key.as_bytes(), vt::STR, &enc_str(s.as_bytes()))
}

pub fn kv_u32(key: &str, x: u32) -> Vec<u8> {
    kv(key.as_bytes(), vt::U32, &x.to_le_bytes())
}

/// Array payload: element type, count, then `elems` as given.
pub fn array_payload(elem_ty: u32, count: u64, elems: &[u8]) -> Vec<u8> {
    let mut v = elem_ty.to_le_bytes().to_vec();
    v.extend_from_slice(&count.to_le_bytes());
    v.extend_from_slice(elems);
    v
}

pub fn str_array_elems(items: &[&[u8]]) -> Vec<u8> {
    items.iter().flat_map(|s| enc_str(s)).collect()
}

#[derive(Clone, Debug)]
pub struct RawTensor {
    pub name: Vec<u8>,
    /// Written as the dimension count unless `n_dims` overrides it.
    pub dims: Vec<u64>,
    pub n_dims: Option<u32>,
    pub ty: u32,
    pub offset: u64,
}

/// A GGUF file described field by field, every field free to be wrong.
#[derive(Clone, Debug)]
pub struct RawGguf {
    pub magic: Vec<u8>,
    pub version: u32,
    /// Count overrides (default: the real lengths).
    pub n_tensors: Option<u64>,
    pub n_kv: Option<u64>,
    pub kvs: Vec<Vec<u8>>,
    pub tensors: Vec<RawTensor>,
    /// Alignment used to pad the end of the header.
    pub align: usize,
    pub data: Vec<u8>,
}

/// Byte offsets of the sections of a built file, for truncation cases.
#[derive(Clone, Debug, Default)]
pub struct Marks {
    pub version: usize,
    pub counts: usize,
    pub kvs: Vec<usize>,
    pub tensor_infos: Vec<usize>,
    /// End of the last tensor info (start of the alignment padding).
    pub infos_end: usize,
    pub data: usize,
}

impl RawGguf {
    /// A small valid file: 3 keys (one a string array), an F32 tensor [4, 2] at offset 0
    /// and a Q8_0 tensor [32, 1] at offset 32. The last tensor ends exactly at EOF, so
    /// every strict prefix of the file is invalid.
    pub fn valid() -> RawGguf {
        RawGguf {
            magic: b"GGUF".to_vec(),
            version: 3,
            n_tensors: None,
            n_kv: None,
            kvs: vec![
                kv_str("general.architecture", "test"),
                kv_u32("test.block_count", 7),
                kv(
                    b"tokenizer.ggml.tokens",
                    vt::ARRAY,
                    &array_payload(
                        vt::STR,
                        3,
                        &str_array_elems(&[b"a", b"bc", "\u{2581}d".as_bytes()]),
                    ),
                ),
            ],
            tensors: vec![
                RawTensor {
                    name: b"a.weight".to_vec(),
                    dims: vec![4, 2],
                    n_dims: None,
                    ty: gt::F32,
                    offset: 0,
                },
                RawTensor {
                    name: b"b.weight".to_vec(),
                    dims: vec![32, 1],
                    n_dims: None,
                    ty: gt::Q8_0,
                    offset: 32,
                },
            ],
            align: 32,
            data: (0..32 + 34).map(|i| i as u8).collect(),
        }
    }

    pub fn build(&self) -> Vec<u8> {
        self.build_marked().0
    }

    pub fn build_marked(&self) -> (Vec<u8>, Marks) {
        let mut b = Vec::new();
        let mut m = Marks::default();
        b.extend_from_slice(&self.magic);
        m.version = b.len();
        b.extend_from_slice(&self.version.to_le_bytes());
        m.counts = b.len();
        b.extend_from_slice(
            &self
                .n_tensors
                .unwrap_or(self.tensors.len() as u64)
                .to_le_bytes(),
        );
        b.extend_from_slice(&self.n_kv.unwrap_or(self.kvs.len() as u64).to_le_bytes());
        for e in &self.kvs {
            m.kvs.push(b.len());
            b.extend_from_slice(e);
        }
        for t in &self.tensors {
            m.tensor_infos.push(b.len());
            b.extend_from_slice(&enc_str(&t.name));
            b.extend_from_slice(&t.n_dims.unwrap_or(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                b.extend_from_slice(&d.to_le_bytes());
            }
            b.extend_from_slice(&t.ty.to_le_bytes());
            b.extend_from_slice(&t.offset.to_le_bytes());
        }
        m.infos_end = b.len();
        while b.len() % self.align != 0 {
            b.push(0);
        }
        m.data = b.len();
        b.extend_from_slice(&self.data);
        (b, m)
    }
}

/// Bytes of a fixed-size value of type `ty`, `None` for str and array.
pub fn fixed_size(ty: u32) -> Option<usize> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// A little-endian reader over a file that is expected to be valid (test input).
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("truncated at offset {}", self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn string(&mut self) -> Result<&'a [u8], String> {
        let n = self.u64()?;
        self.take(usize::try_from(n).map_err(|_| "string too long".to_string())?)
    }

    /// Skips one value of type `ty`.
    fn skip_value(&mut self, ty: u32) -> Result<(), String> {
        match (ty, fixed_size(ty)) {
            (_, Some(n)) => self.take(n).map(|_| ()),
            (8, None) => self.string().map(|_| ()),
            (9, None) => {
                let elem = self.u32()?;
                let count = self.u64()?;
                for _ in 0..count {
                    self.skip_value(elem)?;
                }
                Ok(())
            }
            _ => Err(format!("unknown value type {ty}")),
        }
    }
}

impl RawGguf {
    /// Splits a valid file back into its parts: every key/value pair as its raw bytes, the
    /// tensor descriptions, the alignment (`general.alignment` or 32) and the data section.
    /// `parse(b).build() == b` for any file whose header padding is zeros. `b` may also be
    /// just the header (the data section is then empty).
    pub fn parse(b: &[u8]) -> Result<RawGguf, String> {
        let mut r = Reader { b, pos: 0 };
        let magic = r.take(4)?.to_vec();
        let version = r.u32()?;
        let n_tensors = r.u64()?;
        let n_kv = r.u64()?;
        let mut kvs = Vec::new();
        let mut align = 32usize;
        for _ in 0..n_kv {
            let start = r.pos;
            let key = r.string()?;
            let ty = r.u32()?;
            let at = r.pos;
            r.skip_value(ty)?;
            if key == b"general.alignment" && ty == vt::U32 {
                align = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
            }
            kvs.push(b[start..r.pos].to_vec());
        }
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = r.string()?.to_vec();
            let n_dims = r.u32()?;
            let dims = (0..n_dims)
                .map(|_| r.u64())
                .collect::<Result<Vec<_>, _>>()?;
            let ty = r.u32()?;
            let offset = r.u64()?;
            tensors.push(RawTensor {
                name,
                dims,
                n_dims: None,
                ty,
                offset,
            });
        }
        let data_start = r.pos.div_ceil(align) * align;
        Ok(RawGguf {
            magic,
            version,
            n_tensors: None,
            n_kv: None,
            kvs,
            tensors,
            align,
            data: b.get(data_start..).map(<[u8]>::to_vec).unwrap_or_default(),
        })
    }
}

/// The key of one encoded key/value pair.
pub fn kv_key(kv: &[u8]) -> &str {
    let n = u64::from_le_bytes(kv[..8].try_into().unwrap()) as usize;
    std::str::from_utf8(&kv[8..8 + n]).expect("UTF-8 key")
}

/// The value type id of one encoded key/value pair.
pub fn kv_type(kv: &[u8]) -> u32 {
    let n = u64::from_le_bytes(kv[..8].try_into().unwrap()) as usize;
    u32::from_le_bytes(kv[8 + n..12 + n].try_into().unwrap())
}

/// The payload (the bytes after the type id) of one encoded key/value pair.
pub fn kv_payload(kv: &[u8]) -> &[u8] {
    let n = u64::from_le_bytes(kv[..8].try_into().unwrap()) as usize;
    &kv[12 + n..]
}

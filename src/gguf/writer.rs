//! Streaming GGUF v3 writer.
//!
//! Two phases: [`GgufWriter`] collects metadata and tensor descriptions (name, type,
//! shape; the byte sizes follow from them), then [`GgufWriter::begin`] writes the whole
//! header and returns a [`GgufDataWriter`] that takes the tensors' bytes one tensor at a
//! time, in declaration order, so no more than one tensor (or one chunk of it) is ever in
//! memory. Where the file lives, temp names, fsync and rename are the caller's business:
//! the writer writes into any `Write` and [`GgufDataWriter::finish`] hands it back.

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use edgegemma_kernels::GgmlType;

use super::error::GgufError;
use super::reader::{quoted, MAX_KEY_BYTES};
use super::tensor::{MAX_DIMS, MAX_TENSOR_NAME_BYTES};
use super::value::{OwnedArray, OwnedValue};
use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC, KEY_ALIGNMENT};

/// The version the writer produces.
pub const WRITE_VERSION: u32 = 3;

struct PlannedTensor {
    name: String,
    ty: GgmlType,
    dims: Vec<u64>,
    size: u64,
    /// Offset relative to the data section; set by `begin`.
    offset: u64,
}

/// Collects metadata and tensor descriptions; see the module docs.
pub struct GgufWriter {
    path: PathBuf,
    metadata: Vec<(String, OwnedValue)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<PlannedTensor>,
    names: HashSet<String>,
}

impl GgufWriter {
    /// `path` is only used to name the output in error messages.
    pub fn new(path: impl Into<PathBuf>) -> GgufWriter {
        GgufWriter {
            path: path.into(),
            metadata: Vec::new(),
            key_index: HashMap::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
        }
    }

    fn error(&self, message: impl Into<String>) -> GgufError {
        GgufError::new(&self.path, message)
    }

    /// Adds a key (written in insertion order). Duplicate keys are an error;
    /// `general.alignment` must be a u32 power of two.
    pub fn add_metadata(
        &mut self,
        key: &str,
        value: impl Into<OwnedValue>,
    ) -> Result<(), GgufError> {
        let value = value.into();
        if key.is_empty() || key.len() as u64 > MAX_KEY_BYTES {
            return Err(self.error(format!(
                "metadata key {} must be 1 to {MAX_KEY_BYTES} bytes long",
                quoted(key)
            )));
        }
        if self.key_index.contains_key(key) {
            return Err(self.error(format!("duplicate metadata key {}", quoted(key))));
        }
        if key == KEY_ALIGNMENT {
            self.check_alignment_value(&value)?;
        }
        self.key_index.insert(key.to_string(), self.metadata.len());
        self.metadata.push((key.to_string(), value));
        Ok(())
    }

    fn check_alignment_value(&self, value: &OwnedValue) -> Result<(), GgufError> {
        match value {
            OwnedValue::U32(a) if a.is_power_of_two() => Ok(()),
            OwnedValue::U32(a) => {
                Err(self.error(format!("\"{KEY_ALIGNMENT}\" {a} is not a power of two")))
            }
            other => Err(self.error(format!(
                "\"{KEY_ALIGNMENT}\" must be u32, not {}",
                other.value_type()
            ))),
        }
    }

    /// Sets the tensor data alignment (stored as `general.alignment`, replacing any
    /// earlier value). Must be a power of two.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<(), GgufError> {
        let value = OwnedValue::U32(alignment);
        self.check_alignment_value(&value)?;
        match self.key_index.get(KEY_ALIGNMENT) {
            Some(&i) => self.metadata[i].1 = value,
            None => self.add_metadata(KEY_ALIGNMENT, value)?,
        }
        Ok(())
    }

    /// The alignment the file will use.
    pub fn alignment(&self) -> u64 {
        match self
            .key_index
            .get(KEY_ALIGNMENT)
            .map(|&i| &self.metadata[i].1)
        {
            Some(OwnedValue::U32(a)) => u64::from(*a),
            _ => DEFAULT_ALIGNMENT,
        }
    }

    /// Declares a tensor; `dims` in ggml `ne` order (`dims[0]` contiguous, a whole number
    /// of `ty` blocks). Returns its byte size. Tensors are written in declaration order.
    pub fn add_tensor(&mut self, name: &str, ty: GgmlType, dims: &[u64]) -> Result<u64, GgufError> {
        let q = quoted(name);
        if name.is_empty() || name.len() > MAX_TENSOR_NAME_BYTES {
            return Err(self.error(format!(
                "tensor name {q} must be 1 to {MAX_TENSOR_NAME_BYTES} bytes long"
            )));
        }
        if self.names.contains(name) {
            return Err(self.error(format!("duplicate tensor name {q}")));
        }
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(self.error(format!(
                "tensor {q} has {} dimensions (must be 1 to {MAX_DIMS})",
                dims.len()
            )));
        }
        if dims.contains(&0) {
            return Err(self.error(format!("tensor {q} has a zero dimension: {dims:?}")));
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| self.error(format!("tensor {q} dimensions {dims:?} overflow")))?;
        let row_bytes = ty.row_bytes(dims[0]).ok_or_else(|| {
            self.error(format!(
                "tensor {q} row length {} is not a multiple of the {ty} block size {}",
                dims[0],
                ty.block_size()
            ))
        })?;
        let size = (n_elements / dims[0])
            .checked_mul(row_bytes)
            .ok_or_else(|| self.error(format!("tensor {q} byte size overflows")))?;
        self.names.insert(name.to_string());
        self.tensors.push(PlannedTensor {
            name: name.to_string(),
            ty,
            dims: dims.to_vec(),
            size,
            offset: 0,
        });
        Ok(size)
    }

    /// Writes magic, version, counts, metadata, tensor descriptions and the padding up to
    /// the data section into `out`, and returns the writer for the tensor data.
    pub fn begin<W: Write>(mut self, out: W) -> Result<GgufDataWriter<W>, GgufError> {
        let alignment = self.alignment();
        let mut offset = 0u64;
        for t in &mut self.tensors {
            t.offset = offset;
            offset = offset
                .checked_add(t.size)
                .map(|end| end.div_ceil(alignment) * alignment)
                .ok_or_else(|| GgufError::new(&self.path, "total tensor data size overflows"))?;
        }
        let mut w = CountingWriter {
            out: BufWriter::with_capacity(1 << 20, out),
            pos: 0,
        };
        let path = self.path.clone();
        let io = |e| GgufError::io(&path, "write failed", e);
        w.bytes(GGUF_MAGIC).map_err(io)?;
        w.u32(WRITE_VERSION).map_err(io)?;
        w.u64(self.tensors.len() as u64).map_err(io)?;
        w.u64(self.metadata.len() as u64).map_err(io)?;
        for (key, value) in &self.metadata {
            w.string(key).map_err(io)?;
            w.u32(value.value_type().id()).map_err(io)?;
            w.value(value).map_err(io)?;
        }
        for t in &self.tensors {
            w.string(&t.name).map_err(io)?;
            w.u32(t.dims.len() as u32).map_err(io)?;
            for &d in &t.dims {
                w.u64(d).map_err(io)?;
            }
            w.u32(t.ty.id()).map_err(io)?;
            w.u64(t.offset).map_err(io)?;
        }
        w.pad_to(alignment).map_err(io)?;
        let data_offset = w.pos;
        Ok(GgufDataWriter {
            path: self.path,
            w,
            alignment,
            data_offset,
            tensors: self.tensors,
            next: 0,
            current: None,
        })
    }
}

/// Takes the tensor data, one tensor at a time in declaration order.
pub struct GgufDataWriter<W: Write> {
    path: PathBuf,
    w: CountingWriter<W>,
    alignment: u64,
    data_offset: u64,
    tensors: Vec<PlannedTensor>,
    /// Index of the next tensor to begin.
    next: usize,
    /// The tensor being written and how many of its bytes have been written.
    current: Option<(usize, u64)>,
}

impl<W: Write> GgufDataWriter<W> {
    fn error(&self, message: impl Into<String>) -> GgufError {
        GgufError::new(&self.path, message)
    }

    fn io(&self, e: std::io::Error) -> GgufError {
        GgufError::io(&self.path, "write failed", e)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Absolute offset of the data section in the output.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Name of the tensor that must be written next, if any remain.
    pub fn next_tensor(&self) -> Option<&str> {
        self.tensors.get(self.next).map(|t| t.name.as_str())
    }

    /// Starts tensor `name`, which must be the next one declared.
    pub fn begin_tensor(&mut self, name: &str) -> Result<(), GgufError> {
        if let Some((i, _)) = self.current {
            return Err(self.error(format!(
                "cannot begin tensor {}: tensor {} is not finished",
                quoted(name),
                quoted(&self.tensors[i].name)
            )));
        }
        let Some(t) = self.tensors.get(self.next) else {
            return Err(self.error(format!(
                "tensor {} was not declared or is already written",
                quoted(name)
            )));
        };
        if t.name != name {
            return Err(self.error(format!(
                "tensor {} written out of order: expected {}",
                quoted(name),
                quoted(&t.name)
            )));
        }
        if self.w.pos != self.data_offset + t.offset {
            return Err(self.error(format!(
                "internal: at byte {} but tensor {} starts at {}",
                self.w.pos,
                quoted(name),
                self.data_offset + t.offset
            )));
        }
        self.current = Some((self.next, 0));
        self.next += 1;
        Ok(())
    }

    /// Appends bytes to the current tensor.
    pub fn write_data(&mut self, bytes: &[u8]) -> Result<(), GgufError> {
        let Some((i, written)) = self.current else {
            return Err(self.error("tensor data written outside begin_tensor/end_tensor"));
        };
        let t = &self.tensors[i];
        let total = written + bytes.len() as u64;
        if total > t.size {
            return Err(self.error(format!(
                "tensor {} ({} {:?}) is {} bytes, but {total} were given",
                quoted(&t.name),
                t.ty,
                t.dims,
                t.size
            )));
        }
        self.w.bytes(bytes).map_err(|e| self.io(e))?;
        self.current = Some((i, total));
        Ok(())
    }

    /// Finishes the current tensor (all its bytes must have been written) and pads.
    pub fn end_tensor(&mut self) -> Result<(), GgufError> {
        let Some((i, written)) = self.current else {
            return Err(self.error("end_tensor without begin_tensor"));
        };
        let t = &self.tensors[i];
        if written != t.size {
            return Err(self.error(format!(
                "tensor {} ({} {:?}) is {} bytes, but only {written} were given",
                quoted(&t.name),
                t.ty,
                t.dims,
                t.size
            )));
        }
        self.w.pad_to(self.alignment).map_err(|e| self.io(e))?;
        self.current = None;
        Ok(())
    }

    /// Writes the whole of tensor `name`.
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> Result<(), GgufError> {
        self.begin_tensor(name)?;
        self.write_data(data)?;
        self.end_tensor()
    }

    /// Checks every declared tensor was written, flushes, and returns the output (e.g. the
    /// `File`, for the caller to fsync and rename).
    pub fn finish(self) -> Result<W, GgufError> {
        if let Some((i, _)) = self.current {
            return Err(self.error(format!(
                "tensor {} is not finished",
                quoted(&self.tensors[i].name)
            )));
        }
        if let Some(t) = self.tensors.get(self.next) {
            return Err(self.error(format!(
                "{} of {} tensors written; next is {}",
                self.next,
                self.tensors.len(),
                quoted(&t.name)
            )));
        }
        let path = self.path;
        self.w
            .out
            .into_inner()
            .map_err(|e| GgufError::io(&path, "write failed", e.into_error()))
    }
}

/// Little-endian encoder that tracks the output position (for padding and offsets).
struct CountingWriter<W: Write> {
    out: BufWriter<W>,
    pos: u64,
}

impl<W: Write> CountingWriter<W> {
    fn bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn u32(&mut self, v: u32) -> std::io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> std::io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    fn string(&mut self, s: &str) -> std::io::Result<()> {
        self.u64(s.len() as u64)?;
        self.bytes(s.as_bytes())
    }

    fn pad_to(&mut self, alignment: u64) -> std::io::Result<()> {
        const ZEROS: [u8; 256] = [0; 256];
        let mut pad = self.pos.div_ceil(alignment) * alignment - self.pos;
        while pad > 0 {
            let n = pad.min(ZEROS.len() as u64) as usize;
            self.bytes(&ZEROS[..n])?;
            pad -= n as u64;
        }
        Ok(())
    }

    /// The value's payload (its type id is written by the caller).
    fn value(&mut self, v: &OwnedValue) -> std::io::Result<()> {
        match v {
            OwnedValue::U8(x) => self.bytes(&[*x]),
            OwnedValue::I8(x) => self.bytes(&x.to_le_bytes()),
            OwnedValue::U16(x) => self.bytes(&x.to_le_bytes()),
            OwnedValue::I16(x) => self.bytes(&x.to_le_bytes()),
            OwnedValue::U32(x) => self.bytes(&x.to_le_bytes()),
            OwnedValue::I32(x) => self.bytes(&x.to_le_bytes()),
            OwnedValue::F32(x) => self.bytes(&x.to_le_bytes()),
            OwnedValue::Bool(x) => self.bytes(&[u8::from(*x)]),
            OwnedValue::String(s) => self.string(s),
            OwnedValue::U64(x) => self.bytes(&x.to_le_bytes()),
            OwnedValue::I64(x) => self.bytes(&x.to_le_bytes()),
            OwnedValue::F64(x) => self.bytes(&x.to_le_bytes()),
            OwnedValue::Array(a) => self.array(a),
        }
    }

    fn array(&mut self, a: &OwnedArray) -> std::io::Result<()> {
        self.u32(a.elem_type().id())?;
        self.u64(a.len() as u64)?;
        macro_rules! each_le {
            ($v:expr) => {{
                for x in $v {
                    self.bytes(&x.to_le_bytes())?;
                }
                Ok(())
            }};
        }
        match a {
            OwnedArray::U8(v) => self.bytes(v),
            OwnedArray::I8(v) => each_le!(v),
            OwnedArray::U16(v) => each_le!(v),
            OwnedArray::I16(v) => each_le!(v),
            OwnedArray::U32(v) => each_le!(v),
            OwnedArray::I32(v) => each_le!(v),
            OwnedArray::F32(v) => each_le!(v),
            OwnedArray::Bool(v) => {
                for &x in v {
                    self.bytes(&[u8::from(x)])?;
                }
                Ok(())
            }
            OwnedArray::String(v) => {
                for s in v {
                    self.string(s)?;
                }
                Ok(())
            }
            OwnedArray::U64(v) => each_le!(v),
            OwnedArray::I64(v) => each_le!(v),
            OwnedArray::F64(v) => each_le!(v),
        }
    }
}

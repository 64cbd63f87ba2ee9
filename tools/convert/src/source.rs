//! Where tensor values come from: memory-mapped safetensors files (one or sharded) or a GGUF
//! file, read a chunk of rows at a time and handed out as f32.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use edgegemma::gguf::{GgmlType, GgufFile, TensorView};
use edgegemma_kernels::formats::dequantize_row;
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::arch::Transform;
use crate::error::{Error, Result};
use crate::validate;

/// A tensor's rows, as the GGUF will hold them, produced on demand.
pub trait TensorSource: Sync {
    /// The source type, for the plan ("bf16", "q4_K").
    fn type_name(&self) -> String;
    /// Fills `out` with whole output rows starting at `first_row`, as f32.
    fn read_f32(&self, first_row: usize, out: &mut [f32]) -> Result<()>;
    /// The stored bytes of `n_rows` rows when they already are of type `ty` (copied as is).
    fn raw(&self, ty: GgmlType, first_row: usize, n_rows: usize) -> Option<&[u8]>;
    /// Input bytes behind one output row (for the progress rate).
    fn bytes_per_row(&self) -> u64;
    /// Tells the OS the mapped pages behind these rows are no longer needed, so the input
    /// does not accumulate in the resident set.
    fn release(&self, first_row: usize, n_rows: usize);
}

/// Element types read from safetensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    F16,
    BF16,
}

impl Elem {
    fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F16 | Elem::BF16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Elem::F32 => "f32",
            Elem::F16 => "f16",
            Elem::BF16 => "bf16",
        }
    }

    #[inline]
    fn decode(self, b: &[u8], i: usize) -> f32 {
        match self {
            Elem::F32 => f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]),
            Elem::F16 => {
                half::f16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32()
            }
            Elem::BF16 => {
                f32::from_bits(u32::from(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])) << 16)
            }
        }
    }

    fn ggml(self) -> GgmlType {
        match self {
            Elem::F32 => GgmlType::F32,
            Elem::F16 => GgmlType::F16,
            Elem::BF16 => GgmlType::BF16,
        }
    }
}

struct Shard {
    path: PathBuf,
    map: Mmap,
}

impl Shard {
    #[cfg(target_os = "linux")]
    fn release(&self, start: usize, len: usize) {
        // SAFETY: the mapping is a read-only view of a file; MADV_DONTNEED only drops this
        // process's copies of the pages, which are re-read from the file if touched again.
        // No reference into the range relies on the old pages beyond what a re-read gives.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len)
        };
    }

    #[cfg(not(target_os = "linux"))]
    fn release(&self, _start: usize, _len: usize) {}
}

/// One tensor's place in a shard.
#[derive(Clone, Debug)]
pub struct StEntry {
    shard: usize,
    pub elem: std::result::Result<Elem, Dtype>,
    pub shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// The safetensors files of a model folder (`model.safetensors`, or the shards listed by
/// `model.safetensors.index.json`), mapped, with an index of every tensor.
pub struct SafetensorsSet {
    shards: Vec<Shard>,
    tensors: HashMap<String, StEntry>,
}

impl SafetensorsSet {
    pub fn open(dir: &Path) -> Result<SafetensorsSet> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index.is_file() {
            let bytes = validate::read_bounded(&index, validate::MAX_INDEX_BYTES)?;
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| Error::at(&index, format!("not valid JSON: {e}")))?;
            let map = v
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| Error::at(&index, "no \"weight_map\" object"))?;
            let mut names: Vec<&str> = Vec::new();
            for (tensor, file) in map {
                let f = file.as_str().ok_or_else(|| {
                    Error::at(
                        &index,
                        format!("weight_map entry {tensor:?} is not a file name"),
                    )
                })?;
                if f.contains('/') || f.contains('\\') || f == ".." {
                    return Err(Error::at(
                        &index,
                        format!("shard name {f:?} is not a plain file name"),
                    ));
                }
                if !names.contains(&f) {
                    names.push(f);
                }
            }
            names.sort_unstable();
            names.into_iter().map(|f| dir.join(f)).collect()
        } else if single.is_file() {
            vec![single]
        } else {
            return Err(Error::at(
                dir,
                "no model.safetensors or model.safetensors.index.json (only safetensors checkpoints are read)",
            ));
        };

        let mut shards = Vec::with_capacity(files.len());
        let mut tensors: HashMap<String, StEntry> = HashMap::new();
        for (si, path) in files.into_iter().enumerate() {
            let file = File::open(&path).map_err(|e| Error::io(&path, "cannot open", e))?;
            // SAFETY: the file is only read; a concurrent writer truncating it could fault the
            // process, the usual caveat of mapping a file, accepted for model files.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, "cannot map", e))?;
            validate::safetensors_header(&path, &map)?;
            let (header_len, meta) = SafeTensors::read_metadata(&map)
                .map_err(|e| Error::at(&path, format!("not a valid safetensors file: {e}")))?;
            let data_start = 8 + header_len;
            for (name, info) in meta.tensors() {
                let elem = match info.dtype {
                    Dtype::F32 => Ok(Elem::F32),
                    Dtype::F16 => Ok(Elem::F16),
                    Dtype::BF16 => Ok(Elem::BF16),
                    other => Err(other),
                };
                let entry = StEntry {
                    shard: si,
                    elem,
                    shape: info.shape.clone(),
                    start: data_start + info.data_offsets.0,
                    end: data_start + info.data_offsets.1,
                };
                if let Some(prev) = tensors.insert(name.clone(), entry) {
                    return Err(Error::at(
                        &path,
                        format!(
                            "tensor {name:?} is also in {}",
                            shards.get(prev.shard).map_or_else(
                                || path.display().to_string(),
                                |s: &Shard| s.path.display().to_string()
                            )
                        ),
                    ));
                }
            }
            shards.push(Shard { path, map });
        }
        Ok(SafetensorsSet { shards, tensors })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<&StEntry> {
        self.tensors.get(name)
    }

    pub fn file_of(&self, e: &StEntry) -> &Path {
        &self.shards[e.shard].path
    }

    /// A row source for `name`, which must have a readable dtype.
    pub fn source(
        &self,
        name: &str,
        elem: Elem,
        transform: Transform,
        row_len: usize,
    ) -> SafetensorsTensor<'_> {
        let e = &self.tensors[name];
        SafetensorsTensor {
            shard: &self.shards[e.shard],
            bytes: &self.shards[e.shard].map[e.start..e.end],
            start: e.start,
            elem,
            transform,
            row_len,
            shape: e.shape.clone(),
        }
    }
}

/// A safetensors tensor read row by row with its [`Transform`].
pub struct SafetensorsTensor<'a> {
    shard: &'a Shard,
    bytes: &'a [u8],
    start: usize,
    elem: Elem,
    transform: Transform,
    /// Elements per output row.
    row_len: usize,
    shape: Vec<usize>,
}

impl TensorSource for SafetensorsTensor<'_> {
    fn type_name(&self) -> String {
        self.elem.name().to_string()
    }

    fn read_f32(&self, first_row: usize, out: &mut [f32]) -> Result<()> {
        let (row_len, elem, bytes) = (self.row_len, self.elem, self.bytes);
        match self.transform {
            Transform::Copy | Transform::NormPlusOne => {
                let add = if self.transform == Transform::NormPlusOne {
                    1.0
                } else {
                    0.0
                };
                out.par_chunks_mut(row_len)
                    .enumerate()
                    .for_each(|(r, row)| {
                        let base = (first_row + r) * row_len;
                        for (j, x) in row.iter_mut().enumerate() {
                            *x = elem.decode(bytes, base + j) + add;
                        }
                    });
            }
            Transform::TransposeBlocks => {
                // Source [H, in, out]; output row (h, o) = column o of block h.
                let b = self.shape[1];
                out.par_chunks_mut(row_len)
                    .enumerate()
                    .for_each(|(r, row)| {
                        let (h, o) = ((first_row + r) / b, (first_row + r) % b);
                        for (i, x) in row.iter_mut().enumerate() {
                            *x = elem.decode(bytes, (h * b + i) * b + o);
                        }
                    });
            }
        }
        Ok(())
    }

    fn raw(&self, ty: GgmlType, first_row: usize, n_rows: usize) -> Option<&[u8]> {
        (self.transform == Transform::Copy && ty == self.elem.ggml()).then(|| {
            let row = self.row_len * self.elem.size();
            &self.bytes[first_row * row..(first_row + n_rows) * row]
        })
    }

    fn bytes_per_row(&self) -> u64 {
        (self.row_len * self.elem.size()) as u64
    }

    fn release(&self, first_row: usize, n_rows: usize) {
        if self.transform == Transform::TransposeBlocks {
            // Rows read columns of whole blocks; drop the tensor once it is done.
            if (first_row + n_rows) * self.row_len * self.elem.size() == self.bytes.len() {
                self.shard.release(self.start, self.bytes.len());
            }
            return;
        }
        let row = self.row_len * self.elem.size();
        self.shard
            .release(self.start + first_row * row, n_rows * row);
    }
}

/// A tensor of a GGUF input file.
pub struct GgufTensor<'a> {
    pub file: &'a GgufFile,
    pub view: TensorView<'a>,
}

impl TensorSource for GgufTensor<'_> {
    fn type_name(&self) -> String {
        self.view.ggml_type().name().to_string()
    }

    fn read_f32(&self, first_row: usize, out: &mut [f32]) -> Result<()> {
        let ty = self.view.ggml_type();
        let row_len = self.view.row_len();
        let row_bytes = self.view.row_bytes();
        let data = self.view.data();
        out.par_chunks_mut(row_len)
            .enumerate()
            .try_for_each(|(r, row)| {
                let start = (first_row + r) * row_bytes;
                dequantize_row(ty, &data[start..start + row_bytes], row)
            })
            .map_err(|e| {
                Error::new(format!(
                    "tensor {:?}: cannot read {ty}: {e}",
                    self.view.name()
                ))
            })
    }

    fn raw(&self, ty: GgmlType, first_row: usize, n_rows: usize) -> Option<&[u8]> {
        (ty == self.view.ggml_type()).then(|| {
            let rb = self.view.row_bytes();
            &self.view.data()[first_row * rb..(first_row + n_rows) * rb]
        })
    }

    fn bytes_per_row(&self) -> u64 {
        self.view.row_bytes() as u64
    }

    fn release(&self, first_row: usize, n_rows: usize) {
        let rb = self.view.row_bytes();
        self.file
            .release_pages(&self.view.data()[first_row * rb..(first_row + n_rows) * rb]);
    }
}

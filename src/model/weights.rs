//! Weight lookup shared by the architectures: matrices stay in the mmap (kept as offsets into
//! it), small vectors (norms, biases) are dequantized into owned f32 once at load.

use super::{ModelError, Result};
use crate::gguf::names::Arch;
use crate::gguf::GgufFile;
use crate::kernels::{GgmlType, WeightMatrix};
use std::ops::Range;

/// A matrix in the mapped file: `rows` rows of `cols` elements in format `ty`.
#[derive(Clone, Debug)]
pub struct MatRef {
    pub ty: GgmlType,
    pub range: Range<usize>,
    pub rows: usize,
    pub cols: usize,
}

impl MatRef {
    /// The matrix as a kernel operand over `map` (the file's mapped bytes).
    #[inline]
    pub fn view<'a>(&self, map: &'a [u8]) -> WeightMatrix<'a> {
        WeightMatrix::new(self.ty, &map[self.range.clone()], self.rows, self.cols)
            .expect("shape and type validated when the model was loaded")
    }
}

fn err(file: &GgufFile, msg: String) -> ModelError {
    ModelError(format!("{}: {msg}", file.path().display()))
}

/// The 2-D tensor `name` with GGUF dims `[cols, rows]`; `None` when absent.
pub fn matrix_opt(file: &GgufFile, name: &str, cols: usize, rows: usize) -> Result<Option<MatRef>> {
    let Some(t) = file.tensor(name) else {
        return Ok(None);
    };
    let dims = t.dims();
    let want = [cols as u64, rows as u64];
    if dims != want {
        return Err(err(
            file,
            format!("tensor {name:?} has shape {dims:?}, expected {want:?}"),
        ));
    }
    let ty = t.ggml_type();
    // Checks the type has kernels and the row is whole blocks.
    let view = WeightMatrix::new(ty, t.data(), rows, cols).map_err(|e| {
        err(
            file,
            format!("tensor {name:?} ({ty}) cannot be used as a matrix: {e}"),
        )
    })?;
    let start = t.info().file_offset() as usize;
    Ok(Some(MatRef {
        ty,
        range: start..start + view.data().len(),
        rows,
        cols,
    }))
}

/// A tensor of any rank read as a matrix: `dims[0] == cols`, the other dims multiply to `rows`
/// (e.g. RecurrentGemma's per-block gates `[B, B, H]` as `H·B` rows of `B`).
pub fn matrix_from_3d(file: &GgufFile, name: &str, cols: usize, rows: usize) -> Result<MatRef> {
    let t = file
        .tensor(name)
        .ok_or_else(|| err(file, format!("missing tensor {name:?}")))?;
    let dims = t.dims();
    let rest: u64 = dims.iter().skip(1).product();
    if dims.first() != Some(&(cols as u64)) || rest != rows as u64 {
        return Err(err(
            file,
            format!("tensor {name:?} has shape {dims:?}, expected {cols} columns and {rows} rows"),
        ));
    }
    let ty = t.ggml_type();
    let view = WeightMatrix::new(ty, t.data(), rows, cols).map_err(|e| {
        err(
            file,
            format!("tensor {name:?} ({ty}) cannot be used as a matrix: {e}"),
        )
    })?;
    let start = t.info().file_offset() as usize;
    Ok(MatRef {
        ty,
        range: start..start + view.data().len(),
        rows,
        cols,
    })
}

/// The 2-D tensor `name` with GGUF dims `[cols, rows]`.
pub fn matrix(file: &GgufFile, name: &str, cols: usize, rows: usize) -> Result<MatRef> {
    matrix_opt(file, name, cols, rows)?.ok_or_else(|| err(file, format!("missing tensor {name:?}")))
}

/// The tensor `name` with exactly `dims` (any shape), dequantized to f32.
pub fn tensor_f32(file: &GgufFile, name: &str, dims: &[usize]) -> Result<Vec<f32>> {
    let t = file
        .tensor(name)
        .ok_or_else(|| err(file, format!("missing tensor {name:?}")))?;
    let want: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    if t.dims() != want.as_slice() {
        return Err(err(
            file,
            format!(
                "tensor {name:?} has shape {:?}, expected {want:?}",
                t.dims()
            ),
        ));
    }
    let n: usize = dims.iter().product();
    let mut out = vec![0.0f32; n];
    crate::kernels::formats::dequantize_row(t.ggml_type(), t.data(), &mut out)
        .map_err(|e| err(file, format!("tensor {name:?}: {e}")))?;
    Ok(out)
}

/// A 1-D tensor of `len` elements, dequantized to f32.
pub fn vector(file: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>> {
    tensor_f32(file, name, &[len])
}

/// Optional 1-D tensor.
pub fn vector_opt(file: &GgufFile, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
    if file.tensor(name).is_none() {
        return Ok(None);
    }
    vector(file, name, len).map(Some)
}

/// A required u32 hyperparameter `{arch}.{key}` (`key` one of `gguf::names::key`).
pub fn hparam_u32(file: &GgufFile, arch: Arch, key: &str) -> Result<usize> {
    Ok(file.get_u32(&arch.key(key))? as usize)
}

/// An optional u32 hyperparameter `{arch}.{key}`.
pub fn hparam_u32_opt(file: &GgufFile, arch: Arch, key: &str) -> Result<Option<usize>> {
    Ok(file.get_u32_opt(&arch.key(key))?.map(|v| v as usize))
}

/// An optional f32 hyperparameter `{arch}.{key}`.
pub fn hparam_f32_opt(file: &GgufFile, arch: Arch, key: &str) -> Result<Option<f32>> {
    Ok(file.get_f32_opt(&arch.key(key))?)
}

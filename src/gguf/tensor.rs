//! Tensor descriptions and zero-copy views of tensor data in the mapped file.

use edgegemma_kernels::GgmlType;

/// Largest number of dimensions a GGUF tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// Longest tensor name ggml accepts (`GGML_MAX_NAME` is 64 including the NUL).
pub const MAX_TENSOR_NAME_BYTES: usize = 63;

/// One tensor's validated description: its data lies inside the file, aligned, and
/// overlaps no other tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub(crate) name: String,
    pub(crate) ty: GgmlType,
    pub(crate) n_dims: usize,
    /// ggml `ne` order: `ne[0]` is the contiguous axis; unused trailing dims are 1.
    pub(crate) ne: [u64; MAX_DIMS],
    /// Absolute byte offset of the data in the file.
    pub(crate) file_offset: u64,
    pub(crate) size: u64,
}

impl TensorInfo {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ggml_type(&self) -> GgmlType {
        self.ty
    }

    /// Dimensions in ggml `ne` order (`dims()[0]` = elements per row).
    pub fn dims(&self) -> &[u64] {
        &self.ne[..self.n_dims]
    }

    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }

    /// Bytes of tensor data.
    pub fn byte_size(&self) -> u64 {
        self.size
    }

    /// Absolute offset of the data in the file.
    pub fn file_offset(&self) -> u64 {
        self.file_offset
    }

    /// Elements per row (`ne[0]`).
    pub fn row_len(&self) -> u64 {
        self.ne[0]
    }

    /// Number of rows (product of `ne[1..]`).
    pub fn rows(&self) -> u64 {
        self.ne[1..].iter().product()
    }

    /// Bytes per row. Exact: `ne[0]` is a whole number of blocks (checked at open).
    pub fn row_bytes(&self) -> u64 {
        self.size / self.rows()
    }
}

/// A tensor's description plus its bytes, borrowed from the mapped file.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    info: &'a TensorInfo,
    data: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// `data` must be exactly `info.byte_size()` bytes.
    pub(crate) fn new(info: &'a TensorInfo, data: &'a [u8]) -> Self {
        debug_assert_eq!(data.len() as u64, info.size);
        TensorView { info, data }
    }

    pub fn info(&self) -> &'a TensorInfo {
        self.info
    }

    pub fn name(&self) -> &'a str {
        &self.info.name
    }

    pub fn ggml_type(&self) -> GgmlType {
        self.info.ty
    }

    pub fn dims(&self) -> &'a [u64] {
        self.info.dims()
    }

    pub fn n_elements(&self) -> u64 {
        self.info.n_elements()
    }

    pub fn byte_size(&self) -> usize {
        self.data.len()
    }

    /// All of the tensor's bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Elements per row (`ne[0]`).
    pub fn row_len(&self) -> usize {
        // Fits: the element count was checked against usize at open.
        self.info.ne[0] as usize
    }

    pub fn rows(&self) -> usize {
        // Fits: the element count was checked against usize at open.
        self.info.rows() as usize
    }

    pub fn row_bytes(&self) -> usize {
        // Fits: a row is part of the mapped data.
        self.info.row_bytes() as usize
    }

    /// Row `i`'s bytes (whole blocks), or `None` if `i` is out of range.
    pub fn row(&self, i: usize) -> Option<&'a [u8]> {
        let rb = self.row_bytes();
        let start = i.checked_mul(rb)?;
        self.data.get(start..start.checked_add(rb)?)
    }
}

//! GGUF files: the only module that parses or writes them.
//!
//! # What gguf-rs (0.1.8) is used for, and why the rest is ours
//!
//! gguf-rs is used only by the test suite, as an independent second reader of files our
//! writer produces (`tests/gguf_roundtrip.rs`). Neither its reader nor its writer is fit
//! for the runtime or the converter, checked against its source:
//!
//! - It reads through `std::io::Read`, never hands out tensor bytes, and its `mmap` feature
//!   copies the whole mapping into a `Vec`. We need zero-copy views into an mmap.
//! - It materialises every array element as a `serde_json::Value` (or silently truncates
//!   `tokenizer.*` arrays to a cap). The Gemma 3 vocabulary is 262144 strings plus as many
//!   scores and types; we keep arrays as byte ranges and decode them on access.
//! - It trusts the header: it allocates a string buffer from an unchecked length (up to
//!   1 GiB) before reading, and accepts duplicate keys (last wins), duplicate tensor names,
//!   zero dims, tensors outside the file, misaligned or overlapping, invalid UTF-8 (made
//!   lossy), rows that are not whole blocks (size silently truncated) and a
//!   non-power-of-two `general.alignment` (silently replaced by 32).
//! - It guesses the block size from the type id range (< 2: 1, < 10: 32, else 256), so it
//!   gets the byte size of BF16, I8..F64, IQ4_NL and MXFP4 tensors wrong, in its reader and
//!   its writer alike (the writer would lay out such tensors overlapping).
//! - Its writer only takes a path (no `File` back to fsync), pre-fills the whole data
//!   section with zeros one byte at a time and then seeks back (twice the I/O), and sorts
//!   the keys.
//!
//! So: [`GgufFile`] maps the file (after checking its length, mapping exactly that many
//! bytes) and runs a bounded, validating parse of the header over the mapped bytes before
//! anything can use it; every count and length is checked against the bytes that remain,
//! so no allocation or loop is sized by an unchecked header field. [`GgufWriter`] streams
//! v3 files one tensor at a time. Tensor types are `edgegemma_kernels::GgmlType`.
//! Versions 2 and 3, little-endian, are read; version 1 and big-endian files are refused.

mod error;
pub mod names;
mod reader;
mod tensor;
mod value;
mod writer;

pub use error::GgufError;
pub use reader::{mem_available, GgufFile, MAX_KEY_BYTES};
pub use tensor::{TensorInfo, TensorView, MAX_DIMS, MAX_TENSOR_NAME_BYTES};
pub use value::{ArrayIter, ArrayView, OwnedArray, OwnedValue, Value, ValueType};
pub use writer::{GgufDataWriter, GgufWriter, WRITE_VERSION};

pub use edgegemma_kernels::GgmlType;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Tensor data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The key that sets the tensor data alignment (u32, a power of two).
pub const KEY_ALIGNMENT: &str = "general.alignment";

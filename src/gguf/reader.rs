//! Opening a GGUF file: map it, then parse and validate the whole header over the mapped
//! bytes before anything else can look at it.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgegemma_kernels::GgmlType;
use memmap2::{Mmap, MmapOptions};

use super::error::GgufError;
use super::tensor::{TensorInfo, TensorView, MAX_DIMS, MAX_TENSOR_NAME_BYTES};
use super::value::{decode_fixed, ArrayView, Value, ValueType};
use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC, KEY_ALIGNMENT};

/// Longest metadata key the GGUF spec allows.
pub const MAX_KEY_BYTES: u64 = 65535;

/// Smallest possible encoding of one key/value pair: key length, a 1-byte key, value type,
/// a 1-byte value. Used to reject absurd counts before looping over them.
const MIN_KV_BYTES: u64 = 8 + 1 + 4 + 1;
/// Smallest possible tensor description: name length, 1-byte name, n_dims, one dim, type,
/// offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 8 + 4 + 8;

/// A validated GGUF file, memory-mapped. Metadata values and tensor data are borrowed
/// from the mapping; large arrays are decoded only when read. Clones share the mapping
/// (a model keeps its own handle without mapping the file a second time, which would double
/// the address space a model needs: 2 × 253 MB for Gemma 3 270M under `ulimit -v`).
#[derive(Clone)]
pub struct GgufFile {
    path: PathBuf,
    map: Arc<Mapping>,
    version: u32,
    alignment: u64,
    data_offset: u64,
    entries: Vec<MetaEntry>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    /// What users build once from the bytes and share between every handle on this mapping
    /// (see [`GgufFile::shared`]).
    shared: Arc<std::sync::Mutex<SharedMap>>,
}

type SharedMap = HashMap<&'static str, Arc<dyn std::any::Any + Send + Sync>>;

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("keys", &self.entries.len())
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

/// Where one metadata value lies in the mapping.
#[derive(Clone)]
struct MetaEntry {
    key: String,
    ty: ValueType,
    /// Element type and count for arrays (unused otherwise).
    elem: ValueType,
    len: usize,
    /// Payload range: the value bytes; a string's bytes (without the length); an array's
    /// elements (without element type and count).
    start: usize,
    end: usize,
}

/// The file's bytes: its read-only mapping.
type Mapping = Mmap;

/// Linux's `MemAvailable` in bytes (`None` elsewhere or when unreadable): what a loader checks
/// before it moves weights into anonymous memory, which the OS cannot drop under memory
/// pressure the way it drops clean file pages (a phone's low-memory killer counts them).
pub fn mem_available() -> Option<u64> {
    let m = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb = m
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb.saturating_mul(1024))
}

struct Parsed {
    version: u32,
    alignment: u64,
    data_offset: u64,
    entries: Vec<MetaEntry>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl GgufFile {
    /// Maps and validates `path`. Any inconsistency (truncation, counts or lengths larger
    /// than the file, unknown types, bad dims, tensors outside the file, misaligned or
    /// overlapping, duplicate keys or names) is an error naming the file and the problem.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| GgufError::io(path, "cannot open", e))?;
        let meta = file
            .metadata()
            .map_err(|e| GgufError::io(path, "cannot stat", e))?;
        if !meta.is_file() {
            return Err(GgufError::new(path, "not a regular file"));
        }
        let len = meta.len();
        if len == 0 {
            return Err(GgufError::new(
                path,
                "empty file (0 bytes), not a GGUF file",
            ));
        }
        let len = usize::try_from(len).map_err(|_| {
            GgufError::new(
                path,
                format!("file of {len} bytes is too large to map here"),
            )
        })?;
        // SAFETY: the mapping is read-only and exactly as long as the file is now, so every
        // byte of it is backed. Like every mmap-based model loader, we require that the
        // file is not truncated or rewritten while it is mapped (that would be SIGBUS or
        // changing weights, not something a parser can guard against).
        let map = unsafe { MmapOptions::new().len(len).map(&file) }
            .map_err(|e| GgufError::io(path, "cannot mmap", e))?;
        let parsed = parse(&map).map_err(|msg| GgufError::new(path, msg))?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            map: Arc::new(map),
            version: parsed.version,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
            entries: parsed.entries,
            key_index: parsed.key_index,
            tensors: parsed.tensors,
            tensor_index: parsed.tensor_index,
            shared: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Tensor data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    pub fn file_size(&self) -> u64 {
        self.map.len() as u64
    }

    /// An error about this file (for callers validating model-level facts).
    pub fn error(&self, message: impl Into<String>) -> GgufError {
        GgufError::new(&self.path, message)
    }

    // ---- metadata ----

    /// Number of metadata keys.
    pub fn metadata_len(&self) -> usize {
        self.entries.len()
    }

    /// All metadata in file order.
    pub fn metadata(&self) -> impl ExactSizeIterator<Item = (&str, Value<'_>)> + '_ {
        self.entries
            .iter()
            .map(move |e| (e.key.as_str(), self.value_of(e)))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.key_index.contains_key(key)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<Value<'_>> {
        self.key_index
            .get(key)
            .map(|&i| self.value_of(&self.entries[i]))
    }

    fn value_of(&self, e: &MetaEntry) -> Value<'_> {
        let bytes = &self.map[e.start..e.end];
        match e.ty {
            ValueType::Array => Value::Array(ArrayView::new(e.elem, e.len, bytes)),
            // Validated at open; only a file changed under the mapping can fail here.
            ValueType::String => Value::String(std::str::from_utf8(bytes).unwrap_or("\u{FFFD}")),
            fixed => decode_fixed(fixed, bytes),
        }
    }

    fn lookup<'s, T>(
        &'s self,
        key: &str,
        convert: impl FnOnce(Value<'s>) -> Result<T, String>,
    ) -> Result<Option<T>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => convert(v)
                .map(Some)
                .map_err(|m| self.error(format!("metadata key {}: {m}", quoted(key)))),
        }
    }

    fn required<T>(&self, key: &str, v: Result<Option<T>, GgufError>) -> Result<T, GgufError> {
        v?.ok_or_else(|| self.error(format!("metadata key {} is missing", quoted(key))))
    }

    /// The architecture (`general.architecture`).
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.get_str(super::names::KEY_ARCHITECTURE)
    }

    /// The array under `key`, elements decoded lazily.
    pub fn get_array_opt(&self, key: &str) -> Result<Option<ArrayView<'_>>, GgufError> {
        self.lookup(key, |v| match v {
            Value::Array(a) => Ok(a),
            other => Err(wrong_type(&other, "an array")),
        })
    }

    pub fn get_array(&self, key: &str) -> Result<ArrayView<'_>, GgufError> {
        self.required(key, self.get_array_opt(key))
    }

    pub fn get_str_opt(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.lookup(key, |v| match v {
            Value::String(s) => Ok(s),
            other => Err(wrong_type(&other, "str")),
        })
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        self.required(key, self.get_str_opt(key))
    }

    pub fn get_bool_opt(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.lookup(key, |v| match v {
            Value::Bool(b) => Ok(b),
            other => Err(wrong_type(&other, "bool")),
        })
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        self.required(key, self.get_bool_opt(key))
    }

    /// f32 (f64 values are rounded to f32).
    pub fn get_f32_opt(&self, key: &str) -> Result<Option<f32>, GgufError> {
        self.lookup(key, |v| match v {
            Value::F32(x) => Ok(x),
            Value::F64(x) => Ok(x as f32),
            other => Err(wrong_type(&other, "f32")),
        })
    }

    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        self.required(key, self.get_f32_opt(key))
    }

    pub fn get_f64_opt(&self, key: &str) -> Result<Option<f64>, GgufError> {
        self.lookup(key, |v| match v {
            Value::F32(x) => Ok(x.into()),
            Value::F64(x) => Ok(x),
            other => Err(wrong_type(&other, "f64")),
        })
    }

    pub fn get_f64(&self, key: &str) -> Result<f64, GgufError> {
        self.required(key, self.get_f64_opt(key))
    }

    /// Strings of the array under `key` (must be an array of str).
    pub fn get_str_array_opt(&self, key: &str) -> Result<Option<Vec<&str>>, GgufError> {
        self.lookup(key, |v| match v {
            Value::Array(a) => a
                .strings()
                .map(|it| it.collect())
                .ok_or_else(|| wrong_type(&v, "array of str")),
            other => Err(wrong_type(&other, "array of str")),
        })
    }

    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        self.required(key, self.get_str_array_opt(key))
    }

    /// Elements of the array under `key` (must be an array of f32).
    pub fn get_f32_array_opt(&self, key: &str) -> Result<Option<Vec<f32>>, GgufError> {
        self.lookup(key, |v| match v {
            Value::Array(a) => a.to_f32_vec().ok_or_else(|| wrong_type(&v, "array of f32")),
            other => Err(wrong_type(&other, "array of f32")),
        })
    }

    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>, GgufError> {
        self.required(key, self.get_f32_array_opt(key))
    }

    /// Elements of the array under `key` (must be an array of bool).
    pub fn get_bool_array_opt(&self, key: &str) -> Result<Option<Vec<bool>>, GgufError> {
        self.lookup(key, |v| match v {
            Value::Array(a) => a
                .to_bool_vec()
                .ok_or_else(|| wrong_type(&v, "array of bool")),
            other => Err(wrong_type(&other, "array of bool")),
        })
    }

    pub fn get_bool_array(&self, key: &str) -> Result<Vec<bool>, GgufError> {
        self.required(key, self.get_bool_array_opt(key))
    }

    // ---- tensors ----

    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// Tensor descriptions in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The whole mapped file; tensor `t` occupies `t.file_offset()..t.file_offset() + t.byte_size()`.
    /// Lets a model keep offsets instead of borrowing views of itself.
    pub fn mapped_bytes(&self) -> &[u8] {
        &self.map
    }

    /// The value every handle on this mapping (this file and its clones) shares under `key`,
    /// made by `make` on first use: data derived from the bytes once, however many models are
    /// built from the file (the server's slots share their packed weights this way). A value of
    /// another type already under `key` is a programming error.
    pub fn shared<T: std::any::Any + Send + Sync>(
        &self,
        key: &'static str,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let mut m = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let v = m.entry(key).or_insert_with(|| Arc::new(make())).clone();
        v.downcast::<T>()
            .unwrap_or_else(|_| panic!("GgufFile::shared: {key:?} holds another type"))
    }

    /// Tells the OS this process no longer needs the pages under `bytes` (a slice of this
    /// file's tensor data, e.g. part of a [`TensorView::data`]), so one pass over a large file
    /// (the converter's requantize) does not keep it all resident. The bytes stay readable:
    /// touching them again re-reads the file. A no-op off Linux or for a slice outside the
    /// mapping.
    pub fn release_pages(&self, bytes: &[u8]) {
        let map = &*self.map;
        let start = (bytes.as_ptr() as usize).wrapping_sub(map.as_ptr() as usize);
        if bytes.is_empty() || start >= map.len() || map.len() - start < bytes.len() {
            return;
        }
        #[cfg(target_os = "linux")]
        // SAFETY: a read-only file mapping; MADV_DONTNEED drops this process's copies of the
        // pages, and any later access reads the same bytes from the file again.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, bytes.len())
        };
    }

    /// All tensors in file order.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = TensorView<'_>> + '_ {
        self.tensors.iter().map(move |t| self.view(t))
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        self.tensor_index
            .get(name)
            .map(|&i| self.view(&self.tensors[i]))
    }

    /// The tensor called `name`; missing is an error naming the file and the tensor.
    pub fn require_tensor(&self, name: &str) -> Result<TensorView<'_>, GgufError> {
        self.tensor(name)
            .ok_or_else(|| self.error(format!("missing tensor {}", quoted(name))))
    }

    fn view<'s>(&'s self, t: &'s TensorInfo) -> TensorView<'s> {
        // In bounds: checked against the file length at open.
        let start = t.file_offset as usize;
        TensorView::new(t, &self.map[start..start + t.size as usize])
    }
}

macro_rules! int_getters {
    ($($t:ty: $opt:ident, $req:ident, $arr_opt:ident, $arr:ident;)*) => {
        impl GgufFile {
            $(
                #[doc = concat!("Integer of any stored width whose value fits in ", stringify!($t), ".")]
                pub fn $opt(&self, key: &str) -> Result<Option<$t>, GgufError> {
                    self.lookup(key, |v| int_value::<$t>(&v, stringify!($t)))
                }

                #[doc = concat!("Integer of any stored width whose value fits in ", stringify!($t), ".")]
                pub fn $req(&self, key: &str) -> Result<$t, GgufError> {
                    self.required(key, self.$opt(key))
                }

                #[doc = concat!("Integer array whose elements all fit in ", stringify!($t), ".")]
                pub fn $arr_opt(&self, key: &str) -> Result<Option<Vec<$t>>, GgufError> {
                    self.lookup(key, |v| match v {
                        Value::Array(a) if a.elem_type().fixed_size().is_some()
                            && !matches!(a.elem_type(), ValueType::F32 | ValueType::F64 | ValueType::Bool) =>
                        {
                            a.iter()
                                .enumerate()
                                .map(|(i, e)| {
                                    int_value::<$t>(&e, stringify!($t))
                                        .map_err(|m| format!("element {i}: {m}"))
                                })
                                .collect()
                        }
                        other => Err(wrong_type(&other, concat!("array of integers (", stringify!($t), ")"))),
                    })
                }

                #[doc = concat!("Integer array whose elements all fit in ", stringify!($t), ".")]
                pub fn $arr(&self, key: &str) -> Result<Vec<$t>, GgufError> {
                    self.required(key, self.$arr_opt(key))
                }
            )*
        }
    };
}

int_getters! {
    u32: get_u32_opt, get_u32, get_u32_array_opt, get_u32_array;
    i32: get_i32_opt, get_i32, get_i32_array_opt, get_i32_array;
    u64: get_u64_opt, get_u64, get_u64_array_opt, get_u64_array;
    i64: get_i64_opt, get_i64, get_i64_array_opt, get_i64_array;
}

fn int_value<T: TryFrom<i128>>(v: &Value<'_>, want: &str) -> Result<T, String> {
    let x = v
        .as_i128()
        .ok_or_else(|| wrong_type(v, &format!("an integer ({want})")))?;
    T::try_from(x).map_err(|_| format!("value {x} ({}) does not fit in {want}", v.value_type()))
}

fn wrong_type(v: &Value<'_>, expected: &str) -> String {
    format!("has type {}, expected {expected}", v.type_description())
}

/// A name or key for a one-line message: escaped (no raw newlines) and shortened.
pub(crate) fn quoted(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        format!("{s:?}")
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}... ({} bytes)", &s[..end], s.len())
    }
}

/// Bounds-checked little-endian reader over the mapped bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8], String> {
        if n > self.remaining() as u64 {
            return Err(format!(
                "truncated or corrupt: {} needs {n} bytes at offset {}, but only {} remain",
                what(),
                self.pos,
                self.remaining()
            ));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64, String> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    /// A length-prefixed UTF-8 string; returns it and its byte offset.
    fn string(&mut self, what: impl Fn() -> String) -> Result<(&'a str, usize), String> {
        let len = self.u64(|| format!("the length of {}", what()))?;
        let at = self.pos;
        let bytes = self.take(len, || format!("{} ({len} bytes)", what()))?;
        let s = std::str::from_utf8(bytes)
            .map_err(|_| format!("{} at offset {at} is not valid UTF-8", what()))?;
        Ok((s, at))
    }

    /// Skips over a length-prefixed string after checking it is UTF-8 (for arrays, where
    /// the strings are only decoded later).
    fn skip_string(&mut self, what: impl Fn() -> String) -> Result<(), String> {
        let len = self.u64(|| format!("the length of {}", what()))?;
        let at = self.pos;
        let bytes = self.take(len, || format!("{} ({len} bytes)", what()))?;
        // Most strings (tokens) are short ASCII: the inlined ASCII check is much cheaper
        // than a from_utf8 call per string.
        if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
            Ok(())
        } else {
            Err(format!("{} at offset {at} is not valid UTF-8", what()))
        }
    }
}

fn parse(buf: &[u8]) -> Result<Parsed, String> {
    let mut cur = Cursor { buf, pos: 0 };
    let magic = cur.take(4, || "the magic".into())?;
    if magic != GGUF_MAGIC {
        return Err(format!(
            "not a GGUF file: magic is {:?}, expected \"GGUF\"",
            String::from_utf8_lossy(magic)
        ));
    }
    let version = cur.u32(|| "the version".into())?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(
                "GGUF version 1 is not supported (only versions 2 and 3; re-convert the model)"
                    .into(),
            )
        }
        v if matches!(v.swap_bytes(), 1..=3) => {
            return Err(format!(
                "big-endian GGUF (version {}) is not supported",
                v.swap_bytes()
            ))
        }
        v => {
            return Err(format!(
                "unsupported GGUF version {v} (only versions 2 and 3)"
            ))
        }
    }
    let n_tensors = cur.u64(|| "the tensor count".into())?;
    let n_kv = cur.u64(|| "the metadata key count".into())?;
    let min_bytes = u128::from(n_kv) * u128::from(MIN_KV_BYTES)
        + u128::from(n_tensors) * u128::from(MIN_TENSOR_INFO_BYTES);
    if min_bytes > cur.remaining() as u128 {
        return Err(format!(
            "header claims {n_tensors} tensors and {n_kv} metadata keys, more than the {} bytes after the header can hold",
            cur.remaining()
        ));
    }
    // Counts are now bounded by the file size; capacities are capped further so a large
    // count never turns into a large allocation before the entries are actually read.
    let cap = |n: u64| n.min(4096) as usize;

    let mut entries: Vec<MetaEntry> = Vec::with_capacity(cap(n_kv));
    let mut key_index: HashMap<String, usize> = HashMap::with_capacity(cap(n_kv));
    for i in 0..n_kv {
        let key_at = cur.pos;
        let (key, _) = cur.string(|| format!("metadata key #{i}"))?;
        if key.is_empty() {
            return Err(format!("metadata key #{i} at offset {key_at} is empty"));
        }
        if key.len() as u64 > MAX_KEY_BYTES {
            return Err(format!(
                "metadata key #{i} at offset {key_at} is {} bytes long (max {MAX_KEY_BYTES})",
                key.len()
            ));
        }
        let qkey = || quoted(key);
        if key_index.contains_key(key) {
            return Err(format!("duplicate metadata key {}", qkey()));
        }
        let ty_at = cur.pos;
        let ty_id = cur.u32(|| format!("the value type of key {}", qkey()))?;
        let ty = ValueType::from_id(ty_id).ok_or_else(|| {
            format!(
                "metadata key {} has unknown value type {ty_id} (at offset {ty_at})",
                qkey()
            )
        })?;
        let entry = match ty {
            ValueType::String => {
                let (s, at) = cur.string(|| format!("the value of key {}", qkey()))?;
                MetaEntry {
                    key: key.to_string(),
                    ty,
                    elem: ty,
                    len: 0,
                    start: at,
                    end: at + s.len(),
                }
            }
            ValueType::Array => parse_array(&mut cur, key)?,
            fixed => {
                let size = fixed.fixed_size().unwrap_or(1) as u64;
                let at = cur.pos;
                let b = cur.take(size, || format!("the value of key {}", qkey()))?;
                if fixed == ValueType::Bool && b[0] > 1 {
                    return Err(format!(
                        "metadata key {} is a bool with invalid byte {} (at offset {at})",
                        qkey(),
                        b[0]
                    ));
                }
                MetaEntry {
                    key: key.to_string(),
                    ty,
                    elem: ty,
                    len: 0,
                    start: at,
                    end: cur.pos,
                }
            }
        };
        key_index.insert(entry.key.clone(), entries.len());
        entries.push(entry);
    }

    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(cap(n_tensors));
    let mut tensor_index: HashMap<String, usize> = HashMap::with_capacity(cap(n_tensors));
    let mut relative_offsets: Vec<u64> = Vec::with_capacity(cap(n_tensors));
    for i in 0..n_tensors {
        let (info, rel) = parse_tensor_info(&mut cur, i)?;
        if tensor_index.contains_key(&info.name) {
            return Err(format!("duplicate tensor name {}", quoted(&info.name)));
        }
        tensor_index.insert(info.name.clone(), tensors.len());
        tensors.push(info);
        relative_offsets.push(rel);
    }

    let alignment = match key_index.get(KEY_ALIGNMENT) {
        None => DEFAULT_ALIGNMENT,
        Some(&i) => {
            let e = &entries[i];
            if e.ty != ValueType::U32 {
                return Err(format!(
                    "metadata key \"{KEY_ALIGNMENT}\" has type {}, expected u32",
                    if e.ty == ValueType::Array {
                        "array"
                    } else {
                        e.ty.name()
                    }
                ));
            }
            let b = &buf[e.start..e.end];
            let a = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if a == 0 || !a.is_power_of_two() {
                return Err(format!(
                    "\"{KEY_ALIGNMENT}\" is {a}; it must be a power of two"
                ));
            }
            u64::from(a)
        }
    };

    let header_end = cur.pos as u64;
    let data_offset = header_end.div_ceil(alignment) * alignment;
    let file_len = buf.len() as u64;
    for (t, rel) in tensors.iter_mut().zip(&relative_offsets) {
        if rel % alignment != 0 {
            return Err(format!(
                "tensor {} has data offset {rel}, not a multiple of the alignment {alignment}",
                quoted(&t.name)
            ));
        }
        let start = data_offset.checked_add(*rel);
        let end = start.and_then(|s| s.checked_add(t.size));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => t.file_offset = start,
            _ => {
                return Err(format!(
                    "tensor {} data ({} bytes at offset {} + {rel}) extends past the end of the file ({file_len} bytes)",
                    quoted(&t.name),
                    t.size,
                    data_offset
                ))
            }
        }
    }
    check_overlaps(&tensors)?;

    Ok(Parsed {
        version,
        alignment,
        data_offset,
        entries,
        key_index,
        tensors,
        tensor_index,
    })
}

fn parse_array(cur: &mut Cursor<'_>, key: &str) -> Result<MetaEntry, String> {
    let qkey = || quoted(key);
    let elem_at = cur.pos;
    let elem_id = cur.u32(|| format!("the element type of array {}", qkey()))?;
    let elem = ValueType::from_id(elem_id).ok_or_else(|| {
        format!(
            "metadata key {} is an array of unknown value type {elem_id} (at offset {elem_at})",
            qkey()
        )
    })?;
    if elem == ValueType::Array {
        return Err(format!(
            "metadata key {} is an array of arrays, which is not supported",
            qkey()
        ));
    }
    let count_at = cur.pos;
    let count = cur.u64(|| format!("the length of array {}", qkey()))?;
    // Every element takes at least its fixed size, or 8 bytes of length for a string.
    let min_elem = elem.fixed_size().unwrap_or(8) as u64;
    let too_long = || {
        format!(
            "metadata key {}: array of {count} {elem} at offset {count_at} needs more than the {} bytes left in the file",
            qkey(),
            cur.remaining()
        )
    };
    let min_total = count.checked_mul(min_elem).ok_or_else(too_long)?;
    if min_total > cur.remaining() as u64 {
        return Err(too_long());
    }
    let start = cur.pos;
    match elem.fixed_size() {
        Some(_) => {
            let b = cur.take(min_total, || format!("array {}", qkey()))?;
            if elem == ValueType::Bool {
                if let Some(i) = b.iter().position(|&x| x > 1) {
                    return Err(format!(
                        "metadata key {}: bool element {i} has invalid byte {}",
                        qkey(),
                        b[i]
                    ));
                }
            }
        }
        None => {
            for i in 0..count {
                cur.skip_string(|| format!("string #{i} of array {}", qkey()))?;
            }
        }
    }
    Ok(MetaEntry {
        key: key.to_string(),
        ty: ValueType::Array,
        elem,
        // Bounded by the file size above.
        len: count as usize,
        start,
        end: cur.pos,
    })
}

/// One tensor description; returns it (with `file_offset` still 0) and its offset
/// relative to the data section.
fn parse_tensor_info(cur: &mut Cursor<'_>, i: u64) -> Result<(TensorInfo, u64), String> {
    let name_at = cur.pos;
    let (name, _) = cur.string(|| format!("the name of tensor #{i}"))?;
    if name.is_empty() {
        return Err(format!("tensor #{i} at offset {name_at} has an empty name"));
    }
    if name.len() > MAX_TENSOR_NAME_BYTES {
        return Err(format!(
            "tensor #{i} name {} is longer than {MAX_TENSOR_NAME_BYTES} bytes",
            quoted(name)
        ));
    }
    let qname = || quoted(name);
    let n_dims = cur.u32(|| format!("the dimension count of tensor {}", qname()))?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(format!(
            "tensor {} has {n_dims} dimensions (must be 1 to {MAX_DIMS})",
            qname()
        ));
    }
    let mut ne = [1u64; MAX_DIMS];
    for (d, slot) in ne.iter_mut().take(n_dims as usize).enumerate() {
        let v = cur.u64(|| format!("dimension {d} of tensor {}", qname()))?;
        if v == 0 || v > i64::MAX as u64 {
            return Err(format!(
                "tensor {} has invalid dimension {d} = {v}",
                qname()
            ));
        }
        *slot = v;
    }
    let dims = &ne[..n_dims as usize];
    let n_elements = ne
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| {
            format!(
                "tensor {} dimensions {dims:?} overflow the element count",
                qname()
            )
        })?;
    if usize::try_from(n_elements).is_err() {
        return Err(format!(
            "tensor {} has {n_elements} elements, too many for this platform",
            qname()
        ));
    }
    let ty_at = cur.pos;
    let ty_id = cur.u32(|| format!("the type of tensor {}", qname()))?;
    let ty = GgmlType::from_id(ty_id).ok_or_else(|| {
        format!(
            "tensor {} has unknown ggml type id {ty_id} (at offset {ty_at})",
            qname()
        )
    })?;
    let row_bytes = ty.row_bytes(ne[0]).ok_or_else(|| {
        format!(
            "tensor {} row length {} is not a multiple of the {ty} block size {}",
            qname(),
            ne[0],
            ty.block_size()
        )
    })?;
    let size = (n_elements / ne[0])
        .checked_mul(row_bytes)
        .ok_or_else(|| format!("tensor {} byte size overflows", qname()))?;
    let rel = cur.u64(|| format!("the data offset of tensor {}", qname()))?;
    Ok((
        TensorInfo {
            name: name.to_string(),
            ty,
            n_dims: n_dims as usize,
            ne,
            file_offset: 0,
            size,
        },
        rel,
    ))
}

fn check_overlaps(tensors: &[TensorInfo]) -> Result<(), String> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| tensors[i].file_offset);
    for pair in order.windows(2) {
        let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
        // No overflow: both end inside the file.
        if a.file_offset + a.size > b.file_offset {
            return Err(format!(
                "tensors {} and {} overlap (bytes {}..{} and {}..{})",
                quoted(&a.name),
                quoted(&b.name),
                a.file_offset,
                a.file_offset + a.size,
                b.file_offset,
                b.file_offset + b.size
            ));
        }
    }
    Ok(())
}

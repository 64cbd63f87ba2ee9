//! Weight lookup shared by the architectures. Matrices are moved at load into the model's
//! [`PackArena`] (anonymous memory in 2 MiB pages), their rows interleaved where the kernel path
//! has a layout for it; when the machine lacks the room ([`Loader::new`]) or
//! `EDGEGEMMA_PACK=0`, they stay in the mmap, kept as offsets into it. Small vectors (norms,
//! biases) are dequantized into owned f32 once at load.

use super::{ModelError, Result};
use crate::gguf::names::Arch;
use crate::gguf::GgufFile;
use crate::kernels::{GgmlType, WeightMatrix};
use rayon::prelude::*;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Set to `0` to keep every matrix mapped in place in the file's row layout (A/B measurements,
/// debugging).
pub const PACK_ENV: &str = "EDGEGEMMA_PACK";

/// The kernels crate's interleaved-row layout, as the loader uses it.
mod x16 {
    use crate::kernels::formats::FormatError;
    use crate::kernels::{GgmlType, WeightMatrix};

    /// Rows per interleaved group.
    pub const ROWS: usize = crate::kernels::INTERLEAVE_ROWS;

    /// Whether the process's kernel path has interleaved kernels for `ty`.
    pub fn interleaves(ty: GgmlType) -> bool {
        crate::kernels::kernels().interleaves(ty)
    }

    /// Rewrites whole groups of ggml rows (`src`) into the interleaved layout (`dst`).
    pub fn interleave(
        ty: GgmlType,
        cols: usize,
        src: &[u8],
        dst: &mut [u8],
    ) -> Result<(), FormatError> {
        crate::kernels::interleave(ty, cols, src, dst)
    }

    /// An interleaved matrix as a kernel operand.
    pub fn matrix(
        ty: GgmlType,
        data: &[u8],
        rows: usize,
        cols: usize,
    ) -> Result<WeightMatrix<'_>, FormatError> {
        WeightMatrix::new_interleaved(ty, data, rows, cols)
    }
}

/// Where a matrix's bytes are.
#[derive(Clone, Debug)]
pub enum MatData {
    /// `range` of the mapped file, in ggml row layout.
    Mapped(Range<usize>),
    /// `range` of a [`PackArena`], in ggml row layout.
    Copied {
        arena: Arc<PackArena>,
        range: Range<usize>,
    },
    /// `range` of a [`PackArena`], rows interleaved in groups of 16 (the kernels crate's
    /// layout for the path in use; same bytes as the ggml rows, reordered).
    Interleaved {
        arena: Arc<PackArena>,
        range: Range<usize>,
    },
}

/// A weight matrix of the model: `rows` rows of `cols` elements in format `ty`.
#[derive(Clone, Debug)]
pub struct MatRef {
    pub ty: GgmlType,
    pub data: MatData,
    pub rows: usize,
    pub cols: usize,
}

impl MatRef {
    /// A matrix at `range` of the mapped file, in ggml row layout.
    pub fn mapped(ty: GgmlType, range: Range<usize>, rows: usize, cols: usize) -> MatRef {
        MatRef {
            ty,
            data: MatData::Mapped(range),
            rows,
            cols,
        }
    }

    /// The matrix's range in the mapped file, if it is read from there.
    pub fn mapped_range(&self) -> Option<&Range<usize>> {
        match &self.data {
            MatData::Mapped(r) => Some(r),
            MatData::Copied { .. } | MatData::Interleaved { .. } => None,
        }
    }

    /// Whether the rows were rewritten into the interleaved layout at load.
    pub fn is_interleaved(&self) -> bool {
        matches!(self.data, MatData::Interleaved { .. })
    }

    /// The matrix as a kernel operand (`map`: the file's mapped bytes).
    #[inline]
    pub fn view<'a>(&'a self, map: &'a [u8]) -> WeightMatrix<'a> {
        match &self.data {
            MatData::Mapped(r) => WeightMatrix::new(self.ty, &map[r.clone()], self.rows, self.cols),
            MatData::Copied { arena, range } => {
                WeightMatrix::new(self.ty, arena.bytes(range.clone()), self.rows, self.cols)
            }
            MatData::Interleaved { arena, range } => {
                x16::matrix(self.ty, arena.bytes(range.clone()), self.rows, self.cols)
            }
        }
        .expect("shape and type validated when the model was loaded")
    }
}

/// Anonymous memory holding a model's matrices, filled once at load.
///
/// One reservation as large as the file (every packed matrix is a distinct tensor of it, so
/// their sum fits), aligned to 2 MiB and advised for transparent huge pages: untouched pages
/// cost no memory, and the matrices, which decode streams once per token, sit in 2 MiB pages. Measured on this machine kind (1 thread): reads over 2 MiB pages run ~30% faster
/// than over the file's 4 KiB page-cache pages, and first-touching 256 MiB of anonymous memory
/// took 60-155 ms in 2 MiB pages against 220-310 ms in 4 KiB pages.
pub struct PackArena {
    _map: memmap2::MmapMut,
    base: *mut u8,
    cap: usize,
    used: AtomicUsize,
}

// SAFETY: `base..base + cap` is owned by `_map`, which lives as long as the arena; regions are
// handed out once each (`alloc` bumps `used` atomically), written only through the `&mut`
// returned by `alloc` before the region's `MatRef` exists, and only read afterwards.
unsafe impl Send for PackArena {}
unsafe impl Sync for PackArena {}

impl std::fmt::Debug for PackArena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackArena")
            .field("cap", &self.cap)
            .field("used", &self.used.load(Ordering::Relaxed))
            .finish()
    }
}

const HUGE_PAGE: usize = 2 << 20;

impl PackArena {
    fn new(cap: usize) -> std::io::Result<PackArena> {
        let mut map = memmap2::MmapOptions::new()
            .len(cap + HUGE_PAGE)
            .map_anon()?;
        let start = (map.as_ptr() as usize).next_multiple_of(HUGE_PAGE) - map.as_ptr() as usize;
        #[cfg(target_os = "linux")]
        {
            // Advice only: without transparent huge pages the arena is in 4 KiB pages.
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        // SAFETY: `start + cap <= cap + HUGE_PAGE`, the mapping's length.
        let base = unsafe { map.as_mut_ptr().add(start) };
        Ok(PackArena {
            _map: map,
            base,
            cap,
            used: AtomicUsize::new(0),
        })
    }

    /// A new region of `len` bytes (64-byte aligned), or `None` when the arena is full.
    #[allow(clippy::mut_from_ref)]
    fn alloc(&self, len: usize) -> Option<(Range<usize>, &mut [u8])> {
        let mut at = self.used.load(Ordering::Relaxed);
        loop {
            let start = at.next_multiple_of(64);
            let end = start.checked_add(len).filter(|&e| e <= self.cap)?;
            match self
                .used
                .compare_exchange(at, end, Ordering::AcqRel, Ordering::Relaxed)
            {
                // SAFETY: `start..end` lies inside the arena and no other region overlaps it
                // (the bump above claimed it for this call alone).
                Ok(_) => {
                    return Some((start..end, unsafe {
                        std::slice::from_raw_parts_mut(self.base.add(start), len)
                    }))
                }
                Err(now) => at = now,
            }
        }
    }

    /// The bytes of a region `alloc` handed out.
    fn bytes(&self, r: Range<usize>) -> &[u8] {
        assert!(r.start <= r.end && r.end <= self.used.load(Ordering::Acquire));
        // SAFETY: inside the claimed part of the arena, written before its MatRef existed.
        unsafe { std::slice::from_raw_parts(self.base.add(r.start), r.len()) }
    }
}

/// Reads a model's matrices from its file into a [`PackArena`], interleaving the rows of those
/// the kernel path has a layout for (see [`MatData`]). Models built from one file (its clones
/// included: the server's slots) share one arena and each packed matrix once.
pub struct Loader<'f> {
    file: &'f GgufFile,
    pack: bool,
    set: Arc<PackedSet>,
    /// File ranges of the matrices packed so far (dropped once more when the loader is done).
    packed: std::cell::RefCell<Vec<Range<usize>>>,
}

/// The packed matrices of one mapped file, by their offset in it.
#[derive(Default)]
struct PackedSet {
    arena: OnceLock<Option<Arc<PackArena>>>,
    mats: Mutex<HashMap<usize, MatData>>,
}

/// The key of the [`PackedSet`] in [`GgufFile::shared`].
const PACKED_SET: &str = "edgegemma.model.weights.packed";

/// Matrices below this size stay mapped unless they are interleaved: a few KiB gain nothing
/// from 2 MiB pages.
const MIN_PACK_BYTES: usize = 64 << 10;

impl<'f> Loader<'f> {
    /// Matrices are packed unless `EDGEGEMMA_PACK=0` or `MemAvailable` is under twice the
    /// file's size (anonymous pages cannot be dropped under memory pressure as clean file pages
    /// can, and a phone's low-memory killer counts them).
    pub fn new(file: &'f GgufFile) -> Loader<'f> {
        let pack = std::env::var(PACK_ENV).map_or(true, |v| v.trim() != "0")
            && crate::gguf::mem_available().is_some_and(|a| a / 2 >= file.file_size());
        Loader {
            file,
            pack,
            set: file.shared(PACKED_SET, PackedSet::default),
            packed: Default::default(),
        }
    }

    /// The 2-D tensor `name` with GGUF dims `[cols, rows]`.
    pub fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<MatRef> {
        self.matrix_opt(name, cols, rows)?
            .ok_or_else(|| err(self.file, format!("missing tensor {name:?}")))
    }

    /// The 2-D tensor `name` with GGUF dims `[cols, rows]`; `None` when absent.
    pub fn matrix_opt(&self, name: &str, cols: usize, rows: usize) -> Result<Option<MatRef>> {
        let Some(m) = matrix_opt(self.file, name, cols, rows)? else {
            return Ok(None);
        };
        let bytes = m.mapped_range().map_or(0, |r| r.len());
        let interleave = rows.is_multiple_of(x16::ROWS) && x16::interleaves(m.ty);
        if !self.pack || (bytes < MIN_PACK_BYTES && !interleave) {
            return Ok(Some(m));
        }
        let start = m.mapped_range().map_or(0, |r| r.start);
        // Held while packing: a second model of the same file waits and then shares it.
        let mut mats = self.set.mats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(data) = mats.get(&start) {
            return Ok(Some(MatRef {
                data: data.clone(),
                ..m
            }));
        }
        let m = self.pack(name, m, interleave)?;
        mats.insert(start, m.data.clone());
        Ok(Some(m))
    }

    fn arena(&self) -> Option<&Arc<PackArena>> {
        self.set
            .arena
            .get_or_init(|| {
                let cap =
                    (self.file.file_size() as usize).saturating_add(64 * self.file.tensors().len());
                PackArena::new(cap).ok().map(Arc::new)
            })
            .as_ref()
    }

    /// Copies `m` (mapped) into the arena, rows interleaved if `interleave`, over the pool, a
    /// wave of 2 MiB pieces (one per thread) at a time, dropping the file mapping behind each
    /// wave so that peak RSS stays about the file's size. The drop starts at the 2 MiB
    /// boundary below the previous wave's end: the page cache may hold the file in large
    /// folios, and reading the first byte of a wave maps the whole folio it falls in, including
    /// the end of the wave before (measured: dropping each piece as soon as it was read left 92
    /// of 240 MiB mapped).
    fn pack(&self, name: &str, m: MatRef, interleave: bool) -> Result<MatRef> {
        let Some(arena) = self.arena() else {
            return Ok(m);
        };
        let MatData::Mapped(src_range) = &m.data else {
            return Ok(m);
        };
        let map = self.file.mapped_bytes();
        let src = &map[src_range.clone()];
        let Some((range, dst)) = arena.alloc(src.len()) else {
            return Ok(m);
        };
        let group = (x16::ROWS * (src.len() / m.rows.max(1))).max(1);
        let piece = (HUGE_PAGE / group).max(1) * group;
        let wave = piece * rayon::current_num_threads().max(1);
        let mut dropped_to = src_range.start;
        for (dw, sw) in dst.chunks_mut(wave).zip(src.chunks(wave)) {
            dw.par_chunks_mut(piece)
                .zip(sw.par_chunks(piece))
                .try_for_each(|(d, s)| {
                    if interleave {
                        x16::interleave(m.ty, m.cols, s, d)
                    } else {
                        d.copy_from_slice(s);
                        Ok(())
                    }
                })
                .map_err(|e| err(self.file, format!("tensor {name:?}: {e}")))?;
            let end = sw.as_ptr() as usize - map.as_ptr() as usize + sw.len();
            let from = dropped_to / HUGE_PAGE * HUGE_PAGE;
            self.file.release_pages(&map[from..end]);
            dropped_to = end;
        }
        // Whatever a later wave's first read mapped again of the ones before it.
        self.file.release_pages(src);
        self.packed.borrow_mut().push(src_range.clone());
        let arena = Arc::clone(arena);
        Ok(MatRef {
            ty: m.ty,
            data: if interleave {
                MatData::Interleaved { arena, range }
            } else {
                MatData::Copied { arena, range }
            },
            rows: m.rows,
            cols: m.cols,
        })
    }
}

impl Drop for Loader<'_> {
    /// Reading a small tensor next to a packed matrix (a norm, a bias) maps the pages around it
    /// again (fault-around, large folios): measured 13 MiB of the real model's matrices mapped
    /// again by the end of its load without this last drop.
    fn drop(&mut self) {
        let map = self.file.mapped_bytes();
        for r in self.packed.get_mut().drain(..) {
            self.file.release_pages(&map[r]);
        }
    }
}

fn err(file: &GgufFile, msg: String) -> ModelError {
    ModelError(format!("{}: {msg}", file.path().display()))
}

/// The 2-D tensor `name` with GGUF dims `[cols, rows]`, in the file's row layout; `None` when
/// absent.
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
    Ok(Some(MatRef::mapped(
        ty,
        start..start + view.data().len(),
        rows,
        cols,
    )))
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
    Ok(MatRef::mapped(
        ty,
        start..start + view.data().len(),
        rows,
        cols,
    ))
}

/// The 2-D tensor `name` with GGUF dims `[cols, rows]`, in the file's row layout.
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

//! Products of a quantized weight matrix with activation rows: the runtime's hot path.
//!
//! Activations are quantized once per call to the weight type's vec-dot format (as ggml does),
//! into a buffer that is reused across calls, so a decode step allocates nothing. The weight
//! rows are split over the rayon pool; every worker streams its rows once and computes every
//! activation row against them (prefill reads the weights once, not once per token).

use crate::dispatch::{kernels, DotRowsFn, Kernels};
use crate::formats::interleaved::{self, INTERLEAVE_ROWS};
use crate::formats::{self, vec_dot_type, FormatError};
use crate::types::GgmlType;
use rayon::prelude::*;

/// A row-major matrix of `rows` rows of `cols` elements each, stored in ggml format `ty`
/// (GGUF `ne = [cols, rows]`). Borrowed, usually straight from the mmap; or, built with
/// [`new_interleaved`](Self::new_interleaved), a copy repacked at load time in the
/// interleaved 16-row layout of `formats::interleaved` (same size).
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    ty: GgmlType,
    data: &'a [u8],
    rows: usize,
    cols: usize,
    row_bytes: usize,
    interleaved: bool,
}

impl<'a> WeightMatrix<'a> {
    pub fn new(
        ty: GgmlType,
        data: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, FormatError> {
        let row_bytes = ty
            .row_bytes(cols as u64)
            .ok_or(FormatError::PartialBlock { ty, n: cols })? as usize;
        let expected = row_bytes
            .checked_mul(rows)
            .ok_or(FormatError::SizeMismatch {
                ty,
                buffer: "weight matrix",
                expected: usize::MAX,
                got: data.len(),
            })?;
        if data.len() != expected {
            return Err(FormatError::SizeMismatch {
                ty,
                buffer: "weight matrix",
                expected,
                got: data.len(),
            });
        }
        if vec_dot_type(ty).is_none() {
            return Err(FormatError::Unsupported { ty, op: "matmul" });
        }
        Ok(WeightMatrix {
            ty,
            data,
            rows,
            cols,
            row_bytes,
            interleaved: false,
        })
    }

    /// A matrix in the interleaved 16-row layout (`data` as [`interleave`] writes it):
    /// `rows` a multiple of [`INTERLEAVE_ROWS`], `ty` one of Q4_0, Q5_0, Q8_0. `matmul` runs
    /// it on the table's x16 kernel (`Kernels::x16`).
    pub fn new_interleaved(
        ty: GgmlType,
        data: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, FormatError> {
        if !interleaved::can_interleave(ty) {
            return Err(FormatError::Unsupported {
                ty,
                op: "interleaved matmul",
            });
        }
        if !rows.is_multiple_of(INTERLEAVE_ROWS) {
            return Err(FormatError::SizeMismatch {
                ty,
                buffer: "interleaved weight matrix rows (a multiple of 16)",
                expected: rows.div_ceil(INTERLEAVE_ROWS) * INTERLEAVE_ROWS,
                got: rows,
            });
        }
        Ok(WeightMatrix {
            interleaved: true,
            ..Self::new(ty, data, rows, cols)?
        })
    }

    /// Whether the matrix is in the interleaved 16-row layout.
    pub fn is_interleaved(&self) -> bool {
        self.interleaved
    }

    /// Rows that a split of the matrix between tasks keeps together.
    fn row_tile(&self) -> usize {
        if self.interleaved {
            INTERLEAVE_ROWS
        } else {
            4
        }
    }

    /// The kernel of table `k` for this matrix: `decode` or prefill for ggml rows, the x16
    /// kernel (both) for a packed matrix.
    fn kernel(&self, k: &Kernels, decode: bool) -> DotRowsFn {
        if self.interleaved {
            k.x16(self.ty)
        } else if decode {
            k.dot_rows(self.ty)
        } else {
            k.gemm(self.ty)
        }
    }

    pub fn ty(&self) -> GgmlType {
        self.ty
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The raw ggml bytes of row `r`.
    ///
    /// # Panics
    /// On an interleaved matrix (its rows are not contiguous; use
    /// [`copy_row`](Self::copy_row) or [`dequantize_row`](Self::dequantize_row)).
    pub fn row(&self, r: usize) -> &'a [u8] {
        assert!(
            !self.interleaved,
            "WeightMatrix::row on an interleaved matrix: use copy_row"
        );
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Writes the ggml bytes of row `r` into `dst` (`row_bytes` long), for either layout.
    pub fn copy_row(&self, r: usize, dst: &mut [u8]) {
        if self.interleaved {
            interleaved::deinterleave_row(self.ty, self.cols, self.data, r, dst)
        } else {
            dst.copy_from_slice(self.row(r))
        }
    }

    /// Dequantizes row `r` into `out` (`cols` floats): embedding lookups. Either layout.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<(), FormatError> {
        if self.interleaved {
            interleaved::dequantize_row(self.ty, self.cols, self.data, r, out)
        } else {
            formats::dequantize_row(self.ty, self.row(r), out)
        }
    }
}

/// `n` activation rows of `cols` elements, quantized to the vec-dot format of some weight type.
/// Keep one per distinct (weight type, width) in the model's scratch and reuse it.
#[derive(Debug, Default)]
pub struct QuantizedActs {
    ty: Option<GgmlType>,
    n: usize,
    cols: usize,
    row_bytes: usize,
    buf: Vec<u8>,
}

impl QuantizedActs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves room for `n` rows of `cols` elements for weights of type `weight_ty`, so later
    /// `quantize` calls up to that size never allocate.
    pub fn reserve(
        &mut self,
        weight_ty: GgmlType,
        n: usize,
        cols: usize,
    ) -> Result<(), FormatError> {
        let dot_ty = vec_dot_type(weight_ty).ok_or(FormatError::Unsupported {
            ty: weight_ty,
            op: "matmul",
        })?;
        let rb = dot_ty
            .row_bytes(cols as u64)
            .ok_or(FormatError::PartialBlock {
                ty: dot_ty,
                n: cols,
            })? as usize;
        let need = rb * n;
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        Ok(())
    }

    /// Quantizes `x` (`n` rows of `cols` floats, row-major) for a product with weights of type
    /// `weight_ty`.
    pub fn quantize(
        &mut self,
        weight_ty: GgmlType,
        x: &[f32],
        n: usize,
        cols: usize,
    ) -> Result<(), FormatError> {
        self.quantize_with(kernels(), weight_ty, x, n, cols)
    }

    /// [`quantize`](Self::quantize) with a given kernel table (tests and benches compare paths).
    pub fn quantize_with(
        &mut self,
        k: &Kernels,
        weight_ty: GgmlType,
        x: &[f32],
        n: usize,
        cols: usize,
    ) -> Result<(), FormatError> {
        let dot_ty = vec_dot_type(weight_ty).ok_or(FormatError::Unsupported {
            ty: weight_ty,
            op: "matmul",
        })?;
        if Some(x.len()) != n.checked_mul(cols) {
            return Err(FormatError::SizeMismatch {
                ty: dot_ty,
                buffer: "activations",
                expected: n.saturating_mul(cols),
                got: x.len(),
            });
        }
        let rb = dot_ty
            .row_bytes(cols as u64)
            .ok_or(FormatError::PartialBlock {
                ty: dot_ty,
                n: cols,
            })? as usize;
        if self.buf.len() < rb * n {
            self.buf.resize(rb * n, 0);
        }
        for t in 0..n {
            (k.quantize_act)(
                dot_ty,
                &x[t * cols..(t + 1) * cols],
                &mut self.buf[t * rb..(t + 1) * rb],
            )?;
        }
        self.ty = Some(dot_ty);
        self.n = n;
        self.cols = cols;
        self.row_bytes = rb;
        Ok(())
    }

    /// The format the rows are quantized to.
    pub fn ty(&self) -> Option<GgmlType> {
        self.ty
    }
    pub fn n(&self) -> usize {
        self.n
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn row(&self, t: usize) -> &[u8] {
        &self.buf[t * self.row_bytes..(t + 1) * self.row_bytes]
    }
    /// All `n` rows, back to back.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.n * self.row_bytes]
    }
}

/// Raw output pointer shared by the workers; each writes a disjoint set of rows.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: workers write disjoint indices (distinct weight rows), see `matmul`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    // A method (not `.0`) so closures capture the whole Send wrapper, not the raw pointer.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `out[t * w.rows() + r] = dot(w.row(r), acts.row(t))` for every activation row `t` and weight
/// row `r`, threaded over weight rows on the current rayon pool.
pub fn matmul(w: &WeightMatrix, acts: &QuantizedActs, out: &mut [f32]) -> Result<(), FormatError> {
    matmul_with(kernels(), w, acts, out)
}

/// [`matmul`] with a given kernel table (tests and benches compare paths).
pub fn matmul_with(
    k: &Kernels,
    w: &WeightMatrix,
    acts: &QuantizedActs,
    out: &mut [f32],
) -> Result<(), FormatError> {
    check_shapes(w, acts, out.len())?;
    let n = acts.n;
    if w.rows == 0 || n == 0 {
        return Ok(());
    }
    if n == 1 {
        run_decode(k, w, acts, out);
    } else {
        run_prefill(k, w, acts, out);
    }
    Ok(())
}

/// `N` products against the same activations in one call: `outs[i][t * ws[i].rows() + r]` =
/// dot of `ws[i].row(r)` with `acts.row(t)`. Every matrix must take the activations' format
/// and width (the same vec-dot type and `cols`: Q, K and V of a layer, or gate and up, in the
/// usual quantizations). For one activation row (decode) all matrices are split over the pool
/// together, in ONE fork-join instead of `N`; a batch runs them one after another.
pub fn matmul_many<const N: usize>(
    ws: [&WeightMatrix; N],
    acts: &QuantizedActs,
    outs: [&mut [f32]; N],
) -> Result<(), FormatError> {
    matmul_many_with(kernels(), ws, acts, outs)
}

/// [`matmul_many`] with a given kernel table (tests and benches compare paths).
pub fn matmul_many_with<const N: usize>(
    k: &Kernels,
    ws: [&WeightMatrix; N],
    acts: &QuantizedActs,
    outs: [&mut [f32]; N],
) -> Result<(), FormatError> {
    for (w, out) in ws.iter().zip(&outs) {
        check_shapes(w, acts, out.len())?;
    }
    if N == 0 || acts.n == 0 {
        return Ok(());
    }
    if acts.n > 1 {
        for (w, out) in ws.into_iter().zip(outs) {
            matmul_with(k, w, acts, out)?;
        }
        return Ok(());
    }
    let mut outs = outs;
    let parts: [DecodePart; N] = std::array::from_fn(|i| DecodePart {
        dot_rows: ws[i].kernel(k, true),
        w: *ws[i],
        out: OutPtr(outs[i].as_mut_ptr()),
    });
    run_decode_parts(&parts, acts);
    Ok(())
}

/// Whether `acts` were quantized for `w` (format and width) and `out_len` fits the product.
fn check_shapes(w: &WeightMatrix, acts: &QuantizedActs, out_len: usize) -> Result<(), FormatError> {
    let dot_ty = vec_dot_type(w.ty).ok_or(FormatError::Unsupported {
        ty: w.ty,
        op: "matmul",
    })?;
    if acts.ty != Some(dot_ty) || acts.cols != w.cols {
        return Err(FormatError::SizeMismatch {
            ty: dot_ty,
            buffer: "activations (quantized for another weight type or width)",
            expected: w.cols,
            got: acts.cols,
        });
    }
    if out_len != acts.n * w.rows {
        return Err(FormatError::SizeMismatch {
            ty: w.ty,
            buffer: "matmul output",
            expected: acts.n * w.rows,
            got: out_len,
        });
    }
    Ok(())
}

/// One activation row (a decode step): the decode kernel, weight rows split over the pool.
fn run_decode(k: &Kernels, w: &WeightMatrix, acts: &QuantizedActs, out: &mut [f32]) {
    let part = DecodePart {
        dot_rows: w.kernel(k, true),
        w: *w,
        out: OutPtr(out.as_mut_ptr()),
    };
    run_decode_parts(&[part], acts)
}

/// One weight matrix of a decode fork-join and where its `rows` outputs go.
#[derive(Clone, Copy)]
struct DecodePart<'a> {
    dot_rows: DotRowsFn,
    w: WeightMatrix<'a>,
    out: OutPtr,
}

/// Weight bytes below which a decode call runs on the calling thread alone: waking a second
/// worker and joining it costs a few microseconds, what ~64 KiB of weights take to stream.
const DECODE_MIN_TASK_BYTES: usize = 64 * 1024;

/// Decode tasks per pool thread. One: each thread streams one contiguous run of rows (the
/// hardware prefetchers follow one stream per thread) and a call costs one fork-join.
const DECODE_TASKS_PER_THREAD: usize = 1;

/// How many tasks a decode call over `bytes` weight bytes is split into on `threads` threads.
fn decode_tasks(bytes: usize, threads: usize) -> usize {
    (threads * DECODE_TASKS_PER_THREAD)
        .min(bytes / DECODE_MIN_TASK_BYTES)
        .max(1)
}

/// The (part, row) where the task boundary at byte `b` of the parts' weights (taken back to
/// back) falls: the first row starting at or after `b`, rounded up to a multiple of the
/// part's row tile (4 rows; 16, a group, for an interleaved matrix) so that no tile is split.
fn decode_boundary(parts: &[DecodePart], b: usize) -> (usize, usize) {
    let mut off = 0;
    for (i, p) in parts.iter().enumerate() {
        let bytes = p.w.rows * p.w.row_bytes;
        if b < off + bytes {
            let tile = p.w.row_tile();
            let r = (b - off).div_ceil(p.w.row_bytes.max(1)).div_ceil(tile) * tile;
            return (i, r.min(p.w.rows));
        }
        off += bytes;
    }
    (parts.len() - 1, parts[parts.len() - 1].w.rows)
}

/// Runs every part's decode kernel over all its rows with one activation row, in ONE
/// fork-join: the weight bytes of all parts, taken back to back, are cut into equal
/// contiguous runs of whole rows, one per task.
fn run_decode_parts(parts: &[DecodePart], acts: &QuantizedActs) {
    let total: usize = parts.iter().map(|p| p.w.rows * p.w.row_bytes).sum();
    let threads = rayon::current_num_threads();
    let n_tasks = decode_tasks(total, threads);
    let work = |task: usize| {
        let (m0, r0) = decode_boundary(parts, total / n_tasks * task);
        let (m1, r1) = if task + 1 == n_tasks {
            (parts.len() - 1, parts[parts.len() - 1].w.rows)
        } else {
            decode_boundary(parts, total / n_tasks * (task + 1))
        };
        for (m, p) in parts.iter().enumerate().take(m1 + 1).skip(m0) {
            let start = if m == m0 { r0 } else { 0 };
            let end = if m == m1 { r1 } else { p.w.rows };
            if start >= end {
                continue;
            }
            // SAFETY: rows start..end of part m belong to this task only (the boundaries
            // partition every part's rows); every index written is r in start..end, inside
            // that part's output of `rows` floats. The kernel came from the dispatch module,
            // which only hands out tables the CPU can run.
            unsafe {
                (p.dot_rows)(
                    p.w.ty,
                    p.w.cols,
                    &p.w.data[start * p.w.row_bytes..end * p.w.row_bytes],
                    p.w.row_bytes,
                    end - start,
                    acts.bytes(),
                    acts.row_bytes,
                    1,
                    p.out.get().add(start),
                    p.w.rows,
                )
            }
        }
    };
    if n_tasks <= 1 {
        work(0);
    } else {
        (0..n_tasks).into_par_iter().for_each(work);
    }
}

/// How a prefill matmul is cut into tasks: `rows_per` weight rows × `tokens_per` activation
/// rows each (the last ones ragged), `row_tasks × token_tasks` in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PrefillSplit {
    rows_per: usize,
    tokens_per: usize,
    row_tasks: usize,
    token_tasks: usize,
}

/// Splits a prefill matmul of `rows × cols` weights and `n` activation rows for `threads`
/// workers: about `PREFILL_TASKS_PER_THREAD` tasks per worker (so a core slowed by something
/// else does not hold the batch up), each at least `MIN_TASK_MACS` multiply-adds (tens of
/// microseconds: the fork-join stays a small part), by weight rows first (every task then
/// streams its own weights once) and, when the rows run out before the tasks do (narrow
/// matrices like K/V projections), by tokens too. Both multiples of 4, the gemm tile.
fn prefill_split(
    rows: usize,
    cols: usize,
    n: usize,
    threads: usize,
    row_tile: usize,
) -> PrefillSplit {
    const PREFILL_TASKS_PER_THREAD: usize = 3;
    const MIN_TASK_MACS: usize = 4 << 20;
    const TILE: usize = 4;
    let macs = rows.saturating_mul(cols).saturating_mul(n);
    let tasks = if threads <= 1 {
        1
    } else {
        (threads * PREFILL_TASKS_PER_THREAD)
            .min(macs / MIN_TASK_MACS)
            .max(1)
    };
    let row_groups = rows.div_ceil(row_tile);
    let row_tasks = tasks.min(row_groups);
    let rows_per = row_groups.div_ceil(row_tasks) * row_tile;
    let row_tasks = rows.div_ceil(rows_per);
    let token_tasks = (tasks / row_tasks).clamp(1, n.div_ceil(TILE));
    let tokens_per = n.div_ceil(TILE).div_ceil(token_tasks) * TILE;
    let token_tasks = n.div_ceil(tokens_per);
    PrefillSplit {
        rows_per,
        tokens_per,
        row_tasks,
        token_tasks,
    }
}

/// A batch of activation rows (prefill): the prefill kernel on a 2-D split of the product
/// (see [`prefill_split`]) over the current pool.
fn run_prefill(k: &Kernels, w: &WeightMatrix, acts: &QuantizedActs, out: &mut [f32]) {
    let gemm = w.kernel(k, false);
    let n = acts.n;
    let out_ptr = OutPtr(out.as_mut_ptr());
    let threads = rayon::current_num_threads();
    let split = prefill_split(w.rows, w.cols, n, threads, w.row_tile());
    let work = |task: usize| {
        let (rt, tt) = (task % split.row_tasks, task / split.row_tasks);
        let r0 = rt * split.rows_per;
        let r1 = (r0 + split.rows_per).min(w.rows);
        let t0 = tt * split.tokens_per;
        let t1 = (t0 + split.tokens_per).min(n);
        // SAFETY: the task owns rows r0..r1 of tokens t0..t1: every index written is
        // t * rows + r with r in r0..r1 and t in t0..t1, inside `out`, and no two tasks share
        // a (row, token). `k` came from the dispatch module, which only hands out tables the
        // CPU can run.
        unsafe {
            gemm(
                w.ty,
                w.cols,
                &w.data[r0 * w.row_bytes..r1 * w.row_bytes],
                w.row_bytes,
                r1 - r0,
                &acts.bytes()[t0 * acts.row_bytes..t1 * acts.row_bytes],
                acts.row_bytes,
                t1 - t0,
                out_ptr.get().add(t0 * w.rows + r0),
                w.rows,
            )
        }
    };
    let n_tasks = split.row_tasks * split.token_tasks;
    if threads <= 1 || n_tasks <= 1 {
        (0..n_tasks).for_each(work);
    } else {
        (0..n_tasks).into_par_iter().for_each(work);
    }
}

#[cfg(test)]
mod tests {
    use super::prefill_split;

    #[test]
    fn prefill_split_covers_every_row_and_token_once() {
        for threads in [1, 2, 3, 8] {
            for (rows, cols, n) in [
                (1, 32, 2),
                (5, 32, 17),
                (256, 640, 256),
                (2048, 640, 128),
                (640, 2048, 7),
                (262144, 640, 2),
                (1000, 16384, 255),
            ] {
                for tile in [4, 16] {
                    let s = prefill_split(rows, cols, n, threads, tile);
                    let at =
                        format!("{rows}x{cols}, {n} tokens, {threads} threads, tile {tile}: {s:?}");
                    assert!(
                        s.rows_per.is_multiple_of(tile) && s.tokens_per.is_multiple_of(4),
                        "{at}"
                    );
                    // Every task non-empty, together exactly the rows / tokens.
                    assert!((s.row_tasks - 1) * s.rows_per < rows, "{at}");
                    assert!(s.row_tasks * s.rows_per >= rows, "{at}");
                    assert!((s.token_tasks - 1) * s.tokens_per < n, "{at}");
                    assert!(s.token_tasks * s.tokens_per >= n, "{at}");
                    let tasks = s.row_tasks * s.token_tasks;
                    if threads == 1 {
                        assert_eq!(tasks, 1, "{at}");
                    } else if rows * cols * n >= threads * 3 * (4 << 20) && rows >= 4 * threads * 3
                    {
                        // Big products keep every worker busy.
                        assert!(tasks >= threads, "{at}");
                    }
                }
            }
        }
        // A narrow matrix is split by tokens as well.
        let s = prefill_split(4, 16384, 256, 2, 4);
        assert!(s.token_tasks > 1, "{s:?}");
    }
}

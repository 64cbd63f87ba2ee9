//! The row/tile loop shared by every SIMD path: a [`RowKernel`] computes a small tile of dot
//! products (`NW` weight rows × `NA` activation rows); [`dot_rows`] walks a [`DotRowsFn`]-shaped
//! problem with it.
//!
//! Decode (one activation row) streams the weight rows in order, `DW` at a time so the
//! activation blocks are loaded once per `DW` rows and the f32 accumulators of different rows
//! form independent dependency chains. Prefill walks activation tiles small enough to stay in
//! L2, and inside a tile uses `PW × PA` tiles so every decoded weight block is used `PA` times.
//!
//! [`DotRowsFn`]: crate::kernel_types::DotRowsFn

use crate::types::GgmlType;

/// Dot products of `NW` weight rows with `NA` activation rows for one weight format on one
/// instruction set.
pub(crate) trait RowKernel {
    /// `out[i][j]` = dot of weight row `w[i]` with activation row `a[j]`, both `cols` elements.
    ///
    /// # Safety
    /// The CPU has the kernel's target features; every `w[i]` points at a full weight row and
    /// every `a[j]` at a full activation row (in the weight type's vec-dot format) of `cols`
    /// elements; `cols` is a whole number of blocks. No alignment is required.
    unsafe fn dot<const NW: usize, const NA: usize>(
        cols: usize,
        w: [*const u8; NW],
        a: [*const u8; NA],
    ) -> [[f32; NA]; NW];
}

/// How far ahead of the rows being dotted decode prefetches weights. Decode streams the matrix
/// once, several rows at a time; with the hardware prefetchers alone a 180 MB Q8_0 matrix ran
/// at ~40% of the read bandwidth on Zen 4, prefetching 2-4 KiB ahead doubled that (8 KiB and
/// more measured worse).
const PREFETCH_AHEAD: usize = 3072;

/// Prefetches the cache lines of `len` bytes from `p` into L1 (hints only: never faults, so
/// running past the end of the matrix is harmless).
#[inline(always)]
fn prefetch_range(p: *const u8, len: usize) {
    let mut off = 0;
    while off < len {
        prefetch(p.wrapping_add(off));
        off += 64;
    }
}

#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above (`prfm` never faults).
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

/// Activation bytes per prefill tile: the tile is re-read once per weight row, so it should
/// stay in L2 next to the weight rows being streamed.
const ACT_TILE_BYTES: usize = 256 * 1024;

/// A [`DotRowsFn`](crate::kernel_types::DotRowsFn) built on kernel `K`: decode uses `DW` weight rows
/// per call, prefill `PW × PA` tiles.
///
/// # Safety
/// As `DotRowsFn`; additionally the CPU has `K`'s target features.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dot_rows<K: RowKernel, const DW: usize, const PW: usize, const PA: usize>(
    ty: GgmlType,
    cols: usize,
    w: &[u8],
    w_row_bytes: usize,
    n_w: usize,
    acts: &[u8],
    act_row_bytes: usize,
    n_act: usize,
    out: *mut f32,
    out_stride: usize,
) {
    // Cheap checks that keep the raw-pointer kernels inside the slices whatever the caller
    // passed (matmul validates these properly; a failure here is a bug).
    let bs = ty.block_size();
    assert!(
        cols.is_multiple_of(bs) && w_row_bytes == cols / bs * ty.type_size(),
        "dot_rows: {cols} {ty} columns do not match {w_row_bytes} weight bytes per row"
    );
    assert!(w.len() >= n_w * w_row_bytes && acts.len() >= n_act * act_row_bytes);
    if n_w == 0 || n_act == 0 {
        return;
    }
    if let Some(dot_ty) = crate::formats::vec_dot_type(ty) {
        let dbs = dot_ty.block_size();
        assert_eq!(act_row_bytes, cols / dbs * dot_ty.type_size());
    }
    let wp = |r: usize| unsafe { w.as_ptr().add(r * w_row_bytes) };
    let ap = |t: usize| unsafe { acts.as_ptr().add(t * act_row_bytes) };
    let store = |r: usize, t: usize, v: f32| unsafe { *out.add(t * out_stride + r) = v };

    if n_act == 1 {
        let a = [ap(0)];
        let mut r = 0;
        while r + DW <= n_w {
            prefetch_range(wp(r).wrapping_add(PREFETCH_AHEAD), DW * w_row_bytes);
            let res = unsafe { K::dot::<DW, 1>(cols, std::array::from_fn(|i| wp(r + i)), a) };
            for (i, v) in res.iter().enumerate() {
                store(r + i, 0, v[0]);
            }
            r += DW;
        }
        while r < n_w {
            let res = unsafe { K::dot::<1, 1>(cols, [wp(r)], a) };
            store(r, 0, res[0][0]);
            r += 1;
        }
        return;
    }

    let tile = (ACT_TILE_BYTES / act_row_bytes.max(1)).max(PA) / PA * PA;
    let mut t0 = 0;
    while t0 < n_act {
        let t1 = (t0 + tile).min(n_act);
        let mut r = 0;
        while r < n_w {
            let nw = if r + PW <= n_w { PW } else { 1 };
            let mut t = t0;
            while t + PA <= t1 {
                let a: [*const u8; PA] = std::array::from_fn(|j| ap(t + j));
                if nw == PW {
                    let res =
                        unsafe { K::dot::<PW, PA>(cols, std::array::from_fn(|i| wp(r + i)), a) };
                    for (i, row) in res.iter().enumerate() {
                        for (j, &v) in row.iter().enumerate() {
                            store(r + i, t + j, v);
                        }
                    }
                } else {
                    let res = unsafe { K::dot::<1, PA>(cols, [wp(r)], a) };
                    for (j, &v) in res[0].iter().enumerate() {
                        store(r, t + j, v);
                    }
                }
                t += PA;
            }
            while t < t1 {
                if nw == PW {
                    let res = unsafe {
                        K::dot::<PW, 1>(cols, std::array::from_fn(|i| wp(r + i)), [ap(t)])
                    };
                    for (i, v) in res.iter().enumerate() {
                        store(r + i, t, v[0]);
                    }
                } else {
                    let res = unsafe { K::dot::<1, 1>(cols, [wp(r)], [ap(t)]) };
                    store(r, t, res[0][0]);
                }
                t += 1;
            }
            r += nw;
        }
        t0 = t1;
    }
}

//! The tile walker of the x86 prefill kernels: splits a [`DotRowsFn`]-shaped problem into
//! register tiles of `R` weight rows × `T` tokens computed by a [`GemmKernel`].
//!
//! Order: token tiles small enough that their (prepared) activations stay in L2; inside one,
//! groups of `R` weight rows, and for each group every `T`-token slice of the tile. The `R`
//! weight rows of a group (a few KiB to a few tens of KiB) are then read from memory once per
//! token tile and re-read from L1/L2 by the other slices, and each activation block is loaded
//! once per `R` rows.
//!
//! [`DotRowsFn`]: crate::kernel_types::DotRowsFn

use crate::types::GgmlType;
use std::cell::RefCell;

/// One weight format's prefill microkernel on one instruction set.
pub(crate) trait GemmKernel {
    /// Bytes of one prepared activation row of `cols` elements, or 0 when the kernel reads the
    /// quantized activation rows as they are.
    fn prep_bytes(cols: usize) -> usize;

    /// Rewrites the activation row at `act` (the weight type's vec-dot format) into the
    /// kernel's layout at `dst` (`prep_bytes(cols)` bytes, 64-byte aligned).
    ///
    /// # Safety
    /// The CPU has the kernel's features; `act` holds a full row, `dst` `prep_bytes` bytes.
    unsafe fn prep(cols: usize, act: *const u8, dst: *mut u8);

    /// `out[i][j]` = dot of weight row `w[i]` with activation row `a[j]` (prepared rows if
    /// `prep_bytes > 0`, else the quantized rows).
    ///
    /// # Safety
    /// The CPU has the kernel's features; every pointer addresses a full row.
    unsafe fn tile<const R: usize, const T: usize>(
        cols: usize,
        w: [*const u8; R],
        a: [*const u8; T],
    ) -> [[f32; T]; R];
}

/// Activation bytes per token tile: re-read once per `R`-row group, so they should stay in L2
/// (1 MiB per core on Zen 5) next to the weight rows streamed through it.
const ACT_TILE_BYTES: usize = 384 * 1024;

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

thread_local! {
    /// Prepared activations of the current token tile (kept between calls: no allocation per
    /// matmul once the largest tile has been seen).
    static PREP: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Calls `$f::<K, $r, N>` for the runtime token count `$n` in `1..=4`.
macro_rules! by_tokens {
    ($n:expr, $f:ident, $r:expr, $($arg:expr),*) => {
        match $n {
            1 => $f::<K, $r, 1>($($arg),*),
            2 => $f::<K, $r, 2>($($arg),*),
            3 => $f::<K, $r, 3>($($arg),*),
            4 => $f::<K, $r, 4>($($arg),*),
            _ => unreachable!("token tails are shorter than 5"),
        }
    };
}

/// One `R × T` tile at weight row `r`, token `t` of the tile whose rows start at `a0`.
///
/// # Safety
/// As [`gemm`]; `r + R <= n_w`, and the `T` activation rows exist.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn one_tile<K: GemmKernel, const R: usize, const T: usize>(
    cols: usize,
    w: *const u8,
    w_row_bytes: usize,
    r: usize,
    a0: *const u8,
    a_row_bytes: usize,
    t: usize,
    out: *mut f32,
    out_stride: usize,
    t_global: usize,
) {
    let wp: [*const u8; R] = std::array::from_fn(|i| unsafe { w.add((r + i) * w_row_bytes) });
    let ap: [*const u8; T] = std::array::from_fn(|j| unsafe { a0.add((t + j) * a_row_bytes) });
    let res = unsafe { K::tile::<R, T>(cols, wp, ap) };
    for (i, row) in res.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            unsafe { *out.add((t_global + j) * out_stride + r + i) = v };
        }
    }
}

/// A [`DotRowsFn`](crate::kernel_types::DotRowsFn) built on the microkernel `K` with `R × T` tiles
/// (tails: 1 row at a time, leftover tokens in tiles of at most 4).
///
/// # Safety
/// As `DotRowsFn`; additionally the CPU has `K`'s target features.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<K: GemmKernel, const R: usize, const T: usize>(
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
        "gemm: {cols} {ty} columns do not match {w_row_bytes} weight bytes per row"
    );
    assert!(w.len() >= n_w * w_row_bytes && acts.len() >= n_act * act_row_bytes);
    let dot_ty = crate::formats::vec_dot_type(ty).expect("gemm: not a weight type");
    assert_eq!(
        act_row_bytes,
        cols / dot_ty.block_size() * dot_ty.type_size()
    );
    assert!(T > 0 && R > 0);
    if n_w == 0 || n_act == 0 {
        return;
    }
    let prep_bytes = K::prep_bytes(cols);
    assert!(
        prep_bytes.is_multiple_of(64),
        "prepared rows keep 64-byte alignment"
    );
    let tile_row_bytes = if prep_bytes > 0 {
        prep_bytes
    } else {
        act_row_bytes
    };
    let tile_tokens = (ACT_TILE_BYTES / tile_row_bytes.max(1)).max(T) / T * T;
    PREP.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut t0 = 0;
        while t0 < n_act {
            let t1 = (t0 + tile_tokens).min(n_act);
            let nt = t1 - t0;
            let (a0, a_row_bytes) = if prep_bytes > 0 {
                let lines = (nt * prep_bytes).div_ceil(64);
                if buf.len() < lines {
                    buf.resize(lines, Line([0; 64]));
                }
                let dst = buf.as_mut_ptr() as *mut u8;
                for t in 0..nt {
                    // SAFETY: row t0 + t is inside `acts` (checked above); the buffer holds
                    // nt * prep_bytes bytes, and prep_bytes keeps every row 64-byte aligned.
                    unsafe {
                        K::prep(
                            cols,
                            acts.as_ptr().add((t0 + t) * act_row_bytes),
                            dst.add(t * prep_bytes),
                        )
                    };
                }
                (dst as *const u8, prep_bytes)
            } else {
                (
                    unsafe { acts.as_ptr().add(t0 * act_row_bytes) },
                    act_row_bytes,
                )
            };
            let full = nt / T * T;
            let mut r = 0;
            while r < n_w {
                if r + R <= n_w {
                    let mut t = 0;
                    while t < full {
                        unsafe {
                            one_tile::<K, R, T>(
                                cols,
                                w.as_ptr(),
                                w_row_bytes,
                                r,
                                a0,
                                a_row_bytes,
                                t,
                                out,
                                out_stride,
                                t0 + t,
                            )
                        };
                        t += T;
                    }
                    let mut t = full;
                    while t < nt {
                        let n = (nt - t).min(4);
                        unsafe {
                            by_tokens!(
                                n,
                                one_tile,
                                R,
                                cols,
                                w.as_ptr(),
                                w_row_bytes,
                                r,
                                a0,
                                a_row_bytes,
                                t,
                                out,
                                out_stride,
                                t0 + t
                            )
                        };
                        t += n;
                    }
                    r += R;
                } else {
                    let mut t = 0;
                    while t < full {
                        unsafe {
                            one_tile::<K, 1, T>(
                                cols,
                                w.as_ptr(),
                                w_row_bytes,
                                r,
                                a0,
                                a_row_bytes,
                                t,
                                out,
                                out_stride,
                                t0 + t,
                            )
                        };
                        t += T;
                    }
                    let mut t = full;
                    while t < nt {
                        let n = (nt - t).min(4);
                        unsafe {
                            by_tokens!(
                                n,
                                one_tile,
                                1,
                                cols,
                                w.as_ptr(),
                                w_row_bytes,
                                r,
                                a0,
                                a_row_bytes,
                                t,
                                out,
                                out_stride,
                                t0 + t
                            )
                        };
                        t += n;
                    }
                    r += 1;
                }
            }
            t0 = t1;
        }
    });
}

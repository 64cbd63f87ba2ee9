//! The kernel vocabulary every kernel module shares: the kernel paths ([`Path`]), the entry
//! types ([`DotRowsFn`], [`QuantizeActFn`]) and the scalar reference entries. A leaf: it
//! imports nothing from the SIMD modules (`x86`, `aarch64`), which import it, while
//! `dispatch` imports them and re-exports this (`dispatch::{Path, DotRowsFn, ...}` are the
//! public paths).

use crate::formats::{self, FormatError};
use crate::types::GgmlType;

/// Computes, for `n_w` weight rows (each `w_row_bytes` long, back to back in `w`) and `n_act`
/// activation rows (each `act_row_bytes` long in `acts`), `out[t * out_stride + r]` = dot of
/// weight row `r` with activation row `t`.
///
/// # Safety
/// `out` must be valid for writes at every `t * out_stride + r` with `t < n_act`, `r < n_w`,
/// and no other thread may access those elements during the call. Slices must hold the sizes
/// stated (`matmul` checks them). The table the function came from must be one whose CPU
/// features are present (`dispatch::table` only hands those out).
pub type DotRowsFn = unsafe fn(
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
);

/// Quantizes one activation row to `dot_ty` (Q8_0 / Q8_1 / Q8_K / F32). Every path produces
/// exactly the bytes of the scalar reference quantizer.
pub type QuantizeActFn = fn(dot_ty: GgmlType, x: &[f32], dst: &mut [u8]) -> Result<(), FormatError>;

/// A kernel path: an instruction-set level with its own table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    Scalar,
    Avx2,
    Avx512,
    Neon,
    Dotprod,
    I8mm,
}

impl Path {
    /// Every path, in the order `edgegemma info` lists them.
    pub const ALL: [Path; 6] = [
        Path::Scalar,
        Path::Avx2,
        Path::Avx512,
        Path::Neon,
        Path::Dotprod,
        Path::I8mm,
    ];

    /// The name `EDGEGEMMA_KERNELS` uses.
    pub const fn name(self) -> &'static str {
        match self {
            Path::Scalar => "scalar",
            Path::Avx2 => "avx2",
            Path::Avx512 => "avx512",
            Path::Neon => "neon",
            Path::Dotprod => "dotprod",
            Path::I8mm => "i8mm",
        }
    }

    pub fn from_name(name: &str) -> Option<Path> {
        Path::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The architecture the path is for (`None`: all).
    pub const fn arch(self) -> Option<&'static str> {
        match self {
            Path::Scalar => None,
            Path::Avx2 | Path::Avx512 => Some("x86_64"),
            Path::Neon | Path::Dotprod | Path::I8mm => Some("aarch64"),
        }
    }

    /// CPU features the path needs (names as `std::arch` detection spells them).
    pub const fn required_features(self) -> &'static [&'static str] {
        match self {
            Path::Scalar => &[],
            Path::Avx2 => &["avx2", "fma", "f16c"],
            Path::Avx512 => &[
                "avx2",
                "fma",
                "f16c",
                "avx512f",
                "avx512bw",
                "avx512vl",
                "avx512vnni",
            ],
            Path::Neon => &["neon"],
            Path::Dotprod => &["neon", "dotprod"],
            Path::I8mm => &["neon", "dotprod", "i8mm"],
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The scalar reference entry: [`formats::vec_dot_scalar`] per weight row and token (every
/// format, every path's fallback for a type it has no kernel for).
///
/// # Safety
/// See [`DotRowsFn`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dot_rows_scalar(
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
    for r in 0..n_w {
        let row = &w[r * w_row_bytes..(r + 1) * w_row_bytes];
        for t in 0..n_act {
            let act = &acts[t * act_row_bytes..(t + 1) * act_row_bytes];
            let v = formats::vec_dot_scalar(ty, cols, row, act)
                .expect("matmul validated the sizes and types");
            // SAFETY: caller guarantees this index is ours to write.
            unsafe { *out.add(t * out_stride + r) = v };
        }
    }
}

/// The scalar x16 entry: [`formats::interleaved::dot_group`] per group and token.
///
/// # Safety
/// See [`DotRowsFn`]; `w` holds `n_w / 16` packed groups.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dot_rows_x16_scalar(
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
    use formats::interleaved::{dot_group, INTERLEAVE_ROWS};
    assert!(n_w.is_multiple_of(INTERLEAVE_ROWS));
    let gb = w_row_bytes * INTERLEAVE_ROWS;
    for g in 0..n_w / INTERLEAVE_ROWS {
        let group = &w[g * gb..(g + 1) * gb];
        for t in 0..n_act {
            let act = &acts[t * act_row_bytes..(t + 1) * act_row_bytes];
            let v = dot_group(ty, cols, group, act);
            for (r, &v) in v.iter().enumerate() {
                // SAFETY: caller guarantees this index is ours to write.
                unsafe { *out.add(t * out_stride + g * INTERLEAVE_ROWS + r) = v };
            }
        }
    }
}

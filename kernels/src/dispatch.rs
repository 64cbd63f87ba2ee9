//! Run-time kernel selection: CPU features are detected once and one table of kernels is
//! chosen for the whole process.
//!
//! Paths, best first: `avx512` (AVX-512 BW/VL + VNNI) > `avx2` (AVX2 + FMA + F16C) on x86_64;
//! `i8mm` (ARMv8.6 `smmla`) > `dotprod` (ARMv8.2 `sdot`) > `neon` (ARMv8.0) on aarch64;
//! `scalar` everywhere. `EDGEGEMMA_KERNELS=<path>` forces one (for debugging and tests) and is
//! refused when the CPU lacks it. One binary runs on every CPU of its architecture: SIMD code is
//! compiled with `#[target_feature]` and only ever called through a table whose features were
//! detected.
//!
//! # Which kernel runs for which format
//!
//! One table, below: a `*_row` function per path (`avx2_row`, `avx512_row`, `neon_row`,
//! `dotprod_row`, `i8mm_row`) giving, for every weight format, the decode kernel (one token),
//! the prefill (`gemm`) kernel and the x16 kernel of packed weights; the comments that justify
//! a choice sit on its row. Every cell is `decode; gemm` (`=`: the decode kernel for both).
//! `dot_rows<K, DW, PW, PA>` is the row-kernel walker of `rows.rs` (`DW` rows per decode call,
//! `PW × PA` prefill tiles), `decode<D, P, R>` the AVX-512 decode walker (`R` rows per tile,
//! row kernel `P` for batches), `gemm<K, R, T>` the x86 microkernel walker (`R × T` tiles),
//! `gemm<K>` the aarch64 one (4 rows × up to 4 tokens). `scalar` runs
//! `formats::vec_dot_scalar` for every format, as does every path for a type without a row.
//! x16 (packed 16-row weights): `avx512` has `x16::<Q4_0>`, `x16::<Q5_0>`, `x16::<Q8_0>`
//! (`x86/avx512/x16.rs`); everything else multiplies packed weights with the scalar
//! reference `formats::interleaved::dot_group`.
//!
//! | format | `avx2` | `avx512` | `neon` | `dotprod` (Pi 5) | `i8mm` |
//! |---|---|---|---|---|---|
//! | F32 | `dot_rows<F32, 4, 1, 4>`; = | `decode<F32Rows, F32, 1>`; `avx512_f32_per_token<F32Rows, F32, 1>` (decode per token) | `dot_rows<F32, 4, 1, 4>`; `dot_rows<F32, 4, 4, 4>` | as `neon` | as `neon` |
//! | F16 | `dot_rows<F16, 4, 1, 4>`; = | `decode<F16Rows, F16, 1>`; `gemm<GemmF16, 4, 4>` | `dot_rows<F16, 4, 1, 4>`; `dot_rows<F16, 4, 4, 4>` | as `neon` | as `neon` |
//! | BF16 | `dot_rows<Bf16, 4, 1, 4>`; = | `decode<Bf16Rows, Bf16, 1>`; `gemm<GemmBf16, 4, 4>` | `dot_rows<Bf16, 4, 1, 4>`; `dot_rows<Bf16, 4, 4, 4>` | as `neon` | as `neon` |
//! | Q4_0 | `dot_rows<Q4_0, 4, 1, 4>`; `gemm<GemmQ4_0, 2, 4>` | `decode<Q4_0Rows, Q4_0, 2>`; `gemm<GemmQ4_0, 4, 4>`; x16 | `gemm<NeonQ4_0>`; = | `gemm<DotQ4_0>`; = | `gemm<DotQ4_0>`; `gemm<MmQ4_0>` |
//! | Q4_1 | `dot_rows<Q4_1, 4, 1, 4>`; `gemm<GemmQ4_1, 2, 3>` | `decode<Q4_1Rows, avx2::Q4_1, 2>`; `gemm<GemmQ4_1, 3, 4>` | `gemm<NeonQ4_1>`; = | `gemm<DotQ4_1>`; = | `gemm<DotQ4_1>`; `gemm<MmQ4_1>` |
//! | Q5_0 | `dot_rows<Q5_0, 4, 1, 4>`; `gemm<GemmQ5_0, 2, 4>` | `decode<Q5_0Rows, Q5_0, 2>`; `gemm<GemmQ5_0, 4, 4>`; x16 | `gemm<NeonQ5_0>`; = | `gemm<DotQ5_0>`; = | `gemm<DotQ5_0>`; `gemm<MmQ5_0>` |
//! | Q5_1 | `dot_rows<Q5_1, 4, 1, 4>`; = | `decode<Q5_1Rows, Q5_1, 2>`; `gemm<GemmQ5_1, 3, 4>` | `gemm<NeonQ5_1>`; = | `gemm<DotQ5_1>`; = | `gemm<DotQ5_1>`; `gemm<MmQ5_1>` |
//! | Q8_0 | `dot_rows<Q8_0, 4, 1, 4>`; `gemm<GemmQ8_0, 2, 4>` | `decode<Q8_0Rows, Q8_0, 1>`; `gemm<GemmQ8_0, 4, 4>`; x16 | `gemm<NeonQ8_0>`; = | `gemm<DotQ8_0>`; = | `gemm<DotQ8_0>`; `gemm<MmQ8_0>` |
//! | Q4_K | `dot_rows<Q4K, 2, 1, 4>`; = | `decode<Q4KRows, avx2::Q4K, 2>`; `gemm<GemmQ4K, 4, 4>` | `gemm<NeonQ4K>`; = | `gemm<DotQ4K>`; = | `gemm<DotQ4K>`; `gemm<MmQ4K>` |
//! | Q5_K | `dot_rows<Q5K, 2, 1, 4>`; = | `decode<Q5KRows, avx2::Q5K, 2>`; `gemm<GemmQ5K, 4, 4>` | `gemm<NeonQ5K>`; = | `gemm<DotQ5K>`; = | `gemm<DotQ5K>`; `gemm<MmQ5K>` |
//! | Q6_K | `dot_rows<Q6K, 2, 1, 4>`; = | `decode<Q6KRows, avx2::Q6K, 2>`; `gemm<GemmQ6K, 4, 4>` | `gemm<NeonQ6K>`; = | `dot_rows<Q6K, 2, 1, 4>`; `gemm<DotQ6K>` | `dot_rows<Q6K, 2, 1, 4>`; `gemm<MmQ6K>` |

use crate::attention::{Attention, AttentionError, AttentionFn};
use crate::formats;
use crate::kernel_types::{dot_rows_scalar, dot_rows_x16_scalar};
pub use crate::kernel_types::{DotRowsFn, Path, QuantizeActFn};
use crate::types::GgmlType;
use std::sync::OnceLock;

/// The kernel table in use.
pub struct Kernels {
    /// Name of the path (`scalar`, `avx2`, ...), as `EDGEGEMMA_KERNELS` spells it.
    pub name: &'static str,
    pub path: Path,
    pub quantize_act: QuantizeActFn,
    /// The path's rows of the format × path table.
    formats: fn(GgmlType) -> FormatKernels,
    attention: AttentionFn,
}

impl Kernels {
    const fn new(
        path: Path,
        quantize_act: QuantizeActFn,
        formats: fn(GgmlType) -> FormatKernels,
        attention: AttentionFn,
    ) -> Kernels {
        Kernels {
            name: path.name(),
            path,
            quantize_act,
            formats,
            attention,
        }
    }

    /// The decode kernel for weights of type `ty` (one of the weight types
    /// `formats::vec_dot_type` accepts): built for one activation row streaming the weights
    /// once (it accepts any `n_act`).
    pub fn dot_rows(&self, ty: GgmlType) -> DotRowsFn {
        (self.formats)(ty).decode
    }

    /// The prefill kernel for weights of type `ty`: built for many activation rows (a batch of
    /// tokens) against the same weights (it accepts any `n_act`, 1 included).
    pub fn gemm(&self, ty: GgmlType) -> DotRowsFn {
        (self.formats)(ty).gemm
    }

    /// Whether this table has a SIMD kernel for weights of type `ty` in the interleaved
    /// 16-row layout (`formats::interleaved`): Q4_0, Q5_0 and Q8_0 on `avx512`. Other tables
    /// still multiply packed matrices, through the scalar reference ([`x16`](Self::x16)), so
    /// the runtime packs a matrix only where this is true.
    pub fn interleaves(&self, ty: GgmlType) -> bool {
        self.simd_x16(ty).is_some()
    }

    /// The kernel for packed (x16) weights of type `ty` (one of Q4_0 / Q5_0 / Q8_0), decode
    /// and prefill alike: `w` holds `n_w / 16` packed groups (`n_w` a multiple of 16) and
    /// `w_row_bytes` is the ggml row size. The SIMD one where [`interleaves`](Self::interleaves)
    /// says so, else the scalar reference (`formats::interleaved::dot_group`).
    pub fn x16(&self, ty: GgmlType) -> DotRowsFn {
        self.simd_x16(ty).unwrap_or(dot_rows_x16_scalar)
    }

    fn simd_x16(&self, ty: GgmlType) -> Option<DotRowsFn> {
        (self.formats)(ty).x16
    }

    /// The path's attention entry (paths that share one, like the aarch64 ones, return the same
    /// function; tests use this to check each entry once).
    pub fn attention_entry(&self) -> AttentionFn {
        self.attention
    }

    /// Causal attention of a batch of queries over a KV ring (see [`crate::attention`]) on this
    /// path; refuses inconsistent shapes with an error.
    pub fn attend(&self, a: &Attention<'_>, out: &mut [f32]) -> Result<(), AttentionError> {
        a.validate(out)?;
        // SAFETY: validated above; tables are only handed out for CPUs with their features.
        unsafe { (self.attention)(a, out) };
        Ok(())
    }
}

/// The kernels of one weight format on one path: one row of the format × path table.
#[derive(Clone, Copy)]
struct FormatKernels {
    /// Decode: built for one activation row streaming the weights once (accepts any `n_act`).
    decode: DotRowsFn,
    /// Prefill: built for many activation rows against the same weights (accepts any `n_act`).
    gemm: DotRowsFn,
    /// Packed (x16) weights, where the path has a SIMD kernel for them.
    x16: Option<DotRowsFn>,
}

/// A row whose decode and prefill kernels differ and that has no x16 kernel.
const fn row(decode: DotRowsFn, gemm: DotRowsFn) -> FormatKernels {
    FormatKernels {
        decode,
        gemm,
        x16: None,
    }
}

/// A row with one kernel for decode and prefill alike.
const fn same(kernel: DotRowsFn) -> FormatKernels {
    row(kernel, kernel)
}

/// Every type a path lists no row for (and every type on `scalar`): the scalar reference.
/// Not a weight type, or none with SIMD kernels; `matmul` refuses non-weight types before
/// asking for a kernel.
const SCALAR_ROW: FormatKernels = same(dot_rows_scalar);

/// The `scalar` table: the reference for every format.
fn scalar_row(_ty: GgmlType) -> FormatKernels {
    SCALAR_ROW
}

/// The `avx2` table. Decode uses 4 weight rows per call (4 independent accumulator chains,
/// activation block loaded once; the K-quants 2) through the tile walker of `rows.rs`, whose
/// prefill tiles are 1 × 4 (each decoded weight block feeds 4 tokens); prefill uses the
/// register-tiled microkernels of `x86/gemm` where there is one (tiles: `x86/gemm/mod.rs`).
#[cfg(target_arch = "x86_64")]
fn avx2_row(ty: GgmlType) -> FormatKernels {
    use crate::rows::dot_rows;
    use crate::x86::avx2 as k;
    use crate::x86::gemm::{avx2_q8 as g, walk::gemm};
    use GgmlType as T;
    match ty {
        T::F32 => same(dot_rows::<k::F32, 4, 1, 4>),
        T::F16 => same(dot_rows::<k::F16, 4, 1, 4>),
        T::BF16 => same(dot_rows::<k::Bf16, 4, 1, 4>),
        T::Q4_0 => row(dot_rows::<k::Q4_0, 4, 1, 4>, gemm::<g::GemmQ4_0, 2, 4>),
        T::Q4_1 => row(dot_rows::<k::Q4_1, 4, 1, 4>, gemm::<g::GemmQ4_1, 2, 3>),
        T::Q5_0 => row(dot_rows::<k::Q5_0, 4, 1, 4>, gemm::<g::GemmQ5_0, 2, 4>),
        // Q5_1 measured no faster than its decode kernel in 2x3 tiles (1.0x: the high-bit
        // expansion and the minimums overflow the 16 registers), so it keeps that one.
        T::Q5_1 => same(dot_rows::<k::Q5_1, 4, 1, 4>),
        T::Q8_0 => row(dot_rows::<k::Q8_0, 4, 1, 4>, gemm::<g::GemmQ8_0, 2, 4>),
        T::Q4_K => same(dot_rows::<k::Q4K, 2, 1, 4>),
        T::Q5_K => same(dot_rows::<k::Q5K, 2, 1, 4>),
        T::Q6_K => same(dot_rows::<k::Q6K, 2, 1, 4>),
        _ => SCALAR_ROW,
    }
}

/// The `avx512` table. Decode: the 512-bit kernels of `x86/avx512/decode.rs` over tiles of 2
/// rows (1 for Q8_0 and the floats), with the 256-bit row kernels for other batch sizes (VNNI
/// for Q4_0, Q5_0, Q5_1, Q8_0; AVX2 for the rest). Prefill: the microkernels of `x86/gemm` in
/// 4 × 4 tiles (16 zmm accumulators). x16: `x86/avx512/x16.rs` for Q4_0, Q5_0 and Q8_0.
#[cfg(target_arch = "x86_64")]
fn avx512_row(ty: GgmlType) -> FormatKernels {
    use crate::x86::avx2 as a2;
    use crate::x86::avx512::{decode::decode, float, kquants, q4_0, q4_1, q5_0, q5_1, q8_0, x16};
    use crate::x86::gemm::{
        avx512_f32_per_token, avx512_float as gf, avx512_k as gk, avx512_q8 as gq, walk::gemm,
    };
    use GgmlType as T;
    let with_x16 = |k: FormatKernels, x: DotRowsFn| FormatKernels { x16: Some(x), ..k };
    match ty {
        T::Q4_0 => with_x16(
            row(
                decode::<q4_0::Q4_0Rows, q4_0::Q4_0, 2>,
                gemm::<gq::GemmQ4_0, 4, 4>,
            ),
            x16::X16_Q4_0,
        ),
        // Q4_1 / Q5_1 prefill: one more weight register per row (the minimums): 3 rows keep
        // the tile in the 32 zmm registers.
        T::Q4_1 => row(
            decode::<q4_1::Q4_1Rows, a2::Q4_1, 2>,
            gemm::<gq::GemmQ4_1, 3, 4>,
        ),
        T::Q5_0 => with_x16(
            row(
                decode::<q5_0::Q5_0Rows, q5_0::Q5_0, 2>,
                gemm::<gq::GemmQ5_0, 4, 4>,
            ),
            x16::X16_Q5_0,
        ),
        T::Q5_1 => row(
            decode::<q5_1::Q5_1Rows, q5_1::Q5_1, 2>,
            gemm::<gq::GemmQ5_1, 3, 4>,
        ),
        T::Q8_0 => with_x16(
            row(
                decode::<q8_0::Q8_0Rows, q8_0::Q8_0, 1>,
                gemm::<gq::GemmQ8_0, 4, 4>,
            ),
            x16::X16_Q8_0,
        ),
        T::Q4_K => row(
            decode::<kquants::Q4KRows, a2::Q4K, 2>,
            gemm::<gk::GemmQ4K, 4, 4>,
        ),
        T::Q5_K => row(
            decode::<kquants::Q5KRows, a2::Q5K, 2>,
            gemm::<gk::GemmQ5K, 4, 4>,
        ),
        T::Q6_K => row(
            decode::<kquants::Q6KRows, a2::Q6K, 2>,
            gemm::<gk::GemmQ6K, 4, 4>,
        ),
        // F32 prefill runs the decode kernel once per token (bit-identical to decode; see
        // `avx512_f32_per_token`).
        T::F32 => row(
            decode::<float::F32Rows, a2::F32, 1>,
            avx512_f32_per_token::<float::F32Rows, a2::F32, 1>,
        ),
        T::F16 => row(
            decode::<float::F16Rows, a2::F16, 1>,
            gemm::<gf::GemmF16, 4, 4>,
        ),
        T::BF16 => row(
            decode::<float::Bf16Rows, a2::Bf16, 1>,
            gemm::<gf::GemmBf16, 4, 4>,
        ),
        _ => SCALAR_ROW,
    }
}

/// The `neon` table (Raspberry Pi 3/4, Cortex-A53/A72). Quantized formats use the 4-row
/// tiles of `aarch64/gemm.rs` (`smull`/`smlal2` + `saddlp`) for decode (one token) and
/// prefill alike; the float formats the f32 FMA kernels of `aarch64/int.rs`, 4 rows per call
/// for decode and 4 rows × 4 tokens of f32 FMA accumulators (16 registers) per prefill tile.
#[cfg(target_arch = "aarch64")]
fn neon_row(ty: GgmlType) -> FormatKernels {
    use crate::aarch64::gemm::*;
    use crate::aarch64::neon as k;
    use crate::rows::dot_rows;
    use GgmlType as T;
    match ty {
        T::F32 => row(dot_rows::<k::F32, 4, 1, 4>, dot_rows::<k::F32, 4, 4, 4>),
        T::F16 => row(dot_rows::<k::F16, 4, 1, 4>, dot_rows::<k::F16, 4, 4, 4>),
        T::BF16 => row(dot_rows::<k::Bf16, 4, 1, 4>, dot_rows::<k::Bf16, 4, 4, 4>),
        T::Q4_0 => same(gemm::<NeonQ4_0>),
        T::Q4_1 => same(gemm::<NeonQ4_1>),
        T::Q5_0 => same(gemm::<NeonQ5_0>),
        T::Q5_1 => same(gemm::<NeonQ5_1>),
        T::Q8_0 => same(gemm::<NeonQ8_0>),
        T::Q4_K => same(gemm::<NeonQ4K>),
        T::Q5_K => same(gemm::<NeonQ5K>),
        T::Q6_K => same(gemm::<NeonQ6K>),
        _ => SCALAR_ROW,
    }
}

/// The `dotprod` table (Raspberry Pi 5, most phones). Quantized formats use the 4-row `sdot`
/// tiles of `aarch64/gemm.rs` for decode and prefill, except Q6_K decode; the float formats
/// use the plain NEON kernels.
#[cfg(target_arch = "aarch64")]
fn dotprod_row(ty: GgmlType) -> FormatKernels {
    use crate::aarch64::dotprod as k;
    use crate::aarch64::gemm::*;
    use crate::rows::dot_rows;
    use GgmlType as T;
    match ty {
        T::F32 | T::F16 | T::BF16 => neon_row(ty),
        T::Q4_0 => same(gemm::<DotQ4_0>),
        T::Q4_1 => same(gemm::<DotQ4_1>),
        T::Q5_0 => same(gemm::<DotQ5_0>),
        T::Q5_1 => same(gemm::<DotQ5_1>),
        T::Q8_0 => same(gemm::<DotQ8_0>),
        T::Q4_K => same(gemm::<DotQ4K>),
        T::Q5_K => same(gemm::<DotQ5K>),
        // Q6_K decode: 2 rows per call of the per-row kernel of `int.rs`, cheaper than the
        // 4-row tile (llvm-mca, Cortex-A76: 8.9 vs 9.7 cycles per 32 weights).
        T::Q6_K => row(dot_rows::<k::Q6K, 2, 1, 4>, gemm::<DotQ6K>),
        _ => SCALAR_ROW,
    }
}

/// The `i8mm` table (ARMv8.6 `smmla`: recent phones). Prefill uses the 4 rows × 4 tokens
/// `smmla` microkernels of `aarch64/gemm_i8mm.rs`; decode (one token: `smmla`'s second token
/// column would be wasted) uses the dotprod kernels, the float formats the NEON ones.
#[cfg(target_arch = "aarch64")]
fn i8mm_row(ty: GgmlType) -> FormatKernels {
    use crate::aarch64::gemm::gemm;
    use crate::aarch64::gemm_i8mm::*;
    use GgmlType as T;
    let dotprod = dotprod_row(ty);
    let prefill = |g: DotRowsFn| row(dotprod.decode, g);
    match ty {
        T::Q4_0 => prefill(gemm::<MmQ4_0>),
        T::Q4_1 => prefill(gemm::<MmQ4_1>),
        T::Q5_0 => prefill(gemm::<MmQ5_0>),
        T::Q5_1 => prefill(gemm::<MmQ5_1>),
        T::Q8_0 => prefill(gemm::<MmQ8_0>),
        T::Q4_K => prefill(gemm::<MmQ4K>),
        T::Q5_K => prefill(gemm::<MmQ5K>),
        T::Q6_K => prefill(gemm::<MmQ6K>),
        _ => dotprod,
    }
}

static SCALAR: Kernels = Kernels::new(
    Path::Scalar,
    formats::quantize_row,
    scalar_row,
    crate::attention::SCALAR,
);

#[cfg(target_arch = "x86_64")]
static AVX2: Kernels = Kernels::new(
    Path::Avx2,
    crate::x86::avx2::quantize::quantize_act,
    avx2_row,
    crate::attention::AVX2,
);

#[cfg(target_arch = "x86_64")]
static AVX512: Kernels = Kernels::new(
    Path::Avx512,
    crate::x86::avx2::quantize::quantize_act,
    avx512_row,
    crate::attention::AVX512,
);

#[cfg(target_arch = "aarch64")]
static NEON: Kernels = Kernels::new(
    Path::Neon,
    crate::aarch64::quantize::quantize_act,
    neon_row,
    crate::attention::NEON,
);

#[cfg(target_arch = "aarch64")]
static DOTPROD: Kernels = Kernels::new(
    Path::Dotprod,
    crate::aarch64::quantize::quantize_act,
    dotprod_row,
    crate::attention::NEON,
);

#[cfg(target_arch = "aarch64")]
static I8MM: Kernels = Kernels::new(
    Path::I8mm,
    crate::aarch64::quantize::quantize_act,
    i8mm_row,
    crate::attention::NEON,
);

/// The scalar reference table (what every other path is tested against).
pub fn scalar() -> &'static Kernels {
    &SCALAR
}

/// Whether this CPU has `feature` (a name from [`Path::required_features`] or
/// [`cpu_features`]); `false` for another architecture's features.
pub fn has_feature(feature: &str) -> bool {
    detect::has(feature)
}

/// The SIMD-relevant CPU features of this architecture and whether each was detected.
pub fn cpu_features() -> Vec<(&'static str, bool)> {
    detect::FEATURES
        .iter()
        .map(|&f| (f, detect::has(f)))
        .collect()
}

/// Whether `path` was compiled for this architecture and the CPU has its features.
pub fn is_available(path: Path) -> bool {
    path.arch().is_none_or(|a| a == std::env::consts::ARCH)
        && path.required_features().iter().all(|f| has_feature(f))
}

/// The kernel table of `path`, or `None` if it is for another architecture or the CPU lacks a
/// feature it needs. Tests use this to check every path the machine can run.
pub fn table(path: Path) -> Option<&'static Kernels> {
    if !is_available(path) {
        return None;
    }
    match path {
        Path::Scalar => Some(&SCALAR),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => Some(&AVX2),
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => Some(&AVX512),
        #[cfg(target_arch = "aarch64")]
        Path::Neon => Some(&NEON),
        #[cfg(target_arch = "aarch64")]
        Path::Dotprod => Some(&DOTPROD),
        #[cfg(target_arch = "aarch64")]
        Path::I8mm => Some(&I8MM),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Paths this machine can run, best last.
pub fn available_paths() -> Vec<Path> {
    Path::ALL
        .into_iter()
        .filter(|&p| table(p).is_some())
        .collect()
}

/// The fastest path this CPU can run.
pub fn best_path() -> Path {
    const PREFERENCE: [Path; 6] = [
        Path::Avx512,
        Path::Avx2,
        Path::I8mm,
        Path::Dotprod,
        Path::Neon,
        Path::Scalar,
    ];
    PREFERENCE
        .into_iter()
        .find(|&p| is_available(p))
        .unwrap_or(Path::Scalar)
}

/// Why `EDGEGEMMA_KERNELS` could not be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// The value names no path.
    UnknownPath(String),
    /// The path is for another architecture.
    WrongArch(Path),
    /// The CPU lacks features the path needs.
    MissingFeatures(Path, Vec<&'static str>),
}

impl std::fmt::Display for SelectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = Path::ALL.iter().map(|p| p.name()).collect();
        match self {
            SelectError::UnknownPath(v) => write!(
                f,
                "{ENV_VAR}={v:?} names no kernel path (known: {})",
                names.join(", ")
            ),
            SelectError::WrongArch(p) => write!(
                f,
                "{ENV_VAR}={p}: that path is for {}, this is {}",
                p.arch().unwrap_or("any"),
                std::env::consts::ARCH
            ),
            SelectError::MissingFeatures(p, missing) => write!(
                f,
                "{ENV_VAR}={p}: this CPU lacks {} (available paths: {})",
                missing.join(", "),
                available_paths()
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl std::error::Error for SelectError {}

/// The environment variable that forces a path.
pub const ENV_VAR: &str = "EDGEGEMMA_KERNELS";

/// The path `value` (an `EDGEGEMMA_KERNELS` setting) asks for, if this CPU can run it.
pub fn parse_override(value: &str) -> Result<Path, SelectError> {
    let path =
        Path::from_name(value.trim()).ok_or_else(|| SelectError::UnknownPath(value.into()))?;
    if path.arch().is_some_and(|a| a != std::env::consts::ARCH) {
        return Err(SelectError::WrongArch(path));
    }
    let missing: Vec<&'static str> = path
        .required_features()
        .iter()
        .copied()
        .filter(|f| !has_feature(f))
        .collect();
    if !missing.is_empty() {
        return Err(SelectError::MissingFeatures(path, missing));
    }
    Ok(path)
}

static CHOSEN: OnceLock<Result<&'static Kernels, SelectError>> = OnceLock::new();

/// Chooses the process's table once: the `EDGEGEMMA_KERNELS` path if set (an error if the CPU
/// cannot run it), else the best path. Programs call this at start-up to report a bad override
/// cleanly; later calls return the same answer.
pub fn select() -> Result<&'static Kernels, SelectError> {
    CHOSEN
        .get_or_init(|| {
            let path = match std::env::var(ENV_VAR) {
                Ok(v) if !v.trim().is_empty() => parse_override(&v)?,
                _ => best_path(),
            };
            Ok(table(path).expect("parse_override and best_path only return available paths"))
        })
        .clone()
}

/// The kernel table for this process, chosen on first use (see [`select`]). A library never
/// ends its host process: when `EDGEGEMMA_KERNELS` is refused, this says so on stderr (once)
/// and uses the best path. Programs call [`select`] at start-up to refuse a bad override
/// as an error instead (`edgegemma`, `edgegemma-convert` and the C API do).
pub fn kernels() -> &'static Kernels {
    match select() {
        Ok(k) => k,
        Err(e) => {
            let best = table(best_path()).expect("best_path only returns available paths");
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                eprintln!("edgegemma: warning: {e}; using the {} kernels", best.name);
            });
            best
        }
    }
}

/// A one-line description of the CPU (model name from `/proc/cpuinfo` where there is one).
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    if let Some(m) = field("model name").or_else(|| field("Model")) {
        return m;
    }
    // aarch64 Linux lists implementer/part codes rather than a name.
    match (field("CPU implementer"), field("CPU part")) {
        (Some(imp), Some(part)) => {
            let name = match (imp.as_str(), part.as_str()) {
                ("0x41", "0xd03") => " (Cortex-A53)",
                ("0x41", "0xd08") => " (Cortex-A72)",
                ("0x41", "0xd0b") => " (Cortex-A76)",
                ("0x41", "0xd05") => " (Cortex-A55)",
                ("0x41", "0xd41") => " (Cortex-A78)",
                ("0x41", "0xd46") => " (Cortex-A510)",
                ("0x41", "0xd47") => " (Cortex-A710)",
                ("0x41", "0xd4d") => " (Cortex-A715)",
                _ => "",
            };
            format!("CPU implementer {imp}, part {part}{name}")
        }
        _ => format!("unknown {} CPU", std::env::consts::ARCH),
    }
}

#[cfg(target_arch = "x86_64")]
mod detect {
    pub(super) const FEATURES: &[&str] = &[
        "sse4.2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "bmi2",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512vnni",
        "avx512bf16",
        "avxvnni",
    ];

    pub(super) fn has(feature: &str) -> bool {
        match feature {
            "sse4.2" => is_x86_feature_detected!("sse4.2"),
            "avx" => is_x86_feature_detected!("avx"),
            "avx2" => is_x86_feature_detected!("avx2"),
            "fma" => is_x86_feature_detected!("fma"),
            "f16c" => is_x86_feature_detected!("f16c"),
            "bmi2" => is_x86_feature_detected!("bmi2"),
            "avx512f" => is_x86_feature_detected!("avx512f"),
            "avx512bw" => is_x86_feature_detected!("avx512bw"),
            "avx512vl" => is_x86_feature_detected!("avx512vl"),
            "avx512vnni" => is_x86_feature_detected!("avx512vnni"),
            "avx512bf16" => is_x86_feature_detected!("avx512bf16"),
            "avxvnni" => is_x86_feature_detected!("avxvnni"),
            _ => false,
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod detect {
    pub(super) const FEATURES: &[&str] = &["neon", "fp16", "dotprod", "i8mm", "bf16", "sve"];

    pub(super) fn has(feature: &str) -> bool {
        use std::arch::is_aarch64_feature_detected as d;
        match feature {
            "neon" => d!("neon"),
            "fp16" => d!("fp16"),
            "dotprod" => d!("dotprod"),
            "i8mm" => d!("i8mm"),
            "bf16" => d!("bf16"),
            "sve" => d!("sve"),
            _ => false,
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod detect {
    pub(super) const FEATURES: &[&str] = &[];

    pub(super) fn has(_feature: &str) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Path::ALL {
            assert_eq!(Path::from_name(p.name()), Some(p));
        }
        assert_eq!(Path::from_name("sse"), None);
    }

    #[test]
    fn scalar_is_always_available_and_best_is_available() {
        assert!(table(Path::Scalar).is_some());
        assert!(table(best_path()).is_some());
        assert_eq!(table(best_path()).unwrap().path, best_path());
    }

    #[test]
    fn only_avx512_has_simd_x16_kernels_for_q4_0_q5_0_q8_0() {
        for p in available_paths() {
            let k = table(p).unwrap();
            for ty in GgmlType::ALL {
                let expected = p == Path::Avx512
                    && matches!(ty, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0);
                assert_eq!(k.interleaves(ty), expected, "{p} {ty}");
            }
        }
    }

    #[test]
    fn override_refuses_unknown_foreign_and_missing() {
        assert!(matches!(
            parse_override("fastest"),
            Err(SelectError::UnknownPath(_))
        ));
        let foreign = if cfg!(target_arch = "x86_64") {
            Path::Neon
        } else {
            Path::Avx2
        };
        assert_eq!(
            parse_override(foreign.name()),
            Err(SelectError::WrongArch(foreign))
        );
        assert_eq!(parse_override(" scalar "), Ok(Path::Scalar));
        for p in Path::ALL {
            match parse_override(p.name()) {
                Ok(q) => assert!(is_available(q)),
                Err(SelectError::MissingFeatures(q, missing)) => {
                    assert_eq!(q, p);
                    assert!(!missing.is_empty());
                    assert!(table(p).is_none());
                    let msg = SelectError::MissingFeatures(q, missing).to_string();
                    assert!(msg.contains("lacks"), "{msg}");
                }
                Err(SelectError::WrongArch(q)) => assert!(q.arch().is_some()),
                Err(e) => panic!("{e}"),
            }
        }
    }
}

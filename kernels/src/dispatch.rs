//! Run-time kernel selection: CPU features are detected once and one table of kernels is
//! chosen for the whole process.
//!
//! Paths, best first: `avx512` (AVX-512 BW/VL + VNNI) > `avx2` (AVX2 + FMA + F16C) on x86_64;
//! `i8mm` (ARMv8.6 `smmla`) > `dotprod` (ARMv8.2 `sdot`) > `neon` (ARMv8.0) on aarch64;
//! `scalar` everywhere. `EDGEGEMMA_KERNELS=<path>` forces one (for debugging and tests) and is
//! refused when the CPU lacks it. One binary runs on every CPU of its architecture: SIMD code is
//! compiled with `#[target_feature]` and only ever called through a table whose features were
//! detected.

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
    dot_rows_for: fn(GgmlType) -> DotRowsFn,
    gemm_for: fn(GgmlType) -> DotRowsFn,
    attention: AttentionFn,
}

impl Kernels {
    pub(crate) const fn new(
        path: Path,
        quantize_act: QuantizeActFn,
        dot_rows_for: fn(GgmlType) -> DotRowsFn,
        gemm_for: fn(GgmlType) -> DotRowsFn,
        attention: AttentionFn,
    ) -> Kernels {
        Kernels {
            name: path.name(),
            path,
            quantize_act,
            dot_rows_for,
            gemm_for,
            attention,
        }
    }

    /// The decode kernel for weights of type `ty` (one of the weight types
    /// `formats::vec_dot_type` accepts): built for one activation row streaming the weights
    /// once (it accepts any `n_act`).
    pub fn dot_rows(&self, ty: GgmlType) -> DotRowsFn {
        (self.dot_rows_for)(ty)
    }

    /// The prefill kernel for weights of type `ty`: built for many activation rows (a batch of
    /// tokens) against the same weights (it accepts any `n_act`, 1 included).
    pub fn gemm(&self, ty: GgmlType) -> DotRowsFn {
        (self.gemm_for)(ty)
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
        match self.path {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => crate::x86::avx512::x16_for(ty),
            _ => None,
        }
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

fn scalar_table(_ty: GgmlType) -> DotRowsFn {
    dot_rows_scalar
}

static SCALAR: Kernels = Kernels::new(
    Path::Scalar,
    formats::quantize_row,
    scalar_table,
    scalar_table,
    crate::attention::SCALAR,
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
        Path::Avx2 => Some(&crate::x86::avx2::KERNELS),
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => Some(&crate::x86::avx512::KERNELS),
        #[cfg(target_arch = "aarch64")]
        Path::Neon => Some(&crate::aarch64::neon::KERNELS),
        #[cfg(target_arch = "aarch64")]
        Path::Dotprod => Some(&crate::aarch64::dotprod::KERNELS),
        #[cfg(target_arch = "aarch64")]
        Path::I8mm => Some(&crate::aarch64::i8mm::KERNELS),
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

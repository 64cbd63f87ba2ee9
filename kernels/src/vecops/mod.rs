//! Element-wise and per-row vector ops of a forward pass, outside the matrix products: RMSNorm,
//! NeoX RoPE from per-position cos/sin tables, GELU (tanh form) and the GeGLU gate, the tanh
//! softcap, the logistic sigmoid, the RG-LRU decay pair `(e^l, √(1 − e^{2l}))`, residual add and
//! scale.
//!
//! One table per kernel path, chosen like the matrix kernels: [`vec_ops`] follows the
//! process's [`kernels()`](crate::dispatch::kernels) path, [`table`] hands out any path the CPU
//! can run (tests compare each with [`scalar`]). The aarch64 paths share the NEON table: none
//! of these ops uses dotprod or i8mm.
//!
//! - `scalar` is the reference: the defining formulas with libm (`tanhf`, `expf`, `expm1f`),
//!   the RMSNorm sum of squares in f64 as ggml accumulates it.
//! - The SIMD paths (`simd.rs`, written once over a lane type, instantiated per instruction
//!   set) compute `tanh`, `exp`, `expm1` with range reduction and polynomials; the RMSNorm sum
//!   of squares stays in f64 (converted lanes). Add, scale and RoPE do the reference's exact
//!   operations (no fused multiply-add), so they equal it bit for bit; the transcendental ops
//!   stay within the bounds `kernels/tests/vecops.rs` states.
//! - Every op is lane-position independent: an element's result depends only on its inputs,
//!   never on where it sits in the slice (tails are padded through a lane buffer and run the
//!   same code). Decoding one token and a batched forward therefore give identical bits.

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod scalar;
mod simd;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::dispatch::{self, Path};

/// One path's element-wise ops. Method preconditions (slice lengths) are programming
/// errors, checked with assertions.
pub struct VecOps {
    pub path: Path,
    pub(crate) rms_norm: fn(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]),
    pub(crate) rms_norm_in_place: fn(x: &mut [f32], w: &[f32], eps: f32),
    pub(crate) gelu: fn(x: &mut [f32]),
    pub(crate) geglu: fn(gate: &mut [f32], up: &[f32]),
    pub(crate) softcap: fn(x: &mut [f32], cap: f32),
    pub(crate) sigmoid: fn(x: &mut [f32]),
    pub(crate) decay: fn(l: &[f32], a: &mut [f32], m: &mut [f32]),
    pub(crate) add: fn(acc: &mut [f32], x: &[f32]),
    pub(crate) scale: fn(x: &mut [f32], s: f32),
    pub(crate) rope: fn(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]),
}

impl VecOps {
    /// `out = x / √(mean(x²) + eps) ⊙ w`, with `w` as stored (GGUF norm weights already hold
    /// `1 + w` where the model adds one).
    pub fn rms_norm(&self, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
        assert!(x.len() == w.len() && out.len() == x.len() && !x.is_empty());
        (self.rms_norm)(x, w, eps, out)
    }

    /// [`rms_norm`](Self::rms_norm) in place; the same bits as the out-of-place form.
    pub fn rms_norm_in_place(&self, x: &mut [f32], w: &[f32], eps: f32) {
        assert!(x.len() == w.len() && !x.is_empty());
        (self.rms_norm_in_place)(x, w, eps)
    }

    /// `x = gelu_tanh(x) = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
    pub fn gelu(&self, x: &mut [f32]) {
        (self.gelu)(x)
    }

    /// `gate = gelu_tanh(gate) ⊙ up`.
    pub fn geglu(&self, gate: &mut [f32], up: &[f32]) {
        assert_eq!(gate.len(), up.len());
        (self.geglu)(gate, up)
    }

    /// `x = cap · tanh(x / cap)`.
    pub fn softcap(&self, x: &mut [f32], cap: f32) {
        (self.softcap)(x, cap)
    }

    /// `x = 1 / (1 + e^{-x})`.
    pub fn sigmoid(&self, x: &mut [f32]) {
        (self.sigmoid)(x)
    }

    /// For `l ≤ 0`: `a = e^l` and `m = √(1 − e^{2l})`, the latter through `expm1` so it keeps
    /// its relative precision as `l → 0` (the RG-LRU's decay and input multiplier).
    pub fn decay(&self, l: &[f32], a: &mut [f32], m: &mut [f32]) {
        assert!(a.len() == l.len() && m.len() == l.len());
        (self.decay)(l, a, m)
    }

    /// `acc += x`.
    pub fn add(&self, acc: &mut [f32], x: &[f32]) {
        assert_eq!(acc.len(), x.len());
        (self.add)(acc, x)
    }

    /// `x *= s`.
    pub fn scale(&self, x: &mut [f32], s: f32) {
        (self.scale)(x, s)
    }

    /// NeoX ("rotate_half") RoPE of every `head_dim`-long head of `x` at one position: pairs
    /// `(j, j + r/2)` for `j < r/2 = cos.len()` turn by the angle whose cosine and sine are
    /// `cos[j]`, `sin[j]`; dims `≥ r` pass through (partial rotation).
    pub fn rope(&self, x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
        assert!(head_dim > 0 && x.len().is_multiple_of(head_dim));
        assert!(cos.len() == sin.len() && 2 * cos.len() <= head_dim);
        (self.rope)(x, head_dim, cos, sin)
    }
}

/// The reference table.
pub fn scalar() -> &'static VecOps {
    &scalar::VEC_OPS
}

/// The table of `path`, or `None` when this CPU cannot run it.
pub fn table(path: Path) -> Option<&'static VecOps> {
    if !dispatch::is_available(path) {
        return None;
    }
    match path {
        Path::Scalar => Some(&scalar::VEC_OPS),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => Some(&x86::AVX2),
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => Some(&x86::AVX512),
        #[cfg(target_arch = "aarch64")]
        Path::Neon => Some(&aarch64::NEON),
        #[cfg(target_arch = "aarch64")]
        Path::Dotprod => Some(&aarch64::DOTPROD),
        #[cfg(target_arch = "aarch64")]
        Path::I8mm => Some(&aarch64::I8MM),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The table of the process's kernel path (`EDGEGEMMA_KERNELS` applies here too).
pub fn vec_ops() -> &'static VecOps {
    let path = dispatch::kernels().path;
    table(path).expect("the chosen kernel path is available")
}

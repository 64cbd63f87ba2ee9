//! The forward passes' element-wise ops. The hot ones run in the kernels crate
//! ([`edgegemma_kernels::vecops`], one SIMD table per kernel path); this module keeps the
//! scalar one-value helpers, RoPE's per-batch cos/sin tables, the per-token-row threading, and
//! thin slice wrappers over the process's vector-op table.

use rayon::prelude::*;

pub use crate::kernels::vecops::{vec_ops, VecOps};

/// `√(2/π)`, the constant of the tanh GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// The tanh approximation of GELU that every Gemma uses (never the erf form, even where a
/// Gemma 1 config says `hidden_act: "gelu"`; the two differ by ~0.005), one
/// value, libm's tanh (the slices go through [`VecOps::gelu`]).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh())
}

/// `gate = gelu_tanh(gate) ⊙ up` through the process's vector ops.
pub fn geglu_in_place(gate: &mut [f32], up: &[f32]) {
    vec_ops().geglu(gate, up)
}

/// RMSNorm with the weight applied as stored: GGUF norm weights already hold `1 + w`. The mean
/// of squares is accumulated in f64, as ggml does.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    vec_ops().rms_norm(x, weight, eps, out)
}

/// In-place RMSNorm (see [`rms_norm`]).
pub fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    vec_ops().rms_norm_in_place(x, weight, eps)
}

pub fn softcap_in_place(x: &mut [f32], cap: f32) {
    vec_ops().softcap(x, cap)
}

pub fn add_in_place(acc: &mut [f32], x: &[f32]) {
    vec_ops().add(acc, x)
}

/// Adds `bias` to every row of `x` (rows of `bias.len()`).
pub fn add_bias_rows(x: &mut [f32], bias: &[f32]) {
    let ops = vec_ops();
    for row in x.chunks_exact_mut(bias.len()) {
        ops.add(row, bias);
    }
}

/// Numerically stable softmax in place.
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `log(1 + e^z)` without overflow.
#[inline]
pub fn softplus(z: f32) -> f32 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

#[inline]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Floats of per-token work a rayon task gets at least: 8192 floats (four RMSNorm rows of a
/// 2B model) are microseconds of SIMD work, far above the cost of a fork from inside the pool
/// (well under a microsecond, see `cli::common::with_threads`), and 512 tokens of 640-wide
/// rows still make 40 tasks for the threads to share.
const MIN_FLOATS_PER_TASK: usize = 8192;

/// Rows (of `row` floats) a task takes at least.
fn rows_per_task(row: usize) -> usize {
    (MIN_FLOATS_PER_TASK / row.max(1)).max(1)
}

/// Runs `f(t, row_t)` for every `row`-float row of `x`, the rows split over the rayon pool.
/// Results never depend on the split: each row is computed alone.
pub fn par_rows(x: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    x.par_chunks_mut(row)
        .with_min_len(rows_per_task(row))
        .enumerate()
        .for_each(|(t, r)| f(t, r));
}

/// Runs `f(t, a_t, b_t)` for every pair of rows (`a` in rows of `ra` floats, `b` of `rb`), the
/// pairs split over the rayon pool.
pub fn par_rows2(
    a: &mut [f32],
    ra: usize,
    b: &mut [f32],
    rb: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync + Send,
) {
    a.par_chunks_mut(ra)
        .zip(b.par_chunks_mut(rb))
        .with_min_len(rows_per_task(ra.max(rb)))
        .enumerate()
        .for_each(|(t, (x, y))| f(t, x, y));
}

/// Runs `f(t, x_t, out_t)` for every row of `x` (read) and `out` (written), both of `row`
/// floats, split over the rayon pool.
pub fn par_rows_from(
    x: &[f32],
    out: &mut [f32],
    row: usize,
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync + Send,
) {
    x.par_chunks(row)
        .zip(out.par_chunks_mut(row))
        .with_min_len(rows_per_task(row))
        .enumerate()
        .for_each(|(t, (x, o))| f(t, x, o));
}

/// Rotary position embedding in the NeoX ("rotate_half") layout: pairs `(j, j + r/2)` within
/// the first `r` dims of every head; dims `≥ r` pass through (RecurrentGemma rotates half).
/// The cos/sin of every (position, pair) of a batch are computed once by [`Rope::prepare`]
/// and shared by every head and layer, instead of one `sin_cos` per pair per head.
#[derive(Clone, Debug)]
pub struct Rope {
    /// `inv_freq[j] = base^(-2j/r) · freq_scale`, computed in f64 once.
    inv_freq: Vec<f32>,
    head_dim: usize,
    /// `cos[t · r/2 + j]`, `sin[…]`: the batch's positions, `max_batch` allocated up front.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// Positions the tables hold: `pos0 .. pos0 + n`.
    pos0: usize,
    n: usize,
}

impl Rope {
    /// Tables for up to `max_batch` positions per batch are allocated here, once.
    pub fn new(
        head_dim: usize,
        rot_dims: usize,
        base: f32,
        freq_scale: f32,
        max_batch: usize,
    ) -> Rope {
        let half = rot_dims / 2;
        let inv_freq = (0..half)
            .map(|j| {
                let f = 1.0 / (base as f64).powf(2.0 * j as f64 / rot_dims as f64);
                (f as f32) * freq_scale
            })
            .collect();
        Rope {
            inv_freq,
            head_dim,
            cos: vec![0.0; max_batch * half],
            sin: vec![0.0; max_batch * half],
            pos0: 0,
            n: 0,
        }
    }

    /// Fills the tables for positions `pos0 .. pos0 + n` (`n` at most `max_batch`).
    pub fn prepare(&mut self, pos0: usize, n: usize) {
        let half = self.inv_freq.len();
        assert!(
            n * half <= self.cos.len(),
            "RoPE batch larger than allocated"
        );
        self.pos0 = pos0;
        self.n = n;
        if half == 0 {
            return;
        }
        let inv_freq = &self.inv_freq;
        par_rows2(
            &mut self.cos[..n * half],
            half,
            &mut self.sin[..n * half],
            half,
            |t, cos, sin| {
                for j in 0..half {
                    // Angle in f32 from an f32 frequency, as HF computes it.
                    let theta = (pos0 + t) as f32 * inv_freq[j];
                    (sin[j], cos[j]) = theta.sin_cos();
                }
            },
        );
    }

    /// Rotates every head of `x` (`n_heads · head_dim` floats) for the batch's `t`-th position
    /// (`pos0 + t`, from the last [`prepare`](Self::prepare)).
    pub fn apply(&self, ops: &VecOps, x: &mut [f32], t: usize) {
        assert!(t < self.n, "position {t} of a batch of {}", self.n);
        let half = self.inv_freq.len();
        let (cos, sin) = (
            &self.cos[t * half..(t + 1) * half],
            &self.sin[t * half..(t + 1) * half],
        );
        ops.rope(x, self.head_dim, cos, sin);
    }

    /// The first position the tables hold.
    pub fn pos0(&self) -> usize {
        self.pos0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_tanh_matches_reference_points() {
        // Values from the tanh formula evaluated in f64.
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu_tanh(-1.0) + 0.158_808).abs() < 1e-5);
        assert_eq!(gelu_tanh(0.0), 0.0);
    }

    #[test]
    fn rope_rotates_half_split_pairs() {
        let mut rope = Rope::new(4, 4, 10000.0, 1.0, 2);
        rope.prepare(0, 2);
        let mut x = vec![1.0, 0.0, 0.0, 0.0];
        rope.apply(vec_ops(), &mut x, 1);
        // pair (0, 2) rotated by 1 radian (j = 0 has frequency 1)
        assert!((x[0] - 1f32.cos()).abs() < 1e-6);
        assert!((x[2] - 1f32.sin()).abs() < 1e-6);
        assert_eq!(x[1], 0.0);
    }

    #[test]
    fn rope_tables_follow_the_batch_start() {
        // Position 5 as the 3rd of a batch at 3 == as the 1st of a batch at 5, bit for bit.
        let mut a = Rope::new(8, 8, 10000.0, 0.125, 4);
        let mut b = a.clone();
        a.prepare(3, 4);
        b.prepare(5, 1);
        let x: Vec<f32> = (0..16).map(|i| i as f32 * 0.3 - 2.0).collect();
        let (mut xa, mut xb) = (x.clone(), x.clone());
        a.apply(vec_ops(), &mut xa, 2);
        b.apply(vec_ops(), &mut xb, 0);
        assert_eq!(xa, xb);
        assert_ne!(xa, x);
    }

    #[test]
    fn partial_rope_leaves_tail_untouched() {
        let mut rope = Rope::new(8, 4, 10000.0, 1.0, 8);
        rope.prepare(0, 8);
        let mut x: Vec<f32> = (0..8).map(|i| i as f32 + 1.0).collect();
        rope.apply(vec_ops(), &mut x, 7);
        assert_eq!(&x[4..], &[5.0, 6.0, 7.0, 8.0]);
        assert_ne!(x[0], 1.0);
    }

    #[test]
    fn rms_norm_uses_stored_weight() {
        let x = [3.0f32, 4.0];
        let mut out = [0.0f32; 2];
        rms_norm(&x, &[2.0, 2.0], 0.0, &mut out);
        let rms = (12.5f32).sqrt();
        assert!((out[0] - 2.0 * 3.0 / rms).abs() < 1e-6);
    }

    #[test]
    fn par_rows_visits_every_row_once_in_order() {
        let mut x = vec![0.0f32; 3 * 5000];
        par_rows(&mut x, 3, |t, r| r.iter_mut().for_each(|v| *v += t as f32));
        assert!(x.chunks(3).enumerate().all(|(t, r)| r == [t as f32; 3]));
    }

    #[test]
    fn softplus_is_stable() {
        assert!((softplus(100.0) - 100.0).abs() < 1e-4);
        assert!(softplus(-100.0) >= 0.0 && softplus(-100.0) < 1e-30);
        assert!((softplus(0.0) - std::f32::consts::LN_2).abs() < 1e-6);
    }
}

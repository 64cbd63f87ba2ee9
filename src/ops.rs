//! Small element-wise and reduction ops of the forward passes, all in f32.

/// `√(2/π)`, the constant of the tanh GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// The tanh approximation of GELU that every Gemma uses (never the erf form; PITFALLS §6).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh())
}

/// `out[i] = gelu_tanh(gate[i]) * up[i]` — the GeGLU gate, in place into `gate`.
pub fn geglu_in_place(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = gelu_tanh(*g) * u;
    }
}

/// RMSNorm with the weight applied as stored: GGUF norm weights already hold `1 + w`.
/// The mean of squares is accumulated in f64, as ggml does.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let scale = rms_scale(x, eps);
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// In-place RMSNorm (see [`rms_norm`]).
pub fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    let scale = rms_scale(x, eps);
    for (v, &w) in x.iter_mut().zip(weight) {
        *v = *v * scale * w;
    }
}

#[inline]
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// `c · tanh(x / c)`.
#[inline]
pub fn softcap(x: f32, cap: f32) -> f32 {
    cap * (x / cap).tanh()
}

pub fn softcap_in_place(x: &mut [f32], cap: f32) {
    for v in x {
        *v = softcap(*v, cap);
    }
}

pub fn add_in_place(acc: &mut [f32], x: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

pub fn add_bias_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        add_in_place(row, bias);
    }
}

#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums: lets the compiler vectorize and stays deterministic.
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for j in 0..8 {
            acc[j] += a[c * 8 + j] * b[c * 8 + j];
        }
    }
    let mut s = 0.0;
    for i in chunks * 8..a.len() {
        s += a[i] * b[i];
    }
    acc.iter().sum::<f32>() + s
}

/// Rotary position embedding in the NeoX ("rotate_half") layout: pairs `(j, j + r/2)` within
/// the first `r` dims of every head; dims `≥ r` pass through (RecurrentGemma rotates half).
#[derive(Clone, Debug)]
pub struct Rope {
    /// `inv_freq[j] = base^(-2j/r) · freq_scale`, computed in f64 once.
    inv_freq: Vec<f32>,
    head_dim: usize,
    rot_dims: usize,
}

impl Rope {
    pub fn new(head_dim: usize, rot_dims: usize, base: f32, freq_scale: f32) -> Rope {
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
            rot_dims,
        }
    }

    /// Rotates every head of `x` (`n_heads · head_dim` floats) for position `pos`.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let half = self.rot_dims / 2;
        for head in x.chunks_exact_mut(self.head_dim) {
            for j in 0..half {
                // Angle in f32 from an f32 frequency, as HF computes it.
                let theta = pos as f32 * self.inv_freq[j];
                let (sin, cos) = theta.sin_cos();
                let a = head[j];
                let b = head[j + half];
                head[j] = a * cos - b * sin;
                head[j + half] = b * cos + a * sin;
            }
        }
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
        let rope = Rope::new(4, 4, 10000.0, 1.0);
        let mut x = vec![1.0, 0.0, 0.0, 0.0];
        rope.apply(&mut x, 1);
        // pair (0, 2) rotated by 1 radian (j = 0 has frequency 1)
        assert!((x[0] - 1f32.cos()).abs() < 1e-6);
        assert!((x[2] - 1f32.sin()).abs() < 1e-6);
        assert_eq!(x[1], 0.0);
    }

    #[test]
    fn partial_rope_leaves_tail_untouched() {
        let rope = Rope::new(8, 4, 10000.0, 1.0);
        let mut x: Vec<f32> = (0..8).map(|i| i as f32 + 1.0).collect();
        rope.apply(&mut x, 7);
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
    fn softplus_is_stable() {
        assert!((softplus(100.0) - 100.0).abs() < 1e-4);
        assert!(softplus(-100.0) >= 0.0 && softplus(-100.0) < 1e-30);
        assert!((softplus(0.0) - std::f32::consts::LN_2).abs() < 1e-6);
    }
}

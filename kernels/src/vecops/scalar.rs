//! The reference: each op's defining formula in f32 with libm, the RMSNorm sum in f64.

use super::VecOps;
use crate::kernel_types::Path;

pub(super) static VEC_OPS: VecOps = VecOps {
    path: Path::Scalar,
    rms_norm,
    rms_norm_in_place,
    gelu,
    geglu,
    softcap,
    sigmoid,
    decay,
    add,
    scale,
    rope,
};

/// `√(2/π)`, the constant of the tanh GELU.
pub(super) const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh GELU.
pub(super) const GELU_CUBIC: f32 = 0.044715;

/// `1 / √(mean + eps)` from the f64 sum of squares of `n` values; every path ends with these
/// same f32 operations.
#[inline]
pub(super) fn rms_scale(sum_sq: f64, n: usize, eps: f32) -> f32 {
    let mean = (sum_sq / n as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

fn sum_squares(x: &[f32]) -> f64 {
    x.iter().map(|&v| (v as f64) * (v as f64)).sum()
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let s = rms_scale(sum_squares(x), x.len(), eps);
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(w) {
        *o = v * s * w;
    }
}

fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let s = rms_scale(sum_squares(x), x.len(), eps);
    for (v, &w) in x.iter_mut().zip(w) {
        *v = *v * s * w;
    }
}

#[inline]
fn gelu_one(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)).tanh())
}

fn gelu(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = gelu_one(*v));
}

fn geglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = gelu_one(*g) * u;
    }
}

fn softcap(x: &mut [f32], cap: f32) {
    x.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
}

fn sigmoid(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
}

fn decay(l: &[f32], a: &mut [f32], m: &mut [f32]) {
    for ((&l, a), m) in l.iter().zip(a).zip(m) {
        *a = l.exp();
        *m = (-(2.0 * l).exp_m1()).sqrt();
    }
}

fn add(acc: &mut [f32], x: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

fn scale(x: &mut [f32], s: f32) {
    x.iter_mut().for_each(|v| *v *= s);
}

fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for head in x.chunks_exact_mut(head_dim) {
        for j in 0..half {
            let (a, b) = (head[j], head[j + half]);
            head[j] = a * cos[j] - b * sin[j];
            head[j + half] = b * cos[j] + a * sin[j];
        }
    }
}

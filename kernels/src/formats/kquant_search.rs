//! The scale searches of llama.cpp's reference k-quant quantizers (`make_qkx2_quants`,
//! `make_qx_quants` without importance weights). Every f32 operation is done in the same order
//! as the C code so the chosen levels, and so the output bytes, are identical.

use super::nearest_int;

/// Below this magnitude a group is treated as all zero (ggml's `GROUP_MAX_EPS`).
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// Per-value weights Q4_K/Q5_K use for a 32-value sub-block: `rms(x) + |x_i|`.
pub(crate) fn subblock_weights(xs: &[f32]) -> [f32; 32] {
    let mut sum_x2 = 0.0f32;
    for &v in xs {
        sum_x2 += v * v;
    }
    let av_x = (sum_x2 / 32.0).sqrt();
    let mut weights = [0.0f32; 32];
    for (w, &v) in weights.iter_mut().zip(xs) {
        *w = av_x + v.abs();
    }
    weights
}

/// Weighted squared error of `x ~ scale * l + min`.
fn weighted_error(x: &[f32], weights: &[f32], levels: &[u8], scale: f32, min: f32) -> f32 {
    let mut err = 0.0f32;
    for ((&v, &w), &l) in x.iter().zip(weights).zip(levels) {
        let diff = scale * l as f32 + min - v;
        err += w * (diff * diff);
    }
    err
}

/// Asymmetric quantization of `x` to levels `0..=nmax` as `x ~ scale * l - the_min`, with the
/// offset never positive (the range always includes 0). Starts from the min/max fit, then tries
/// `nstep + 1` inverse scales `(nmax + rmin + rdelta * is) / (max - min)`, re-fits scale and
/// offset by weighted least squares for each, and keeps the smallest weighted squared error.
/// Writes the levels to `levels` and returns `(scale, the_min)`.
pub(crate) fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
    }
    let mut best_error = weighted_error(x, weights, levels, scale, min);
    let mut trial = [0u8; 32];
    let trial = &mut trial[..n];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((t, &v), &w) in trial.iter_mut().zip(x).zip(weights) {
            let l = nearest_int(iscale * (v - min)).clamp(0, nmax);
            *t = l as u8;
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let cur_error = weighted_error(x, weights, trial, this_scale, this_min);
            if cur_error < best_error {
                levels.copy_from_slice(trial);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Symmetric quantization of `x` to levels `-nmax..nmax` (stored with `+nmax`), weights `x^2`
/// (ggml's `rmse_type == 1`): the value of largest magnitude maps to `-nmax`, then 18 nearby
/// inverse scales `-(nmax + 0.1 * is) / max` are tried and the one maximising
/// `sum(w x l)^2 / sum(w l^2)` is kept. Writes the levels and returns the scale.
pub(crate) fn make_qx_quants(nmax: i32, x: &[f32], levels: &mut [u8]) -> f32 {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        levels.fill(0);
        return 0.0;
    }
    let fit = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let store = |iscale: f32, levels: &mut [u8]| {
        for (q, &v) in levels.iter_mut().zip(x) {
            *q = (nearest_int(iscale * v).clamp(-nmax, nmax - 1) + nmax) as u8;
        }
    };
    let iscale = -(nmax as f32) / max;
    store(iscale, levels);
    let (sumlx, suml2) = fit(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            store(iscale, levels);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Quantizes the 8 sub-block scales and mins of a Q4_K/Q5_K super-block to 6 bits against the
/// largest of each and packs them (layout in `q4_k::get_scale_min_k4`). Returns the f32
/// super-block scales `(max_scale / 63, max_min / 63)`.
pub(crate) fn pack_scale_mins(
    scales: &[f32; 8],
    mins: &[f32; 8],
    packed: &mut [u8; 12],
) -> (f32, f32) {
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for (&s, &m) in scales.iter().zip(mins) {
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    *packed = [0; 12];
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    (max_scale / 63.0, max_min / 63.0)
}

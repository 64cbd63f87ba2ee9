//! Every vector-op path this CPU can run (`vecops::table`) against the scalar reference.
//!
//! - Add, scale and RoPE do the reference's exact operations: equal bit for bit.
//! - RMSNorm: the f64 sum of squares is added in another order, so the scale may differ in its
//!   last bit: `|path − ref| ≤ 2^-21 |ref|` (a few ulps of the two roundings after it).
//! - Transcendental ops (GELU, GeGLU, softcap, sigmoid, RG-LRU decay) use polynomials instead
//!   of libm: `|path − ref| ≤ abs + rel · |ref|` with the bounds in `TOL_*` below, about 4×
//!   the largest error measured on these inputs (stated per op).
//! - Lane-position independence: the result for an element never depends on where it sits in
//!   the slice (whole slice == one call per element, bit for bit), which is what makes decode
//!   one token at a time equal the batched forward.
//!
//! Paths the CPU lacks are skipped and listed on stderr (`--nocapture`).

use edgegemma_kernels::dispatch::Path;
use edgegemma_kernels::vecops::{self, VecOps};
use edgegemma_test_support::rng::Rng;

/// Lengths around every lane count (4, 8, 16) and model-like sizes.
const LENS: [usize; 13] = [1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 33, 640, 1003];

/// The SIMD paths to check against the reference; prints the skipped ones.
fn paths(test: &str) -> Vec<&'static VecOps> {
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    for p in Path::ALL {
        match vecops::table(p) {
            Some(t) if p != Path::Scalar => run.push(t),
            Some(_) => {}
            None => skipped.push(p.name()),
        }
    }
    eprintln!(
        "{test}: checking paths [{}] against scalar; skipped (not this CPU/arch) [{}]",
        run.iter()
            .map(|t| t.path.name())
            .collect::<Vec<_>>()
            .join(", "),
        skipped.join(", ")
    );
    run
}

/// Inputs for an element-wise op: uniform over the range plus the special points.
fn inputs(rng: &mut Rng, n: usize, lo: f32, hi: f32, special: &[f32]) -> Vec<f32> {
    let mut x = rng.uniform_vec(n, lo, hi);
    for (v, &s) in x.iter_mut().zip(special) {
        *v = s;
    }
    x
}

/// Checks `|got − want| ≤ abs + rel·|want|` elementwise (panics naming the first element that
/// fails); returns the largest absolute difference and the largest relative one among
/// references of magnitude ≥ 1e-3.
fn check_close(
    what: &str,
    path: &VecOps,
    x: &[f32],
    got: &[f32],
    want: &[f32],
    abs: f32,
    rel: f32,
) -> (f32, f32) {
    let (mut worst_abs, mut worst_rel) = (0.0f32, 0.0f32);
    for i in 0..want.len() {
        let (g, w) = (got[i], want[i]);
        let d = (g - w).abs();
        assert!(
            d <= abs + rel * w.abs(),
            "{what} on {}: element {i} (input {:e}): got {g:e}, reference {w:e}, |diff| {d:e} > {abs:e} + {rel:e}·|ref|",
            path.path,
            x[i]
        );
        worst_abs = worst_abs.max(d);
        if w.abs() >= 1e-3 {
            worst_rel = worst_rel.max(d / w.abs());
        }
    }
    (worst_abs, worst_rel)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Runs `op` on the whole slice and on one element at a time: the bits must agree.
fn check_lane_independent(what: &str, path: &VecOps, x: &[f32], op: impl Fn(&mut [f32])) {
    let mut whole = x.to_vec();
    op(&mut whole);
    let mut single = x.to_vec();
    for v in single.chunks_mut(1) {
        op(v);
    }
    assert_eq!(
        bits(&whole),
        bits(&single),
        "{what} on {}: result depends on the lane",
        path.path
    );
}

// Bounds: about 4-8× the worst error measured on these inputs (AVX2/AVX-512, Zen 5).
/// GELU vs the reference: the reference's own `1 + tanh z` cancels for negative x and loses up
/// to ½|x|·2^-24 (3.6e-7 at |x| = 12); measured 4.8e-7 absolute.
const TOL_GELU: (f32, f32) = (1e-6, 1e-6);
/// GELU vs the formula in f64 (the path's `x / (1 + e^{-2z})` has no cancellation): relative
/// error over `1 + 2|z|` (exp's condition number), measured 1.2e-7.
const TOL_GELU_TRUE: f32 = 5e-7;
/// Softcap c·tanh(x/c): measured 3.3e-7 relative (7.6e-6 absolute near ±c).
const TOL_SOFTCAP: (f32, f32) = (1e-7, 1e-6);
/// Sigmoid on [-100, 100]: measured 1.5e-7 relative; results below 1e-37 are taken as 0 (the
/// path clamps e^{-x} at e^88, the reference overflows to ∞).
const TOL_SIGMOID: (f32, f32) = (1e-37, 1e-6);
/// Decay: a = e^l and m = √(1 − e^{2l}), both measured 1.2e-7 relative.
const TOL_DECAY: (f32, f32) = (1e-30, 1e-6);

#[test]
fn add_scale_and_rope_equal_the_reference_bit_for_bit() {
    let reference = vecops::scalar();
    let mut rng = Rng(0x1234_5678);
    for path in paths("add_scale_rope") {
        for &n in &LENS {
            let a = rng.uniform_vec(n, -10.0, 10.0);
            let b = rng.uniform_vec(n, -10.0, 10.0);
            let (mut got, mut want) = (a.clone(), a.clone());
            path.add(&mut got, &b);
            reference.add(&mut want, &b);
            assert_eq!(bits(&got), bits(&want), "add n={n} on {}", path.path);
            path.scale(&mut got, 0.37);
            reference.scale(&mut want, 0.37);
            assert_eq!(bits(&got), bits(&want), "scale n={n} on {}", path.path);
        }
        // (head_dim, rotated dims): full rotation, RecurrentGemma's half, odd and tiny halves.
        for &(hd, rot) in &[
            (4, 4),
            (8, 4),
            (6, 6),
            (16, 16),
            (32, 16),
            (64, 64),
            (128, 128),
            (256, 128),
            (256, 256),
            (40, 34),
        ] {
            for heads in [1, 3, 4] {
                let x = rng.uniform_vec(heads * hd, -3.0, 3.0);
                let angles = rng.uniform_vec(rot / 2, -100.0, 100.0);
                let cos: Vec<f32> = angles.iter().map(|t| t.cos()).collect();
                let sin: Vec<f32> = angles.iter().map(|t| t.sin()).collect();
                let (mut got, mut want) = (x.clone(), x.clone());
                path.rope(&mut got, hd, &cos, &sin);
                reference.rope(&mut want, hd, &cos, &sin);
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "rope hd={hd} rot={rot} heads={heads} on {}",
                    path.path
                );
                for h in 0..heads {
                    assert_eq!(
                        &got[h * hd + rot..(h + 1) * hd],
                        &x[h * hd + rot..(h + 1) * hd]
                    );
                }
            }
        }
    }
}

#[test]
fn rms_norm_matches_the_reference() {
    let reference = vecops::scalar();
    let mut rng = Rng(0xfeed);
    let mut worst = 0.0f32;
    for path in paths("rms_norm") {
        for &n in &LENS {
            for scale in [1e-3f32, 1.0, 300.0] {
                let x = rng.uniform_vec(n, -scale, scale);
                let w = rng.uniform_vec(n, -2.0, 3.0);
                let mut want = vec![0.0; n];
                reference.rms_norm(&x, &w, 1e-6, &mut want);
                let mut got = vec![0.0; n];
                path.rms_norm(&x, &w, 1e-6, &mut got);
                let (_, r) = check_close("rms_norm", path, &x, &got, &want, 0.0, 2f32.powi(-21));
                worst = worst.max(r);
                let mut in_place = x.clone();
                path.rms_norm_in_place(&mut in_place, &w, 1e-6);
                assert_eq!(
                    bits(&in_place),
                    bits(&got),
                    "in place differs, n={n} on {}",
                    path.path
                );
            }
        }
    }
    eprintln!("rms_norm: worst relative {worst:e}");
}

#[test]
fn gelu_and_geglu_match_the_reference() {
    let reference = vecops::scalar();
    let mut rng = Rng(0xabcdef);
    let special = [
        0.0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 0.3, -0.3, 5.0, -5.0, 12.0, -12.0, 30.0, -30.0, 1e4,
        -1e4,
    ];
    let (mut worst_abs, mut worst_rel, mut worst_true) = (0.0f32, 0.0f32, 0.0f32);
    for path in paths("gelu") {
        for &n in &LENS {
            let x = inputs(&mut rng, n, -12.0, 12.0, &special);
            let (mut got, mut want) = (x.clone(), x.clone());
            path.gelu(&mut got);
            reference.gelu(&mut want);
            let (a, r) = check_close("gelu", path, &x, &got, &want, TOL_GELU.0, TOL_GELU.1);
            worst_abs = worst_abs.max(a);
            worst_rel = worst_rel.max(r);
            let up = rng.uniform_vec(n, -4.0, 4.0);
            let (mut got, mut want) = (x.clone(), x.clone());
            path.geglu(&mut got, &up);
            reference.geglu(&mut want, &up);
            // The product with |up| ≤ 4 scales the absolute bound.
            check_close(
                "geglu",
                path,
                &x,
                &got,
                &want,
                4.0 * TOL_GELU.0,
                TOL_GELU.1 + 2f32.powi(-23),
            );
            check_lane_independent("gelu", path, &x, |v| path.gelu(v));
            // Against the formula in f64 the SIMD form is the more accurate one. Its error is
            // that of e^{-2z} from an f32 z: `2|z|` times z's rounding, so the bound grows with it.
            let mut got = x.clone();
            path.gelu(&mut got);
            for (i, (&v, &g)) in x.iter().zip(&got).enumerate() {
                let v = v as f64;
                let z = 0.797_884_560_802_865_4 * (v + 0.044715 * v * v * v);
                // ½(1 + tanh z) = 1/(1 + e^{-2z}): no cancellation in f64 either.
                let truth = v / (1.0 + (-2.0 * z).exp());
                let rel = ((g as f64 - truth) / truth).abs();
                if truth.abs() > 1e-30 {
                    let bound = TOL_GELU_TRUE as f64 * (1.0 + 2.0 * z.abs());
                    assert!(rel <= bound, "gelu vs f64 on {}: element {i} (input {v:e}): got {g:e}, truth {truth:e}, relative {rel:e} > {bound:e}", path.path);
                    worst_true = worst_true.max((rel / (1.0 + 2.0 * z.abs())) as f32);
                }
            }
        }
    }
    eprintln!("gelu: worst |diff| {worst_abs:e}, worst relative {worst_rel:e}; relative to f64 over (1 + 2|z|) {worst_true:e}");
}

#[test]
fn softcap_matches_the_reference() {
    let reference = vecops::scalar();
    let mut rng = Rng(0x5eed);
    let special = [
        0.0, -0.0, 1e-20, -1e-20, 0.01, 9.0, -9.0, 8.99, 1e3, -1e3, 1e30, -1e30,
    ];
    let (mut worst_abs, mut worst_rel) = (0.0f32, 0.0f32);
    for path in paths("softcap") {
        for cap in [30.0f32, 50.0] {
            for &n in &LENS {
                let x = inputs(&mut rng, n, -4.0 * cap, 4.0 * cap, &special);
                let (mut got, mut want) = (x.clone(), x.clone());
                path.softcap(&mut got, cap);
                reference.softcap(&mut want, cap);
                let (a, r) = check_close(
                    "softcap",
                    path,
                    &x,
                    &got,
                    &want,
                    TOL_SOFTCAP.0,
                    TOL_SOFTCAP.1,
                );
                worst_abs = worst_abs.max(a);
                worst_rel = worst_rel.max(r);
                // Small inputs, where tanh switches between its series and the exp form.
                let x = inputs(&mut rng, n, -0.5 * cap, 0.5 * cap, &special);
                let (mut got, mut want) = (x.clone(), x.clone());
                path.softcap(&mut got, cap);
                reference.softcap(&mut want, cap);
                let (a, r) = check_close(
                    "softcap",
                    path,
                    &x,
                    &got,
                    &want,
                    TOL_SOFTCAP.0,
                    TOL_SOFTCAP.1,
                );
                worst_abs = worst_abs.max(a);
                worst_rel = worst_rel.max(r);
                check_lane_independent("softcap", path, &x, |v| path.softcap(v, cap));
            }
        }
        let mut sat = vec![1e4f32, -1e4, 0.0, -0.0];
        path.softcap(&mut sat, 1.0);
        assert_eq!(
            bits(&sat),
            bits(&[1.0, -1.0, 0.0, -0.0]),
            "tanh saturates exactly and keeps the sign of zero"
        );
    }
    eprintln!("softcap: worst |diff| {worst_abs:e}, worst relative {worst_rel:e}");
}

#[test]
fn sigmoid_matches_the_reference() {
    let reference = vecops::scalar();
    let mut rng = Rng(0x51);
    let mut worst = (0.0f32, 0.0f32);
    let special = [
        0.0, -0.0, 1e-8, -1e-8, 20.0, -20.0, 87.0, -87.0, 100.0, -100.0, 1e30, -1e30,
    ];
    for path in paths("sigmoid") {
        for &n in &LENS {
            for range in [8.0f32, 100.0] {
                let x = inputs(&mut rng, n, -range, range, &special);
                let (mut got, mut want) = (x.clone(), x.clone());
                path.sigmoid(&mut got);
                reference.sigmoid(&mut want);
                let (a, r) = check_close(
                    "sigmoid",
                    path,
                    &x,
                    &got,
                    &want,
                    TOL_SIGMOID.0,
                    TOL_SIGMOID.1,
                );
                worst = (worst.0.max(a), worst.1.max(r));
                check_lane_independent("sigmoid", path, &x, |v| path.sigmoid(v));
            }
        }
    }
    eprintln!(
        "sigmoid: worst |diff| {:e}, worst relative {:e}",
        worst.0, worst.1
    );
}

#[test]
fn decay_matches_the_reference_and_keeps_precision_near_zero() {
    let reference = vecops::scalar();
    let mut rng = Rng(0xdeca);
    let mut worst = (0.0f32, 0.0f32);
    let special = [
        0.0, -0.0, -1e-12, -1e-8, -1e-6, -1e-4, -0.1, -0.17, -0.18, -0.5, -40.0, -80.0,
    ];
    for path in paths("decay") {
        for &n in &LENS {
            for range in [0.3f32, 30.0] {
                let l = inputs(&mut rng, n, -range, 0.0, &special);
                let (mut ga, mut gm) = (vec![0.0; n], vec![0.0; n]);
                let (mut wa, mut wm) = (vec![0.0; n], vec![0.0; n]);
                path.decay(&l, &mut ga, &mut gm);
                reference.decay(&l, &mut wa, &mut wm);
                let (_, ra) = check_close("decay a", path, &l, &ga, &wa, TOL_DECAY.0, TOL_DECAY.1);
                let (_, rm) = check_close("decay m", path, &l, &gm, &wm, TOL_DECAY.0, TOL_DECAY.1);
                worst = (worst.0.max(ra), worst.1.max(rm));
                // Whole slice vs one element at a time.
                let (mut sa, mut sm) = (vec![0.0; n], vec![0.0; n]);
                for i in 0..n {
                    path.decay(&l[i..i + 1], &mut sa[i..i + 1], &mut sm[i..i + 1]);
                }
                assert_eq!(
                    (bits(&sa), bits(&sm)),
                    (bits(&ga), bits(&gm)),
                    "decay depends on the lane"
                );
            }
        }
    }
    eprintln!("decay: worst relative a {:e}, m {:e}", worst.0, worst.1);
}

#[test]
fn reference_follows_the_formulas() {
    let r = vecops::scalar();
    let mut g = [1.0f32, -1.0, 0.0];
    r.gelu(&mut g);
    // Values of the tanh formula evaluated in f64.
    assert!((g[0] - 0.841_192).abs() < 1e-5 && (g[1] + 0.158_808).abs() < 1e-5 && g[2] == 0.0);
    let (mut a, mut m) = ([0.0f32; 2], [0.0f32; 2]);
    r.decay(&[0.0, -1e-6], &mut a, &mut m);
    assert_eq!((a[0], m[0]), (1.0, 0.0));
    // √(1 − e^{-2e-6}) ≈ √(2e-6): expm1 keeps the relative precision.
    assert!((m[1] / (2e-6f32).sqrt() - 1.0).abs() < 1e-5);
    let mut x = [3.0f32, 4.0];
    r.rms_norm_in_place(&mut x, &[2.0, 2.0], 0.0);
    assert!((x[0] - 6.0 / 12.5f32.sqrt()).abs() < 1e-6);
    let mut x = [1.0f32, 0.0, 0.0, 0.0];
    r.rope(&mut x, 4, &[1f32.cos(), 1.0], &[1f32.sin(), 0.0]);
    assert!((x[0] - 1f32.cos()).abs() < 1e-7 && (x[2] - 1f32.sin()).abs() < 1e-7);
}

//! Every kernel path this CPU can run (`dispatch::table`) against the scalar reference, for
//! every weight format, at odd sizes: one block, rows and activation counts that are not
//! multiples of the decode / prefill tiles, activation tiles crossed.
//!
//! Three kinds of check:
//! - activation quantizers: byte-identical to the reference quantizers;
//! - integer exactness: blocks with random quants and power-of-two scales, where every f32
//!   operation of both the reference and the kernel is exact, so results must be equal: any
//!   slip in the integer sums (a wrong nibble, bit, scale or zero point) shows;
//! - model-like data (gaussian weights quantized by the reference, activations quantized by
//!   the path): `|kernel - reference| <= 2 (m + 4) 2^-24 S + 2^-24 |reference|`, where `S`
//!   bounds the sum of the magnitudes of the f32 terms (products of scales and integer sums;
//!   for float formats the element products) and `m` is their number. That is the classical
//!   worst-case bound for summing `m` rounded products in any order (Higham, gamma_{m+2}),
//!   doubled to cover the rounding of the dequantized values `S` is computed from; the last
//!   term covers rounding the f64 reference sums of the float formats to f32.
//!
//! Paths the CPU lacks are skipped and listed on stderr (`--nocapture`).

use edgegemma_kernels::dispatch::{self, Kernels, Path};
use edgegemma_kernels::formats::{self, q4_k::get_scale_min_k4, vec_dot_type};
use edgegemma_kernels::{matmul_many_with, matmul_with, GgmlType, QuantizedActs, WeightMatrix};
use edgegemma_test_support::rng::Rng;

const WEIGHT_TYPES: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// (weight rows, activation rows): decode (1 activation) and prefill, around the tile sizes
/// (decode 2/4 rows, prefill 1×4 / 2×2 / 2×4 tiles).
const SHAPES: [(usize, usize); 14] = [
    (1, 1),
    (3, 1),
    (4, 1),
    (5, 1),
    (9, 1),
    (17, 1),
    (1, 2),
    (2, 2),
    (3, 3),
    (5, 4),
    (7, 5),
    (9, 9),
    (4, 8),
    (3, 13),
];

/// The paths to check; prints the skipped ones once per test.
fn paths(test: &str) -> Vec<&'static Kernels> {
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    for p in Path::ALL {
        match dispatch::table(p) {
            Some(k) => run.push(k),
            None => skipped.push(p.name()),
        }
    }
    eprintln!(
        "{test}: checking paths [{}]; skipped (not this CPU/arch) [{}]",
        run.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
        skipped.join(", ")
    );
    assert_eq!(run[0].path, Path::Scalar);
    run
}

fn block_counts(ty: GgmlType) -> &'static [usize] {
    match ty.block_size() {
        // 1, 2, 3, 7, 33 elements for the float formats.
        1 => &[1, 2, 3, 7, 8, 9, 33, 640],
        32 => &[1, 2, 3, 7, 20],
        _ => &[1, 2, 3, 9],
    }
}

fn row_bytes(ty: GgmlType, cols: usize) -> usize {
    ty.row_bytes(cols as u64).unwrap() as usize
}

/// Runs `k`'s decode kernel (`gemm == false`) or prefill kernel for `ty` on the given rows;
/// returns `out[t * n_w + r]`.
#[allow(clippy::too_many_arguments)]
fn run_dot_rows(
    k: &Kernels,
    gemm: bool,
    ty: GgmlType,
    cols: usize,
    w: &[u8],
    n_w: usize,
    acts: &[u8],
    n_act: usize,
) -> Vec<f32> {
    let act_ty = vec_dot_type(ty).unwrap();
    let mut out = vec![f32::NAN; n_w * n_act];
    // SAFETY: sizes are consistent and `out` is exclusively ours; `k` came from `table`.
    unsafe {
        (if gemm { k.gemm(ty) } else { k.dot_rows(ty) })(
            ty,
            cols,
            w,
            row_bytes(ty, cols),
            n_w,
            acts,
            row_bytes(act_ty, cols),
            n_act,
            out.as_mut_ptr(),
            n_w,
        )
    };
    out
}

fn reference(
    ty: GgmlType,
    cols: usize,
    w: &[u8],
    n_w: usize,
    acts: &[u8],
    n_act: usize,
) -> Vec<f32> {
    let (wb, ab) = (
        row_bytes(ty, cols),
        row_bytes(vec_dot_type(ty).unwrap(), cols),
    );
    let mut out = vec![0.0; n_w * n_act];
    for t in 0..n_act {
        for r in 0..n_w {
            out[t * n_w + r] = formats::vec_dot_scalar(
                ty,
                cols,
                &w[r * wb..(r + 1) * wb],
                &acts[t * ab..(t + 1) * ab],
            )
            .unwrap();
        }
    }
    out
}

fn f16(x: f32) -> [u8; 2] {
    formats::f32_to_f16_bits(x).to_le_bytes()
}

/// One weight row of random quants with power-of-two (or small integer) scales: every product
/// and partial sum below stays exact in f32.
fn exact_weight_row(ty: GgmlType, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let pow2 = |rng: &mut Rng| [0.5f32, 1.0, 2.0][rng.int(0, 2) as usize];
    let mut row = Vec::new();
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            let vals: Vec<f32> = (0..cols).map(|_| rng.int(-16, 16) as f32).collect();
            row = vec![0u8; row_bytes(ty, cols)];
            formats::quantize_row(ty, &vals, &mut row).unwrap();
        }
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => {
            for _ in 0..cols / 32 {
                let mut b = rng.bytes(ty.type_size());
                b[..2].copy_from_slice(&f16(pow2(rng)));
                row.extend(b);
            }
        }
        GgmlType::Q4_1 | GgmlType::Q5_1 => {
            for _ in 0..cols / 32 {
                let mut b = rng.bytes(ty.type_size());
                b[..2].copy_from_slice(&f16(pow2(rng)));
                b[2..4].copy_from_slice(&f16(rng.int(-4, 4) as f32));
                row.extend(b);
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            for _ in 0..cols / 256 {
                let mut b = rng.bytes(ty.type_size());
                b[..2].copy_from_slice(&f16(pow2(rng)));
                b[2..4].copy_from_slice(&f16(pow2(rng)));
                row.extend(b);
            }
        }
        GgmlType::Q6_K => {
            for _ in 0..cols / 256 {
                let mut b = rng.bytes(ty.type_size());
                b[208..210].copy_from_slice(&f16(pow2(rng)));
                row.extend(b);
            }
        }
        _ => unreachable!(),
    }
    row
}

/// One activation row in the vec-dot format of `ty`, values in `-range..=range` (never -128),
/// scales 1 or 2, consistent block sums.
fn exact_act_row(ty: GgmlType, cols: usize, range: i32, rng: &mut Rng) -> Vec<u8> {
    let act_ty = vec_dot_type(ty).unwrap();
    let mut row = Vec::new();
    match act_ty {
        GgmlType::F32 => {
            for _ in 0..cols {
                row.extend((rng.int(-16, 16) as f32).to_le_bytes());
            }
        }
        GgmlType::Q8_0 | GgmlType::Q8_1 => {
            for _ in 0..cols / 32 {
                let qs: Vec<i8> = (0..32).map(|_| rng.int(-range, range) as i8).collect();
                row.extend(f16([1.0f32, 2.0][rng.int(0, 1) as usize]));
                if act_ty == GgmlType::Q8_1 {
                    // s as the reference quantizer would store it, an integer here.
                    let sum: i32 = qs.iter().map(|&q| q as i32).sum();
                    row.extend(f16(sum as f32));
                }
                row.extend(qs.iter().map(|&q| q as u8));
            }
        }
        GgmlType::Q8_K => {
            for _ in 0..cols / 256 {
                let qs: Vec<i8> = (0..256).map(|_| rng.int(-range, range) as i8).collect();
                row.extend([1.0f32, 2.0][rng.int(0, 1) as usize].to_le_bytes());
                row.extend(qs.iter().map(|&q| q as u8));
                for g in qs.chunks(16) {
                    row.extend((g.iter().map(|&q| q as i16).sum::<i16>()).to_le_bytes());
                }
            }
        }
        _ => unreachable!(),
    }
    assert_eq!(row.len(), row_bytes(act_ty, cols));
    row
}

/// Activation value range for the exact test: small enough that the largest possible partial
/// sum (in units of the smallest scale product, 1/2) stays below 2^24.
fn exact_range(ty: GgmlType) -> i32 {
    match ty {
        GgmlType::Q4_K | GgmlType::Q5_K => 3,
        GgmlType::Q6_K => 1,
        _ => 127,
    }
}

/// Sum of |weight| * |activation| over dequantized rows, widened for formats with a block
/// minimum: an upper bound of the sum of the magnitudes of the f32 terms the kernels add up
/// (see the file comment).
fn magnitude(ty: GgmlType, cols: usize, w: &[u8], act: &[u8]) -> f64 {
    let act_ty = vec_dot_type(ty).unwrap();
    let mut wd = vec![0.0f32; cols];
    let mut ad = vec![0.0f32; cols];
    formats::dequantize_row(ty, w, &mut wd).unwrap();
    formats::dequantize_row(act_ty, act, &mut ad).unwrap();
    let half = |b: &[u8], off: usize| {
        formats::f16_bits_to_f32(u16::from_le_bytes([b[off], b[off + 1]])).abs() as f64
    };
    // Per value, what to add to |w| to bound the integer-part term's weight; plus separate terms.
    let mut widen = vec![0.0f64; cols];
    let mut separate = 0.0f64;
    match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 => {
            // Terms d_x d_y sum(q y) (|d q| <= |w| + |m|) and m s.
            for b in 0..cols / 32 {
                let m = half(w, b * ty.type_size() + 2);
                widen[32 * b..32 * b + 32].fill(m);
                separate += m * half(act, b * 36 + 2);
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            // Terms d d_y sum(sc q y) (|d sc q| <= |w| + dmin m) and dmin d_y sum(m y).
            for b in 0..cols / 256 {
                let blk = &w[b * ty.type_size()..(b + 1) * ty.type_size()];
                let scales: [u8; 12] = blk[4..16].try_into().unwrap();
                for j in 0..8 {
                    let m = get_scale_min_k4(j, &scales).1 as f64 * half(blk, 2);
                    widen[256 * b + 32 * j..256 * b + 32 * j + 32].fill(2.0 * m);
                }
            }
        }
        _ => {}
    }
    separate
        + wd.iter()
            .zip(&ad)
            .zip(&widen)
            .map(|((&x, &y), &e)| (x.abs() as f64 + e) * y.abs() as f64)
            .sum::<f64>()
}

#[test]
fn quantize_act_matches_reference_bytes() {
    let mut rng = Rng(0x5eed_0001);
    let kernels = paths("quantize_act");
    for n in [32usize, 256, 512, 640 + 256 * 3, 2304] {
        let mut inputs: Vec<(String, Vec<f32>)> = vec![
            ("gauss".into(), (0..n).map(|_| rng.gauss()).collect()),
            ("wide".into(), (0..n).map(|_| rng.gauss() * 1e4).collect()),
            ("zeros".into(), vec![0.0; n]),
            // Values landing exactly on halves after scaling: rounding mode matters.
            (
                "halves".into(),
                (0..n).map(|i| ((i % 255) as f32 - 127.0) * 0.5).collect(),
            ),
            (
                "ties".into(),
                (0..n)
                    .map(|i| {
                        if i % 7 == 0 {
                            -3.0
                        } else if i % 5 == 0 {
                            3.0
                        } else {
                            1.5
                        }
                    })
                    .collect(),
            ),
            ("tiny".into(), (0..n).map(|_| rng.gauss() * 1e-39).collect()),
            (
                "negmax".into(),
                (0..n)
                    .map(|i| if i % 50 == 3 { -9.0 } else { rng.gauss() })
                    .collect(),
            ),
        ];
        let mut special = inputs[0].1.clone();
        special[1] = f32::NAN;
        special[40 % n] = f32::INFINITY;
        inputs.push(("nan_inf".into(), special));
        for (name, x) in &inputs {
            for act_ty in [
                GgmlType::Q8_0,
                GgmlType::Q8_1,
                GgmlType::Q8_K,
                GgmlType::F32,
            ] {
                let Some(rb) = act_ty.row_bytes(n as u64) else {
                    continue;
                };
                let mut want = vec![0u8; rb as usize];
                formats::quantize_row(act_ty, x, &mut want).unwrap();
                for k in &kernels {
                    let mut got = vec![0xa5u8; rb as usize];
                    (k.quantize_act)(act_ty, x, &mut got).unwrap();
                    assert!(
                        got == want,
                        "{}: {act_ty} of {name} (n={n}) differs from the reference at byte {}",
                        k.name,
                        got.iter().zip(&want).position(|(a, b)| a != b).unwrap()
                    );
                }
            }
        }
    }
    // Size errors come back as errors on every path.
    for k in &kernels {
        let mut dst = vec![0u8; 33];
        assert!((k.quantize_act)(GgmlType::Q8_0, &[0.0; 32], &mut dst).is_err());
        assert!((k.quantize_act)(GgmlType::Q8_K, &[0.0; 32], &mut [0u8; 34]).is_err());
    }
}

#[test]
fn integer_parts_are_exact() {
    let mut rng = Rng(0x5eed_0002);
    let kernels = paths("integer_parts_are_exact");
    let mut checked = vec![0usize; kernels.len()];
    for ty in WEIGHT_TYPES {
        for &nb in block_counts(ty) {
            let cols = nb * ty.block_size();
            for &(n_w, n_act) in &SHAPES {
                let w: Vec<u8> = (0..n_w)
                    .flat_map(|_| exact_weight_row(ty, cols, &mut rng))
                    .collect();
                let acts: Vec<u8> = (0..n_act)
                    .flat_map(|_| exact_act_row(ty, cols, exact_range(ty), &mut rng))
                    .collect();
                let want = reference(ty, cols, &w, n_w, &acts, n_act);
                let (wb, ab) = (
                    row_bytes(ty, cols),
                    row_bytes(vec_dot_type(ty).unwrap(), cols),
                );
                for t in 0..n_act {
                    for r in 0..n_w {
                        let s = magnitude(
                            ty,
                            cols,
                            &w[r * wb..(r + 1) * wb],
                            &acts[t * ab..(t + 1) * ab],
                        );
                        assert!(
                            s < (1u64 << 23) as f64,
                            "{ty} exact-test precondition: S = {s}"
                        );
                    }
                }
                for (k, count) in kernels.iter().zip(&mut checked) {
                    for gemm in [false, true] {
                        let got = run_dot_rows(k, gemm, ty, cols, &w, n_w, &acts, n_act);
                        for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
                            assert!(
                                g == e,
                                "{} (gemm: {gemm}): {ty} cols={cols} rows={n_w} acts={n_act}: out[{i}] = {g}, reference {e}",
                                k.name
                            );
                        }
                        *count += got.len();
                    }
                }
            }
        }
    }
    for (k, n) in kernels.iter().zip(&checked) {
        eprintln!(
            "integer_parts_are_exact: {}: {n} dot products equal to the reference",
            k.name
        );
    }
}

/// Weight rows quantized by the reference from gaussian data with per-row scale variation.
fn model_like_weights(ty: GgmlType, cols: usize, n_w: usize, rng: &mut Rng) -> Vec<u8> {
    let mut w = vec![0u8; n_w * row_bytes(ty, cols)];
    for row in w.chunks_mut(row_bytes(ty, cols)) {
        let sigma = 0.02 * (1.0 + 3.0 * rng.unit() as f32);
        let x: Vec<f32> = (0..cols).map(|_| rng.gauss() * sigma).collect();
        formats::quantize_row(ty, &x, row).unwrap();
    }
    w
}

#[test]
fn model_like_data_within_the_rounding_bound() {
    let mut rng = Rng(0x5eed_0003);
    let kernels = paths("model_like_data");
    for ty in WEIGHT_TYPES {
        let act_ty = vec_dot_type(ty).unwrap();
        let mut sizes: Vec<usize> = block_counts(ty)
            .iter()
            .map(|nb| nb * ty.block_size())
            .collect();
        // Wide enough that prefill crosses an activation tile (256 KiB of rows).
        sizes.push(9216);
        for cols in sizes {
            // Long rows: prefill crosses activation tiles; decode walks rows one at a time
            // where tiles of several would outrun the prefetch distance.
            let shapes: &[(usize, usize)] = if cols >= 9216 {
                &[(5, 31), (7, 1)]
            } else {
                &SHAPES
            };
            for &(n_w, n_act) in shapes {
                let w = model_like_weights(ty, cols, n_w, &mut rng);
                let x: Vec<f32> = (0..n_act * cols).map(|_| rng.gauss()).collect();
                let mut acts = vec![0u8; n_act * row_bytes(act_ty, cols)];
                for (xr, ar) in x.chunks(cols).zip(acts.chunks_mut(row_bytes(act_ty, cols))) {
                    formats::quantize_row(act_ty, xr, ar).unwrap();
                }
                let want = reference(ty, cols, &w, n_w, &acts, n_act);
                let (wb, ab) = (row_bytes(ty, cols), row_bytes(act_ty, cols));
                let terms = if ty.block_size() == 1 {
                    cols
                } else {
                    2 * cols / ty.block_size()
                };
                for (k, gemm) in kernels[1..].iter().flat_map(|k| [(k, false), (k, true)]) {
                    let got = run_dot_rows(k, gemm, ty, cols, &w, n_w, &acts, n_act);
                    for t in 0..n_act {
                        for r in 0..n_w {
                            let i = t * n_w + r;
                            let s = magnitude(
                                ty,
                                cols,
                                &w[r * wb..(r + 1) * wb],
                                &acts[t * ab..(t + 1) * ab],
                            );
                            let eps = f32::EPSILON as f64 / 2.0;
                            let tol =
                                2.0 * (terms as f64 + 4.0) * eps * s + eps * (want[i].abs() as f64);
                            let err = (got[i] as f64 - want[i] as f64).abs();
                            assert!(
                                err <= tol,
                                "{}: {ty} cols={cols} rows={n_w} acts={n_act} out[{i}]: {} vs reference {} \
                                 (error {err:e} > bound {tol:e}, S = {s:e})",
                                k.name,
                                got[i],
                                want[i]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_threads_and_misaligned_weights() {
    let mut rng = Rng(0x5eed_0004);
    let kernels = paths("matmul");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for ty in WEIGHT_TYPES {
        // Large enough that matmul splits the rows into several tasks (it keeps >= 64 KiB of
        // work per task), with a ragged last task.
        let cols = 512;
        for (rows, n) in [(603usize, 1usize), (203, 6)] {
            let wq = model_like_weights(ty, cols, rows, &mut rng);
            // Shift the weights one byte so every block is misaligned.
            let mut shifted = vec![0u8; wq.len() + 1];
            shifted[1..].copy_from_slice(&wq);
            let x: Vec<f32> = (0..n * cols).map(|_| rng.gauss()).collect();
            let mut want = vec![0.0f32; rows * n];
            let mut acts_ref = QuantizedActs::new();
            acts_ref
                .quantize_with(dispatch::scalar(), ty, &x, n, cols)
                .unwrap();
            let w_ref = WeightMatrix::new(ty, &wq, rows, cols).unwrap();
            matmul_with(dispatch::scalar(), &w_ref, &acts_ref, &mut want).unwrap();
            for k in &kernels {
                let mut acts = QuantizedActs::new();
                acts.quantize_with(k, ty, &x, n, cols).unwrap();
                assert_eq!(
                    acts.bytes(),
                    acts_ref.bytes(),
                    "{}: {ty} activations",
                    k.name
                );
                let w = WeightMatrix::new(ty, &shifted[1..], rows, cols).unwrap();
                let mut single = vec![0.0f32; rows * n];
                matmul_with(k, &w, &acts, &mut single).unwrap();
                let mut threaded = vec![0.0f32; rows * n];
                pool.install(|| matmul_with(k, &w, &acts, &mut threaded))
                    .unwrap();
                // The same kernel on the same rows gives the same bits whatever the split.
                assert_eq!(single, threaded, "{}: {ty} threaded result differs", k.name);
                for (i, (&g, &e)) in single.iter().zip(&want).enumerate() {
                    let tol = 1e-4 * (1.0 + e.abs());
                    assert!((g - e).abs() <= tol, "{}: {ty} out[{i}] {g} vs {e}", k.name);
                }
            }
        }
    }
}

/// `matmul_many` (several matrices against the same activations, one fork-join for decode)
/// gives exactly what one `matmul` per matrix gives, on every path, threaded or not, with the
/// task boundaries falling inside and between matrices of different formats.
#[test]
fn matmul_many_matches_separate_matmuls() {
    let mut rng = Rng(0x5eed_0005);
    let kernels = paths("matmul_many");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let cols = 640;
    // Q4_0, Q5_0 and Q8_0 all take Q8_0 activations.
    let specs = [
        (GgmlType::Q8_0, 603usize),
        (GgmlType::Q4_0, 64),
        (GgmlType::Q5_0, 131),
    ];
    let data: Vec<Vec<u8>> = specs
        .iter()
        .map(|&(ty, rows)| model_like_weights(ty, cols, rows, &mut rng))
        .collect();
    let ws: Vec<WeightMatrix> = specs
        .iter()
        .zip(&data)
        .map(|(&(ty, rows), d)| WeightMatrix::new(ty, d, rows, cols).unwrap())
        .collect();
    for n in [1usize, 3] {
        let x: Vec<f32> = (0..n * cols).map(|_| rng.gauss()).collect();
        for k in &kernels {
            let mut acts = QuantizedActs::new();
            acts.quantize_with(k, GgmlType::Q8_0, &x, n, cols).unwrap();
            let want: Vec<Vec<f32>> = ws
                .iter()
                .map(|w| {
                    let mut o = vec![0.0f32; n * w.rows()];
                    matmul_with(k, w, &acts, &mut o).unwrap();
                    o
                })
                .collect();
            for threaded in [false, true] {
                let mut o: Vec<Vec<f32>> = ws.iter().map(|w| vec![0.0f32; n * w.rows()]).collect();
                let [o0, o1, o2] = &mut o[..] else {
                    unreachable!()
                };
                let mut run = || {
                    matmul_many_with(
                        k,
                        [&ws[0], &ws[1], &ws[2]],
                        &acts,
                        [&mut o0[..], &mut o1[..], &mut o2[..]],
                    )
                };
                if threaded {
                    pool.install(run).unwrap();
                } else {
                    run().unwrap();
                }
                assert_eq!(o, want, "{}: n={n} threaded={threaded}", k.name);
            }
            // Activations quantized for another format, or a short output, are refused.
            let q4_1 = model_like_weights(GgmlType::Q4_1, cols, 8, &mut rng);
            let w41 = WeightMatrix::new(GgmlType::Q4_1, &q4_1, 8, cols).unwrap();
            let (mut a, mut b) = (vec![0.0f32; n * ws[0].rows()], vec![0.0f32; n * 8]);
            assert!(matmul_many_with(k, [&ws[0], &w41], &acts, [&mut a[..], &mut b[..]]).is_err());
            let mut short = vec![0.0f32; n * ws[0].rows() - 1];
            assert!(matmul_many_with(k, [&ws[0]], &acts, [&mut short[..]]).is_err());
        }
    }
}

#[test]
fn env_override_is_parsed_and_refused_when_missing() {
    for p in Path::ALL {
        let ok = dispatch::parse_override(p.name()).is_ok();
        assert_eq!(ok, dispatch::table(p).is_some(), "{p}");
    }
    assert!(dispatch::parse_override("avx9000").is_err());
}

/// `EDGEGEMMA_EXPECT_PATHS` (set by `tools/cross-test.sh` for each emulated CPU) must list
/// exactly the paths this CPU runs, so an emulator or detection change that hides a feature
/// cannot make the checks above silently skip a path.
#[test]
fn expected_paths_are_available() {
    let avail: Vec<&str> = dispatch::available_paths()
        .iter()
        .map(|p| p.name())
        .collect();
    assert!(avail.contains(&"scalar"), "{avail:?}");
    assert!(avail.contains(&dispatch::best_path().name()), "{avail:?}");
    if let Ok(want) = std::env::var("EDGEGEMMA_EXPECT_PATHS") {
        assert_eq!(avail.join(","), want, "kernel paths available on this CPU");
    }
}

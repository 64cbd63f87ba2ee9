//! The prefill kernels (`Kernels::gemm`) of every path this CPU runs against the scalar
//! reference, around the edges of their register tiles and activation tiles: token counts
//! 1..=17, 31, 64, 257; weight row counts that are not multiples of the tile; rows of 1 to
//! several blocks / super-blocks (every tail of a multi-block step); activation tiles crossed;
//! weights and activations at odd addresses; and `matmul_with` on thread pools (its 2-D
//! split of rows and tokens).
//!
//! Data as in `simd_paths.rs`'s exact test: random quants, power-of-two scales and small
//! activations, so every f32 operation of the reference and the kernels is exact and the
//! results must be equal bit for bit (the precondition is checked).

use edgegemma_kernels::dispatch::{self, Kernels, Path};
use edgegemma_kernels::formats::{self, q4_k::get_scale_min_k4, vec_dot_type};
use edgegemma_kernels::{matmul_with, GgmlType, QuantizedActs, WeightMatrix};
use edgegemma_test_support::rng::Rng;

const WEIGHT_TYPES: [GgmlType; 11] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q5_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q5_K,
    GgmlType::Q4_1,
    GgmlType::Q5_1,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

fn paths() -> Vec<&'static Kernels> {
    let run: Vec<&'static Kernels> = Path::ALL.into_iter().filter_map(dispatch::table).collect();
    eprintln!(
        "gemm_paths: checking [{}]",
        run.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
    );
    run
}

fn row_bytes(ty: GgmlType, cols: usize) -> usize {
    ty.row_bytes(cols as u64).unwrap() as usize
}

fn f16(x: f32) -> [u8; 2] {
    formats::f32_to_f16_bits(x).to_le_bytes()
}

/// Random quants with scales 1/2, 1 or 2 (min / dmin small integers or powers of two).
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

/// An activation row in `ty`'s vec-dot format, values in `-range..=range`, scales 1 or 2.
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

/// Upper bound of the sum of the magnitudes of the f32 terms of one dot (see simd_paths.rs).
fn magnitude(ty: GgmlType, cols: usize, w: &[u8], act: &[u8]) -> f64 {
    let act_ty = vec_dot_type(ty).unwrap();
    let mut wd = vec![0.0f32; cols];
    let mut ad = vec![0.0f32; cols];
    formats::dequantize_row(ty, w, &mut wd).unwrap();
    formats::dequantize_row(act_ty, act, &mut ad).unwrap();
    let half = |b: &[u8], off: usize| {
        formats::f16_bits_to_f32(u16::from_le_bytes([b[off], b[off + 1]])).abs() as f64
    };
    let mut widen = vec![0.0f64; cols];
    let mut separate = 0.0f64;
    match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 => {
            for b in 0..cols / 32 {
                let m = half(w, b * ty.type_size() + 2);
                widen[32 * b..32 * b + 32].fill(m);
                separate += m * half(act, b * 36 + 2);
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
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

/// Activation range keeping the exact test's partial sums below 2^23 at `cols`.
fn exact_range(ty: GgmlType, cols: usize) -> i32 {
    match ty {
        GgmlType::Q4_K | GgmlType::Q5_K => 3,
        GgmlType::Q6_K => 1,
        _ if cols > 4096 => 1,
        _ => 127,
    }
}

/// Block counts per row: every tail of the 4-block steps and more than one step for the
/// 32-element formats, 1 to 3 super-blocks for the K-quants.
fn block_counts(ty: GgmlType) -> &'static [usize] {
    match ty.block_size() {
        1 => &[1, 7, 32, 33, 64],
        32 => &[1, 2, 3, 4, 5, 6, 7, 8, 9, 13],
        _ => &[1, 2, 3],
    }
}

/// `gemm` of `k`, with `misalign` on weights / activations copied to odd addresses (the
/// scalar path then sums in chunks: same exact results, other rounding).
#[allow(clippy::too_many_arguments)]
fn run_gemm(
    k: &Kernels,
    ty: GgmlType,
    cols: usize,
    w: &[u8],
    n_w: usize,
    acts: &[u8],
    n_act: usize,
    misalign: bool,
) -> Vec<f32> {
    let act_ty = vec_dot_type(ty).unwrap();
    let (wo, ao) = if misalign { (3, 1) } else { (0, 0) };
    let mut wbuf = vec![0u8; w.len() + wo];
    wbuf[wo..].copy_from_slice(w);
    let mut abuf = vec![0u8; acts.len() + ao];
    abuf[ao..].copy_from_slice(acts);
    let mut out = vec![f32::NAN; n_w * n_act];
    // SAFETY: sizes are consistent and `out` is exclusively ours; `k` came from `table`.
    unsafe {
        k.gemm(ty)(
            ty,
            cols,
            &wbuf[wo..],
            row_bytes(ty, cols),
            n_w,
            &abuf[ao..],
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

/// Checks every path's gemm on one random exact problem.
fn check_exact(
    kernels: &[&Kernels],
    ty: GgmlType,
    cols: usize,
    n_w: usize,
    n_act: usize,
    rng: &mut Rng,
) {
    let range = exact_range(ty, cols);
    let w: Vec<u8> = (0..n_w)
        .flat_map(|_| exact_weight_row(ty, cols, rng))
        .collect();
    let acts: Vec<u8> = (0..n_act)
        .flat_map(|_| exact_act_row(ty, cols, range, rng))
        .collect();
    let (wb, ab) = (
        row_bytes(ty, cols),
        row_bytes(vec_dot_type(ty).unwrap(), cols),
    );
    for t in 0..n_act {
        for r in 0..n_w {
            let s = magnitude(ty, cols, &w[r * wb..][..wb], &acts[t * ab..][..ab]);
            assert!(
                s < (1u64 << 23) as f64,
                "{ty} cols={cols}: precondition S = {s}"
            );
        }
    }
    let want = reference(ty, cols, &w, n_w, &acts, n_act);
    for k in kernels {
        let got = run_gemm(k, ty, cols, &w, n_w, &acts, n_act, true);
        for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == e,
                "{} gemm: {ty} cols={cols} rows={n_w} tokens={n_act}: out[{i}] (row {}, token {}) = {g}, reference {e}",
                k.name,
                i % n_w,
                i / n_w
            );
        }
    }
}

#[test]
fn token_counts_around_the_tiles() {
    let mut rng = Rng(0x6e44_0001);
    let kernels = paths();
    let mut counts: Vec<usize> = (1..=17).collect();
    counts.extend([31, 64, 257]);
    for ty in WEIGHT_TYPES {
        let cols = 3 * ty.block_size().max(32) * if ty.block_size() == 256 { 1 } else { 3 };
        for &n_act in &counts {
            check_exact(&kernels, ty, cols, 5, n_act, &mut rng);
        }
    }
}

#[test]
fn row_counts_and_row_lengths() {
    let mut rng = Rng(0x6e44_0002);
    let kernels = paths();
    for ty in WEIGHT_TYPES {
        for &nb in block_counts(ty) {
            let cols = nb * ty.block_size();
            for n_w in [1, 2, 3, 4, 5, 7, 8, 9, 13] {
                for n_act in [1, 4, 6] {
                    check_exact(&kernels, ty, cols, n_w, n_act, &mut rng);
                }
            }
        }
    }
}

/// Rows wide enough that the activations of 31 / 64 tokens span several activation tiles.
#[test]
fn activation_tiles_crossed() {
    let mut rng = Rng(0x6e44_0003);
    let kernels = paths();
    for ty in WEIGHT_TYPES {
        let cols = if ty.block_size() == 256 {
            256 * 9
        } else {
            9216
        };
        for n_act in [31, 64] {
            check_exact(&kernels, ty, cols, 6, n_act, &mut rng);
        }
    }
}

fn same_bits(got: &[f32], want: &[f32], at: &str) {
    assert_eq!(got.len(), want.len(), "{at}");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{at}: out[{i}] = {}, expected {}", got[i], want[i]);
    }
}

/// `matmul_with` on 2- and 3-thread pools splits rows and tokens; every split must give the
/// bits of one gemm call over the whole product, and those must match the reference within
/// the rounding of model-like data.
#[test]
fn matmul_splits_rows_and_tokens_on_pools() {
    let mut rng = Rng(0x6e44_0004);
    let kernels = paths();
    let pools: Vec<rayon::ThreadPool> = [2, 3]
        .iter()
        .map(|&n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .collect();
    for ty in WEIGHT_TYPES {
        let cols = if ty.block_size() == 256 { 1024 } else { 640 };
        // Wide (split by rows), narrow (split by tokens too), ragged everywhere.
        for (rows, n) in [(203usize, 37usize), (9, 255), (64, 129)] {
            let mut wq = vec![0u8; rows * row_bytes(ty, cols)];
            for row in wq.chunks_mut(row_bytes(ty, cols)) {
                let sigma = 0.02 * (1.0 + 3.0 * rng.unit() as f32);
                let x: Vec<f32> = (0..cols).map(|_| rng.gauss() * sigma).collect();
                formats::quantize_row(ty, &x, row).unwrap();
            }
            let x: Vec<f32> = (0..n * cols).map(|_| rng.gauss()).collect();
            let w = WeightMatrix::new(ty, &wq, rows, cols).unwrap();
            let mut acts_ref = QuantizedActs::new();
            acts_ref
                .quantize_with(dispatch::scalar(), ty, &x, n, cols)
                .unwrap();
            let mut want = vec![0.0f32; rows * n];
            matmul_with(dispatch::scalar(), &w, &acts_ref, &mut want).unwrap();
            for k in &kernels {
                let mut acts = QuantizedActs::new();
                acts.quantize_with(k, ty, &x, n, cols).unwrap();
                let whole = run_gemm(k, ty, cols, &wq, rows, acts.bytes(), n, false);
                let mut single = vec![0.0f32; rows * n];
                matmul_with(k, &w, &acts, &mut single).unwrap();
                same_bits(
                    &single,
                    &whole,
                    &format!("{}: {ty} {rows}x{n} one thread", k.name),
                );
                for pool in &pools {
                    let mut threaded = vec![f32::NAN; rows * n];
                    pool.install(|| matmul_with(k, &w, &acts, &mut threaded))
                        .unwrap();
                    let at = format!(
                        "{}: {ty} {rows}x{n} on {} threads",
                        k.name,
                        pool.current_num_threads()
                    );
                    same_bits(&threaded, &whole, &at);
                }
                for (i, (&g, &e)) in whole.iter().zip(&want).enumerate() {
                    let tol = 1e-4 * (1.0 + e.abs());
                    assert!((g - e).abs() <= tol, "{}: {ty} out[{i}] {g} vs {e}", k.name);
                }
            }
        }
    }
}

/// Random model-like weights (gaussian, quantized) for the two batch tests below.
fn model_like(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let mut wq = vec![0u8; rows * row_bytes(ty, cols)];
    for row in wq.chunks_mut(row_bytes(ty, cols)) {
        let x: Vec<f32> = (0..cols).map(|_| rng.gauss() * 0.03).collect();
        formats::quantize_row(ty, &x, row).unwrap();
    }
    wq
}

/// Token `t` of `x` (n rows) and the token after it, as a batch of two.
fn pair(x: &[f32], cols: usize, n: usize, t: usize) -> Vec<f32> {
    let o = (t + 1) % n;
    [&x[t * cols..(t + 1) * cols], &x[o * cols..(o + 1) * cols]].concat()
}

/// Greedy output must not depend on how a prompt is cut into batches (the server's prompt
/// cache feeds whatever the cache lacks; `eval` never cuts a piece of one token, see
/// `model::driver::batch_pieces`): in a batch of two or more tokens, each token's outputs
/// must be the same bits whatever shares the batch, on model-like (inexact) data.
#[test]
fn batched_outputs_do_not_depend_on_the_rest_of_the_batch() {
    let mut rng = Rng(0x6e44_0005);
    let kernels = paths();
    for ty in WEIGHT_TYPES {
        let cols = if ty.block_size() == 256 { 1024 } else { 640 };
        let rows = 37;
        let wq = model_like(ty, rows, cols, &mut rng);
        let w = WeightMatrix::new(ty, &wq, rows, cols).unwrap();
        for n in [3usize, 4, 5, 8, 9, 17, 64] {
            let x: Vec<f32> = (0..n * cols).map(|_| rng.gauss()).collect();
            for k in &kernels {
                let mut acts = QuantizedActs::new();
                acts.quantize_with(k, ty, &x, n, cols).unwrap();
                let mut batch = vec![0.0f32; rows * n];
                matmul_with(k, &w, &acts, &mut batch).unwrap();
                for t in 0..n {
                    let mut two = QuantizedActs::new();
                    two.quantize_with(k, ty, &pair(&x, cols, n, t), 2, cols)
                        .unwrap();
                    let mut got = vec![0.0f32; 2 * rows];
                    matmul_with(k, &w, &two, &mut got).unwrap();
                    same_bits(
                        &got[..rows],
                        &batch[t * rows..(t + 1) * rows],
                        &format!("{}: {ty} token {t} of {n} vs in a pair", k.name),
                    );
                }
            }
        }
    }
}

/// One token (decode) runs the streaming kernels, which on the SIMD paths sum the blocks in
/// another order than the batched tiles (two blocks per 512-bit vector against four, the
/// K-quants' minimums apart or folded in): not bit-identical, so within the rounding of two
/// orders of the same sum, `(blocks + 8) * 2^-22 * sum |terms|` (each order is within
/// `(blocks + 4) * 2^-23 * sum |terms|` of the exact value).
#[test]
fn one_token_is_within_rounding_of_its_column_of_the_batch() {
    let mut rng = Rng(0x6e44_0006);
    let kernels = paths();
    for ty in WEIGHT_TYPES {
        let cols = if ty.block_size() == 256 { 1024 } else { 640 };
        let rows = 37;
        let wq = model_like(ty, rows, cols, &mut rng);
        let w = WeightMatrix::new(ty, &wq, rows, cols).unwrap();
        let n = 9;
        let x: Vec<f32> = (0..n * cols).map(|_| rng.gauss()).collect();
        for k in &kernels {
            let mut acts = QuantizedActs::new();
            acts.quantize_with(k, ty, &x, n, cols).unwrap();
            let mut batch = vec![0.0f32; rows * n];
            matmul_with(k, &w, &acts, &mut batch).unwrap();
            let arb = acts.bytes().len() / n;
            for t in 0..n {
                let mut one = QuantizedActs::new();
                one.quantize_with(k, ty, &x[t * cols..(t + 1) * cols], 1, cols)
                    .unwrap();
                let mut got = vec![0.0f32; rows];
                matmul_with(k, &w, &one, &mut got).unwrap();
                for r in 0..rows {
                    let rb = row_bytes(ty, cols);
                    let m = magnitude(
                        ty,
                        cols,
                        &wq[r * rb..(r + 1) * rb],
                        &acts.bytes()[t * arb..(t + 1) * arb],
                    );
                    let tol = (cols / 32 + 8) as f64 * 2f64.powi(-22) * m;
                    let (g, e) = (got[r] as f64, batch[t * rows + r] as f64);
                    assert!(
                        (g - e).abs() <= tol,
                        "{}: {ty} row {r} token {t}: decode {g} vs batch {e} (tolerance {tol:.2e})",
                        k.name
                    );
                }
            }
        }
    }
}

//! The prefill (`gemm`) kernels of every path this CPU runs, at the edges of their tiles:
//! every token count 1..=17, 31 and 64 (partial token tiles of every size, several full ones),
//! weight-row counts that are not multiples of the row tile, and the same through `matmul`
//! on a thread pool (rows split over workers; the split must not change a bit).
//!
//! Data are exact: random quants with power-of-two scales and small activations, so every
//! f32 operation of the reference and of the kernels is exact and the results must be equal
//! whatever the order of the sums (see `simd_paths.rs` for the argument). Runs on the host
//! (scalar, avx2, avx512) and under qemu as three ARM cores (`tools/cross-test.sh`).

use edgegemma_kernels::dispatch::{self, Kernels, Path};
use edgegemma_kernels::formats::{self, vec_dot_type};
use edgegemma_kernels::{matmul_with, GgmlType, QuantizedActs, WeightMatrix};
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

/// Token counts: every partial tile size, a few full tiles, and counts past 16.
const N_ACTS: [usize; 19] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 64,
];

/// Weight-row counts: below, at and past the 4-row tile.
const N_WS: [usize; 6] = [1, 2, 3, 5, 8, 11];

fn paths() -> Vec<&'static Kernels> {
    let run: Vec<&'static Kernels> = Path::ALL.into_iter().filter_map(dispatch::table).collect();
    eprintln!(
        "gemm_tiles: checking paths [{}]",
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

/// Two blocks (two 256-blocks for the K-quants; 37 values for the float formats, an odd tail).
fn cols_for(ty: GgmlType) -> usize {
    match ty.block_size() {
        1 => 37,
        bs => 2 * bs,
    }
}

/// A weight row of random quants and power-of-two scales.
fn weight_row(ty: GgmlType, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let pow2 = |rng: &mut Rng| [0.5f32, 1.0, 2.0][rng.int(0, 2) as usize];
    if ty.block_size() == 1 {
        let vals: Vec<f32> = (0..cols).map(|_| rng.int(-16, 16) as f32).collect();
        let mut row = vec![0u8; row_bytes(ty, cols)];
        formats::quantize_row(ty, &vals, &mut row).unwrap();
        return row;
    }
    let mut row = Vec::new();
    for _ in 0..cols / ty.block_size() {
        let mut b = rng.bytes(ty.type_size());
        match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => {
                b[..2].copy_from_slice(&f16(pow2(rng)))
            }
            GgmlType::Q4_1 | GgmlType::Q5_1 => {
                b[..2].copy_from_slice(&f16(pow2(rng)));
                b[2..4].copy_from_slice(&f16(rng.int(-4, 4) as f32));
            }
            GgmlType::Q4_K | GgmlType::Q5_K => {
                b[..2].copy_from_slice(&f16(pow2(rng)));
                b[2..4].copy_from_slice(&f16(pow2(rng)));
            }
            GgmlType::Q6_K => b[208..210].copy_from_slice(&f16(pow2(rng))),
            _ => unreachable!(),
        }
        row.extend(b);
    }
    row
}

/// An activation row in `ty`'s dot format: values small enough that every sum is exact in
/// f32 (K-quants: their sums carry 6/8-bit sub-block scales), scales 1 or 2.
fn act_row(ty: GgmlType, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let range = match ty {
        GgmlType::Q4_K | GgmlType::Q5_K => 3,
        GgmlType::Q6_K => 1,
        _ => 127,
    };
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
                    row.extend(f16(qs.iter().map(|&q| q as i32).sum::<i32>() as f32));
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
                    row.extend(g.iter().map(|&q| q as i16).sum::<i16>().to_le_bytes());
                }
            }
        }
        _ => unreachable!(),
    }
    row
}

/// `k`'s prefill kernel for `ty`, `out[t * n_w + r]`.
fn run_gemm(
    k: &Kernels,
    ty: GgmlType,
    cols: usize,
    w: &[u8],
    n_w: usize,
    acts: &[u8],
    n_act: usize,
) -> Vec<f32> {
    let act_ty = vec_dot_type(ty).unwrap();
    let mut out = vec![f32::NAN; n_w * n_act];
    // SAFETY: sizes are consistent and `out` is ours; `k` came from `dispatch::table`.
    unsafe {
        k.gemm(ty)(
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

#[test]
fn gemm_tile_edges_equal_the_reference() {
    let mut rng = Rng(0x6e11_0001);
    let kernels = paths();
    for ty in WEIGHT_TYPES {
        let cols = cols_for(ty);
        let (wb, ab) = (
            row_bytes(ty, cols),
            row_bytes(vec_dot_type(ty).unwrap(), cols),
        );
        let max_w = *N_WS.iter().max().unwrap();
        let max_a = *N_ACTS.iter().max().unwrap();
        let w: Vec<u8> = (0..max_w)
            .flat_map(|_| weight_row(ty, cols, &mut rng))
            .collect();
        let acts: Vec<u8> = (0..max_a)
            .flat_map(|_| act_row(ty, cols, &mut rng))
            .collect();
        // Reference for every (row, token) pair once.
        let want: Vec<Vec<f32>> = (0..max_a)
            .map(|t| {
                (0..max_w)
                    .map(|r| {
                        formats::vec_dot_scalar(
                            ty,
                            cols,
                            &w[r * wb..(r + 1) * wb],
                            &acts[t * ab..(t + 1) * ab],
                        )
                        .unwrap()
                    })
                    .collect()
            })
            .collect();
        for k in &kernels {
            for &n_w in &N_WS {
                for &n_act in &N_ACTS {
                    let got =
                        run_gemm(k, ty, cols, &w[..n_w * wb], n_w, &acts[..n_act * ab], n_act);
                    for t in 0..n_act {
                        for r in 0..n_w {
                            let (g, e) = (got[t * n_w + r], want[t][r]);
                            assert!(
                                g == e,
                                "{}: {ty} rows={n_w} acts={n_act}: row {r} token {t} = {g}, reference {e}",
                                k.name
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Output rows of a sub-range of the weights land at the right stride and nothing else is
/// written (the kernels store 4 rows at a time).
#[test]
fn gemm_writes_only_its_rows() {
    let mut rng = Rng(0x6e11_0002);
    for k in paths() {
        for ty in WEIGHT_TYPES {
            let cols = cols_for(ty);
            let (wb, ab) = (
                row_bytes(ty, cols),
                row_bytes(vec_dot_type(ty).unwrap(), cols),
            );
            let (n_w, n_act, stride) = (6usize, 7usize, 13usize);
            let w: Vec<u8> = (0..n_w)
                .flat_map(|_| weight_row(ty, cols, &mut rng))
                .collect();
            let acts: Vec<u8> = (0..n_act)
                .flat_map(|_| act_row(ty, cols, &mut rng))
                .collect();
            let mut out = vec![-7.0f32; n_act * stride + 3];
            // SAFETY: every index t * stride + 2 + r (r < n_w, t < n_act) is inside `out`.
            unsafe {
                k.gemm(ty)(
                    ty,
                    cols,
                    &w,
                    wb,
                    n_w,
                    &acts,
                    ab,
                    n_act,
                    out.as_mut_ptr().add(2),
                    stride,
                )
            };
            for (i, &v) in out.iter().enumerate() {
                let inside = i >= 2 && (i - 2) % stride < n_w && (i - 2) / stride < n_act;
                if inside {
                    let (t, r) = ((i - 2) / stride, (i - 2) % stride);
                    let e = formats::vec_dot_scalar(
                        ty,
                        cols,
                        &w[r * wb..(r + 1) * wb],
                        &acts[t * ab..(t + 1) * ab],
                    )
                    .unwrap();
                    assert_eq!(v, e, "{}: {ty} row {r} token {t}", k.name);
                } else {
                    assert_eq!(v, -7.0, "{}: {ty} wrote outside its rows at {i}", k.name);
                }
            }
        }
    }
}

/// Through `matmul` on 3 threads: the rows are split into tasks (ragged last task), results
/// are bit-identical to one thread and equal to the scalar path on exact data.
#[test]
fn threaded_prefill_matches_single_thread_and_reference() {
    let mut rng = Rng(0x6e11_0003);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for ty in WEIGHT_TYPES {
        // Integer-valued activations whose blocks all reach +-127 (so their quantized form is
        // exact: scale 1, or -1 for Q8_K's signed maximum).
        let cols = if ty.block_size() == 1 { 64 } else { 256 };
        let rows = 203;
        for n in [5usize, 17] {
            let w: Vec<u8> = (0..rows)
                .flat_map(|_| weight_row(ty, cols, &mut rng))
                .collect();
            let small = if ty.block_size() == 1 { 16 } else { 3 };
            let x: Vec<f32> = (0..n * cols)
                .map(|i| {
                    if i % 32 == 0 {
                        127.0
                    } else {
                        rng.int(-small, small) as f32
                    }
                })
                .collect();
            let wm = WeightMatrix::new(ty, &w, rows, cols).unwrap();
            let mut want = vec![0.0f32; rows * n];
            let mut acts_ref = QuantizedActs::new();
            acts_ref
                .quantize_with(dispatch::scalar(), ty, &x, n, cols)
                .unwrap();
            matmul_with(dispatch::scalar(), &wm, &acts_ref, &mut want).unwrap();
            for k in paths() {
                let mut acts = QuantizedActs::new();
                acts.quantize_with(k, ty, &x, n, cols).unwrap();
                let mut single = vec![0.0f32; rows * n];
                matmul_with(k, &wm, &acts, &mut single).unwrap();
                let mut threaded = vec![0.0f32; rows * n];
                pool.install(|| matmul_with(k, &wm, &acts, &mut threaded))
                    .unwrap();
                assert_eq!(
                    single, threaded,
                    "{}: {ty} n={n}: threaded result differs",
                    k.name
                );
                for (i, (&g, &e)) in single.iter().zip(&want).enumerate() {
                    let tol = 1e-5 * (1.0 + e.abs());
                    assert!(
                        (g - e).abs() <= tol,
                        "{}: {ty} n={n} out[{i}] {g} vs {e}",
                        k.name
                    );
                }
            }
        }
    }
}

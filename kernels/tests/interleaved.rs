//! The interleaved 16-row layout (`formats::interleaved`) and its kernels on every path this
//! CPU runs (the x16 kernel of a table: SIMD on avx512, the scalar reference elsewhere).
//!
//! - Packing and unpacking are exact inverses for every type (random bytes, every bit).
//! - Exact data (random quants over the whole range, scales 1 or 2, activations whose Q8_0
//!   quantization is exact with small values): every f32 operation of the kernels and the
//!   reference is exact, so `matmul` of the packed matrix must equal the scalar reference on
//!   the ggml matrix bit for bit (the precondition, all partial sums below 2^24, is checked).
//! - Random data (gaussian weights and activations): within the stated tolerance of the
//!   reference (the SIMD kernel fuses `sumi * (d_x d_y) + acc` into one FMA: at most one
//!   rounding per block, `|err| <= nb * 2^-23 * sum_b |sumi_b d_x d_y|`), and one-token
//!   decode equal to each column of the batched product bit for bit, threaded or not.

use edgegemma_kernels::dispatch::{self, Kernels, Path};
use edgegemma_kernels::formats::{self, interleaved};
use edgegemma_kernels::{
    deinterleave_row, interleave, matmul_many_with, matmul_with, GgmlType, QuantizedActs,
    WeightMatrix, INTERLEAVE_ROWS,
};
use edgegemma_test_support::rng::Rng;

const TYPES: [GgmlType; 3] = [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0];

fn paths() -> Vec<&'static Kernels> {
    let run: Vec<&'static Kernels> = Path::ALL.into_iter().filter_map(dispatch::table).collect();
    eprintln!(
        "interleaved: checking [{}]",
        run.iter()
            .map(|k| format!(
                "{}{}",
                k.name,
                if k.interleaves(GgmlType::Q8_0) {
                    " (simd x16)"
                } else {
                    ""
                }
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    run
}

fn row_bytes(ty: GgmlType, cols: usize) -> usize {
    ty.row_bytes(cols as u64).unwrap() as usize
}

fn pack(ty: GgmlType, cols: usize, src: &[u8]) -> Vec<u8> {
    let mut dst = vec![0u8; src.len()];
    interleave(ty, cols, src, &mut dst).unwrap();
    dst
}

#[test]
fn pack_unpack_round_trip_is_exact() {
    let mut rng = Rng(0x5eed1);
    for ty in TYPES {
        for cols in [32, 96, 640, 4128] {
            for rows in [16, 48] {
                let src = rng.bytes(rows * row_bytes(ty, cols));
                let packed = pack(ty, cols, &src);
                assert_ne!(packed, src, "{ty} {cols}x{rows}: packing changed nothing");
                let mut back = vec![0u8; src.len()];
                interleaved::deinterleave(ty, cols, &packed, &mut back).unwrap();
                assert_eq!(back, src, "{ty} {cols}x{rows}");
                // Packed in pieces of whole groups (as threads at load would): same bytes.
                let gb = INTERLEAVE_ROWS * row_bytes(ty, cols);
                let mut pieces = vec![0u8; src.len()];
                for (s, d) in src.chunks(gb).zip(pieces.chunks_mut(gb)) {
                    interleave(ty, cols, s, d).unwrap();
                }
                assert_eq!(pieces, packed, "{ty} {cols}x{rows}: pieces");
                let w = WeightMatrix::new_interleaved(ty, &packed, rows, cols).unwrap();
                assert!(w.is_interleaved());
                let rb = row_bytes(ty, cols);
                let mut row = vec![0u8; rb];
                let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
                for r in [0, 1, 15, rows - 1] {
                    deinterleave_row(ty, cols, &packed, r, &mut row);
                    assert_eq!(row, src[r * rb..(r + 1) * rb], "{ty} {cols}x{rows} row {r}");
                    w.copy_row(r, &mut row);
                    assert_eq!(row, src[r * rb..(r + 1) * rb]);
                    w.dequantize_row(r, &mut a).unwrap();
                    formats::dequantize_row(ty, &src[r * rb..(r + 1) * rb], &mut b).unwrap();
                    assert_eq!(
                        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
}

#[test]
fn bad_shapes_are_refused() {
    let ty = GgmlType::Q8_0;
    let rb = row_bytes(ty, 64);
    let src = vec![0u8; 15 * rb];
    let mut dst = vec![0u8; 15 * rb];
    assert!(interleave(ty, 64, &src, &mut dst).is_err());
    assert!(interleave(GgmlType::Q4_1, 64, &src, &mut dst).is_err());
    assert!(WeightMatrix::new_interleaved(ty, &src, 15, 64).is_err());
    assert!(WeightMatrix::new_interleaved(GgmlType::Q4_K, &src, 16, 64).is_err());
    let src = vec![0u8; 16 * rb];
    let w = WeightMatrix::new_interleaved(ty, &src, 16, 64).unwrap();
    assert!(std::panic::catch_unwind(|| w.row(0).len()).is_err());
}

/// Random quants, scales 1 or 2.
fn exact_weights(ty: GgmlType, cols: usize, rows: usize, rng: &mut Rng) -> Vec<u8> {
    let mut w = Vec::new();
    for _ in 0..rows * cols / 32 {
        let mut b = rng.bytes(ty.type_size());
        let d = [1.0f32, 2.0][rng.int(0, 1) as usize];
        b[..2].copy_from_slice(&formats::f32_to_f16_bits(d).to_le_bytes());
        w.extend(b);
    }
    w
}

/// Activations whose Q8_0 quantization is exact: per block one value `±127 s` (so the scale
/// is `s`, 1 or 2) and the others `s * q` with `|q| <= range`.
fn exact_acts(cols: usize, n: usize, range: i32, rng: &mut Rng) -> Vec<f32> {
    let mut x = Vec::with_capacity(n * cols);
    for _ in 0..n * cols / 32 {
        let s = [1.0f32, 2.0][rng.int(0, 1) as usize];
        let big = rng.int(0, 31);
        for i in 0..32 {
            let q = if i == big {
                [127, -127][rng.int(0, 1) as usize]
            } else {
                rng.int(-range, range)
            };
            x.push(q as f32 * s);
        }
    }
    x
}

/// Per (token, row): sum over blocks of |sumi d_x d_y| (f64), by dequantizing.
fn magnitudes(ty: GgmlType, cols: usize, w: &[u8], rows: usize, acts: &QuantizedActs) -> Vec<f64> {
    let rb = row_bytes(ty, cols);
    let mut out = vec![0.0; rows * acts.n()];
    let mut wd = vec![0f32; cols];
    let mut ad = vec![0f32; cols];
    for t in 0..acts.n() {
        formats::dequantize_row(GgmlType::Q8_0, acts.row(t), &mut ad).unwrap();
        for r in 0..rows {
            formats::dequantize_row(ty, &w[r * rb..(r + 1) * rb], &mut wd).unwrap();
            out[t * rows + r] = wd
                .chunks(32)
                .zip(ad.chunks(32))
                .map(|(a, b)| {
                    a.iter()
                        .zip(b)
                        .map(|(&x, &y)| x as f64 * y as f64)
                        .sum::<f64>()
                        .abs()
                })
                .sum();
        }
    }
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// (cols, rows, tokens): 1 to 129 blocks (cols not multiples of 128 included), 1 to 32 groups,
/// every tail of the 8-token tile, a token tile crossed at 4096 columns (37 * 5120 B > 384 KiB
/// is not reached; 2 tiles need > 75 tokens there, see `token_tiles_are_crossed`).
const CASES: [(usize, usize, usize); 12] = [
    (32, 16, 1),
    (32, 16, 37),
    (64, 32, 9),
    (96, 48, 8),
    (160, 16, 7),
    (640, 64, 17),
    (640, 512, 3),
    (2080, 32, 5),
    (4096, 16, 2),
    (4128, 16, 11),
    (1024, 128, 1),
    (640, 16, 16),
];

fn ref_matmul(ty: GgmlType, cols: usize, w: &[u8], rows: usize, acts: &QuantizedActs) -> Vec<f32> {
    let m = WeightMatrix::new(ty, w, rows, cols).unwrap();
    let mut out = vec![f32::NAN; rows * acts.n()];
    matmul_with(dispatch::scalar(), &m, acts, &mut out).unwrap();
    out
}

fn packed_matmul(
    k: &Kernels,
    ty: GgmlType,
    cols: usize,
    packed: &[u8],
    rows: usize,
    acts: &QuantizedActs,
) -> Vec<f32> {
    let m = WeightMatrix::new_interleaved(ty, packed, rows, cols).unwrap();
    let mut out = vec![f32::NAN; rows * acts.n()];
    matmul_with(k, &m, acts, &mut out).unwrap();
    out
}

#[test]
fn packed_matmul_equals_reference_exactly_on_exact_data() {
    let mut rng = Rng(0x1a7e2);
    let paths = paths();
    for ty in TYPES {
        for (cols, rows, n) in CASES {
            let range = if cols > 1024 { 3 } else { 7 };
            let w = exact_weights(ty, cols, rows, &mut rng);
            let packed = pack(ty, cols, &w);
            let x = exact_acts(cols, n, range, &mut rng);
            let mut acts = QuantizedActs::new();
            acts.quantize_with(dispatch::scalar(), ty, &x, n, cols)
                .unwrap();
            // Precondition: every partial sum an integer below 2^24.
            let mag = magnitudes(ty, cols, &w, rows, &acts);
            assert!(
                mag.iter().all(|&m| m < (1 << 24) as f64),
                "{ty} {cols}: not exact"
            );
            let want = ref_matmul(ty, cols, &w, rows, &acts);
            for k in &paths {
                let got = packed_matmul(k, ty, cols, &packed, rows, &acts);
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{} {ty} {cols}x{rows} {n} tokens",
                    k.name
                );
            }
        }
    }
}

/// Gaussian weights quantized by the reference quantizer and gaussian activations.
/// Also the activation floats, so that one token can be quantized alone (to the same bytes:
/// rows are quantized independently).
fn random_case(
    ty: GgmlType,
    cols: usize,
    rows: usize,
    n: usize,
    seed: u64,
) -> (Vec<u8>, QuantizedActs, Vec<f32>) {
    let mut rng = Rng(seed);
    let rb = row_bytes(ty, cols);
    let x = rng.gauss_vec(rows * cols, 1.0);
    let mut w = vec![0u8; rows * rb];
    for (xr, wr) in x.chunks(cols).zip(w.chunks_mut(rb)) {
        formats::quantize_row(ty, xr, wr).unwrap();
    }
    let xa = rng.gauss_vec(n * cols, 1.0);
    let mut acts = QuantizedActs::new();
    acts.quantize_with(dispatch::scalar(), ty, &xa, n, cols)
        .unwrap();
    (w, acts, xa)
}

/// Token `t` of `x` quantized alone.
fn one_token(ty: GgmlType, x: &[f32], t: usize, cols: usize) -> QuantizedActs {
    let mut one = QuantizedActs::new();
    one.quantize_with(
        dispatch::scalar(),
        ty,
        &x[t * cols..(t + 1) * cols],
        1,
        cols,
    )
    .unwrap();
    one
}

#[test]
fn random_data_within_tolerance_and_decode_equals_batch_bitwise() {
    let paths = paths();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for ty in TYPES {
        for (i, (cols, rows, n)) in CASES.into_iter().enumerate() {
            let (w, acts, xa) = random_case(ty, cols, rows, n, 0x77 + i as u64);
            let packed = pack(ty, cols, &w);
            let want = ref_matmul(ty, cols, &w, rows, &acts);
            let mag = magnitudes(ty, cols, &w, rows, &acts);
            let nb = (cols / 32) as f64;
            for k in &paths {
                let got = packed_matmul(k, ty, cols, &packed, rows, &acts);
                for (j, ((&g, &r), &m)) in got.iter().zip(&want).zip(&mag).enumerate() {
                    let tol = nb * m * f32::EPSILON as f64;
                    assert!(
                        ((g - r) as f64).abs() <= tol,
                        "{} {ty} {cols}x{rows} {n} tokens, out {j}: {g} vs {r} (tol {tol})",
                        k.name
                    );
                }
                // The same product on a 2-thread pool (its splits of rows and tokens).
                let threaded = pool.install(|| packed_matmul(k, ty, cols, &packed, rows, &acts));
                assert_eq!(
                    bits(&threaded),
                    bits(&got),
                    "{} {ty} {cols}x{rows} threaded",
                    k.name
                );
                // Token by token (decode), on one and two threads.
                for t in 0..n {
                    let one = one_token(ty, &xa, t, cols);
                    assert_eq!(one.row(0), acts.row(t));
                    let d1 = packed_matmul(k, ty, cols, &packed, rows, &one);
                    let col = &got[t * rows..(t + 1) * rows];
                    assert_eq!(
                        bits(&d1),
                        bits(col),
                        "{} {ty} {cols}x{rows} token {t}",
                        k.name
                    );
                    if t == 0 {
                        let d2 = pool.install(|| packed_matmul(k, ty, cols, &packed, rows, &one));
                        assert_eq!(bits(&d2), bits(col), "{} {ty} decode threaded", k.name);
                    }
                }
            }
        }
    }
}

#[test]
fn token_tiles_are_crossed() {
    // 4096 columns: 5120 prepared bytes per token, 76 tokens per 384 KiB tile; 160 tokens
    // make 3 tiles.
    let (ty, cols, rows, n) = (GgmlType::Q4_0, 4096, 16, 160);
    let (w, acts, xa) = random_case(ty, cols, rows, n, 0x99);
    let packed = pack(ty, cols, &w);
    for k in paths().into_iter().filter(|k| k.interleaves(ty)) {
        let got = packed_matmul(k, ty, cols, &packed, rows, &acts);
        for t in [0, 75, 76, 77, 151, 152, 159] {
            let one = one_token(ty, &xa, t, cols);
            let d1 = packed_matmul(k, ty, cols, &packed, rows, &one);
            assert_eq!(bits(&d1), bits(&got[t * rows..(t + 1) * rows]), "token {t}");
        }
    }
}

#[test]
fn matmul_many_mixes_packed_and_ggml_matrices() {
    let (cols, n) = (640, 1);
    let ty = GgmlType::Q5_0;
    let (w1, acts, _) = random_case(ty, cols, 256, n, 0x11);
    let (w2, _, _) = random_case(ty, cols, 48, n, 0x12);
    let p1 = pack(ty, cols, &w1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for k in paths() {
        let m1 = WeightMatrix::new_interleaved(ty, &p1, 256, cols).unwrap();
        let m2 = WeightMatrix::new(ty, &w2, 48, cols).unwrap();
        let want1 = packed_matmul(k, ty, cols, &p1, 256, &acts);
        let mut want2 = vec![0f32; 48];
        matmul_with(k, &m2, &acts, &mut want2).unwrap();
        let (mut o1, mut o2) = (vec![f32::NAN; 256], vec![f32::NAN; 48]);
        pool.install(|| matmul_many_with(k, [&m1, &m2], &acts, [&mut o1, &mut o2]))
            .unwrap();
        assert_eq!(bits(&o1), bits(&want1), "{}", k.name);
        assert_eq!(bits(&o2), bits(&want2), "{}", k.name);
    }
}

//! Prefill matmul (a batch of tokens × a weight matrix) speed for every weight format at Gemma
//! shapes: the table's prefill kernel (`Kernels::gemm`) against its decode kernel
//! (`Kernels::dot_rows`, the path prefill took before it had its own kernels) on the same
//! batch, in the same run, alternating, one thread; then the whole `matmul` (prefill split
//! over a 2-thread pool). For Q4_0 / Q5_0 / Q8_0 also the x16 kernel (`Kernels::x16`) on the
//! matrix packed in the interleaved 16-row layout (`x16-1t`, and `x16/gemm` its speed-up over
//! `gemm-1t`, alternating with the others).
//!
//! `cargo bench --bench gemm` (plain harness; filter by format names, e.g. `-- q4_0 q8_0`).
//! `EDGEGEMMA_KERNELS` picks the path as for the runtime; `EDGEGEMMA_BENCH_TOKENS` the batch
//! (default 128); `EDGEGEMMA_BENCH_BIG=1` adds the Gemma-2B FFN shapes (slow). Each number is
//! the best of several runs of at least ~50 ms, in GOP/s = 2 · rows · cols · tokens / time
//! (thread CPU time for the one-thread cases, so other processes on a shared machine matter
//! less; wall clock for the pool).

use edgegemma::kernels::{self, formats, matmul_with, GgmlType, QuantizedActs, WeightMatrix};
use edgegemma::probe;
use std::time::Instant;

/// (cols, rows): Gemma 3 270M FFN up/gate, down, q, k/v projections.
const SHAPES: [(usize, usize); 4] = [(640, 2048), (2048, 640), (640, 1024), (640, 256)];
/// Gemma 2B FFN up/gate and down.
const BIG_SHAPES: [(usize, usize); 2] = [(2048, 16384), (16384, 2048)];

const FORMATS: [GgmlType; 11] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q5_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q4_1,
    GgmlType::Q5_1,
    GgmlType::Q5_K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

/// CPU time this thread has run, in ns (`edgegemma::probe::thread_cpu_ns`; 0 where the
/// platform has no per-thread clock).
fn thread_cpu_ns() -> u64 {
    probe::thread_cpu_ns().unwrap_or(0)
}

/// Deterministic pseudo-random gaussian-ish values.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = |k: u32| ((s >> (16 * k)) & 0xffff) as f32 / 65536.0;
            (u(0) + u(1) + u(2) + u(3) - 2.0) * 0.05
        })
        .collect()
}

/// A `rows × cols` matrix of `ty`: 64 distinct quantized rows repeated.
fn weights(ty: GgmlType, cols: usize, rows: usize) -> Vec<u8> {
    let rb = ty.row_bytes(cols as u64).unwrap() as usize;
    let distinct = rows.min(64);
    let mut base = vec![0u8; rb * distinct];
    let x = values(cols * distinct, 0x1234 + cols as u64);
    for (xr, wr) in x.chunks(cols).zip(base.chunks_mut(rb)) {
        formats::quantize_row(ty, xr, wr).unwrap();
    }
    let mut w = Vec::with_capacity(rb * rows);
    while w.len() < rb * rows {
        let take = (rb * rows - w.len()).min(base.len());
        w.extend_from_slice(&base[..take]);
    }
    w
}

/// Best time in seconds of `f` over `reps` runs, each repeating `f` until ~`min_ns` passed.
fn best_of(reps: usize, min_ns: u64, clock: fn() -> u64, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t0 = clock();
        let mut n = 0u64;
        loop {
            f();
            n += 1;
            let dt = clock() - t0;
            if dt >= min_ns {
                best = best.min(dt as f64 / n as f64 / 1e9);
                break;
            }
        }
    }
    best
}

fn wall_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tokens: usize = std::env::var("EDGEGEMMA_BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let mut shapes = SHAPES.to_vec();
    if std::env::var("EDGEGEMMA_BENCH_BIG").is_ok_and(|v| v == "1") {
        shapes.extend(BIG_SHAPES);
    }
    let k = kernels::kernels();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    println!(
        "gemm bench: path {}, {tokens} tokens; GOP/s (1 thread: thread CPU time; 2 threads: wall)",
        k.name
    );
    println!("{}", probe::CpuInfo::detect().summary());
    println!(
        "{:<6} {:>12} {:>10} {:>10} {:>8} {:>12} {:>10} {:>9}",
        "format", "cols x rows", "decode-1t", "gemm-1t", "ratio", "matmul-2t", "x16-1t", "x16/gemm"
    );
    for ty in FORMATS {
        let name = ty.to_string().to_lowercase();
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        for &(cols, rows) in &shapes {
            if !cols.is_multiple_of(ty.block_size()) {
                // K-quants need whole 256-element super-blocks (Gemma 3 270M's 640 is not).
                continue;
            }
            let wq = weights(ty, cols, rows);
            let w = WeightMatrix::new(ty, &wq, rows, cols).unwrap();
            let x = values(tokens * cols, 0x99 + cols as u64);
            let mut acts = QuantizedActs::new();
            acts.quantize_with(k, ty, &x, tokens, cols).unwrap();
            let mut out = vec![0.0f32; tokens * rows];
            let x16 = kernels::formats::interleaved::can_interleave(ty)
                && rows.is_multiple_of(kernels::INTERLEAVE_ROWS);
            let packed = if x16 {
                let mut p = vec![0u8; wq.len()];
                kernels::interleave(ty, cols, &wq, &mut p).unwrap();
                p
            } else {
                Vec::new()
            };
            let run_on = |f: kernels::dispatch::DotRowsFn, wq: &[u8], out: &mut [f32]| {
                // SAFETY: sizes are consistent (quantized above) and `out` is ours.
                unsafe {
                    f(
                        ty,
                        cols,
                        wq,
                        wq.len() / rows,
                        rows,
                        acts.bytes(),
                        acts.bytes().len() / tokens,
                        tokens,
                        out.as_mut_ptr(),
                        rows,
                    )
                }
            };
            let run = |f, out: &mut [f32]| run_on(f, &wq, out);
            let ops = 2.0 * (rows * cols * tokens) as f64;
            let (mut t_dec, mut t_gemm, mut t_x16) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
            // Alternate so a burst of load elsewhere hits both alike.
            for _ in 0..3 {
                t_dec = t_dec.min(best_of(1, 50_000_000, thread_cpu_ns, || {
                    run(k.dot_rows(ty), &mut out)
                }));
                t_gemm = t_gemm.min(best_of(1, 50_000_000, thread_cpu_ns, || {
                    run(k.gemm(ty), &mut out)
                }));
                if x16 {
                    t_x16 = t_x16.min(best_of(1, 50_000_000, thread_cpu_ns, || {
                        run_on(k.x16(ty), &packed, &mut out)
                    }));
                }
            }
            let t_mm = pool.install(|| {
                best_of(3, 50_000_000, wall_ns, || {
                    matmul_with(k, &w, &acts, &mut out).unwrap()
                })
            });
            let (x16_gops, x16_ratio) = if x16 {
                (
                    format!("{:.1}", ops / t_x16 / 1e9),
                    format!("{:.2}x", t_gemm / t_x16),
                )
            } else {
                ("-".into(), "-".into())
            };
            println!(
                "{:<6} {:>12} {:>10.1} {:>10.1} {:>7.2}x {:>12.1} {:>10} {:>9}",
                name,
                format!("{cols}x{rows}"),
                ops / t_dec / 1e9,
                ops / t_gemm / 1e9,
                t_dec / t_gemm,
                ops / t_mm / 1e9,
                x16_gops,
                x16_ratio
            );
        }
    }
}

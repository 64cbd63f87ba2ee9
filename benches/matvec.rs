//! Matrix × vector (decode) speed for every weight format at Gemma shapes, one and two threads,
//! next to the plain read bandwidth of the same bytes measured in the same run.
//!
//! `cargo bench --bench matvec` (criterion; filter with e.g. `-- q4_0`). Groups:
//! - `matvec/<fmt>/<cols>x<rows>/<threads>t`: one `matmul` of the weight matrix with one
//!   quantized activation row (throughput = weight bytes, in GB/s); `<fmt>-x16` is the same
//!   matrix packed in the interleaved 16-row layout (Q4_0 / Q5_0 / Q8_0: `Kernels::x16`), and
//!   the summary also gives how fast `interleave` packed it (single thread, GB/s). Calls cycle through copies
//!   of the matrix spanning 96 MiB (3× the 32 MiB L3 of the machines measured), so every call
//!   streams its weights from DRAM, as a decode step does;
//! - `read/<MB>/<threads>t`: summing a buffer of that size as `bench --mem-bw` does;
//! - `quantize_act/<fmt>/<cols>`: quantizing one activation row;
//! - `overhead/...`: the rayon fork-join of one call and a small decode-size matmul.
//!
//! After criterion's own report a table is printed: GB/s per format and shape for 1 and 2
//! threads and the ratio to the read bandwidth over the same bytes with the same thread count,
//! measured right after each case by `edgegemma::probe`, the probe of `edgegemma bench --mem-bw`
//! (one contiguous share per thread, u64 sums with eight accumulators, best of 8 passes).
//! `EDGEGEMMA_KERNELS` picks the kernel path as for the runtime.
//! Weights and probe buffer are in 2 MiB pages, as the runtime's are once packed at load;
//! `EDGEGEMMA_BENCH_PAGES=4k` puts the weights in 4 KiB pages instead.
//!
//! `EDGEGEMMA_BENCH_CLOCK=cpu` times the one-thread cases (matvec and read) by the thread's
//! CPU time instead of the wall clock: on a machine shared with other busy processes the wall
//! clock mostly measures them. Run two-thread numbers on an otherwise idle machine.

use criterion::{BenchmarkId, Criterion, Throughput};
use edgegemma::kernels::{self, formats, matmul, GgmlType, QuantizedActs, WeightMatrix};
use edgegemma::probe;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// (cols, rows): Gemma 3 270M FFN up/gate and down, Gemma-2B FFN up/gate and down, and the tied
/// 262144-token output projection of Gemma 3.
const SHAPES: [(usize, usize); 5] = [
    (640, 2048),
    (2048, 640),
    (2048, 16384),
    (16384, 2048),
    (640, 262144),
];

/// Each matvec cycles through enough copies of its matrix to span this many bytes, so every
/// call streams its weights from DRAM as a decode step does (a model's layers together are far
/// larger than the 32 MiB L3 of the machines measured), not from a cache the previous call
/// filled.
const SPAN_BYTES: usize = 96 << 20;

const FORMATS: [GgmlType; 11] = [
    GgmlType::Q4_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q5_0,
    GgmlType::Q4_1,
    GgmlType::Q5_1,
    GgmlType::Q5_K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

/// The weight formats and layouts measured: every format in ggml rows, and the three with an
/// interleaved layout packed too (`true`).
fn variants() -> Vec<(GgmlType, bool)> {
    FORMATS
        .iter()
        .flat_map(|&ty| {
            let x16 = formats::interleaved::can_interleave(ty);
            [(ty, false)].into_iter().chain(x16.then_some((ty, true)))
        })
        .collect()
}

fn variant_name(ty: GgmlType, packed: bool) -> String {
    format!("{}{}", ty.name(), if packed { "-x16" } else { "" })
}

/// Seconds per byte of the `interleave` calls that packed the bench's matrices, by variant id.
static PACK: Mutex<BTreeMap<String, f64>> = Mutex::new(BTreeMap::new());

/// Per-iteration times of every sample criterion took, by benchmark id.
static SAMPLES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(id: &str, per_iter: f64) {
    SAMPLES
        .lock()
        .unwrap()
        .entry(id.to_string())
        .or_default()
        .push(per_iter);
}

/// Whether one-thread cases are timed by thread CPU time (`EDGEGEMMA_BENCH_CLOCK=cpu`).
fn cpu_clock() -> bool {
    std::env::var("EDGEGEMMA_BENCH_CLOCK").is_ok_and(|v| v == "cpu")
}

/// Times `f` by the wall clock, or for one thread with `EDGEGEMMA_BENCH_CLOCK=cpu` by this
/// thread's CPU time (falling back to the wall clock where that is not available).
fn timed(threads: usize, f: impl FnOnce()) -> Duration {
    let cpu0 = (threads == 1 && cpu_clock())
        .then(probe::thread_cpu_ns)
        .flatten();
    let t = Instant::now();
    f();
    let wall = t.elapsed();
    match (cpu0, cpu0.and(probe::thread_cpu_ns())) {
        (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
        _ => wall,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Deterministic pseudo-random gaussian-ish values.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // Sum of 4 uniforms: roughly gaussian, cheap.
            let u = |k: u32| ((s >> (16 * k)) & 0xffff) as f32 / 65536.0;
            (u(0) + u(1) + u(2) + u(3) - 2.0) * 0.05
        })
        .collect()
}

/// `copies` back-to-back `rows × cols` matrices of `ty`: 64 distinct quantized rows repeated
/// (the values do not matter for speed, and quantizing 168M values per format would dominate
/// the run).
fn weights(
    ty: GgmlType,
    cols: usize,
    rows: usize,
    copies: usize,
    packed: bool,
) -> memmap2::MmapMut {
    let rb = ty.row_bytes(cols as u64).unwrap() as usize;
    let distinct = rows.min(64);
    let mut base = vec![0u8; rb * distinct];
    let x = values(cols * distinct, 0x1234 + cols as u64);
    for (xr, wr) in x.chunks(cols).zip(base.chunks_mut(rb)) {
        formats::quantize_row(ty, xr, wr).unwrap();
    }
    let total = rb * rows * copies;
    let mut w = page_buf(total);
    for piece in w.chunks_mut(base.len()) {
        piece.copy_from_slice(&base[..piece.len()]);
    }
    if packed {
        let mut p = page_buf(total);
        p.fill(0);
        let t = Instant::now();
        kernels::interleave(ty, cols, &w, &mut p).unwrap();
        let secs = t.elapsed().as_secs_f64();
        PACK.lock()
            .unwrap()
            .insert(format!("{}/{cols}x{rows}", ty.name()), secs / total as f64);
        return p;
    }
    w
}

/// Anonymous memory of `bytes` bytes in the page size the runtime's weights get: 2 MiB pages
/// (`model::weights::PackArena`), or 4 KiB pages with `EDGEGEMMA_BENCH_PAGES=4k` to compare.
/// Unwritten, so the caller fills it (an untouched mapping reads one shared zero page).
fn page_buf(bytes: usize) -> memmap2::MmapMut {
    let m = memmap2::MmapMut::map_anon(bytes.max(1)).expect("anonymous mapping for the bench");
    #[cfg(target_os = "linux")]
    let _ = m.advise(if small_pages() {
        memmap2::Advice::NoHugePage
    } else {
        memmap2::Advice::HugePage
    });
    m
}

/// Whether `EDGEGEMMA_BENCH_PAGES=4k` asks for 4 KiB pages.
fn small_pages() -> bool {
    std::env::var("EDGEGEMMA_BENCH_PAGES").is_ok_and(|v| v == "4k")
}

/// How many copies of a `bytes`-byte matrix span [`SPAN_BYTES`].
fn copies_for(bytes: usize) -> usize {
    SPAN_BYTES.div_ceil(bytes.max(1))
}

/// The read-bandwidth probe of `edgegemma bench --mem-bw` (`edgegemma::probe`), over the
/// bytes the matvec cycles through (its copies), timed as the matvec is: seconds per byte of
/// each of its passes.
fn read_bw_probe(bytes: usize, threads: usize, pool: &rayon::ThreadPool) -> Vec<f64> {
    pool.install(|| {
        probe::read_pass_secs_per_byte(bytes as u64, |pass| timed(threads, pass).as_secs_f64())
    })
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

fn bench_matvec(c: &mut Criterion, pools: &[(usize, rayon::ThreadPool)]) {
    let mut group = c.benchmark_group("matvec");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    for &(cols, rows) in &SHAPES {
        for (ty, packed) in variants() {
            if ty.row_bytes(cols as u64).is_none() {
                continue; // K-quants need a multiple of 256 columns
            }
            let vname = variant_name(ty, packed);
            let bytes = (ty.row_bytes(cols as u64).unwrap() * rows as u64) as usize;
            let copies = copies_for(bytes);
            group.throughput(Throughput::BytesDecimal(bytes as u64));
            let mut data: Option<(memmap2::MmapMut, QuantizedActs)> = None;
            for (threads, pool) in pools {
                let id = format!("{vname}/{cols}x{rows}/{threads}t");
                let read_id = format!("read-of/{vname}/{cols}x{rows}/{threads}t");
                group.bench_function(BenchmarkId::from_parameter(&id), |b| {
                    let (w, acts) = data.get_or_insert_with(|| {
                        let w = weights(ty, cols, rows, copies, packed);
                        let mut acts = QuantizedActs::new();
                        acts.quantize(ty, &values(cols, 7), 1, cols).unwrap();
                        (w, acts)
                    });
                    let mats: Vec<WeightMatrix> = w
                        .chunks_exact(bytes)
                        .map(|m| {
                            if packed {
                                WeightMatrix::new_interleaved(ty, m, rows, cols).unwrap()
                            } else {
                                WeightMatrix::new(ty, m, rows, cols).unwrap()
                            }
                        })
                        .collect();
                    let mut out = vec![0.0f32; rows];
                    let mut next = 0usize;
                    // The loop runs inside the pool, as a decode loop would: each matmul forks
                    // and joins on the pool's own threads (1 thread: no rayon at all). Each
                    // call takes the next copy, so none finds its matrix in a cache.
                    b.iter_custom(|iters| {
                        pool.install(|| {
                            let el = timed(*threads, || {
                                for _ in 0..iters {
                                    matmul(&mats[next], acts, &mut out).unwrap();
                                    next = (next + 1) % mats.len();
                                    black_box(&mut out);
                                }
                            });
                            record(&id, el.as_secs_f64() / iters as f64);
                            el
                        })
                    });
                    // The read bandwidth over as many bytes as the copies span, with the same
                    // threads, right after (the probe of `bench --mem-bw`; not a criterion
                    // case).
                    if !SAMPLES.lock().unwrap().contains_key(&read_id) {
                        for s in read_bw_probe(bytes * copies, *threads, pool) {
                            record(&read_id, s);
                        }
                    }
                });
            }
        }
    }
    group.finish();
}

fn bench_read(c: &mut Criterion, pools: &[(usize, rayon::ThreadPool)]) {
    use rayon::prelude::*;
    let mut group = c.benchmark_group("read");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    for mb in [1usize, 12, 64, 256] {
        let bytes = mb << 20;
        group.throughput(Throughput::BytesDecimal(bytes as u64));
        let mut buf: Option<Vec<u64>> = None;
        for (threads, pool) in pools {
            group.bench_function(
                BenchmarkId::from_parameter(format!("{mb}MiB/{threads}t")),
                |b| {
                    let buf = buf.get_or_insert_with(|| (0..(bytes / 8) as u64).collect());
                    let chunk = buf.len().div_ceil(*threads);
                    pool.install(|| {
                        b.iter(|| {
                            buf.par_chunks(chunk)
                                .map(probe::sum_words)
                                .reduce(|| 0, u64::wrapping_add)
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

fn bench_quantize(c: &mut Criterion) {
    let mut group = c.benchmark_group("quantize_act");
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    for (ty, cols) in [
        (GgmlType::Q8_0, 640),
        (GgmlType::Q8_0, 2304),
        (GgmlType::Q8_1, 2304),
        (GgmlType::Q8_K, 2304),
    ] {
        let x = values(cols, 3);
        let mut dst = vec![0u8; ty.row_bytes(cols as u64).unwrap() as usize];
        let k = kernels::kernels();
        group.throughput(Throughput::Elements(cols as u64));
        group.bench_function(
            BenchmarkId::from_parameter(format!("{}/{cols}", ty.name())),
            |b| b.iter(|| (k.quantize_act)(ty, black_box(&x), &mut dst).unwrap()),
        );
    }
    group.finish();
}

/// What a rayon fork-join costs per call, and what that means for small decode matmuls:
/// `join-inside/<t>t` forks and joins from a pool thread (a decode loop run inside
/// `pool.install`), `install-per-call/<t>t` enters the pool from outside on every call (a
/// decode loop on the main thread calling into the global pool).
fn bench_overhead(c: &mut Criterion, pools: &[(usize, rayon::ThreadPool)]) {
    use rayon::prelude::*;
    let mut group = c.benchmark_group("overhead");
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    let noop = |threads: usize| {
        (0..4 * threads).into_par_iter().for_each(|i| {
            black_box(i);
        })
    };
    for (threads, pool) in pools {
        group.bench_function(
            BenchmarkId::from_parameter(format!("join-inside/{threads}t")),
            |b| pool.install(|| b.iter(|| noop(*threads))),
        );
        group.bench_function(
            BenchmarkId::from_parameter(format!("install-per-call/{threads}t")),
            |b| b.iter(|| pool.install(|| noop(*threads))),
        );
    }
    // Gemma 3 270M per-token projections: k/v (640 -> 256), q (640 -> 1024), FFN (640 -> 2048).
    for (ty, cols, rows) in [
        (GgmlType::Q8_0, 640, 256),
        (GgmlType::Q8_0, 640, 1024),
        (GgmlType::Q5_0, 640, 2048),
    ] {
        let w = weights(ty, cols, rows, 1, false);
        let m = WeightMatrix::new(ty, &w, rows, cols).unwrap();
        let mut acts = QuantizedActs::new();
        acts.quantize(ty, &values(cols, 5), 1, cols).unwrap();
        let mut out = vec![0.0f32; rows];
        for (threads, pool) in pools {
            let name = format!("{}/{cols}x{rows}/{threads}t", ty.name());
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                pool.install(|| b.iter(|| matmul(&m, &acts, &mut out).unwrap()))
            });
        }
    }
    group.finish();
}

/// GB/s table from the recorded samples (median per-iteration time).
fn summary() {
    let samples = SAMPLES.lock().unwrap();
    if samples.is_empty() {
        return;
    }
    let k = kernels::kernels();
    let clock = if cpu_clock() {
        "1t timed by thread CPU time"
    } else {
        "wall clock"
    };
    println!(
        "\nmatvec summary (kernels: {}; {clock}; GB/s of weight bytes, median of criterion's samples;",
        k.name
    );
    println!("{}", probe::CpuInfo::detect().summary());
    println!(
        "each call streams its matrix from DRAM: calls cycle through copies spanning {} MiB;",
        SPAN_BYTES >> 20
    );
    println!(
        "read = `bench --mem-bw` probe over those bytes, same threads, best of 8; ratio = matvec / read)\n"
    );
    println!("| format | shape (cols x rows) | MB | 1t GB/s | 1t read | 1t ratio | 2t GB/s | 2t read | 2t ratio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &(cols, rows) in &SHAPES {
        for (ty, packed) in variants() {
            let Some(rb) = ty.row_bytes(cols as u64) else {
                continue;
            };
            let vname = variant_name(ty, packed);
            let bytes = (rb * rows as u64) as f64;
            let mut cells = Vec::new();
            let mut any = false;
            for threads in [1, 2] {
                let id = format!("{vname}/{cols}x{rows}/{threads}t");
                let read_id = format!("read-of/{}", id);
                match (samples.get(&id), samples.get(&read_id)) {
                    (Some(m), Some(r)) => {
                        any = true;
                        let gbs = bytes / median(m) / 1e9;
                        let best_read = r.iter().copied().fold(f64::INFINITY, f64::min);
                        let read = 1.0 / best_read / 1e9;
                        cells.push(format!("{gbs:.1} | {read:.1} | {:.0}%", 100.0 * gbs / read));
                    }
                    _ => cells.push("- | - | -".into()),
                }
            }
            if any {
                println!(
                    "| {vname} | {cols}x{rows} | {:.1} | {} | {} |",
                    bytes / 1e6,
                    cells[0],
                    cells[1]
                );
            }
        }
    }
}

/// How fast `interleave` packed each matrix (one thread, wall clock, the copies together).
fn pack_summary() {
    let pack = PACK.lock().unwrap();
    if pack.is_empty() {
        return;
    }
    println!("\ninterleave (load-time packing, 1 thread, wall clock):\n");
    println!("| format | shape (cols x rows) | GB/s |");
    println!("|---|---|---|");
    for (id, spb) in pack.iter() {
        let (f, shape) = id.split_once('/').unwrap();
        println!("| {f} | {shape} | {:.1} |", 1.0 / spb / 1e9);
    }
}

fn main() {
    let pools: Vec<(usize, rayon::ThreadPool)> =
        [1usize, 2].into_iter().map(|t| (t, pool(t))).collect();
    let mut c = Criterion::default().configure_from_args();
    bench_read(&mut c, &pools);
    bench_matvec(&mut c, &pools);
    bench_quantize(&mut c);
    bench_overhead(&mut c, &pools);
    c.final_summary();
    summary();
    pack_summary();
}

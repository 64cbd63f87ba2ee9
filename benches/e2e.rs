//! End-to-end speed of the whole forward pass on a small random Gemma 3-shaped model
//! (`edgegemma_test_support::tiny_gguf`, written at start-up into a temp dir), so a regression
//! anywhere in the decode or prefill path shows in `cargo bench`:
//!
//! - `e2e/decode/<fmt>/<threads>t`: one decode step (one token in, logits out), at context
//!   positions 64..320 (the context is refilled, untimed, when it reaches the end);
//! - `e2e/prefill512/<fmt>/<threads>t`: a 512-token prompt from an empty context (throughput in
//!   tokens).
//!
//! Formats Q4_0 and Q8_0; 1 thread and all cores. `EDGEGEMMA_KERNELS` picks the kernel path as
//! for the runtime. Filter with e.g. `cargo bench --bench e2e -- decode/q4_0`.

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use edgegemma::gguf::GgmlType;
use edgegemma::kv::CacheType;
use edgegemma::model::{LanguageModel, RunConfig};
use std::time::{Duration, Instant};

use edgegemma_test_support::tiny_gguf::{self, TempDir, TinyShape};

const PREFIX: usize = 64;
const DECODE_SPAN: usize = 256;
const PROMPT: usize = 512;

fn tokens(n: usize, n_vocab: usize, seed: u64) -> Vec<u32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n_vocab as u64) as u32
        })
        .collect()
}

fn main() {
    let dir = TempDir::new("e2e-bench");
    let shape = TinyShape::BENCH;
    let max_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut thread_counts = vec![1];
    if max_threads > 1 {
        thread_counts.push(max_threads);
    }
    let run = RunConfig {
        n_ctx: PROMPT.max(PREFIX + DECODE_SPAN),
        n_batch: PROMPT,
        cache_type: CacheType::F16,
    };
    let prefix = tokens(PREFIX, shape.n_vocab, 1);
    let prompt = tokens(PROMPT, shape.n_vocab, 2);
    let decode_ids = tokens(DECODE_SPAN, shape.n_vocab, 3);

    let mut c = Criterion::default().configure_from_args();
    eprintln!("e2e: kernels {}", edgegemma::kernels::kernels().name);
    eprintln!("e2e: {}", edgegemma::probe::CpuInfo::detect().summary());
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0] {
        let fmt = ty.to_string().to_lowercase();
        let path = dir.path().join(format!("tiny-{fmt}.gguf"));
        tiny_gguf::write_tiny_gemma3(&path, shape, ty).expect("cannot write the bench model");
        let (mut lm, _file) = edgegemma::model::load(&path, &run).expect("cannot load the model");
        for &threads in &thread_counts {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("cannot build a thread pool");
            let id = BenchmarkId::new(&fmt, format!("{threads}t"));

            let mut g = c.benchmark_group("e2e/decode");
            g.throughput(Throughput::Elements(1));
            g.bench_function(id.clone(), |b| {
                b.iter_custom(|iters| {
                    pool.install(|| decode_steps(lm.as_mut(), iters, &prefix, &decode_ids))
                })
            });
            g.finish();

            let mut g = c.benchmark_group("e2e/prefill512");
            g.throughput(Throughput::Elements(PROMPT as u64));
            g.sampling_mode(SamplingMode::Flat);
            g.sample_size(10);
            g.bench_function(id, |b| {
                b.iter_custom(|iters| pool.install(|| prefill(lm.as_mut(), iters, &prompt)))
            });
            g.finish();
        }
    }
    c.final_summary();
}

/// Times `iters` single-token steps; refills the context (untimed) whenever it reaches the end
/// of the span, so every step sees 64 to 320 earlier positions.
fn decode_steps(lm: &mut dyn LanguageModel, iters: u64, prefix: &[u32], ids: &[u32]) -> Duration {
    let mut total = Duration::ZERO;
    for i in 0..iters as usize {
        if lm.pos() < prefix.len() || lm.pos() >= prefix.len() + ids.len() {
            lm.reset();
            lm.eval(prefix).expect("prefix");
        }
        let tok = ids[i % ids.len()];
        let t = Instant::now();
        let logits = lm.eval(&[tok]).expect("decode step");
        std::hint::black_box(logits[0]);
        total += t.elapsed();
    }
    total
}

/// Times `iters` prompt evaluations from an empty context.
fn prefill(lm: &mut dyn LanguageModel, iters: u64, prompt: &[u32]) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        lm.reset();
        let t = Instant::now();
        let logits = lm.eval(prompt).expect("prefill");
        std::hint::black_box(logits[0]);
        total += t.elapsed();
    }
    total
}

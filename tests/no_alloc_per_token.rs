//! "Nothing allocated per token": once a model has warmed up (its first prompt and a few
//! decode steps have sized every scratch buffer), a decode step makes no heap allocation, at
//! 1 and 2 threads, at a depth where decode attention splits its keys over threads. Counted
//! with `edgegemma_test_support::alloc_count`.
//!
//! Runs on the real Gemma 3 270M (`EDGEGEMMA_REAL_MODEL`, else
//! `models/real/gemma3-270m-q4_k_m.gguf`); without it the test prints why and skips.

use edgegemma::gguf::GgufFile;
use edgegemma::model::gemma::Gemma;
use edgegemma::model::{LanguageModel, RunConfig};
use edgegemma_test_support::alloc_count::{allocations, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn decode_steps_allocate_nothing() {
    let Some(path) = edgegemma_test_support::real_model() else {
        eprintln!("SKIPPED: real model not found (tools/fetch-real-model.sh)");
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let run = RunConfig {
        n_ctx: 2048,
        n_batch: 256,
        ..Default::default()
    };
    let prompt: Vec<u32> = (0..1100u32).map(|i| 1000 + (i * 7919) % 200_000).collect();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut m = Gemma::load(&file, &run).unwrap();
            m.eval(&prompt).unwrap();
            let mut t = 2u32;
            for _ in 0..4 {
                t = 1000 + (m.eval(&[t]).unwrap()[5] > 0.0) as u32;
            }
            let before = allocations();
            for _ in 0..8 {
                t = 1000 + (m.eval(&[t]).unwrap()[5] > 0.0) as u32;
            }
            let n = allocations() - before;
            assert_eq!(
                n, 0,
                "{threads} threads: 8 decode steps made {n} heap allocations"
            );
        });
    }
}

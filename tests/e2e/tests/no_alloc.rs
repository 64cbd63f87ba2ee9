//! "Nothing allocated per token" on every architecture: once a model has warmed up (a prompt
//! past RecurrentGemma's and Gemma 2/3's local windows, then a few decode steps), decode steps
//! make no heap allocation at 1 and 2 threads. Counted with `edgegemma_test_support::alloc_count`;
//! one test in this binary, so no other test's allocations are counted.
//! (The real Gemma 3 270M has the same check in `tests/no_alloc_per_token.rs`.)

use edgegemma::kv::CacheType;
use edgegemma::model::{self, RunConfig};
use edgegemma_test_support::alloc_count::{allocations, CountingAlloc};
use edgegemma_test_support::tiny_model;
use std::path::Path;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn decode_steps_allocate_nothing_on_every_architecture() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no_alloc");
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "gemma1-mqa-f32",
        "gemma2-f32",
        "gemma3-f32",
        "recurrentgemma-f32",
    ] {
        let path = dir.join(format!("{name}.gguf"));
        if !path.exists() {
            edgegemma_e2e::convert_hf(&tiny_model(name), &path, "f32").unwrap();
        }
        for cache in [CacheType::F16, CacheType::F32] {
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let run = RunConfig {
                        n_ctx: 256,
                        n_batch: 16,
                        cache_type: cache,
                    };
                    let mut m = model::load(&path, &run).unwrap().0;
                    let prompt: Vec<u32> = (0..180u32).map(|i| 2 + (i * 7) % 300).collect();
                    m.eval(&prompt).unwrap();
                    let mut t = 5u32;
                    for _ in 0..4 {
                        t = 2 + (m.eval(&[t]).unwrap()[3] > 0.0) as u32;
                    }
                    let before = allocations();
                    for _ in 0..8 {
                        t = 2 + (m.eval(&[t]).unwrap()[3] > 0.0) as u32;
                    }
                    let n = allocations() - before;
                    assert_eq!(
                        n, 0,
                        "{name} {cache:?} {threads} threads: 8 decode steps made {n} allocations"
                    );
                });
            }
        }
    }
}

//! The prompt cache on the real Gemma 3 270M: rewinding the KV cache past the sliding
//! window (512) and continuing gives the logits of a fresh run, and a ring of exactly the
//! window refuses to rewind further than it can.
//!
//! The model is found through `EDGEGEMMA_REAL_MODEL`, else at
//! `models/real/gemma3-270m-q4_k_m.gguf` (tools/fetch-real-model.sh); without it the test
//! prints why and skips.

use edgegemma::gguf::GgufFile;
use edgegemma::model::gemma::Gemma;
use edgegemma::model::{LanguageModel, RunConfig};
use edgegemma::prompt_cache::{PromptCache, Reuse};
use edgegemma_test_support::real_model;

fn tokens(n: usize, salt: u32) -> Vec<u32> {
    // Ordinary vocabulary ids (past the special and byte pieces), varied.
    (0..n as u32)
        .map(|i| 1000 + (i * 7919 + salt * 104_729) % 200_000)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn argmax(a: &[f32]) -> usize {
    (0..a.len()).max_by(|&i, &j| a[i].total_cmp(&a[j])).unwrap()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The server's case: the same prompt again (or one sharing all but its last token) reuses
/// the cached prefix and feeds the rest; greedy decoding from there must give a fresh run's
/// tokens and logits bit for bit, whatever the cut (the cache feeds at least two tokens, and
/// a batch of two or more gives each token the same bits).
#[test]
fn reused_prefix_continues_with_a_fresh_runs_bits() {
    let Some(path) = real_model() else {
        eprintln!("skipping: real model not found (tools/fetch-real-model.sh)");
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let run = RunConfig {
        n_ctx: 512,
        n_batch: 256,
        cache_type: edgegemma::kv::CacheType::F16,
    };
    let greedy = |m: &mut dyn LanguageModel, first: &[f32]| {
        let mut logits = first.to_vec();
        let mut out = Vec::new();
        for _ in 0..12 {
            let t = argmax(&logits) as u32;
            out.push((t, logits.clone()));
            logits = m.eval(&[t]).unwrap().to_vec();
        }
        out
    };
    let mut g = Gemma::load(&file, &run).unwrap();
    let mut cache = PromptCache::new(0);
    for (len, salt) in [(5usize, 1u32), (5, 1), (6, 1), (257, 4), (258, 4), (300, 4)] {
        let prompt = [&[2u32][..], &tokens(len - 1, salt)].concat();
        let mut fresh = Gemma::load(&file, &run).unwrap();
        let first = fresh.eval(&prompt).unwrap().to_vec();
        let want = greedy(&mut fresh, &first);

        let (n, _) = cache.prepare(&mut g, &prompt);
        let first = cache
            .feed(&mut g, &prompt[n..], &[], &|| false)
            .unwrap()
            .to_vec();
        let got = greedy(&mut g, &first);
        for (t, ((gt, gl), (wt, wl))) in got.iter().zip(&want).enumerate() {
            assert_eq!(gt, wt, "prompt of {len} (reused {n}): token {t} differs");
            assert!(
                same_bits(gl, wl),
                "prompt of {len} (reused {n}): logits {t} differ"
            );
        }
        for &(t, _) in &got {
            cache.push(t);
        }
    }
}

#[test]
fn gemma_rewinds_past_the_window_and_matches_a_fresh_run() {
    let Some(path) = real_model() else {
        eprintln!("skipping: real model not found (tools/fetch-real-model.sh)");
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let run = RunConfig {
        n_ctx: 1024,
        n_batch: 256,
        cache_type: edgegemma::kv::CacheType::F32,
    };
    let shared = tokens(530, 1);
    let first = [&shared[..], &tokens(40, 2)].concat();
    let second = [&shared[..], &tokens(30, 3)].concat();

    let mut fresh = Gemma::load(&file, &run).unwrap();
    let want = fresh.eval(&second).unwrap().to_vec();

    let mut g = Gemma::load(&file, &run).unwrap();
    g.keep_full_local_cache();
    let mut cache = PromptCache::new(0);
    let (n, how) = cache.prepare(&mut g, &first);
    assert_eq!((n, how), (0, Reuse::None));
    cache.feed(&mut g, &first, &[], &|| false).unwrap();
    let (n, how) = cache.prepare(&mut g, &second);
    assert_eq!((n, how), (530, Reuse::Prefix));
    let got = cache
        .feed(&mut g, &second[n..], &[], &|| false)
        .unwrap()
        .to_vec();
    let d = max_diff(&got, &want);
    eprintln!("rewound to 530 of 570, fed 30: max |Δlogit| vs fresh run = {d:e}");
    // Every piece either run fed had two tokens or more, so the bits are a fresh run's.
    assert!(same_bits(&got, &want), "max |Δ| {d}");
    assert_eq!(argmax(&got), argmax(&want));

    // A ring of exactly the window (the default) has overwritten what position 530 needs.
    let mut exact = Gemma::load(&file, &run).unwrap();
    exact.eval(&first).unwrap();
    assert!(!exact.truncate(530));
    assert_eq!(exact.pos(), 570);
    // One position back it still holds.
    assert!(exact.truncate(569));
    assert!(!exact.truncate(570));
    // Before the ring wraps any rewind is exact.
    exact.reset();
    exact.eval(&first[..200]).unwrap();
    assert!(exact.truncate(10));
    let got = exact.eval(&second[10..150]).unwrap().to_vec();
    fresh.reset();
    let want = fresh.eval(&second[..150]).unwrap();
    assert!(max_diff(&got, want) <= 1e-3);
}

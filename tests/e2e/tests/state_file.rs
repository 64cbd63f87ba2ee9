//! Hostile state files (`--load-state`): for one tiny model of each architecture, a saved
//! state cut at every field boundary (and one byte into each field) and a few hundred
//! seeded single-byte mutations of it are loaded back. Each load must either fail with a
//! one-line error, leaving the model at position 0, or restore exactly the saved state
//! (bit-identical next-token logits) — never panic. The layout is in
//! `src/model/state.rs`.

use edgegemma::kv::CacheType;
use edgegemma::model::{self, LanguageModel, RunConfig};
use std::path::PathBuf;

/// One tiny model per architecture (the recurrent one has both block kinds).
const MODELS: [&str; 4] = [
    "gemma1-mqa-f32",
    "gemma2-f32",
    "gemma3-f32",
    "recurrentgemma-f32",
];
/// Random single-byte mutations per model, on top of one per header byte.
const MUTATIONS: usize = 300;
const N_CTX: usize = 64;

/// `models/tiny/<name>` converted to f32 in a directory of the test `tag`'s own.
fn converted(name: &str, tag: &str) -> PathBuf {
    let dir = edgegemma_test_support::dirs::scratch_dir_in(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("state-file"),
        &format!("{tag}-{name}"),
    );
    let out = dir.join(format!("{name}.gguf"));
    edgegemma_e2e::convert_hf(&edgegemma_test_support::tiny_model(name), &out, "f32").unwrap();
    out
}

fn open(path: &std::path::Path) -> Box<dyn LanguageModel> {
    let run = RunConfig {
        n_ctx: N_CTX,
        n_batch: 8,
        cache_type: CacheType::F16,
    };
    model::load(path, &run).unwrap().0
}

/// xorshift64*: a fixed, dependency-free sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Offsets where a field of the state file starts: magic, version, fingerprint, position,
/// buffer count, each buffer's length and bytes, the checksum; and the end.
fn field_starts(file: &[u8]) -> Vec<usize> {
    let mut at = vec![0, 8, 12, 20, 28];
    let count = u32::from_le_bytes(file[28..32].try_into().unwrap()) as usize;
    let mut off = 32;
    for _ in 0..count {
        at.push(off);
        let len = u64::from_le_bytes(file[off..off + 8].try_into().unwrap()) as usize;
        at.push(off + 8);
        off += 8 + len;
    }
    at.push(off);
    at.push(off + 8);
    assert_eq!(off + 8, file.len(), "layout of state.rs");
    at
}

/// Loads `bytes` into `m`: a clean one-line error (and position 0), or the saved state.
fn check_load(
    m: &mut dyn LanguageModel,
    bytes: &[u8],
    saved_pos: usize,
    next: &[u32],
    want: &[f32],
    what: &str,
) -> bool {
    m.eval(&[1]).unwrap(); // something to be overwritten or forgotten
    match m.load_state(&mut &bytes[..]) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.is_empty() && !msg.contains('\n'),
                "{what}: error {msg:?}"
            );
            assert_eq!(m.pos(), 0, "{what}: a failed load must start over");
            false
        }
        Ok(()) => {
            assert_eq!(m.pos(), saved_pos, "{what}: accepted with another position");
            let got = m.eval(next).unwrap();
            assert!(
                got.iter()
                    .zip(want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{what}: accepted but the state differs"
            );
            true
        }
    }
}

#[test]
fn truncated_and_mutated_state_files_fail_cleanly() {
    for name in MODELS {
        let path = converted(name, "sweep");
        let mut m = open(&path);
        let nv = m.n_vocab() as u64;
        let ids: Vec<u32> = (0..20u64).map(|i| ((i * 7919 + 3) % nv) as u32).collect();
        let (head, next) = ids.split_at(17);
        m.eval(head).unwrap();
        let mut saved = Vec::new();
        m.save_state(&mut saved).unwrap();
        let want = m.eval(next).unwrap().to_vec();

        let mut fresh = open(&path);
        assert!(check_load(
            fresh.as_mut(),
            &saved,
            head.len(),
            next,
            &want,
            name
        ));

        let mut cuts = 0;
        for start in field_starts(&saved) {
            for cut in [start, start + 1] {
                if cut >= saved.len() {
                    continue;
                }
                let what = format!("{name} cut at {cut}");
                assert!(!check_load(
                    fresh.as_mut(),
                    &saved[..cut],
                    head.len(),
                    next,
                    &want,
                    &what
                ));
                cuts += 1;
            }
        }

        let mut rng = Rng(0x5eed ^ nv);
        let mut accepted = 0;
        let header = 32.min(saved.len());
        let positions =
            (0..header).chain((0..MUTATIONS).map(|_| (rng.next() % saved.len() as u64) as usize));
        let mut mutations = 0;
        for at in positions.collect::<Vec<_>>() {
            let mut bad = saved.clone();
            let flip = (rng.next() % 255 + 1) as u8;
            bad[at] ^= flip;
            let what = format!("{name} byte {at} ^ {flip:#04x}");
            accepted += check_load(fresh.as_mut(), &bad, head.len(), next, &want, &what) as usize;
            mutations += 1;
        }
        eprintln!(
            "{name}: {} byte state, {cuts} truncations, {mutations} mutations ({accepted} accepted)",
            saved.len()
        );
        // Every byte is covered by the checksum, so no mutation can be accepted.
        assert_eq!(accepted, 0, "{name}");

        // The intact file still loads after all of that.
        assert!(check_load(
            fresh.as_mut(),
            &saved,
            head.len(),
            next,
            &want,
            name
        ));
    }
}

#[test]
fn a_state_is_refused_by_another_architecture_or_setting() {
    let paths: Vec<PathBuf> = MODELS.iter().map(|n| converted(n, "refuse")).collect();
    let mut states = Vec::new();
    for p in &paths {
        let mut m = open(p);
        m.eval(&[1, 2, 3]).unwrap();
        let mut s = Vec::new();
        m.save_state(&mut s).unwrap();
        states.push(s);
    }
    for (i, p) in paths.iter().enumerate() {
        let mut m = open(p);
        for (j, s) in states.iter().enumerate() {
            let r = m.load_state(&mut &s[..]);
            assert_eq!(r.is_ok(), i == j, "{} state into {}", MODELS[j], MODELS[i]);
        }
        // Another cache type, and for Gemma another context length (RecurrentGemma's state
        // does not depend on it), is another setting.
        let gemma = !MODELS[i].starts_with("recurrent");
        for (n_ctx, cache_type) in [(N_CTX, CacheType::F32), (N_CTX * 2, CacheType::F16)] {
            if n_ctx != N_CTX && !gemma {
                continue;
            }
            let run = RunConfig {
                n_ctx,
                n_batch: 8,
                cache_type,
            };
            let mut other = model::load(p, &run).unwrap().0;
            let e = other.load_state(&mut &states[i][..]).unwrap_err();
            assert!(
                e.to_string().contains("another model"),
                "{}: {e}",
                MODELS[i]
            );
        }
    }
}

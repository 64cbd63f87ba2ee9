//! A GGUF with one lying hyperparameter (issue #13): every hyperparameter key of each
//! architecture's tiny model (`{arch}.*` and the tokenizer's `*_token_id`s) set in turn to
//! 0, 1, 2^31, 2^32−1 and 2^63 (floats also to NaN, ∞ and −1). `run -n 1`, `bench`, `chat`
//! (stdin closed) and `perplexity` must each refuse the file with one line on stderr naming
//! the file and the key, under `ulimit -v` of the model size + 300 MiB and within seconds:
//! no panic, abort, signal, hang or over-allocation. `inspect` still lists the file and
//! names the key among its problems.
//!
//! The values that do not contradict anything still run: a float that is finite and
//! positive (a RoPE base or a scale of 2^31 is odd, not inconsistent; a softcap of 0 is
//! "off"), a token id inside the vocabulary, a sliding window of 1 position (or 0 on
//! Gemma 3: no window) and a window pattern of 0 (every layer local) or 1 (every layer
//! global). Those are listed in [`harmless`]; everything else must be refused.
//! With `EDGEGEMMA_REAL_MODEL` set, the original report's case is replayed on a copy of the
//! real Gemma 3 270M: `gemma3.block_count` patched in place.

mod hostile_util;

use std::path::Path;
use std::process::Command;

use edgegemma_test_support::raw_gguf::{
    array_payload, enc_str, kv, kv_key, kv_payload, kv_type, vt, RawGguf,
};
use hostile_util::{
    model_commands, perplexity_text, run_limited, scratch, tiny_gguf, Outcome, TINY, VMEM_HEADROOM,
};

const INT_LIES: [(u64, &str); 5] = [
    (0, "0"),
    (1, "1"),
    (1 << 31, "2^31"),
    (u32::MAX as u64, "2^32-1"),
    (1 << 63, "2^63"),
];

#[derive(Clone, Copy, Debug)]
enum Lie {
    Int(u64),
    Float(f32),
}

/// The lies tried on a key of value type `ty` (with a label for file names and messages).
fn lies_for(ty: u32) -> Vec<(Lie, String)> {
    let ints = || INT_LIES.iter().map(|&(v, l)| (Lie::Int(v), l.to_string()));
    match ty {
        vt::F32 | 12 => INT_LIES
            .iter()
            .map(|&(v, l)| (Lie::Float(v as f32), l.to_string()))
            .chain([
                (Lie::Float(f32::NAN), "nan".into()),
                (Lie::Float(f32::INFINITY), "inf".into()),
                (Lie::Float(-1.0), "-1".into()),
            ])
            .collect(),
        vt::ARRAY | 0..=5 | 10 | 11 => ints().collect(),
        _ => Vec::new(),
    }
}

/// The key/value pair `key` with `lie` in place of its value, in the narrowest type that
/// holds it (u32, else u64); an integer array keeps its length with every element the lie.
/// `None` when the lie does not apply to this key's type.
fn lie_kv(key: &str, orig: &[u8], lie: Lie) -> Option<Vec<u8>> {
    let int = |v: u64| -> (u32, Vec<u8>) {
        match u32::try_from(v) {
            Ok(x) => (vt::U32, x.to_le_bytes().to_vec()),
            Err(_) => (vt::U64, v.to_le_bytes().to_vec()),
        }
    };
    match (kv_type(orig), lie) {
        (vt::F32 | 12, Lie::Float(x)) => Some(kv(key.as_bytes(), vt::F32, &x.to_le_bytes())),
        (0..=5 | 10 | 11, Lie::Int(v)) => {
            let (ty, b) = int(v);
            Some(kv(key.as_bytes(), ty, &b))
        }
        (vt::ARRAY, Lie::Int(v)) => {
            let p = kv_payload(orig);
            let elem = u32::from_le_bytes(p[..4].try_into().unwrap());
            if !matches!(elem, 0..=5 | 10 | 11) {
                return None;
            }
            let count = u64::from_le_bytes(p[4..12].try_into().unwrap());
            let (ty, b) = int(v);
            let elems = b.repeat(count as usize);
            Some(kv(
                key.as_bytes(),
                vt::ARRAY,
                &array_payload(ty, count, &elems),
            ))
        }
        _ => None,
    }
}

/// Why `key = lie` is a consistent file that may run, or `None` when it must be refused.
fn harmless(arch: &str, key: &str, lie: Lie, n_tokens: u64) -> Option<&'static str> {
    let short = key.strip_prefix(arch).and_then(|k| k.strip_prefix('.'));
    match lie {
        Lie::Float(x) if x.is_finite() && x > 0.0 => Some("a finite positive float"),
        Lie::Float(x) if x == 0.0 && key.ends_with("_softcapping") => Some("a softcap of 0 is off"),
        Lie::Float(_) => None,
        Lie::Int(v) => match short {
            Some("attention.sliding_window") if v == 1 => Some("a window of one position"),
            Some("attention.sliding_window") if v == 0 && arch == "gemma3" => {
                Some("Gemma 3 without a window: every layer global")
            }
            Some("attention.sliding_window_pattern") if v <= 1 => {
                Some("period 0 = every layer local, 1 = every layer global")
            }
            None if key.ends_with("_token_id") && v < n_tokens => Some("a token of the vocabulary"),
            _ => None,
        },
    }
}

fn arch_of(raw: &RawGguf) -> String {
    let kv = raw
        .kvs
        .iter()
        .find(|k| kv_key(k) == "general.architecture")
        .expect("general.architecture");
    let p = kv_payload(kv);
    String::from_utf8(p[8..].to_vec()).unwrap()
}

fn n_tokens(raw: &RawGguf) -> u64 {
    let kv = raw
        .kvs
        .iter()
        .find(|k| kv_key(k) == "tokenizer.ggml.tokens")
        .expect("tokenizer.ggml.tokens");
    u64::from_le_bytes(kv_payload(kv)[4..12].try_into().unwrap())
}

/// `inspect --json FILE`: exits 0 and returns the `problems` array.
fn inspect_problems(path: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(hostile_util::bin())
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .expect("run inspect");
    if !out.status.success() {
        return Err(format!(
            "inspect {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("inspect --json: {e}"))?;
    Ok(json["problems"]
        .as_array()
        .ok_or("inspect --json has no problems array")?
        .iter()
        .map(|p| p.as_str().unwrap_or_default().to_string())
        .collect())
}

/// Every lie on every hyperparameter key of `model`; returns (cases, runs).
fn sweep(model: &str) -> (usize, usize) {
    let t0 = std::time::Instant::now();
    let src = tiny_gguf(model);
    let bytes = std::fs::read(&src).unwrap();
    let raw = RawGguf::parse(&bytes).unwrap();
    assert_eq!(
        raw.build(),
        bytes,
        "{model}: the test's parser must rebuild the file exactly"
    );
    let arch = arch_of(&raw);
    let n_tok = n_tokens(&raw);
    let dir = scratch(&format!("hostile-hparams-{model}"));
    let text = perplexity_text(&dir);
    let text = text.to_str().unwrap();
    let vmem = bytes.len() as u64 + VMEM_HEADROOM;

    // The untouched file runs with every command, so each refusal below is the lie's doing.
    for cmd in model_commands(src.to_str().unwrap(), text) {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let o = run_limited(&args, vmem);
        assert!(o.success(), "{model}: the valid file fails: {o:?}");
    }
    assert_eq!(inspect_problems(&src).unwrap(), Vec::<String>::new());

    let keys: Vec<(usize, String)> = raw
        .kvs
        .iter()
        .enumerate()
        .map(|(i, k)| (i, kv_key(k).to_string()))
        .filter(|(_, k)| {
            k.starts_with(&format!("{arch}."))
                || (k.starts_with("tokenizer.ggml.") && k.ends_with("_token_id"))
        })
        .collect();
    assert!(keys.len() >= 10, "{model}: only {} keys", keys.len());
    let mut failures = Vec::new();
    let (mut cases, mut runs, mut refused, mut ran) = (0, 0, 0, 0);
    for (i, key) in &keys {
        for (lie, label) in lies_for(kv_type(&raw.kvs[*i])) {
            let Some(new_kv) = lie_kv(key, &raw.kvs[*i], lie) else {
                continue;
            };
            if new_kv == raw.kvs[*i] {
                continue; // the true value
            }
            cases += 1;
            let mut g = raw.clone();
            g.kvs[*i] = new_kv;
            let path = dir.join(format!("{key}={label}.gguf"));
            std::fs::write(&path, g.build()).unwrap();
            let p = path.to_str().unwrap();
            let may_run = harmless(&arch, key, lie, n_tok);
            let mut refusals = 0;
            for cmd in model_commands(p, text) {
                let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                let o: Outcome = run_limited(&args, vmem);
                runs += 1;
                let verdict = match may_run {
                    Some(_) if o.success() => o.check_clean(),
                    _ => o.check_rejected(&path, &[key]),
                };
                if o.success() {
                    ran += 1;
                } else {
                    refused += 1;
                    refusals += 1;
                }
                if let Err(e) = verdict {
                    failures.push(format!("{key} = {label}: {e}"));
                }
            }
            // inspect lists the file whatever it holds; a refused lie is among its problems.
            match inspect_problems(&path) {
                Err(e) => failures.push(format!("{key} = {label}: {e}")),
                Ok(problems) => {
                    if refusals > 0 && !problems.iter().any(|p| hostile_util::names(p, key)) {
                        failures.push(format!(
                            "{key} = {label}: refused, but inspect's problems do not name it: {problems:?}"
                        ));
                    }
                }
            }
            let _ = std::fs::remove_file(&path);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{model}: {} keys, {cases} lying files, {runs} runs ({refused} refused, {ran} ran) in {:.1} s",
        keys.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{model}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (cases, runs)
}

#[test]
fn gemma1_lying_hyperparameters_are_refused() {
    sweep(TINY[0]);
}

#[test]
fn gemma2_lying_hyperparameters_are_refused() {
    sweep(TINY[1]);
}

#[test]
fn gemma3_lying_hyperparameters_are_refused() {
    sweep(TINY[2]);
}

#[test]
fn gemma3_scaled_lying_hyperparameters_are_refused() {
    sweep(TINY[3]);
}

#[test]
fn recurrentgemma_lying_hyperparameters_are_refused() {
    sweep(TINY[4]);
}

/// A string hyperparameter with an unknown value is refused too (the only string key the
/// loaders read besides the architecture).
#[test]
fn unknown_rope_scaling_type_is_refused() {
    let src = tiny_gguf("gemma3-scaled-bf16");
    let bytes = std::fs::read(&src).unwrap();
    let mut raw = RawGguf::parse(&bytes).unwrap();
    let key = "gemma3.rope.scaling.type";
    let i = raw.kvs.iter().position(|k| kv_key(k) == key).unwrap();
    raw.kvs[i] = kv(key.as_bytes(), vt::STR, &enc_str(b"yarn"));
    let dir = scratch("hostile-rope-type");
    let path = dir.join("rope-type.gguf");
    std::fs::write(&path, raw.build()).unwrap();
    let text = perplexity_text(&dir);
    for cmd in model_commands(path.to_str().unwrap(), text.to_str().unwrap()) {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let o = run_limited(&args, bytes.len() as u64 + VMEM_HEADROOM);
        o.check_rejected(&path, &[key, "yarn"]).unwrap();
    }
    let problems = inspect_problems(&path).unwrap();
    assert!(problems.iter().any(|p| p.contains(key)), "{problems:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The report in issue #13, on the real model: `gemma3.block_count` patched in place (a u32,
/// so the copy's layout is unchanged) to 0, 1, 2^31 and 2^32−1.
#[test]
fn real_model_lying_block_count_is_refused() {
    let Some(real) = std::env::var_os("EDGEGEMMA_REAL_MODEL") else {
        eprintln!("EDGEGEMMA_REAL_MODEL not set; skipping");
        return;
    };
    let dir = scratch("hostile-real-block-count");
    let path = dir.join("gemma3-270m-lying-block-count.gguf");
    std::fs::copy(&real, &path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    // The value's offset: the encoded key, then the type id (u32), then the value.
    let key = "gemma3.block_count";
    let head = {
        let mut f = std::fs::File::open(&path).unwrap();
        let mut b = vec![0u8; 1 << 16];
        use std::io::Read;
        let n = f.read(&mut b).unwrap();
        b.truncate(n);
        b
    };
    let pat = [enc_str(key.as_bytes()), vt::U32.to_le_bytes().to_vec()].concat();
    let at = head
        .windows(pat.len())
        .position(|w| w == pat.as_slice())
        .expect("gemma3.block_count (u32) in the first 64 KiB")
        + pat.len();
    assert_eq!(u32::from_le_bytes(head[at..at + 4].try_into().unwrap()), 18);
    let text = perplexity_text(&dir);
    let patch = |v: u32| {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(at as u64)).unwrap();
        f.write_all(&v.to_le_bytes()).unwrap();
    };
    let mut failures = Vec::new();
    for v in [0u32, 1, 1 << 31, u32::MAX] {
        patch(v);
        for cmd in model_commands(path.to_str().unwrap(), text.to_str().unwrap()) {
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let o = run_limited(&args, size + VMEM_HEADROOM);
            if let Err(e) = o.check_rejected(&path, &[&format!("{key} = {v}")]) {
                failures.push(e);
            }
        }
        let problems = inspect_problems(&path).unwrap();
        if !problems.iter().any(|p| p.contains(&format!("{key} = {v}"))) {
            failures.push(format!("inspect problems for {v}: {problems:?}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

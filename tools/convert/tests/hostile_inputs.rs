//! Hostile `config.json` values and safetensors headers: every run ends with exit code 0 or
//! one error line (exit 1) naming the file, the key or tensor and the value, never a
//! signal, panic or allocation failure. Runs are confined to 2 GiB of address space, so an
//! allocation sized by an unchecked field (a 2^31-entry vocabulary is ~100 GiB) aborts and
//! fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_edgegemma-convert");
/// Address-space limit of each run (the converter maps a tiny model and starts rayon).
const ADDRESS_SPACE: &str = "--as=2147483648";

const HOSTILE_INTS: [u64; 5] = [0, 1, 1 << 31, (1 << 32) - 1, 1 << 63];

fn run_limited(model: &Path, out: &Path) -> Output {
    let mut cmd = if Path::new("/usr/bin/prlimit").exists() {
        let mut c = Command::new("prlimit");
        c.arg(ADDRESS_SPACE).arg(BIN);
        c
    } else {
        Command::new(BIN)
    };
    cmd.args([
        "hf",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-t",
        "q8_0",
        "-q",
        "--force",
        "-j",
        "1",
    ])
    .output()
    .unwrap()
}

/// A failure must be one line naming `file` and containing every needle.
fn check_outcome(o: &Output, what: &str, file: &str, needles: &[&str]) -> bool {
    let err = stderr(o);
    match o.status.code() {
        Some(0) => {
            assert!(err.is_empty(), "{what}: success with output: {err}");
            false
        }
        Some(1) => {
            assert_eq!(err.lines().count(), 1, "{what}: {err}");
            assert!(
                err.starts_with("edgegemma-convert: error: "),
                "{what}: {err}"
            );
            assert!(err.contains(file), "{what}: no {file:?} in: {err}");
            for n in needles {
                assert!(err.contains(n), "{what}: no {n:?} in: {err}");
            }
            true
        }
        _ => panic!("{what}: died with {:?}: {err}", o.status),
    }
}

fn edited_copy(tiny_name: &str, case: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(&format!("hostile-{case}"));
    let model = dir.join("model");
    copy_dir(&tiny(tiny_name), &model);
    (model, dir.join("out.gguf"))
}

fn set_config(model: &Path, key: &str, value: Value) {
    let p = model.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    c.as_object_mut().unwrap().insert(key.into(), value);
    std::fs::write(p, c.to_string()).unwrap();
}

fn remove_config(model: &Path, key: &str) {
    let p = model.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    c.as_object_mut().unwrap().remove(key);
    std::fs::write(p, c.to_string()).unwrap();
}

/// Each integer key of each architecture set to 0, 1, 2^31, 2^32-1 and 2^63. Values no
/// Gemma can have (0 and from 2^31 up) must be refused naming the key and the value; 1 may
/// convert (a valid value for some keys) or fail against the tensors.
#[test]
fn every_config_integer_at_hostile_values() {
    let cases: [(&str, &[&str]); 4] = [
        (
            "gemma3-f32",
            &[
                "num_hidden_layers",
                "hidden_size",
                "intermediate_size",
                "num_attention_heads",
                "num_key_value_heads",
                "head_dim",
                "vocab_size",
                "max_position_embeddings",
                "sliding_window",
                "sliding_window_pattern",
                "_sliding_window_pattern",
                "query_pre_attn_scalar",
            ],
        ),
        (
            "gemma2-f32",
            &[
                "num_hidden_layers",
                "hidden_size",
                "vocab_size",
                "sliding_window",
            ],
        ),
        (
            "gemma1-mqa-f32",
            &[
                "num_hidden_layers",
                "hidden_size",
                "intermediate_size",
                "num_attention_heads",
                "num_key_value_heads",
                "head_dim",
                "vocab_size",
            ],
        ),
        (
            "recurrentgemma-f32",
            &[
                "num_hidden_layers",
                "hidden_size",
                "intermediate_size",
                "num_attention_heads",
                "vocab_size",
                "lru_width",
                "conv1d_width",
                "attention_window_size",
                "max_position_embeddings",
            ],
        ),
    ];
    let mut refused = 0;
    for (model_name, keys) in cases {
        for key in keys {
            for value in HOSTILE_INTS {
                let what = format!("{model_name} {key}={value}");
                let (model, out) = edited_copy(model_name, "int");
                set_config(&model, key, json!(value));
                if key.contains("sliding_window_pattern") {
                    // `layer_types` decides when present; the pattern is read without it.
                    remove_config(&model, "layer_types");
                    if key.starts_with("sliding") {
                        remove_config(&model, "_sliding_window_pattern");
                    } else {
                        remove_config(&model, "sliding_window_pattern");
                    }
                }
                let o = run_limited(&model, &out);
                let shown = value.to_string();
                let must_fail = value != 1;
                let needles: &[&str] = if must_fail {
                    &[key.trim_start_matches('_'), &shown]
                } else {
                    &[]
                };
                let failed = check_outcome(&o, &what, "config.json", needles);
                assert!(failed || !must_fail, "{what}: converted");
                refused += usize::from(failed);
            }
        }
    }
    assert!(refused >= 4 * 32, "{refused}");
}

/// Floating-point keys out of range: zero, negative, 2^63, and 1e30.
#[test]
fn config_floats_out_of_range() {
    for (key, value) in [
        ("rms_norm_eps", json!(0.0)),
        ("rms_norm_eps", json!(-1e-6)),
        ("rms_norm_eps", json!(2.0)),
        ("rope_theta", json!(9.223372036854776e18)),
        ("query_pre_attn_scalar", json!(1e30)),
        ("final_logit_softcapping", json!(-30.0)),
    ] {
        let what = format!("{key}={value}");
        let (model, out) = edited_copy("gemma2-f32", "float");
        set_config(&model, key, value);
        let o = run_limited(&model, &out);
        assert!(
            check_outcome(&o, &what, "config.json", &[key]),
            "{what}: converted"
        );
    }
}

/// Sizes that are in bounds but contradict the tensors name the key, its value, the
/// tensor and its shape.
#[test]
fn config_contradicting_the_tensors() {
    for (model_name, key, value, needles) in [
        (
            "gemma3-f32",
            "vocab_size",
            1000,
            &[
                "vocab_size 1000",
                "model.embed_tokens.weight",
                "has shape [512, 48], expected [1000, 48] from config.json",
            ][..],
        ),
        (
            "gemma3-f32",
            "hidden_size",
            64,
            &[
                "hidden_size 64",
                "model.embed_tokens.weight",
                "has shape [512, 48], expected [512, 64]",
            ],
        ),
        (
            "gemma1-mqa-f32",
            "num_hidden_layers",
            1000,
            &["num_hidden_layers 1000", "layers 0 to"],
        ),
        (
            "gemma3-f32",
            "head_dim",
            32,
            &["num_attention_heads × head_dim", "q_proj.weight"],
        ),
        (
            "recurrentgemma-f32",
            "conv1d_width",
            7,
            &["conv1d_width 7", "conv_1d.weight"],
        ),
    ] {
        let what = format!("{model_name} {key}={value}");
        let (model, out) = edited_copy(model_name, "contradict");
        set_config(&model, key, json!(value));
        let o = run_limited(&model, &out);
        assert!(
            check_outcome(&o, &what, "config.json", needles),
            "{what}: converted"
        );
        assert!(stderr(&o).contains("model.safetensors"), "{}", stderr(&o));
    }
}

#[test]
fn oversized_config_is_refused_before_reading() {
    let (model, out) = edited_copy("gemma3-f32", "bigconfig");
    let p = model.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    c.as_object_mut()
        .unwrap()
        .insert("padding".into(), json!("x".repeat(2 << 20)));
    std::fs::write(&p, c.to_string()).unwrap();
    let o = run_limited(&model, &out);
    assert!(check_outcome(
        &o,
        "big config",
        "config.json",
        &["bytes; a file of this kind is at most"]
    ));
}

/// The safetensors file split into header JSON and data.
fn split(bytes: &[u8]) -> (serde_json::Map<String, Value>, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header.as_object().unwrap().clone(), bytes[8 + n..].to_vec())
}

fn join(header: &Value, data: &[u8]) -> Vec<u8> {
    let h = header.to_string().into_bytes();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

/// Lying and truncated headers: each one error line naming the file and the tensor or
/// number at fault.
#[test]
fn hostile_safetensors_headers() {
    let original = std::fs::read(tiny("gemma3-f32").join("model.safetensors")).unwrap();
    let (header, data) = split(&original);
    let len = original.len() as u64;
    let name = "model.norm.weight";
    let other = "model.layers.0.input_layernorm.weight";
    let edited = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut h = header.clone();
        f(&mut h);
        join(&Value::Object(h), &data)
    };
    let with_length = |n: u64| {
        let mut b = original.clone();
        b[..8].copy_from_slice(&n.to_le_bytes());
        b
    };
    let mut cases: Vec<(String, Vec<u8>, Vec<String>)> = vec![
        (
            "4 bytes".into(),
            original[..4].to_vec(),
            vec!["4 bytes, shorter than the 8-byte header length".into()],
        ),
        (
            "length = file size".into(),
            with_length(len),
            vec![format!(
                "header length {len} exceeds the {} bytes after it",
                len - 8
            )],
        ),
        (
            "length 2^63".into(),
            with_length(1 << 63),
            vec!["header length 9223372036854775808 is above".into()],
        ),
        (
            "length 2^32-1".into(),
            with_length((1 << 32) - 1),
            vec!["header length 4294967295 is above".into()],
        ),
        (
            "length cuts the JSON".into(),
            with_length(10),
            vec!["header is not valid JSON".into()],
        ),
        (
            "unknown dtype".into(),
            edited(&|h| h[name]["dtype"] = json!("Q9")),
            vec![format!("tensor {name:?} has unknown dtype \"Q9\"")],
        ),
        (
            "shape overflow".into(),
            edited(&|h| h[name]["shape"] = json!([1u64 << 32, 1u64 << 32, 1u64 << 32])),
            vec![format!("tensor {name:?}"), "overflows".into()],
        ),
        (
            "shape vs bytes".into(),
            edited(&|h| h[name]["shape"] = json!([49])),
            vec![
                format!("tensor {name:?}: shape [49] of F32 is 196 bytes"),
                "hold 192".into(),
            ],
        ),
        (
            "shape not integers".into(),
            edited(&|h| h[name]["shape"] = json!([-1])),
            vec!["is not a list of non-negative integers".into()],
        ),
        (
            "offsets past the data".into(),
            edited(&|h| {
                h[name]["data_offsets"] = json!([data.len() as u64, data.len() as u64 + 192])
            }),
            vec![format!("tensor {name:?}"), "end past the".into()],
        ),
        (
            "offsets reversed".into(),
            edited(&|h| h[name]["data_offsets"] = json!([200, 8])),
            vec!["is not [start, end] with start <= end".into()],
        ),
        (
            "overlap".into(),
            edited(&|h| {
                let o = h[other]["data_offsets"].clone();
                let size = o[1].as_u64().unwrap() - o[0].as_u64().unwrap();
                assert_eq!(size, 192);
                h[name]["data_offsets"] = o;
            }),
            vec!["overlap".into()],
        ),
        (
            "metadata not strings".into(),
            edited(&|h| {
                h.insert("__metadata__".into(), json!({"format": 7}));
            }),
            vec!["\"__metadata__\" must map strings to strings".into()],
        ),
        (
            "header not an object".into(),
            join(&json!([1, 2]), &data),
            vec!["header is not a JSON object".into()],
        ),
        (
            "no dtype".into(),
            edited(&|h| {
                h[name].as_object_mut().unwrap().remove("dtype");
            }),
            vec![format!("tensor {name:?} has no \"dtype\"")],
        ),
    ];
    // Truncations: inside the length, the JSON, the data, and the last byte.
    let header_end = 8 + u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    for cut in [
        0,
        7,
        9,
        header_end / 2,
        header_end,
        header_end + 1000,
        original.len() - 1,
    ] {
        cases.push((
            format!("truncated to {cut}"),
            original[..cut].to_vec(),
            vec![],
        ));
    }
    for (what, bytes, needles) in cases {
        let (model, out) = edited_copy("gemma3-f32", "st");
        std::fs::write(model.join("model.safetensors"), bytes).unwrap();
        let o = run_limited(&model, &out);
        let mut all: Vec<&str> = vec!["not a valid safetensors file"];
        all.extend(needles.iter().map(String::as_str));
        assert!(
            check_outcome(&o, &what, "model.safetensors", &all),
            "{what}: converted"
        );
        assert!(!out.exists(), "{what}");
    }
}

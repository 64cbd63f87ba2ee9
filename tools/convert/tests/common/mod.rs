//! What the converter's tests share beyond `edgegemma-test-support`: running the
//! `edgegemma-convert` binary (cargo builds it, and names it in `CARGO_BIN_EXE_*`, only for
//! this crate's own tests) and a scratch folder under this crate's test tmpdir. The model-file
//! helpers (checkpoints, dequantized tensors, hashes, random weights, model paths) come from
//! the support crate and are re-exported, so a test needs only `use common::*`.
// Each test file includes this module and uses part of it.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use edgegemma_test_support::checkpoint::{
    dequantize, read_checkpoint, sha16, write_safetensors,
};
pub use edgegemma_test_support::dirs::copy_dir;
pub use edgegemma_test_support::rng::random;
pub use edgegemma_test_support::{repo_root as repo, tiny_model as tiny};

/// A fresh directory under the target's test tmpdir.
pub fn scratch(name: &str) -> PathBuf {
    edgegemma_test_support::dirs::scratch_dir_in(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert-tests"),
        name,
    )
}

pub fn convert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgegemma-convert"))
        .args(args)
        .output()
        .expect("run edgegemma-convert")
}

/// Runs the converter and panics with its stderr if it fails.
pub fn convert_ok(args: &[&str]) {
    let out = convert(args);
    assert!(
        out.status.success(),
        "edgegemma-convert {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Names in `dir` that look like a converter temporary (`.<name>.<pid>.tmp`).
pub fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// Whether process `pid` is writing an output in `dir`: it holds a named temporary there,
/// or (Linux `O_TMPFILE`) an unnamed file of that folder, which `/proc` shows as
/// `dir/#inode (deleted)`.
pub fn writing_output_in(pid: u32, dir: &Path) -> bool {
    if !temporaries(dir).is_empty() {
        return true;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let dir = dir.canonicalize().unwrap();
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|target| {
            target.parent() == Some(dir.as_path())
                && target.to_string_lossy().ends_with(" (deleted)")
        })
}

/// `models/tiny/gemma1-mqa-f32` copied to `model` and widened to one layer with a `v × d`
/// embedding (Gemma 1 keeps every embedding row), so its conversion writes enough bytes for a
/// test to interrupt or kill it half-way. Weights are seeded: the same bytes every time.
pub fn widened_gemma1(model: &Path, v: usize, d: usize) {
    copy_dir(&tiny("gemma1-mqa-f32"), model);
    let cfg = model.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    let o = c.as_object_mut().unwrap();
    o.insert("vocab_size".into(), v.into());
    o.insert("hidden_size".into(), d.into());
    o.insert("num_hidden_layers".into(), 1.into());
    std::fs::write(&cfg, c.to_string()).unwrap();
    let mut t = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![v, d],
        random(v * d, 1, 0.05),
    )];
    for (n, s) in [
        ("model.norm.weight", vec![d]),
        ("model.layers.0.input_layernorm.weight", vec![d]),
        ("model.layers.0.post_attention_layernorm.weight", vec![d]),
        ("model.layers.0.self_attn.q_proj.weight", vec![64, d]),
        ("model.layers.0.self_attn.k_proj.weight", vec![16, d]),
        ("model.layers.0.self_attn.v_proj.weight", vec![16, d]),
        ("model.layers.0.self_attn.o_proj.weight", vec![d, 64]),
        ("model.layers.0.mlp.gate_proj.weight", vec![96, d]),
        ("model.layers.0.mlp.up_proj.weight", vec![96, d]),
        ("model.layers.0.mlp.down_proj.weight", vec![d, 96]),
    ] {
        let n_el = s.iter().product();
        t.push((n.to_string(), s, random(n_el, 2, 0.05)));
    }
    write_safetensors(&model.join("model.safetensors"), &t, false);
}

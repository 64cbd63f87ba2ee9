//! Bad input gives one clear error naming the file and tensor/key; the destination is never
//! left partial or overwritten without --force; --dry-run writes nothing; Ctrl-C leaves no
//! temporary file behind.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A copy of the tiny Gemma 3 checkpoint to break.
fn broken_copy(name: &str) -> PathBuf {
    let dir = scratch(name).join("model");
    copy_dir(&tiny("gemma3-f32"), &dir);
    dir
}

fn fails_with(dir: &Path, needles: &[&str]) {
    let out = dir.parent().unwrap().join("out.gguf");
    let o = convert(&[
        "hf",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-t",
        "q8_0",
    ]);
    let err = stderr(&o);
    assert!(!o.status.success(), "expected failure, got success");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let p = dir.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(v.as_object_mut().unwrap());
    std::fs::write(p, v.to_string()).unwrap();
}

fn edit_weights(dir: &Path, f: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
    let p = dir.join("model.safetensors");
    let mut t: Vec<(String, Vec<usize>, Vec<f32>)> = read_checkpoint(&p)
        .into_iter()
        .map(|(n, (s, v))| (n, s, v))
        .collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    f(&mut t);
    write_safetensors(&p, &t, false);
}

#[test]
fn unknown_architecture() {
    let d = broken_copy("arch");
    edit_config(&d, |c| {
        c.insert(
            "architectures".into(),
            serde_json::json!(["LlamaForCausalLM"]),
        );
    });
    fails_with(
        &d,
        &[
            "config.json",
            "unsupported architecture \"LlamaForCausalLM\"",
            "Gemma3ForCausalLM",
        ],
    );
}

#[test]
fn missing_tensor() {
    let d = broken_copy("missing");
    edit_weights(&d, |t| {
        t.retain(|(n, _, _)| n != "model.layers.3.mlp.up_proj.weight")
    });
    fails_with(
        &d,
        &[
            "missing tensor \"model.layers.3.mlp.up_proj.weight\"",
            "blk.3.ffn_up.weight",
        ],
    );
}

#[test]
fn unexpected_shape() {
    let d = broken_copy("shape");
    edit_config(&d, |c| {
        c.insert("intermediate_size".into(), serde_json::json!(64));
    });
    fails_with(
        &d,
        &["model.safetensors", "has shape [96, 48], expected [64, 48]"],
    );
}

#[test]
fn unexpected_tensor() {
    let d = broken_copy("extra");
    edit_weights(&d, |t| {
        t.push((
            "model.layers.0.mystery.weight".into(),
            vec![4],
            vec![0.0; 4],
        ))
    });
    fails_with(
        &d,
        &[
            "model.safetensors",
            "unexpected tensor \"model.layers.0.mystery.weight\"",
        ],
    );
}

#[test]
fn unreadable_dtype() {
    let d = broken_copy("dtype");
    let p = d.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ints = vec![0u8; 48 * 8];
    let mut views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "model.norm.weight")
        .collect();
    views.push((
        "model.norm.weight".into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![48], &ints).unwrap(),
    ));
    let out = safetensors::serialize(views, None).unwrap();
    drop(st);
    std::fs::write(&p, out).unwrap();
    fails_with(
        &d,
        &[
            "model.safetensors",
            "tensor \"model.norm.weight\" has dtype I64",
        ],
    );
}

#[test]
fn truncated_safetensors() {
    let d = broken_copy("truncated");
    let p = d.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    fails_with(&d, &["model.safetensors", "not a valid safetensors file"]);
}

#[test]
fn missing_files() {
    let d = broken_copy("no-config");
    std::fs::remove_file(d.join("config.json")).unwrap();
    fails_with(&d, &["no config.json"]);
    let d = broken_copy("no-tokenizer");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    fails_with(&d, &["no tokenizer"]);
    let d = broken_copy("no-weights");
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    fails_with(&d, &["no model.safetensors"]);
}

#[test]
fn bad_config_values() {
    let d = broken_copy("bad-rope");
    edit_config(&d, |c| {
        c.remove("rope_parameters");
        c.insert(
            "rope_scaling".into(),
            serde_json::json!({"rope_type": "yarn", "factor": 4.0}),
        );
    });
    fails_with(&d, &["config.json", "\"yarn\" is not supported"]);
}

#[test]
fn unknown_type_lists_the_choices() {
    let o = convert(&[
        "hf",
        tiny("gemma3-f32").to_str().unwrap(),
        "-o",
        "/dev/null",
        "-t",
        "q3_k",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("q4_k_m"), "{}", stderr(&o));
}

#[test]
fn existing_output_needs_force_and_dry_run_writes_nothing() {
    let dir = scratch("force");
    let out = dir.join("out.gguf");
    std::fs::write(&out, b"keep me").unwrap();
    let model = tiny("gemma1-mqa-f32");
    let args = [
        "hf",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-t",
        "q8_0",
        "-q",
    ];
    let o = convert(&args);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already exists (pass --force"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");

    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let o = convert(&dry);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = String::from_utf8_lossy(&o.stdout);
    assert!(
        plan.contains("blk.0.ffn_down.weight") && plan.contains("q8_0"),
        "{plan}"
    );
    assert!(plan.contains("bits per weight"), "{plan}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");

    let mut force = args.to_vec();
    force.push("--force");
    convert_ok(&force);
    assert_eq!(&std::fs::read(&out).unwrap()[..4], b"GGUF");
    // The dry run predicted the size exactly.
    let predicted: u64 = plan
        .lines()
        .find_map(|l| l.strip_prefix("file "))
        .map(|l| (l.split(' ').next().unwrap().parse::<f64>().unwrap() * 1048576.0) as u64)
        .unwrap();
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(predicted.abs_diff(size) < 6000, "{predicted} vs {size}");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["out.gguf"]);
}

/// Ctrl-C in the middle of a tensor: the run stops, the temporary file goes, nothing
/// appears at the destination.
#[cfg(unix)]
#[test]
fn interrupt_leaves_nothing_behind() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = scratch("interrupt");
    let model = dir.join("big");
    // Gemma 1 keeps every embedding row: a 16384 × 1024 embedding (64 MiB of f32) that
    // q4_k_m quantizes on one thread for well over a second.
    widened_gemma1(&model, 16384, 1024);
    let out = dir.join("out.gguf");
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgegemma-convert"))
        .args([
            "hf",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-t",
            "q4_k_m",
            "-j",
            "1",
            "-q",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tmp_exists = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
    };
    let start = Instant::now();
    while !writing_output_in(child.id(), &dir) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no output was being written"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(50));
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    assert!(!out.exists());
    assert!(!tmp_exists(), "temporary file left behind");
}

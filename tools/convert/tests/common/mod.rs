//! Helpers shared by the converter tests: running the binary, reading checkpoints and GGUF
//! tensors as f32, writing small synthetic checkpoints.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgegemma::gguf::TensorView;
use edgegemma_kernels::formats::dequantize_row;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn tiny(name: &str) -> PathBuf {
    repo().join("models/tiny").join(name)
}

/// A fresh directory under the target's test tmpdir.
pub fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("convert-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
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

/// First 16 hex digits of the sha256 (what the goldens store).
pub fn sha16(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Every tensor of a safetensors file as (shape, f32 values).
pub fn read_checkpoint(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let data = v.data();
            let vals: Vec<f32> = match v.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                    .collect(),
                other => panic!("{name}: {other:?}"),
            };
            (name, (v.shape().to_vec(), vals))
        })
        .collect()
}

/// A GGUF tensor dequantized to f32.
pub fn dequantize(t: &TensorView) -> Vec<f32> {
    let mut out = vec![0.0f32; t.n_elements() as usize];
    for (r, row) in out.chunks_mut(t.row_len()).enumerate() {
        dequantize_row(t.ggml_type(), t.row(r).unwrap(), row).unwrap();
    }
    out
}

/// Writes `model.safetensors` with f32 or bf16 tensors.
pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], bf16: bool) {
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            let bytes: Vec<u8> = if bf16 {
                v.iter()
                    .flat_map(|x| half::bf16::from_f32(*x).to_bits().to_le_bytes())
                    .collect()
            } else {
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            };
            (n.clone(), s.clone(), bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = encoded
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(
                    if bf16 { Dtype::BF16 } else { Dtype::F32 },
                    s.clone(),
                    b,
                )
                .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Deterministic pseudo-random values (xorshift), roughly N(0, scale²)-shaped.
pub fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            let mut acc = 0.0f32;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                acc += (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            }
            acc * scale * 1.7
        })
        .collect()
}

/// Copies a folder (non-recursive).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
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

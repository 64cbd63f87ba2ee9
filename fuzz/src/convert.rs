//! Entry functions for the converter's readers: the safetensors header and `config.json`,
//! each followed through the conversion they feed (tensor map, tokenizer, plan, and the
//! write of a q8_0 GGUF), so a lying header or config meets every place that trusts it.
//!
//! The converter reads a model folder, so each input is written into a scratch folder of
//! this process and thread (under `TMPDIR`; the fuzz runs use `/dev/shm`) next to the
//! other files of the tiny Gemma 1 checkpoint in `models/tiny/gemma1-mha-bf16`.

use std::hint::black_box;
use std::path::PathBuf;

use edgegemma_convert::arch;
use edgegemma_convert::hf::HfModel;
use edgegemma_convert::pipeline::{self, Options};
use edgegemma_convert::recipe::FileType;
use edgegemma_convert::source::SafetensorsSet;

/// Largest safetensors input (the tiny checkpoints are 160-720 KiB).
pub const MAX_SAFETENSORS_BYTES: usize = 1 << 20;

/// Largest config.json input (real ones are 1-3 KiB).
pub const MAX_CONFIG_BYTES: usize = 64 << 10;

const TINY_CONFIG: &[u8] = include_bytes!("../../models/tiny/gemma1-mha-bf16/config.json");
const TINY_WEIGHTS: &[u8] = include_bytes!("../../models/tiny/gemma1-mha-bf16/model.safetensors");
const TINY_TOKENIZER: &[u8] = include_bytes!("../../models/tiny/gemma1-mha-bf16/tokenizer.json");
const TINY_TOKENIZER_CONFIG: &[u8] =
    include_bytes!("../../models/tiny/gemma1-mha-bf16/tokenizer_config.json");

fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "edgegemma-fuzz-convert-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ))
}

thread_local! {
    /// Which file of this thread's folder holds the previous input (`None`: no folder yet).
    static LAST_REPLACED: std::cell::RefCell<Option<String>> =
        const { std::cell::RefCell::new(None) };
}

/// Removes this thread's model folder (for the replay tests).
pub fn remove_scratch() {
    LAST_REPLACED.with(|l| l.borrow_mut().take());
    let _ = std::fs::remove_dir_all(scratch_dir());
}

/// A model folder of this process and thread holding the tiny checkpoint, with
/// `replace` (file name, bytes) written over its file of that name.
pub fn model_dir(replace: (&str, &[u8])) -> PathBuf {
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir).expect("create the fuzz model folder");
    // The fixed files are written once per folder and whatever replaced one last time is
    // put back; only the input is written on every run.
    let last = LAST_REPLACED.with(|l| l.borrow_mut().replace(replace.0.to_string()));
    for (name, bytes) in [
        ("config.json", TINY_CONFIG),
        ("model.safetensors", TINY_WEIGHTS),
        ("tokenizer.json", TINY_TOKENIZER),
        ("tokenizer_config.json", TINY_TOKENIZER_CONFIG),
    ] {
        let stale = last.as_deref() != Some(replace.0) && last.is_some();
        if name == replace.0 {
            std::fs::write(dir.join(name), replace.1).expect("write the fuzz input");
        } else if last.is_none() || stale {
            std::fs::write(dir.join(name), bytes).expect("write the fuzz model folder");
        }
    }
    dir
}

/// Opens the folder as `edgegemma-convert hf` does and, if it converts, writes the q8_0
/// GGUF (to the same scratch folder, replacing the previous one).
fn convert_folder(dir: &std::path::Path) {
    let Ok(model) = HfModel::open(dir) else {
        return;
    };
    let Ok(plan) = model.plan(FileType::Q8_0, false) else {
        return;
    };
    let opts = Options {
        force: true,
        dry_run: false,
        quiet: true,
    };
    let _ = black_box(pipeline::write(plan, &dir.join("out.gguf"), &opts));
}

/// Input: a `model.safetensors`. Every tensor of a readable dtype is read in full, then
/// the folder (with the tiny Gemma 1 config and tokenizer) is converted.
pub fn safetensors(data: &[u8]) {
    if data.len() > MAX_SAFETENSORS_BYTES {
        return;
    }
    let dir = model_dir(("model.safetensors", data));
    if let Ok(set) = SafetensorsSet::open(&dir) {
        let mut names: Vec<String> = set.names().map(str::to_string).collect();
        names.sort_unstable();
        for name in &names {
            let e = set.get(name).expect("listed");
            let Ok(elem) = e.elem else { continue };
            // Rows of the last dimension, as the converter reads a matrix.
            let row_len = e.shape.last().copied().unwrap_or(1);
            let n: usize = e.shape.iter().product();
            if row_len == 0 || n == 0 {
                continue;
            }
            let src = set.source(name, elem, arch::Transform::Copy, row_len);
            let mut out = vec![0.0f32; n];
            use edgegemma_convert::source::TensorSource;
            let _ = black_box(src.read_f32(0, &mut out));
        }
    }
    convert_folder(&dir);
}

/// Input: a `config.json`. The folder (with the tiny Gemma 1 weights and tokenizer) is
/// converted, which resolves the hyperparameters against the weights and turns them into
/// the tensor map and the GGUF metadata.
pub fn config(data: &[u8]) {
    if data.len() > MAX_CONFIG_BYTES {
        return;
    }
    let dir = model_dir(("config.json", data));
    convert_folder(&dir);
}

//! End-to-end tests of the runtime (`tests/`): a checkpoint is converted with the converter
//! library, loaded and run by the runtime, and its logits or greedy tokens compared with a
//! reference engine's — the tiny random-weight checkpoints of `models/tiny/` against the
//! logits transformers / Google's `recurrentgemma` computed (`e2e_tiny.rs`), the real
//! Gemma 3 270M against llama.cpp (`real_greedy.rs`). The converter's own tests (its command
//! line, its bytes against gguf-py's) stay in `tools/convert/tests/`.
//!
//! This library holds what those tests share: the two conversions, by the same calls the
//! `edgegemma-convert` binary makes (the binary itself only exists for the converter's own
//! integration tests).

use edgegemma_convert::hf::HfModel;
use edgegemma_convert::pipeline::{self, Options};
use edgegemma_convert::recipe::FileType;
use edgegemma_convert::requantize;
use std::path::Path;

const OPTIONS: Options = Options {
    force: true,
    dry_run: false,
    quiet: true,
};

fn file_type(ty: &str) -> Result<FileType, String> {
    FileType::parse(ty).ok_or_else(|| format!("unknown output type {ty:?}"))
}

/// `edgegemma-convert hf <model_dir> -o <out> -t <ty> --force -q`.
pub fn convert_hf(model_dir: &Path, out: &Path, ty: &str) -> Result<(), String> {
    let ty = file_type(ty)?;
    edgegemma_convert::output::check_destination(out, OPTIONS.force).map_err(|e| e.to_string())?;
    let model = HfModel::open(model_dir).map_err(|e| e.to_string())?;
    let plan = model.plan(ty, false).map_err(|e| e.to_string())?;
    pipeline::write(plan, out, &OPTIONS).map_err(|e| e.to_string())?;
    Ok(())
}

/// `edgegemma-convert quantize <input> -o <out> -t <ty> --allow-requantize --force -q`.
pub fn requantize(input: &Path, out: &Path, ty: &str) -> Result<(), String> {
    let ty = file_type(ty)?;
    edgegemma_convert::output::check_destination(out, OPTIONS.force).map_err(|e| e.to_string())?;
    let file = requantize::open(input).map_err(|e| e.to_string())?;
    let plan = requantize::plan(&file, ty, false, true, &mut |w| eprintln!("{w}"))
        .map_err(|e| e.to_string())?;
    pipeline::write(plan, out, &OPTIONS).map_err(|e| e.to_string())?;
    Ok(())
}

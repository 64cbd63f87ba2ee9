//! Helpers shared by the tests and benches of every crate in the workspace, so each concept
//! has one implementation: deterministic random numbers ([`rng`]), scratch and temporary
//! directories ([`dirs`]), a byte-level GGUF builder that can write invalid files
//! ([`raw_gguf`]), a random-weight Gemma 3 GGUF written with the runtime's own writer
//! ([`tiny_gguf`]), safetensors checkpoints and dequantized GGUF tensors ([`checkpoint`]), a
//! counting global allocator ([`alloc_count`]), and where the repository's models are ([`repo_root`], [`tiny_model`], [`real_model`]).
//!
//! Dev-only (`publish = false`). Everything that needs the runtime is behind the default
//! `runtime` feature; the kernels crate's tests use the rest without it.

pub mod alloc_count;
#[cfg(feature = "runtime")]
pub mod checkpoint;
pub mod dirs;
pub mod raw_gguf;
pub mod rng;
#[cfg(feature = "runtime")]
pub mod tiny_gguf;

use std::path::{Path, PathBuf};

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `models/tiny/<name>`: a tiny random-weight checkpoint with its reference goldens.
pub fn tiny_model(name: &str) -> PathBuf {
    repo_root().join("models/tiny").join(name)
}

/// Where `tools/fetch-real-model.sh` puts the real Gemma 3 270M Q4_K_M file.
pub const REAL_MODEL_DEFAULT: &str = "models/real/gemma3-270m-q4_k_m.gguf";

/// The real Gemma 3 270M Q4_K_M file: `EDGEGEMMA_REAL_MODEL` when set (asked for explicitly,
/// a path that is not a file is a failure, not a skip), else [`REAL_MODEL_DEFAULT`] when it
/// exists, else `None` (the caller skips and says why).
pub fn real_model() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("EDGEGEMMA_REAL_MODEL").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "EDGEGEMMA_REAL_MODEL={} is not a file",
            p.display()
        );
        return Some(p);
    }
    let p = repo_root().join(REAL_MODEL_DEFAULT);
    p.is_file().then_some(p)
}

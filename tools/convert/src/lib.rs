//! `edgegemma-convert`: Hugging Face Gemma checkpoints (and existing GGUFs) to 4- and 8-bit
//! GGUF, llama.cpp-compatible for `gemma`, `gemma2` and `gemma3`, plus this project's
//! `recurrentgemma` convention (`docs/gguf-recurrentgemma.md`).

pub mod arch;
pub mod config;
pub mod error;
pub mod hf;
pub mod output;
pub mod pipeline;
pub mod recipe;
pub mod requantize;
pub mod source;
pub mod spm;
pub mod tokenizer;
pub mod validate;

pub use error::{Error, Result};

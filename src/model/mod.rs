//! Model families. Each architecture is one file with a `forward` that reads like the paper;
//! they share the GGUF loading helpers here and the `LanguageModel` interface the CLI drives.

pub mod driver;
pub mod gemma;
pub mod hparams_check;
pub mod recurrent_gemma;
mod rows;
pub(crate) mod shared;
pub mod state;
pub mod weights;

use crate::gguf::names::Arch;
use crate::gguf::GgufFile;
use crate::kv::CacheType;
use std::fmt;
use std::path::Path;

/// A model error: one line, naming the file where there is one.
#[derive(Debug)]
pub struct ModelError(pub String);

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelError {}

impl From<crate::gguf::GgufError> for ModelError {
    fn from(e: crate::gguf::GgufError) -> Self {
        ModelError(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// How to build a model's run-time state.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Context length (positions); 0 = the model's trained length.
    pub n_ctx: usize,
    /// Tokens per forward batch during prompt processing.
    pub n_batch: usize,
    pub cache_type: CacheType,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            n_ctx: 4096,
            n_batch: 256,
            cache_type: CacheType::F16,
        }
    }
}

/// What the CLI needs from any architecture.
pub trait LanguageModel: Send {
    /// Architecture name as GGUF spells it.
    fn arch(&self) -> &str;
    /// Rows of the output projection (logits per position).
    fn n_vocab(&self) -> usize;
    /// The most positions this instance can hold (`usize::MAX` when unbounded).
    fn n_ctx(&self) -> usize;
    /// Positions consumed so far.
    fn pos(&self) -> usize;
    /// Forgets the conversation.
    fn reset(&mut self);
    /// Feeds `tokens` at the current position and returns the logits of the last one.
    fn eval(&mut self, tokens: &[u32]) -> Result<&[f32]>;
    /// Feeds `tokens` and hands the logits of every position, in order, to `sink`.
    fn eval_all(&mut self, tokens: &[u32], sink: &mut dyn FnMut(&[f32])) -> Result<()>;
    /// Bytes of run-time state (caches, recurrent state), not counting weights and scratch.
    fn state_bytes(&self) -> usize;
    /// Writes the conversation state (see [`state`]).
    fn save_state(&self, w: &mut dyn std::io::Write) -> Result<()>;
    /// Restores a state written by `save_state` for the same model and settings.
    fn load_state(&mut self, r: &mut dyn std::io::Read) -> Result<()>;
    /// Keeps the first `pos` positions and forgets the rest, so a prompt that shares them
    /// need not recompute them (the server's prompt cache). Returns false, changing nothing,
    /// when the model cannot rewind there (a recurrent state has no history to go back to;
    /// callers then restore a saved state or start over).
    fn truncate(&mut self, pos: usize) -> bool {
        pos == self.pos()
    }
}

/// Opens a GGUF and builds the model its architecture names.
pub fn load(path: &Path, run: &RunConfig) -> Result<(Box<dyn LanguageModel>, GgufFile)> {
    let file = GgufFile::open(path)?;
    let name = file.architecture()?;
    let model: Box<dyn LanguageModel> = match Arch::from_name(name) {
        Some(Arch::Gemma | Arch::Gemma2 | Arch::Gemma3) => {
            Box::new(gemma::Gemma::load(&file, run)?)
        }
        Some(Arch::RecurrentGemma) => Box::new(recurrent_gemma::RecurrentGemma::load(&file, run)?),
        None => {
            let known: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
            return Err(ModelError(format!(
                "{}: unsupported architecture {name:?} (edgegemma runs {})",
                path.display(),
                known.join(", ")
            )));
        }
    };
    Ok((model, file))
}

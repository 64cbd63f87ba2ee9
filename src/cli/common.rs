//! Options shared by the subcommands that load a model.

use clap::Args;
use edgegemma::kv::CacheType;
use edgegemma::model::RunConfig;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// GGUF model file
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Threads (default: all cores)
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Context length in tokens (0 = the model's trained length)
    #[arg(short = 'c', long = "ctx", default_value_t = 4096)]
    pub ctx: usize,
    /// Tokens per batch during prompt processing
    #[arg(short = 'b', long = "batch", default_value_t = 256)]
    pub batch: usize,
    /// KV cache storage: f16, q8_0 or f32
    #[arg(long = "cache-type", default_value = "f16", value_parser = parse_cache_type)]
    pub cache_type: CacheType,
}

fn parse_cache_type(s: &str) -> Result<CacheType, String> {
    CacheType::parse(s).ok_or_else(|| format!("unknown cache type {s:?} (use f16, q8_0 or f32)"))
}

impl ModelArgs {
    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            n_ctx: self.ctx,
            n_batch: self.batch.max(1),
            cache_type: self.cache_type,
        }
    }
}

/// Sizes the global rayon pool once (every matmul and attention runs on it).
pub fn set_threads(threads: Option<usize>) -> Result<(), String> {
    if let Some(n) = threads {
        if n == 0 {
            return Err("--threads must be at least 1".into());
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| format!("cannot start {n} threads: {e}"))?;
    }
    Ok(())
}

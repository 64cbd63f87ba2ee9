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

/// Runs a command's `body` inside a rayon pool of `threads` workers (default: one per core).
/// The whole command runs on the pool: a matmul issued from a worker forks in well under a
/// microsecond, one issued from outside pays 15-27 µs to enter the pool (measured), which at
/// ~130 matmuls per token would cost 2-3 ms a token.
pub fn with_threads(
    threads: Option<usize>,
    body: impl FnOnce() -> super::CliResult + Send,
) -> super::CliResult {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        if n == 0 {
            return Err("--threads must be at least 1".into());
        }
        builder = builder.num_threads(n);
    }
    let pool = builder
        .build()
        .map_err(|e| format!("cannot start the thread pool: {e}"))?;
    // `CliResult` is not `Send`; carry the message across.
    pool.install(|| body().map_err(|e| e.to_string()))
        .map_err(Into::into)
}

/// Restores `--load-state FILE` into the model.
pub fn load_state(
    model: &mut dyn edgegemma::model::LanguageModel,
    path: &std::path::Path,
) -> Result<(), String> {
    let f =
        std::fs::File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let mut r = std::io::BufReader::new(f);
    model
        .load_state(&mut r)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes the model's state to `path` through a temporary file and a rename, so a failed
/// write never leaves a partial state file behind.
pub fn save_state(
    model: &dyn edgegemma::model::LanguageModel,
    path: &std::path::Path,
) -> Result<(), String> {
    use std::io::Write;
    let tmp = path.with_extension("state-tmp");
    let res = (|| -> Result<(), String> {
        let f = std::fs::File::create(&tmp).map_err(|e| format!("cannot create: {e}"))?;
        let mut w = std::io::BufWriter::new(f);
        model.save_state(&mut w).map_err(|e| e.to_string())?;
        let f = w.into_inner().map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename into place: {e}"))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::stderr().flush().ok();
    Ok(())
}

//! `edgegemma run`: complete a prompt, streaming text to stdout and one timing line to stderr
//! (or, with `--json`, one JSON object on stdout).

use super::common::{load_state, save_state, with_threads, ModelArgs};
use super::CliResult;
use clap::Args;
use edgegemma::generate::{generate, StopReason};
use edgegemma::model::ModelError;
use edgegemma::sampler::{Sampler, SamplerConfig};
use edgegemma::tokenizer::{StreamDecoder, Tokenizer};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature (0 = greedy)
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    /// Top-k (0 = off)
    #[arg(long = "top-k", default_value_t = 40)]
    pub top_k: usize,
    /// Top-p (1.0 = off)
    #[arg(long = "top-p", default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p (0.0 = off)
    #[arg(long = "min-p", default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty (1.0 = off)
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Random seed (same seed, same text)
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn config(&self) -> Result<SamplerConfig, String> {
        if !(self.temp.is_finite() && self.top_p.is_finite() && self.min_p.is_finite()) {
            return Err("sampling parameters must be finite numbers".into());
        }
        if !(0.0..=1.0).contains(&self.top_p) || !(0.0..=1.0).contains(&self.min_p) {
            return Err("--top-p and --min-p must be between 0 and 1".into());
        }
        if self.repeat_penalty <= 0.0 {
            return Err("--repeat-penalty must be > 0".into());
        }
        Ok(SamplerConfig {
            temp: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed: self.seed,
        })
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt text
    #[arg(short = 'p', long = "prompt", conflicts_with = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Tokens to generate (-1 = until an end token or the context is full)
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_hyphen_values = true)]
    pub n_predict: i64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Restore a conversation state saved with --save-state before the prompt
    #[arg(long = "load-state")]
    pub load_state: Option<PathBuf>,
    /// Save the conversation state (every token fed so far) at the end
    #[arg(long = "save-state")]
    pub save_state: Option<PathBuf>,
    /// Print one JSON object (prompt_ids, generated_ids, text, timings) instead of streaming
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &RunArgs) -> CliResult {
    with_threads(args.model.threads, || run_in_pool(args))
}

fn run_in_pool(args: &RunArgs) -> CliResult {
    let prompt = match (&args.prompt, &args.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| format!("{}: cannot read prompt: {e}", f.display()))?,
        (None, None) => return Err("give a prompt with -p TEXT or -f FILE".into()),
    };
    let sampler_cfg = args.sampling.config()?;
    let t0 = Instant::now();
    let (mut model, file) = super::common::load_model(&args.model)?;
    let tok = Tokenizer::from_gguf_file(&file)?;
    if let Some(path) = &args.load_state {
        load_state(model.as_mut(), path)?;
    }
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    // A restored conversation already has its BOS.
    let prompt_ids = tok.encode(&prompt, model.pos() == 0, true);
    if prompt_ids.is_empty() {
        return Err("the prompt is empty".into());
    }
    if model.pos() + prompt_ids.len() > model.n_ctx() {
        return Err(format!(
            "the prompt is {} tokens, longer than the context ({} positions, {} already used); raise -c/--ctx",
            prompt_ids.len(),
            model.n_ctx(),
            model.pos()
        )
        .into());
    }
    let n_predict = usize::try_from(args.n_predict).ok();
    let mut sampler = Sampler::new(sampler_cfg);
    let mut generated = Vec::new();
    let mut text = String::new();
    let mut dec = StreamDecoder::new(false);
    let mut stdout = std::io::stdout().lock();
    let json = args.json;
    let (timings, stop) = generate(
        model.as_mut(),
        &tok,
        &mut sampler,
        &prompt_ids,
        n_predict,
        &mut |id| {
            generated.push(id);
            let piece = dec.push(&tok, id).map_err(|e| ModelError(e.to_string()))?;
            text.push_str(piece);
            if !json {
                stdout
                    .write_all(piece.as_bytes())
                    .and_then(|()| stdout.flush())
                    .map_err(|e| ModelError(format!("cannot write to stdout: {e}")))?;
            }
            Ok(())
        },
    )?;
    let tail = dec.finish().to_string();
    text.push_str(&tail);
    if let Some(path) = &args.save_state {
        save_state(model.as_ref(), path)?;
    }
    let stop_name = match stop {
        StopReason::EndOfGeneration => "eog",
        StopReason::Budget => "n_predict",
        StopReason::ContextFull => "context_full",
    };
    if json {
        let obj = serde_json::json!({
            "prompt_ids": prompt_ids,
            "generated_ids": generated,
            "text": text,
            "stop": stop_name,
            "timings": {
                "load_ms": load_ms,
                "prompt_tokens": timings.prompt_tokens,
                "prompt_ms": timings.prompt.as_secs_f64() * 1e3,
                "prompt_tps": timings.prompt_tps(),
                "gen_tokens": timings.gen_tokens,
                "gen_ms": timings.gen.as_secs_f64() * 1e3,
                "gen_tps": timings.gen_tps(),
                "kernels": edgegemma::kernels::kernels().name,
            }
        });
        writeln!(stdout, "{obj}").map_err(|e| format!("cannot write to stdout: {e}"))?;
    } else {
        write!(stdout, "{tail}").ok();
        writeln!(stdout).ok();
        if stop == StopReason::ContextFull {
            eprintln!(
                "edgegemma: stopped: context full ({} tokens)",
                model.n_ctx()
            );
        }
        eprintln!(
            "load {:.0} ms | prompt {} tok, {:.1} t/s | gen {} tok, {:.1} t/s | {} threads, {} kernels",
            load_ms,
            timings.prompt_tokens,
            timings.prompt_tps(),
            timings.gen_tokens,
            timings.gen_tps(),
            rayon::current_num_threads(),
            edgegemma::kernels::kernels().name
        );
    }
    Ok(())
}

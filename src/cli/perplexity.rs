//! `edgegemma perplexity`: perplexity of a text file, computed like llama.cpp's tool: the token
//! stream is cut into chunks of `ctx` tokens, each starting with BOS, and only the second half
//! of every chunk is scored (so every scored token has at least ctx/2 tokens of context).

use super::common::{with_threads, ModelArgs};
use super::CliResult;
use clap::Args;
use edgegemma::tokenizer::Tokenizer;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Text file to score
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Stop after this many chunks (0 = all)
    #[arg(long = "chunks", default_value_t = 0)]
    pub chunks: usize,
    /// Print one JSON object instead of the progress lines
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &PerplexityArgs) -> CliResult {
    with_threads(args.model.threads, || run_in_pool(args))
}

fn run_in_pool(args: &PerplexityArgs) -> CliResult {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| format!("{}: cannot read: {e}", args.file.display()))?;
    let n_ctx = args.model.ctx();
    if n_ctx < 4 {
        return Err("perplexity needs -c/--ctx of at least 4 tokens".into());
    }
    let (mut model, file) = super::common::load_model(&args.model)?;
    // Chunks as long as the context the model holds (clamped to its trained length).
    let n_ctx = n_ctx.min(model.n_ctx());
    if n_ctx < 4 {
        return Err(format!(
            "{}: the model's context of {n_ctx} positions is too short for perplexity (4 at least)",
            args.model.model.display()
        )
        .into());
    }
    let tok = Tokenizer::from_gguf_file(&file)?;
    let tokens = tok.encode(&text, true, false);
    let mut n_chunks = tokens.len() / n_ctx;
    if n_chunks == 0 {
        return Err(format!(
            "{}: {} tokens is less than one chunk of {n_ctx}; use a longer text or a smaller -c",
            args.file.display(),
            tokens.len()
        )
        .into());
    }
    if args.chunks > 0 {
        n_chunks = n_chunks.min(args.chunks);
    }
    let first = n_ctx / 2;
    let (mut nll_sum, mut nll2_sum, mut count) = (0.0f64, 0.0f64, 0usize);
    let start = Instant::now();
    let mut chunk_tokens = vec![0u32; n_ctx];
    for c in 0..n_chunks {
        chunk_tokens.copy_from_slice(&tokens[c * n_ctx..(c + 1) * n_ctx]);
        if let Some(bos) = tok.bos_id().filter(|_| tok.add_bos()) {
            chunk_tokens[0] = bos;
        }
        model.reset();
        let mut j = 0usize;
        model.eval_all(&chunk_tokens, &mut |row| {
            if j >= first && j + 1 < n_ctx {
                let target = chunk_tokens[j + 1] as usize;
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let sum: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
                let nll = -(row[target] as f64 - max - sum.ln());
                nll_sum += nll;
                nll2_sum += nll * nll;
                count += 1;
            }
            j += 1;
        })?;
        if !args.json {
            eprint!("[{}]{:.4} ", c + 1, (nll_sum / count as f64).exp());
        }
    }
    let mean = nll_sum / count as f64;
    let var = (nll2_sum / count as f64 - mean * mean).max(0.0);
    let ppl = mean.exp();
    // Standard error of the mean NLL, carried to the perplexity.
    let ppl_err = ppl * (var / (count as f64 - 1.0).max(1.0)).sqrt();
    let secs = start.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "perplexity": ppl, "stderr": ppl_err, "chunks": n_chunks, "ctx": n_ctx,
                "scored_tokens": count, "seconds": secs,
            })
        );
    } else {
        eprintln!();
        println!(
            "perplexity: {ppl:.4} ± {ppl_err:.4} over {n_chunks} chunks of {n_ctx} tokens ({count} scored, {:.1} t/s)",
            (n_chunks * n_ctx) as f64 / secs
        );
    }
    Ok(())
}

//! `edgegemma logits`: every position's logits for given token ids, as a NumPy f32 array
//! `[n_tokens, n_vocab]` — how users and tests compare implementations.

use super::common::{with_threads, ModelArgs};
use super::CliResult;
use clap::Args;
use edgegemma::npy;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LogitsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Comma-separated token ids, e.g. 2,651,1234
    #[arg(long, value_delimiter = ',', required = true)]
    pub tokens: Vec<u32>,
    /// Output .npy file
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

pub fn run(args: &LogitsArgs) -> CliResult {
    with_threads(args.model.threads, || run_in_pool(args))
}

fn run_in_pool(args: &LogitsArgs) -> CliResult {
    let (mut model, _file) = super::common::load_model(&args.model)?;
    let n_vocab = model.n_vocab();
    let out_path = &args.output;
    let f = std::fs::File::create(out_path)
        .map_err(|e| format!("{}: cannot create: {e}", out_path.display()))?;
    let mut w = BufWriter::new(f);
    let io_err = |e: std::io::Error| format!("{}: write failed: {e}", out_path.display());
    npy::write_f32_header(&mut w, &[args.tokens.len(), n_vocab]).map_err(io_err)?;
    let mut write_err = None;
    model.eval_all(&args.tokens, &mut |row| {
        if write_err.is_none() {
            if let Err(e) = npy::write_f32_values(&mut w, row) {
                write_err = Some(e);
            }
        }
    })?;
    if let Some(e) = write_err {
        return Err(io_err(e).into());
    }
    w.flush().map_err(io_err)?;
    Ok(())
}

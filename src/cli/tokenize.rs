//! `edgegemma tokenize -m MODEL.gguf (-p TEXT | -f FILE) [--json] [--no-bos]
//! [--no-parse-special]`: the model's token ids and pieces for a text.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use edgegemma::tokenizer::Tokenizer;

use super::{write_stdout, CliResult};

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["prompt", "file"]))]
pub struct TokenizeArgs {
    /// GGUF model file (only its tokenizer is read)
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Text to tokenize
    #[arg(short = 'p', long = "prompt")]
    pub prompt: Option<String>,
    /// File whose contents (UTF-8) to tokenize
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Print one JSON object {"ids": [...], "pieces": [...]}
    #[arg(long)]
    pub json: bool,
    /// Do not prepend BOS (it is prepended only if the model's add_bos_token is set)
    #[arg(long = "no-bos")]
    pub no_bos: bool,
    /// Treat control-token text such as <start_of_turn> as plain text
    #[arg(long = "no-parse-special")]
    pub no_parse_special: bool,
}

pub fn run(args: &TokenizeArgs) -> CliResult {
    let text = match (&args.prompt, &args.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            let bytes =
                std::fs::read(f).map_err(|e| format!("{}: cannot read: {e}", f.display()))?;
            String::from_utf8(bytes).map_err(|e| {
                format!(
                    "{}: not UTF-8 text (invalid byte at offset {})",
                    f.display(),
                    e.utf8_error().valid_up_to()
                )
            })?
        }
        (None, None) => return Err("give the text with -p TEXT or -f FILE".into()),
    };
    let tokenizer = Tokenizer::from_gguf(&args.model)?;
    let ids = tokenizer.encode(&text, !args.no_bos, !args.no_parse_special);
    // Pieces as text; a byte token that is only part of a character shows as `<0xHH>`.
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| {
            let piece = tokenizer.token_to_piece(id, true).unwrap_or_default();
            match std::str::from_utf8(piece) {
                Ok(s) => s.to_string(),
                Err(_) => tokenizer.token_text(id).unwrap_or_default().to_string(),
            }
        })
        .collect();

    let mut out = String::new();
    if args.json {
        let obj = serde_json::json!({ "ids": ids, "pieces": pieces });
        out.push_str(&obj.to_string());
        out.push('\n');
    } else {
        for (id, piece) in ids.iter().zip(&pieces) {
            let _ = writeln!(out, "{id:>7} {piece:?}");
        }
        let _ = writeln!(out, "{} tokens", ids.len());
    }
    write_stdout(&out)
}

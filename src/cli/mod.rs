//! Subcommands, one file each. Each exposes `XxxArgs` (clap `Args`) and
//! `run(&XxxArgs) -> CliResult`; `main.rs` prints the error as one line and exits 1.

pub mod bench;
pub mod chat;
pub mod common;
pub mod info;
pub mod inspect;
pub mod logits;
pub mod perplexity;
pub mod run;
#[cfg(feature = "server")]
pub mod serve;
pub mod tokenize;

/// What a subcommand returns. The error's `Display` should be one line naming the file
/// (or other input) and the problem.
pub type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Writes `text` to stdout. A closed pipe (`edgegemma inspect x | head`) is not an error.
pub fn write_stdout(text: &str) -> CliResult {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write to stdout: {e}").into()),
        Ok(()) => Ok(()),
    }
}

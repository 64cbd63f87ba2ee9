//! `edgegemma` command line: parses arguments and dispatches to `src/cli/<name>.rs`.
//! Adding a subcommand = one `Command` variant + one match arm.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "edgegemma",
    version,
    about = "Gemma-family inference from GGUF on edge CPUs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a GGUF file's metadata, tokenizer summary and tensors
    Inspect(cli::inspect::InspectArgs),
    /// Write every position's logits for given token ids to a .npy file
    Logits(cli::logits::LogitsArgs),
    /// Complete a prompt, streaming the text
    Run(cli::run::RunArgs),
    /// Interactive chat in the Gemma turn template
    Chat(cli::chat::ChatArgs),
    /// OpenAI-compatible HTTP server (chat and text completions, streaming, prompt cache)
    #[cfg(feature = "server")]
    Serve(cli::serve::ServeArgs),
    /// Perplexity of a text file
    Perplexity(cli::perplexity::PerplexityArgs),
    /// Token ids and pieces of a text
    Tokenize(cli::tokenize::TokenizeArgs),
    /// Prompt and generation speed (llama-bench's tests), peak RSS, load time
    Bench(cli::bench::BenchArgs),
    /// CPU features, the SIMD kernel paths available and the one chosen
    Info(cli::info::InfoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A bad EDGEGEMMA_KERNELS (unknown path, or one this CPU lacks) is refused up front.
    if let Err(e) = edgegemma::kernels::dispatch::select() {
        eprintln!("edgegemma: error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Inspect(args) => cli::inspect::run(&args),
        Command::Logits(args) => cli::logits::run(&args),
        Command::Run(args) => cli::run::run(&args),
        Command::Chat(args) => cli::chat::run(&args),
        #[cfg(feature = "server")]
        Command::Serve(args) => cli::serve::run(&args),
        Command::Perplexity(args) => cli::perplexity::run(&args),
        Command::Tokenize(args) => cli::tokenize::run(&args),
        Command::Bench(args) => cli::bench::run(&args),
        Command::Info(args) => cli::info::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgegemma: error: {e}");
            ExitCode::FAILURE
        }
    }
}

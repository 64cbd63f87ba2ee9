//! `edgegemma serve`: the OpenAI-compatible HTTP server ([`edgegemma::server`]).

use super::common::ModelArgs;
use super::CliResult;
use clap::Args;
use edgegemma::server::{serve, ServerConfig};

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on (loopback unless told otherwise)
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 = any free port, printed at start-up)
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests served at once, each with its own context and prompt cache
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Requests that may wait for a slot; beyond them the server answers 503
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// Require `Authorization: Bearer KEY` on every endpoint but /health
    #[arg(long = "api-key")]
    pub api_key: Option<String>,
    /// Largest request body, in bytes
    #[arg(long = "max-body", default_value_t = 1 << 20)]
    pub max_body: usize,
    /// Most tokens one request may generate (-1 = up to the context)
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_hyphen_values = true)]
    pub n_predict: i64,
}

pub fn run(args: &ServeArgs) -> CliResult {
    serve(ServerConfig {
        model: args.model.model.clone(),
        host: args.host.clone(),
        port: args.port,
        run: args.model.run_config(),
        threads: args.model.threads,
        parallel: args.parallel,
        queue: args.queue,
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        max_body_bytes: args.max_body,
        max_tokens: usize::try_from(args.n_predict).ok(),
    })
    .map_err(Into::into)
}

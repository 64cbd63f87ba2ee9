//! `edgegemma info [--json]`: the CPU, the SIMD features detected, the kernel paths this
//! machine can run and the one chosen (best available, or `EDGEGEMMA_KERNELS`).

use std::fmt::Write as _;

use edgegemma::kernels::dispatch::{self, Path};
use serde_json::json;

use super::{write_stdout, CliResult};

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Print JSON (for scripts) instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &InfoArgs) -> CliResult {
    // A refused EDGEGEMMA_KERNELS is reported here as an error, like any other bad input.
    let chosen = dispatch::select()?;
    let features = dispatch::cpu_features();
    let available = dispatch::available_paths();
    let forced = std::env::var(dispatch::ENV_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let threads = rayon::current_num_threads();
    let text = if args.json {
        let feats: serde_json::Map<String, serde_json::Value> = features
            .iter()
            .map(|&(f, on)| (f.to_string(), on.into()))
            .collect();
        let mut s = serde_json::to_string_pretty(&json!({
            "version": env!("CARGO_PKG_VERSION"),
            "arch": std::env::consts::ARCH,
            "cpu": dispatch::cpu_model(),
            "features": feats,
            "paths_available": available.iter().map(|p| p.name()).collect::<Vec<_>>(),
            "path_best": dispatch::best_path().name(),
            "path_chosen": chosen.name,
            "forced_by_env": forced,
            "threads": threads,
        }))?;
        s.push('\n');
        s
    } else {
        let mut s = String::new();
        let on: Vec<&str> = features.iter().filter(|f| f.1).map(|f| f.0).collect();
        let off: Vec<&str> = features.iter().filter(|f| !f.1).map(|f| f.0).collect();
        let unavailable: Vec<String> = Path::ALL
            .iter()
            .filter(|p| !available.contains(p))
            .map(|p| match p.arch() {
                Some(a) if a != std::env::consts::ARCH => format!("{p} ({a})"),
                _ => format!("{p} (needs {})", p.required_features().join("+")),
            })
            .collect();
        writeln!(
            s,
            "edgegemma {} on {}",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        )?;
        writeln!(s, "cpu:        {}", dispatch::cpu_model())?;
        writeln!(s, "features:   {}", join_or_none(&on))?;
        writeln!(s, "missing:    {}", join_or_none(&off))?;
        let names: Vec<&str> = available.iter().map(|p| p.name()).collect();
        writeln!(s, "kernels:    {}", names.join(" "))?;
        writeln!(s, "not here:   {}", join_or_none(&unavailable))?;
        match &forced {
            Some(v) => writeln!(s, "chosen:     {} ({}={v})", chosen.name, dispatch::ENV_VAR)?,
            None => writeln!(
                s,
                "chosen:     {} (best available; set {}=<path> to force one)",
                chosen.name,
                dispatch::ENV_VAR
            )?,
        }
        writeln!(
            s,
            "threads:    {threads} (rayon; RAYON_NUM_THREADS to change)"
        )?;
        s
    };
    write_stdout(&text)
}

fn join_or_none<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|s| s.as_ref())
        .collect::<Vec<_>>()
        .join(" ")
}

//! Command line: `edgegemma-convert hf MODEL_DIR -o OUT.gguf -t TYPE` and
//! `edgegemma-convert quantize IN.gguf -o OUT.gguf -t TYPE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use edgegemma_convert::hf::HfModel;
use edgegemma_convert::output::{
    check_destination, ignore_file_size_signal, install_interrupt_handler,
};
use edgegemma_convert::pipeline::{self, Options};
use edgegemma_convert::recipe::FileType;
use edgegemma_convert::{requantize, Result};

#[derive(Parser)]
#[command(
    name = "edgegemma-convert",
    version,
    about = "Convert Hugging Face Gemma checkpoints (or GGUFs) to quantized GGUF"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a Hugging Face model folder (config.json, *.safetensors, tokenizer).
    Hf {
        /// Folder with config.json, model.safetensors (or shards + index) and the tokenizer.
        model_dir: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Convert an existing GGUF to another type.
    Quantize {
        /// Input GGUF (F32/F16/BF16; quantized inputs need --allow-requantize).
        input: PathBuf,
        /// Allow converting tensors that are already quantized (loses precision).
        #[arg(long)]
        allow_requantize: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
struct Common {
    /// Output GGUF file.
    #[arg(short, long)]
    output: PathBuf,
    /// Output type: f32, f16, bf16, q8_0, q4_0, q5_0, q6_k, q4_k_m.
    #[arg(short = 't', long = "type", value_parser = parse_type)]
    ty: FileType,
    /// Put every matrix in the one type (no llama.cpp mix; row-length fallbacks still apply).
    #[arg(long)]
    pure: bool,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
    /// Print the plan (tensor types, sizes) without writing anything.
    #[arg(long)]
    dry_run: bool,
    /// Worker threads for quantization (default: all cores).
    #[arg(short = 'j', long)]
    threads: Option<usize>,
    /// No progress bar or summary.
    #[arg(short, long)]
    quiet: bool,
}

fn parse_type(s: &str) -> std::result::Result<FileType, String> {
    FileType::parse(s).ok_or_else(|| {
        let names: Vec<&str> = FileType::ALL.iter().map(|t| t.name()).collect();
        format!("unknown type {s:?}; choose one of {}", names.join(", "))
    })
}

fn run(cli: Cli) -> Result<()> {
    let common = match &cli.command {
        Command::Hf { common, .. } | Command::Quantize { common, .. } => common,
    };
    if let Some(n) = common.threads {
        // Only fails if a pool exists already, which it cannot at this point.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let opts = Options {
        force: common.force,
        dry_run: common.dry_run,
        quiet: common.quiet,
    };
    if !opts.dry_run {
        check_destination(&common.output, opts.force)?;
        install_interrupt_handler();
        ignore_file_size_signal();
    }
    match &cli.command {
        Command::Hf { model_dir, common } => {
            let model = HfModel::open(model_dir)?;
            let plan = model.plan(common.ty, common.pure)?;
            finish(plan, common, &opts)
        }
        Command::Quantize {
            input,
            allow_requantize,
            common,
        } => {
            let file = requantize::open(input)?;
            let plan =
                requantize::plan(&file, common.ty, common.pure, *allow_requantize, &mut |w| {
                    eprintln!("{w}")
                })?;
            finish(plan, common, &opts)
        }
    }
}

fn finish(plan: pipeline::Plan, common: &Common, opts: &Options) -> Result<()> {
    if opts.dry_run {
        pipeline::dry_run(plan, &common.output)?;
    } else {
        pipeline::write(plan, &common.output, opts)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A bad EDGEGEMMA_KERNELS (unknown path, or one this CPU lacks) is refused up front, as
    // `edgegemma` does, rather than warned about at the first quantized row.
    if let Err(e) = edgegemma_kernels::dispatch::select() {
        eprintln!("edgegemma-convert: error: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgegemma-convert: error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `edgegemma bench`: prompt-processing and generation speed in llama-bench's terms (tests
//! `pp512`, `tg128`, `pp512+tg128`, `… @ d4096`; t/s as mean ± sd over repetitions after a
//! warm-up, random token ids), plus what edge users also need: peak RSS, load time (mmap to the
//! first token's logits), time to first token (load plus the prompt's prefill, as LiteRT-LM's
//! benchmark reports it), the kernel path, the CPU, and optionally the memory-read bandwidth
//! and how close decode gets to the limit it sets.
//!
//! Each thread count runs on its own rayon pool (`pool.install`), so `-t 1,2,4` needs one
//! process. Results go to stdout (`-o md|csv|json|jsonl`), progress to stderr.
//!
//! Layout: [`plan`] turns the arguments into the tests to run and checks every model file
//! first; [`run`] loads each model on its own pool and times the tests; [`report`] prints
//! the rows (table, CSV, JSON). What the machine is and can do (CPU, peak RSS, read
//! bandwidth) comes from [`edgegemma::probe`], which the criterion benches use too.

mod plan;
mod report;
mod run;

use super::CliResult;
use clap::{Args, ValueEnum};
use edgegemma::kv::CacheType;
use plan::{ModelInfo, Plan};
use report::{Printer, SystemInfo};
use run::{run_instance, Progress};
use std::path::PathBuf;

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Markdown table (llama-bench's columns plus ours)
    Md,
    Csv,
    /// One JSON array of rows
    Json,
    /// One JSON object per line
    Jsonl,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// GGUF model file (repeat -m for several)
    #[arg(short = 'm', long = "model", value_name = "FILE", required = true)]
    pub models: Vec<PathBuf>,
    /// Prompt lengths to time as "ppN" tests, comma-separated (0 = none)
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "512"
    )]
    pub n_prompt: Vec<usize>,
    /// Generation lengths to time as "tgN" tests, one token per step (0 = none)
    #[arg(
        short = 'n',
        long = "n-gen",
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "128"
    )]
    pub n_gen: Vec<usize>,
    /// Prompt then generation timed together, "PP,TG" (test "ppPP+tgTG"; repeatable)
    #[arg(long = "pg", value_name = "PP,TG", value_parser = parse_pg)]
    pub pg: Vec<(usize, usize)>,
    /// Tokens already in the context before each timed run, comma-separated ("… @ dN")
    #[arg(
        short = 'd',
        long = "depth",
        alias = "n-depth",
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "0"
    )]
    pub depth: Vec<usize>,
    /// Thread counts, comma-separated (default: one per core; on big.LITTLE CPUs only the
    /// performance cores)
    #[arg(
        short = 't',
        long = "threads",
        value_name = "N,...",
        value_delimiter = ','
    )]
    pub threads: Vec<usize>,
    /// Timed repetitions of each test
    #[arg(
        short = 'r',
        long = "repetitions",
        value_name = "N",
        default_value_t = 5
    )]
    pub reps: usize,
    /// Tokens per forward batch in prompt processing (llama-bench's ubatch)
    #[arg(short = 'b', long = "batch", value_name = "N", default_value_t = 512)]
    pub batch: usize,
    /// KV cache storage: f16, q8_0 or f32
    #[arg(long = "cache-type", value_name = "TYPE", default_value = "f16", value_parser = parse_cache_type)]
    pub cache_type: CacheType,
    /// Output format
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Md)]
    pub output: OutputFormat,
    /// Skip the untimed warm-up run before each test
    #[arg(long = "no-warmup")]
    pub no_warmup: bool,
    /// Also measure memory-read bandwidth (per thread count, over as many bytes as a token
    /// reads) and show decode speed as a share of the limit it sets
    #[arg(long = "mem-bw")]
    pub mem_bw: bool,
    /// No progress on stderr
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Seed of the random token ids
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
}

fn parse_pg(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--pg wants PROMPT,GEN (e.g. 512,128), not {s:?}");
    let (p, g) = s.split_once(',').ok_or_else(bad)?;
    let p = p.trim().parse().map_err(|_| bad())?;
    let g = g.trim().parse().map_err(|_| bad())?;
    if p == 0 || g == 0 {
        return Err(format!("--pg {s}: both lengths must be at least 1"));
    }
    Ok((p, g))
}

fn parse_cache_type(s: &str) -> Result<CacheType, String> {
    CacheType::parse(s).ok_or_else(|| format!("unknown cache type {s:?} (use f16, q8_0 or f32)"))
}

pub fn run(args: &BenchArgs) -> CliResult {
    let plan = Plan::from_args(args)?;
    let kernels = edgegemma::kernels::dispatch::select().map_err(|e| e.to_string())?;
    let sys = SystemInfo::detect(kernels.name);
    // Every file is checked before the (possibly long) run starts.
    let mut models = Vec::new();
    for path in &args.models {
        let info = ModelInfo::read(path).map_err(|e| e.to_string())?;
        if plan.run.n_ctx > info.ctx_limit {
            return Err(format!(
                "{}: the tests need {} positions, more than the model's context length {}",
                path.display(),
                plan.run.n_ctx,
                info.ctx_limit
            )
            .into());
        }
        models.push(info);
    }
    let mut printer = Printer {
        format: args.output,
        mem_bw: plan.mem_bw,
        out: Box::new(std::io::stdout()),
        rows: 0,
    };
    let mut progress = Progress::new(
        !args.quiet,
        models.len() * plan.threads.len() * plan.tests.len(),
    );
    let result = printer.begin().map_err(BoxErr::from).and_then(|()| {
        for model in &models {
            for &threads in &plan.threads {
                run_instance(model, threads, &plan, &sys, &mut printer, &mut progress)?;
            }
        }
        Ok(())
    });
    progress.clear();
    // Close the output (a JSON array stays valid) even when a run failed.
    let ended = printer.end(&sys).map_err(BoxErr::from);
    match result.and(ended) {
        Ok(()) => Ok(()),
        // `edgegemma bench | head` closing the pipe is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        Err(e) => Err(e.to_string().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::report::CSV_FIELDS;
    use super::*;
    use edgegemma_test_support::tiny_gguf;
    use std::io::Write;
    use std::path::Path;

    #[test]
    fn pg_parser_accepts_pairs_and_names_bad_input() {
        assert_eq!(parse_pg("512,128"), Ok((512, 128)));
        assert!(parse_pg("512").unwrap_err().contains("PROMPT,GEN"));
        assert!(parse_pg("0,5").is_err());
        assert!(parse_pg("a,5").is_err());
    }

    /// A writer the test can read back after the printer is done with it.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn args(model: &Path, output: OutputFormat) -> BenchArgs {
        BenchArgs {
            models: vec![model.to_path_buf()],
            n_prompt: vec![24],
            n_gen: vec![6],
            pg: vec![(8, 4)],
            depth: vec![0, 16],
            threads: vec![1, 2],
            reps: 2,
            batch: 16,
            cache_type: CacheType::F16,
            output,
            no_warmup: false,
            mem_bw: true,
            quiet: true,
            seed: 7,
        }
    }

    /// Runs the whole bench on a tiny random Gemma 3 file and checks every row.
    fn run_to_string(args: &BenchArgs) -> String {
        let plan = Plan::from_args(args).unwrap();
        let sys = SystemInfo::detect(edgegemma::kernels::kernels().name);
        let model = ModelInfo::read(&args.models[0]).unwrap();
        let buf = Shared::default();
        let mut printer = Printer {
            format: args.output,
            mem_bw: args.mem_bw,
            out: Box::new(buf.clone()),
            rows: 0,
        };
        let mut progress = Progress::new(false, 1);
        printer.begin().unwrap();
        for &t in &plan.threads {
            run_instance(&model, t, &plan, &sys, &mut printer, &mut progress).unwrap();
        }
        printer.end(&sys).unwrap();
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn end_to_end_json_rows_carry_the_promised_fields() {
        let dir = tiny_gguf::TempDir::new("bench-json");
        let path = dir.path().join("tiny.gguf");
        tiny_gguf::write_tiny_gemma3(
            &path,
            tiny_gguf::TinyShape::TEST,
            edgegemma::gguf::GgmlType::Q8_0,
        )
        .unwrap();
        let text = run_to_string(&args(&path, OutputFormat::Json));
        let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        // 2 thread counts × 2 depths × (pp, tg, pg).
        assert_eq!(rows.len(), 12);
        let tests: Vec<&str> = rows.iter().map(|r| r["test"].as_str().unwrap()).collect();
        assert_eq!(
            &tests[..6],
            [
                "pp24",
                "tg6",
                "pp8+tg4",
                "pp24 @ d16",
                "tg6 @ d16",
                "pp8+tg4 @ d16"
            ]
        );
        for r in &rows {
            for key in [
                "model",
                "test",
                "n_prompt",
                "n_gen",
                "n_depth",
                "n_threads",
                "avg_ts",
                "stddev_ts",
                "peak_rss_bytes",
                "load_ms",
                "kernels",
            ] {
                assert!(!r[key].is_null(), "{key} missing in {r}");
            }
            assert_eq!(r["samples_ns"].as_array().unwrap().len(), 2);
            assert!(r["avg_ts"].as_f64().unwrap() > 0.0);
            assert!(r["peak_rss_bytes"].as_u64().unwrap() > 0);
            assert!(r["mem_bw_bytes_per_s"].as_f64().unwrap() > 0.0);
            let decode = r["n_prompt"] == 0;
            assert_eq!(r["limit_ts"].is_null(), !decode, "{r}");
            assert_eq!(r["ttft_ms"].is_null(), decode, "{r}");
            if !decode {
                let (ttft, load) = (
                    r["ttft_ms"].as_f64().unwrap(),
                    r["load_ms"].as_f64().unwrap(),
                );
                assert!(
                    ttft > load,
                    "TTFT {ttft} includes load {load} and the prefill"
                );
            }
        }
        assert_eq!(rows[0]["n_threads"], 1);
        assert_eq!(rows[11]["n_threads"], 2);
        assert_eq!(rows[4]["n_depth"], 16);
        assert_eq!(rows[2]["n_prompt"], 8);
        assert_eq!(rows[2]["n_gen"], 4);
        assert_eq!(rows[0]["model"], "gemma3 tiny Q8_0");
    }

    #[test]
    fn end_to_end_markdown_csv_and_jsonl() {
        let dir = tiny_gguf::TempDir::new("bench-md");
        let path = dir.path().join("tiny.gguf");
        tiny_gguf::write_tiny_gemma3(
            &path,
            tiny_gguf::TinyShape::TEST,
            edgegemma::gguf::GgmlType::Q4_0,
        )
        .unwrap();
        let mut a = args(&path, OutputFormat::Md);
        a.depth = vec![0];
        a.pg.clear();
        a.threads = vec![1];
        a.mem_bw = false;
        let md = run_to_string(&a);
        let lines: Vec<&str> = md.lines().collect();
        assert!(lines[0].starts_with("| model"), "{md}");
        assert!(lines[0].contains(" t/s |"), "{md}");
        assert!(lines[0].contains(" TTFT ms |"), "{md}");
        assert!(lines[1].starts_with("| ---"), "{md}");
        assert!(
            lines[2].contains("pp24") && lines[2].contains(" ± "),
            "{md}"
        );
        assert!(lines[3].contains("tg6"), "{md}");
        assert!(md.contains("build: edgegemma"), "{md}");

        a.output = OutputFormat::Csv;
        let csv = run_to_string(&a);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert_eq!(lines[0], CSV_FIELDS.join(","));
        assert!(lines[1].contains("\"pp24\""));

        a.output = OutputFormat::Jsonl;
        let jsonl = run_to_string(&a);
        let rows: Vec<serde_json::Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["test"], "tg6");
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let dir = tiny_gguf::TempDir::new("bench-bad");
        let path = dir.path().join("tiny.gguf");
        tiny_gguf::write_tiny_gemma3(
            &path,
            tiny_gguf::TinyShape::TEST,
            edgegemma::gguf::GgmlType::Q8_0,
        )
        .unwrap();
        let mut a = args(&path, OutputFormat::Md);
        a.reps = 0;
        assert!(Plan::from_args(&a).unwrap_err().contains("repetitions"));
        a.reps = 1;
        a.threads = vec![0];
        assert!(Plan::from_args(&a).unwrap_err().contains("threads"));
        a.threads = vec![1];
        a.n_prompt = vec![0];
        a.n_gen = vec![0];
        a.pg.clear();
        assert!(Plan::from_args(&a)
            .unwrap_err()
            .contains("nothing to measure"));
        // A context longer than the file's.
        a.n_gen = vec![1_000_000];
        let err = run(&a).unwrap_err().to_string();
        assert!(err.contains("context length"), "{err}");
        // Not a GGUF.
        let junk = dir.path().join("junk.gguf");
        std::fs::write(&junk, b"not a gguf at all").unwrap();
        a.models = vec![junk];
        a.n_gen = vec![4];
        let err = run(&a).unwrap_err().to_string();
        assert!(err.contains("junk.gguf"), "{err}");
    }
}

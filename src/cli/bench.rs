//! `edgegemma bench`: prompt-processing and generation speed in llama-bench's terms (tests
//! `pp512`, `tg128`, `pp512+tg128`, `… @ d4096`; t/s as mean ± sd over repetitions after a
//! warm-up, random token ids), plus what edge users also need: peak RSS, load time (mmap to the
//! first token's logits), time to first token (load plus the prompt's prefill, as LiteRT-LM's
//! benchmark reports it), the kernel path, the CPU, and optionally the memory-read bandwidth
//! and how close decode gets to the limit it sets.
//!
//! Each thread count runs on its own rayon pool (`pool.install`), so `-t 1,2,4` needs one
//! process. Results go to stdout (`-o md|csv|json|jsonl`), progress to stderr.

use super::CliResult;
use clap::{Args, ValueEnum};
use edgegemma::gguf::GgufFile;
use edgegemma::kv::CacheType;
use edgegemma::model::{LanguageModel, RunConfig};
use rayon::prelude::*;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

/// Largest context a test may need when the file names none (bounds the KV cache allocation).
const DEFAULT_CTX_LIMIT: usize = 131_072;

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

/// One timed test: `n_prompt` tokens in batches, then `n_gen` tokens one at a time, after
/// `n_depth` tokens already in the context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TestSpec {
    n_prompt: usize,
    n_gen: usize,
    n_depth: usize,
}

impl TestSpec {
    /// llama-bench's name: `pp512`, `tg128`, `pp512+tg128`, with ` @ d4096` at depth.
    fn name(&self) -> String {
        let mut s = match (self.n_prompt, self.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, g) => format!("tg{g}"),
            (p, g) => format!("pp{p}+tg{g}"),
        };
        if self.n_depth > 0 {
            s.push_str(&format!(" @ d{}", self.n_depth));
        }
        s
    }

    fn tokens(&self) -> usize {
        self.n_prompt + self.n_gen
    }

    /// Positions the test occupies.
    fn ctx_needed(&self) -> usize {
        self.n_depth + self.n_prompt + self.n_gen
    }

    /// Pure generation: the case the memory-bandwidth limit describes.
    fn is_decode(&self) -> bool {
        self.n_prompt == 0 && self.n_gen > 0
    }
}

/// Tests in llama-bench's order: per depth, the pp tests, the tg tests, the pp+tg pairs.
fn plan_tests(
    n_prompt: &[usize],
    n_gen: &[usize],
    pg: &[(usize, usize)],
    depths: &[usize],
) -> Vec<TestSpec> {
    let mut tests = Vec::new();
    for &n_depth in depths {
        let pp = n_prompt.iter().filter(|&&p| p > 0).map(|&p| (p, 0));
        let tg = n_gen.iter().filter(|&&g| g > 0).map(|&g| (0, g));
        for (n_prompt, n_gen) in pp.chain(tg).chain(pg.iter().copied()) {
            tests.push(TestSpec {
                n_prompt,
                n_gen,
                n_depth,
            });
        }
    }
    tests
}

/// What the machine is.
struct SystemInfo {
    cpu: String,
    features: Vec<&'static str>,
    n_cpus: usize,
    kernels: &'static str,
}

impl SystemInfo {
    fn detect(kernels: &'static str) -> SystemInfo {
        use edgegemma::kernels::dispatch;
        SystemInfo {
            cpu: dispatch::cpu_model(),
            features: dispatch::cpu_features()
                .into_iter()
                .filter_map(|(f, has)| has.then_some(f))
                .collect(),
            n_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernels,
        }
    }
}

/// What a model file is, read from its header only.
struct ModelInfo {
    path: PathBuf,
    /// llama.cpp's model description, e.g. "gemma3 270M Q4_K - Medium".
    desc: String,
    arch: String,
    /// Bytes of all tensors (what llama-bench calls the model size).
    size: u64,
    n_params: u64,
    /// Weight bytes one decode step streams: every tensor, except that an untied token
    /// embedding is only looked up (one row), not read in full.
    bytes_per_token: u64,
    /// Bytes per tensor type, and the token embedding's type (what a file's name hides).
    type_bytes: std::collections::BTreeMap<String, u64>,
    embd_type: Option<String>,
    /// First token of every run, as llama-bench does when the model adds BOS.
    bos: Option<u32>,
    ctx_limit: usize,
}

impl ModelInfo {
    fn read(path: &Path) -> Result<ModelInfo, BoxErr> {
        let f = GgufFile::open(path)?;
        let arch = f.architecture()?.to_string();
        let (size, n_params) = f.tensor_infos().iter().fold((0u64, 0u64), |(s, n), t| {
            (s + t.byte_size(), n + t.n_elements())
        });
        let mut type_bytes = std::collections::BTreeMap::new();
        for t in f.tensor_infos() {
            *type_bytes.entry(t.ggml_type().to_string()).or_insert(0) += t.byte_size();
        }
        let embd_type = f
            .tensor("token_embd.weight")
            .map(|t| t.ggml_type().to_string());
        let mut bytes_per_token = size;
        if f.tensor("output.weight").is_some() {
            if let Some(e) = f.tensor("token_embd.weight") {
                bytes_per_token -= e.info().byte_size() - e.info().row_bytes();
            }
        }
        let size_label = f
            .get_str_opt("general.size_label")
            .ok()
            .flatten()
            .map(str::to_string)
            .unwrap_or_else(|| params_label(n_params));
        let ftype = f
            .get_u32_opt("general.file_type")
            .ok()
            .flatten()
            .map_or("unknown type", ftype_name);
        let add_bos = f
            .get_bool_opt("tokenizer.ggml.add_bos_token")
            .ok()
            .flatten()
            .unwrap_or(true);
        let bos = f
            .get_u32_opt("tokenizer.ggml.bos_token_id")
            .ok()
            .flatten()
            .filter(|_| add_bos);
        // RecurrentGemma's state is bounded: its context_length is informational.
        let ctx_limit = if arch == "recurrentgemma" {
            usize::MAX
        } else {
            f.get_u32_opt(&format!("{arch}.context_length"))
                .ok()
                .flatten()
                .map_or(DEFAULT_CTX_LIMIT, |c| c as usize)
        };
        Ok(ModelInfo {
            path: path.to_path_buf(),
            desc: format!("{arch} {size_label} {ftype}"),
            arch,
            size,
            n_params,
            bytes_per_token,
            type_bytes,
            embd_type,
            bos,
            ctx_limit,
        })
    }

    fn file_name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

/// "270M" / "2.6B", as a size label from an element count.
fn params_label(n: u64) -> String {
    if n < 1_000_000_000 {
        format!("{}M", (n as f64 / 1e6).round())
    } else {
        format!("{:.1}B", n as f64 / 1e9)
    }
}

/// llama.cpp's names for `general.file_type` (what its `model` column shows).
fn ftype_name(ftype: u32) -> &'static str {
    match ftype {
        0 => "all F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K - Medium",
        11 => "Q3_K - Small",
        12 => "Q3_K - Medium",
        13 => "Q3_K - Large",
        14 => "Q4_K - Small",
        15 => "Q4_K - Medium",
        16 => "Q5_K - Small",
        17 => "Q5_K - Medium",
        18 => "Q6_K",
        32 => "BF16",
        _ => "unknown type",
    }
}

/// One result row.
struct Row<'a> {
    sys: &'a SystemInfo,
    model: &'a ModelInfo,
    n_threads: usize,
    n_batch: usize,
    cache_type: CacheType,
    spec: TestSpec,
    test_time: String,
    samples_ns: Vec<u64>,
    /// Per repetition, the prompt's prefill alone (empty when the test has no prompt).
    prefill_ns: Vec<u64>,
    peak_rss: Option<u64>,
    rss_scope: &'static str,
    load_ms: f64,
    /// Read bandwidth, bytes/s, measured with this thread count.
    mem_bw: Option<f64>,
}

impl Row<'_> {
    fn samples_ts(&self) -> Vec<f64> {
        let n = self.spec.tokens() as f64;
        self.samples_ns
            .iter()
            .map(|&ns| n * 1e9 / ns.max(1) as f64)
            .collect()
    }

    fn samples_ns_f64(&self) -> Vec<f64> {
        self.samples_ns.iter().map(|&ns| ns as f64).collect()
    }

    /// Time to first token, ms: loading (mmap to the first logits) plus the mean prefill of
    /// the test's prompt; `None` for tests without a prompt.
    fn ttft_ms(&self) -> Option<f64> {
        (!self.prefill_ns.is_empty()).then(|| {
            let ns: Vec<f64> = self.prefill_ns.iter().map(|&v| v as f64).collect();
            self.load_ms + mean(&ns) / 1e6
        })
    }

    /// Tokens/s the memory bandwidth allows for decode (weights streamed once per token).
    fn limit_ts(&self) -> Option<f64> {
        let bw = self.mem_bw?;
        (self.spec.is_decode() && self.model.bytes_per_token > 0)
            .then(|| bw / self.model.bytes_per_token as f64)
    }

    fn json(&self) -> serde_json::Value {
        let ts = self.samples_ts();
        let ns = self.samples_ns_f64();
        serde_json::json!({
            "build": concat!("edgegemma ", env!("CARGO_PKG_VERSION")),
            "cpu_info": self.sys.cpu,
            "cpu_features": self.sys.features,
            "n_cpus": self.sys.n_cpus,
            "backend": "CPU",
            "kernels": self.sys.kernels,
            "model": self.model.desc,
            "model_filename": self.model.path.display().to_string(),
            "model_type": self.model.arch,
            "model_size": self.model.size,
            "model_n_params": self.model.n_params,
            "tensor_type_bytes": self.model.type_bytes,
            "token_embd_type": self.model.embd_type,
            "n_batch": self.n_batch,
            "n_threads": self.n_threads,
            "type_k": self.cache_type.name(),
            "type_v": self.cache_type.name(),
            "n_prompt": self.spec.n_prompt,
            "n_gen": self.spec.n_gen,
            "n_depth": self.spec.n_depth,
            "test": self.spec.name(),
            "test_time": self.test_time,
            "avg_ns": mean(&ns).round() as u64,
            "stddev_ns": stdev(&ns).round() as u64,
            "avg_ts": mean(&ts),
            "stddev_ts": stdev(&ts),
            "samples_ns": self.samples_ns,
            "samples_ts": ts,
            "peak_rss_bytes": self.peak_rss,
            "peak_rss_scope": self.rss_scope,
            "load_ms": self.load_ms,
            "ttft_ms": self.ttft_ms(),
            "mem_bw_bytes_per_s": self.mem_bw,
            "weight_bytes_per_token": self.model.bytes_per_token,
            "limit_ts": self.limit_ts(),
        })
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Sample standard deviation (n − 1), as llama-bench reports it; 0 for fewer than two samples.
fn stdev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    let ss: f64 = v.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (v.len() - 1) as f64).sqrt()
}

fn mib(bytes: u64) -> String {
    if bytes < 1 << 30 {
        format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
    }
}

fn params_text(n: u64) -> String {
    if n < 1_000_000_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else {
        format!("{:.2} B", n as f64 / 1e9)
    }
}

/// CSV columns (JSON rows carry these and the per-repetition samples).
const CSV_FIELDS: [&str; 32] = [
    "build",
    "cpu_info",
    "cpu_features",
    "n_cpus",
    "backend",
    "kernels",
    "model",
    "model_filename",
    "model_type",
    "model_size",
    "model_n_params",
    "n_batch",
    "n_threads",
    "type_k",
    "type_v",
    "n_prompt",
    "n_gen",
    "n_depth",
    "test",
    "test_time",
    "avg_ns",
    "stddev_ns",
    "avg_ts",
    "stddev_ts",
    "peak_rss_bytes",
    "peak_rss_scope",
    "load_ms",
    "ttft_ms",
    "mem_bw_bytes_per_s",
    "weight_bytes_per_token",
    "limit_ts",
    "samples_ts",
];

fn csv_cell(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::Null => return String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| match x {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Markdown columns: (header, width; negative = left-aligned), llama-bench's first.
fn md_columns(mem_bw: bool) -> Vec<(&'static str, i32)> {
    let mut cols = vec![
        ("model", -30),
        ("size", 10),
        ("params", 10),
        ("backend", -10),
        ("threads", 7),
        ("test", 15),
        ("t/s", 20),
        ("kernels", -7),
        ("peak RSS", 10),
        ("load ms", 7),
        ("TTFT ms", 7),
    ];
    if mem_bw {
        cols.push(("read GB/s", 9));
        cols.push(("BW limit", 8));
    }
    cols
}

fn md_line(cells: &[String], cols: &[(&str, i32)]) -> String {
    let mut line = String::from("|");
    for (cell, &(_, w)) in cells.iter().zip(cols) {
        let width = w.unsigned_abs() as usize;
        if w < 0 {
            line.push_str(&format!(" {cell:<width$} |"));
        } else {
            line.push_str(&format!(" {cell:>width$} |"));
        }
    }
    line.push('\n');
    line
}

/// Streams rows to stdout in the chosen format as they complete.
struct Printer {
    format: OutputFormat,
    mem_bw: bool,
    out: Box<dyn Write + Send>,
    rows: usize,
}

impl Printer {
    fn begin(&mut self) -> std::io::Result<()> {
        let text = match self.format {
            OutputFormat::Md => {
                let cols = md_columns(self.mem_bw);
                let names: Vec<String> = cols.iter().map(|c| c.0.to_string()).collect();
                let rules: Vec<String> = cols
                    .iter()
                    .map(|&(_, w)| {
                        let n = w.unsigned_abs() as usize;
                        let dashes = "-".repeat(n - 1);
                        if w > 0 {
                            format!("{dashes}:")
                        } else {
                            format!("{dashes}-")
                        }
                    })
                    .collect();
                md_line(&names, &cols) + &md_line(&rules, &cols)
            }
            OutputFormat::Csv => CSV_FIELDS.join(",") + "\n",
            OutputFormat::Json => "[\n".to_string(),
            OutputFormat::Jsonl => String::new(),
        };
        self.emit(&text)
    }

    fn row(&mut self, row: &Row) -> std::io::Result<()> {
        let text = match self.format {
            OutputFormat::Md => {
                let ts = row.samples_ts();
                let mut cells = vec![
                    row.model.desc.clone(),
                    mib(row.model.size),
                    params_text(row.model.n_params),
                    "CPU".to_string(),
                    row.n_threads.to_string(),
                    row.spec.name(),
                    format!("{:.2} ± {:.2}", mean(&ts), stdev(&ts)),
                    row.sys.kernels.to_string(),
                    row.peak_rss.map_or_else(|| "n/a".into(), mib),
                    format!("{:.0}", row.load_ms),
                    row.ttft_ms()
                        .map_or_else(String::new, |t| format!("{t:.0}")),
                ];
                if self.mem_bw {
                    cells.push(
                        row.mem_bw
                            .map_or_else(String::new, |b| format!("{:.1}", b / 1e9)),
                    );
                    cells
                        .push(row.limit_ts().map_or_else(String::new, |l| {
                            format!("{:.0}%", 100.0 * mean(&ts) / l)
                        }));
                }
                md_line(&cells, &md_columns(self.mem_bw))
            }
            OutputFormat::Csv => {
                let j = row.json();
                let cells: Vec<String> = CSV_FIELDS.iter().map(|f| csv_cell(&j[*f])).collect();
                cells.join(",") + "\n"
            }
            OutputFormat::Json => {
                let sep = if self.rows == 0 { "" } else { ",\n" };
                format!("{sep}  {}", row.json())
            }
            OutputFormat::Jsonl => format!("{}\n", row.json()),
        };
        self.rows += 1;
        self.emit(&text)
    }

    fn end(&mut self, sys: &SystemInfo) -> std::io::Result<()> {
        let text = match self.format {
            OutputFormat::Md => {
                let mut s = format!(
                    "\nbuild: edgegemma {} | kernels: {} | CPU: {} ({} threads available) | features: {}\n",
                    env!("CARGO_PKG_VERSION"),
                    sys.kernels,
                    sys.cpu,
                    sys.n_cpus,
                    if sys.features.is_empty() {
                        "-".to_string()
                    } else {
                        sys.features.join(" ")
                    }
                );
                s.push_str(
                    "peak RSS: the process's high-water mark from loading the model through the test; \
                     load: mmap to the first token's logits; TTFT: load plus the prompt's prefill\n",
                );
                if self.mem_bw {
                    s.push_str(
                        "read GB/s: memory read bandwidth with the same threads over as many bytes as a \
                         token's weights; BW limit: tg t/s as a share of bandwidth / weight bytes per token\n",
                    );
                }
                s
            }
            OutputFormat::Json if self.rows == 0 => "]\n".to_string(),
            OutputFormat::Json => "\n]\n".to_string(),
            OutputFormat::Csv | OutputFormat::Jsonl => String::new(),
        };
        self.emit(&text)
    }

    fn emit(&mut self, text: &str) -> std::io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

/// The progress line on stderr: rewritten in place on a terminal, one line per test otherwise.
struct Progress {
    enabled: bool,
    tty: bool,
    total: usize,
    done: usize,
    label: String,
}

impl Progress {
    fn new(enabled: bool, total: usize) -> Progress {
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            total,
            done: 0,
            label: String::new(),
        }
    }

    /// Something outside the test count (loading, bandwidth).
    fn note(&mut self, what: &str) {
        if self.enabled {
            self.line(what, true);
        }
    }

    fn start_test(&mut self, label: String) {
        self.done += 1;
        self.label = format!("[{}/{}] {label}", self.done, self.total);
        if self.enabled {
            let l = self.label.clone();
            self.line(&l, true);
        }
    }

    /// Step within the current test; shown on a terminal only.
    fn step(&mut self, what: &str) {
        if self.enabled && self.tty {
            let l = format!("{}: {what}", self.label);
            self.line(&l, false);
        }
    }

    fn line(&self, text: &str, always: bool) {
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[Kbench: {text}");
        } else if always {
            let _ = writeln!(e, "bench: {text}");
        }
        let _ = e.flush();
    }

    fn clear(&self) {
        if self.enabled && self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// xorshift64*: token ids, no dependency, same sequence for a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng((seed ^ 0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn below(&mut self, n: usize) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 32) % n as u64) as u32
    }
}

/// Kernel's peak-RSS high-water mark (`VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line["VmHWM:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0), so the next model's peak is its own.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Best read bandwidth (bytes/s) over a buffer of about `bytes` bytes, split between the
/// current pool's threads.
fn measure_read_bw(bytes: u64) -> f64 {
    const REPS: usize = 8;
    let threads = rayon::current_num_threads().max(1);
    let words = (bytes.max(32 << 20) / 8) as usize;
    let mut pages = huge_page_words(words);
    let buf: &mut [u64] = match pages.as_mut() {
        // SAFETY: the mapping is page-aligned and at least `words` u64s long.
        Some(m) => unsafe { std::slice::from_raw_parts_mut(m.as_mut_ptr().cast(), words) },
        None => return 0.0,
    };
    // Written, so every page is really backed (an untouched mapping reads one shared page).
    buf.iter_mut().zip(0u64..).for_each(|(w, i)| *w = i);
    let chunk = words.div_ceil(threads);
    let mut best = 0.0f64;
    for rep in 0..=REPS {
        let t = Instant::now();
        let sum: u64 = buf
            .par_chunks(chunk)
            .map(sum_words_fast)
            .reduce(|| 0, u64::wrapping_add);
        std::hint::black_box(sum);
        let secs = t.elapsed().as_secs_f64();
        // The first pass is a warm-up.
        if rep > 0 && secs > 0.0 {
            best = best.max((words * 8) as f64 / secs);
        }
    }
    best
}

/// Anonymous memory for `words` u64s, in 2 MiB pages where the OS has them: the model's
/// weights are copied into such pages at load (`GgufFile::open_in_huge_pages`), and over 4 KiB
/// pages the same loop reads ~30% slower (Zen 5, 1 thread, 11.3 vs 15.5 GB/s), so a probe in
/// small pages would understate the limit decode runs against.
fn huge_page_words(words: usize) -> Option<memmap2::MmapMut> {
    let m = memmap2::MmapMut::map_anon(words.checked_mul(8)?).ok()?;
    #[cfg(target_os = "linux")]
    let _ = m.advise(memmap2::Advice::HugePage);
    Some(m)
}

/// [`sum_words`] with the widest loads the CPU has, so the sum never limits the bandwidth.
fn sum_words_fast(w: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected on this CPU.
        return unsafe { sum_words_avx2(w) };
    }
    sum_words(w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_words_avx2(w: &[u64]) -> u64 {
    sum_words(w)
}

/// Sum with eight independent accumulators, so the loop is bound by loads, not by an add chain.
#[inline(always)]
fn sum_words(w: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut it = w.chunks_exact(8);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(x);
        }
    }
    let tail = it.remainder().iter().fold(0u64, |a, &x| a.wrapping_add(x));
    acc.iter().fold(tail, |a, &x| a.wrapping_add(x))
}

/// RFC 3339 UTC time, as llama-bench stamps its rows.
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Settings every instance shares.
#[derive(Debug)]
struct Plan {
    tests: Vec<TestSpec>,
    threads: Vec<usize>,
    reps: usize,
    run: RunConfig,
    warmup: bool,
    mem_bw: bool,
    seed: u64,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> Result<Plan, String> {
        let tests = plan_tests(&args.n_prompt, &args.n_gen, &args.pg, &args.depth);
        if tests.is_empty() {
            return Err("nothing to measure: -p and -n are all 0 and no --pg was given".into());
        }
        if args.reps == 0 {
            return Err("-r/--repetitions must be at least 1".into());
        }
        if args.batch == 0 {
            return Err("-b/--batch must be at least 1".into());
        }
        let threads = if args.threads.is_empty() {
            vec![super::common::default_threads()]
        } else {
            args.threads.clone()
        };
        if let Some(&t) = threads.iter().find(|&&t| t == 0 || t > 1024) {
            return Err(format!("-t/--threads {t}: must be between 1 and 1024"));
        }
        // Warm-ups fit too: they feed at most what the test itself feeds. The load check's one
        // token is fed into an empty context and then forgotten.
        let n_ctx = tests
            .iter()
            .map(TestSpec::ctx_needed)
            .max()
            .unwrap_or(1)
            .max(1);
        Ok(Plan {
            tests,
            threads,
            reps: args.reps,
            run: RunConfig {
                n_ctx,
                n_batch: args.batch,
                cache_type: args.cache_type,
            },
            warmup: !args.no_warmup,
            mem_bw: args.mem_bw,
            seed: args.seed,
        })
    }
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

/// One model at one thread count: measure bandwidth, load, run every test, print the rows.
fn run_instance(
    model: &ModelInfo,
    threads: usize,
    plan: &Plan,
    sys: &SystemInfo,
    printer: &mut Printer,
    progress: &mut Progress,
) -> Result<(), BoxErr> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
    pool.install(|| {
        let name = model.file_name();
        let th = if threads == 1 {
            "1 thread".to_string()
        } else {
            format!("{threads} threads")
        };
        let mem_bw = if plan.mem_bw {
            progress.note(&format!(
                "memory read bandwidth over {:.0} MB, {th}",
                model.bytes_per_token as f64 / 1e6
            ));
            Some(measure_read_bw(model.bytes_per_token))
        } else {
            None
        };
        progress.note(&format!("loading {name}, {th}"));
        let rss_scope = if reset_peak_rss() {
            "since model load"
        } else {
            "since process start"
        };
        let t0 = Instant::now();
        let (mut lm, file) = edgegemma::model::load(&model.path, &plan.run)?;
        drop(file);
        let n_vocab = lm.n_vocab();
        if n_vocab == 0 {
            return Err(format!("{}: the model has no vocabulary", model.path.display()).into());
        }
        let mut rng = Rng::new(plan.seed);
        let first = model
            .bos
            .filter(|&b| (b as usize) < n_vocab)
            .unwrap_or_else(|| rng.below(n_vocab));
        lm.eval(&[first])?;
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut run = Runner {
            lm: lm.as_mut(),
            rng,
            bos: model.bos.filter(|&b| (b as usize) < n_vocab),
            n_vocab,
            n_batch: plan.run.n_batch,
            depth_state: None,
        };
        for &spec in &plan.tests {
            progress.start_test(format!("{name}, {th}: {}", spec.name()));
            if plan.warmup {
                progress.step("warm-up");
                run.at_depth(spec.n_depth)?;
                run.prompt(spec.n_prompt)?;
                run.generate(spec.n_gen.min(1))?;
            }
            let mut samples_ns = Vec::with_capacity(plan.reps);
            let mut prefill_ns = Vec::with_capacity(plan.reps);
            for rep in 0..plan.reps {
                progress.step(&format!("run {}/{}", rep + 1, plan.reps));
                run.at_depth(spec.n_depth)?;
                let tokens = run.prompt_tokens(spec.n_prompt);
                let t = Instant::now();
                if !tokens.is_empty() {
                    run.lm.eval(&tokens)?;
                    prefill_ns.push(duration_ns(t.elapsed()));
                }
                run.generate(spec.n_gen)?;
                samples_ns.push(duration_ns(t.elapsed()));
            }
            printer.row(&Row {
                sys,
                model,
                n_threads: threads,
                n_batch: plan.run.n_batch,
                cache_type: plan.run.cache_type,
                spec,
                test_time: rfc3339_now(),
                samples_ns,
                prefill_ns,
                peak_rss: peak_rss(),
                rss_scope,
                load_ms,
                mem_bw,
            })?;
        }
        Ok(())
    })
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Feeds a model random tokens the way llama-bench does.
struct Runner<'a> {
    lm: &'a mut dyn LanguageModel,
    rng: Rng,
    bos: Option<u32>,
    n_vocab: usize,
    n_batch: usize,
    /// The state after `depth` tokens, computed once and restored before every run.
    depth_state: Option<(usize, Vec<u8>)>,
}

impl Runner<'_> {
    /// `n` random ids, the first one BOS when the model adds one (llama-bench starts every
    /// prompt run with BOS).
    fn prompt_tokens(&mut self, n: usize) -> Vec<u32> {
        (0..n)
            .map(|i| match self.bos {
                Some(b) if i == 0 => b,
                _ => self.rng.below(self.n_vocab),
            })
            .collect()
    }

    fn prompt(&mut self, n: usize) -> Result<(), BoxErr> {
        if n > 0 {
            let tokens = self.prompt_tokens(n);
            self.lm.eval(&tokens)?;
        }
        Ok(())
    }

    /// `n` decode steps, one token each, logits computed every step.
    fn generate(&mut self, n: usize) -> Result<(), BoxErr> {
        let mut tok = self.bos.unwrap_or_else(|| self.rng.below(self.n_vocab));
        for _ in 0..n {
            self.lm.eval(&[tok])?;
            tok = self.rng.below(self.n_vocab);
        }
        Ok(())
    }

    /// Empties the context, then brings it to `depth` tokens (restoring a saved state after the
    /// first time).
    fn at_depth(&mut self, depth: usize) -> Result<(), BoxErr> {
        self.lm.reset();
        if depth == 0 {
            return Ok(());
        }
        if let Some((d, state)) = &self.depth_state {
            if *d == depth {
                self.lm.load_state(&mut state.as_slice())?;
                return Ok(());
            }
        }
        // Batch by batch, as a prompt would be.
        let tokens = self.prompt_tokens(depth);
        for chunk in tokens.chunks(self.n_batch.max(1)) {
            self.lm.eval(chunk)?;
        }
        let mut state = Vec::new();
        self.lm.save_state(&mut state)?;
        self.depth_state = Some((depth, state));
        Ok(())
    }
}

#[cfg(test)]
#[path = "../../benches/common/tiny_gguf.rs"]
mod tiny_gguf;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n_prompt: usize, n_gen: usize, n_depth: usize) -> TestSpec {
        TestSpec {
            n_prompt,
            n_gen,
            n_depth,
        }
    }

    #[test]
    fn test_names_follow_llama_bench() {
        assert_eq!(spec(512, 0, 0).name(), "pp512");
        assert_eq!(spec(0, 128, 0).name(), "tg128");
        assert_eq!(spec(512, 128, 0).name(), "pp512+tg128");
        assert_eq!(spec(0, 128, 4096).name(), "tg128 @ d4096");
    }

    #[test]
    fn plan_orders_by_depth_then_pp_tg_pg_and_skips_zeros() {
        let t = plan_tests(&[512, 0], &[128], &[(64, 16)], &[0, 256]);
        assert_eq!(
            t,
            vec![
                spec(512, 0, 0),
                spec(0, 128, 0),
                spec(64, 16, 0),
                spec(512, 0, 256),
                spec(0, 128, 256),
                spec(64, 16, 256),
            ]
        );
        assert!(plan_tests(&[0], &[0], &[], &[0]).is_empty());
    }

    #[test]
    fn stats_match_llama_bench_definitions() {
        let v = [10.0, 12.0, 14.0];
        assert_eq!(mean(&v), 12.0);
        assert!((stdev(&v) - 2.0).abs() < 1e-12);
        assert_eq!(stdev(&[5.0]), 0.0);
        assert_eq!(mean(&[]), 0.0);
    }

    #[test]
    fn pg_parser_accepts_pairs_and_names_bad_input() {
        assert_eq!(parse_pg("512,128"), Ok((512, 128)));
        assert!(parse_pg("512").unwrap_err().contains("PROMPT,GEN"));
        assert!(parse_pg("0,5").is_err());
        assert!(parse_pg("a,5").is_err());
    }

    #[test]
    fn vm_hwm_is_parsed_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t   1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(1234 * 1024));
        assert_eq!(parse_vm_hwm("VmRSS: 5 kB\n"), None);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn csv_cells_are_quoted() {
        assert_eq!(csv_cell(&serde_json::json!("a\"b")), "\"a\"\"b\"");
        assert_eq!(csv_cell(&serde_json::json!(null)), "");
        assert_eq!(csv_cell(&serde_json::json!(["x", "y"])), "\"x y\"");
        assert_eq!(csv_cell(&serde_json::json!(2.5)), "\"2.5\"");
    }

    #[test]
    fn sum_words_adds_everything() {
        let v: Vec<u64> = (1..=1003).collect();
        assert_eq!(sum_words(&v), 1003 * 1004 / 2);
        assert_eq!(sum_words_fast(&v), 1003 * 1004 / 2);
    }

    #[test]
    fn labels() {
        assert_eq!(params_label(268_098_176), "268M");
        assert_eq!(params_label(2_614_000_000), "2.6B");
        assert_eq!(params_text(268_098_176), "268.10 M");
        assert_eq!(mib(3 << 20), "3.00 MiB");
        assert_eq!(ftype_name(15), "Q4_K - Medium");
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

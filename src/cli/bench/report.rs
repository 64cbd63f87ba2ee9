//! The result rows and how they are printed: llama-bench's markdown table and fields plus
//! ours, CSV, a JSON array or JSON lines, streamed to stdout as each test completes.

use super::plan::{ModelInfo, TestSpec};
use super::OutputFormat;
use edgegemma::kv::CacheType;
use edgegemma::probe::CpuInfo;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the machine is: the CPU and the kernel path dispatch chose.
pub(super) struct SystemInfo {
    pub(super) cpu: CpuInfo,
    pub(super) kernels: &'static str,
}

impl SystemInfo {
    pub(super) fn detect(kernels: &'static str) -> SystemInfo {
        SystemInfo {
            cpu: CpuInfo::detect(),
            kernels,
        }
    }
}

/// One result row.
pub(super) struct Row<'a> {
    pub(super) sys: &'a SystemInfo,
    pub(super) model: &'a ModelInfo,
    pub(super) n_threads: usize,
    pub(super) n_batch: usize,
    pub(super) cache_type: CacheType,
    pub(super) spec: TestSpec,
    pub(super) test_time: String,
    pub(super) samples_ns: Vec<u64>,
    /// Per repetition, the prompt's prefill alone (empty when the test has no prompt).
    pub(super) prefill_ns: Vec<u64>,
    pub(super) peak_rss: Option<u64>,
    pub(super) rss_scope: &'static str,
    pub(super) load_ms: f64,
    /// Read bandwidth, bytes/s, measured with this thread count.
    pub(super) mem_bw: Option<f64>,
}

impl Row<'_> {
    pub(super) fn samples_ts(&self) -> Vec<f64> {
        let n = self.spec.tokens() as f64;
        self.samples_ns
            .iter()
            .map(|&ns| n * 1e9 / ns.max(1) as f64)
            .collect()
    }

    pub(super) fn samples_ns_f64(&self) -> Vec<f64> {
        self.samples_ns.iter().map(|&ns| ns as f64).collect()
    }

    /// Time to first token, ms: loading (mmap to the first logits) plus the mean prefill of
    /// the test's prompt; `None` for tests without a prompt.
    pub(super) fn ttft_ms(&self) -> Option<f64> {
        (!self.prefill_ns.is_empty()).then(|| {
            let ns: Vec<f64> = self.prefill_ns.iter().map(|&v| v as f64).collect();
            self.load_ms + mean(&ns) / 1e6
        })
    }

    /// Tokens/s the memory bandwidth allows for decode (weights streamed once per token).
    pub(super) fn limit_ts(&self) -> Option<f64> {
        let bw = self.mem_bw?;
        (self.spec.is_decode() && self.model.bytes_per_token > 0)
            .then(|| bw / self.model.bytes_per_token as f64)
    }

    pub(super) fn json(&self) -> serde_json::Value {
        let ts = self.samples_ts();
        let ns = self.samples_ns_f64();
        serde_json::json!({
            "build": concat!("edgegemma ", env!("CARGO_PKG_VERSION")),
            "cpu_info": self.sys.cpu.model,
            "cpu_features": self.sys.cpu.features,
            "n_cpus": self.sys.cpu.n_cpus,
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

pub(super) fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Sample standard deviation (n − 1), as llama-bench reports it; 0 for fewer than two samples.
pub(super) fn stdev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    let ss: f64 = v.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (v.len() - 1) as f64).sqrt()
}

pub(super) fn mib(bytes: u64) -> String {
    if bytes < 1 << 30 {
        format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
    }
}

pub(super) fn params_text(n: u64) -> String {
    if n < 1_000_000_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else {
        format!("{:.2} B", n as f64 / 1e9)
    }
}

/// CSV columns (JSON rows carry these and the per-repetition samples).
pub(super) const CSV_FIELDS: [&str; 32] = [
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

pub(super) fn csv_cell(v: &serde_json::Value) -> String {
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
pub(super) fn md_columns(mem_bw: bool) -> Vec<(&'static str, i32)> {
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

pub(super) fn md_line(cells: &[String], cols: &[(&str, i32)]) -> String {
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
pub(super) struct Printer {
    pub(super) format: OutputFormat,
    pub(super) mem_bw: bool,
    pub(super) out: Box<dyn Write + Send>,
    pub(super) rows: usize,
}

impl Printer {
    pub(super) fn begin(&mut self) -> std::io::Result<()> {
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

    pub(super) fn row(&mut self, row: &Row) -> std::io::Result<()> {
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

    pub(super) fn end(&mut self, sys: &SystemInfo) -> std::io::Result<()> {
        let text = match self.format {
            OutputFormat::Md => {
                let mut s = format!(
                    "\nbuild: edgegemma {} | kernels: {} | {}\n",
                    env!("CARGO_PKG_VERSION"),
                    sys.kernels,
                    sys.cpu.summary()
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

    pub(super) fn emit(&mut self, text: &str) -> std::io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

/// RFC 3339 UTC time, as llama-bench stamps its rows.
pub(super) fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

pub(super) fn rfc3339(secs: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::super::plan::{ftype_name, params_label};
    use super::*;

    #[test]
    fn stats_match_llama_bench_definitions() {
        let v = [10.0, 12.0, 14.0];
        assert_eq!(mean(&v), 12.0);
        assert!((stdev(&v) - 2.0).abs() < 1e-12);
        assert_eq!(stdev(&[5.0]), 0.0);
        assert_eq!(mean(&[]), 0.0);
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
    fn labels() {
        assert_eq!(params_label(268_098_176), "268M");
        assert_eq!(params_label(2_614_000_000), "2.6B");
        assert_eq!(params_text(268_098_176), "268.10 M");
        assert_eq!(mib(3 << 20), "3.00 MiB");
        assert_eq!(ftype_name(15), "Q4_K - Medium");
    }
}

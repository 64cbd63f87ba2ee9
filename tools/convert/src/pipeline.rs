//! From a plan (metadata + one job per tensor) to a GGUF: tensor by tensor, a chunk of rows
//! at a time (peak memory ≈ one chunk in f32 plus its quantized copy), quantized in
//! parallel, with a progress bar, a `--dry-run` listing and a summary table.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use edgegemma::gguf::{GgmlType, GgufWriter, OwnedValue};
use edgegemma_kernels::formats::quantize_row;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::output::{interrupted, PendingOutput};
use crate::source::TensorSource;
use crate::validate;

/// f32 elements converted per chunk (16 MiB of f32).
const CHUNK_ELEMS: usize = 1 << 22;

/// One output tensor.
pub struct Job<'a> {
    pub name: String,
    /// GGUF `ne`.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Why the type differs from what the recipe wanted ("q4_K: 640 columns").
    pub note: Option<String>,
    pub source: Box<dyn TensorSource + 'a>,
}

impl Job<'_> {
    fn rows(&self) -> usize {
        self.dims[1..].iter().product::<u64>() as usize
    }

    fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    fn out_bytes(&self) -> u64 {
        self.ty
            .row_bytes(self.dims[0])
            .expect("checked by the plan")
            * self.rows() as u64
    }
}

pub struct Plan<'a> {
    /// What is converted ("models/gemma-3-270m (Gemma3ForCausalLM, bf16)").
    pub input: String,
    pub metadata: Vec<(String, OwnedValue)>,
    pub jobs: Vec<Job<'a>>,
    /// Extra lines for the plan header (tokenizer source, ...).
    pub notes: Vec<String>,
}

pub struct Options {
    pub force: bool,
    pub dry_run: bool,
    /// No progress bar and no summary (errors still go to stderr).
    pub quiet: bool,
}

/// What was written, for the summary and tests.
pub struct Summary {
    pub file_size: u64,
    pub tensor_bytes: u64,
    pub elements: u64,
    pub per_type: BTreeMap<GgmlType, (usize, u64, u64)>,
    pub seconds: f64,
    pub input_bytes: u64,
}

impl Summary {
    pub fn bits_per_weight(&self) -> f64 {
        self.tensor_bytes as f64 * 8.0 / self.elements.max(1) as f64
    }
}

fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

fn build_writer(out: &Path, plan: &mut Plan) -> Result<GgufWriter> {
    let mut w = GgufWriter::new(out);
    for (k, v) in std::mem::take(&mut plan.metadata) {
        w.add_metadata(&k, v)?;
    }
    for j in &plan.jobs {
        w.add_tensor(&j.name, j.ty, &j.dims)?;
    }
    Ok(w)
}

fn tally(plan: &Plan) -> Summary {
    let mut s = Summary {
        file_size: 0,
        tensor_bytes: 0,
        elements: 0,
        per_type: BTreeMap::new(),
        seconds: 0.0,
        input_bytes: 0,
    };
    for j in &plan.jobs {
        let e = s.per_type.entry(j.ty).or_default();
        e.0 += 1;
        e.1 += j.out_bytes();
        e.2 += j.elements();
        s.tensor_bytes += j.out_bytes();
        s.elements += j.elements();
        s.input_bytes += j.source.bytes_per_row() * j.rows() as u64;
    }
    s
}

/// Prints the plan (every tensor, its source and target type) and the expected summary.
pub fn dry_run(mut plan: Plan, out: &Path) -> Result<Summary> {
    let mut s = tally(&plan);
    let stdout = std::io::stdout();
    let mut o = stdout.lock();
    let _ = writeln!(o, "input:  {}", plan.input);
    for n in &plan.notes {
        let _ = writeln!(o, "        {n}");
    }
    let _ = writeln!(o, "output: {} (dry run, nothing written)", out.display());
    let width = plan.jobs.iter().map(|j| j.name.len()).max().unwrap_or(4);
    let _ = writeln!(
        o,
        "{:<width$}  {:>22}  {:>6}  {:>7}  {:>10}",
        "tensor", "shape (ne)", "from", "to", "MiB"
    );
    for j in &plan.jobs {
        let dims = format!("{:?}", j.dims);
        let _ = writeln!(
            o,
            "{:<width$}  {:>22}  {:>6}  {:>7}  {:>10.3}{}",
            j.name,
            dims,
            j.source.type_name(),
            j.ty.name(),
            j.out_bytes() as f64 / (1 << 20) as f64,
            j.note
                .as_ref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        );
    }
    let w = build_writer(out, &mut plan)?;
    let alignment = w.alignment();
    let data = w.begin(std::io::sink())?;
    let header = data.data_offset();
    s.file_size = header + aligned_total(&plan.jobs, alignment);
    drop(data);
    print_summary(&s, false);
    Ok(s)
}

fn aligned_total(jobs: &[Job], alignment: u64) -> u64 {
    jobs.iter()
        .map(|j| j.out_bytes().div_ceil(alignment) * alignment)
        .sum()
}

/// Writes the GGUF to `out` through a temporary file.
pub fn write(mut plan: Plan, out: &Path, opts: &Options) -> Result<Summary> {
    let start = Instant::now();
    let mut summary = tally(&plan);
    let writer = build_writer(out, &mut plan)?;
    let (pending, file) = PendingOutput::create(out, opts.force)?;
    let mut w = writer.begin(file)?;

    let bar = if opts.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(
            Some(summary.input_bytes),
            ProgressDrawTarget::stderr_with_hz(5),
        );
        b.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {percent:>3}% {binary_bytes_per_sec:>11} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    };

    let mut f32buf: Vec<f32> = Vec::new();
    let mut qbuf: Vec<u8> = Vec::new();
    for job in &plan.jobs {
        bar.set_message(job.name.clone());
        w.begin_tensor(&job.name)?;
        let row_len = job.dims[0] as usize;
        let rows = job.rows();
        let row_bytes = job.ty.row_bytes(job.dims[0]).expect("checked by the plan") as usize;
        let chunk_rows = (CHUNK_ELEMS / row_len).max(1);
        let mut first = 0;
        while first < rows {
            let n = chunk_rows.min(rows - first);
            if let Some(raw) = job.source.raw(job.ty, first, n) {
                w.write_data(raw)?;
            } else {
                f32buf.resize(n * row_len, 0.0);
                job.source.read_f32(first, &mut f32buf)?;
                if !is_float(job.ty) {
                    if let Some((r, c, v)) = validate::first_non_finite(&f32buf, row_len) {
                        return Err(Error::new(format!(
                            "{}: tensor {:?} row {} column {c} is {v}; only finite weights can be quantized to {}",
                            plan.input,
                            job.name,
                            first + r,
                            job.ty
                        )));
                    }
                }
                qbuf.resize(n * row_bytes, 0);
                qbuf.par_chunks_mut(row_bytes)
                    .zip(f32buf.par_chunks(row_len))
                    .try_for_each(|(dst, src)| quantize_row(job.ty, src, dst))
                    .map_err(|e| {
                        Error::new(format!(
                            "tensor {:?}: cannot make {}: {e}",
                            job.name, job.ty
                        ))
                    })?;
                w.write_data(&qbuf)?;
            }
            job.source.release(first, n);
            bar.inc(job.source.bytes_per_row() * n as u64);
            first += n;
            if interrupted() {
                bar.abandon();
                return Err(Error::at(
                    out,
                    "interrupted; not written (the temporary output is removed)",
                ));
            }
        }
        w.end_tensor()?;
    }
    let file = w.finish()?;
    let size = file.written();
    pending.commit(file)?;
    bar.finish_and_clear();
    summary.file_size = size;
    summary.seconds = start.elapsed().as_secs_f64();
    if !opts.quiet {
        eprintln!("wrote {}", out.display());
        print_summary(&summary, true);
    }
    Ok(summary)
}

fn print_summary(s: &Summary, to_stderr: bool) {
    let mut lines = Vec::new();
    lines.push(format!(
        "{:<8} {:>7} {:>12} {:>14} {:>7}",
        "type", "tensors", "MiB", "weights", "share"
    ));
    for (ty, (n, bytes, elems)) in &s.per_type {
        lines.push(format!(
            "{:<8} {:>7} {:>12.2} {:>14} {:>6.1}%",
            ty.name(),
            n,
            *bytes as f64 / (1 << 20) as f64,
            elems,
            100.0 * *bytes as f64 / s.tensor_bytes.max(1) as f64
        ));
    }
    lines.push(format!(
        "total    {:>7} {:>12.2} {:>14}",
        s.per_type.values().map(|v| v.0).sum::<usize>(),
        s.tensor_bytes as f64 / (1 << 20) as f64,
        s.elements
    ));
    lines.push(format!(
        "file {:.2} MiB, {:.3} bits per weight",
        s.file_size as f64 / (1 << 20) as f64,
        s.bits_per_weight()
    ));
    if s.seconds > 0.0 {
        lines.push(format!(
            "{:.1} s, {:.0} MB/s of input",
            s.seconds,
            s.input_bytes as f64 / 1e6 / s.seconds
        ));
    }
    for l in lines {
        if to_stderr {
            eprintln!("{l}");
        } else {
            println!("{l}");
        }
    }
}

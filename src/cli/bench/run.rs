//! Running the tests: one rayon pool per thread count, the model loaded on it, random
//! token ids fed the way llama-bench feeds them, progress on stderr.

use super::plan::{ModelInfo, Plan};
use super::report::{Printer, Row, SystemInfo};
use super::BoxErr;
use edgegemma::model::LanguageModel;
use edgegemma::probe;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The progress line on stderr: rewritten in place on a terminal, one line per test otherwise.
pub(super) struct Progress {
    pub(super) enabled: bool,
    pub(super) tty: bool,
    pub(super) total: usize,
    pub(super) done: usize,
    pub(super) label: String,
}

impl Progress {
    pub(super) fn new(enabled: bool, total: usize) -> Progress {
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            total,
            done: 0,
            label: String::new(),
        }
    }

    /// Something outside the test count (loading, bandwidth).
    pub(super) fn note(&mut self, what: &str) {
        if self.enabled {
            self.line(what, true);
        }
    }

    pub(super) fn start_test(&mut self, label: String) {
        self.done += 1;
        self.label = format!("[{}/{}] {label}", self.done, self.total);
        if self.enabled {
            let l = self.label.clone();
            self.line(&l, true);
        }
    }

    /// Step within the current test; shown on a terminal only.
    pub(super) fn step(&mut self, what: &str) {
        if self.enabled && self.tty {
            let l = format!("{}: {what}", self.label);
            self.line(&l, false);
        }
    }

    pub(super) fn line(&self, text: &str, always: bool) {
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[Kbench: {text}");
        } else if always {
            let _ = writeln!(e, "bench: {text}");
        }
        let _ = e.flush();
    }

    pub(super) fn clear(&self) {
        if self.enabled && self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// xorshift64*: token ids, no dependency, same sequence for a seed.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng((seed ^ 0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(super) fn below(&mut self, n: usize) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 32) % n as u64) as u32
    }
}

/// One model at one thread count: measure bandwidth, load, run every test, print the rows.
pub(super) fn run_instance(
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
            Some(probe::measure_read_bw(model.bytes_per_token))
        } else {
            None
        };
        progress.note(&format!("loading {name}, {th}"));
        let rss_scope = if probe::reset_peak_rss() {
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
                test_time: super::report::rfc3339_now(),
                samples_ns,
                prefill_ns,
                peak_rss: probe::peak_rss(),
                rss_scope,
                load_ms,
                mem_bw,
            })?;
        }
        Ok(())
    })
}

pub(super) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Feeds a model random tokens the way llama-bench does.
pub(super) struct Runner<'a> {
    pub(super) lm: &'a mut dyn LanguageModel,
    pub(super) rng: Rng,
    pub(super) bos: Option<u32>,
    pub(super) n_vocab: usize,
    pub(super) n_batch: usize,
    /// The state after `depth` tokens, computed once and restored before every run.
    pub(super) depth_state: Option<(usize, Vec<u8>)>,
}

impl Runner<'_> {
    /// `n` random ids, the first one BOS when the model adds one (llama-bench starts every
    /// prompt run with BOS).
    pub(super) fn prompt_tokens(&mut self, n: usize) -> Vec<u32> {
        (0..n)
            .map(|i| match self.bos {
                Some(b) if i == 0 => b,
                _ => self.rng.below(self.n_vocab),
            })
            .collect()
    }

    pub(super) fn prompt(&mut self, n: usize) -> Result<(), BoxErr> {
        if n > 0 {
            let tokens = self.prompt_tokens(n);
            self.lm.eval(&tokens)?;
        }
        Ok(())
    }

    /// `n` decode steps, one token each, logits computed every step.
    pub(super) fn generate(&mut self, n: usize) -> Result<(), BoxErr> {
        let mut tok = self.bos.unwrap_or_else(|| self.rng.below(self.n_vocab));
        for _ in 0..n {
            self.lm.eval(&[tok])?;
            tok = self.rng.below(self.n_vocab);
        }
        Ok(())
    }

    /// Empties the context, then brings it to `depth` tokens (restoring a saved state after the
    /// first time).
    pub(super) fn at_depth(&mut self, depth: usize) -> Result<(), BoxErr> {
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

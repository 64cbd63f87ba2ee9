//! Inference slots behind the HTTP server: `parallel` model instances, each on its own
//! thread with its own KV cache / state and [`PromptCache`], fed from one bounded queue by a
//! scheduler that gives a job to the idle slot sharing the longest prefix with its prompt
//! (so a system prompt cached in one slot is found again).
//! A job streams [`Event`]s back; when its receiver is gone (the client left) the slot stops
//! at the next chunk or token and takes the next job.

use crate::chat_template::ChatTemplate;
use crate::gguf::names::Arch;
use crate::gguf::GgufFile;
use crate::model::gemma::Gemma;
use crate::model::recurrent_gemma::RecurrentGemma;
use crate::model::{LanguageModel, ModelError, RunConfig};
use crate::prompt_cache::PromptCache;
use crate::sampler::{Sampler, SamplerConfig};
use crate::tokenizer::{StreamDecoder, Tokenizer};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Saved states per slot for a model that cannot rewind (RecurrentGemma: a few MB each).
const SNAPSHOTS_PER_SLOT: usize = 4;

/// What one request asks the model for.
#[derive(Clone, Debug)]
pub struct GenParams {
    /// Most tokens to generate (already within the context).
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    /// OpenAI's additive penalties over the recent tokens (0 = off).
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    /// Generation ends before the first of these strings (not included in the text).
    pub stop: Vec<String>,
    /// Report log-probabilities: `Some(k)` with the `k` most likely alternatives.
    pub logprobs: Option<usize>,
    /// Reuse what the slot holds (llama-server's `cache_prompt`; false recomputes all).
    pub cache_prompt: bool,
}

pub struct Job {
    pub prompt: Vec<u32>,
    /// Prompt lengths at message boundaries (snapshot points for a recurrent model).
    pub boundaries: Vec<usize>,
    pub params: GenParams,
    pub events: mpsc::Sender<Event>,
}

/// One generated token's log-probability and the most likely alternatives.
#[derive(Clone, Debug)]
pub struct TokenLogprob {
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
    pub top: Vec<(String, Vec<u8>, f32)>,
}

#[derive(Clone, Debug)]
pub struct Summary {
    /// "stop" (end token or stop string) or "length" (budget or context).
    pub finish_reason: &'static str,
    pub prompt_tokens: usize,
    /// Prompt tokens reused from the prompt cache.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub prompt_ms: f64,
    pub gen_ms: f64,
}

pub enum Event {
    /// Text that is final (held back while it could still start a stop string) and the
    /// log-probabilities of the tokens generated since the last event.
    Text {
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    Done(Summary),
    Error(String),
}

/// What the scheduler hears: a new job, or a slot that finished one (with the tokens its
/// cache now holds).
enum Msg {
    Job(Job),
    Idle(usize, Vec<u32>),
}

pub struct Engine {
    scheduler: Sender<Msg>,
    /// Jobs accepted but not yet given to a slot.
    queued: Arc<AtomicUsize>,
    queue_len: usize,
    pub tok: Arc<Tokenizer>,
    pub template: Arc<ChatTemplate>,
    pub n_ctx: usize,
    pub n_vocab: usize,
    pub arch: String,
}

impl Engine {
    /// Loads `parallel` instances of the model (the weights are mapped once by the page
    /// cache; each has its own context) and starts their threads on a pool of `threads`.
    pub fn start(
        path: &Path,
        run: &RunConfig,
        threads: Option<usize>,
        parallel: usize,
        queue_len: usize,
    ) -> Result<Engine, String> {
        // One mapping of the file shared by every slot.
        let file = GgufFile::open(path).map_err(|e| e.to_string())?;
        let tok = Arc::new(Tokenizer::from_gguf_file(&file).map_err(|e| e.to_string())?);
        let template = Arc::new(
            ChatTemplate::from_gguf(&file, &tok).map_err(|e| format!("{}: {e}", path.display()))?,
        );
        let mut builder = rayon::ThreadPoolBuilder::new();
        if let Some(n) = threads {
            if n == 0 {
                return Err("--threads must be at least 1".into());
            }
            builder = builder.num_threads(n);
        }
        let pool = Arc::new(
            builder
                .build()
                .map_err(|e| format!("cannot start the thread pool: {e}"))?,
        );
        let (to_scheduler, from_all) = channel::<Msg>();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut slot_tx = Vec::new();
        let mut info = None;
        for i in 0..parallel.max(1) {
            let (model, snapshots) = load_model(&file, run)?;
            info.get_or_insert((model.n_ctx(), model.n_vocab(), model.arch().to_string()));
            let slot = Slot {
                model,
                cache: PromptCache::new(snapshots),
                tok: tok.clone(),
                logits: Vec::new(),
                order: Vec::new(),
            };
            let (tx, rx) = channel::<Job>();
            slot_tx.push(tx);
            let (done, pool) = (to_scheduler.clone(), pool.clone());
            std::thread::Builder::new()
                .name(format!("slot-{i}"))
                .spawn(move || slot_loop(i, slot, &rx, &done, &pool))
                .map_err(|e| format!("cannot start a slot thread: {e}"))?;
        }
        let q = queued.clone();
        std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || schedule(&from_all, &slot_tx, &q))
            .map_err(|e| format!("cannot start the scheduler thread: {e}"))?;
        let (n_ctx, n_vocab, arch) = info.expect("at least one slot");
        Ok(Engine {
            scheduler: to_scheduler,
            queued,
            queue_len,
            tok,
            template,
            n_ctx,
            n_vocab,
            arch,
        })
    }

    /// Queues a job; false when the queue is full (the caller answers 503).
    pub fn submit(&self, job: Job) -> bool {
        let accepted = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.queue_len).then_some(n + 1)
            })
            .is_ok();
        if !accepted {
            return false;
        }
        if self.scheduler.send(Msg::Job(job)).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// Gives queued jobs, oldest first, to idle slots: the one whose cached tokens share the
/// longest prefix with the prompt, else the one idle longest.
fn schedule(rx: &Receiver<Msg>, slots: &[Sender<Job>], queued: &AtomicUsize) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    // Idle slots in the order they became idle, with what they hold.
    let mut idle: Vec<(usize, Vec<u32>)> = (0..slots.len()).map(|i| (i, Vec::new())).collect();
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Job(job) => pending.push_back(job),
            Msg::Idle(i, tokens) => idle.push((i, tokens)),
        }
        while !idle.is_empty() {
            let Some(job) = pending.pop_front() else {
                break;
            };
            queued.fetch_sub(1, Ordering::AcqRel);
            if job.events.is_closed() {
                continue; // the client left while the job waited
            }
            let shared = |t: &[u32]| {
                t.iter()
                    .zip(&job.prompt)
                    .take_while(|(a, b)| a == b)
                    .count()
            };
            let best = (0..idle.len())
                .max_by_key(|&k| (shared(&idle[k].1), std::cmp::Reverse(k)))
                .unwrap_or(0);
            let (slot, _) = idle.remove(best);
            if let Err(e) = slots[slot].send(job) {
                // The slot thread is gone (it cannot be, short of a bug): report, don't hang.
                let _ =
                    e.0.events
                        .blocking_send(Event::Error("slot unavailable".into()));
            }
        }
    }
}

fn load_model(file: &GgufFile, run: &RunConfig) -> Result<(Box<dyn LanguageModel>, usize), String> {
    let name = file.architecture().map_err(|e| e.to_string())?;
    match Arch::from_name(name) {
        Some(Arch::Gemma | Arch::Gemma2 | Arch::Gemma3) => {
            let mut g = Gemma::load(file, run).map_err(|e| e.to_string())?;
            // Every prefix can then be reused, not only ones shorter than the window.
            g.keep_full_local_cache();
            Ok((Box::new(g), 0))
        }
        Some(Arch::RecurrentGemma) => Ok((
            Box::new(RecurrentGemma::load(file, run).map_err(|e| e.to_string())?),
            SNAPSHOTS_PER_SLOT,
        )),
        None => Err(format!(
            "{}: unsupported architecture {name:?}",
            file.path().display()
        )),
    }
}

struct Slot {
    model: Box<dyn LanguageModel>,
    cache: PromptCache,
    tok: Arc<Tokenizer>,
    /// Penalized copy of the logits (only when a penalty is asked for).
    logits: Vec<f32>,
    /// Token ids by logit, for top log-probabilities.
    order: Vec<u32>,
}

fn slot_loop(
    index: usize,
    mut slot: Slot,
    rx: &Receiver<Job>,
    done: &Sender<Msg>,
    pool: &rayon::ThreadPool,
) {
    while let Ok(job) = rx.recv() {
        // The whole request runs inside the pool: a matmul issued from a pool worker forks
        // in well under a microsecond (see cli::common::with_threads).
        let events = job.events.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| slot.run(job))
        }));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = events.blocking_send(Event::Error(e.to_string()));
            }
            Err(_) => {
                // A bug, not an input: keep serving, with a fresh context for this slot.
                slot.cache.clear(slot.model.as_mut());
                let _ = events.blocking_send(Event::Error("internal error".into()));
            }
        }
        if done
            .send(Msg::Idle(index, slot.cache.tokens().to_vec()))
            .is_err()
        {
            return;
        }
    }
}

impl Slot {
    fn run(&mut self, job: Job) -> Result<(), ModelError> {
        let Job {
            prompt,
            boundaries,
            params,
            events,
        } = job;
        let cancelled = || events.is_closed();
        let t0 = Instant::now();
        if !params.cache_prompt {
            self.cache.clear(self.model.as_mut());
        }
        let (cached, _) = self.cache.prepare(self.model.as_mut(), &prompt);
        let tok = self.tok.clone();
        let n_valid = tok.len().min(self.model.n_vocab());
        let mut sampler = Sampler::new(params.sampler.clone());
        let recent_from = prompt
            .len()
            .saturating_sub(params.sampler.repeat_last_n.max(64));
        for &t in &prompt[recent_from..] {
            sampler.accept(t);
        }
        let mut recent: Vec<u32> = prompt[recent_from..].to_vec();
        let penalize = params.frequency_penalty != 0.0 || params.presence_penalty != 0.0;
        let logits = match self.cache.feed(
            self.model.as_mut(),
            &prompt[cached..],
            &boundaries,
            &cancelled,
        ) {
            Ok(l) => l,
            Err(_) if cancelled() => return Ok(()),
            Err(e) => return Err(e),
        };
        let prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut logits: &[f32] = logits;
        let t_gen = Instant::now();
        let mut dec = StreamDecoder::new(false);
        let mut text = String::new();
        let mut emitted = 0usize;
        let mut pending_lp: Vec<TokenLogprob> = Vec::new();
        let max_stop = params.stop.iter().map(String::len).max().unwrap_or(0);
        let mut generated = 0usize;
        let finish_reason;
        loop {
            let id = if penalize {
                self.logits.clear();
                self.logits.extend_from_slice(&logits[..n_valid]);
                apply_penalties(
                    &mut self.logits,
                    &recent,
                    params.frequency_penalty,
                    params.presence_penalty,
                );
                sampler.sample(&self.logits, n_valid)
            } else {
                sampler.sample(logits, n_valid)
            };
            if tok.is_eog(id) {
                finish_reason = "stop";
                break;
            }
            if let Some(k) = params.logprobs {
                pending_lp.push(logprob(&tok, &mut self.order, &logits[..n_valid], id, k));
            }
            sampler.accept(id);
            recent.push(id);
            if recent.len() > 64 {
                recent.remove(0);
            }
            generated += 1;
            let piece = dec.push(&tok, id).map_err(|e| ModelError(e.to_string()))?;
            text.push_str(piece);
            // A stop string ends the text where it begins; it cannot begin before `emitted`.
            if let Some(at) = find_stop(&text, emitted, &params.stop) {
                text.truncate(at);
                finish_reason = "stop";
                break;
            }
            let safe =
                floor_char_boundary(&text, text.len().saturating_sub(max_stop.saturating_sub(1)));
            if safe > emitted || !pending_lp.is_empty() {
                let chunk = text[emitted..safe.max(emitted)].to_string();
                emitted = safe.max(emitted);
                let ev = Event::Text {
                    text: chunk,
                    logprobs: std::mem::take(&mut pending_lp),
                };
                if events.blocking_send(ev).is_err() {
                    return Ok(()); // the client left: the slot is free again
                }
            }
            if generated >= params.max_tokens || self.model.pos() >= self.model.n_ctx() {
                finish_reason = "length";
                break;
            }
            logits = self.model.eval(&[id])?;
            self.cache.push(id);
        }
        text.push_str(dec.finish());
        if finish_reason == "length" {
            if let Some(at) = find_stop(&text, emitted, &params.stop) {
                text.truncate(at);
            }
        }
        if text.len() > emitted || !pending_lp.is_empty() {
            let ev = Event::Text {
                text: text[emitted.min(text.len())..].to_string(),
                logprobs: pending_lp,
            };
            if events.blocking_send(ev).is_err() {
                return Ok(());
            }
        }
        let _ = events.blocking_send(Event::Done(Summary {
            finish_reason,
            prompt_tokens: prompt.len(),
            cached_tokens: cached,
            completion_tokens: generated,
            prompt_ms,
            gen_ms: t_gen.elapsed().as_secs_f64() * 1e3,
        }));
        Ok(())
    }
}

/// The model's log-probability of `id` and its `k` most likely alternatives (`order` is
/// scratch).
fn logprob(
    tok: &Tokenizer,
    order: &mut Vec<u32>,
    logits: &[f32],
    id: u32,
    k: usize,
) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    let piece = |t: u32| {
        let bytes = tok.token_to_piece(t, false).unwrap_or_default().to_vec();
        (String::from_utf8_lossy(&bytes).into_owned(), bytes)
    };
    let mut top = Vec::new();
    if k > 0 {
        order.clear();
        order.extend(0..logits.len() as u32);
        let k = k.min(order.len());
        let desc = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        order.select_nth_unstable_by(k - 1, desc);
        order[..k].sort_unstable_by(desc);
        for &t in &order[..k] {
            let (s, b) = piece(t);
            top.push((s, b, logits[t as usize] - lse));
        }
    }
    let (token, bytes) = piece(id);
    TokenLogprob {
        token,
        bytes,
        logprob: logits[id as usize] - lse,
        top,
    }
}

/// OpenAI's penalties: `logit -= frequency × count + presence × (count > 0)`.
fn apply_penalties(logits: &mut [f32], recent: &[u32], frequency: f32, presence: f32) {
    let mut seen: Vec<u32> = recent.to_vec();
    seen.sort_unstable();
    let mut i = 0;
    while i < seen.len() {
        let t = seen[i];
        let n = seen[i..].iter().take_while(|&&x| x == t).count();
        if let Some(l) = logits.get_mut(t as usize) {
            *l -= frequency * n as f32 + presence;
        }
        i += n;
    }
}

fn find_stop(text: &str, from: usize, stops: &[String]) -> Option<usize> {
    let from = floor_char_boundary(text, from);
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text[from..].find(s.as_str()).map(|i| from + i))
        .min()
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_and_penalties() {
        let stops = vec!["END".to_string(), "\n\n".to_string()];
        assert_eq!(find_stop("abc END x", 0, &stops), Some(4));
        assert_eq!(find_stop("a\n\nEND", 0, &stops), Some(1));
        assert_eq!(find_stop("abc", 0, &stops), None);
        assert_eq!(floor_char_boundary("aé", 2), 1);
        let mut l = vec![1.0, 1.0, 1.0];
        apply_penalties(&mut l, &[0, 0, 2], 0.5, 0.25);
        assert_eq!(l, [1.0 - 1.0 - 0.25, 1.0, 1.0 - 0.5 - 0.25]);
    }
}

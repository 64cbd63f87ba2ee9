//! The generation loop shared by `run`, `chat` and `bench`: prompt in one batched call, then
//! sample / feed back one token at a time until an end-of-generation token or the budget.

use crate::model::{LanguageModel, Result};
use crate::sampler::Sampler;
use crate::tokenizer::Tokenizer;
use std::time::{Duration, Instant};

/// Where time went in one generation.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    pub prompt_tokens: usize,
    pub prompt: Duration,
    pub gen_tokens: usize,
    pub gen: Duration,
}

impl Timings {
    pub fn prompt_tps(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt)
    }
    pub fn gen_tps(&self) -> f64 {
        rate(self.gen_tokens, self.gen)
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    if n == 0 || d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    EndOfGeneration,
    Budget,
    ContextFull,
}

/// Feeds `prompt`, then generates up to `n_predict` tokens (`None`: until an end token or the
/// context is full), calling `on_token` for each one (end tokens are not passed on).
pub fn generate(
    model: &mut dyn LanguageModel,
    tok: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u32],
    n_predict: Option<usize>,
    on_token: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<(Timings, StopReason)> {
    let mut t = Timings::default();
    let n_valid = tok.len().min(model.n_vocab());
    let start = Instant::now();
    let logits = model.eval(prompt)?;
    let mut next = sampler.sample(logits, n_valid);
    t.prompt = start.elapsed();
    t.prompt_tokens = prompt.len();
    prompt.iter().for_each(|&p| sampler.accept(p));
    let gen_start = Instant::now();
    let stop = loop {
        if tok.is_eog(next) {
            break StopReason::EndOfGeneration;
        }
        sampler.accept(next);
        on_token(next)?;
        t.gen_tokens += 1;
        if n_predict.is_some_and(|n| t.gen_tokens >= n) {
            break StopReason::Budget;
        }
        if model.pos() >= model.n_ctx() {
            break StopReason::ContextFull;
        }
        let logits = model.eval(&[next])?;
        next = sampler.sample(logits, n_valid);
    };
    t.gen = gen_start.elapsed();
    Ok((t, stop))
}

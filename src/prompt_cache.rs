//! Prompt cache: a model instance that remembers which tokens it holds, so the next prompt
//! computes only what it does not share with them. A long system prompt is processed once.
//!
//! Two ways back to a shared prefix:
//! - rewinding ([`LanguageModel::truncate`]): Gemma's KV cache keeps every position, so the
//!   longest common token prefix is reused as it is;
//! - snapshots: a recurrent state (RecurrentGemma) cannot be rewound, so the state is saved
//!   at message boundaries of a prompt ([`PromptCache::feed`]) and the next prompt resumes
//!   from the longest snapshot that is a prefix of it.

use crate::model::{LanguageModel, ModelError, Result};

/// Prompt tokens fed per call between cancellation checks: a whole model batch (the CLI's
/// default `-b`), so chunking costs no speed.
pub const FEED_CHUNK: usize = 256;

/// Prompt tokens left to feed after a reused prefix, and the shortest piece `feed` cuts.
const MIN_FEED: usize = 2;

/// What [`PromptCache::prepare`] did to reach the reused prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Nothing shared: the model starts from an empty context.
    None,
    /// The model already held (at least) the shared prefix; rewound if it held more.
    Prefix,
    /// A saved state was restored.
    Snapshot,
}

struct Snapshot {
    tokens: Vec<u32>,
    state: Vec<u8>,
    last_used: u64,
}

pub struct PromptCache {
    /// The tokens the model holds, in order (`model.pos() == tokens.len()`).
    tokens: Vec<u32>,
    snapshots: Vec<Snapshot>,
    max_snapshots: usize,
    clock: u64,
}

impl PromptCache {
    /// A cache for a model with an empty context. `max_snapshots` saved states are kept
    /// for a model that cannot rewind (RecurrentGemma); 0 for one that can (Gemma), which
    /// needs none.
    pub fn new(max_snapshots: usize) -> PromptCache {
        PromptCache {
            tokens: Vec::new(),
            snapshots: Vec::new(),
            max_snapshots,
            clock: 0,
        }
    }

    /// The tokens the model holds.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Brings `model` to the longest prefix of `prompt` it can reuse and returns its length:
    /// the caller feeds `prompt[n..]` through [`PromptCache::feed`]. At least the last two
    /// prompt tokens are always left to feed (the last one's logits are needed, and a batch of
    /// two or more gives each token the bits of a fresh run: see `model::driver::batch_pieces`).
    pub fn prepare(&mut self, model: &mut dyn LanguageModel, prompt: &[u32]) -> (usize, Reuse) {
        if model.pos() != self.tokens.len() {
            // Someone fed the model behind the cache's back (or a feed failed half-way).
            model.reset();
            self.tokens.clear();
        }
        let limit = prompt.len().saturating_sub(MIN_FEED);
        let common = common_prefix(&self.tokens, prompt).min(limit);
        if common > 0 && model.truncate(common) {
            self.tokens.truncate(common);
            return (common, Reuse::Prefix);
        }
        // The longest snapshot that is a prefix of the prompt and longer than nothing.
        self.clock += 1;
        let best = self
            .snapshots
            .iter_mut()
            .filter(|s| s.tokens.len() <= limit && prompt.starts_with(&s.tokens))
            .max_by_key(|s| s.tokens.len());
        if let Some(s) = best {
            if model.load_state(&mut s.state.as_slice()).is_ok() && model.pos() == s.tokens.len() {
                s.last_used = self.clock;
                self.tokens.clone_from(&s.tokens);
                return (self.tokens.len(), Reuse::Snapshot);
            }
        }
        model.reset();
        self.tokens.clear();
        (0, Reuse::None)
    }

    /// Feeds `tokens` (continuing what the model holds) and returns the logits of the last
    /// one. `boundaries` are prompt lengths, counted from the start of the context, at which
    /// a message ends: for a model that cannot rewind, the state is saved there so a later
    /// prompt sharing the conversation up to that message resumes from it. `cancelled` is
    /// asked between chunks of [`FEED_CHUNK`] tokens; when it says so, feeding stops with an
    /// error (the cache stays consistent with what was fed).
    pub fn feed<'m>(
        &mut self,
        model: &'m mut dyn LanguageModel,
        tokens: &[u32],
        boundaries: &[usize],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<&'m [f32]> {
        let start = self.tokens.len();
        let end = start + tokens.len();
        let mut cuts: Vec<(usize, bool)> = boundaries
            .iter()
            .filter(|&&b| self.max_snapshots > 0 && b > start && b < end)
            .map(|&b| (b, true))
            .chain(
                (start + FEED_CHUNK..end)
                    .step_by(FEED_CHUNK)
                    .map(|c| (c, false)),
            )
            .collect();
        cuts.sort_unstable();
        cuts.dedup_by(|b, a| {
            // Same position: keep one, snapshotting if either wanted it.
            a.0 == b.0 && {
                a.1 |= b.1;
                true
            }
        });
        // No piece of one token between cuts (it would run the decode kernels: see
        // `prepare`); a snapshot cut dropped for that is taken at the next message boundary.
        let mut prev = start;
        cuts.retain(|&(c, _)| {
            let keep = c - prev >= MIN_FEED && end - c >= MIN_FEED;
            if keep {
                prev = c;
            }
            keep
        });
        let mut at = start;
        for (cut, snapshot) in cuts {
            if cancelled() {
                return Err(ModelError("cancelled".into()));
            }
            self.eval_tracked(model, &tokens[at - start..cut - start])?;
            at = cut;
            if snapshot {
                self.save_snapshot(model);
            }
        }
        if cancelled() {
            return Err(ModelError("cancelled".into()));
        }
        let rest = &tokens[at - start..];
        let logits = model.eval(rest)?;
        self.tokens.extend_from_slice(rest);
        Ok(logits)
    }

    fn eval_tracked(&mut self, model: &mut dyn LanguageModel, tokens: &[u32]) -> Result<()> {
        model.eval(tokens)?;
        self.tokens.extend_from_slice(tokens);
        Ok(())
    }

    /// Records one generated token fed to the model by the caller (`model.eval(&[id])`).
    pub fn push(&mut self, id: u32) {
        self.tokens.push(id);
    }

    fn save_snapshot(&mut self, model: &mut dyn LanguageModel) {
        if self.snapshots.iter().any(|s| s.tokens == self.tokens) {
            return;
        }
        let mut state = Vec::new();
        if model.save_state(&mut state).is_err() {
            return;
        }
        self.clock += 1;
        if self.snapshots.len() >= self.max_snapshots {
            if let Some(i) = (0..self.snapshots.len()).min_by_key(|&i| self.snapshots[i].last_used)
            {
                self.snapshots.swap_remove(i);
            }
        }
        self.snapshots.push(Snapshot {
            tokens: self.tokens.clone(),
            state,
            last_used: self.clock,
        });
    }

    /// Bytes held by snapshots.
    pub fn snapshot_bytes(&self) -> usize {
        self.snapshots.iter().map(|s| s.state.len()).sum()
    }

    /// Forgets everything (the model is reset too).
    pub fn clear(&mut self, model: &mut dyn LanguageModel) {
        model.reset();
        self.tokens.clear();
        self.snapshots.clear();
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose logits are a hash of everything it was fed, so a wrong reuse shows.
    struct Toy {
        history: Vec<u32>,
        rewinds: bool,
        logits: [f32; 1],
        evaluated: usize,
        /// `eval` calls given one token.
        singles: usize,
    }

    impl Toy {
        fn new(rewinds: bool) -> Toy {
            Toy {
                history: Vec::new(),
                rewinds,
                logits: [0.0],
                evaluated: 0,
                singles: 0,
            }
        }
    }

    fn hash(h: &[u32]) -> f32 {
        h.iter()
            .fold(7u32, |a, &t| a.wrapping_mul(31).wrapping_add(t) % 1_000_003) as f32
    }

    impl LanguageModel for Toy {
        fn arch(&self) -> &str {
            "toy"
        }
        fn n_vocab(&self) -> usize {
            1
        }
        fn n_ctx(&self) -> usize {
            1000
        }
        fn pos(&self) -> usize {
            self.history.len()
        }
        fn reset(&mut self) {
            self.history.clear();
        }
        fn eval(&mut self, tokens: &[u32]) -> Result<&[f32]> {
            if tokens.is_empty() {
                return Err(ModelError("empty".into()));
            }
            self.history.extend_from_slice(tokens);
            self.evaluated += tokens.len();
            self.singles += usize::from(tokens.len() == 1);
            self.logits[0] = hash(&self.history);
            Ok(&self.logits)
        }
        fn eval_all(&mut self, _: &[u32], _: &mut dyn FnMut(&[f32])) -> Result<()> {
            unimplemented!()
        }
        fn state_bytes(&self) -> usize {
            0
        }
        fn save_state(&self, w: &mut dyn std::io::Write) -> Result<()> {
            for t in &self.history {
                w.write_all(&t.to_le_bytes()).unwrap();
            }
            Ok(())
        }
        fn load_state(&mut self, r: &mut dyn std::io::Read) -> Result<()> {
            let mut b = Vec::new();
            r.read_to_end(&mut b).unwrap();
            self.history = b
                .chunks(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Ok(())
        }
        fn truncate(&mut self, pos: usize) -> bool {
            if (self.rewinds || pos == self.history.len()) && pos <= self.history.len() {
                self.history.truncate(pos);
                true
            } else {
                false
            }
        }
    }

    /// Runs `prompt` through the cache, then "generates" `reply` tokens; returns the prompt
    /// tokens that had to be evaluated and checks the logits equal a fresh run's.
    fn turn(
        cache: &mut PromptCache,
        m: &mut Toy,
        prompt: &[u32],
        boundaries: &[usize],
        reply: &[u32],
    ) -> (usize, Reuse) {
        let before = m.evaluated;
        let singles = m.singles;
        let (n, how) = cache.prepare(m, prompt);
        assert!(n + 2 <= prompt.len() || n == 0);
        let l = cache.feed(m, &prompt[n..], boundaries, &|| false).unwrap()[0];
        if prompt.len() >= 2 {
            assert_eq!(m.singles, singles, "a prompt piece of one token was fed");
        }
        assert_eq!(
            l,
            hash(prompt),
            "logits after reuse differ from a fresh run"
        );
        let fed = m.evaluated - before;
        for &t in reply {
            m.eval(&[t]).unwrap();
            cache.push(t);
        }
        assert_eq!(cache.tokens(), &m.history[..]);
        (fed, how)
    }

    #[test]
    fn rewinding_model_reuses_the_longest_common_prefix() {
        let mut m = Toy::new(true);
        let mut c = PromptCache::new(0);
        let sys: Vec<u32> = (0..100).collect();
        let p1 = [&sys[..], &[500, 501]].concat();
        assert_eq!(turn(&mut c, &mut m, &p1, &[], &[9, 9]), (102, Reuse::None));
        let p2 = [&sys[..], &[600, 601, 602]].concat();
        assert_eq!(turn(&mut c, &mut m, &p2, &[], &[]), (3, Reuse::Prefix));
        // The same prompt again still evaluates its last two tokens (the last one's logits
        // are needed, and a single token would run the decode kernels).
        assert_eq!(turn(&mut c, &mut m, &p2, &[], &[]), (2, Reuse::Prefix));
        // Nothing shared.
        assert_eq!(turn(&mut c, &mut m, &[1, 2], &[], &[]), (2, Reuse::None));
    }

    #[test]
    fn recurrent_model_resumes_from_the_longest_snapshot_at_a_boundary() {
        let mut m = Toy::new(false);
        let mut c = PromptCache::new(2);
        let sys: Vec<u32> = (0..100).collect();
        let p1 = [&sys[..], &[500, 501]].concat();
        assert_eq!(
            turn(&mut c, &mut m, &p1, &[40, 100], &[9]),
            (102, Reuse::None)
        );
        // Shares the system prompt: resumes from the snapshot at 100.
        let p2 = [&sys[..], &[600, 601, 602]].concat();
        assert_eq!(turn(&mut c, &mut m, &p2, &[100], &[]), (3, Reuse::Snapshot));
        // Continues exactly what the model holds: no snapshot needed.
        let p3 = [&p2[..], &[7, 8]].concat();
        assert_eq!(turn(&mut c, &mut m, &p3, &[], &[]), (2, Reuse::Prefix));
        // Shares only the first 50: resumes from the snapshot at 40.
        let p4 = [&sys[..50], &[1]].concat();
        assert_eq!(turn(&mut c, &mut m, &p4, &[], &[]), (11, Reuse::Snapshot));
        assert_eq!(c.snapshots.len(), 2);
        // A snapshot exactly as long as the prompt cannot be used (the last token must be fed).
        let p5 = sys[..40].to_vec();
        let (_, how) = turn(&mut c, &mut m, &p5, &[], &[]);
        assert_ne!(how, Reuse::Prefix);
        c.clear(&mut m);
        assert_eq!(c.snapshot_bytes(), 0);
    }

    #[test]
    fn long_prompts_are_fed_in_chunks_and_can_be_cancelled() {
        let mut m = Toy::new(true);
        let mut c = PromptCache::new(0);
        let p: Vec<u32> = (0..1000).collect();
        let calls = std::cell::Cell::new(0);
        let r = c.feed(&mut m, &p, &[], &|| {
            calls.set(calls.get() + 1);
            calls.get() > 2
        });
        assert!(r.is_err());
        assert_eq!(c.tokens().len(), 2 * FEED_CHUNK);
        assert_eq!(m.pos(), 2 * FEED_CHUNK);
        // The next request picks up from what was fed.
        assert_eq!(
            turn(&mut c, &mut m, &p, &[], &[]),
            (1000 - 2 * FEED_CHUNK, Reuse::Prefix)
        );
    }
}

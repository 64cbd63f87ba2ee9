//! The decoder driver: everything a decoder does the same way whatever its blocks are.
//! An architecture implements [`Stack`] (its `forward_batch` and its state buffers); the
//! driver owns the position, the context limit, the batching, the output head (final norm,
//! logits projection, soft cap) and the state-file walk, and so implements
//! [`LanguageModel`] once for every architecture.
//!
//! One decode step is `LanguageModel::eval(&[token])`: [`Decoder::check_tokens`], then
//! `Stack::forward_batch` (embedding and every block), then [`OutputHead::logits`].

use super::rows::{norm_rows, softcap_all};
use super::shared::ActsCache;
use super::state::{self, Fingerprint};
use super::weights::MatRef;
use super::{LanguageModel, ModelError, Result};
use crate::gguf::GgufFile;

/// Output rows computed together when every position's logits are wanted.
const LOGIT_ROWS: usize = 16;

/// What an architecture gives the driver.
pub trait Stack: Send {
    /// The architecture name as GGUF spells it.
    fn arch(&self) -> &'static str;

    /// Runs the embedding and every block on `tokens` (at most the driver's `n_batch`) at
    /// positions `pos0..`, leaving the final hidden states `outputs` asks for in
    /// [`Stack::hidden`] (rows it does not ask for may hold anything). The state (KV cache,
    /// recurrence) is always updated for every token.
    fn forward_batch(
        &mut self,
        map: &[u8],
        pos0: usize,
        tokens: &[u32],
        outputs: Outputs,
    ) -> Result<()>;

    /// The hidden states the last `forward_batch` left, one row of `n_embd` per token.
    fn hidden(&self) -> &[f32];

    /// The run-time state, in the order the state file holds it.
    fn state_buffers(&self) -> Vec<&[u8]>;

    /// The same buffers, to restore into.
    fn state_buffers_mut(&mut self) -> Vec<&mut [u8]>;

    /// Prepares the state for a sequence starting at position 0.
    fn reset(&mut self) {}

    /// Writes every hyperparameter and setting the state depends on, by name.
    fn fingerprint(&self, fp: &mut Fingerprint);

    /// Whether the state at `pos` can go back to `to < pos` (see [`LanguageModel::truncate`]).
    fn can_rewind(&self, _pos: usize, _to: usize) -> bool {
        false
    }
}

/// Which final hidden states a batch must leave: every token's (every position's logits),
/// the last token's (the next-token logits), or none (a prompt chunk before the last). A stack
/// may skip the work whose only use is a row nobody reads: in the last block, everything after
/// the cache write for the other tokens (llama.cpp does the same), which is 1/18 of a Gemma 3
/// 270M prefill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outputs {
    All,
    Last,
    None,
}

/// The final norm and the logits projection, with the buffers they write.
pub struct OutputHead {
    norm: Vec<f32>,
    proj: MatRef,
    eps: f32,
    softcap: Option<f32>,
    n_embd: usize,
    n_vocab: usize,
    /// Normalized rows, `LOGIT_ROWS × n_embd`.
    u: Vec<f32>,
    acts: ActsCache,
    /// The last position's logits.
    logits: Vec<f32>,
    /// `LOGIT_ROWS × n_vocab`, allocated on the first `eval_all`.
    logits_all: Vec<f32>,
}

impl OutputHead {
    /// `logits = softcap(proj · rms_norm(h, norm))`; `proj` has `n_vocab` rows of `n_embd`.
    pub fn new(norm: Vec<f32>, proj: MatRef, eps: f32, softcap: Option<f32>) -> OutputHead {
        let (n_embd, n_vocab) = (proj.cols, proj.rows);
        OutputHead {
            norm,
            proj,
            eps,
            softcap,
            n_embd,
            n_vocab,
            u: vec![0.0; LOGIT_ROWS * n_embd],
            acts: ActsCache::default(),
            logits: vec![0.0; n_vocab],
            logits_all: Vec::new(),
        }
    }

    /// Logits of the hidden rows `h` (at most `LOGIT_ROWS`) into the last-position buffer
    /// (`all == false`) or the all-positions one.
    fn logits(&mut self, map: &[u8], h: &[f32], all: bool) -> Result<()> {
        let d = self.n_embd;
        let m = h.len() / d;
        norm_rows(h, &self.norm, self.eps, &mut self.u[..m * d], d);
        let out = if all {
            &mut self.logits_all
        } else {
            &mut self.logits
        };
        self.acts.input(&self.u, m).matmul(map, &self.proj, out)?;
        if let Some(c) = self.softcap {
            softcap_all(&mut out[..m * self.n_vocab], c);
        }
        Ok(())
    }
}

/// The pieces `eval` runs `n` tokens in: `n_batch` at a time, except that a last piece of one
/// token (when there are more) takes one from the piece before it. A batch of one runs the
/// streaming decode kernels, whose sums go in another order than the batched kernels' (within
/// rounding: `kernels/tests/gemm_paths.rs`), while every batch of two or more gives each token
/// the same bits whatever shares its batch. So with `n_batch >= 3` a prompt's logits do not
/// depend on how it is cut: a server that reuses a cached prefix and feeds the rest answers a
/// greedy request exactly as a fresh `run` does.
pub(crate) fn batch_pieces(
    n: usize,
    n_batch: usize,
) -> impl Iterator<Item = std::ops::Range<usize>> {
    let n_batch = n_batch.max(1);
    let steal = n > 1 && n_batch >= 3 && n % n_batch == 1;
    let cut = move |i: usize| {
        let at = i * n_batch;
        if steal && at + 1 == n {
            at - 1
        } else {
            at.min(n)
        }
    };
    (0..n.div_ceil(n_batch)).map(move |i| cut(i)..cut(i + 1))
}

/// A decoder: one architecture's [`Stack`] driven as a [`LanguageModel`].
pub struct Decoder<S> {
    pub(crate) file: GgufFile,
    pub(crate) stack: S,
    head: OutputHead,
    /// The most positions this instance holds (`usize::MAX`: unbounded).
    pub(crate) n_ctx: usize,
    n_batch: usize,
    pub(crate) pos: usize,
}

impl<S: Stack> Decoder<S> {
    /// `n_batch` is clamped to at least 1.
    pub fn new(file: GgufFile, stack: S, head: OutputHead, n_ctx: usize, n_batch: usize) -> Self {
        Decoder {
            file,
            stack,
            head,
            n_ctx,
            n_batch: n_batch.max(1),
            pos: 0,
        }
    }

    /// Every token id is in the vocabulary and the context has room for all of them.
    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        let n_vocab = self.head.n_vocab;
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(ModelError(format!(
                "token id {t} is outside the vocabulary ({n_vocab} entries)"
            )));
        }
        if self.pos.saturating_add(tokens.len()) > self.n_ctx {
            return Err(ModelError(format!(
                "context full: {} positions used + {} new tokens > context length {} (raise -c/--ctx)",
                self.pos,
                tokens.len(),
                self.n_ctx
            )));
        }
        Ok(())
    }

    fn forward_batch(&mut self, tokens: &[u32], outputs: Outputs) -> Result<()> {
        self.stack
            .forward_batch(self.file.mapped_bytes(), self.pos, tokens, outputs)?;
        self.pos += tokens.len();
        Ok(())
    }

    /// Logits of the hidden rows `rows` of the last batch.
    fn logits_rows(&mut self, rows: std::ops::Range<usize>, all: bool) -> Result<()> {
        let d = self.head.n_embd;
        let h = &self.stack.hidden()[rows.start * d..rows.end * d];
        self.head.logits(self.file.mapped_bytes(), h, all)
    }

    fn fingerprint(&self) -> u64 {
        let mut fp = Fingerprint::default();
        fp.str("arch", self.stack.arch())
            .u64("model file size", self.file.file_size())
            .usize("context length", self.n_ctx);
        for t in self.file.tensors() {
            // The GGUF type id, a file-format constant (not our enum's name).
            fp.str("tensor", t.name())
                .u64("ggml type id", t.ggml_type().id() as u64);
            for &d in t.dims() {
                fp.u64("dim", d);
            }
        }
        self.stack.fingerprint(&mut fp);
        fp.finish()
    }
}

impl<S: Stack> LanguageModel for Decoder<S> {
    fn arch(&self) -> &str {
        self.stack.arch()
    }

    fn n_vocab(&self) -> usize {
        self.head.n_vocab
    }

    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn pos(&self) -> usize {
        self.pos
    }

    fn reset(&mut self) {
        self.pos = 0;
        self.stack.reset();
    }

    fn eval(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        if tokens.is_empty() {
            return Err(ModelError("no tokens to evaluate".into()));
        }
        self.check_tokens(tokens)?;
        let mut last = 0;
        for piece in batch_pieces(tokens.len(), self.n_batch) {
            let outputs = if piece.end == tokens.len() {
                last = piece.len() - 1;
                Outputs::Last
            } else {
                Outputs::None
            };
            self.forward_batch(&tokens[piece], outputs)?;
        }
        self.logits_rows(last..last + 1, false)?;
        Ok(&self.head.logits)
    }

    fn eval_all(&mut self, tokens: &[u32], sink: &mut dyn FnMut(&[f32])) -> Result<()> {
        self.check_tokens(tokens)?;
        let nv = self.head.n_vocab;
        if self.head.logits_all.len() < LOGIT_ROWS * nv {
            self.head.logits_all = vec![0.0; LOGIT_ROWS * nv];
        }
        for piece in batch_pieces(tokens.len(), self.n_batch) {
            let chunk = &tokens[piece];
            self.forward_batch(chunk, Outputs::All)?;
            let mut r = 0;
            while r < chunk.len() {
                let m = LOGIT_ROWS.min(chunk.len() - r);
                self.logits_rows(r..r + m, true)?;
                for j in 0..m {
                    sink(&self.head.logits_all[j * nv..(j + 1) * nv]);
                }
                r += m;
            }
        }
        Ok(())
    }

    fn state_bytes(&self) -> usize {
        self.stack.state_buffers().iter().map(|b| b.len()).sum()
    }

    fn save_state(&self, w: &mut dyn std::io::Write) -> Result<()> {
        state::write(w, self.fingerprint(), self.pos, &self.stack.state_buffers())
    }

    fn load_state(&mut self, r: &mut dyn std::io::Read) -> Result<()> {
        let fp = self.fingerprint();
        let max_pos = self.n_ctx.min(state::MAX_UNBOUNDED_POS);
        let mut bufs = self.stack.state_buffers_mut();
        match state::read(r, fp, max_pos, &mut bufs) {
            Ok(pos) => {
                self.pos = pos;
                Ok(())
            }
            Err(e) => {
                // A half-read state is garbage: start clean rather than continue from it.
                self.reset();
                Err(e)
            }
        }
    }

    fn truncate(&mut self, pos: usize) -> bool {
        if pos == self.pos {
            return true;
        }
        if pos > self.pos || !self.stack.can_rewind(self.pos, pos) {
            return false;
        }
        self.pos = pos;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::batch_pieces;

    #[test]
    fn batch_pieces_cover_the_tokens_and_leave_no_single_token_piece() {
        for n_batch in 1..12 {
            for n in 1..60 {
                let pieces: Vec<_> = batch_pieces(n, n_batch).collect();
                let mut at = 0;
                for p in &pieces {
                    assert_eq!(p.start, at, "n={n} b={n_batch}: {pieces:?}");
                    assert!(
                        !p.is_empty() && p.len() <= n_batch,
                        "n={n} b={n_batch}: {pieces:?}"
                    );
                    if n > 1 && n_batch >= 3 {
                        assert!(p.len() >= 2, "n={n} b={n_batch}: {pieces:?}");
                    }
                    at = p.end;
                }
                assert_eq!(at, n);
            }
        }
    }
}

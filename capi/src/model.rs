//! The model handle and everything that runs it: loading, tokens, evaluation, generation,
//! logits, conversation state.
//!
//! A handle owns the model (weights mmap'd), its tokenizer and its own rayon pool. Calls on one
//! handle are serialized by a mutex; `eg_cancel` touches only an atomic flag, so it is safe
//! from any thread at any time. Work runs on the pool one forward pass at a time
//! (`pool.install` per eval): entering a pool from outside costs 15-27 µs (measured for the
//! CLI, src/cli/common.rs), once per token against milliseconds per token, and keeps the
//! caller's callback on the caller's own thread (what JNI and UI toolkits need).

use crate::error::{eg_status, guard, out_arg, slice_arg, str_arg, write_c_string, Error, Result};
use edgegemma::kv::CacheType;
use edgegemma::model::{LanguageModel, RunConfig};
use edgegemma::sampler::{Sampler, SamplerConfig};
use edgegemma::tokenizer::{StreamDecoder, Tokenizer};
use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// KV cache storage: 16-bit floats (the default).
pub const EG_CACHE_F16: i32 = 0;
/// KV cache storage: 8-bit blocks (half the memory of F16).
pub const EG_CACHE_Q8_0: i32 = 1;
/// KV cache storage: 32-bit floats (exact; for comparisons against references).
pub const EG_CACHE_F32: i32 = 2;

/// `token` value of the last callback of a generation, which carries only the decoder's
/// held-back bytes (an incomplete UTF-8 sequence, as U+FFFD) and no token.
pub const EG_TOKEN_NONE: u32 = u32::MAX;

/// How to load a model. Get the defaults from `eg_model_default_params()` and change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct eg_model_params {
    /// Worker threads for the matrix products; 0 = one per core. Default 0.
    pub n_threads: u32,
    /// Context length in tokens, at most the model's trained length (a larger value is
    /// clamped to it; `eg_model_get_info` reports the context used); 0 = the trained length.
    /// Default 4096.
    pub n_ctx: u32,
    /// Tokens per forward batch while feeding a prompt. Default 256.
    pub n_batch: u32,
    /// `EG_CACHE_F16` (default), `EG_CACHE_Q8_0` or `EG_CACHE_F32`.
    pub cache_type: i32,
}

/// Sampling settings (llama.cpp's defaults, as `edgegemma run` uses them). Get the defaults
/// from `eg_sampling_default_params()`; `temp = 0` is greedy.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct eg_sampling_params {
    /// Temperature; <= 0 picks the most likely token. Default 0.8.
    pub temp: f32,
    /// Keep the k most likely tokens; 0 = off. Default 40.
    pub top_k: u32,
    /// Nucleus sampling mass in [0, 1]; 1 = off. Default 0.95.
    pub top_p: f32,
    /// Drop tokens below min_p x the best one's probability, in [0, 1]; 0 = off. Default 0.05.
    pub min_p: f32,
    /// Repetition penalty (> 0); 1 = off. Default 1.0.
    pub repeat_penalty: f32,
    /// Tokens the penalty looks back over (this call's prompt and output). Default 64.
    pub repeat_last_n: u32,
    /// Random seed: the same seed gives the same text. Default 0x5eed.
    pub seed: u64,
}

/// Why a generation stopped.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum eg_stop_reason {
    /// The model produced an end-of-generation token (not delivered, not in the context).
    EG_STOP_END_OF_GENERATION = 0,
    /// `n_predict` tokens were delivered.
    EG_STOP_BUDGET = 1,
    /// The context is full; the last token delivered could not be added to it.
    EG_STOP_CONTEXT_FULL = 2,
    /// `eg_cancel` was called; the token sampled when it was seen was not delivered.
    EG_STOP_CANCELLED = 3,
    /// The callback returned false.
    EG_STOP_CALLBACK = 4,
}

/// What a generation did.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct eg_generate_result {
    /// Tokens fed before the first sampled one (the prompt, plus a token carried over from
    /// the previous generation).
    pub n_prompt_tokens: u64,
    /// Tokens delivered to the callback.
    pub n_generated: u64,
    pub stop: eg_stop_reason,
    /// Milliseconds spent feeding the prompt (up to the first sampled token).
    pub prompt_ms: f64,
    /// Milliseconds spent generating after that.
    pub gen_ms: f64,
}

/// Called once per generated token, on the thread that called `eg_generate*`. `piece` is the
/// text that became complete with this token (NUL-terminated, `piece_len` bytes without the
/// NUL, possibly empty while a UTF-8 character is split over several tokens), valid only
/// during the call. Return true to continue, false to stop (`EG_STOP_CALLBACK`). The callback
/// may call `eg_cancel`; any other call on the same model from inside it returns
/// `EG_ERR_STATE`.
pub type eg_token_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        token: u32,
        piece: *const c_char,
        piece_len: usize,
    ) -> bool,
>;

/// An opaque loaded model: weights, tokenizer, thread pool and one conversation.
pub struct eg_model {
    cancel: AtomicBool,
    /// Thread-marker of the thread inside a call on this model (0 = none), to refuse calls
    /// from inside its own callback instead of deadlocking on the mutex.
    busy_thread: AtomicUsize,
    arch: CString,
    inner: Mutex<Inner>,
}

// The header promises that one handle may be used from any thread.
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<eg_model>();
};

pub(crate) struct Inner {
    model: Box<dyn LanguageModel>,
    tok: Tokenizer,
    pool: rayon::ThreadPool,
    /// Next-token logits after the last position fed, valid when `has_logits`.
    logits: Vec<f32>,
    has_logits: bool,
    /// A token delivered by the last generation but not yet fed (stopped by the budget or
    /// the callback): it is fed first by the next call that feeds or needs the context.
    pending: Option<u32>,
    /// Reused per token: the piece with its NUL for the callback.
    piece: Vec<u8>,
    /// The GGUF's chat template (or the built-in Gemma format); a template that does not
    /// compile fails only `eg_chat_apply_template`, not the load.
    pub(crate) chat_template: std::result::Result<edgegemma::chat_template::ChatTemplate, String>,
}

fn thread_marker() -> usize {
    thread_local!(static MARK: u8 = const { 0 });
    MARK.with(|m| m as *const u8 as usize)
}

/// Clears `busy_thread` when the call ends, also when it unwinds.
struct BusyGuard<'a>(&'a AtomicUsize);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// Locks a model for one call.
///
/// # Safety
/// `m` must be NULL or a handle from `eg_model_load` that was not freed.
unsafe fn lock<'a>(m: *const eg_model) -> Result<(&'a eg_model, MutexGuard<'a, Inner>)> {
    let m = m.as_ref().ok_or_else(|| Error::null("model"))?;
    if m.busy_thread.load(Ordering::Acquire) == thread_marker() {
        return Err(Error::new(
            eg_status::EG_ERR_STATE,
            "called from inside this model's token callback (only eg_cancel is allowed there)",
        ));
    }
    let inner = m.inner.lock().map_err(|_| poisoned())?;
    Ok((m, inner))
}

fn poisoned() -> Error {
    Error::new(
        eg_status::EG_ERR_INTERNAL,
        "an earlier call on this model failed internally; free it and load it again",
    )
}

/// Runs `body` on a locked model, marking this thread as inside the call.
///
/// # Safety
/// As for [`lock`].
pub(crate) unsafe fn with_model(
    m: *const eg_model,
    body: impl FnOnce(&eg_model, &mut Inner) -> Result<()>,
) -> eg_status {
    guard(|| {
        let (m, mut inner) = lock(m)?;
        m.busy_thread.store(thread_marker(), Ordering::Release);
        let _busy = BusyGuard(&m.busy_thread);
        body(m, &mut inner)
    })
}

/// The default load settings: all cores, 4096 positions, batch 256, F16 KV cache.
#[no_mangle]
pub extern "C" fn eg_model_default_params() -> eg_model_params {
    let d = RunConfig::default();
    eg_model_params {
        n_threads: 0,
        n_ctx: d.n_ctx as u32,
        n_batch: d.n_batch as u32,
        cache_type: EG_CACHE_F16,
    }
}

/// The default sampling settings (llama.cpp's; `edgegemma run`'s).
#[no_mangle]
pub extern "C" fn eg_sampling_default_params() -> eg_sampling_params {
    let d = SamplerConfig::default();
    eg_sampling_params {
        temp: d.temp,
        top_k: d.top_k as u32,
        top_p: d.top_p,
        min_p: d.min_p,
        repeat_penalty: d.repeat_penalty,
        repeat_last_n: d.repeat_last_n as u32,
        seed: d.seed,
    }
}

fn cache_type(v: i32) -> Result<CacheType> {
    match v {
        EG_CACHE_F16 => Ok(CacheType::F16),
        EG_CACHE_Q8_0 => Ok(CacheType::Q8_0),
        EG_CACHE_F32 => Ok(CacheType::F32),
        other => Err(Error::invalid(format!(
            "cache_type {other} is not EG_CACHE_F16, EG_CACHE_Q8_0 or EG_CACHE_F32"
        ))),
    }
}

fn sampler_config(p: &eg_sampling_params) -> Result<SamplerConfig> {
    if !(p.temp.is_finite()
        && p.top_p.is_finite()
        && p.min_p.is_finite()
        && p.repeat_penalty.is_finite())
    {
        return Err(Error::invalid("sampling parameters must be finite numbers"));
    }
    if !(0.0..=1.0).contains(&p.top_p) || !(0.0..=1.0).contains(&p.min_p) {
        return Err(Error::invalid("top_p and min_p must be between 0 and 1"));
    }
    if p.repeat_penalty <= 0.0 {
        return Err(Error::invalid("repeat_penalty must be > 0"));
    }
    Ok(SamplerConfig {
        temp: p.temp,
        top_k: p.top_k as usize,
        top_p: p.top_p,
        min_p: p.min_p,
        repeat_penalty: p.repeat_penalty,
        repeat_last_n: p.repeat_last_n as usize,
        seed: p.seed,
    })
}

/// Loads a GGUF model. On success stores a new handle in `*out` (free it with
/// `eg_model_free`); on failure stores NULL and returns an error (`eg_last_error` names the
/// file and the problem). `params` may be NULL for the defaults. The kernel path is chosen
/// here; an `EDGEGEMMA_KERNELS` setting this CPU cannot run is refused.
///
/// # Safety
/// `path` must be a NUL-terminated string, `params` NULL or valid, `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn eg_model_load(
    path: *const c_char,
    params: *const eg_model_params,
    out: *mut *mut eg_model,
) -> eg_status {
    guard(|| {
        let out = out_arg(out, "out")?;
        *out = std::ptr::null_mut();
        let path = str_arg(path, "path")?;
        let params = params
            .as_ref()
            .copied()
            .unwrap_or_else(|| eg_model_default_params());
        edgegemma_kernels::dispatch::select().map_err(|e| Error::invalid(e.to_string()))?;
        let run = RunConfig {
            n_ctx: params.n_ctx as usize,
            n_batch: (params.n_batch as usize).max(1),
            cache_type: cache_type(params.cache_type)?,
        };
        let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("edgegemma-{i}"));
        if params.n_threads > 0 {
            builder = builder.num_threads(params.n_threads as usize);
        }
        let pool = builder
            .build()
            .map_err(|e| Error::model(format!("cannot start the thread pool: {e}")))?;
        // Loading touches and checks the weights: on the model's own pool, like the CLI.
        let (model, file) = pool
            .install(|| edgegemma::model::load(std::path::Path::new(path), &run))
            .map_err(Error::model)?;
        let tok = Tokenizer::from_gguf_file(&file).map_err(Error::model)?;
        let chat_template = edgegemma::chat_template::ChatTemplate::from_gguf(&file, &tok)
            .map_err(|e| e.to_string());
        let arch = CString::new(model.arch()).map_err(|_| Error::model("bad architecture name"))?;
        let n_vocab = model.n_vocab();
        let handle = Box::new(eg_model {
            cancel: AtomicBool::new(false),
            busy_thread: AtomicUsize::new(0),
            arch,
            inner: Mutex::new(Inner {
                model,
                tok,
                pool,
                logits: vec![0.0; n_vocab],
                has_logits: false,
                pending: None,
                piece: Vec::with_capacity(64),
                chat_template,
            }),
        });
        *out = Box::into_raw(handle);
        Ok(())
    })
}

/// Frees a model and everything it owns (NULL is ignored). No other call on it may be running
/// or follow.
///
/// # Safety
/// `model` must be NULL or a handle from `eg_model_load` not freed before.
#[no_mangle]
pub unsafe extern "C" fn eg_model_free(model: *mut eg_model) {
    if !model.is_null() {
        // Dropping joins nothing that can panic into C: rayon's pool shuts down its workers.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(Box::from_raw(model));
        }));
    }
}

/// Facts about a loaded model.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct eg_model_info {
    /// Architecture as GGUF names it ("gemma", "gemma2", "gemma3", "recurrentgemma"); valid
    /// while the model lives.
    pub arch: *const c_char,
    /// Length of a logits row.
    pub n_vocab: u64,
    /// Tokens the tokenizer knows (ids below this).
    pub n_tokens_vocab: u64,
    /// Positions the context holds (UINT64_MAX when unbounded).
    pub n_ctx: u64,
    /// Positions used so far by the conversation.
    pub n_past: u64,
    /// Worker threads of the model's pool.
    pub n_threads: u32,
    /// Beginning-of-sequence token, or `EG_TOKEN_NONE`.
    pub bos_token: u32,
    /// End-of-turn token (`<end_of_turn>`), or `EG_TOKEN_NONE`.
    pub eot_token: u32,
}

/// Fills `*info` with the model's facts.
///
/// # Safety
/// `model` must be a live handle, `info` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn eg_model_get_info(
    model: *const eg_model,
    info: *mut eg_model_info,
) -> eg_status {
    with_model(model, |m, inner| {
        let info = out_arg(info, "info")?;
        *info = eg_model_info {
            arch: m.arch.as_ptr(),
            n_vocab: inner.model.n_vocab() as u64,
            n_tokens_vocab: inner.tok.len() as u64,
            n_ctx: inner.model.n_ctx().try_into().unwrap_or(u64::MAX),
            n_past: (inner.model.pos() + inner.pending.is_some() as usize) as u64,
            n_threads: inner.pool.current_num_threads() as u32,
            bos_token: inner.tok.bos_id().unwrap_or(EG_TOKEN_NONE),
            eot_token: inner.tok.end_of_turn_id().unwrap_or(EG_TOKEN_NONE),
        };
        Ok(())
    })
}

/// Tokenizes UTF-8 `text` into `tokens` (room for `capacity` ids; NULL allowed when
/// `capacity` is 0). `add_bos`: start with BOS (when the model adds one); `parse_special`:
/// control tokens written in the text (`<start_of_turn>`, ...) become their ids. The number of
/// ids is stored in `*n_tokens`; `EG_ERR_BUFFER_TOO_SMALL` when more than `capacity` (call
/// again with a bigger buffer).
///
/// # Safety
/// Pointers as described; `tokens` valid for `capacity` writes.
#[no_mangle]
pub unsafe extern "C" fn eg_tokenize(
    model: *const eg_model,
    text: *const c_char,
    add_bos: bool,
    parse_special: bool,
    tokens: *mut u32,
    capacity: usize,
    n_tokens: *mut usize,
) -> eg_status {
    with_model(model, |_, inner| {
        let n_tokens = out_arg(n_tokens, "n_tokens")?;
        let text = str_arg(text, "text")?;
        let ids = inner.tok.encode(text, add_bos, parse_special);
        *n_tokens = ids.len();
        if ids.len() > capacity {
            return Err(Error::new(
                eg_status::EG_ERR_BUFFER_TOO_SMALL,
                format!("{} tokens, the buffer holds {capacity}", ids.len()),
            ));
        }
        if !ids.is_empty() {
            if tokens.is_null() {
                return Err(Error::null("tokens"));
            }
            std::slice::from_raw_parts_mut(tokens, ids.len()).copy_from_slice(&ids);
        }
        Ok(())
    })
}

/// Decodes `n_tokens` ids to UTF-8 text in `buf` (`capacity` bytes, NUL-terminated; invalid
/// UTF-8 becomes U+FFFD). `render_special`: control tokens print their text. The length
/// without the NUL is stored in `*len`; `EG_ERR_BUFFER_TOO_SMALL` when it does not fit.
///
/// # Safety
/// Pointers as described; `tokens` valid for `n_tokens` reads, `buf` for `capacity` writes.
#[no_mangle]
pub unsafe extern "C" fn eg_detokenize(
    model: *const eg_model,
    tokens: *const u32,
    n_tokens: usize,
    render_special: bool,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> eg_status {
    with_model(model, |_, inner| {
        let len = out_arg(len, "len")?;
        let ids = slice_arg(tokens, n_tokens, "tokens")?;
        let text = inner
            .tok
            .decode(ids, render_special)
            .map_err(|e| Error::invalid(e.to_string()))?;
        write_c_string(text.as_bytes(), buf, capacity, len)
    })
}

impl Inner {
    /// Feeds `tokens` (after a pending token) and keeps the next-token logits.
    fn feed(&mut self, tokens: &[u32]) -> Result<()> {
        let mut ids = Vec::with_capacity(tokens.len() + 1);
        ids.extend(self.pending);
        ids.extend_from_slice(tokens);
        if ids.is_empty() {
            return Ok(());
        }
        self.check_fits(ids.len())?;
        self.check_ids(&ids)?;
        self.pending = None;
        self.has_logits = false;
        let Inner {
            model,
            pool,
            logits,
            ..
        } = self;
        let got = pool.install(|| model.eval(&ids)).map_err(Error::model)?;
        logits.copy_from_slice(got);
        self.has_logits = true;
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<()> {
        if self.pending.is_some() {
            self.feed(&[])?;
        }
        Ok(())
    }

    fn check_fits(&self, n: usize) -> Result<()> {
        let (pos, n_ctx) = (self.model.pos(), self.model.n_ctx());
        if pos.saturating_add(n) > n_ctx {
            return Err(Error::new(
                eg_status::EG_ERR_CONTEXT_FULL,
                format!("{n} tokens do not fit: {pos} of {n_ctx} positions are used"),
            ));
        }
        Ok(())
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        let n = self.model.n_vocab();
        match ids.iter().find(|&&t| t as usize >= n) {
            Some(t) => Err(Error::invalid(format!(
                "token id {t} is outside the model's {n} embedding rows"
            ))),
            None => Ok(()),
        }
    }

    fn reset(&mut self) {
        self.model.reset();
        self.pending = None;
        self.has_logits = false;
    }
}

/// Feeds `n_tokens` ids at the end of the conversation (no BOS is added) and keeps the logits
/// of the token after the last one for `eg_get_logits`.
///
/// # Safety
/// `model` a live handle, `tokens` valid for `n_tokens` reads.
#[no_mangle]
pub unsafe extern "C" fn eg_eval(
    model: *const eg_model,
    tokens: *const u32,
    n_tokens: usize,
) -> eg_status {
    with_model(model, |_, inner| {
        let ids = slice_arg(tokens, n_tokens, "tokens")?;
        if ids.is_empty() {
            return Err(Error::invalid("no tokens to feed"));
        }
        inner.feed(ids)
    })
}

/// Points `*logits` at the next-token logits (`*n_vocab` floats, one per embedding row) after
/// everything fed and generated so far. The array belongs to the model and stays valid until
/// the next call on it that feeds, generates, resets or restores. `EG_ERR_STATE` when nothing
/// was fed since loading, a reset or a restore.
///
/// # Safety
/// `model` a live handle, `logits` and `n_vocab` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn eg_get_logits(
    model: *const eg_model,
    logits: *mut *const f32,
    n_vocab: *mut usize,
) -> eg_status {
    with_model(model, |_, inner| {
        let logits = out_arg(logits, "logits")?;
        let n_vocab = out_arg(n_vocab, "n_vocab")?;
        *logits = std::ptr::null();
        *n_vocab = 0;
        inner.flush_pending()?;
        if !inner.has_logits {
            return Err(Error::new(
                eg_status::EG_ERR_STATE,
                "no logits: nothing was fed since the model was loaded, reset or restored",
            ));
        }
        *logits = inner.logits.as_ptr();
        *n_vocab = inner.logits.len();
        Ok(())
    })
}

/// Forgets the conversation (the next prompt starts at position 0 with BOS).
///
/// # Safety
/// `model` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn eg_reset(model: *const eg_model) -> eg_status {
    with_model(model, |_, inner| {
        inner.reset();
        Ok(())
    })
}

/// Asks the generation running on `model` to stop before its next token (`EG_STOP_CANCELLED`).
/// Safe from any thread at any time, and from inside the token callback; never blocks. A
/// cancel that arrives while no generation runs is forgotten when the next one starts.
/// Feeding the prompt itself is not interrupted.
///
/// # Safety
/// `model` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn eg_cancel(model: *const eg_model) -> eg_status {
    match model.as_ref() {
        None => {
            crate::error::set_last_error("argument `model` is NULL");
            eg_status::EG_ERR_NULL_ARGUMENT
        }
        Some(m) => {
            m.cancel.store(true, Ordering::Release);
            eg_status::EG_OK
        }
    }
}

/// Encodes a text prompt the way `edgegemma run` does: BOS at the start of a conversation,
/// control tokens in the text parsed.
/// A prompt that already starts with `<bos>` (a rendered chat template) gets no second one.
fn encode_prompt(inner: &Inner, prompt: &str) -> Vec<u32> {
    let at_start = inner.model.pos() == 0 && inner.pending.is_none();
    let mut ids = inner.tok.encode(prompt, at_start, true);
    if at_start && ids.len() >= 2 && ids[0] == ids[1] && Some(ids[0]) == inner.tok.bos_id() {
        ids.remove(0);
    }
    ids
}

/// Generates from a text prompt appended to the conversation: tokenized with BOS when the
/// conversation is empty (none added when the text starts with `<bos>`) and control tokens
/// parsed, as `edgegemma run` does; then as `eg_generate_tokens`.
///
/// # Safety
/// As `eg_generate_tokens`, with `prompt` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eg_generate(
    model: *const eg_model,
    prompt: *const c_char,
    sampling: *const eg_sampling_params,
    n_predict: i32,
    callback: eg_token_callback,
    user_data: *mut c_void,
    result: *mut eg_generate_result,
) -> eg_status {
    with_model(model, |m, inner| {
        let prompt = str_arg(prompt, "prompt")?;
        let ids = encode_prompt(inner, prompt);
        run_generation(
            m, inner, &ids, sampling, n_predict, callback, user_data, result,
        )
    })
}

/// Feeds `n_prompt` ids at the end of the conversation, then samples tokens one by one,
/// handing each to `callback` (may be NULL), until an end-of-generation token, `n_predict`
/// tokens (< 0: no limit; 0: only feed the prompt), a full context, `eg_cancel` or the
/// callback returning false. `sampling` may be NULL for the defaults; `result` may be NULL.
/// The prompt may be empty when the conversation already has logits (continue generating).
///
/// After it returns the context holds the prompt and every delivered token (an end token is
/// not delivered and not added; a chat's next turn starts with `<end_of_turn>\n`). A token
/// delivered at a budget or callback stop is added lazily, by the next call that needs it.
/// Whatever the decoder held back at the end comes in one last callback with
/// `token == EG_TOKEN_NONE` (not after a callback stop).
///
/// # Safety
/// `model` a live handle; `prompt` valid for `n_prompt` reads; `sampling`/`result` NULL or
/// valid; `callback` NULL or a function that follows `eg_token_callback`'s contract.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn eg_generate_tokens(
    model: *const eg_model,
    prompt: *const u32,
    n_prompt: usize,
    sampling: *const eg_sampling_params,
    n_predict: i32,
    callback: eg_token_callback,
    user_data: *mut c_void,
    result: *mut eg_generate_result,
) -> eg_status {
    with_model(model, |m, inner| {
        let ids = slice_arg(prompt, n_prompt, "prompt")?;
        run_generation(
            m, inner, ids, sampling, n_predict, callback, user_data, result,
        )
    })
}

/// The generation loop, in `edgegemma::generate::generate`'s order (prompt in one batched
/// call, then end-token check, accept, deliver, budget, context), plus the cancel flag and the
/// callback's stop, and keeping the last logits where a stop leaves them current.
#[allow(clippy::too_many_arguments)]
unsafe fn run_generation(
    m: &eg_model,
    inner: &mut Inner,
    prompt: &[u32],
    sampling: *const eg_sampling_params,
    n_predict: i32,
    callback: eg_token_callback,
    user_data: *mut c_void,
    result: *mut eg_generate_result,
) -> Result<()> {
    let cfg = match sampling.as_ref() {
        Some(p) => sampler_config(p)?,
        None => SamplerConfig::default(),
    };
    m.cancel.store(false, Ordering::Release);
    let mut ids: Vec<u32> = inner
        .pending
        .iter()
        .copied()
        .chain(prompt.iter().copied())
        .collect();
    if ids.is_empty() && !inner.has_logits {
        return Err(Error::invalid(
            "the prompt is empty and the conversation has no logits to continue from",
        ));
    }
    inner.check_fits(ids.len())?;
    inner.check_ids(&ids)?;
    inner.pending = None;
    let budget = usize::try_from(n_predict).ok();
    let mut res = eg_generate_result {
        n_prompt_tokens: ids.len() as u64,
        n_generated: 0,
        stop: eg_stop_reason::EG_STOP_BUDGET,
        prompt_ms: 0.0,
        gen_ms: 0.0,
    };
    let Inner {
        model,
        tok,
        pool,
        logits: kept,
        has_logits,
        pending,
        piece,
        ..
    } = inner;
    let n_valid = tok.len().min(model.n_vocab());
    let n_ctx = model.n_ctx();
    let mut sampler = Sampler::new(cfg);
    let mut dec = StreamDecoder::new(false);
    let t0 = Instant::now();
    let mut t_gen = t0;
    let mut first = true;
    let stop = loop {
        let pos_after = model.pos() + ids.len();
        let cancelled = m.cancel.load(Ordering::Acquire);
        let next;
        if ids.is_empty() {
            // Continue from the logits the conversation already has.
            next = sampler.sample(kept, n_valid);
        } else {
            *has_logits = false;
            let got = pool.install(|| model.eval(&ids)).map_err(Error::model)?;
            next = sampler.sample(got, n_valid);
            // Keep the logits only where this generation stops with them current: the
            // sampled token is then not fed. One copy per generation, none per token.
            let stops_here =
                tok.is_eog(next) || cancelled || budget == Some(0) || pos_after >= n_ctx;
            if stops_here {
                kept.copy_from_slice(got);
                *has_logits = true;
            }
        }
        if first {
            first = false;
            ids.iter().for_each(|&t| sampler.accept(t));
            res.prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
            t_gen = Instant::now();
            if budget == Some(0) {
                break eg_stop_reason::EG_STOP_BUDGET;
            }
        }
        if tok.is_eog(next) {
            break eg_stop_reason::EG_STOP_END_OF_GENERATION;
        }
        if cancelled {
            break eg_stop_reason::EG_STOP_CANCELLED;
        }
        sampler.accept(next);
        res.n_generated += 1;
        let text = dec.push(tok, next).map_err(Error::model)?;
        if !deliver(callback, user_data, piece, next, text.as_bytes()) {
            *pending = Some(next);
            break eg_stop_reason::EG_STOP_CALLBACK;
        }
        if budget.is_some_and(|n| res.n_generated as usize >= n) {
            *pending = Some(next);
            break eg_stop_reason::EG_STOP_BUDGET;
        }
        if pos_after >= n_ctx {
            break eg_stop_reason::EG_STOP_CONTEXT_FULL;
        }
        ids.clear();
        ids.push(next);
    };
    if stop != eg_stop_reason::EG_STOP_CALLBACK {
        let tail = dec.finish();
        if !tail.is_empty() {
            deliver(callback, user_data, piece, EG_TOKEN_NONE, tail.as_bytes());
        }
    }
    res.gen_ms = t_gen.elapsed().as_secs_f64() * 1e3;
    res.stop = stop;
    m.cancel.store(false, Ordering::Release);
    if let Some(r) = result.as_mut() {
        *r = res;
    }
    Ok(())
}

/// Calls the callback with `text` NUL-terminated in the reused `piece` buffer.
unsafe fn deliver(
    callback: eg_token_callback,
    user_data: *mut c_void,
    piece: &mut Vec<u8>,
    token: u32,
    text: &[u8],
) -> bool {
    let Some(cb) = callback else { return true };
    piece.clear();
    piece.extend_from_slice(text);
    piece.push(0);
    cb(user_data, token, piece.as_ptr().cast(), text.len())
}

/// Counts bytes written, for the size of a state.
struct CountingWriter(usize);

impl std::io::Write for CountingWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn state_size(inner: &Inner) -> Result<usize> {
    let mut c = CountingWriter(0);
    inner.model.save_state(&mut c).map_err(Error::model)?;
    Ok(c.0)
}

/// Saves the conversation (position and every cache/recurrent-state buffer, as
/// `edgegemma run --save-state` writes it) into `buf` (`capacity` bytes). The size is stored
/// in `*size`; with `capacity` too small (e.g. 0 and `buf` NULL, to ask) nothing is written
/// and `EG_ERR_BUFFER_TOO_SMALL` is returned. A token left pending by the last generation is
/// fed first, so the state holds everything delivered.
///
/// # Safety
/// `model` a live handle; `buf` NULL with `capacity == 0` or valid for `capacity` writes;
/// `size` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn eg_state_save(
    model: *const eg_model,
    buf: *mut u8,
    capacity: usize,
    size: *mut usize,
) -> eg_status {
    with_model(model, |_, inner| {
        let size = out_arg(size, "size")?;
        inner.flush_pending()?;
        let need = state_size(inner)?;
        *size = need;
        if capacity < need {
            return Err(Error::new(
                eg_status::EG_ERR_BUFFER_TOO_SMALL,
                format!("the state is {need} bytes, the buffer has {capacity}"),
            ));
        }
        if buf.is_null() {
            return Err(Error::null("buf"));
        }
        let mut out = std::slice::from_raw_parts_mut(buf, need);
        inner.model.save_state(&mut out).map_err(Error::model)
    })
}

/// Restores a conversation saved by `eg_state_save` (or `edgegemma --save-state`) for the same
/// model file, context length and cache type; the next-token logits after the next token fed
/// are bit-identical to the original conversation's. `EG_ERR_BAD_STATE` (and an empty
/// conversation) when it does not match or is damaged. Logits are available again after the
/// next feed.
///
/// # Safety
/// `model` a live handle; `buf` valid for `size` reads.
#[no_mangle]
pub unsafe extern "C" fn eg_state_load(
    model: *const eg_model,
    buf: *const u8,
    size: usize,
) -> eg_status {
    with_model(model, |_, inner| {
        let mut data = slice_arg(buf, size, "buf")?;
        restore(inner, &mut data)
    })
}

fn restore(inner: &mut Inner, r: &mut dyn std::io::Read) -> Result<()> {
    inner.pending = None;
    inner.has_logits = false;
    inner.model.load_state(r).map_err(|e| {
        inner.model.reset();
        Error::new(eg_status::EG_ERR_BAD_STATE, e.to_string())
    })
}

/// `eg_state_save` to a file, written under a temporary name and renamed when complete (a
/// failed save never leaves a partial file).
///
/// # Safety
/// `model` a live handle; `path` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eg_state_save_file(
    model: *const eg_model,
    path: *const c_char,
) -> eg_status {
    with_model(model, |_, inner| {
        let path = std::path::Path::new(str_arg(path, "path")?);
        inner.flush_pending()?;
        let io = |what: &str, e: std::io::Error| {
            Error::new(
                eg_status::EG_ERR_IO,
                format!("{}: {what}: {e}", path.display()),
            )
        };
        let tmp = path.with_extension("state-tmp");
        let res = (|| {
            use std::io::Write;
            let f = std::fs::File::create(&tmp).map_err(|e| io("cannot create", e))?;
            let mut w = std::io::BufWriter::new(f);
            inner.model.save_state(&mut w).map_err(|e| {
                Error::new(eg_status::EG_ERR_IO, format!("{}: {e}", path.display()))
            })?;
            w.flush().map_err(|e| io("cannot write", e))?;
            let f = w
                .into_inner()
                .map_err(|e| io("cannot write", e.into_error()))?;
            f.sync_all().map_err(|e| io("cannot write", e))?;
            std::fs::rename(&tmp, path).map_err(|e| io("cannot rename into place", e))
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    })
}

/// `eg_state_load` from a file.
///
/// # Safety
/// `model` a live handle; `path` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn eg_state_load_file(
    model: *const eg_model,
    path: *const c_char,
) -> eg_status {
    with_model(model, |_, inner| {
        let path = std::path::Path::new(str_arg(path, "path")?);
        let f = std::fs::File::open(path).map_err(|e| {
            Error::new(
                eg_status::EG_ERR_IO,
                format!("{}: cannot open: {e}", path.display()),
            )
        })?;
        let mut r = std::io::BufReader::new(f);
        restore(inner, &mut r)
            .map_err(|e| Error::new(e.status, format!("{}: {}", path.display(), e.message)))
    })
}

//! Hyperparameters checked before a model is built: every `{arch}.*` key the models read and
//! the tokenizer's special token ids, against the tensors the file actually holds (names and
//! shapes) and against sane bounds. The loaders size allocations and loops by these values
//! (per-layer vectors, KV rings, scratch buffers), so a lying value has to stop here, before
//! any of that runs: a GGUF whose `gemma3.block_count` was patched to 2^31 used to abort in
//! `Vec::with_capacity` (issue #13).
//!
//! [`problems`] lists every contradiction found (what `edgegemma inspect` shows); [`check`]
//! fails on the first one, as one line naming the file, the key, its value and what it
//! contradicts. Only the first layer of each kind is compared here (that is where a
//! hyperparameter shows); the loaders then check the shape of every tensor they map.

use super::shared::{MAX_GROUP_FLOATS, MAX_HEAD_DIM};
use super::{ModelError, Result};
use crate::gguf::names::{key, tensor, tokenizer, BlockTensor, BLOCK_PREFIX, KEY_ARCHITECTURE};
use crate::gguf::{GgufFile, Value};
use std::collections::BTreeSet;

/// Largest trained context accepted: 2^24 positions. Gemma 3 is trained at 128 Ki (2^17)
/// and the longest-context open models at about 10 Mi; a larger value is a lie, and a
/// global-attention KV ring sized by it would be tens of GiB.
pub const MAX_CONTEXT: u64 = 1 << 24;
/// Smallest trained context accepted: a BOS and one token.
pub const MIN_CONTEXT: u64 = 2;
/// Widest causal convolution accepted (RecurrentGemma's is 4); a recurrent layer keeps
/// `width − 1` past inputs.
pub const MAX_CONV_WIDTH: u64 = 16;

/// Every contradiction between the file's hyperparameters and its tensors or sane bounds, one
/// line each (without the file name), in the order the loader would meet them. Empty for a
/// consistent file and for architectures edgegemma does not run.
pub fn problems(file: &GgufFile) -> Vec<String> {
    let arch = match file.get(KEY_ARCHITECTURE) {
        Some(Value::String(a)) => a,
        _ => return Vec::new(),
    };
    let mut c = Checker {
        file,
        arch,
        out: Vec::new(),
    };
    match arch {
        "gemma" => c.gemma(Family::Gemma1),
        "gemma2" => c.gemma(Family::Gemma2),
        "gemma3" => c.gemma(Family::Gemma3),
        "recurrentgemma" => c.recurrent_gemma(),
        _ => {}
    }
    c.out
}

/// Fails with the first of [`problems`], as `<file>: <problem>`.
pub fn check(file: &GgufFile) -> Result<()> {
    match problems(file).into_iter().next() {
        None => Ok(()),
        Some(p) => Err(ModelError(format!("{}: {p}", file.path().display()))),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Gemma1,
    Gemma2,
    Gemma3,
}

/// What the keys and tensors shared by every architecture said.
struct Common {
    n_embd: Option<u64>,
    n_layer: Option<u64>,
    /// `{arch}.context_length`, when present and valid.
    n_ctx_train: Option<u64>,
}

struct Checker<'f> {
    file: &'f GgufFile,
    arch: &'f str,
    out: Vec<String>,
}

impl<'f> Checker<'f> {
    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.arch)
    }

    fn problem(&mut self, msg: String) {
        self.out.push(msg);
    }

    fn dims(&self, tensor: &str) -> Option<&'f [u64]> {
        self.file.tensor(tensor).map(|t| t.dims())
    }

    /// Integer key: `Ok(None)` when absent, `Err(())` when present but not an integer
    /// (reported), so dependent checks are skipped rather than run on a default.
    fn int_key(&mut self, key: &str) -> std::result::Result<Option<i128>, ()> {
        let Some(v) = self.file.get(key) else {
            return Ok(None);
        };
        match v.as_i128() {
            Some(x) => Ok(Some(x)),
            None => {
                self.problem(format!(
                    "{key} has type {}, expected an integer",
                    v.type_description()
                ));
                Err(())
            }
        }
    }

    /// `{arch}.{name}` as an integer in `lo..=hi`: `None` when absent (`default` then, if
    /// any), invalid (reported) or out of range (reported with `why`).
    fn int(
        &mut self,
        name: &str,
        default: Option<u64>,
        lo: u64,
        hi: u64,
        why: &str,
    ) -> Option<u64> {
        let key = self.key(name);
        match self.int_key(&key) {
            Err(()) => None,
            Ok(None) => default,
            Ok(Some(x)) if x < i128::from(lo) || x > i128::from(hi) => {
                self.problem(format!("{key} = {x}: {why}"));
                None
            }
            Ok(Some(x)) => Some(x as u64),
        }
    }

    /// A required integer (missing is reported).
    fn req_int(&mut self, name: &str, lo: u64, hi: u64, why: &str) -> Option<u64> {
        let key = self.key(name);
        if self.file.get(&key).is_none() {
            self.problem(format!("{key} is missing"));
            return None;
        }
        self.int(name, None, lo, hi, why)
    }

    /// `{arch}.{name}` as a finite float, `> 0` (or `>= 0` when `zero_ok`, for softcaps where
    /// 0 means off). `None` when absent or reported.
    fn float(&mut self, name: &str, zero_ok: bool) -> Option<f64> {
        let key = self.key(name);
        let x = match self.file.get(&key)? {
            Value::F32(x) => f64::from(x),
            Value::F64(x) => x,
            other => {
                self.problem(format!(
                    "{key} has type {}, expected f32",
                    other.type_description()
                ));
                return None;
            }
        };
        let ok = x.is_finite() && (x > 0.0 || (zero_ok && x == 0.0));
        if !ok {
            let want = if zero_ok {
                "must be a finite number >= 0 (0 = off)"
            } else {
                "must be a finite number > 0"
            };
            self.problem(format!("{key} = {x}: {want}"));
            return None;
        }
        Some(x)
    }

    /// Keys and tensors every architecture has: width, layers, vocabulary, context,
    /// special token ids.
    fn common(&mut self) -> Common {
        let n_embd = self.req_int(key::EMBEDDING_LENGTH, 1, u64::MAX, "must be > 0");
        let mut vocab = None;
        match self.dims(tensor::TOKEN_EMBD) {
            None => self.problem("missing tensor \"token_embd.weight\"".into()),
            Some(&[cols, rows]) => {
                vocab = Some(rows);
                if let Some(d) = n_embd.filter(|&d| d != cols) {
                    let key = self.key(key::EMBEDDING_LENGTH);
                    self.problem(format!(
                        "{key} = {d}, but token_embd.weight has rows of {cols} values (shape [{cols}, {rows}])"
                    ));
                }
            }
            Some(dims) => self.problem(format!(
                "tensor \"token_embd.weight\" has shape {dims:?}, expected [embedding_length, vocabulary]"
            )),
        }
        let n_embd = n_embd.filter(|&d| self.dims(tensor::TOKEN_EMBD).map(|t| t[0]) == Some(d));

        let n_layer = self.block_count();

        if let (Some(v), Some(rows)) = (
            self.int(key::VOCAB_SIZE, None, 1, u64::MAX, "must be > 0"),
            vocab,
        ) {
            if v != rows {
                let key = self.key(key::VOCAB_SIZE);
                self.problem(format!(
                    "{key} = {v}, but token_embd.weight has {rows} rows (one per token)"
                ));
            }
        }
        if let (Some(d), Some(v), Some(out)) = (n_embd, vocab, self.dims(tensor::OUTPUT)) {
            if out != [d, v] {
                self.problem(format!(
                    "tensor \"output.weight\" has shape {out:?}, expected [{d}, {v}] like token_embd.weight"
                ));
            }
        }

        let n_ctx_train = self.int(
            key::CONTEXT_LENGTH,
            None,
            MIN_CONTEXT,
            MAX_CONTEXT,
            &format!("a trained context must be {MIN_CONTEXT} to {MAX_CONTEXT} positions"),
        );
        self.float(key::RMS_EPSILON, false);
        self.token_ids(vocab);
        Common {
            n_embd,
            n_layer,
            n_ctx_train,
        }
    }

    /// `{arch}.block_count` against the `blk.N.*` tensors: they must number blocks `0..L`
    /// with none missing, and `L` must be the key's value. Bounded by the tensor count, so a
    /// huge value never turns into a loop or an allocation.
    fn block_count(&mut self) -> Option<u64> {
        let mut blocks = BTreeSet::new();
        for t in self.file.tensor_infos() {
            let Some(rest) = t.name().strip_prefix(BLOCK_PREFIX) else {
                continue;
            };
            let idx = rest.split('.').next().unwrap_or("");
            match idx.parse::<u64>() {
                Ok(i) if idx.bytes().all(|b| b.is_ascii_digit()) => {
                    blocks.insert(i);
                }
                _ => self.problem(format!(
                    "tensor {:?} has no block number after \"blk.\"",
                    t.name()
                )),
            }
        }
        let key = self.key(key::BLOCK_COUNT);
        let n = blocks.len() as u64;
        if let Some(&last) = blocks.last() {
            // n distinct indices up to `last`: a gap exactly when `last >= n`.
            if last >= n {
                let missing = (0..=last).find(|i| !blocks.contains(i)).unwrap_or(0);
                self.problem(format!(
                    "the file has tensors for block {last} but none for block {missing} (blocks must be numbered from 0 without gaps)"
                ));
            }
        }
        let l = self.req_int(
            key::BLOCK_COUNT,
            1,
            u64::MAX,
            "a model needs at least one block",
        )?;
        if l != n {
            let have = match n {
                0 => "no block tensors (blk.N.*)".to_string(),
                1 => "tensors for 1 block (blk.0)".to_string(),
                n => format!("tensors for {n} blocks (blk.0 to blk.{})", n - 1),
            };
            self.problem(format!("{key} = {l}, but the file has {have}"));
            return None;
        }
        Some(l)
    }

    /// Every `tokenizer.ggml.*_token_id` names a token of the vocabulary and a row of the
    /// embedding; the vocabulary has no more tokens than the embedding has rows.
    fn token_ids(&mut self, n_vocab: Option<u64>) {
        let n_tokens = match self.file.get(tokenizer::TOKENS) {
            Some(Value::Array(a)) => Some(a.len() as u64),
            _ => None,
        };
        if let (Some(t), Some(v)) = (n_tokens, n_vocab) {
            if t > v {
                self.problem(format!(
                    "tokenizer.ggml.tokens has {t} tokens, more than the {v} rows of token_embd.weight"
                ));
            }
        }
        let keys: Vec<&str> = self
            .file
            .metadata()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(tokenizer::GGML_PREFIX) && k.ends_with("_token_id"))
            .collect();
        for key in keys {
            let Ok(Some(id)) = self.int_key(key) else {
                continue;
            };
            let limit = match (n_tokens, n_vocab) {
                (Some(t), Some(v)) => Some((t.min(v), "tokens in the vocabulary")),
                (Some(t), None) => Some((t, "tokens in the vocabulary")),
                (None, Some(v)) => Some((v, "rows in token_embd.weight")),
                (None, None) => None,
            };
            match limit {
                Some((n, what)) if id < 0 || id >= i128::from(n) => {
                    self.problem(format!("{key} = {id}, but there are only {n} {what}"))
                }
                None if id < 0 => self.problem(format!("{key} = {id}: a token id is >= 0")),
                _ => {}
            }
        }
    }

    /// Block `i`'s tensor `blk.i.{suffix}`'s dims.
    fn block_dims(&self, i: u64, t: BlockTensor) -> Option<(String, &'f [u64])> {
        let name = t.weight(i as usize);
        self.dims(&name).map(|d| (name, d))
    }

    /// `feed_forward_length` against the first block's `ffn_gate` (`[D, F]`).
    fn ffn(&mut self, c: &Common) {
        let Some(f) = self.req_int(key::FEED_FORWARD_LENGTH, 1, u64::MAX, "must be > 0") else {
            return;
        };
        if c.n_layer.is_none() {
            return;
        }
        if let Some((name, dims)) = self.block_dims(0, BlockTensor::FfnGate) {
            if dims.get(1) != Some(&f) {
                let key = self.key(key::FEED_FORWARD_LENGTH);
                self.problem(format!(
                    "{key} = {f}, but {name} has shape {dims:?} (rows = feed-forward width)"
                ));
            }
        }
    }

    /// `sliding_window` (`lo..=` the trained context) when present.
    fn window(&mut self, c: &Common, lo: u64, required: bool) -> Option<u64> {
        let why = format!("a sliding window must be {lo} to {MAX_CONTEXT} positions");
        let w = if required {
            self.req_int(key::SLIDING_WINDOW, lo, MAX_CONTEXT, &why)?
        } else {
            self.int(key::SLIDING_WINDOW, None, lo, MAX_CONTEXT, &why)?
        };
        if let Some(ctx) = c.n_ctx_train.filter(|&ctx| w > ctx) {
            let (key, ctx_key) = (self.key(key::SLIDING_WINDOW), self.key(key::CONTEXT_LENGTH));
            self.problem(format!(
                "{key} = {w}, longer than the trained context ({ctx_key} = {ctx})"
            ));
            return None;
        }
        Some(w)
    }

    fn gemma(&mut self, family: Family) {
        let c = self.common();
        self.ffn(&c);

        // Heads: counts and head dimension from the keys, then against the first block's
        // projections ([D, H·hd] for Q, [D, Hkv·hd] for K) and Gemma 3's per-head norms.
        let h = self.req_int(key::HEAD_COUNT, 1, u64::MAX, "must be > 0");
        let hkv = match self.int(key::HEAD_COUNT_KV, h, 1, u64::MAX, "must be > 0") {
            Some(hkv) if h.is_some_and(|h| hkv > h) => {
                let (key, h_key) = (self.key(key::HEAD_COUNT_KV), self.key(key::HEAD_COUNT));
                self.problem(format!(
                    "{key} = {hkv}, more KV heads than query heads ({h_key} = {})",
                    h.unwrap_or(0)
                ));
                None
            }
            hkv => hkv,
        };
        let hd_key = self.key(key::KEY_LENGTH);
        let hd_from_key = self.file.contains_key(&hd_key);
        let default_hd = c.n_embd.zip(h).map(|(d, h)| d / h);
        let hd = self.head_dim(default_hd);
        if let (Some(h), Some(hkv)) = (h, hkv) {
            if h % hkv != 0 {
                let key = self.key(key::HEAD_COUNT_KV);
                let h_key = self.key(key::HEAD_COUNT);
                self.problem(format!(
                    "{key} = {hkv}: {h_key} = {h} is not a multiple of it"
                ));
            } else if let Some(hd) = hd {
                if u128::from(h / hkv) * u128::from(hd) > MAX_GROUP_FLOATS as u128 {
                    let key = self.key(key::HEAD_COUNT);
                    self.problem(format!(
                        "{key} = {h}: {} query heads per KV head of {hd} dimensions exceed the attention kernel's {MAX_GROUP_FLOATS}",
                        h / hkv
                    ));
                }
            }
        }
        let hd_src = if hd_from_key {
            hd_key.clone()
        } else {
            format!(
                "{} / {} ({hd_key} absent)",
                self.key(key::EMBEDDING_LENGTH),
                self.key(key::HEAD_COUNT)
            )
        };
        if let (Some(hd), Some(_)) = (hd, c.n_layer) {
            if family == Family::Gemma3 {
                if let Some((name, dims)) = self.block_dims(0, BlockTensor::AttnQNorm) {
                    if dims != [hd] {
                        self.problem(format!(
                            "head dimension {hd} ({hd_src}), but {name} has shape {dims:?} (one value per head dimension)"
                        ));
                    }
                }
            }
            if let (Some(h), Some((name, dims))) = (h, self.block_dims(0, BlockTensor::AttnQ)) {
                if u128::from(dims.get(1).copied().unwrap_or(0)) != u128::from(h) * u128::from(hd) {
                    let key = self.key(key::HEAD_COUNT);
                    self.problem(format!(
                        "{key} = {h}, but {name} has shape {dims:?}, not {h} heads × {hd} ({hd_src}) rows"
                    ));
                }
            }
            if let (Some(hkv), Some((name, dims))) = (hkv, self.block_dims(0, BlockTensor::AttnK)) {
                if u128::from(dims.get(1).copied().unwrap_or(0)) != u128::from(hkv) * u128::from(hd)
                {
                    let key = self.key(key::HEAD_COUNT_KV);
                    self.problem(format!(
                        "{key} = {hkv}, but {name} has shape {dims:?}, not {hkv} KV heads × {hd} ({hd_src}) rows"
                    ));
                }
            }
        }
        if let (Some(hd), Some(rd)) = (
            hd,
            self.int(key::ROPE_DIMENSION_COUNT, None, 1, u64::MAX, "must be > 0"),
        ) {
            if rd != hd {
                let key = self.key(key::ROPE_DIMENSION_COUNT);
                self.problem(format!(
                    "{key} = {rd}: Gemma rotates the whole head of {hd} dimensions ({hd_src})"
                ));
            }
        }

        // Sliding window and which layers use it.
        let window = match family {
            Family::Gemma1 => None,
            Family::Gemma2 => self.window(&c, 1, false).or(Some(4096)),
            // 0 means no window (every layer global).
            Family::Gemma3 => self.window(&c, 0, false).filter(|&w| w > 0),
        };
        if window.is_some() {
            self.swa_pattern(c.n_layer);
        }

        // RoPE, scales, caps: finite and positive (a softcap of 0 is off).
        self.float(key::ROPE_FREQ_BASE, false);
        self.float(key::ROPE_FREQ_BASE_SWA, false);
        self.float(key::ROPE_SCALE_LINEAR, false);
        self.float(key::ROPE_SCALING_FACTOR, false);
        let st_key = self.key(key::ROPE_SCALING_TYPE);
        match self.file.get(&st_key) {
            None | Some(Value::String("none" | "linear")) => {}
            Some(Value::String(other)) => self.problem(format!(
                "{st_key} = {other:?}: only \"none\" and \"linear\" RoPE scaling are supported"
            )),
            Some(other) => self.problem(format!(
                "{st_key} has type {}, expected str",
                other.type_description()
            )),
        }
        self.float(key::ATTENTION_SCALE, false);
        self.float(key::ATTN_SOFTCAP, true);
        self.float(key::FINAL_SOFTCAP, true);
        self.float(key::EMBEDDING_SCALE, false);
    }

    /// `attention.key_length` (default `default`): even, `1..=MAX_HEAD_DIM`, and
    /// `attention.value_length` equal to it.
    fn head_dim(&mut self, default: Option<u64>) -> Option<u64> {
        let why = format!("a head dimension must be even and 2 to {MAX_HEAD_DIM}");
        let key = self.key(key::KEY_LENGTH);
        let hd = match self.int(key::KEY_LENGTH, None, 0, u64::MAX, &why) {
            Some(hd) => Some(hd),
            None if self.file.contains_key(&key) => return None,
            None => default,
        }?;
        if hd == 0 || hd % 2 != 0 || hd > MAX_HEAD_DIM as u64 {
            let src = if self.file.contains_key(&key) {
                format!("{key} = {hd}")
            } else {
                format!(
                    "{} / {} = {hd} ({key} absent)",
                    self.key(key::EMBEDDING_LENGTH),
                    self.key(key::HEAD_COUNT)
                )
            };
            self.problem(format!("{src}: {why}"));
            return None;
        }
        if let Some(vd) = self.int(key::VALUE_LENGTH, None, 0, u64::MAX, "") {
            if vd != hd {
                let vkey = self.key(key::VALUE_LENGTH);
                self.problem(format!(
                    "{vkey} = {vd}, but the key length is {hd} (edgegemma needs them equal)"
                ));
            }
        }
        Some(hd)
    }

    /// `attention.sliding_window_pattern`: a period `P` (layer `i` is local iff `P == 0` or
    /// `i mod P < P − 1`, llama.cpp's rule), at most the layer count, or one bool per layer.
    fn swa_pattern(&mut self, n_layer: Option<u64>) {
        let key = self.key(key::SLIDING_WINDOW_PATTERN);
        match self.file.get(&key) {
            None => {}
            Some(Value::Array(a)) => {
                if a.elem_type() != crate::gguf::ValueType::Bool {
                    self.problem(format!(
                        "{key} is an array of {}, expected an array of bool (one per layer)",
                        a.elem_type()
                    ));
                } else if let Some(l) = n_layer.filter(|&l| a.len() as u64 != l) {
                    self.problem(format!(
                        "{key} has {} entries, but {} = {l}",
                        a.len(),
                        self.key(key::BLOCK_COUNT)
                    ));
                }
            }
            Some(v) => match v.as_i128() {
                None => self.problem(format!(
                    "{key} has type {}, expected u32 or an array of bool",
                    v.type_description()
                )),
                Some(p) if p < 0 => {
                    self.problem(format!("{key} = {p}: a layer period is >= 0"));
                }
                Some(p) => {
                    if let Some(l) = n_layer.filter(|&l| p > i128::from(l)) {
                        self.problem(format!(
                            "{key} = {p}, longer than the {l} layers ({} = {l}): no layer would be global",
                            self.key(key::BLOCK_COUNT)
                        ));
                    }
                }
            },
        }
    }

    fn recurrent_gemma(&mut self) {
        let c = self.common();
        self.ffn(&c);

        // Layer kinds: head_count_kv is one entry per layer, 1 for attention, 0 for recurrent,
        // and must agree with the tensors each block holds.
        let kv_key = self.key(key::HEAD_COUNT_KV);
        let mut first_attention = None;
        let mut first_recurrent = None;
        match self.file.get(&kv_key) {
            None => self.problem(format!("{kv_key} is missing")),
            Some(Value::Array(a)) if a.elem_type().fixed_size().is_some() => {
                if let Some(l) = c.n_layer.filter(|&l| a.len() as u64 != l) {
                    self.problem(format!(
                        "{kv_key} has {} entries, but {} = {l}",
                        a.len(),
                        self.key(key::BLOCK_COUNT)
                    ));
                } else {
                    for (i, v) in a.iter().enumerate() {
                        let i = i as u64;
                        let Some(x) = v.as_i128() else {
                            self.problem(format!(
                                "{kv_key} is an array of {}, expected integers",
                                a.elem_type()
                            ));
                            break;
                        };
                        if !(0..=1).contains(&x) {
                            self.problem(format!(
                                "{kv_key}[{i}] = {x}: RecurrentGemma attention is multi-query (1 KV head) and recurrent layers have 0"
                            ));
                            break;
                        }
                        let attn = self.dims(&BlockTensor::AttnQ.weight(i as usize)).is_some();
                        let rec = self
                            .dims(&BlockTensor::RglruInX.weight(i as usize))
                            .is_some();
                        if x == 1 && rec && !attn {
                            self.problem(format!(
                                "{kv_key}[{i}] = 1 (attention), but blk.{i} holds recurrent (rglru_*) tensors"
                            ));
                            break;
                        }
                        if x == 0 && attn && !rec {
                            self.problem(format!(
                                "{kv_key}[{i}] = 0 (recurrent), but blk.{i} holds attention (attn_q/k/v) tensors"
                            ));
                            break;
                        }
                        if x == 1 {
                            first_attention.get_or_insert(i);
                        } else {
                            first_recurrent.get_or_insert(i);
                        }
                    }
                }
            }
            Some(v) => self.problem(format!(
                "{kv_key} has type {}, expected an array of integers (one per layer)",
                v.type_description()
            )),
        }

        // Attention: H query heads of hd over one KV head.
        let h = self.req_int(key::HEAD_COUNT, 1, u64::MAX, "must be > 0");
        let default_hd = c.n_embd.zip(h).map(|(d, h)| d / h);
        let hd = self.head_dim(default_hd);
        if let (Some(h), Some(hd)) = (h, hd) {
            if u128::from(h) * u128::from(hd) > MAX_GROUP_FLOATS as u128 {
                let key = self.key(key::HEAD_COUNT);
                self.problem(format!(
                    "{key} = {h}: {h} query heads of {hd} dimensions exceed the attention kernel's {MAX_GROUP_FLOATS}"
                ));
            } else if let Some(i) = first_attention {
                let hd_key = self.key(key::KEY_LENGTH);
                if let Some((name, dims)) = self.block_dims(i, BlockTensor::AttnK) {
                    if dims.get(1) != Some(&hd) {
                        self.problem(format!(
                            "head dimension {hd} ({hd_key} or embedding_length / head_count), but {name} has shape {dims:?} (one KV head)"
                        ));
                    }
                }
                if let Some((name, dims)) = self.block_dims(i, BlockTensor::AttnQ) {
                    if u128::from(dims.get(1).copied().unwrap_or(0))
                        != u128::from(h) * u128::from(hd)
                    {
                        let key = self.key(key::HEAD_COUNT);
                        self.problem(format!(
                            "{key} = {h}, but {name} has shape {dims:?}, not {h} heads × {hd} rows"
                        ));
                    }
                }
            }
        }
        if let Some(hd) = hd {
            let rope_why = format!("RoPE dimensions must be even and 2 to the head dimension {hd}");
            let rd = self.int(key::ROPE_DIMENSION_COUNT, None, 2, hd, &rope_why);
            if let Some(rd) = rd.filter(|rd| rd % 2 != 0) {
                let key = self.key(key::ROPE_DIMENSION_COUNT);
                self.problem(format!("{key} = {rd}: {rope_why}"));
            }
        }

        // Recurrent: LRU width, conv width, gate blocks against the first recurrent block.
        let r = self.int(
            key::SSM_INNER_SIZE,
            c.n_embd,
            1,
            u64::MAX,
            "the recurrent width must be > 0",
        );
        let cw = self.int(
            key::SSM_CONV_KERNEL,
            Some(4),
            1,
            MAX_CONV_WIDTH,
            &format!("a conv width must be 1 to {MAX_CONV_WIDTH}"),
        );
        let gb = self.int(
            key::RGLRU_HEAD_COUNT,
            h,
            1,
            u64::MAX,
            "the gate block count must be > 0",
        );
        if let (Some(r), Some(gb)) = (r, gb) {
            if r % gb != 0 {
                let key = self.key(key::RGLRU_HEAD_COUNT);
                self.problem(format!(
                    "{key} = {gb}: the recurrent width {r} (ssm.inner_size) is not a multiple of it"
                ));
            }
        }
        if let Some(i) = first_recurrent {
            if let (Some(r), Some((name, dims))) = (r, self.block_dims(i, BlockTensor::RglruInX)) {
                if dims.get(1) != Some(&r) {
                    let key = self.key(key::SSM_INNER_SIZE);
                    self.problem(format!(
                        "{key} = {r}, but {name} has shape {dims:?} (rows = recurrent width)"
                    ));
                }
            }
            if let (Some(cw), Some((name, dims))) =
                (cw, self.block_dims(i, BlockTensor::RglruConv1d))
            {
                if dims.first() != Some(&cw) {
                    let key = self.key(key::SSM_CONV_KERNEL);
                    self.problem(format!(
                        "{key} = {cw}, but {name} has shape {dims:?} (first dimension = conv width)"
                    ));
                }
            }
            if let (Some(gb), Some((name, dims))) =
                (gb, self.block_dims(i, BlockTensor::RglruGateX))
            {
                if dims.get(2) != Some(&gb) {
                    let key = self.key(key::RGLRU_HEAD_COUNT);
                    self.problem(format!(
                        "{key} = {gb}, but {name} has shape {dims:?} (third dimension = gate blocks)"
                    ));
                }
            }
        }

        self.window(&c, 1, true);
        self.float(key::ROPE_FREQ_BASE, false);
        self.float(key::ATTENTION_SCALE, false);
        self.float(key::FINAL_SOFTCAP, true);
        self.float(key::EMBEDDING_SCALE, false);
        self.float(key::RGLRU_C, false);
    }
}

//! The Gemma tokenizer, built from GGUF metadata, reproducing llama.cpp's SentencePiece
//! ("llama"/SPM) tokenizer id for id.
//!
//! Encoding follows llama.cpp (`llama-vocab.cpp`, version vendored by llama-cpp-python
//! 0.3.36):
//! 1. Special-token partition: every token of type USER_DEFINED (always) or CONTROL/UNKNOWN
//!    (only with `parse_special`) is searched for in the raw text, one token at a time in
//!    order of decreasing text length, each splitting the text fragments that are still raw.
//! 2. BOS first if asked for and the model's `add_bos_token` says so.
//! 3. Each raw fragment: optional leading space (`add_space_prefix`, false for Gemma), every
//!    `' '` replaced by `▁`, split into UTF-8 characters, then pairs merged best score first
//!    (ties: leftmost pair), and what is not a vocabulary piece in the end falls back to
//!    `<0xHH>` byte tokens.
//!
//! Decoding renders NORMAL pieces with `▁` as space, BYTE tokens as their raw byte and
//! CONTROL/UNKNOWN tokens only when asked for. [`StreamDecoder`] holds back incomplete UTF-8
//! sequences so a stream of tokens never prints half a character.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::gguf::names::tokenizer as tk;
use crate::gguf::GgufFile;

/// `tokenizer.ggml.token_type` values (SentencePiece piece types).
pub mod token_type {
    pub const UNDEFINED: i32 = 0;
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

// Token attributes as llama.cpp derives them from the token types (bit flags, because
// llama.cpp ORs CONTROL onto end-of-generation tokens found by their text).
const ATTR_UNKNOWN: u8 = 1 << 0;
const ATTR_UNUSED: u8 = 1 << 1;
const ATTR_NORMAL: u8 = 1 << 2;
const ATTR_CONTROL: u8 = 1 << 3;
const ATTR_USER_DEFINED: u8 = 1 << 4;
const ATTR_BYTE: u8 = 1 << 5;

/// `' '` is encoded as U+2581 LOWER ONE EIGHTH BLOCK.
const SPACE_ESCAPE: &[u8] = "\u{2581}".as_bytes();

/// Token texts llama.cpp treats as end of generation (and forces to CONTROL), whatever the
/// GGUF says. Kept complete so every vocabulary behaves as in llama.cpp; for Gemma 1/2/3 the
/// ones present are `<eos>`, `<end_of_turn>` and `</s>` (an HTML tag piece in Gemma 3).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "[e~[",
];

/// Texts llama.cpp takes as the end-of-turn token when `tokenizer.ggml.eot_token_id` is absent.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "<end_of_utterance>",
];

/// Gemma chat turn markers, looked up by text.
pub const START_OF_TURN: &str = "<start_of_turn>";
pub const END_OF_TURN: &str = "<end_of_turn>";

/// A tokenizer problem: bad vocabulary data (naming the file when it came from one) or a
/// token id outside the vocabulary.
#[derive(Debug, Clone)]
pub struct TokenizerError {
    source: Option<PathBuf>,
    message: String,
}

impl TokenizerError {
    fn new(message: impl Into<String>) -> Self {
        TokenizerError {
            source: None,
            message: message.into(),
        }
    }

    fn in_file(mut self, path: &Path) -> Self {
        self.source = Some(path.to_path_buf());
        self
    }

    /// The file the vocabulary came from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(p) => write!(f, "{}: tokenizer: {}", p.display(), self.message),
            None => write!(f, "tokenizer: {}", self.message),
        }
    }
}

impl std::error::Error for TokenizerError {}

impl From<crate::gguf::GgufError> for TokenizerError {
    fn from(e: crate::gguf::GgufError) -> Self {
        // GgufError already names the file.
        TokenizerError::new(e.to_string())
    }
}

/// Special token ids and flags that come with a vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// End of turn; when `None` it is looked up by text (`<end_of_turn>` for Gemma).
    pub eot: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: bool,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: bool,
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece's dummy prefix).
    pub add_space_prefix: bool,
}

impl SpecialTokens {
    /// What the Gemma 1/2/3 GGUF files say: pad 0, eos 1, bos 2, unk 3, BOS added, no
    /// dummy prefix.
    pub fn gemma() -> SpecialTokens {
        SpecialTokens {
            bos: Some(2),
            eos: Some(1),
            eot: None,
            unk: Some(3),
            pad: Some(0),
            add_bos: true,
            add_eos: false,
            add_space_prefix: false,
        }
    }
}

/// A SentencePiece vocabulary ready to encode and decode.
pub struct Tokenizer {
    /// Token texts as stored (with `▁`), concatenated; token `i` is
    /// `text[text_offsets[i]..text_offsets[i + 1]]`.
    text: Vec<u8>,
    text_offsets: Vec<u32>,
    /// Rendered pieces (special tokens as their text), same layout.
    piece: Vec<u8>,
    piece_offsets: Vec<u32>,
    scores: Vec<f32>,
    attrs: Vec<u8>,
    index: PieceIndex,
    byte_tokens: [u32; 256],
    specials: SpecialMatcher,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    /// End-of-generation ids, sorted.
    eog: Vec<u32>,
    start_of_turn: Option<u32>,
    end_of_turn: Option<u32>,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("n_tokens", &self.len())
            .field("n_special", &self.specials.ranked.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eot", &self.eot)
            .field("add_bos", &self.add_bos)
            .field("add_space_prefix", &self.add_space_prefix)
            .finish()
    }
}

impl Tokenizer {
    /// Builds a tokenizer from the three parallel vocabulary arrays. `scores` and
    /// `token_types` may be empty (all 0.0 / all NORMAL, as llama.cpp does when the GGUF
    /// lacks them); otherwise they must have one entry per token.
    pub fn new<S: AsRef<str>>(
        tokens: &[S],
        scores: &[f32],
        token_types: &[i32],
        special: SpecialTokens,
    ) -> Result<Tokenizer, TokenizerError> {
        let n = tokens.len();
        if n == 0 {
            return Err(TokenizerError::new("the vocabulary is empty"));
        }
        if n >= u32::MAX as usize / 2 {
            return Err(TokenizerError::new(format!(
                "the vocabulary has {n} tokens, too many"
            )));
        }
        if !scores.is_empty() && scores.len() != n {
            return Err(TokenizerError::new(format!(
                "{} scores for {n} tokens",
                scores.len()
            )));
        }
        if !token_types.is_empty() && token_types.len() != n {
            return Err(TokenizerError::new(format!(
                "{} token types for {n} tokens",
                token_types.len()
            )));
        }
        if let Some(i) = scores.iter().position(|s| s.is_nan()) {
            return Err(TokenizerError::new(format!("score of token {i} is NaN")));
        }

        // Token texts in one buffer. llama.cpp renames empty texts so that each is unique.
        let total: usize = tokens.iter().map(|t| t.as_ref().len().max(16)).sum();
        if total >= u32::MAX as usize {
            return Err(TokenizerError::new("token texts exceed 4 GiB"));
        }
        let mut text = Vec::with_capacity(total);
        let mut text_offsets = Vec::with_capacity(n + 1);
        text_offsets.push(0u32);
        for (i, t) in tokens.iter().enumerate() {
            let t = t.as_ref();
            if t.is_empty() {
                text.extend_from_slice(format!("[EMPTY_{i}]").as_bytes());
            } else {
                text.extend_from_slice(t.as_bytes());
            }
            text_offsets.push(text.len() as u32);
        }

        let mut attrs: Vec<u8> = if token_types.is_empty() {
            vec![ATTR_NORMAL; n]
        } else {
            token_types
                .iter()
                .map(|&t| match t {
                    token_type::NORMAL => ATTR_NORMAL,
                    token_type::UNKNOWN => ATTR_UNKNOWN,
                    token_type::CONTROL => ATTR_CONTROL,
                    token_type::USER_DEFINED => ATTR_USER_DEFINED,
                    token_type::UNUSED => ATTR_UNUSED,
                    token_type::BYTE => ATTR_BYTE,
                    _ => 0,
                })
                .collect()
        };
        let scores = if scores.is_empty() {
            vec![0.0; n]
        } else {
            scores.to_vec()
        };

        let index = PieceIndex::build(&text, &text_offsets)?;

        for (name, id) in [
            ("bos", special.bos),
            ("eos", special.eos),
            ("eot", special.eot),
            ("unk", special.unk),
            ("pad", special.pad),
        ] {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(TokenizerError::new(format!(
                        "{name} token id {id} is outside the vocabulary of {n} tokens"
                    )));
                }
            }
        }
        if special.add_bos && special.bos.is_none() {
            return Err(TokenizerError::new(
                "add_bos_token is set but there is no bos token",
            ));
        }
        if special.add_eos && special.eos.is_none() {
            return Err(TokenizerError::new(
                "add_eos_token is set but there is no eos token",
            ));
        }

        let lookup = |s: &str| index.find(s.as_bytes(), &text, &text_offsets);

        // End of turn / end of generation, found by text like llama.cpp does; such tokens
        // become CONTROL (which matters for the partition with parse_special = false).
        let mut eot = special.eot;
        if eot.is_none() {
            eot = EOT_TEXTS.iter().find_map(|t| lookup(t));
        }
        let mut eog: Vec<u32> = Vec::new();
        for id in [special.eos, eot].into_iter().flatten() {
            eog.push(id);
        }
        // (Every EOT text is also an EOG text, so this covers an eot found by text too.)
        for t in EOG_TEXTS {
            if let Some(id) = lookup(t) {
                attrs[id as usize] |= ATTR_CONTROL;
                eog.push(id);
            }
        }
        eog.sort_unstable();
        eog.dedup();

        // Byte fallback: `<0xHH>`, else the byte itself as a piece, else unk.
        let mut byte_tokens = [0u32; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            let hex = format!("<0x{b:02X}>");
            let single = [b as u8];
            let found = lookup(&hex)
                .or_else(|| std::str::from_utf8(&single).ok().and_then(lookup))
                .or(special.unk);
            *slot = found.ok_or_else(|| {
                TokenizerError::new(format!(
                    "no byte-fallback token {hex} and no unknown token in the vocabulary"
                ))
            })?;
        }

        // Rendered pieces.
        let mut piece = Vec::with_capacity(text.len());
        let mut piece_offsets = Vec::with_capacity(n + 1);
        piece_offsets.push(0u32);
        for i in 0..n {
            let t = &text[text_offsets[i] as usize..text_offsets[i + 1] as usize];
            let a = attrs[i];
            if a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED) != 0 {
                piece.extend_from_slice(t);
            } else if a & ATTR_NORMAL != 0 {
                unescape_spaces_into(t, &mut piece);
            } else if a & ATTR_BYTE != 0 {
                let b = parse_byte_piece(t).ok_or_else(|| {
                    TokenizerError::new(format!(
                        "token {i} has type BYTE but its text {:?} is not <0xHH>",
                        String::from_utf8_lossy(t)
                    ))
                })?;
                piece.push(b);
            }
            // UNUSED / UNDEFINED render as nothing.
            piece_offsets.push(piece.len() as u32);
        }

        let specials = SpecialMatcher::build(&text, &text_offsets, &attrs);

        Ok(Tokenizer {
            start_of_turn: index.find(START_OF_TURN.as_bytes(), &text, &text_offsets),
            end_of_turn: index.find(END_OF_TURN.as_bytes(), &text, &text_offsets),
            text,
            text_offsets,
            piece,
            piece_offsets,
            scores,
            attrs,
            index,
            byte_tokens,
            specials,
            bos: special.bos,
            eos: special.eos,
            eot,
            unk: special.unk,
            pad: special.pad,
            add_bos: special.add_bos,
            add_eos: special.add_eos,
            add_space_prefix: special.add_space_prefix,
            eog,
        })
    }

    /// Reads the tokenizer of a GGUF file (`tokenizer.ggml.*` keys).
    pub fn from_gguf(path: impl AsRef<Path>) -> Result<Tokenizer, TokenizerError> {
        let file = GgufFile::open(path.as_ref())?;
        Tokenizer::from_gguf_file(&file)
    }

    /// Reads the tokenizer of an opened GGUF file. Only the SentencePiece model
    /// (`tokenizer.ggml.model = "llama"`) is supported; absent keys take llama.cpp's
    /// defaults for it (bos 1, eos 2, unk 0, add_bos true, add_space_prefix true).
    pub fn from_gguf_file(file: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        let path = file.path();
        let model = file.get_str_opt(tk::MODEL)?.ok_or_else(|| {
            TokenizerError::new("no tokenizer in the file (tokenizer.ggml.model is missing)")
                .in_file(path)
        })?;
        if model != "llama" {
            return Err(TokenizerError::new(format!(
                "tokenizer model {model:?} is not supported (only SentencePiece \"llama\", used by all Gemma models)"
            ))
            .in_file(path));
        }
        let tokens = file.get_str_array(tk::TOKENS)?;
        let scores = file.get_f32_array_opt(tk::SCORES)?.unwrap_or_default();
        let types = file.get_i32_array_opt(tk::TOKEN_TYPE)?.unwrap_or_default();
        let n = tokens.len() as u64;
        let id = |key: &str, default: Option<u32>| -> Result<Option<u32>, TokenizerError> {
            match file.get_u32_opt(key)? {
                Some(v) if u64::from(v) >= n => Err(TokenizerError::new(format!(
                    "{key} = {v} is outside the vocabulary of {n} tokens"
                ))
                .in_file(path)),
                Some(v) => Ok(Some(v)),
                None => Ok(default.filter(|&d| u64::from(d) < n)),
            }
        };
        let special = SpecialTokens {
            bos: id(tk::BOS_ID, Some(1))?,
            eos: id(tk::EOS_ID, Some(2))?,
            eot: id(tk::EOT_ID, None)?,
            unk: id(tk::UNK_ID, Some(0))?,
            pad: id(tk::PAD_ID, None)?,
            add_bos: file.get_bool_opt(tk::ADD_BOS)?.unwrap_or(true),
            add_eos: file.get_bool_opt(tk::ADD_EOS)?.unwrap_or(false),
            add_space_prefix: file.get_bool_opt(tk::ADD_SPACE_PREFIX)?.unwrap_or(true),
        };
        Tokenizer::new(&tokens, &scores, &types, special).map_err(|e| e.in_file(path))
    }

    /// Number of tokens in the vocabulary.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Always false (an empty vocabulary is refused).
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    pub fn eot_id(&self) -> Option<u32> {
        self.eot
    }

    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }

    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    /// `add_bos_token`: whether `encode(.., add_bos = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// `<start_of_turn>`, looked up by text.
    pub fn start_of_turn_id(&self) -> Option<u32> {
        self.start_of_turn
    }

    /// `<end_of_turn>`, looked up by text.
    pub fn end_of_turn_id(&self) -> Option<u32> {
        self.end_of_turn
    }

    /// Whether generating `id` ends generation (eos, end of turn and the other tokens
    /// llama.cpp recognises by text).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, sorted.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// The tokens matched whole in the text before SentencePiece runs (CONTROL, UNKNOWN
    /// and USER_DEFINED), in the order they are tried (longest text first).
    pub fn special_tokens(&self) -> &[u32] {
        &self.specials.ranked
    }

    /// The id of the token whose stored text is exactly `text` (`▁` for spaces).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.lookup(text.as_bytes())
    }

    /// The stored text of token `id` (with `▁`, `<0xHH>` for byte tokens).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        let i = id as usize;
        if i >= self.len() {
            return None;
        }
        let t = &self.text[self.text_offsets[i] as usize..self.text_offsets[i + 1] as usize];
        // Built from &str pieces (or ASCII "[EMPTY_n]"), so always UTF-8.
        std::str::from_utf8(t).ok()
    }

    pub fn score(&self, id: u32) -> Option<f32> {
        self.scores.get(id as usize).copied()
    }

    /// Whether `id` is a CONTROL or UNKNOWN token (rendered only on request).
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|a| a & (ATTR_CONTROL | ATTR_UNKNOWN) != 0)
    }

    /// The bytes token `id` decodes to: `▁` → space, a byte token → its byte (possibly a
    /// partial UTF-8 sequence), CONTROL/UNKNOWN → their text if `render_special`, else
    /// nothing. `None` if `id` is outside the vocabulary.
    pub fn token_to_piece(&self, id: u32, render_special: bool) -> Option<&[u8]> {
        let i = id as usize;
        let a = *self.attrs.get(i)?;
        if !render_special && a & (ATTR_CONTROL | ATTR_UNKNOWN) != 0 {
            return Some(&[]);
        }
        Some(&self.piece[self.piece_offsets[i] as usize..self.piece_offsets[i + 1] as usize])
    }

    /// Decodes `ids` to bytes (see [`Tokenizer::token_to_piece`]).
    pub fn decode_bytes(
        &self,
        ids: &[u32],
        render_special: bool,
    ) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.piece_or_error(id, render_special)?);
        }
        Ok(out)
    }

    /// Decodes `ids` to text; byte sequences that are not valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32], render_special: bool) -> Result<String, TokenizerError> {
        let bytes = self.decode_bytes(ids, render_special)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn piece_or_error(&self, id: u32, render_special: bool) -> Result<&[u8], TokenizerError> {
        self.token_to_piece(id, render_special).ok_or_else(|| {
            TokenizerError::new(format!(
                "token id {id} is outside the vocabulary of {} tokens",
                self.len()
            ))
        })
    }

    /// Tokenizes `text` like llama.cpp's `llama_tokenize(vocab, text, add_special = add_bos,
    /// parse_special)`: BOS first when `add_bos` and the model's `add_bos_token` are both
    /// set (and EOS last when `add_eos_token` is); with `parse_special`, CONTROL tokens
    /// written in the text (`<start_of_turn>`, `<bos>`, ...) become their ids.
    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        self.encode_into(text, add_bos, parse_special, &mut out);
        out
    }

    /// [`Tokenizer::encode`], appending to `out`.
    pub fn encode_into(&self, text: &str, add_bos: bool, parse_special: bool, out: &mut Vec<u32>) {
        let bytes = text.as_bytes();
        let mut spans = Vec::new();
        self.specials
            .partition(bytes, parse_special, &self.text_offsets, &mut spans);

        if add_bos && self.add_bos {
            if let Some(bos) = self.bos {
                out.push(bos);
            }
        }
        let mut scratch = SpmScratch::default();
        let mut prev_special = true;
        let mut cursor = 0usize;
        for span in spans.iter().map(Some).chain(std::iter::once(None)) {
            let end = span.map_or(bytes.len(), |s| s.start);
            if end > cursor {
                self.encode_fragment(&bytes[cursor..end], prev_special, &mut scratch, out);
                prev_special = false;
            }
            if let Some(s) = span {
                out.push(s.token);
                prev_special = true;
                cursor = s.start + s.len;
            }
        }
        if add_bos && self.add_eos {
            if let Some(eos) = self.eos {
                out.push(eos);
            }
        }
    }

    /// SentencePiece BPE on one raw fragment (llama.cpp's `llm_tokenizer_spm_session`).
    fn encode_fragment(
        &self,
        raw: &[u8],
        prev_special: bool,
        s: &mut SpmScratch,
        out: &mut Vec<u32>,
    ) {
        s.buf.clear();
        if self.add_space_prefix && prev_special {
            s.buf.extend_from_slice(SPACE_ESCAPE);
        }
        for &b in raw {
            if b == b' ' {
                s.buf.extend_from_slice(SPACE_ESCAPE);
            } else {
                s.buf.push(b);
            }
        }
        let buf = &s.buf;

        // One symbol per UTF-8 character, length from the lead byte as llama.cpp does.
        s.symbols.clear();
        let mut offs = 0usize;
        while offs < buf.len() {
            let len = utf8_len(buf[offs]).min(buf.len() - offs);
            let idx = s.symbols.len() as i32;
            s.symbols.push(Symbol {
                prev: idx - 1,
                next: if offs + len == buf.len() { -1 } else { idx + 1 },
                start: offs as u32,
                len: len as u32,
            });
            offs += len;
        }

        s.heap.clear();
        for i in 1..s.symbols.len() {
            self.try_add_bigram(buf, &s.symbols, &mut s.heap, i as i32 - 1, i as i32);
        }

        while let Some(bigram) = s.heap.pop() {
            let (l, r) = (bigram.left as usize, bigram.right as usize);
            let (left, right) = (s.symbols[l], s.symbols[r]);
            // Stale: one side already merged away or grown since this pair was queued.
            if left.len == 0 || right.len == 0 || left.len + right.len != bigram.size {
                continue;
            }
            s.symbols[l].len += right.len;
            s.symbols[r].len = 0;
            s.symbols[l].next = right.next;
            if right.next >= 0 {
                s.symbols[right.next as usize].prev = bigram.left;
            }
            let (prev, next) = (s.symbols[l].prev, s.symbols[l].next);
            self.try_add_bigram(buf, &s.symbols, &mut s.heap, prev, bigram.left);
            self.try_add_bigram(buf, &s.symbols, &mut s.heap, bigram.left, next);
        }

        // Every merged symbol is a vocabulary piece (it was queued only as one), so only
        // single characters can miss the vocabulary: those fall back to byte tokens.
        let mut i: i32 = if s.symbols.is_empty() { -1 } else { 0 };
        while i >= 0 {
            let sym = s.symbols[i as usize];
            let bytes = &buf[sym.start as usize..(sym.start + sym.len) as usize];
            match self.lookup(bytes) {
                Some(id) => out.push(id),
                None => out.extend(bytes.iter().map(|&b| self.byte_tokens[b as usize])),
            }
            i = sym.next;
        }
    }

    #[inline]
    fn try_add_bigram(
        &self,
        buf: &[u8],
        symbols: &[Symbol],
        heap: &mut BinaryHeap<Bigram>,
        left: i32,
        right: i32,
    ) {
        if left < 0 || right < 0 {
            return;
        }
        let l = symbols[left as usize];
        let r = symbols[right as usize];
        let size = l.len + r.len;
        let bytes = &buf[l.start as usize..(l.start + size) as usize];
        if let Some(id) = self.lookup(bytes) {
            heap.push(Bigram {
                score: self.scores[id as usize],
                left,
                right,
                size,
            });
        }
    }

    #[inline]
    fn lookup(&self, key: &[u8]) -> Option<u32> {
        self.index.find(key, &self.text, &self.text_offsets)
    }
}

/// Incremental detokenizer: feed ids one at a time, get back only complete UTF-8 text.
/// Bytes of a character split over several byte tokens wait until the character is
/// complete; bytes that can never form valid UTF-8 come out as U+FFFD.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    out: String,
    render_special: bool,
}

impl StreamDecoder {
    /// `render_special`: whether CONTROL tokens (`<end_of_turn>`, ...) print their text.
    pub fn new(render_special: bool) -> StreamDecoder {
        StreamDecoder {
            pending: Vec::with_capacity(16),
            out: String::with_capacity(64),
            render_special,
        }
    }

    /// Adds token `id`; returns the text that became complete (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<&str, TokenizerError> {
        let piece = tokenizer.piece_or_error(id, self.render_special)?;
        self.out.clear();
        self.pending.extend_from_slice(piece);
        self.drain(false);
        Ok(&self.out)
    }

    /// Ends the stream: whatever incomplete sequence is left comes out as U+FFFD.
    pub fn finish(&mut self) -> &str {
        self.out.clear();
        self.drain(true);
        &self.out
    }

    /// Bytes held back, waiting for the rest of a character.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.pending
    }

    fn drain(&mut self, at_end: bool) {
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    self.out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Valid by construction (from_utf8 said so up to `valid`).
                    if let Ok(s) = std::str::from_utf8(&self.pending[start..start + valid]) {
                        self.out.push_str(s);
                    }
                    start += valid;
                    match e.error_len() {
                        Some(bad) => {
                            self.out.push(char::REPLACEMENT_CHARACTER);
                            start += bad;
                        }
                        None if at_end => {
                            self.out.push(char::REPLACEMENT_CHARACTER);
                            start = self.pending.len();
                            break;
                        }
                        None => break,
                    }
                }
            }
        }
        self.pending.drain(..start);
    }
}

/// Bytes of a UTF-8 sequence from its lead byte (continuation bytes count as 1), as
/// llama.cpp's `unicode_len_utf8`.
#[inline]
fn utf8_len(lead: u8) -> usize {
    const LOOKUP: [u8; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LOOKUP[(lead >> 4) as usize] as usize
}

fn unescape_spaces_into(t: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < t.len() {
        if t[i..].starts_with(SPACE_ESCAPE) {
            out.push(b' ');
            i += SPACE_ESCAPE.len();
        } else {
            out.push(t[i]);
            i += 1;
        }
    }
}

/// `<0xHH>` → the byte.
fn parse_byte_piece(t: &[u8]) -> Option<u8> {
    if t.len() != 6 || !t.starts_with(b"<0x") || t[5] != b'>' {
        return None;
    }
    let hex = std::str::from_utf8(&t[3..5]).ok()?;
    u8::from_str_radix(hex, 16).ok()
}

#[derive(Clone, Copy, Debug)]
struct Symbol {
    prev: i32,
    next: i32,
    start: u32,
    len: u32,
}

/// A candidate merge. Ordered so the heap pops the highest score, and among equal scores
/// the leftmost pair (llama.cpp's `llm_bigram_spm::comparator`).
#[derive(Clone, Copy, Debug)]
struct Bigram {
    score: f32,
    left: i32,
    right: i32,
    size: u32,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        // Scores are never NaN (refused at load).
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Buffers reused across the fragments of one `encode` call.
#[derive(Default)]
struct SpmScratch {
    buf: Vec<u8>,
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Bigram>,
}

/// Open-addressing hash table from token text to id (built once; linear probing over a
/// power-of-two table at most half full). Each slot keeps 32 bits of the hash beside the
/// id, so most failed lookups never compare bytes.
struct PieceIndex {
    slots: Vec<u64>,
    shift: u32,
}

const EMPTY_SLOT: u64 = u64::MAX;

impl PieceIndex {
    fn build(text: &[u8], offsets: &[u32]) -> Result<PieceIndex, TokenizerError> {
        let n = offsets.len() - 1;
        let cap = (n * 2).next_power_of_two().max(16);
        let mut index = PieceIndex {
            slots: vec![EMPTY_SLOT; cap],
            shift: 64 - cap.trailing_zeros(),
        };
        let mask = cap - 1;
        for id in 0..n {
            let key = &text[offsets[id] as usize..offsets[id + 1] as usize];
            let h = hash_bytes(key);
            let tag = h & 0xFFFF_FFFF_0000_0000;
            let mut pos = (h >> index.shift) as usize;
            loop {
                let slot = index.slots[pos];
                if slot == EMPTY_SLOT {
                    index.slots[pos] = tag | id as u64;
                    break;
                }
                if slot & 0xFFFF_FFFF_0000_0000 == tag {
                    let other = (slot & 0xFFFF_FFFF) as usize;
                    if &text[offsets[other] as usize..offsets[other + 1] as usize] == key {
                        return Err(TokenizerError::new(format!(
                            "tokens {other} and {id} have the same text {:?}",
                            String::from_utf8_lossy(key)
                        )));
                    }
                }
                pos = (pos + 1) & mask;
            }
        }
        Ok(index)
    }

    #[inline]
    fn find(&self, key: &[u8], text: &[u8], offsets: &[u32]) -> Option<u32> {
        let h = hash_bytes(key);
        let tag = h & 0xFFFF_FFFF_0000_0000;
        let mask = self.slots.len() - 1;
        let mut pos = (h >> self.shift) as usize;
        loop {
            let slot = self.slots[pos];
            if slot == EMPTY_SLOT {
                return None;
            }
            if slot & 0xFFFF_FFFF_0000_0000 == tag {
                let id = (slot & 0xFFFF_FFFF) as usize;
                if &text[offsets[id] as usize..offsets[id + 1] as usize] == key {
                    return Some(id as u32);
                }
            }
            pos = (pos + 1) & mask;
        }
    }
}

/// A fast 64-bit hash of a short byte string (multiply-rotate per 8-byte word, then a
/// final mix so the top bits used for the slot depend on every input bit).
#[inline]
fn hash_bytes(key: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^ (h >> 32)
}

/// One special token found in the text.
#[derive(Clone, Copy, Debug)]
struct SpecialSpan {
    start: usize,
    len: usize,
    token: u32,
}

/// The tokens matched whole before SentencePiece runs (USER_DEFINED always, CONTROL and
/// UNKNOWN with `parse_special`), in llama.cpp's order (longest text first; equal lengths by
/// id), with a byte trie over their texts to find all occurrences in one pass.
struct SpecialMatcher {
    /// Token ids by rank (the order llama.cpp tries them in).
    ranked: Vec<u32>,
    /// Per rank: matched even without `parse_special` (USER_DEFINED, not CONTROL/UNKNOWN).
    always: Vec<bool>,
    /// Trie: node `i` has edges `edges[nodes[i].first..nodes[i].first + nodes[i].count]`
    /// (sorted by byte) and ends the text of rank `nodes[i].rank` (or `NO_RANK`).
    nodes: Vec<TrieNode>,
    edges: Vec<(u8, u32)>,
    first_byte: [bool; 256],
}

#[derive(Clone, Copy)]
struct TrieNode {
    first: u32,
    count: u32,
    rank: u32,
}

const NO_RANK: u32 = u32::MAX;

impl SpecialMatcher {
    fn build(text: &[u8], offsets: &[u32], attrs: &[u8]) -> SpecialMatcher {
        let special_mask = ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN;
        let len_of = |id: u32| (offsets[id as usize + 1] - offsets[id as usize]) as usize;
        let mut ranked: Vec<u32> = (0..attrs.len() as u32)
            .filter(|&id| attrs[id as usize] & special_mask != 0)
            .collect();
        // llama.cpp uses an unstable sort by length alone; for equal lengths we go by id.
        // The order among equal lengths matters only if two such texts overlap in the
        // input, which no Gemma vocabulary allows (checked by the tests on the real one).
        ranked.sort_by(|&a, &b| len_of(b).cmp(&len_of(a)).then(a.cmp(&b)));
        let always = ranked
            .iter()
            .map(|&id| attrs[id as usize] & (ATTR_CONTROL | ATTR_UNKNOWN) == 0)
            .collect();

        // Build with per-node child lists, then flatten.
        let mut children: Vec<Vec<(u8, u32)>> = vec![Vec::new()];
        let mut ranks: Vec<u32> = vec![NO_RANK];
        let mut first_byte = [false; 256];
        for (rank, &id) in ranked.iter().enumerate() {
            let t = &text[offsets[id as usize] as usize..offsets[id as usize + 1] as usize];
            first_byte[t[0] as usize] = true;
            let mut node = 0usize;
            for &b in t {
                node = match children[node].iter().find(|e| e.0 == b) {
                    Some(&(_, child)) => child as usize,
                    None => {
                        let child = children.len();
                        children.push(Vec::new());
                        ranks.push(NO_RANK);
                        children[node].push((b, child as u32));
                        child
                    }
                };
            }
            // Texts are unique, so each end node belongs to one token.
            ranks[node] = rank as u32;
        }
        let mut nodes = Vec::with_capacity(children.len());
        let mut edges = Vec::new();
        for (mut c, rank) in children.into_iter().zip(ranks) {
            c.sort_unstable_by_key(|e| e.0);
            nodes.push(TrieNode {
                first: edges.len() as u32,
                count: c.len() as u32,
                rank,
            });
            edges.extend(c);
        }
        SpecialMatcher {
            ranked,
            always,
            nodes,
            edges,
            first_byte,
        }
    }

    /// Finds the special tokens llama.cpp's `tokenizer_st_partition` cuts out of `bytes`:
    /// tokens are taken in rank order, each at every occurrence (left to right) that still
    /// lies wholly inside raw text. Writes them to `spans` sorted by position.
    fn partition(
        &self,
        bytes: &[u8],
        parse_special: bool,
        offsets: &[u32],
        spans: &mut Vec<SpecialSpan>,
    ) {
        spans.clear();
        if self.ranked.is_empty() || bytes.is_empty() {
            return;
        }
        // Every occurrence of every eligible token: (rank, start).
        let mut hits: Vec<(u32, u32)> = Vec::new();
        for start in 0..bytes.len() {
            if !self.first_byte[bytes[start] as usize] {
                continue;
            }
            let mut node = 0usize;
            for &b in &bytes[start..] {
                let n = self.nodes[node];
                let e = &self.edges[n.first as usize..(n.first + n.count) as usize];
                match e.binary_search_by_key(&b, |x| x.0) {
                    Ok(k) => node = e[k].1 as usize,
                    Err(_) => break,
                }
                let rank = self.nodes[node].rank;
                if rank != NO_RANK && (parse_special || self.always[rank as usize]) {
                    hits.push((rank, start as u32));
                }
            }
        }
        if hits.is_empty() {
            return;
        }
        hits.sort_unstable();
        let mut taken = vec![false; bytes.len()];
        for (rank, start) in hits {
            let token = self.ranked[rank as usize];
            let len = (offsets[token as usize + 1] - offsets[token as usize]) as usize;
            let start = start as usize;
            // Spans taken before are at least as long as this one, so one that overlaps it
            // must cover its first or its last byte.
            if taken[start] || taken[start + len - 1] {
                continue;
            }
            taken[start..start + len].fill(true);
            spans.push(SpecialSpan { start, len, token });
        }
        spans.sort_unstable_by_key(|s| s.start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_index_finds_every_token_and_rejects_others() {
        let toks: Vec<String> = (0..5000).map(|i| format!("t{i}")).collect();
        let mut text = Vec::new();
        let mut offsets = vec![0u32];
        for t in &toks {
            text.extend_from_slice(t.as_bytes());
            offsets.push(text.len() as u32);
        }
        let index = PieceIndex::build(&text, &offsets).unwrap();
        for (i, t) in toks.iter().enumerate() {
            assert_eq!(index.find(t.as_bytes(), &text, &offsets), Some(i as u32));
        }
        assert_eq!(index.find(b"t5000", &text, &offsets), None);
        assert_eq!(index.find(b"", &text, &offsets), None);
    }

    #[test]
    fn utf8_len_follows_lead_byte() {
        assert_eq!(utf8_len(b'a'), 1);
        assert_eq!(utf8_len(0xC3), 2);
        assert_eq!(utf8_len(0xE2), 3);
        assert_eq!(utf8_len(0xF0), 4);
        assert_eq!(utf8_len(0x80), 1);
    }

    #[test]
    fn byte_piece_parsing() {
        assert_eq!(parse_byte_piece(b"<0x0A>"), Some(10));
        assert_eq!(parse_byte_piece(b"<0xff>"), Some(255));
        assert_eq!(parse_byte_piece(b"<0x0A"), None);
        assert_eq!(parse_byte_piece(b"<0xZZ>"), None);
    }
}

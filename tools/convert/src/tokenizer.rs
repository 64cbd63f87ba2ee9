//! The GGUF tokenizer keys (`tokenizer.ggml.model = "llama"`, SentencePiece scores) from a
//! Hugging Face folder, the way llama.cpp's converter writes them for Gemma:
//!
//! 1. Base pieces: from SentencePiece `tokenizer.model` when present (text, score, type;
//!    SentencePiece's USER_DEFINED counts as NORMAL here, as in llama.cpp), else from the
//!    `tokenizer.json` BPE vocabulary: `<unk>` → UNKNOWN, `<0xHH>` → BYTE, special added
//!    tokens → CONTROL, the rest NORMAL.
//! 2. `added_tokens.json`: USER_DEFINED, score −1000.
//! 3. Added tokens (`tokenizer_config.json` `added_tokens_decoder`; for a folder without
//!    `tokenizer.model` and without that key, `tokenizer.json` `added_tokens`): CONTROL if
//!    special or it looks special (`<unusedN>`, `<mask>`, `<|…|>`), else USER_DEFINED with
//!    `▁` written as a space; score −1000; the added text replaces the piece.
//! 4. Ids without a piece below `vocab_size`: `[PADn]`, UNUSED, score −10000.
//!
//! `tokenizer.json` has no scores. SentencePiece BPE gives its merged pieces consecutive
//! scores in id order, so a NORMAL piece gets `−(id − first NORMAL id)`: for the real Gemma 3
//! vocabulary that is the stored score of every piece that can come out of a merge (only the
//! single characters at the end, which never result from a merge, differ).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use edgegemma::gguf::names::tokenizer as tk;
use edgegemma::gguf::{OwnedArray, OwnedValue};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::ConfigFile;
use crate::error::{Error, Result};
use crate::spm::{self, PieceType};

/// GGUF token types (llama.cpp `llama_token_type`).
pub const NORMAL: i32 = 1;
pub const UNKNOWN: i32 = 2;
pub const CONTROL: i32 = 3;
pub const USER_DEFINED: i32 = 4;
pub const UNUSED: i32 = 5;
pub const BYTE: i32 = 6;

const ADDED_SCORE: f32 = -1000.0;
const PAD_SCORE: f32 = -10000.0;

/// The token list as it goes into the GGUF.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub scores: Vec<f32>,
    pub types: Vec<i32>,
}

impl Vocab {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn find(&self, text: &str) -> Option<usize> {
        self.tokens.iter().position(|t| t == text)
    }
}

/// Tokenizer keys for the GGUF, and the vocabulary size they describe.
pub struct Tokenizer {
    pub vocab: Vocab,
    /// Human-readable origin for the plan ("tokenizer.json (BPE, 512 pieces)").
    pub source: String,
    pub metadata: Vec<(String, OwnedValue)>,
}

/// Reads the tokenizer files of `dir`. `vocab_size` is the embedding's row count;
/// `truncate` keeps only as many ids as the tokenizer defines (Gemma 3).
pub fn load(
    dir: &Path,
    config: &ConfigFile,
    vocab_size: usize,
    truncate: bool,
) -> Result<Tokenizer> {
    let spm_path = dir.join("tokenizer.model");
    let json_path = dir.join("tokenizer.json");
    let config_path = dir.join("tokenizer_config.json");
    let tok_json = if json_path.is_file() {
        Some(read_tokenizer_json(&json_path)?)
    } else {
        None
    };
    let tok_config = if config_path.is_file() {
        Some(read_json_object(&config_path)?)
    } else {
        None
    };

    let mut vocab = Vocab {
        tokens: (0..vocab_size).map(|i| format!("[PAD{i}]")).collect(),
        scores: vec![PAD_SCORE; vocab_size],
        types: vec![UNUSED; vocab_size],
    };
    // 1 + the largest id the tokenizer defines (below vocab_size).
    let mut defined = 0usize;
    let source;
    let use_json_added;
    if spm_path.is_file() {
        let bytes = std::fs::read(&spm_path).map_err(|e| Error::io(&spm_path, "cannot read", e))?;
        let pieces = spm::read_pieces(&spm_path, &bytes)?;
        source = format!("tokenizer.model (SentencePiece, {} pieces)", pieces.len());
        for (id, p) in pieces.into_iter().enumerate().take(vocab_size) {
            vocab.types[id] = match p.ty {
                PieceType::Unknown => UNKNOWN,
                PieceType::Control => CONTROL,
                PieceType::Unused => UNUSED,
                PieceType::Byte => BYTE,
                PieceType::Normal | PieceType::UserDefined => NORMAL,
            };
            vocab.tokens[id] = p.text;
            vocab.scores[id] = p.score;
            defined = defined.max(id + 1);
        }
        use_json_added = false;
    } else if let Some(tj) = &tok_json {
        if tj.model.ty.as_deref().is_some_and(|t| t != "BPE") {
            return Err(Error::at(
                &json_path,
                format!(
                    "tokenizer model type {:?} is not supported (Gemma tokenizers are BPE); add tokenizer.model",
                    tj.model.ty.as_deref().unwrap_or("")
                ),
            ));
        }
        source = format!("tokenizer.json (BPE, {} pieces)", tj.model.vocab.0.len());
        let special: std::collections::HashSet<u64> = tj
            .added_tokens
            .iter()
            .filter(|a| a.special)
            .map(|a| a.id)
            .collect();
        let byte_fallback = tj.model.byte_fallback.unwrap_or(false);
        let mut seen = vec![false; vocab_size];
        for (piece, id) in &tj.model.vocab.0 {
            let id = *id;
            let Some(i) = usize::try_from(id).ok().filter(|&i| i < vocab_size) else {
                continue;
            };
            if std::mem::replace(&mut seen[i], true) {
                return Err(Error::at(
                    &json_path,
                    format!("token id {id} appears twice"),
                ));
            }
            vocab.types[i] = if Some(piece.as_str()) == tj.model.unk_token.as_deref() {
                UNKNOWN
            } else if byte_fallback && is_byte_piece(piece) {
                BYTE
            } else if special.contains(&id) {
                CONTROL
            } else {
                NORMAL
            };
            vocab.scores[i] = 0.0;
            vocab.tokens[i] = piece.clone();
            defined = defined.max(i + 1);
        }
        use_json_added = true;
    } else {
        return Err(Error::at(
            dir,
            "no tokenizer: need tokenizer.model (SentencePiece) or tokenizer.json",
        ));
    }

    let added_json = dir.join("added_tokens.json");
    if added_json.is_file() {
        let map = read_json_object(&added_json)?;
        for (text, id) in &map {
            let id = id.as_u64().ok_or_else(|| {
                Error::at(&added_json, format!("id of {text:?} is not an integer"))
            })?;
            if let Some(i) = usize::try_from(id).ok().filter(|&i| i < vocab_size) {
                vocab.tokens[i] = text.clone();
                vocab.scores[i] = ADDED_SCORE;
                vocab.types[i] = USER_DEFINED;
                defined = defined.max(i + 1);
            }
        }
    }

    let decoder = tok_config
        .as_ref()
        .and_then(|c| c.get("added_tokens_decoder"))
        .filter(|v| !v.is_null());
    let added: Vec<AddedToken> = match decoder {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(id, v)| {
                let bad = || {
                    Error::at(
                        &config_path,
                        format!("added_tokens_decoder entry {id:?} is malformed"),
                    )
                };
                Ok(AddedToken {
                    id: id.parse().map_err(|_| bad())?,
                    content: v
                        .get("content")
                        .and_then(Value::as_str)
                        .ok_or_else(bad)?
                        .to_string(),
                    special: v.get("special").and_then(Value::as_bool).unwrap_or(false),
                })
            })
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(Error::at(
                &config_path,
                "added_tokens_decoder must be an object",
            ))
        }
        None if use_json_added => tok_json
            .as_ref()
            .map(|t| t.added_tokens.clone())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    for a in &added {
        let Some(i) = usize::try_from(a.id).ok().filter(|&i| i < vocab_size) else {
            continue;
        };
        if a.special || looks_special(&a.content) {
            vocab.types[i] = CONTROL;
            vocab.tokens[i] = a.content.clone();
        } else {
            vocab.types[i] = USER_DEFINED;
            vocab.tokens[i] = a.content.replace('\u{2581}', " ");
        }
        vocab.scores[i] = ADDED_SCORE;
        defined = defined.max(i + 1);
    }

    if !use_json_added {
        // SentencePiece scores are used as they are.
    } else if let Some(first) = vocab.types.iter().position(|&t| t == NORMAL) {
        for (i, (&t, s)) in vocab.types.iter().zip(vocab.scores.iter_mut()).enumerate() {
            if t == NORMAL {
                *s = -((i - first) as f32);
            }
        }
    }
    if defined == 0 {
        return Err(Error::at(
            dir,
            "the tokenizer defines no token below vocab_size",
        ));
    }
    if truncate && defined < vocab_size {
        vocab.tokens.truncate(defined);
        vocab.scores.truncate(defined);
        vocab.types.truncate(defined);
    }

    let mut metadata = vec![
        (tk::MODEL.to_string(), OwnedValue::from("llama")),
        (tk::PRE.to_string(), OwnedValue::from("default")),
        (
            tk::TOKENS.to_string(),
            OwnedValue::Array(OwnedArray::String(vocab.tokens.clone())),
        ),
        (
            tk::SCORES.to_string(),
            OwnedValue::from(vocab.scores.clone()),
        ),
        (
            tk::TOKEN_TYPE.to_string(),
            OwnedValue::from(vocab.types.clone()),
        ),
    ];
    let special = SpecialTokens::find(&vocab, tok_json.as_ref(), tok_config.as_ref(), config, dir)?;
    metadata.extend(special);
    // Newer checkpoints keep the template only in chat_template.jinja: read it even without
    // a tokenizer_config.json.
    let no_config = Map::new();
    metadata.extend(chat_templates(
        dir,
        &config_path,
        tok_config.as_ref().unwrap_or(&no_config),
    )?);
    Ok(Tokenizer {
        vocab,
        source,
        metadata,
    })
}

fn is_byte_piece(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() == 6
        && p.starts_with("<0x")
        && p.ends_with('>')
        && b[3..5].iter().all(|c| c.is_ascii_hexdigit())
}

/// llama.cpp's `does_token_look_special` (tokens some models forget to mark special).
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

struct SpecialTokens;

/// (token type as tokenizer_config names it, GGUF key).
const SPECIAL_KEYS: [(&str, &str); 7] = [
    ("bos", tk::BOS_ID),
    ("eos", tk::EOS_ID),
    ("unk", tk::UNK_ID),
    ("sep", tk::SEP_ID),
    ("pad", tk::PAD_ID),
    ("cls", tk::CLS_ID),
    ("mask", tk::MASK_ID),
];

impl SpecialTokens {
    /// Special token ids, `add_*_token` flags, `add_space_prefix` and the end-of-turn id.
    fn find(
        vocab: &Vocab,
        tok_json: Option<&TokenizerJson>,
        tok_config: Option<&Map<String, Value>>,
        config: &ConfigFile,
        dir: &Path,
    ) -> Result<Vec<(String, OwnedValue)>> {
        let n_vocab = vocab.len();
        let generation = dir.join("generation_config.json");
        let generation = if generation.is_file() {
            Some(read_json_object(&generation)?)
        } else {
            None
        };
        let content_of = |typ: &str| -> Option<String> {
            match tok_config?.get(&format!("{typ}_token"))? {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
                _ => None,
            }
        };
        let id_of_content = |content: &str| -> Option<usize> {
            match tok_json {
                Some(tj) => tj
                    .added_tokens
                    .iter()
                    .find(|a| a.content == content)
                    .and_then(|a| usize::try_from(a.id).ok()),
                None => vocab.find(content),
            }
        };
        let mut out = Vec::new();
        for (typ, key) in SPECIAL_KEYS {
            let key_id = format!("{typ}_token_id");
            let id = content_of(typ)
                .and_then(|c| id_of_content(&c))
                .or_else(|| config.token_id(&key_id).map(|x| x as usize))
                .or_else(|| {
                    generation
                        .as_ref()?
                        .get(&key_id)?
                        .as_u64()
                        .map(|x| x as usize)
                });
            if let Some(id) = id.filter(|&id| id < n_vocab) {
                out.push((key.to_string(), OwnedValue::U32(id as u32)));
            }
        }

        // add_bos / add_eos / add_sep: the post-processor template first, then the
        // tokenizer_config flags (llama.cpp's order).
        let mut add: HashMap<&str, bool> = HashMap::new();
        if let Some(pp) = tok_json.and_then(|t| t.post_processor.as_ref()) {
            let bos = content_of("bos");
            let eos = content_of("eos");
            let sep = content_of("sep");
            let cls = content_of("cls");
            let processors: Vec<&Value> = match pp.get("processors").and_then(Value::as_array) {
                Some(list) => list.iter().collect(),
                None => vec![pp],
            };
            for p in processors {
                if p.get("type").and_then(Value::as_str) == Some("TemplateProcessing") {
                    template_flags(p, [&bos, &eos, &sep, &cls], &mut add);
                }
            }
        }
        for typ in ["bos", "eos", "sep"] {
            if let Some(v) = tok_config
                .and_then(|c| c.get(&format!("add_{typ}_token")))
                .and_then(Value::as_bool)
            {
                add.entry(typ).or_insert(v);
            }
        }
        for (typ, key) in [
            ("bos", tk::ADD_BOS),
            ("sep", tk::ADD_SEP),
            ("eos", tk::ADD_EOS),
        ] {
            if let Some(&v) = add.get(typ) {
                out.push((key.to_string(), OwnedValue::Bool(v)));
            }
        }
        // Gemma never prefixes a space (llama.cpp's Gemma converters say so explicitly).
        out.push((tk::ADD_SPACE_PREFIX.to_string(), OwnedValue::Bool(false)));
        // llama.cpp finds <end_of_turn> by text at load time; writing it saves every reader
        // that search (llama.cpp's Gemma 1 converter writes it too).
        if let Some(eot) = vocab.find("<end_of_turn>") {
            out.push((tk::EOT_ID.to_string(), OwnedValue::U32(eot as u32)));
        }
        Ok(out)
    }
}

/// llama.cpp's reading of a `TemplateProcessing` post-processor: a leading special token
/// that is BOS (or CLS) means add_bos, a trailing one that is EOS means add_eos, and the
/// separator between `A` and `B` of the pair template decides add_sep.
fn template_flags(
    p: &Value,
    [bos, eos, sep, cls]: [&Option<String>; 4],
    add: &mut HashMap<&str, bool>,
) {
    let special = |v: &Value| -> Option<String> {
        v.get("SpecialToken")?
            .get("id")?
            .as_str()
            .map(str::to_string)
    };
    let sequence = |v: &Value| -> Option<String> {
        v.get("Sequence")?.get("id")?.as_str().map(str::to_string)
    };
    let single: Vec<&Value> = p
        .get("single")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut first = None;
    let mut last = None;
    if single.len() > 1 {
        first = special(single[0]);
        if let Some(f) = &first {
            add.insert("bos", Some(f) == bos.as_ref() || Some(f) == cls.as_ref());
        }
        last = special(single[single.len() - 1]);
        if let Some(l) = &last {
            add.insert("eos", Some(l) == eos.as_ref());
        }
    }
    let pair: Vec<&Value> = p
        .get("pair")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if pair.is_empty() {
        return;
    }
    let start = usize::from(first.is_some() && special(pair[0]) == first);
    let stop = if last.is_some() && special(pair[pair.len() - 1]) == last {
        pair.len() - 1
    } else {
        pair.len()
    };
    if start >= stop {
        return;
    }
    let mid = &pair[start..stop];
    if sequence(mid[0]).as_deref() != Some("A")
        || sequence(mid[mid.len() - 1]).as_deref() != Some("B")
    {
        return;
    }
    let between = &mid[1..mid.len() - 1];
    if between.is_empty() {
        return;
    }
    let is_sep = |v: &Value| {
        special(v).is_some_and(|s| Some(&s) == sep.as_ref() || Some(&s) == eos.as_ref())
    };
    let mut add_sep = is_sep(between[0]) && last.is_none();
    if between.len() == 2 && is_sep(between[1]) {
        add_sep = true;
    }
    add.insert("sep", add_sep);
}

/// `tokenizer.chat_template` (and named templates) from tokenizer_config.json, else from
/// `chat_template.jinja` / `chat_template.json`.
fn chat_templates(
    dir: &Path,
    config_path: &Path,
    c: &Map<String, Value>,
) -> Result<Vec<(String, OwnedValue)>> {
    let mut template = c.get("chat_template").filter(|v| !v.is_null()).cloned();
    if template.is_none() {
        let jinja = dir.join("chat_template.jinja");
        let json = dir.join("chat_template.json");
        if jinja.is_file() {
            let text =
                std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, "cannot read", e))?;
            template = Some(Value::String(text));
        } else if json.is_file() {
            template = read_json_object(&json)?.get("chat_template").cloned();
        }
    }
    let mut out = Vec::new();
    match template {
        None => {}
        Some(Value::String(t)) => out.push((tk::CHAT_TEMPLATE.to_string(), OwnedValue::String(t))),
        Some(Value::Array(list)) => {
            let mut names = Vec::new();
            for entry in &list {
                let (Some(name), Some(t)) = (
                    entry.get("name").and_then(Value::as_str),
                    entry.get("template").and_then(Value::as_str),
                ) else {
                    return Err(Error::at(
                        config_path,
                        "chat_template list entries need \"name\" and \"template\"",
                    ));
                };
                if name == "default" {
                    out.push((tk::CHAT_TEMPLATE.to_string(), OwnedValue::from(t)));
                } else {
                    out.push((tk::named_chat_template(name), OwnedValue::from(t)));
                    names.push(name.to_string());
                }
            }
            if !names.is_empty() {
                out.push((
                    tk::CHAT_TEMPLATES.to_string(),
                    OwnedValue::Array(OwnedArray::String(names)),
                ));
            }
        }
        Some(_) => {
            return Err(Error::at(
                config_path,
                "chat_template must be a string or a list",
            ))
        }
    }
    Ok(out)
}

fn read_json_object(path: &Path) -> Result<Map<String, Value>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read", e))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::at(path, "expected a JSON object")),
        Err(e) => Err(Error::at(path, format!("not valid JSON: {e}"))),
    }
}

fn read_tokenizer_json(path: &Path) -> Result<TokenizerJson> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read", e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::at(path, format!("cannot parse: {e}")))
}

/// The parts of `tokenizer.json` the conversion reads (merges are skipped unparsed).
#[derive(Deserialize)]
struct TokenizerJson {
    model: TokenizerModel,
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    #[serde(default)]
    post_processor: Option<Value>,
}

#[derive(Deserialize)]
struct TokenizerModel {
    #[serde(rename = "type")]
    ty: Option<String>,
    vocab: PieceIds,
    #[serde(default)]
    unk_token: Option<String>,
    #[serde(default)]
    byte_fallback: Option<bool>,
}

#[derive(Clone, Deserialize)]
struct AddedToken {
    id: u64,
    content: String,
    #[serde(default)]
    special: bool,
}

/// A BPE vocabulary `{piece: id}` read straight into a list.
struct PieceIds(Vec<(String, u64)>);

impl<'de> Deserialize<'de> for PieceIds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<PieceIds, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PieceIds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from piece to id (a BPE vocabulary)")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<PieceIds, A::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(0));
                while let Some(entry) = m.next_entry::<String, u64>()? {
                    v.push(entry);
                }
                Ok(PieceIds(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<PieceIds, A::Error> {
                Err(serde::de::Error::custom(
                    "the vocabulary is a list (a Unigram model); Gemma tokenizers are BPE",
                ))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_looking_tokens() {
        assert!(looks_special("<unused12>"));
        assert!(looks_special("<|fim_prefix|>"));
        assert!(looks_special("<mask>"));
        assert!(!looks_special("<h1>"));
        assert!(!looks_special("<start_of_image>"));
        assert!(is_byte_piece("<0x0A>"));
        assert!(!is_byte_piece("<0x0G>"));
        assert!(!is_byte_piece("<0x0A0>"));
    }

    fn template_keys(dir: &Path, config: serde_json::Value) -> Vec<(String, String)> {
        let c = config.as_object().cloned().unwrap_or_default();
        chat_templates(dir, &dir.join("tokenizer_config.json"), &c)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, format!("{v:?}")))
            .collect()
    }

    #[test]
    fn chat_template_from_config_then_jinja_file() {
        let dir = std::env::temp_dir().join(format!("eg-chat-template-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jinja = dir.join("chat_template.jinja");
        std::fs::write(&jinja, "{{ from_file }}").unwrap();
        // tokenizer_config.json's template wins over the file.
        let k = template_keys(
            &dir,
            serde_json::json!({"chat_template": "{{ from_config }}"}),
        );
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].0, "tokenizer.chat_template");
        assert!(k[0].1.contains("from_config"), "{k:?}");
        // Without it (or with null), the file's.
        for cfg in [
            serde_json::json!({}),
            serde_json::json!({"chat_template": null}),
        ] {
            let k = template_keys(&dir, cfg);
            assert_eq!(k.len(), 1);
            assert!(k[0].1.contains("from_file"), "{k:?}");
        }
        // Named templates: "default" is the main one, the others get their own keys.
        let k = template_keys(
            &dir,
            serde_json::json!({"chat_template": [
                {"name": "default", "template": "{{ d }}"},
                {"name": "tool_use", "template": "{{ t }}"}
            ]}),
        );
        let names: Vec<&str> = k.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "tokenizer.chat_template",
                "tokenizer.chat_template.tool_use",
                "tokenizer.chat_templates"
            ]
        );
        std::fs::remove_file(&jinja).unwrap();
        assert!(template_keys(&dir, serde_json::json!({})).is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }
}

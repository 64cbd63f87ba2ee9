//! Entry functions for the runtime's parsers: GGUF open and model load, the tokenizer,
//! state files, chat templates. None of them may panic, hang or allocate beyond what the
//! input implies, whatever the bytes; results are only checked for consistency where the
//! library promises something (a decoded token renders as its piece).
//!
//! Inputs the library reads by path are written to a scratch file of this process and
//! thread (under `TMPDIR`; the fuzz runs use `/dev/shm`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use edgegemma::chat_template::{ChatTemplate, Message};
use edgegemma::gguf::{GgufFile, Value};
use edgegemma::kernels::formats::dequantize_row;
use edgegemma::kv::CacheType;
use edgegemma::model::{self, LanguageModel, RunConfig};
use edgegemma::tokenizer::{StreamDecoder, Tokenizer};

/// Largest GGUF input: a tiny model converted to q8_0 is 160-440 KiB, and the header checks
/// scale with the file, so larger inputs only make each run slower.
pub const MAX_GGUF_BYTES: usize = 1 << 20;

/// Largest state file input (the tiny models' states are a few KiB).
pub const MAX_STATE_BYTES: usize = 1 << 20;

/// Largest chat template input (real templates are a few KiB).
pub const MAX_TEMPLATE_BYTES: usize = 64 << 10;

/// Run settings for fuzzed models: small, so a model whose tensors are all present costs
/// little beyond its weights (the context caps the KV cache).
pub fn small_run() -> RunConfig {
    RunConfig {
        n_ctx: 8,
        n_batch: 4,
        cache_type: CacheType::F32,
    }
}

fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "edgegemma-fuzz-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ))
}

/// A scratch path of this process and thread, its directory created.
pub fn scratch_path(name: &str) -> PathBuf {
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir).expect("create the fuzz scratch directory");
    dir.join(name)
}

/// Removes this thread's scratch files (for the replay tests; a mapped model stays valid).
pub fn remove_scratch() {
    let _ = std::fs::remove_dir_all(scratch_dir());
}

fn write_scratch(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch_path(name);
    std::fs::write(&path, data).expect("write the fuzz scratch file");
    path
}

/// Everything `inspect` and `run` read from a GGUF: every key and value (arrays in full),
/// every tensor's first row dequantized, then the model built and run for two tokens, its
/// state saved and restored.
pub fn gguf_open(data: &[u8]) {
    if data.len() > MAX_GGUF_BYTES {
        return;
    }
    let path = write_scratch("model.gguf", data);
    let Ok(file) = GgufFile::open(&path) else {
        return;
    };
    walk_metadata(&file);
    for t in file.tensors() {
        black_box((t.name(), t.dims(), t.n_elements()));
        if let Some(row) = t.row(0) {
            let mut out = vec![0.0f32; t.row_len()];
            let _ = black_box(dequantize_row(t.ggml_type(), row, &mut out));
        }
    }
    if let Ok(tok) = Tokenizer::from_gguf_file(&file) {
        let _ = ChatTemplate::from_gguf(&file, &tok)
            .and_then(|t| t.render(&[Message::new("user", "hi")], true));
    }
    drop(file);
    run_model(&path);
}

fn walk_metadata(file: &GgufFile) {
    for (key, value) in file.metadata() {
        black_box((key, value.type_description()));
        if let Value::Array(a) = value {
            for v in a.iter() {
                black_box(v);
            }
            black_box(a.to_i64_vec());
        }
    }
    black_box(file.architecture().ok());
}

fn run_model(path: &Path) {
    let Ok((mut m, _file)) = model::load(path, &small_run()) else {
        return;
    };
    let n_vocab = m.n_vocab();
    if n_vocab == 0 {
        return;
    }
    let last = u32::try_from(n_vocab - 1).unwrap_or(u32::MAX);
    if m.eval(&[0, last]).is_err() {
        return;
    }
    let mut state = Vec::new();
    if m.save_state(&mut state).is_ok() {
        let _ = m.load_state(&mut state.as_slice());
        let _ = m.eval(&[last]);
    }
}

/// Input: a little-endian u16 `n`, then `n` bytes of text, then a GGUF file whose
/// `tokenizer.ggml.*` keys build the vocabulary. The text is encoded with and without
/// special-token parsing and decoded back; its bytes are also read as token ids (in range
/// and out of it) and decoded, whole and as a stream.
pub fn tokenizer(data: &[u8]) {
    if data.len() > MAX_GGUF_BYTES || data.len() < 2 {
        return;
    }
    let n = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
    let (text, gguf) = data[2..].split_at(n);
    let path = write_scratch("vocab.gguf", gguf);
    let Ok(file) = GgufFile::open(&path) else {
        return;
    };
    let Ok(tok) = Tokenizer::from_gguf_file(&file) else {
        return;
    };
    exercise_tokenizer(&tok, text);
}

fn exercise_tokenizer(tok: &Tokenizer, text: &[u8]) {
    let s = String::from_utf8_lossy(text);
    for (add_bos, parse_special) in [(true, true), (false, false)] {
        let ids = tok.encode(&s, add_bos, parse_special);
        for &id in &ids {
            assert!(
                (id as usize) < tok.len(),
                "encode produced id {id} for a vocabulary of {}",
                tok.len()
            );
        }
        for render_special in [false, true] {
            let _ = black_box(tok.decode(&ids, render_special));
        }
    }
    // Arbitrary ids: mostly inside the vocabulary, some past it.
    let n = tok.len() as u64;
    let ids: Vec<u32> = text
        .chunks(2)
        .map(|c| {
            let x = u64::from(c[0]) | u64::from(*c.get(1).unwrap_or(&0)) << 8;
            if x & 0x8000 != 0 {
                x as u32
            } else {
                (x % n) as u32
            }
        })
        .collect();
    let whole = tok.decode(&ids, true);
    let mut stream = StreamDecoder::new(true);
    let mut streamed = String::new();
    let mut failed = false;
    for &id in &ids {
        black_box((
            tok.token_to_piece(id, true),
            tok.token_text(id),
            tok.score(id),
            tok.is_eog(id),
        ));
        match stream.push(tok, id) {
            Ok(piece) => streamed.push_str(piece),
            Err(_) => failed = true,
        }
    }
    streamed.push_str(stream.finish());
    if let (Ok(whole), false) = (&whole, failed) {
        assert_eq!(
            whole, &streamed,
            "streamed decoding differs from whole decoding"
        );
    }
}

/// A tiny model per architecture family, built once per process from the bytes the caller
/// hands over (the state target's first input byte picks one).
struct StateModels {
    models: Vec<Mutex<Box<dyn LanguageModel>>>,
}

static STATE_MODELS: OnceLock<StateModels> = OnceLock::new();

/// The GGUFs the state target restores states into: the fuzz corpus's tiny Gemma 3 and
/// RecurrentGemma (q4_0, the smallest).
pub fn state_model_files() -> [(&'static str, &'static [u8]); 2] {
    [
        (
            "gemma3",
            include_bytes!("../models/gemma3-tiny-q4_0.gguf").as_slice(),
        ),
        (
            "recurrentgemma",
            include_bytes!("../models/recurrentgemma-tiny-q4_0.gguf").as_slice(),
        ),
    ]
}

fn state_models() -> &'static StateModels {
    STATE_MODELS.get_or_init(|| {
        let models = state_model_files()
            .iter()
            .map(|(name, bytes)| {
                let path = write_scratch(&format!("{name}.gguf"), bytes);
                let (m, _) = model::load(&path, &small_run())
                    .unwrap_or_else(|e| panic!("the state target's model {name}: {e}"));
                Mutex::new(m)
            })
            .collect();
        StateModels { models }
    })
}

/// Input: one byte choosing the model (even: Gemma 3, odd: RecurrentGemma), then a state
/// file for `load_state`. A state that loads must leave the model able to run a token or
/// refuse it cleanly.
pub fn state_load(data: &[u8]) {
    if data.len() > MAX_STATE_BYTES || data.is_empty() {
        return;
    }
    let models = &state_models().models;
    let mut m = models[usize::from(data[0]) % models.len()]
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    m.reset();
    if m.load_state(&mut &data[1..]).is_ok() {
        let _ = black_box(m.eval(&[2]));
        let mut again = Vec::new();
        let _ = m.save_state(&mut again);
    }
    m.reset();
}

/// Input: the template source, a NUL byte, then the conversation as JSON (an array of
/// `{"role", "content"}`; anything else becomes one user message of those bytes). Renders
/// with and without the generation prompt and derives what `chat` and the server derive
/// from a template (continuation, turn end, prefixes).
pub fn chat_template(data: &[u8]) {
    if data.len() > MAX_TEMPLATE_BYTES {
        return;
    }
    let (src, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(src) = std::str::from_utf8(src) else {
        return;
    };
    let messages = parse_messages(rest);
    let specials = [
        ("bos_token", "<bos>"),
        ("eos_token", "<eos>"),
        ("unk_token", "<unk>"),
        ("pad_token", "<pad>"),
    ];
    let templates = [
        ChatTemplate::from_jinja(src, &specials).ok(),
        Some(ChatTemplate::gemma_builtin("<bos>")),
    ];
    for t in templates.iter().flatten() {
        for add_generation_prompt in [false, true] {
            let _ = black_box(t.render(&messages, add_generation_prompt));
        }
        if let Some(last) = messages.last() {
            let _ = black_box(t.continuation(last));
        }
        let _ = black_box(t.model_turn_end());
        black_box(t.message_prefixes(&messages));
    }
}

fn parse_messages(bytes: &[u8]) -> Vec<Message> {
    let parsed = serde_json::from_slice::<serde_json::Value>(bytes).ok();
    if let Some(serde_json::Value::Array(items)) = parsed {
        let msgs: Vec<Message> = items
            .iter()
            .map(|m| Message {
                role: m
                    .get("role")
                    .and_then(|r| r.as_str())
                    .unwrap_or("user")
                    .to_string(),
                content: m.get("content").cloned().unwrap_or(serde_json::Value::Null),
            })
            .collect();
        if !msgs.is_empty() {
            return msgs;
        }
    }
    vec![Message::new("user", &String::from_utf8_lossy(bytes))]
}

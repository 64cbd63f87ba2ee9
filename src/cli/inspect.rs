//! `edgegemma inspect FILE.gguf [--json]`: architecture, hyperparameters, tokenizer
//! summary, every tensor, totals by type. Arrays are summarised, never dumped.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use edgegemma::gguf::names::{self, tokenizer as tk};
use edgegemma::gguf::{ArrayView, GgmlType, GgufFile, Value, ValueType};
use serde_json::{json, Map, Value as Json};

use super::{write_stdout, CliResult};

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The GGUF file
    pub file: PathBuf,
    /// Print JSON (for scripts) instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &InspectArgs) -> CliResult {
    let file = GgufFile::open(&args.file)?;
    let report = Report::build(&file);
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&report.to_json())?;
        s.push('\n');
        s
    } else {
        report.to_text()
    };
    write_stdout(&text)
}

/// Array elements shown in summaries.
const ARRAY_PREVIEW: usize = 4;
/// Longest string shown whole in text output.
const TEXT_STR_MAX: usize = 60;
/// Longest string shown whole in JSON output.
const JSON_STR_MAX: usize = 256;

const TOKENIZER_PREFIX: &str = tk::PREFIX;
const TOKENS_KEY: &str = tk::TOKENS;
const TOKEN_TYPE_KEY: &str = tk::TOKEN_TYPE;
const SCORES_KEY: &str = tk::SCORES;
const MERGES_KEY: &str = tk::MERGES;
const CHAT_TEMPLATE_KEY: &str = tk::CHAT_TEMPLATE;

struct Report<'f> {
    file: &'f GgufFile,
    architecture: Option<&'f str>,
    general: Vec<(&'f str, Value<'f>)>,
    hyperparameters: Vec<(&'f str, Value<'f>)>,
    tokenizer_keys: Vec<(&'f str, Value<'f>)>,
    other: Vec<(&'f str, Value<'f>)>,
    tokenizer: Option<TokenizerSummary<'f>>,
    totals: Vec<TypeTotal>,
    /// Hyperparameters that contradict the tensors or sane bounds (why `run` would refuse
    /// the file); the file is still listed in full.
    problems: Vec<String>,
}

struct TokenizerSummary<'f> {
    model: Option<&'f str>,
    pre: Option<&'f str>,
    vocab_size: Option<usize>,
    /// (name such as "bos", id, token text if the id is in the vocabulary)
    special: Vec<(String, i128, Option<&'f str>)>,
    /// (type name, count), in type id order
    type_counts: Vec<(String, usize)>,
    scores: Option<usize>,
    merges: Option<usize>,
    chat_template_bytes: Option<usize>,
    flags: Vec<(&'f str, bool)>,
}

struct TypeTotal {
    ty: Option<GgmlType>,
    tensors: usize,
    elements: u64,
    bytes: u64,
}

impl TypeTotal {
    fn bits_per_weight(&self) -> f64 {
        if self.elements == 0 {
            0.0
        } else {
            self.bytes as f64 * 8.0 / self.elements as f64
        }
    }

    fn type_name(&self) -> &'static str {
        self.ty.map_or("total", GgmlType::name)
    }
}

impl<'f> Report<'f> {
    fn build(file: &'f GgufFile) -> Report<'f> {
        let architecture = match file.get(names::KEY_ARCHITECTURE) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let arch_prefix = architecture.map(|a| format!("{a}."));
        let (mut general, mut hyperparameters, mut tokenizer_keys, mut other) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (key, value) in file.metadata() {
            if key.starts_with(names::general::PREFIX) {
                general.push((key, value));
            } else if arch_prefix.as_deref().is_some_and(|p| key.starts_with(p)) {
                hyperparameters.push((key, value));
            } else if key.starts_with(TOKENIZER_PREFIX) {
                tokenizer_keys.push((key, value));
            } else {
                other.push((key, value));
            }
        }
        let tokenizer = (!tokenizer_keys.is_empty()).then(|| summarize_tokenizer(file));

        let mut by_type: BTreeMap<GgmlType, TypeTotal> = BTreeMap::new();
        for t in file.tensor_infos() {
            let e = by_type.entry(t.ggml_type()).or_insert(TypeTotal {
                ty: Some(t.ggml_type()),
                tensors: 0,
                elements: 0,
                bytes: 0,
            });
            e.tensors += 1;
            e.elements += t.n_elements();
            e.bytes += t.byte_size();
        }
        let mut totals: Vec<TypeTotal> = by_type.into_values().collect();
        totals.push(TypeTotal {
            ty: None,
            tensors: totals.iter().map(|t| t.tensors).sum(),
            elements: totals.iter().map(|t| t.elements).sum(),
            bytes: totals.iter().map(|t| t.bytes).sum(),
        });

        Report {
            file,
            architecture,
            general,
            hyperparameters,
            tokenizer_keys,
            other,
            tokenizer,
            totals,
            problems: edgegemma::model::hparams_check::problems(file),
        }
    }

    fn to_text(&self) -> String {
        let f = self.file;
        let mut s = String::new();
        let size = f.file_size();
        let _ = writeln!(s, "file:         {}", f.path().display());
        let _ = writeln!(s, "size:         {size} bytes ({})", human_bytes(size));
        let _ = writeln!(
            s,
            "gguf:         version {}, alignment {}, data at offset {}, {} keys, {} tensors",
            f.version(),
            f.alignment(),
            f.data_offset(),
            f.metadata_len(),
            f.tensor_count()
        );
        let _ = writeln!(
            s,
            "architecture: {}",
            self.architecture
                .unwrap_or("(none: general.architecture missing)")
        );
        if !self.problems.is_empty() {
            let _ = writeln!(
                s,
                "\nproblems ({}; edgegemma will not load this file):",
                self.problems.len()
            );
            for p in &self.problems {
                let _ = writeln!(s, "  {p}");
            }
        }

        section_text(&mut s, "general", &self.general);
        let hp_title = match self.architecture {
            Some(a) => format!("hyperparameters ({a}.*)"),
            None => "hyperparameters".to_string(),
        };
        section_text(&mut s, &hp_title, &self.hyperparameters);

        if let Some(t) = &self.tokenizer {
            let _ = writeln!(s, "\ntokenizer:");
            let _ = writeln!(
                s,
                "  model:          {} (pre: {})",
                t.model.unwrap_or("(unset)"),
                t.pre.unwrap_or("(unset)")
            );
            let _ = writeln!(
                s,
                "  vocab size:     {}",
                t.vocab_size
                    .map_or("(no tokenizer.ggml.tokens)".to_string(), |n| n.to_string())
            );
            for (name, id, text) in &t.special {
                let text = text.map_or("(not in vocabulary)".to_string(), |x| short_str(x, 40));
                let _ = writeln!(s, "  {:<15} {id} {text}", format!("{name}:"));
            }
            if !t.type_counts.is_empty() {
                let counts: Vec<String> = t
                    .type_counts
                    .iter()
                    .map(|(name, n)| format!("{name} {n}"))
                    .collect();
                let _ = writeln!(s, "  token types:    {}", counts.join(", "));
            }
            let opt_len = |n: Option<usize>| n.map_or("absent".to_string(), |n| n.to_string());
            let _ = writeln!(s, "  scores:         {}", opt_len(t.scores));
            let _ = writeln!(s, "  merges:         {}", opt_len(t.merges));
            let _ = writeln!(
                s,
                "  chat template:  {}",
                t.chat_template_bytes
                    .map_or("absent".to_string(), |n| format!("present ({n} bytes)"))
            );
            if !t.flags.is_empty() {
                let flags: Vec<String> = t
                    .flags
                    .iter()
                    .map(|(k, v)| format!("{}={v}", k.trim_start_matches(tk::GGML_PREFIX)))
                    .collect();
                let _ = writeln!(s, "  flags:          {}", flags.join(" "));
            }
        }
        section_text(&mut s, "tokenizer keys", &self.tokenizer_keys);
        section_text(&mut s, "other metadata", &self.other);

        let _ = writeln!(s, "\ntensors ({}):", f.tensor_count());
        let name_w = f
            .tensor_infos()
            .iter()
            .map(|t| t.name().len())
            .max()
            .unwrap_or(4)
            .max(4);
        let shapes: Vec<String> = f
            .tensor_infos()
            .iter()
            .map(|t| format!("{:?}", t.dims()))
            .collect();
        let shape_w = shapes.iter().map(String::len).max().unwrap_or(5).max(5);
        let _ = writeln!(
            s,
            "  {:>4}  {:<name_w$}  {:<7}  {:<shape_w$}  {:>12}  {:>12}",
            "#", "name", "type", "shape", "bytes", "offset"
        );
        for (i, (t, shape)) in f.tensor_infos().iter().zip(&shapes).enumerate() {
            let _ = writeln!(
                s,
                "  {i:>4}  {:<name_w$}  {:<7}  {shape:<shape_w$}  {:>12}  {:>12}",
                t.name(),
                t.ggml_type().name(),
                t.byte_size(),
                t.file_offset()
            );
        }

        let _ = writeln!(s, "\ntotals by type:");
        let _ = writeln!(
            s,
            "  {:<7}  {:>7}  {:>13}  {:>13}  {:>11}",
            "type", "tensors", "elements", "bytes", "bits/weight"
        );
        for t in &self.totals {
            let _ = writeln!(
                s,
                "  {:<7}  {:>7}  {:>13}  {:>13}  {:>11.3}",
                t.type_name(),
                t.tensors,
                t.elements,
                t.bytes,
                t.bits_per_weight()
            );
        }
        s
    }

    fn to_json(&self) -> Json {
        let f = self.file;
        let kv = |items: &[(&str, Value<'_>)]| -> Json {
            Json::Object(
                items
                    .iter()
                    .map(|(k, v)| (k.to_string(), value_json(v)))
                    .collect::<Map<_, _>>(),
            )
        };
        let tokenizer = self.tokenizer.as_ref().map(|t| {
            let special: Map<String, Json> = t
                .special
                .iter()
                .map(|(name, id, text)| (name.clone(), json!({ "id": id, "text": text })))
                .collect();
            let counts: Map<String, Json> = t
                .type_counts
                .iter()
                .map(|(name, n)| (name.clone(), json!(n)))
                .collect();
            let flags: Map<String, Json> = t
                .flags
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            json!({
                "model": t.model,
                "pre": t.pre,
                "vocab_size": t.vocab_size,
                "special_tokens": special,
                "token_type_counts": counts,
                "scores": t.scores,
                "merges": t.merges,
                "chat_template_bytes": t.chat_template_bytes,
                "flags": flags,
                "keys": kv(&self.tokenizer_keys),
            })
        });
        let tensors: Vec<Json> = f
            .tensor_infos()
            .iter()
            .map(|t| {
                json!({
                    "name": t.name(),
                    "type": t.ggml_type().name(),
                    "shape": t.dims(),
                    "elements": t.n_elements(),
                    "bytes": t.byte_size(),
                    "offset": t.file_offset(),
                })
            })
            .collect();
        let total_json = |t: &TypeTotal| {
            json!({
                "type": t.type_name(),
                "tensors": t.tensors,
                "elements": t.elements,
                "bytes": t.bytes,
                "bits_per_weight": t.bits_per_weight(),
            })
        };
        let (by_type, total) = self.totals.split_at(self.totals.len() - 1);
        json!({
            "file": f.path().display().to_string(),
            "file_size": f.file_size(),
            "version": f.version(),
            "alignment": f.alignment(),
            "data_offset": f.data_offset(),
            "metadata_count": f.metadata_len(),
            "tensor_count": f.tensor_count(),
            "architecture": self.architecture,
            "problems": self.problems,
            "general": kv(&self.general),
            "hyperparameters": kv(&self.hyperparameters),
            "tokenizer": tokenizer,
            "other_metadata": kv(&self.other),
            "tensors": tensors,
            "totals_by_type": by_type.iter().map(total_json).collect::<Vec<_>>(),
            "total": total.first().map(total_json),
        })
    }
}

fn summarize_tokenizer(file: &GgufFile) -> TokenizerSummary<'_> {
    let str_key = |k: &str| match file.get(k) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let array = |k: &str| match file.get(k) {
        Some(Value::Array(a)) => Some(a),
        _ => None,
    };
    let tokens = array(TOKENS_KEY).filter(|a| a.elem_type() == ValueType::String);

    let mut special: Vec<(String, i128, Option<&str>)> = Vec::new();
    let mut flags = Vec::new();
    for (key, value) in file.metadata() {
        let Some(rest) = key.strip_prefix(tk::GGML_PREFIX) else {
            continue;
        };
        if let Some(name) = rest.strip_suffix("_token_id") {
            if let Some(id) = value.as_i128() {
                special.push((name.to_string(), id, None));
            }
        } else if let Value::Bool(b) = value {
            flags.push((key, b));
        }
    }
    if let Some(tokens) = tokens {
        // One pass over the vocabulary for all the ids wanted.
        let wanted: HashMap<usize, Vec<usize>> =
            special
                .iter()
                .enumerate()
                .fold(HashMap::new(), |mut m, (i, (_, id, _))| {
                    if let Ok(id) = usize::try_from(*id) {
                        m.entry(id).or_insert_with(Vec::new).push(i);
                    }
                    m
                });
        if let Some(&max) = wanted.keys().max() {
            if let Some(strings) = tokens.strings() {
                for (id, text) in strings.enumerate().take(max + 1) {
                    for &i in wanted.get(&id).into_iter().flatten() {
                        special[i].2 = Some(text);
                    }
                }
            }
        }
    }

    TokenizerSummary {
        model: str_key(tk::MODEL),
        pre: str_key(tk::PRE),
        vocab_size: tokens.map(|a| a.len()),
        special,
        type_counts: array(TOKEN_TYPE_KEY)
            .map(count_token_types)
            .unwrap_or_default(),
        scores: array(SCORES_KEY).map(|a| a.len()),
        merges: array(MERGES_KEY).map(|a| a.len()),
        chat_template_bytes: str_key(CHAT_TEMPLATE_KEY).map(str::len),
        flags,
    }
}

/// Counts by llama.cpp token type (1 normal, 2 unknown, 3 control, 4 user-defined,
/// 5 unused, 6 byte), in type order.
fn count_token_types(types: ArrayView<'_>) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    let mut known = [0usize; 7];
    for t in types.to_i64_vec().unwrap_or_default() {
        match usize::try_from(t) {
            Ok(i) if i < known.len() => known[i] += 1,
            _ => *counts.entry(t).or_default() += 1,
        }
    }
    for (t, &n) in known.iter().enumerate() {
        if n > 0 {
            counts.insert(t as i64, n);
        }
    }
    counts
        .into_iter()
        .map(|(t, n)| {
            let name = match t {
                1 => "normal".to_string(),
                2 => "unknown".to_string(),
                3 => "control".to_string(),
                4 => "user-defined".to_string(),
                5 => "unused".to_string(),
                6 => "byte".to_string(),
                other => format!("type {other}"),
            };
            (name, n)
        })
        .collect()
}

fn section_text(s: &mut String, title: &str, items: &[(&str, Value<'_>)]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n{title}:");
    let w = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in items {
        let _ = writeln!(s, "  {k:<w$} = {}", value_text(v));
    }
}

fn value_text(v: &Value<'_>) -> String {
    match v {
        Value::String(x) => short_str(x, TEXT_STR_MAX),
        Value::Array(a) => {
            let preview: Vec<String> = a
                .iter()
                .take(ARRAY_PREVIEW)
                .map(|e| value_text(&e))
                .collect();
            let more = if a.len() > ARRAY_PREVIEW { ", ..." } else { "" };
            format!(
                "{}[{}] [{}{more}]",
                a.elem_type(),
                a.len(),
                preview.join(", ")
            )
        }
        scalar => scalar_text(scalar),
    }
}

fn scalar_text(v: &Value<'_>) -> String {
    match *v {
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F32(x) => float_text(x.into(), x.to_string(), format!("{x:e}")),
        Value::F64(x) => float_text(x, x.to_string(), format!("{x:e}")),
        Value::Bool(x) => x.to_string(),
        Value::String(x) => short_str(x, TEXT_STR_MAX),
        Value::Array(a) => format!("{}[{}]", a.elem_type(), a.len()),
    }
}

/// Plain decimals for ordinary magnitudes, exponent form for tiny or huge ones
/// (`1e-6`, not `0.000001`).
fn float_text(x: f64, plain: String, exp: String) -> String {
    if x == 0.0 || (1e-4..1e7).contains(&x.abs()) {
        plain
    } else {
        exp
    }
}

/// Debug-quoted (no raw control characters), cut after `max` bytes.
fn short_str(x: &str, max: usize) -> String {
    if x.len() <= max {
        format!("{x:?}")
    } else {
        format!("{:?}... ({} bytes)", cut(x, max), x.len())
    }
}

fn cut(x: &str, max: usize) -> &str {
    let mut end = max.min(x.len());
    while !x.is_char_boundary(end) {
        end -= 1;
    }
    &x[..end]
}

fn value_json(v: &Value<'_>) -> Json {
    match v {
        Value::Array(a) => json!({
            "type": "array",
            "elem_type": a.elem_type().name(),
            "len": a.len(),
            "first": a.iter().take(ARRAY_PREVIEW).map(|e| scalar_json(&e)).collect::<Vec<_>>(),
        }),
        Value::String(x) if x.len() > JSON_STR_MAX => json!({
            "type": "str",
            "value": cut(x, JSON_STR_MAX),
            "bytes": x.len(),
            "truncated": true,
        }),
        scalar => json!({ "type": scalar.value_type().name(), "value": scalar_json(scalar) }),
    }
}

fn scalar_json(v: &Value<'_>) -> Json {
    match *v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        // Via the shortest decimal that round-trips the f32 (1e-6, not 9.99999997e-7).
        Value::F32(x) => json!(x.to_string().parse::<f64>().unwrap_or(f64::NAN)),
        Value::F64(x) => json!(x),
        Value::Bool(x) => json!(x),
        Value::String(x) => json!(cut(x, JSON_STR_MAX)),
        Value::Array(a) => json!(format!("{}[{}]", a.elem_type(), a.len())),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

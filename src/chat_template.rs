//! Chat templates: a conversation (a list of `{role, content}` messages) rendered into the
//! prompt text the model was trained on.
//!
//! A GGUF carries its template as Jinja text in `tokenizer.chat_template` (the converter
//! copies it from `tokenizer_config.json` or `chat_template.jinja`). It is rendered the way
//! transformers' `apply_chat_template` renders it: Jinja with `trim_blocks` and
//! `lstrip_blocks`, loop controls, Python's string and dict methods (`.strip()`,
//! `.startswith()`, `.items()`, ...; minijinja-contrib's pycompat), `raise_exception(msg)`,
//! a `tojson` that writes what Python's `json.dumps` writes, and the special tokens
//! (`bos_token`, `eos_token`, ...) as variables. A file without a template gets the built-in
//! Gemma turn format, which renders exactly what Gemma 3's own template renders.
//!
//! Both are checked against transformers' output for Gemma 3's template
//! (`tests/data/chat_template_gemma3.json`, made by `tools/gen_chat_template_goldens.py`).

use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, ErrorKind, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The GGUF key that holds the default template.
pub const GGUF_KEY: &str = crate::gguf::names::tokenizer::CHAT_TEMPLATE;

/// A template that could not be compiled or refused a conversation: one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplateError(pub String);

impl fmt::Display for ChatTemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChatTemplateError {}

type Result<T> = std::result::Result<T, ChatTemplateError>;

/// One message of a conversation: the role and its content, as the OpenAI API and
/// transformers spell them. `content` is a string, or a list of parts
/// (`{"type": "text", "text": ...}`, `{"type": "image"}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: serde_json::Value,
}

impl Message {
    pub fn new(role: &str, text: &str) -> Message {
        Message {
            role: role.to_string(),
            content: serde_json::Value::String(text.to_string()),
        }
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    kind: Kind,
    /// Special tokens the template sees as variables (`bos_token`, `eos_token`, ...).
    specials: BTreeMap<String, String>,
}

enum Kind {
    Jinja(Box<Environment<'static>>),
    GemmaBuiltin,
}

const TEMPLATE_NAME: &str = "chat_template";

/// Template instructions one rendering may execute. A template comes with a downloaded
/// model, and nested loops (`range(100000)` twice) ran for minutes (the chat_template fuzz
/// target's timeout). On the loaded 2-core test machine Gemma 3's template renders 10000
/// messages within it (0.35 s) and a runaway loop stops after 0.4-0.8 s (the test
/// `fuel_allows_long_conversations_and_stops_runaway_loops`).
const FUEL: u64 = 2_000_000;

impl ChatTemplate {
    /// Compiles Jinja `source`. `specials` are the token variables the template may read
    /// (transformers passes `bos_token`, `eos_token`, `unk_token`, `pad_token`).
    pub fn from_jinja(source: &str, specials: &[(&str, &str)]) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        // transformers' settings (chat_template_utils._compile_jinja_template).
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| ChatTemplateError(one_line(&e)))?;
        env.set_syntax(syntax);
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| {
                ChatTemplateError(format!("chat template does not compile: {}", one_line(&e)))
            })?;
        Ok(ChatTemplate {
            kind: Kind::Jinja(Box::new(env)),
            specials: to_map(specials),
        })
    }

    /// The built-in Gemma turn format (what Gemma 3's template renders): `<bos>`, then
    /// `<start_of_turn>{user|model}\n{content, trimmed}<end_of_turn>\n` per message, a
    /// leading system message folded into the first user turn, roles alternating user /
    /// assistant, and `<start_of_turn>model\n` for the generation prompt.
    pub fn gemma_builtin(bos_token: &str) -> ChatTemplate {
        ChatTemplate {
            kind: Kind::GemmaBuiltin,
            specials: to_map(&[("bos_token", bos_token)]),
        }
    }

    /// The model's template (`tokenizer.chat_template`), or the built-in Gemma format when
    /// the file has none.
    pub fn from_gguf(file: &GgufFile, tok: &Tokenizer) -> Result<ChatTemplate> {
        let text = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("");
        let bos = text(tok.bos_id());
        let specials = [
            ("bos_token", bos),
            ("eos_token", text(tok.eos_id())),
            ("unk_token", text(tok.unk_id())),
            ("pad_token", text(tok.pad_id())),
        ];
        match file.get_str_opt(GGUF_KEY) {
            Ok(Some(src)) if !src.trim().is_empty() => ChatTemplate::from_jinja(src, &specials)
                .map_err(|e| ChatTemplateError(format!("{GGUF_KEY}: {e}"))),
            Ok(_) => Ok(ChatTemplate::gemma_builtin(if bos.is_empty() {
                "<bos>"
            } else {
                bos
            })),
            Err(e) => Err(ChatTemplateError(e.to_string())),
        }
    }

    /// True when this is the model's own Jinja template (not the built-in fallback).
    pub fn is_jinja(&self) -> bool {
        matches!(self.kind, Kind::Jinja(_))
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the model's
    /// reply begins. An empty conversation is refused (as transformers refuses it), and so
    /// is whatever the template itself refuses (`raise_exception`).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        if messages.is_empty() {
            return Err(ChatTemplateError(
                "cannot apply the chat template to an empty conversation".into(),
            ));
        }
        match &self.kind {
            Kind::Jinja(env) => {
                let tmpl = env
                    .get_template(TEMPLATE_NAME)
                    .map_err(|e| ChatTemplateError(one_line(&e)))?;
                let mut ctx: BTreeMap<String, Value> = self
                    .specials
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect();
                let msgs: Vec<Value> = messages.iter().map(message_value).collect();
                ctx.insert("messages".into(), Value::from(msgs));
                ctx.insert(
                    "add_generation_prompt".into(),
                    Value::from(add_generation_prompt),
                );
                tmpl.render(Value::from(ctx))
                    .map_err(|e| ChatTemplateError(render_error(&e)))
            }
            Kind::GemmaBuiltin => self.render_gemma(messages, add_generation_prompt),
        }
    }

    /// The text that continues a conversation with a new user turn, after a model turn that
    /// [`Self::model_turn_end`] closed: what the template renders for the turn, found by
    /// rendering a placeholder conversation with and without it. Lets `chat` feed only the
    /// new text (and continue a restored state whose messages it does not know).
    pub fn continuation(&self, user: &Message) -> Result<String> {
        let history = placeholder_history();
        let base = self.render(&history, false)?;
        let mut with_turn = history;
        with_turn.push(user.clone());
        let full = self.render(&with_turn, true)?;
        full.strip_prefix(base.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                ChatTemplateError(
                    "the chat template re-renders earlier turns differently when a turn is added; it cannot be continued turn by turn".into(),
                )
            })
    }

    /// What the template writes after a model turn's content (`<end_of_turn>\n` for Gemma).
    pub fn model_turn_end(&self) -> Result<String> {
        let r = self.render(&placeholder_history(), false)?;
        r.rsplit_once(PLACEHOLDER_REPLY)
            .map(|(_, tail)| tail.to_string())
            .ok_or_else(|| ChatTemplateError("the chat template drops the model's reply".into()))
    }

    /// For each message, the text the template renders before its content when the
    /// conversation is cut there (found with a placeholder content), if that text starts the
    /// full rendering: where a prompt cache can keep a state. For Gemma 3 the first is the
    /// point after a system prompt, inside the first user turn.
    pub fn message_prefixes(&self, messages: &[Message]) -> Vec<String> {
        let Ok(full) = self.render(messages, false) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for k in 0..messages.len() {
            let mut cut = messages[..k].to_vec();
            cut.push(Message::new(&messages[k].role, PLACEHOLDER_REPLY));
            let Ok(r) = self.render(&cut, false) else {
                continue;
            };
            if let Some((before, _)) = r.split_once(PLACEHOLDER_REPLY) {
                if full.starts_with(before) && out.last().is_none_or(|l| l.len() < before.len()) {
                    out.push(before.to_string());
                }
            }
        }
        out
    }

    fn render_gemma(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let mut out = self.specials.get("bos_token").cloned().unwrap_or_default();
        let (first_user_prefix, turns) = match messages.split_first() {
            Some((first, rest)) if first.role == "system" => {
                // Gemma 3's template takes a system message's first part untrimmed.
                (
                    format!("{}\n\n", content_text(&first.content, false)?),
                    rest,
                )
            }
            _ => (String::new(), messages),
        };
        for (i, m) in turns.iter().enumerate() {
            if (m.role == "user") != (i % 2 == 0) {
                return Err(ChatTemplateError(
                    "Conversation roles must alternate user/assistant/user/assistant/...".into(),
                ));
            }
            let role = if m.role == "assistant" {
                "model"
            } else {
                &m.role
            };
            out.push_str("<start_of_turn>");
            out.push_str(role);
            out.push('\n');
            if i == 0 {
                out.push_str(&first_user_prefix);
            }
            out.push_str(&content_text(&m.content, true)?);
            out.push_str("<end_of_turn>\n");
        }
        if add_generation_prompt {
            out.push_str("<start_of_turn>model\n");
        }
        Ok(out)
    }
}

const PLACEHOLDER_REPLY: &str = "edgegemma-placeholder-reply";

fn placeholder_history() -> Vec<Message> {
    vec![
        Message::new("user", "edgegemma-placeholder-question"),
        Message::new("assistant", PLACEHOLDER_REPLY),
    ]
}

/// A message's text as Gemma 3's template takes it: a string (trimmed when `trim`), or the
/// parts in order, text parts trimmed and images as `<start_of_image>`. For a system message
/// (`trim` false) only the first part is used, untrimmed.
fn content_text(content: &serde_json::Value, trim: bool) -> Result<String> {
    use serde_json::Value as J;
    let part_text = |p: &J| p.get("text").and_then(J::as_str).map(str::to_string);
    match content {
        J::String(s) if trim => Ok(s.trim().to_string()),
        J::String(s) => Ok(s.clone()),
        J::Array(parts) if !trim => parts
            .first()
            .and_then(part_text)
            .ok_or_else(|| ChatTemplateError("a system message needs text".into())),
        J::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                match p.get("type").and_then(J::as_str) {
                    Some("image") => out.push_str("<start_of_image>"),
                    Some("text") => out.push_str(part_text(p).unwrap_or_default().trim()),
                    _ => {}
                }
            }
            Ok(out)
        }
        _ => Err(ChatTemplateError("Invalid content type".into())),
    }
}

fn to_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn message_value(m: &Message) -> Value {
    let mut map = BTreeMap::new();
    map.insert("role".to_string(), Value::from(m.role.as_str()));
    map.insert("content".to_string(), json_to_value(&m.content));
    Value::from(map)
}

/// serde_json → minijinja, keeping integers as integers (so `is integer` and printing match
/// Python's).
pub fn json_to_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::from(s.as_str()),
        J::Array(a) => Value::from(a.iter().map(json_to_value).collect::<Vec<_>>()),
        J::Object(o) => Value::from(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

/// `raise_exception(msg)`: transformers' way for a template to refuse a conversation.
fn raise_exception(msg: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

/// The message a template raised, or minijinja's description of what went wrong, on one line.
fn render_error(e: &minijinja::Error) -> String {
    match (e.kind(), e.detail()) {
        (ErrorKind::InvalidOperation, Some(d)) => d.to_string(),
        _ => format!("chat template: {}", one_line(e)),
    }
}

fn one_line(e: &minijinja::Error) -> String {
    e.to_string().replace('\n', " ")
}

/// `tojson` as transformers defines it: Python's `json.dumps(x, ensure_ascii=False,
/// indent=indent)` (`", "` and `": "` separators, no HTML escaping).
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(&mut out, value, indent, 0)?;
    Ok(Value::from_safe_string(out))
}

fn write_json(
    out: &mut String,
    v: &Value,
    indent: Option<usize>,
    depth: usize,
) -> std::result::Result<(), minijinja::Error> {
    // A template recursing through a self-referencing value is cut off, never a stack overflow.
    if depth > 64 {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nested too deeply",
        ));
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * level));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if !v.is_integer() {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                out.push_str(&python_float(f));
            } else {
                out.push_str(&v.to_string());
            }
        }
        ValueKind::String => write_json_str(out, v.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                write_json(out, item, indent, depth + 1)?;
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<Value> = v.try_iter()?.collect();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                match k.as_str() {
                    Some(s) => write_json_str(out, s),
                    None => write_json_str(out, &k.to_string()),
                }
                out.push_str(": ");
                write_json(out, &v.get_item(k)?, indent, depth + 1)?;
            }
            if !keys.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
        _ => write_json_str(out, &v.to_string()),
    }
    Ok(())
}

/// Python's float repr for the values JSON can hold (`1.0`, `0.5`, `1e-07`).
fn python_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let s = format!("{f:?}");
    // Rust's Debug gives the shortest round-trip digits like Python; only the exponent form
    // differs (Rust `1e-7`, Python `1e-07`).
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("+", e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Token ids of a rendered prompt: special tokens written in the text (`<start_of_turn>`)
/// become their ids, and a BOS is added only when the model wants one and the template did
/// not already write it.
pub fn tokenize_rendered(tok: &Tokenizer, text: &str) -> Vec<u32> {
    let bos_written = tok
        .bos_id()
        .and_then(|b| tok.token_text(b))
        .is_some_and(|b| !b.is_empty() && text.starts_with(b));
    tok.encode(text, tok.add_bos() && !bos_written, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        name: String,
        messages: Vec<Message>,
        add_generation_prompt: bool,
        /// The rendering, or the error message.
        expected: std::result::Result<String, String>,
    }

    struct Golden {
        template: String,
        bos: String,
        eos: String,
        cases: Vec<Case>,
    }

    fn golden() -> Golden {
        let text = include_str!("../tests/data/chat_template_gemma3.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let cases = v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let msgs = c["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| Message {
                        role: m["role"].as_str().unwrap().to_string(),
                        content: m["content"].clone(),
                    })
                    .collect();
                let expected = match c.get("expected") {
                    Some(e) => Ok(e.as_str().unwrap().to_string()),
                    None => Err(c["error"].as_str().unwrap().to_string()),
                };
                Case {
                    name: c["name"].as_str().unwrap().to_string(),
                    messages: msgs,
                    add_generation_prompt: c["add_generation_prompt"].as_bool().unwrap(),
                    expected,
                }
            })
            .collect();
        Golden {
            template: v["chat_template"].as_str().unwrap().to_string(),
            bos: v["bos_token"].as_str().unwrap().to_string(),
            eos: v["eos_token"].as_str().unwrap().to_string(),
            cases,
        }
    }

    fn check(t: &ChatTemplate, g: &Golden, what: &str) {
        assert!(g.cases.len() >= 15);
        for Case {
            name,
            messages,
            add_generation_prompt,
            expected,
        } in &g.cases
        {
            let got = t.render(messages, *add_generation_prompt);
            match (expected, &got) {
                (Ok(e), Ok(r)) => assert_eq!(r, e, "{what}: case {name}"),
                (Err(e), Err(r)) if name == "error_no_messages" => {
                    assert!(e.contains("empty conversation"), "{e}");
                    assert!(
                        r.0.contains("empty conversation"),
                        "{what}: case {name}: {r}"
                    );
                }
                (Err(e), Err(r)) => assert_eq!(&r.0, e, "{what}: case {name}"),
                _ => panic!("{what}: case {name}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn fuel_allows_long_conversations_and_stops_runaway_loops() {
        let g = golden();
        let t = ChatTemplate::from_jinja(&g.template, &[("bos_token", &g.bos)]).unwrap();
        let long: Vec<Message> = (0..10000)
            .map(|i| Message::new(if i % 2 == 0 { "user" } else { "assistant" }, "some text"))
            .collect();
        let start = std::time::Instant::now();
        t.render(&long, true)
            .expect("10000 messages render within the fuel");
        eprintln!("10000 messages: {:?}", start.elapsed());

        let nested = "{% for a in range(100000) %}{% for b in range(100000) %}{{ b }}{% endfor %}{% endfor %}";
        let t = ChatTemplate::from_jinja(nested, &[]).unwrap();
        let start = std::time::Instant::now();
        let err = t.render(&[Message::new("user", "hi")], true).unwrap_err();
        let took = start.elapsed();
        eprintln!("runaway loop stopped after {took:?}: {err}");
        assert!(err.0.contains("fuel"), "{err}");
        assert!(!err.0.contains('\n'), "{err}");
        assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn gemma3_template_renders_as_transformers_does() {
        let g = golden();
        let t =
            ChatTemplate::from_jinja(&g.template, &[("bos_token", &g.bos), ("eos_token", &g.eos)])
                .unwrap();
        assert!(t.is_jinja());
        check(&t, &g, "jinja");
    }

    #[test]
    fn builtin_gemma_format_renders_as_gemma3_template_does() {
        let g = golden();
        check(&ChatTemplate::gemma_builtin(&g.bos), &g, "builtin");
    }

    #[test]
    fn python_methods_loop_controls_and_tojson() {
        let src = "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}\
            {{ m.role.upper() }}:{{ m.content.strip().split(' ') | join('|') }}\
            {% if m.content.startswith(' a') %}!{% endif %};{% endfor %}\
            {{ {'a': 1, 'b': [true, none, 'x\"y'], 'c': 0.5} | tojson }}\
            {{ {'k': 'v'} | tojson(indent=2) }}";
        let t = ChatTemplate::from_jinja(src, &[]).unwrap();
        let msgs = [
            Message::new("user", " a b "),
            Message::new("assistant", "c"),
            Message::new("user", "never"),
        ];
        assert_eq!(
            t.render(&msgs, false).unwrap(),
            "USER:a|b!;ASSISTANT:c;{\"a\": 1, \"b\": [true, null, \"x\\\"y\"], \"c\": 0.5}{\n  \"k\": \"v\"\n}"
        );
    }

    #[test]
    fn bad_templates_are_clean_errors() {
        let e = ChatTemplate::from_jinja("{% for %}", &[]).err().unwrap();
        assert!(e.0.starts_with("chat template does not compile"), "{e}");
        assert!(!e.0.contains('\n'));
        let t = ChatTemplate::from_jinja("{{ messages[0].content.nosuchmethod() }}", &[]).unwrap();
        let e = t.render(&[Message::new("user", "x")], true).unwrap_err();
        assert!(e.0.starts_with("chat template:"), "{e}");
        let t = ChatTemplate::from_jinja("{{ 1 / 0 }}", &[]).unwrap();
        assert!(t.render(&[Message::new("user", "x")], true).is_err());
        // Deep recursion in a template is stopped by minijinja's recursion limit.
        let t = ChatTemplate::from_jinja(
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            &[],
        )
        .unwrap();
        assert!(t.render(&[Message::new("user", "x")], true).is_err());
    }

    #[test]
    fn continuation_and_turn_end_follow_the_template() {
        let g = golden();
        let jinja =
            ChatTemplate::from_jinja(&g.template, &[("bos_token", &g.bos), ("eos_token", &g.eos)])
                .unwrap();
        for t in [&jinja, &ChatTemplate::gemma_builtin(&g.bos)] {
            assert_eq!(t.model_turn_end().unwrap(), "<end_of_turn>\n");
            assert_eq!(
                t.continuation(&Message::new("user", " Next? ")).unwrap(),
                "<start_of_turn>user\nNext?<end_of_turn>\n<start_of_turn>model\n"
            );
        }
        // A template that renders history differently once a turn is added is refused.
        let odd = ChatTemplate::from_jinja("{{ messages | length }}", &[]).unwrap();
        assert!(odd.continuation(&Message::new("user", "x")).is_err());
    }

    #[test]
    fn message_prefixes_include_the_end_of_a_system_prompt() {
        let g = golden();
        let t =
            ChatTemplate::from_jinja(&g.template, &[("bos_token", &g.bos), ("eos_token", &g.eos)])
                .unwrap();
        let msgs = [
            Message::new("system", "Sys."),
            Message::new("user", "Q1"),
            Message::new("assistant", "A1"),
            Message::new("user", "Q2"),
        ];
        assert_eq!(
            t.message_prefixes(&msgs),
            [
                "<bos><start_of_turn>user\nSys.\n\n",
                "<bos><start_of_turn>user\nSys.\n\nQ1<end_of_turn>\n<start_of_turn>model\n",
                "<bos><start_of_turn>user\nSys.\n\nQ1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n<start_of_turn>user\n",
            ]
        );
    }

    #[test]
    fn python_float_repr() {
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(0.1), "0.1");
        assert_eq!(python_float(1e-7), "1e-07");
        assert_eq!(python_float(1.5e300), "1.5e+300");
    }
}

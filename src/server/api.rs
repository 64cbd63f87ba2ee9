//! Request parsing and response shapes of the OpenAI API (and llama-server's additions).
//! Unknown fields are ignored; a field of the wrong type or out of range is a 400 with
//! OpenAI's error JSON naming the field.

use super::engine::{GenParams, Summary, TokenLogprob};
use crate::chat_template::Message;
use crate::sampler::SamplerConfig;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};

pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param.to_string()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The request body as a JSON object.
pub fn parse_object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("the request body is not valid JSON: {e}"),
        )),
    }
}

fn present<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

pub fn opt_bool(o: &Map<String, Value>, key: &str) -> ApiResult<Option<bool>> {
    match present(o, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(key, format!("'{key}' must be a boolean"))),
    }
}

pub fn opt_f32(o: &Map<String, Value>, key: &str, lo: f32, hi: f32) -> ApiResult<Option<f32>> {
    match present(o, key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if (lo as f64..=hi as f64).contains(&x) => Ok(Some(x as f32)),
            Some(_) => Err(ApiError::invalid(
                key,
                format!("'{key}' must be between {lo} and {hi}"),
            )),
            None => Err(ApiError::invalid(key, format!("'{key}' must be a number"))),
        },
    }
}

pub fn opt_int(o: &Map<String, Value>, key: &str, lo: i64, hi: i64) -> ApiResult<Option<i64>> {
    match present(o, key) {
        None => Ok(None),
        Some(v) => {
            // JSON clients send 5.0 for 5 at times; accept integral floats.
            let i = v.as_i64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            });
            match i {
                Some(i) if (lo..=hi).contains(&i) => Ok(Some(i)),
                Some(_) => Err(ApiError::invalid(
                    key,
                    format!("'{key}' must be between {lo} and {hi}"),
                )),
                None => Err(ApiError::invalid(
                    key,
                    format!("'{key}' must be an integer"),
                )),
            }
        }
    }
}

fn opt_str<'a>(o: &'a Map<String, Value>, key: &str) -> ApiResult<Option<&'a str>> {
    match present(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid(key, format!("'{key}' must be a string"))),
    }
}

/// `messages`: role strings, content a string, a list of parts, or null (an empty text).
pub fn messages(o: &Map<String, Value>) -> ApiResult<Vec<Message>> {
    let Some(Value::Array(list)) = present(o, "messages") else {
        return Err(ApiError::invalid(
            "messages",
            "'messages' must be a non-empty array",
        ));
    };
    if list.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "'messages' must be a non-empty array",
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        let Value::Object(m) = m else {
            return Err(ApiError::invalid(
                &param,
                format!("'{param}' must be an object"),
            ));
        };
        let role = match m.get("role") {
            Some(Value::String(r)) if !r.is_empty() => r.clone(),
            _ => {
                return Err(ApiError::invalid(
                    &param,
                    format!("'{param}.role' must be a non-empty string"),
                ))
            }
        };
        let content = match m.get("content") {
            None | Some(Value::Null) => Value::String(String::new()),
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(Value::Array(parts)) => {
                for (j, p) in parts.iter().enumerate() {
                    let ok = match p.get("type").and_then(Value::as_str) {
                        Some("text") => p.get("text").is_some_and(Value::is_string),
                        Some(_) => true,
                        None => false,
                    };
                    if !ok {
                        return Err(ApiError::invalid(
                            &param,
                            format!("'{param}.content[{j}]' must be {{\"type\": \"text\", \"text\": string}} or another typed part"),
                        ));
                    }
                }
                Value::Array(parts.clone())
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    &param,
                    format!("'{param}.content' must be a string or an array of parts"),
                ))
            }
        };
        out.push(Message { role, content });
    }
    Ok(out)
}

/// A completion's `prompt`: a string, a list of one string, or token ids.
pub enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

pub fn prompt(o: &Map<String, Value>, n_vocab: usize) -> ApiResult<Prompt> {
    let bad = || {
        ApiError::invalid(
            "prompt",
            "'prompt' must be a string, an array of one string, or an array of token ids",
        )
    };
    let tokens = |a: &[Value]| -> ApiResult<Vec<u32>> {
        a.iter()
            .map(|v| {
                v.as_u64()
                    .filter(|&t| (t as usize) < n_vocab)
                    .map(|t| t as u32)
                    .ok_or_else(|| {
                        ApiError::invalid("prompt", format!("token ids must be below {n_vocab}"))
                    })
            })
            .collect()
    };
    match present(o, "prompt") {
        Some(Value::String(s)) => Ok(Prompt::Text(s.clone())),
        Some(Value::Array(a)) => match a.as_slice() {
            [Value::String(s)] => Ok(Prompt::Text(s.clone())),
            [Value::Array(t)] => Ok(Prompt::Tokens(tokens(t)?)),
            [] => Err(bad()),
            a if a.iter().all(Value::is_number) => Ok(Prompt::Tokens(tokens(a)?)),
            a if a.len() > 1 && a.iter().all(|v| v.is_string() || v.is_array()) => Err(
                ApiError::invalid("prompt", "only one prompt per request is supported"),
            ),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// What the sampling and limit fields ask for. `prompt_len` and the server's limits bound
/// `max_tokens`: asking for more than the context holds is a 400.
pub struct Settings {
    pub stream: bool,
    pub include_usage: bool,
    pub params: GenParams,
}

pub fn settings(
    o: &Map<String, Value>,
    chat: bool,
    prompt_len: usize,
    n_ctx: usize,
    max_tokens_limit: Option<usize>,
) -> ApiResult<Settings> {
    let stream = opt_bool(o, "stream")?.unwrap_or(false);
    let include_usage = match present(o, "stream_options") {
        None => false,
        Some(Value::Object(so)) => opt_bool(so, "include_usage")?.unwrap_or(false),
        Some(_) => {
            return Err(ApiError::invalid(
                "stream_options",
                "'stream_options' must be an object",
            ))
        }
    };
    if let Some(n) = opt_int(o, "n", 1, i64::MAX)? {
        if n != 1 {
            return Err(ApiError::invalid("n", "only n = 1 is supported"));
        }
    }
    let mut max_tokens = None;
    for key in ["max_completion_tokens", "max_tokens", "n_predict"] {
        if let Some(v) = opt_int(o, key, -1, i64::MAX)? {
            max_tokens.get_or_insert((key, v));
        }
    }
    if prompt_len >= n_ctx {
        return Err(ApiError {
            code: Some("context_length_exceeded"),
            ..ApiError::invalid(
                if chat { "messages" } else { "prompt" },
                format!(
                    "the prompt is {prompt_len} tokens; the context holds {n_ctx} (start the server with a larger -c)"
                ),
            )
        });
    }
    let room = n_ctx - prompt_len;
    let max_tokens = match max_tokens {
        Some((key, v)) if v >= 0 => {
            let v = v as usize;
            if let Some(limit) = max_tokens_limit.filter(|&l| v > l) {
                return Err(ApiError::invalid(
                    key,
                    format!("'{key}' is {v}; this server allows at most {limit}"),
                ));
            }
            if v > room {
                return Err(ApiError {
                    code: Some("context_length_exceeded"),
                    ..ApiError::invalid(
                        key,
                        format!(
                            "the context holds {n_ctx} tokens, but {prompt_len} in the prompt + {v} requested = {}",
                            prompt_len + v
                        ),
                    )
                });
            }
            v
        }
        // Absent (or -1, llama-server's "until the end"): up to the context, or the limit.
        _ => max_tokens_limit.map_or(room, |l| l.min(room)),
    };
    let d = SamplerConfig::default();
    let temp = opt_f32(o, "temperature", 0.0, 100.0)?.unwrap_or(d.temp);
    let top_p = opt_f32(o, "top_p", 0.0, 1.0)?.unwrap_or(d.top_p);
    let min_p = opt_f32(o, "min_p", 0.0, 1.0)?.unwrap_or(d.min_p);
    let top_k =
        opt_int(o, "top_k", -1, i64::from(u32::MAX))?.map_or(d.top_k, |k| k.max(0) as usize);
    let repeat_penalty = opt_f32(o, "repeat_penalty", 0.01, 100.0)?.unwrap_or(d.repeat_penalty);
    let frequency_penalty = opt_f32(o, "frequency_penalty", -2.0, 2.0)?.unwrap_or(0.0);
    let presence_penalty = opt_f32(o, "presence_penalty", -2.0, 2.0)?.unwrap_or(0.0);
    let seed = match present(o, "seed") {
        None => fresh_seed(),
        Some(v) => match v.as_i64().map(|i| i as u64).or_else(|| v.as_u64()) {
            Some(s) => s,
            None => return Err(ApiError::invalid("seed", "'seed' must be an integer")),
        },
    };
    let stop = match present(o, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.len() <= 16 && a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        Some(_) => {
            return Err(ApiError::invalid(
                "stop",
                "'stop' must be a string or an array of at most 16 strings",
            ))
        }
    };
    let logprobs = if chat {
        let on = opt_bool(o, "logprobs")?.unwrap_or(false);
        let top = opt_int(o, "top_logprobs", 0, 20)?;
        if top.is_some() && !on {
            return Err(ApiError::invalid(
                "top_logprobs",
                "'top_logprobs' needs 'logprobs': true",
            ));
        }
        on.then(|| top.unwrap_or(0) as usize)
    } else {
        opt_int(o, "logprobs", 0, 20)?.map(|k| k as usize)
    };
    let _ = opt_str(o, "model")?;
    Ok(Settings {
        stream,
        include_usage,
        params: GenParams {
            max_tokens,
            sampler: SamplerConfig {
                temp,
                top_k,
                top_p,
                min_p,
                repeat_penalty,
                repeat_last_n: d.repeat_last_n,
                seed,
            },
            frequency_penalty,
            presence_penalty,
            stop,
            logprobs,
            cache_prompt: opt_bool(o, "cache_prompt")?.unwrap_or(true),
        },
    })
}

fn fresh_seed() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (std::process::id() as u64).rotate_left(32)
}

pub fn usage(s: &Summary) -> Value {
    json!({
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "total_tokens": s.prompt_tokens + s.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": s.cached_tokens},
    })
}

/// llama-server's `timings` object.
pub fn timings(s: &Summary) -> Value {
    let n_prompt = s.prompt_tokens - s.cached_tokens;
    let per = |ms: f64, n: usize| if n == 0 { 0.0 } else { ms / n as f64 };
    let rate = |ms: f64, n: usize| if ms <= 0.0 { 0.0 } else { n as f64 * 1e3 / ms };
    json!({
        "cache_n": s.cached_tokens,
        "prompt_n": n_prompt,
        "prompt_ms": s.prompt_ms,
        "prompt_per_token_ms": per(s.prompt_ms, n_prompt),
        "prompt_per_second": rate(s.prompt_ms, n_prompt),
        "predicted_n": s.completion_tokens,
        "predicted_ms": s.gen_ms,
        "predicted_per_token_ms": per(s.gen_ms, s.completion_tokens),
        "predicted_per_second": rate(s.gen_ms, s.completion_tokens),
    })
}

/// Chat logprobs: `{"content": [{token, logprob, bytes, top_logprobs: [...]}]}` entries.
pub fn chat_logprob_entries(lp: &[TokenLogprob]) -> Vec<Value> {
    lp.iter()
        .map(|t| {
            json!({
                "token": t.token,
                "logprob": t.logprob,
                "bytes": t.bytes,
                "top_logprobs": t.top.iter().map(|(s, b, l)| json!({
                    "token": s, "logprob": l, "bytes": b
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Completion logprobs (the legacy shape): parallel arrays.
pub fn completion_logprobs(lp: &[TokenLogprob], text_start: usize) -> Value {
    let mut offset = text_start;
    let mut offsets = Vec::new();
    for t in lp {
        offsets.push(offset);
        offset += t.token.len();
    }
    json!({
        "tokens": lp.iter().map(|t| t.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": lp.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": lp.iter().map(|t| {
            Value::Object(t.top.iter().map(|(s, _, l)| (s.clone(), json!(l))).collect())
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

//! `edgegemma serve`: an OpenAI-compatible HTTP server (llama-server's endpoint conventions)
//! over [`engine::Engine`]'s slots. Compiled only with the `server` feature, so the runtime
//! library carries no HTTP stack otherwise.
//!
//! | endpoint | |
//! |---|---|
//! | `POST /v1/chat/completions` | messages rendered with the model's chat template; `stream: true` sends server-sent events ending in `data: [DONE]` |
//! | `POST /v1/completions` | a text (or token-id) prompt |
//! | `GET /v1/models`, `GET /health` | the loaded model; liveness |
//! | `POST /tokenize`, `POST /detokenize` | `{"content"}` → `{"tokens"}`, `{"tokens"}` → `{"content"}` |
//! | `POST /apply-template` | `{"messages"}` → `{"prompt"}`: the rendered chat prompt |
//!
//! HTTP work runs on one tokio thread; inference runs on the slots' own threads.

pub mod api;
pub mod engine;

use api::{ApiError, ApiResult, Prompt};
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use engine::{Engine, Event, Job, Summary, TokenLogprob};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

use crate::chat_template::tokenize_rendered;
use crate::model::RunConfig;

/// Events buffered per request between a slot and its HTTP response.
const EVENT_BUFFER: usize = 64;

pub struct ServerConfig {
    pub model: PathBuf,
    pub host: String,
    pub port: u16,
    pub run: RunConfig,
    pub threads: Option<usize>,
    pub parallel: usize,
    /// Requests waiting for a slot beyond which new ones get a 503.
    pub queue: usize,
    pub api_key: Option<String>,
    pub max_body_bytes: usize,
    /// The most tokens one request may ask for (`None`: up to the context).
    pub max_tokens: Option<usize>,
}

struct AppState {
    engine: Engine,
    api_key: Option<String>,
    model_name: String,
    created: u64,
    max_tokens: Option<usize>,
    next_id: AtomicU64,
}

/// Loads the model, binds, and serves until the process is stopped.
pub fn serve(cfg: ServerConfig) -> Result<(), String> {
    if cfg.parallel == 0 {
        return Err("--parallel must be at least 1".into());
    }
    let engine = Engine::start(&cfg.model, &cfg.run, cfg.threads, cfg.parallel, cfg.queue)?;
    let model_name = cfg
        .model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let state = Arc::new(AppState {
        engine,
        api_key: cfg.api_key.clone(),
        model_name,
        created: unix_time(),
        max_tokens: cfg.max_tokens,
        next_id: AtomicU64::new(1),
    });
    let app = router(state.clone(), cfg.max_body_bytes);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async move {
        let addr = format!("{}:{}", cfg.host, cfg.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!(
            "edgegemma serve: {} ({}, context {}, {} slot(s), chat template: {}) on http://{local}",
            state.model_name,
            state.engine.arch,
            state.engine.n_ctx,
            cfg.parallel,
            if state.engine.template.is_jinja() {
                "the model's"
            } else {
                "built-in Gemma"
            }
        );
        axum::serve(listener, app)
            .await
            .map_err(|e| format!("server error: {e}"))
    })
}

fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/completions", post(completions))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/apply-template", post(apply_template))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.status, &self.body());
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

fn check_auth(st: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(key) = &st.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), key.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError {
            code: Some("invalid_api_key"),
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid or missing API key (send Authorization: Bearer KEY)",
            )
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body, or a 413 / 400 in OpenAI's error shape.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rej| {
        let status = rej.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is too large".to_string()
        } else {
            format!("cannot read the request body: {rej}")
        };
        ApiError::new(status, "invalid_request_error", message)
    })
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "not_found_error", "no such endpoint").into_response()
}

async fn health() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

async fn models(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = check_auth(&st, &headers) {
        return e.into_response();
    }
    json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": [{
                "id": st.model_name,
                "object": "model",
                "created": st.created,
                "owned_by": "edgegemma",
                "meta": {
                    "arch": st.engine.arch,
                    "n_ctx": st.engine.n_ctx,
                    "n_vocab": st.engine.n_vocab,
                },
            }],
        }),
    )
}

async fn tokenize(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = (|| -> ApiResult<Value> {
        check_auth(&st, &headers)?;
        let o = api::parse_object(&body_bytes(body)?)?;
        let Some(Value::String(text)) = o.get("content") else {
            return Err(ApiError::invalid("content", "'content' must be a string"));
        };
        let add_special = api::opt_bool(&o, "add_special")?.unwrap_or(false);
        let with_pieces = api::opt_bool(&o, "with_pieces")?.unwrap_or(false);
        let tok = &st.engine.tok;
        let ids = tok.encode(text, add_special, true);
        if with_pieces {
            let pieces: Vec<Value> = ids
                .iter()
                .map(|&id| {
                    let b = tok.token_to_piece(id, true).unwrap_or_default();
                    json!({"id": id, "piece": String::from_utf8_lossy(b)})
                })
                .collect();
            Ok(json!({ "tokens": pieces }))
        } else {
            Ok(json!({ "tokens": ids }))
        }
    })();
    match r {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

async fn detokenize(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = (|| -> ApiResult<Value> {
        check_auth(&st, &headers)?;
        let o = api::parse_object(&body_bytes(body)?)?;
        let tok = &st.engine.tok;
        let Some(Value::Array(a)) = o.get("tokens") else {
            return Err(ApiError::invalid(
                "tokens",
                "'tokens' must be an array of token ids",
            ));
        };
        let ids: Vec<u32> = a
            .iter()
            .map(|v| {
                v.as_u64()
                    .filter(|&t| (t as usize) < tok.len())
                    .map(|t| t as u32)
            })
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ApiError::invalid("tokens", format!("token ids must be below {}", tok.len()))
            })?;
        let text = tok
            .decode(&ids, false)
            .map_err(|e| ApiError::invalid("tokens", e.to_string()))?;
        Ok(json!({ "content": text }))
    })();
    match r {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

async fn apply_template(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = (|| -> ApiResult<Value> {
        check_auth(&st, &headers)?;
        let o = api::parse_object(&body_bytes(body)?)?;
        let msgs = api::messages(&o)?;
        let prompt = render(&st, &msgs)?;
        Ok(json!({ "prompt": prompt }))
    })();
    match r {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

fn render(st: &AppState, msgs: &[crate::chat_template::Message]) -> ApiResult<String> {
    st.engine
        .template
        .render(msgs, true)
        .map_err(|e| ApiError::invalid("messages", e.to_string()))
}

/// What a finished request produced.
struct Collected {
    text: String,
    logprobs: Vec<TokenLogprob>,
    summary: Summary,
}

async fn collect(rx: &mut mpsc::Receiver<Event>) -> ApiResult<Collected> {
    let mut text = String::new();
    let mut logprobs = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text {
                text: t,
                logprobs: l,
            } => {
                text.push_str(&t);
                logprobs.extend(l);
            }
            Event::Done(summary) => {
                return Ok(Collected {
                    text,
                    logprobs,
                    summary,
                })
            }
            Event::Error(e) => return Err(server_error(e)),
        }
    }
    Err(server_error("the generation ended without a result".into()))
}

fn server_error(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
}

fn queue_full() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_busy",
        "all slots are busy and the queue is full; retry later",
    )
}

/// Puts the job on the queue and returns its event stream.
fn submit(
    st: &AppState,
    prompt: Vec<u32>,
    boundaries: Vec<usize>,
    params: engine::GenParams,
) -> ApiResult<mpsc::Receiver<Event>> {
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    let job = Job {
        prompt,
        boundaries,
        params,
        events: tx,
    };
    if st.engine.submit(job) {
        Ok(rx)
    } else {
        Err(queue_full())
    }
}

async fn chat_completions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match chat_inner(st, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_inner(
    st: Arc<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    check_auth(&st, &headers)?;
    let o = api::parse_object(&body_bytes(body)?)?;
    let msgs = api::messages(&o)?;
    let text = render(&st, &msgs)?;
    let tok = &st.engine.tok;
    let prompt = tokenize_rendered(tok, &text);
    let settings = api::settings(&o, true, prompt.len(), st.engine.n_ctx, st.max_tokens)?;
    // Message boundaries matter only to a model that keeps snapshots (cannot rewind).
    let boundaries = if st.engine.arch == crate::gguf::names::Arch::RecurrentGemma.name() {
        st.engine
            .template
            .message_prefixes(&msgs)
            .iter()
            .filter_map(|p| {
                let ids = tokenize_rendered(tok, p);
                prompt.starts_with(&ids).then_some(ids.len())
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut rx = submit(&st, prompt, boundaries, settings.params.clone())?;
    let id = format!("chatcmpl-{}", st.next_id.fetch_add(1, Ordering::Relaxed));
    let created = unix_time();
    if settings.stream {
        return Ok(sse_response(stream_chat(
            rx,
            id,
            created,
            st.model_name.clone(),
            settings.include_usage,
            settings.params.logprobs.is_some(),
        )));
    }
    let c = collect(&mut rx).await?;
    let logprobs = settings
        .params
        .logprobs
        .map(|_| json!({"content": api::chat_logprob_entries(&c.logprobs)}));
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": st.model_name,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": c.text},
                "logprobs": logprobs,
                "finish_reason": c.summary.finish_reason,
            }],
            "usage": api::usage(&c.summary),
            "timings": api::timings(&c.summary),
        }),
    ))
}

async fn completions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match completions_inner(st, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn completions_inner(
    st: Arc<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    check_auth(&st, &headers)?;
    let o = api::parse_object(&body_bytes(body)?)?;
    let prompt = match api::prompt(&o, st.engine.n_vocab.min(st.engine.tok.len()))? {
        // As `edgegemma run` tokenizes a prompt: BOS (if the model wants one), specials parsed.
        Prompt::Text(t) => st.engine.tok.encode(&t, true, true),
        Prompt::Tokens(t) => t,
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid("prompt", "the prompt is empty"));
    }
    let settings = api::settings(&o, false, prompt.len(), st.engine.n_ctx, st.max_tokens)?;
    let mut rx = submit(&st, prompt, Vec::new(), settings.params.clone())?;
    let id = format!("cmpl-{}", st.next_id.fetch_add(1, Ordering::Relaxed));
    let created = unix_time();
    if settings.stream {
        return Ok(sse_response(stream_completion(
            rx,
            id,
            created,
            st.model_name.clone(),
            settings.include_usage,
            settings.params.logprobs.is_some(),
        )));
    }
    let c = collect(&mut rx).await?;
    let logprobs = settings
        .params
        .logprobs
        .map(|_| api::completion_logprobs(&c.logprobs, 0));
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": st.model_name,
            "choices": [{
                "index": 0,
                "text": c.text,
                "logprobs": logprobs,
                "finish_reason": c.summary.finish_reason,
            }],
            "usage": api::usage(&c.summary),
            "timings": api::timings(&c.summary),
        }),
    ))
}

fn sse_response(
    stream: impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| server_error("cannot build the response".into()).into_response())
}

fn sse(v: &Value) -> String {
    format!("data: {v}\n\n")
}

/// The stream's state: the events, and whether the opening chunk went out.
struct StreamState {
    rx: mpsc::Receiver<Event>,
    opened: bool,
    done: bool,
    text_len: usize,
}

/// Turns a job's events into SSE chunks; `chunk(delta, logprobs, finish)` shapes one.
fn event_stream<F>(
    rx: mpsc::Receiver<Event>,
    opening: Option<String>,
    include_usage: bool,
    shape: F,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static
where
    F: Fn(&str, &[TokenLogprob], usize, Option<&Summary>) -> Value + Send + Sync + 'static,
{
    let st = StreamState {
        rx,
        opened: opening.is_none(),
        done: false,
        text_len: 0,
    };
    let shape = Arc::new(shape);
    futures_util::stream::unfold((st, opening), move |(mut st, opening)| {
        let shape = shape.clone();
        async move {
            if !st.opened {
                st.opened = true;
                let o = opening.clone().unwrap_or_default();
                return Some((Ok(Bytes::from(o)), (st, opening)));
            }
            if st.done {
                return None;
            }
            let chunk = match st.rx.recv().await {
                Some(Event::Text { text, logprobs }) => {
                    let v = shape(&text, &logprobs, st.text_len, None);
                    st.text_len += text.len();
                    sse(&v)
                }
                Some(Event::Done(s)) => {
                    st.done = true;
                    let mut out = sse(&shape("", &[], st.text_len, Some(&s)));
                    if include_usage {
                        let mut u = shape("", &[], st.text_len, Some(&s));
                        u["choices"] = json!([]);
                        out.push_str(&sse(&u));
                    }
                    out.push_str("data: [DONE]\n\n");
                    out
                }
                Some(Event::Error(e)) => {
                    st.done = true;
                    format!("{}data: [DONE]\n\n", sse(&server_error(e).body()))
                }
                None => {
                    st.done = true;
                    format!(
                        "{}data: [DONE]\n\n",
                        sse(&server_error("the generation ended without a result".into()).body())
                    )
                }
            };
            Some((Ok(Bytes::from(chunk)), (st, opening)))
        }
    })
}

fn stream_chat(
    rx: mpsc::Receiver<Event>,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    logprobs: bool,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
    let base =
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model});
    let mut opening = base.clone();
    opening["choices"] = json!([{
        "index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null
    }]);
    let opening = sse(&opening);
    event_stream(
        rx,
        Some(opening),
        include_usage,
        move |text, lp, _, done| {
            let mut v = base.clone();
            let lp_json = if logprobs && !lp.is_empty() {
                json!({"content": api::chat_logprob_entries(lp)})
            } else {
                Value::Null
            };
            match done {
                None => {
                    v["choices"] = json!([{
                        "index": 0, "delta": {"content": text}, "logprobs": lp_json, "finish_reason": null
                    }]);
                }
                Some(s) => {
                    v["choices"] = json!([{
                        "index": 0, "delta": {}, "logprobs": null, "finish_reason": s.finish_reason
                    }]);
                    v["usage"] = api::usage(s);
                    v["timings"] = api::timings(s);
                }
            }
            v
        },
    )
}

fn stream_completion(
    rx: mpsc::Receiver<Event>,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    logprobs: bool,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
    let base = json!({"id": id, "object": "text_completion", "created": created, "model": model});
    event_stream(rx, None, include_usage, move |text, lp, offset, done| {
        let mut v = base.clone();
        let lp_json = if logprobs && !lp.is_empty() {
            api::completion_logprobs(lp, offset)
        } else {
            Value::Null
        };
        match done {
            None => {
                v["choices"] = json!([{
                    "index": 0, "text": text, "logprobs": lp_json, "finish_reason": null
                }]);
            }
            Some(s) => {
                v["choices"] = json!([{
                    "index": 0, "text": "", "logprobs": null, "finish_reason": s.finish_reason
                }]);
                v["usage"] = api::usage(s);
                v["timings"] = api::timings(s);
            }
        }
        v
    })
}

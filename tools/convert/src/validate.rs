//! Checks of untrusted input before it sizes anything: `config.json` values against sane
//! bounds and against the safetensors tensors present, safetensors headers against their
//! file, and weights that cannot be quantized. Every failure is one line naming the file,
//! the key or tensor, the value and what it contradicts.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rayon::prelude::*;
use safetensors::Dtype;
use serde_json::Value;

use crate::config::HParams;
use crate::error::{Error, Result};
use crate::source::{SafetensorsSet, StEntry};
use edgegemma::gguf::names::Arch;

/// The first non-finite weight of a chunk of rows (`row_len` wide) as (row, column, value).
/// The quantizers take a block's scale from its largest magnitude, so one NaN or infinity
/// would silently poison the whole block (32 to 256 weights).
pub fn first_non_finite(values: &[f32], row_len: usize) -> Option<(usize, usize, f32)> {
    values
        .par_chunks(row_len)
        .enumerate()
        .find_first(|(_, row)| row.iter().any(|x| !x.is_finite()))
        .map(|(r, row)| {
            let c = row.iter().position(|x| !x.is_finite()).expect("found");
            (r, c, row[c])
        })
}

/// Largest `config.json` read (real Gemma configs are 1-3 KB, with a per-layer
/// `layer_types` list at most ~2 KB more).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest `model.safetensors.index.json` read (one ~100-byte line per tensor: room for
/// 600,000 tensors, hundreds of times the largest Gemma checkpoint).
pub const MAX_INDEX_BYTES: u64 = 64 << 20;
/// Largest safetensors JSON header accepted (an entry is ~150 bytes: room for 400,000
/// tensors per shard; the safetensors crate's own limit is 100 MB).
pub const MAX_HEADER_BYTES: u64 = 64 << 20;

/// Reads a small JSON file, refusing one larger than `max` before allocating for it.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, "cannot read", e))?
        .len();
    if len > max {
        return Err(Error::at(
            path,
            format!("is {len} bytes; a file of this kind is at most {max} bytes"),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path, "cannot read", e))?;
    if bytes.len() as u64 > max {
        return Err(Error::at(path, format!("grew past {max} bytes while read")));
    }
    Ok(bytes)
}

/// Upper bounds of the integer `config.json` keys, each far above every released Gemma
/// (named in the reason) and low enough that per-layer tables, the vocabulary and the
/// tensor shapes derived from them stay small and their products cannot overflow before the
/// safetensors tensors are compared with them.
const INT_BOUNDS: [(&str, u64, &str); 14] = [
    ("num_hidden_layers", 1 << 10, "Gemma 3 27B has 62"),
    ("hidden_size", 1 << 16, "Gemma 3 27B has 5376"),
    ("intermediate_size", 1 << 20, "Gemma 3 27B has 21504"),
    ("num_attention_heads", 1 << 10, "Gemma 3 27B has 32"),
    ("num_key_value_heads", 1 << 10, "Gemma 3 27B has 16"),
    ("head_dim", 1 << 12, "Gemma has 256 at most"),
    ("vocab_size", 1 << 24, "Gemma 3 has 262208"),
    ("max_position_embeddings", 1 << 24, "Gemma 3 has 131072"),
    ("sliding_window", 1 << 24, "Gemma 2 has 4096"),
    ("attention_window_size", 1 << 24, "RecurrentGemma has 2048"),
    ("sliding_window_pattern", 1 << 10, "Gemma 3 has 6"),
    ("_sliding_window_pattern", 1 << 10, "Gemma 3 has 6"),
    ("lru_width", 1 << 20, "RecurrentGemma 9B has 4096"),
    ("conv1d_width", 1 << 10, "RecurrentGemma has 4"),
];

/// Ranges of the floating-point keys (exclusive lower bound, inclusive upper bound).
const FLOAT_BOUNDS: [(&str, f64, f64, &str); 8] = [
    ("rms_norm_eps", 0.0, 1.0, "Gemma uses 1e-6"),
    ("rope_theta", 0.0, 1e12, "Gemma 3 uses 1e6"),
    ("rope_local_base_freq", 0.0, 1e12, "Gemma 3 uses 1e4"),
    ("factor", 0.0, 1e6, "Gemma 3 uses 8"),
    ("query_pre_attn_scalar", 0.0, 1e9, "Gemma uses 256 at most"),
    ("attn_logit_softcapping", 0.0, 1e9, "Gemma 2 uses 50"),
    ("final_logit_softcapping", 0.0, 1e9, "Gemma 2 uses 30"),
    ("logits_soft_cap", 0.0, 1e9, "RecurrentGemma uses 30"),
];

/// `key`'s value (if set) against its bound; keys without one pass.
pub fn config_int(path: &Path, key: &str, value: Option<usize>) -> Result<Option<usize>> {
    match (value, INT_BOUNDS.iter().find(|(k, _, _)| *k == key)) {
        (Some(v), Some((_, max, why))) if v as u64 > *max => Err(Error::at(
            path,
            format!("\"{key}\" is {v}, above the supported maximum {max} ({why})"),
        )),
        _ => Ok(value),
    }
}

/// `key`'s value (if set; `json` as the file spells it) against its range; keys without
/// one pass.
pub fn config_float(
    path: &Path,
    key: &str,
    json: &Value,
    value: Option<f32>,
) -> Result<Option<f32>> {
    match (value, FLOAT_BOUNDS.iter().find(|(k, _, _, _)| *k == key)) {
        (Some(v), Some((_, lo, hi, why))) if !(f64::from(v) > *lo && f64::from(v) <= *hi) => {
            Err(Error::at(
                path,
                format!("\"{key}\" is {json}, outside the supported range ({lo}, {hi}] ({why})"),
            ))
        }
        _ => Ok(value),
    }
}

/// The checkpoint names where a text model's embedding can be (see `crate::hf`).
const EMBEDDINGS: [&str; 3] = [
    "model.embed_tokens.weight",
    "language_model.model.embed_tokens.weight",
    "model.language_model.embed_tokens.weight",
];

/// `config.json`'s sizes against the tensors present, before the tokenizer (sized by
/// `vocab_size`) and the tensor map (by `num_hidden_layers`) are built. Tensors that are
/// missing or of an unexpected rank are left to the full check of every tensor.
pub fn config_against_tensors(config: &Path, hp: &HParams, st: &SafetensorsSet) -> Result<()> {
    let Some((embd_name, embd)) = EMBEDDINGS.iter().find_map(|n| st.get(n).map(|e| (*n, e))) else {
        return Ok(());
    };
    // `axis` of the tensor should be `want` by config.json.
    let contradicts = |key: &str, value: String, tensor: &str, e: &StEntry, axis: usize, want| {
        let mut expected = e.shape.clone();
        expected[axis] = want;
        Error::at(
            config,
            format!(
                "{key} {value} contradicts {}: tensor {tensor:?} has shape {:?}, expected {expected:?} from config.json",
                st.file_of(e).display(),
                e.shape
            ),
        )
    };
    if let [rows, cols] = embd.shape[..] {
        if cols != hp.n_embd {
            return Err(contradicts(
                "hidden_size",
                hp.n_embd.to_string(),
                embd_name,
                embd,
                1,
                hp.n_embd,
            ));
        }
        if rows != hp.vocab_size {
            return Err(contradicts(
                "vocab_size",
                hp.vocab_size.to_string(),
                embd_name,
                embd,
                0,
                hp.vocab_size,
            ));
        }
    }

    // Layers present: 1 + the largest `layers.N.` index under the embedding's root.
    let layers = format!(
        "{}layers.",
        &embd_name[..embd_name.len() - "embed_tokens.weight".len()]
    );
    let mut last: Option<(u64, &str)> = None;
    for name in st.names() {
        let Some(rest) = name.strip_prefix(&layers) else {
            continue;
        };
        let index = rest.split('.').next().and_then(|i| i.parse::<u64>().ok());
        match index {
            Some(i) if last.is_none_or(|(l, _)| i > l) => last = Some((i, name)),
            Some(_) => {}
            None => {
                return Err(Error::at(
                    config,
                    format!("tensor {name:?} has no layer number after {layers:?}"),
                ))
            }
        }
    }
    let present = last.map_or(0, |(l, _)| l.saturating_add(1));
    if present != hp.n_layer as u64 {
        let held = match last {
            Some((l, name)) => format!(
                "the safetensors files hold layers 0 to {l} (e.g. {name:?} in {})",
                st.get(name)
                    .map_or_else(String::new, |e| st.file_of(e).display().to_string())
            ),
            None => "the safetensors files hold no layers".to_string(),
        };
        return Err(Error::at(
            config,
            format!(
                "num_hidden_layers {} contradicts the tensors: {held}",
                hp.n_layer
            ),
        ));
    }

    // Widths against the first layer of each kind.
    let layer = |i: usize, s: &str| format!("{layers}{i}.{s}");
    let rows_of = |name: &str| st.get(name).and_then(|e| e.shape.first().map(|&r| (r, e)));
    let check = |key: &str, want: usize, shown: String, name: String| -> Result<()> {
        match rows_of(&name) {
            Some((rows, e)) if rows != want => Err(contradicts(key, shown, &name, e, 0, want)),
            _ => Ok(()),
        }
    };
    let (h, kv, hd) = (hp.n_head, hp.n_head_kv, hp.head_dim);
    let attention = |i: usize, base: &str| -> Result<()> {
        check(
            "num_attention_heads × head_dim",
            h * hd,
            format!("{h} × {hd} = {}", h * hd),
            layer(i, &format!("{base}q_proj.weight")),
        )?;
        check(
            "num_key_value_heads × head_dim",
            kv * hd,
            format!("{kv} × {hd} = {}", kv * hd),
            layer(i, &format!("{base}k_proj.weight")),
        )
    };
    match hp.arch {
        Arch::Gemma | Arch::Gemma2 | Arch::Gemma3 => {
            attention(0, "self_attn.")?;
            if hp.arch == Arch::Gemma3 {
                check(
                    "head_dim",
                    hd,
                    hd.to_string(),
                    layer(0, "self_attn.q_norm.weight"),
                )?;
            }
            check(
                "intermediate_size",
                hp.n_ff,
                hp.n_ff.to_string(),
                layer(0, "mlp.gate_proj.weight"),
            )?;
        }
        Arch::RecurrentGemma => {
            check(
                "intermediate_size / 2",
                hp.n_ff,
                format!("{} / 2 = {}", 2 * hp.n_ff, hp.n_ff),
                layer(0, "mlp_block.gate_proj.weight"),
            )?;
            if let Some(i) = hp.attention_layers.iter().position(|&a| a) {
                attention(i, "temporal_block.")?;
            }
            if let Some(i) = hp.attention_layers.iter().position(|&a| !a) {
                check(
                    "lru_width",
                    hp.lru_width,
                    hp.lru_width.to_string(),
                    layer(i, "temporal_block.linear_x.weight"),
                )?;
                let conv = layer(i, "temporal_block.conv_1d.weight");
                if let Some(e) = st.get(&conv) {
                    if let [_, _, w] = e.shape[..] {
                        if w != hp.conv_width {
                            return Err(contradicts(
                                "conv1d_width",
                                hp.conv_width.to_string(),
                                &conv,
                                e,
                                2,
                                hp.conv_width,
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// A safetensors file's header against the file: the 8-byte length against the file size
/// and [`MAX_HEADER_BYTES`], the JSON, and per tensor a known dtype, a shape whose byte
/// size (overflow-checked) equals its `data_offsets` span, offsets inside the data region,
/// and no two tensors overlapping. Runs before the safetensors crate parses the header,
/// so a hostile file gets a message naming the tensor and the numbers that disagree.
pub fn safetensors_header(path: &Path, file: &[u8]) -> Result<()> {
    let bad = |msg: String| Error::at(path, format!("not a valid safetensors file: {msg}"));
    let file_len = file.len() as u64;
    let Some(len_bytes) = file.get(..8) else {
        return Err(bad(format!(
            "{file_len} bytes, shorter than the 8-byte header length"
        )));
    };
    let header_len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    if header_len > MAX_HEADER_BYTES {
        return Err(bad(format!(
            "header length {header_len} is above the {MAX_HEADER_BYTES} bytes accepted"
        )));
    }
    if header_len > file_len - 8 {
        return Err(bad(format!(
            "header length {header_len} exceeds the {} bytes after it (truncated?)",
            file_len - 8
        )));
    }
    let header = &file[8..8 + header_len as usize];
    let data_len = file_len - 8 - header_len;
    let json: Value = std::str::from_utf8(header)
        .map_err(|e| bad(format!("header is not UTF-8: {e}")))
        .and_then(|s| {
            serde_json::from_str(s).map_err(|e| bad(format!("header is not valid JSON: {e}")))
        })?;
    let Value::Object(entries) = json else {
        return Err(bad("header is not a JSON object".into()));
    };
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(entries.len());
    for (name, v) in &entries {
        if name == "__metadata__" {
            let strings = v
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string));
            if !strings {
                return Err(bad("\"__metadata__\" must map strings to strings".into()));
            }
            continue;
        }
        let field = |key: &str| {
            v.get(key)
                .ok_or_else(|| bad(format!("tensor {name:?} has no {key:?}")))
        };
        let dtype = field("dtype")?;
        let dtype: Dtype = serde_json::from_value(dtype.clone())
            .map_err(|_| bad(format!("tensor {name:?} has unknown dtype {dtype}")))?;
        let shape = field("shape")?;
        let dims: Vec<u64> = shape
            .as_array()
            .and_then(|a| a.iter().map(Value::as_u64).collect())
            .ok_or_else(|| {
                bad(format!(
                    "tensor {name:?}: shape {shape} is not a list of non-negative integers"
                ))
            })?;
        let offsets = field("data_offsets")?;
        let (start, end) = match offsets.as_array().map(|a| a.as_slice()) {
            Some([s, e]) => match (s.as_u64(), e.as_u64()) {
                (Some(s), Some(e)) => (s, e),
                _ => (u64::MAX, 0),
            },
            _ => (u64::MAX, 0),
        };
        if start > end {
            return Err(bad(format!(
                "tensor {name:?}: data_offsets {offsets} is not [start, end] with start <= end"
            )));
        }
        if end > data_len {
            return Err(bad(format!(
                "tensor {name:?}: data_offsets {offsets} end past the {data_len}-byte data region (truncated?)"
            )));
        }
        let bits = dims
            .iter()
            .try_fold(dtype.bitsize() as u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                bad(format!(
                    "tensor {name:?}: shape {shape} of {dtype:?} overflows 64-bit byte counts"
                ))
            })?;
        if bits % 8 != 0 || bits / 8 != end - start {
            return Err(bad(format!(
                "tensor {name:?}: shape {shape} of {dtype:?} is {} bytes, but data_offsets {offsets} hold {}",
                if bits % 8 == 0 {
                    (bits / 8).to_string()
                } else {
                    format!("{bits} bits (not whole bytes)")
                },
                end - start
            )));
        }
        spans.push((start, end, name));
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let ((s0, e0, a), (s1, e1, b)) = (pair[0], pair[1]);
        if s1 < e0 {
            return Err(bad(format!(
                "tensors {a:?} (bytes {s0}..{e0}) and {b:?} (bytes {s1}..{e1}) overlap"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_non_finite_weight() {
        let mut v = vec![0.5f32; 64];
        assert_eq!(first_non_finite(&v, 16), None);
        v[40] = f32::INFINITY;
        v[50] = f32::NAN;
        assert_eq!(first_non_finite(&v, 16), Some((2, 8, f32::INFINITY)));
    }
}

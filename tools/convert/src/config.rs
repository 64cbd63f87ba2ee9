//! `config.json` in both dialects (transformers 5: `rope_parameters`, `layer_types`, `dtype`;
//! older hub files: `rope_theta`, `rope_local_base_freq`, `rope_scaling`,
//! `sliding_window_pattern`, top-level `partial_rotary_factor`) read into one [`HParams`].
//! Absent keys take the transformers class defaults, so a file that relies on them converts
//! like transformers would load it.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::arch::Arch;
use crate::error::{Error, Result};

/// Hyperparameters of one checkpoint, already resolved to what the model computes.
#[derive(Clone, Debug, PartialEq)]
pub struct HParams {
    pub arch: Arch,
    /// `architectures[0]` as the config spells it.
    pub hf_architecture: String,
    pub n_layer: usize,
    pub n_embd: usize,
    /// The MLP width the model computes with (RecurrentGemma: half of `intermediate_size`).
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Rows of the embedding matrix (`vocab_size`).
    pub vocab_size: usize,
    pub rms_eps: f32,
    pub context_length: usize,
    /// RoPE base of the global (full-attention) layers; the only base for Gemma 1/2 and
    /// RecurrentGemma.
    pub rope_theta: f32,
    /// Gemma 3: RoPE base of the local (sliding-window) layers.
    pub rope_theta_local: Option<f32>,
    /// Linear RoPE scaling factor (positions divided by it) on the global layers.
    pub rope_linear_factor: Option<f32>,
    /// Gemma 2/3: window of the local layers; RecurrentGemma: the attention window.
    pub sliding_window: Option<usize>,
    /// Gemma 2/3: per layer, whether it uses the sliding window.
    pub local_layers: Vec<bool>,
    /// Gemma 2/3: queries are scaled by `query_pre_attn_scalar^-1/2`.
    pub query_pre_attn_scalar: Option<f32>,
    pub attn_softcap: Option<f32>,
    pub final_softcap: Option<f32>,
    pub tie_word_embeddings: bool,
    /// RecurrentGemma: per layer, whether it is an attention layer (else recurrent).
    pub attention_layers: Vec<bool>,
    /// RecurrentGemma: RG-LRU width.
    pub lru_width: usize,
    /// RecurrentGemma: temporal conv width.
    pub conv_width: usize,
    /// RecurrentGemma: rotated dims per head (partial RoPE).
    pub rope_dims: usize,
}

/// What a checkpoint holds, for checking a config's counts before they size anything: a
/// `num_hidden_layers` or `vocab_size` of 2^31 made per-layer tables and the vocabulary
/// 2-48 GB before any tensor was compared with them (the convert_config fuzz target).
pub struct Checkpoint {
    /// Tensors in the safetensors files.
    pub n_tensors: usize,
    /// Rows of the token embedding.
    pub embedding_rows: usize,
}

/// Fewest tensors a layer of any supported architecture has (Gemma 1: two norms and seven
/// projections).
pub const MIN_TENSORS_PER_LAYER: usize = 9;

/// A parsed `config.json`: the file and the object holding the text model's keys
/// (`text_config` for multimodal Gemma 3 checkpoints).
pub struct ConfigFile {
    pub path: PathBuf,
    pub root: Map<String, Value>,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<ConfigFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read", e))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::at(path, format!("not valid JSON: {e}")))?;
        match value {
            Value::Object(root) => Ok(ConfigFile {
                path: path.to_path_buf(),
                root,
            }),
            _ => Err(Error::at(path, "expected a JSON object")),
        }
    }

    /// Token ids given at the top level (`bos_token_id` ...), for the tokenizer fallback.
    pub fn token_id(&self, key: &str) -> Option<u32> {
        let v = self.root.get(key).or_else(|| {
            self.root
                .get("text_config")
                .and_then(|t| t.as_object())
                .and_then(|t| t.get(key))
        })?;
        v.as_u64().and_then(|x| u32::try_from(x).ok())
    }

    /// The hyperparameters, without a checkpoint to check the counts against (tests; the
    /// converter uses [`Self::hparams_checked`]).
    pub fn hparams(&self) -> Result<HParams> {
        self.resolve(None)
    }

    /// The hyperparameters, with `num_hidden_layers` and `vocab_size` checked against the
    /// checkpoint before anything is sized by them.
    pub fn hparams_checked(&self, checkpoint: &Checkpoint) -> Result<HParams> {
        self.resolve(Some(checkpoint))
    }

    fn resolve(&self, checkpoint: Option<&Checkpoint>) -> Result<HParams> {
        let hf_architecture = self.architecture()?;
        let arch = Arch::from_hf_architecture(&hf_architecture).ok_or_else(|| {
            Error::at(
                &self.path,
                format!(
                    "unsupported architecture {hf_architecture:?}; supported: {}",
                    Arch::SUPPORTED_HF.join(", ")
                ),
            )
        })?;
        let text = match self.root.get("text_config") {
            Some(Value::Object(t)) if hf_architecture == "Gemma3ForConditionalGeneration" => t,
            _ => &self.root,
        };
        let cfg = Cfg {
            path: &self.path,
            map: text,
            root: &self.root,
        };
        cfg.hparams(arch, hf_architecture, checkpoint)
    }

    fn architecture(&self) -> Result<String> {
        if let Some(v) = self.root.get("architectures") {
            let first = v
                .as_array()
                .and_then(|a| a.first())
                .and_then(|a| a.as_str())
                .ok_or_else(|| {
                    Error::at(&self.path, "\"architectures\" must be a list of strings")
                })?;
            return Ok(first.to_string());
        }
        // Older files name only the model type.
        let model_type = self
            .root
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                Error::at(
                    &self.path,
                    "neither \"architectures\" nor \"model_type\" is set",
                )
            })?;
        Ok(match model_type {
            "gemma" => "GemmaForCausalLM",
            "gemma2" => "Gemma2ForCausalLM",
            "gemma3_text" => "Gemma3ForCausalLM",
            "gemma3" => "Gemma3ForConditionalGeneration",
            "recurrent_gemma" => "RecurrentGemmaForCausalLM",
            other => other,
        }
        .to_string())
    }
}

struct Cfg<'a> {
    path: &'a Path,
    map: &'a Map<String, Value>,
    /// The top level (differs from `map` for multimodal configs).
    root: &'a Map<String, Value>,
}

impl Cfg<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::at(self.path, msg)
    }

    /// The value of `key`, treating JSON null like an absent key.
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn usize_opt(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|x| usize::try_from(x).ok())
                .filter(|&x| x > 0 && x <= u32::MAX as usize)
                .map(Some)
                .ok_or_else(|| self.err(format!("{key:?} must be a positive integer, found {v}"))),
        }
    }

    fn usize_req(&self, key: &str) -> Result<usize> {
        self.usize_opt(key)?
            .ok_or_else(|| self.err(format!("{key:?} is missing")))
    }

    fn f32_in(&self, obj: &Map<String, Value>, key: &str) -> Result<Option<f32>> {
        match obj.get(key).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|x| x as f32)
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| self.err(format!("{key:?} must be a number, found {v}"))),
        }
    }

    fn f32_opt(&self, key: &str) -> Result<Option<f32>> {
        self.f32_in(self.map, key)
    }

    fn positive_f32(&self, key: &str, v: Option<f32>) -> Result<Option<f32>> {
        match v {
            Some(x) if x <= 0.0 => Err(self.err(format!("{key:?} must be positive, found {x}"))),
            other => Ok(other),
        }
    }

    fn str_opt(&self, key: &str) -> Result<Option<&str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.err(format!("{key:?} must be a string, found {v}"))),
        }
    }

    fn string_list(&self, key: &str) -> Result<Option<Vec<&str>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str())
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| self.err(format!("{key:?} must be a list of strings"))),
            Some(v) => Err(self.err(format!("{key:?} must be a list of strings, found {v}"))),
        }
    }

    fn hparams(
        &self,
        arch: Arch,
        hf_architecture: String,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<HParams> {
        let n_layer = self.usize_req("num_hidden_layers")?;
        let n_embd = self.usize_req("hidden_size")?;
        let n_head = self.usize_req("num_attention_heads")?;
        let vocab_size = self.usize_req("vocab_size")?;
        if let Some(ck) = checkpoint {
            let needed = n_layer.saturating_mul(MIN_TENSORS_PER_LAYER);
            if needed > ck.n_tensors {
                return Err(self.err(format!(
                    "\"num_hidden_layers\" is {n_layer}, but the checkpoint has {} tensors (at least {MIN_TENSORS_PER_LAYER} per layer)",
                    ck.n_tensors
                )));
            }
            if vocab_size != ck.embedding_rows {
                return Err(self.err(format!(
                    "\"vocab_size\" is {vocab_size}, but the token embedding has {} rows",
                    ck.embedding_rows
                )));
            }
        }
        let intermediate = self.usize_req("intermediate_size")?;
        let n_head_kv = self.usize_opt("num_key_value_heads")?.unwrap_or(n_head);
        if n_head % n_head_kv != 0 {
            return Err(self.err(format!(
                "num_attention_heads {n_head} is not a multiple of num_key_value_heads {n_head_kv}"
            )));
        }
        let rms_eps = self.f32_opt("rms_norm_eps")?.unwrap_or(1e-6);
        if self.get("attention_bias").and_then(Value::as_bool) == Some(true) {
            return Err(self.err(
                "\"attention_bias\": true is not supported (Gemma projections have no bias)",
            ));
        }
        self.check_activation()?;
        let tie_word_embeddings = match self.get("tie_word_embeddings") {
            None => self
                .root
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.err("\"tie_word_embeddings\" must be true or false"))?,
        };

        let mut hp = HParams {
            arch,
            hf_architecture,
            n_layer,
            n_embd,
            n_ff: intermediate,
            n_head,
            n_head_kv,
            head_dim: 0,
            vocab_size,
            rms_eps,
            context_length: 0,
            rope_theta: 10000.0,
            rope_theta_local: None,
            rope_linear_factor: None,
            sliding_window: None,
            local_layers: vec![false; n_layer],
            query_pre_attn_scalar: None,
            attn_softcap: None,
            final_softcap: None,
            tie_word_embeddings,
            attention_layers: Vec::new(),
            lru_width: 0,
            conv_width: 0,
            rope_dims: 0,
        };

        match arch {
            Arch::Gemma | Arch::Gemma2 | Arch::Gemma3 => {
                hp.head_dim = self.usize_opt("head_dim")?.unwrap_or(256);
                hp.context_length = self
                    .usize_opt("max_position_embeddings")?
                    .unwrap_or(if arch == Arch::Gemma3 { 131072 } else { 8192 });
                let (default_theta, default_local) = match arch {
                    Arch::Gemma3 => (1_000_000.0, Some(10_000.0)),
                    _ => (10_000.0, None),
                };
                let rope = self.rope(default_theta, default_local)?;
                hp.rope_theta = rope.theta;
                hp.rope_linear_factor = rope.linear_factor;
                if arch == Arch::Gemma3 {
                    hp.rope_theta_local = rope.theta_local;
                }
                if rope.partial_rotary_factor.is_some_and(|p| p != 1.0) {
                    return Err(
                        self.err("partial_rotary_factor other than 1 is not supported for Gemma")
                    );
                }
                if arch != Arch::Gemma {
                    hp.local_layers = self.local_layers(arch, n_layer)?;
                    if hp.local_layers.contains(&true) {
                        hp.sliding_window = Some(self.usize_opt("sliding_window")?.unwrap_or(4096));
                    }
                    hp.query_pre_attn_scalar = Some(
                        self.positive_f32(
                            "query_pre_attn_scalar",
                            self.f32_opt("query_pre_attn_scalar")?,
                        )?
                        .unwrap_or(256.0),
                    );
                }
                // Gemma 2 defaults to 50 / 30; `null` turns a cap off.
                let (attn_default, final_default) = match arch {
                    Arch::Gemma2 => (Some(50.0), Some(30.0)),
                    _ => (None, None),
                };
                if arch != Arch::Gemma {
                    hp.attn_softcap = self.softcap("attn_logit_softcapping", attn_default)?;
                    hp.final_softcap = self.softcap("final_logit_softcapping", final_default)?;
                }
            }
            Arch::RecurrentGemma => {
                // transformers derives head_dim (and ignores a stored one).
                if n_embd % n_head != 0 {
                    return Err(self.err(format!(
                        "hidden_size {n_embd} is not a multiple of num_attention_heads {n_head}"
                    )));
                }
                hp.head_dim = n_embd / n_head;
                if intermediate % 2 != 0 {
                    return Err(self.err(format!(
                        "intermediate_size {intermediate} is odd; RecurrentGemma's MLP is intermediate_size / 2 wide"
                    )));
                }
                hp.n_ff = intermediate / 2;
                hp.context_length = self.usize_opt("max_position_embeddings")?.unwrap_or(8192);
                let rope = self.rope(10_000.0, None)?;
                hp.rope_theta = rope.theta;
                if rope.linear_factor.is_some() {
                    return Err(self.err("RoPE scaling is not supported for RecurrentGemma"));
                }
                let partial = rope.partial_rotary_factor.unwrap_or(0.5);
                let rope_dims = (hp.head_dim as f64 * partial as f64) as usize;
                if partial <= 0.0 || partial > 1.0 || rope_dims == 0 || !rope_dims.is_multiple_of(2)
                {
                    return Err(self.err(format!(
                        "partial_rotary_factor {partial} gives {rope_dims} rotated dims of head_dim {}; need an even number > 0",
                        hp.head_dim
                    )));
                }
                hp.rope_dims = rope_dims;
                hp.lru_width = self.usize_opt("lru_width")?.unwrap_or(n_embd);
                if !hp.lru_width.is_multiple_of(n_head) {
                    return Err(self.err(format!(
                        "lru_width {} is not a multiple of num_attention_heads {n_head} (the RG-LRU gate blocks)",
                        hp.lru_width
                    )));
                }
                hp.conv_width = self.usize_opt("conv1d_width")?.unwrap_or(4);
                hp.sliding_window = Some(self.usize_opt("attention_window_size")?.unwrap_or(2048));
                hp.final_softcap = self.softcap("logits_soft_cap", Some(30.0))?;
                hp.attention_layers = self.block_types(n_layer)?;
            }
        }
        Ok(hp)
    }

    fn check_activation(&self) -> Result<()> {
        // Gemma 1 configs say "gelu" and mean the tanh approximation (transformers remaps it).
        for key in ["hidden_activation", "hidden_act"] {
            if let Some(act) = self.str_opt(key)? {
                if !matches!(act, "gelu" | "gelu_pytorch_tanh" | "gelu_new") {
                    return Err(self.err(format!(
                        "{key:?} is {act:?}; Gemma models use the tanh GELU (gelu_pytorch_tanh)"
                    )));
                }
            }
        }
        Ok(())
    }

    fn softcap(&self, key: &str, default: Option<f32>) -> Result<Option<f32>> {
        let v = match self.map.get(key) {
            None => default,
            Some(Value::Null) => None,
            Some(_) => self.f32_opt(key)?,
        };
        self.positive_f32(key, v)
    }

    fn rope(&self, default_theta: f32, default_local: Option<f32>) -> Result<Rope> {
        let top_theta = self.positive_f32("rope_theta", self.f32_opt("rope_theta")?)?;
        let top_local = self.positive_f32(
            "rope_local_base_freq",
            self.f32_opt("rope_local_base_freq")?,
        )?;
        let top_partial = self.f32_opt("partial_rotary_factor")?;
        let object = |key: &str| -> Result<Option<&Map<String, Value>>> {
            match self.get(key) {
                None => Ok(None),
                Some(Value::Object(m)) => Ok(Some(m)),
                Some(v) => Err(self.err(format!("{key:?} must be an object, found {v}"))),
            }
        };
        if let Some(rp) = object("rope_parameters")? {
            let nested = |key: &str| -> Result<Option<&Map<String, Value>>> {
                match rp.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Object(m)) => Ok(Some(m)),
                    Some(v) => Err(self.err(format!(
                        "\"rope_parameters\".{key:?} must be an object, found {v}"
                    ))),
                }
            };
            let (full, sliding) = (nested("full_attention")?, nested("sliding_attention")?);
            if full.is_some() || sliding.is_some() {
                // Per layer type (Gemma 3 in transformers 5).
                let empty = Map::new();
                let full = full.unwrap_or(&empty);
                let sliding = sliding.unwrap_or(&empty);
                if self
                    .scaling(sliding, "rope_parameters.sliding_attention")?
                    .is_some()
                {
                    return Err(self.err(
                        "RoPE scaling on the sliding-window layers is not supported (Gemma 3 scales global layers only)",
                    ));
                }
                return Ok(Rope {
                    theta: self.f32_in(full, "rope_theta")?.unwrap_or(default_theta),
                    theta_local: self.f32_in(sliding, "rope_theta")?.or(default_local),
                    linear_factor: self.scaling(full, "rope_parameters.full_attention")?,
                    partial_rotary_factor: self.f32_in(full, "partial_rotary_factor")?,
                });
            }
            return Ok(Rope {
                theta: self
                    .f32_in(rp, "rope_theta")?
                    .or(top_theta)
                    .unwrap_or(default_theta),
                theta_local: top_local.or(default_local),
                linear_factor: self.scaling(rp, "rope_parameters")?,
                partial_rotary_factor: self.f32_in(rp, "partial_rotary_factor")?.or(top_partial),
            });
        }
        let linear_factor = match object("rope_scaling")? {
            Some(rs) => self.scaling(rs, "rope_scaling")?,
            None => None,
        };
        Ok(Rope {
            theta: top_theta.unwrap_or(default_theta),
            theta_local: top_local.or(default_local),
            linear_factor,
            partial_rotary_factor: top_partial,
        })
    }

    /// A RoPE scaling description: none/default, or linear with a factor.
    fn scaling(&self, obj: &Map<String, Value>, what: &str) -> Result<Option<f32>> {
        let ty = obj
            .get("rope_type")
            .or_else(|| obj.get("type"))
            .and_then(Value::as_str);
        match ty {
            None | Some("default") => Ok(None),
            Some("linear") => {
                let factor = self.f32_in(obj, "factor")?.ok_or_else(|| {
                    self.err(format!("{what}: linear scaling without \"factor\""))
                })?;
                if factor <= 0.0 {
                    return Err(self.err(format!("{what}: factor {factor} must be positive")));
                }
                Ok((factor != 1.0).then_some(factor))
            }
            Some(other) => Err(self.err(format!(
                "{what}: RoPE scaling type {other:?} is not supported (only linear)"
            ))),
        }
    }

    /// Gemma 2/3: which layers use the sliding window. `layer_types` decides when present.
    fn local_layers(&self, arch: Arch, n_layer: usize) -> Result<Vec<bool>> {
        if let Some(types) = self.string_list("layer_types")? {
            if types.len() != n_layer {
                return Err(self.err(format!(
                    "\"layer_types\" has {} entries for {n_layer} layers",
                    types.len()
                )));
            }
            return types
                .iter()
                .map(|t| match *t {
                    "sliding_attention" => Ok(true),
                    "full_attention" => Ok(false),
                    other => {
                        Err(self.err(format!("\"layer_types\": unknown layer type {other:?}")))
                    }
                })
                .collect();
        }
        if arch == Arch::Gemma2 {
            return Ok((0..n_layer).map(|i| i % 2 == 0).collect());
        }
        let period = match self.usize_opt("sliding_window_pattern")? {
            Some(p) => p,
            None => self.usize_opt("_sliding_window_pattern")?.unwrap_or(6),
        };
        Ok((0..n_layer).map(|i| (i + 1) % period != 0).collect())
    }

    /// RecurrentGemma: `block_types` cycled over the layers (true = attention).
    fn block_types(&self, n_layer: usize) -> Result<Vec<bool>> {
        let cycle: Vec<bool> = match self.string_list("block_types")? {
            Some(types) => types
                .iter()
                .map(|t| match *t {
                    "recurrent" => Ok(false),
                    "attention" => Ok(true),
                    other => {
                        Err(self.err(format!("\"block_types\": unknown block type {other:?}")))
                    }
                })
                .collect::<Result<_>>()?,
            None => vec![false, false, true],
        };
        if cycle.is_empty() {
            return Err(self.err("\"block_types\" is empty"));
        }
        Ok((0..n_layer).map(|i| cycle[i % cycle.len()]).collect())
    }
}

struct Rope {
    theta: f32,
    theta_local: Option<f32>,
    linear_factor: Option<f32>,
    partial_rotary_factor: Option<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<HParams> {
        let root = match serde_json::from_str(json).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        ConfigFile {
            path: PathBuf::from("config.json"),
            root,
        }
        .hparams()
    }

    const GEMMA3_BASE: &str = r#""architectures": ["Gemma3ForCausalLM"], "hidden_size": 64,
        "num_hidden_layers": 7, "num_attention_heads": 4, "num_key_value_heads": 1,
        "head_dim": 16, "intermediate_size": 128, "vocab_size": 512"#;

    #[test]
    fn gemma3_dialects_agree() {
        let v5 = parse(&format!(
            r#"{{{GEMMA3_BASE}, "layer_types": ["sliding_attention","sliding_attention",
            "sliding_attention","sliding_attention","sliding_attention","full_attention",
            "sliding_attention"], "rope_parameters": {{"full_attention": {{"rope_theta": 1e6,
            "rope_type": "linear", "factor": 8.0}}, "sliding_attention": {{"rope_theta": 1e4,
            "rope_type": "default"}}}}, "sliding_window": 10}}"#
        ))
        .unwrap();
        let hub = parse(&format!(
            r#"{{{GEMMA3_BASE}, "sliding_window_pattern": 6, "rope_theta": 1e6,
            "rope_local_base_freq": 1e4, "rope_scaling": {{"type": "linear", "factor": 8.0}},
            "sliding_window": 10}}"#
        ))
        .unwrap();
        assert_eq!(v5, hub);
        assert_eq!(v5.local_layers, [true, true, true, true, true, false, true]);
        assert_eq!(v5.rope_linear_factor, Some(8.0));
        assert_eq!(v5.rope_theta_local, Some(1e4));
        assert_eq!(v5.query_pre_attn_scalar, Some(256.0));
    }

    #[test]
    fn layer_types_win_over_the_pattern() {
        let hp = parse(&format!(
            r#"{{{GEMMA3_BASE}, "sliding_window_pattern": 2, "layer_types": ["full_attention",
            "sliding_attention","full_attention","full_attention","full_attention",
            "full_attention","full_attention"]}}"#
        ))
        .unwrap();
        assert_eq!(
            hp.local_layers,
            [false, true, false, false, false, false, false]
        );
        assert_eq!(hp.sliding_window, Some(4096));
    }

    #[test]
    fn recurrent_gemma_mlp_is_half_the_intermediate_size() {
        let hp = parse(
            r#"{"architectures": ["RecurrentGemmaForCausalLM"], "hidden_size": 48,
            "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 192,
            "vocab_size": 512, "lru_width": 64, "rope_parameters": {"rope_theta": 10000.0,
            "partial_rotary_factor": 0.5}, "attention_window_size": 16}"#,
        )
        .unwrap();
        assert_eq!(hp.n_ff, 96);
        assert_eq!(hp.head_dim, 12);
        assert_eq!(hp.rope_dims, 6);
        assert_eq!(hp.n_head_kv, 4);
        assert_eq!(hp.attention_layers, [false, false, true, false]);
        assert_eq!(hp.final_softcap, Some(30.0));
    }

    #[test]
    fn bad_configs_name_the_key() {
        let e = parse(r#"{"architectures": ["LlamaForCausalLM"]}"#).unwrap_err();
        assert!(
            e.message()
                .contains("unsupported architecture \"LlamaForCausalLM\""),
            "{e}"
        );
        let e = parse(&format!(r#"{{{GEMMA3_BASE}, "hidden_act": "relu"}}"#)).unwrap_err();
        assert!(e.message().contains("hidden_act"), "{e}");
        let e = parse(
            r#"{"architectures": ["GemmaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
            "intermediate_size": 128, "vocab_size": 512}"#,
        )
        .unwrap_err();
        assert!(
            e.message().contains("\"num_hidden_layers\" is missing"),
            "{e}"
        );
        let e = parse(&format!(
            r#"{{{GEMMA3_BASE}, "rope_scaling": {{"rope_type": "yarn", "factor": 4.0}}}}"#
        ))
        .unwrap_err();
        assert!(e.message().contains("yarn"), "{e}");
    }
}

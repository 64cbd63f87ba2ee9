//! `edgegemma-convert hf`: a Hugging Face model folder to a GGUF plan.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use edgegemma::gguf::OwnedValue;

use crate::arch::{self, Arch, TensorMap};
use crate::config::{Checkpoint, ConfigFile, HParams};
use crate::error::{Error, Result};
use crate::pipeline::{Job, Plan};
use crate::recipe::{self, FileType};
use crate::source::SafetensorsSet;
use crate::tokenizer::{self, Tokenizer};

/// An opened model folder: config, mapped weights, tokenizer.
pub struct HfModel {
    pub dir: PathBuf,
    pub hparams: HParams,
    pub weights: SafetensorsSet,
    pub tokenizer: Tokenizer,
}

/// Where the text model's tensors live: `model.` (causal LM checkpoints) or a multimodal
/// checkpoint's language-model root.
struct Root {
    model: &'static str,
    lm_head: &'static str,
}

const ROOTS: [Root; 3] = [
    Root {
        model: "model.",
        lm_head: "lm_head.weight",
    },
    Root {
        model: "language_model.model.",
        lm_head: "language_model.lm_head.weight",
    },
    Root {
        model: "model.language_model.",
        lm_head: "lm_head.weight",
    },
];

impl Root {
    /// The checkpoint name of a [`TensorMap::hf`] name.
    fn name(&self, hf: &str) -> String {
        match hf.strip_prefix("model.") {
            Some(rest) => format!("{}{rest}", self.model),
            None if hf == "lm_head.weight" => self.lm_head.to_string(),
            None => hf.to_string(),
        }
    }
}

const NO_EMBEDDING: &str =
    "no model.embed_tokens.weight in the safetensors files (not a Gemma text checkpoint?)";

impl HfModel {
    pub fn open(dir: &Path) -> Result<HfModel> {
        if !dir.is_dir() {
            return Err(Error::at(
                dir,
                "not a folder (expected a Hugging Face model folder)",
            ));
        }
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(Error::at(
                dir,
                "no config.json (expected a Hugging Face model folder)",
            ));
        }
        let config = ConfigFile::read(&config_path)?;
        // The weights first: the config's layer count and vocabulary size are checked
        // against them before they size anything (the tokenizer allocates per vocab id).
        let weights = SafetensorsSet::open(dir)?;
        let embedding = ROOTS
            .iter()
            .find_map(|r| weights.get(&r.name("model.embed_tokens.weight")))
            .ok_or_else(|| Error::at(dir, NO_EMBEDDING))?;
        let checkpoint = Checkpoint {
            n_tensors: weights.names().count(),
            embedding_rows: embedding.shape.first().copied().unwrap_or(0),
        };
        let hparams = config.hparams_checked(&checkpoint)?;
        let tokenizer = tokenizer::load(
            dir,
            &config,
            hparams.vocab_size,
            hparams.arch.truncates_embedding(),
        )?;
        Ok(HfModel {
            dir: dir.to_path_buf(),
            hparams,
            weights,
            tokenizer,
        })
    }

    fn root(&self) -> Result<&'static Root> {
        ROOTS
            .iter()
            .find(|r| {
                self.weights
                    .get(&r.name("model.embed_tokens.weight"))
                    .is_some()
            })
            .ok_or_else(|| Error::at(&self.dir, NO_EMBEDDING))
    }

    /// The tensor map with every source checked (present, readable dtype, expected shape)
    /// and every checkpoint tensor accounted for.
    pub fn tensor_maps(&self) -> Result<Vec<(TensorMap, String)>> {
        let hp = &self.hparams;
        let root = self.root()?;
        let lm_head = root.name("lm_head.weight");
        let has_lm_head = self.weights.get(&lm_head).is_some();
        let untied = !hp.tie_word_embeddings;
        if untied && !has_lm_head {
            return Err(Error::at(
                &self.dir,
                format!("tie_word_embeddings is false but {lm_head} is missing"),
            ));
        }
        if untied && matches!(hp.arch, Arch::Gemma | Arch::Gemma2) {
            return Err(Error::at(
                &self.dir,
                format!(
                    "an untied {lm_head} is not supported for {} (llama.cpp ties its output to the embedding)",
                    hp.arch.gguf_name()
                ),
            ));
        }
        let maps = arch::tensor_map(hp, self.tokenizer.vocab.len(), untied);
        let mut used: HashSet<String> = HashSet::new();
        if has_lm_head && !untied {
            // Tied: the checkpoint's copy is dropped, as llama.cpp's converter does.
            used.insert(lm_head.clone());
        }
        let mut out = Vec::with_capacity(maps.len());
        for m in maps {
            let name = root.name(&m.hf);
            let e = self.weights.get(&name).ok_or_else(|| {
                Error::at(
                    &self.dir,
                    format!(
                        "missing tensor {name:?} (needed for {}; config.json describes a {} model with {} layers)",
                        m.gguf,
                        hp.hf_architecture,
                        hp.n_layer
                    ),
                )
            })?;
            let file = self.weights.file_of(e);
            if let Err(dt) = e.elem {
                return Err(Error::at(
                    file,
                    format!("tensor {name:?} has dtype {dt:?}; only F32, F16 and BF16 can be read"),
                ));
            }
            if e.shape != m.hf_shape {
                return Err(Error::at(
                    file,
                    format!(
                        "tensor {name:?} has shape {:?}, expected {:?} from config.json",
                        e.shape, m.hf_shape
                    ),
                ));
            }
            used.insert(name.clone());
            out.push((m, name));
        }
        let mut unexpected: Vec<&str> = self
            .weights
            .names()
            .filter(|n| !used.contains(*n) && !arch::skipped_hf_tensor(n))
            .collect();
        unexpected.sort_unstable();
        if let Some(first) = unexpected.first() {
            let e = self.weights.get(first).expect("listed");
            return Err(Error::at(
                self.weights.file_of(e),
                format!(
                    "unexpected tensor {first:?}{} (not part of a {} model with this config.json)",
                    if unexpected.len() > 1 {
                        format!(" and {} more", unexpected.len() - 1)
                    } else {
                        String::new()
                    },
                    hp.hf_architecture
                ),
            ));
        }
        // llama.cpp's order: tensors outside blocks by name, then block by block by name.
        out.sort_by(|(a, _), (b, _)| tensor_order(&a.gguf).cmp(&tensor_order(&b.gguf)));
        Ok(out)
    }

    pub fn plan(&self, ftype: FileType, pure: bool) -> Result<Plan<'_>> {
        let hp = &self.hparams;
        let maps = self.tensor_maps()?;
        let shapes: Vec<(&str, &[u64])> = maps
            .iter()
            .map(|(m, _)| (m.gguf.as_str(), m.ne.as_slice()))
            .collect();
        let choices = recipe::choose_types(&shapes, ftype, pure, hp.n_layer);
        let mut jobs = Vec::with_capacity(maps.len());
        let mut dtypes = std::collections::BTreeSet::new();
        for ((m, name), choice) in maps.iter().zip(choices) {
            let e = self.weights.get(name).expect("checked");
            let elem = e.elem.expect("checked");
            dtypes.insert(elem.name());
            // Tensors llama.cpp never quantizes are written as F32.
            let ty = choice.ty.unwrap_or(edgegemma::gguf::GgmlType::F32);
            let note = choice
                .fell_back_from
                .map(|from| format!("{from} needs rows of {}", from.block_size()));
            jobs.push(Job {
                name: m.gguf.clone(),
                dims: m.ne.clone(),
                ty,
                note,
                source: Box::new(
                    self.weights
                        .source(name, elem, m.transform, m.ne[0] as usize),
                ),
            });
        }
        let model_name = self
            .dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".to_string());
        let mut metadata: Vec<(String, OwnedValue)> = vec![
            (
                "general.architecture".into(),
                OwnedValue::from(hp.arch.gguf_name()),
            ),
            ("general.type".into(), OwnedValue::from("model")),
            ("general.name".into(), OwnedValue::String(model_name)),
        ];
        metadata.extend(arch::metadata(hp));
        metadata.extend(self.tokenizer.metadata.iter().cloned());
        // Last, where llama.cpp's quantizer puts them: then `hf -t T` is byte for byte
        // what llama.cpp's quantizer makes from our f32 file.
        metadata.extend(file_type_keys(ftype));
        Ok(Plan {
            input: format!(
                "{} ({}, {} layers, {})",
                self.dir.display(),
                hp.hf_architecture,
                hp.n_layer,
                dtypes.into_iter().collect::<Vec<_>>().join("+")
            ),
            metadata,
            jobs,
            notes: vec![format!(
                "tokenizer: {}, {} tokens",
                self.tokenizer.source,
                self.tokenizer.vocab.len()
            )],
        })
    }
}

/// Sort key: tensors outside blocks first, then by block number, then by name (the order of
/// llama.cpp's quantizer, whose "more bits" layer counting follows it).
pub fn tensor_order(name: &str) -> (i64, &str) {
    let layer = name
        .strip_prefix("blk.")
        .and_then(|r| r.split('.').next())
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(-1);
    (layer, name)
}

/// `general.quantization_version` and `general.file_type`, in llama.cpp's order.
pub fn file_type_keys(ftype: FileType) -> [(String, OwnedValue); 2] {
    [
        ("general.quantization_version".into(), OwnedValue::U32(2)),
        (
            "general.file_type".into(),
            OwnedValue::U32(ftype.llama_ftype()),
        ),
    ]
}

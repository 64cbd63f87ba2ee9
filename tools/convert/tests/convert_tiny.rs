//! The tiny random-weight checkpoints of all four architectures (f32 and bf16, both config
//! dialects), converted to every type whose reference quantizer gguf-py has, checked tensor by
//! tensor: bytes equal to gguf-py's (hashes in tests/data/tiny_goldens.json, written by
//! tools/gen_convert_goldens.py), dequantized values within the type's error bound of the
//! checkpoint, 1-D tensors exact, names, shapes, keys and tokenizer arrays as specified.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use edgegemma::gguf::{GgmlType, GgufFile, Value as GValue};
use edgegemma_convert::recipe::quantizable;
use serde_json::Value;

const MODELS: [&str; 7] = [
    "gemma1-mqa-f32",
    "gemma1-mha-bf16",
    "gemma2-f32",
    "gemma3-f32",
    "gemma3-scaled-bf16",
    "recurrentgemma-f32",
    "recurrentgemma-bf16",
];
const TYPES: [&str; 6] = ["f32", "f16", "bf16", "q8_0", "q4_0", "q5_0"];

fn goldens() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_goldens.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn convert_to(dir: &Path, model_dir: &Path, name: &str, ty: &str) -> PathBuf {
    let out = dir.join(format!("{name}-{ty}.gguf"));
    convert_ok(&[
        "hf",
        model_dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-t",
        ty,
        "-q",
    ]);
    out
}

/// The type the recipe must choose for a tensor of a tiny model (rows of 40/48 elements
/// or multiples of 32; no k-quant fits).
fn expected_type(name: &str, ne: &[u64], ty: &str) -> GgmlType {
    if !quantizable(name, ne) {
        return GgmlType::F32;
    }
    let base = match ty {
        "f32" => return GgmlType::F32,
        "f16" => return GgmlType::F16,
        "bf16" => return GgmlType::BF16,
        "q8_0" => GgmlType::Q8_0,
        "q4_0" => GgmlType::Q4_0,
        "q5_0" => GgmlType::Q5_0,
        other => panic!("{other}"),
    };
    let mut want = if name == "token_embd.weight" {
        if !ne[0].is_multiple_of(32) || base == GgmlType::Q8_0 {
            GgmlType::Q8_0
        } else {
            GgmlType::Q6_K
        }
    } else if name.contains("rglru_gate_") {
        GgmlType::Q8_0
    } else {
        base
    };
    if want == GgmlType::Q6_K && !ne[0].is_multiple_of(256) {
        want = GgmlType::Q8_0;
    }
    if !ne[0].is_multiple_of(32) {
        want = GgmlType::F16;
    }
    want
}

/// The checkpoint tensor as the GGUF should hold it (before quantization).
fn reference(
    g: &Value,
    ck: &std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
) -> Vec<f32> {
    let (shape, vals) = &ck[g["hf"].as_str().unwrap()];
    let n: u64 = g["ne"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .product();
    match g["transform"].as_str().unwrap() {
        "norm" => vals.iter().map(|x| x + 1.0).collect(),
        "rows" => vals[..n as usize].to_vec(),
        "transpose_blocks" => {
            let (h, b) = (shape[0], shape[1]);
            let mut out = vec![0.0; vals.len()];
            for k in 0..h {
                for i in 0..b {
                    for o in 0..b {
                        out[(k * b + o) * b + i] = vals[(k * b + i) * b + o];
                    }
                }
            }
            out
        }
        "copy" | "squeeze" => vals.clone(),
        other => panic!("{other}"),
    }
}

/// Checks `got` (dequantized) against `want` within what `ty` can represent.
fn check_values(name: &str, ty: GgmlType, got: &[f32], want: &[f32], row_len: usize) {
    assert_eq!(got.len(), want.len(), "{name}");
    match ty {
        GgmlType::F32 => {
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{name}[{i}]: {g} vs {w}");
            }
        }
        GgmlType::F16 | GgmlType::BF16 => {
            let rel = if ty == GgmlType::F16 {
                2f32.powi(-11)
            } else {
                2f32.powi(-8)
            };
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g - w).abs() <= w.abs() * rel + 2f32.powi(-25),
                    "{name}[{i}] {ty}: {g} vs {w}"
                );
            }
        }
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => {
            // Step d = amax / (127 | 8 | 16); rounding costs d/2 (Q8_0), the clamp of the
            // largest opposite-sign value up to d (Q4_0/Q5_0); d itself is rounded to f16.
            let (levels, steps) = match ty {
                GgmlType::Q8_0 => (127.0, 0.5),
                GgmlType::Q4_0 => (8.0, 1.0),
                _ => (16.0, 1.0),
            };
            assert_eq!(row_len % 32, 0);
            for (b, (gb, wb)) in got.chunks(32).zip(want.chunks(32)).enumerate() {
                let amax = wb.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                let d = amax / levels;
                let bound = (d * steps + d * levels * 2f32.powi(-11)) * 1.001 + 1e-12;
                for (i, (g, w)) in gb.iter().zip(wb).enumerate() {
                    assert!(
                        (g - w).abs() <= bound,
                        "{name} block {b}[{i}] {ty}: {g} vs {w} (bound {bound})"
                    );
                }
            }
        }
        other => panic!("{name}: unexpected type {other}"),
    }
}

fn check_key(f: &GgufFile, key: &str, spec: &Value) {
    let (kind, v) = spec.as_object().unwrap().iter().next().unwrap();
    match kind.as_str() {
        "u32" => assert_eq!(f.get_u32(key).unwrap(), v.as_u64().unwrap() as u32, "{key}"),
        "f32" => assert_eq!(
            f.get(key),
            Some(GValue::F32(v.as_f64().unwrap() as f32)),
            "{key}"
        ),
        "str" => assert_eq!(f.get_str(key).unwrap(), v.as_str().unwrap(), "{key}"),
        "bool[]" => {
            let want: Vec<bool> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_bool().unwrap())
                .collect();
            assert_eq!(f.get_bool_array(key).unwrap(), want, "{key}");
        }
        "u32[]" => {
            let want: Vec<u32> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(f.get_u32_array(key).unwrap(), want, "{key}");
            assert!(
                matches!(f.get(key), Some(GValue::Array(a)) if a.elem_type() == edgegemma::gguf::ValueType::U32)
            );
        }
        other => panic!("{other}"),
    }
}

fn check_file(path: &Path, model: &str, ty: &str, golden: &Value) {
    let f = GgufFile::open(path).unwrap();
    let arch = golden["arch"].as_str().unwrap();
    assert_eq!(f.architecture().unwrap(), arch);
    let ftype = edgegemma_convert::recipe::FileType::parse(ty).unwrap();
    assert_eq!(f.get_u32("general.file_type").unwrap(), ftype.llama_ftype());
    let ck = read_checkpoint(&tiny(model).join("model.safetensors"));

    // Names: exactly the golden set, in llama.cpp's order (outside blocks, then by block).
    let tensors = golden["tensors"].as_object().unwrap();
    let mut want_names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    want_names.sort_by_key(|n| edgegemma_convert::hf::tensor_order(n));
    let names: Vec<&str> = f.tensors().map(|t| t.name()).collect();
    assert_eq!(names, want_names, "{model} {ty}: tensor names/order");

    for t in f.tensors() {
        let g = &tensors[t.name()];
        let ne: Vec<u64> = g["ne"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(t.dims(), ne.as_slice(), "{model} {ty} {}", t.name());
        let want_ty = expected_type(t.name(), &ne, ty);
        assert_eq!(t.ggml_type(), want_ty, "{model} {ty} {}", t.name());
        let sha = g["sha"][t.ggml_type().name()].as_str().unwrap_or_else(|| {
            panic!("{model} {ty} {}: no golden for {}", t.name(), t.ggml_type())
        });
        assert_eq!(
            sha16(t.data()),
            sha,
            "{model} {ty} {}: bytes differ from gguf-py's {}",
            t.name(),
            t.ggml_type()
        );
        let want = reference(g, &ck);
        check_values(t.name(), t.ggml_type(), &dequantize(&t), &want, t.row_len());
    }

    // Architecture keys: every expected one, and nothing else under the arch prefix.
    let keys = golden["keys"].as_object().unwrap();
    for (k, spec) in keys {
        check_key(&f, k, spec);
    }
    for (k, _) in f.metadata() {
        if k.starts_with(&format!("{arch}.")) {
            assert!(keys.contains_key(k), "{model} {ty}: unexpected key {k}");
        }
    }

    // Tokenizer.
    let tok = &golden["tokenizer"];
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), "llama");
    assert_eq!(f.get_str("tokenizer.ggml.pre").unwrap(), "default");
    let tokens = f.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len() as u64, tok["n_tokens"].as_u64().unwrap());
    assert_eq!(
        sha16(tokens.join("\0").as_bytes()),
        tok["tokens_sha"].as_str().unwrap()
    );
    let scores: Vec<u8> = f
        .get_f32_array("tokenizer.ggml.scores")
        .unwrap()
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(
        sha16(&scores),
        tok["scores_sha"].as_str().unwrap(),
        "{model} scores"
    );
    let types: Vec<u8> = f
        .get_i32_array("tokenizer.ggml.token_type")
        .unwrap()
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(
        sha16(&types),
        tok["types_sha"].as_str().unwrap(),
        "{model} types"
    );
    for (k, id) in tok["ids"].as_object().unwrap() {
        assert_eq!(
            f.get_u32(k).unwrap(),
            id.as_u64().unwrap() as u32,
            "{model} {k}"
        );
    }
    assert!(!f.get_bool("tokenizer.ggml.add_space_prefix").unwrap());
    assert!(f.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert!(!f.get_bool("tokenizer.ggml.add_eos_token").unwrap());
    if let Some(t) = tok["chat_template"].as_str() {
        assert_eq!(f.get_str("tokenizer.chat_template").unwrap(), t);
    }
    // The token count is the embedding's row count.
    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.dims()[1], tokens.len() as u64);
}

#[test]
fn every_tensor_matches_gguf_py_and_the_checkpoint() {
    let golden = goldens();
    let dir = scratch("tiny-all-types");
    for model in MODELS {
        for ty in TYPES {
            let out = convert_to(&dir, &tiny(model), model, ty);
            check_file(&out, model, ty, &golden["models"][model]);
        }
    }
}

#[test]
fn both_config_dialects_give_identical_files() {
    let dir = scratch("dialects");
    for model in MODELS {
        let src = tiny(model);
        let other = ["config.v5.json", "config.hub.json"]
            .into_iter()
            .find(|n| src.join(n).is_file())
            .unwrap();
        // Same folder name, so general.name agrees.
        let alt = dir.join("alt").join(model);
        copy_dir(&src, &alt);
        std::fs::copy(src.join(other), alt.join("config.json")).unwrap();
        let a = convert_to(&dir, &src, &format!("{model}-orig"), "q8_0");
        let b = convert_to(&dir, &alt, &format!("{model}-alt"), "q8_0");
        let (fa, fb) = (GgufFile::open(&a).unwrap(), GgufFile::open(&b).unwrap());
        // The oracle gives the two dialects different context lengths; all else must agree.
        let meta = |f: &GgufFile| -> Vec<(String, String)> {
            f.metadata()
                .filter(|(k, _)| !k.ends_with(".context_length"))
                .map(|(k, v)| (k.to_string(), format!("{:?}", v.to_owned_value())))
                .collect()
        };
        assert_eq!(meta(&fa), meta(&fb), "{model}: keys differ with {other}");
        for (ta, tb) in fa.tensors().zip(fb.tensors()) {
            assert_eq!(ta.name(), tb.name());
            assert_eq!(ta.ggml_type(), tb.ggml_type(), "{model} {}", ta.name());
            assert!(
                ta.data() == tb.data(),
                "{model} {}: data differs with {other}",
                ta.name()
            );
        }
        assert_eq!(fa.tensor_count(), fb.tensor_count());
    }
}

#[test]
fn quantizing_an_f32_gguf_equals_converting_directly() {
    let dir = scratch("requantize");
    for model in ["gemma3-scaled-bf16", "recurrentgemma-f32", "gemma2-f32"] {
        let f32 = convert_to(&dir, &tiny(model), model, "f32");
        for ty in ["q8_0", "q4_0", "f16"] {
            let direct = convert_to(&dir, &tiny(model), model, ty);
            let via = dir.join(format!("{model}-via-f32-{ty}.gguf"));
            convert_ok(&[
                "quantize",
                f32.to_str().unwrap(),
                "-o",
                via.to_str().unwrap(),
                "-t",
                ty,
                "-q",
            ]);
            assert!(
                std::fs::read(&direct).unwrap() == std::fs::read(&via).unwrap(),
                "{model} {ty}: quantize(f32 GGUF) differs from hf → {ty}"
            );
        }
    }
}

#[test]
fn requantizing_needs_the_flag_and_keeps_unchanged_tensors() {
    let dir = scratch("requantize-flag");
    let q8 = convert_to(&dir, &tiny("gemma2-f32"), "gemma2", "q8_0");
    let out = dir.join("q4.gguf");
    let args = [
        "quantize",
        q8.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-t",
        "q4_0",
        "-q",
    ];
    let o = convert(&args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--allow-requantize"), "{}", stderr(&o));
    assert!(!out.exists());
    let mut with_flag = args.to_vec();
    with_flag.push("--allow-requantize");
    let o = convert(&with_flag);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: requantizing"),
        "{}",
        stderr(&o)
    );
    // q8_0 → q8_0 copies every tensor unchanged.
    let same = dir.join("q8-again.gguf");
    convert_ok(&[
        "quantize",
        q8.to_str().unwrap(),
        "-o",
        same.to_str().unwrap(),
        "-t",
        "q8_0",
        "-q",
    ]);
    assert!(std::fs::read(&same).unwrap() == std::fs::read(&q8).unwrap());
}

/// A multimodal Gemma 3 checkpoint (`Gemma3ForConditionalGeneration`: `text_config`,
/// `language_model.` tensor roots, vision tensors) converts to the text model's file.
#[test]
fn the_text_model_of_a_multimodal_checkpoint() {
    let dir = scratch("multimodal");
    let src = tiny("gemma3-f32");
    let text: Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    for (root, model_dir) in [
        ("language_model.model.", "a"),
        ("model.language_model.", "b"),
    ] {
        let mm = dir.join(model_dir).join("gemma3-f32");
        copy_dir(&src, &mm);
        let config = serde_json::json!({
            "architectures": ["Gemma3ForConditionalGeneration"],
            "model_type": "gemma3",
            "text_config": text,
            "vision_config": {"hidden_size": 8},
            "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0
        });
        std::fs::write(mm.join("config.json"), config.to_string()).unwrap();
        let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
            read_checkpoint(&src.join("model.safetensors"))
                .into_iter()
                .map(|(n, (s, v))| (n.replacen("model.", root, 1), s, v))
                .collect();
        tensors.push((
            "vision_tower.vision_model.post_layernorm.weight".into(),
            vec![8],
            vec![0.5; 8],
        ));
        tensors.push((
            "multi_modal_projector.mm_input_projection_weight".into(),
            vec![8, 48],
            vec![0.1; 384],
        ));
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        write_safetensors(&mm.join("model.safetensors"), &tensors, false);
        let text_out = convert_to(&dir.join(model_dir), &src, "text", "q8_0");
        let mm_out = convert_to(&dir.join(model_dir), &mm, "mm", "q8_0");
        let (a, b) = (
            GgufFile::open(&text_out).unwrap(),
            GgufFile::open(&mm_out).unwrap(),
        );
        assert_eq!(a.tensor_count(), b.tensor_count());
        for (ta, tb) in a.tensors().zip(b.tensors()) {
            assert_eq!(ta.name(), tb.name());
            assert!(ta.data() == tb.data(), "{root}: {}", ta.name());
        }
        assert_eq!(
            b.get_u32("gemma3.attention.sliding_window_pattern")
                .unwrap(),
            6
        );
    }
}

//! k-quant paths on a synthetic Gemma 3 checkpoint whose rows are multiples of 256 (the
//! tiny checkpoints' are not): q4_k_m's layer mix and q6_k, every block equal to the kernels
//! crate's reference quantizer (verified against llama.cpp's C reference there), and a
//! checkpoint sharded over two files converting to the same bytes as the single file.

mod common;

use std::path::Path;

use common::*;
use edgegemma::gguf::{GgmlType, GgufFile};
use edgegemma_kernels::formats::quantize_row;
use serde_json::json;

const D: usize = 256;
const H: usize = 2;
const HD: usize = 128;
const F: usize = 512;
const L: usize = 4;
const V: usize = 512;

type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// A 4-layer Gemma 3 with D = 256, F = 512, H·d = 256 and the tiny Gemma 3 tokenizer.
fn synthetic_gemma3(dir: &Path, bf16: bool) -> Tensors {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tiny("gemma3-f32").join(f), dir.join(f)).unwrap();
    }
    let config = json!({
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
        "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": H,
        "num_key_value_heads": 1, "head_dim": HD, "intermediate_size": F, "vocab_size": V,
        "sliding_window": 32, "query_pre_attn_scalar": HD, "rms_norm_eps": 1e-6,
        "max_position_embeddings": 4096, "rope_theta": 1e6, "rope_local_base_freq": 1e4,
        "sliding_window_pattern": 6, "hidden_activation": "gelu_pytorch_tanh",
        "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut t: Tensors = Vec::new();
    let mut seed = 7;
    let mut add = |name: String, shape: Vec<usize>, scale: f32| {
        seed += 1;
        let n = shape.iter().product();
        let mut v = random(n, seed, scale);
        // Outliers, so k-quant scale search and clamping matter.
        for i in (0..n).step_by(997) {
            v[i] *= 6.0;
        }
        t.push((name, shape, v));
    };
    add("model.embed_tokens.weight".into(), vec![V, D], 0.05);
    add("model.norm.weight".into(), vec![D], 0.3);
    for i in 0..L {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        for (n, shape) in [
            ("self_attn.q_proj.weight", vec![H * HD, D]),
            ("self_attn.k_proj.weight", vec![HD, D]),
            ("self_attn.v_proj.weight", vec![HD, D]),
            ("self_attn.o_proj.weight", vec![D, H * HD]),
            ("mlp.gate_proj.weight", vec![F, D]),
            ("mlp.up_proj.weight", vec![F, D]),
            ("mlp.down_proj.weight", vec![D, F]),
        ] {
            add(p(n), shape, 0.04);
        }
        for n in [
            "input_layernorm.weight",
            "post_attention_layernorm.weight",
            "pre_feedforward_layernorm.weight",
            "post_feedforward_layernorm.weight",
        ] {
            add(p(n), vec![D], 0.3);
        }
        add(p("self_attn.q_norm.weight"), vec![HD], 0.3);
        add(p("self_attn.k_norm.weight"), vec![HD], 0.3);
    }
    if bf16 {
        for (_, _, v) in &mut t {
            for x in v.iter_mut() {
                *x = half::bf16::from_f32(*x).to_f32();
            }
        }
    }
    write_safetensors(&dir.join("model.safetensors"), &t, bf16);
    t
}

fn gguf_name(hf: &str) -> String {
    let map = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("self_attn.q_proj.weight", "attn_q.weight"),
        ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.v_proj.weight", "attn_v.weight"),
        ("self_attn.o_proj.weight", "attn_output.weight"),
        ("mlp.gate_proj.weight", "ffn_gate.weight"),
        ("mlp.up_proj.weight", "ffn_up.weight"),
        ("mlp.down_proj.weight", "ffn_down.weight"),
    ];
    for (h, g) in map {
        if hf == h {
            return g.to_string();
        }
        if let Some(rest) = hf.strip_prefix("model.layers.") {
            if let Some(layer) = rest.strip_suffix(&format!(".{h}")) {
                return format!("blk.{layer}.{g}");
            }
        }
    }
    String::new()
}

fn check_kquant_file(path: &Path, tensors: &Tensors, want: impl Fn(&str) -> GgmlType) {
    let f = GgufFile::open(path).unwrap();
    let mut checked = 0;
    for (hf, _, vals) in tensors {
        let name = gguf_name(hf);
        if name.is_empty() {
            continue; // norms: covered by the tiny-model tests
        }
        let t = f.tensor(&name).unwrap();
        assert_eq!(t.ggml_type(), want(&name), "{name}");
        let row_len = t.row_len();
        let rb = t.row_bytes();
        let mut expect = vec![0u8; rb];
        for (r, row) in vals.chunks(row_len).enumerate() {
            quantize_row(t.ggml_type(), row, &mut expect).unwrap();
            assert!(
                t.row(r).unwrap() == expect.as_slice(),
                "{name} row {r}: bytes differ from the reference {} quantizer",
                t.ggml_type()
            );
        }
        // And the values are close: relative RMS error of the whole tensor.
        let got = dequantize(&t);
        let (mut err, mut norm) = (0.0f64, 0.0f64);
        for (g, w) in got.iter().zip(vals) {
            err += f64::from(g - w).powi(2);
            norm += f64::from(*w).powi(2);
        }
        let rel = (err / norm).sqrt();
        let bound = match t.ggml_type() {
            GgmlType::Q4_K => 0.12,
            GgmlType::Q6_K => 0.03,
            other => panic!("{name}: {other}"),
        };
        assert!(
            rel < bound,
            "{name} {}: relative RMS error {rel}",
            t.ggml_type()
        );
        checked += 1;
    }
    assert_eq!(checked, 1 + 7 * L);
}

#[test]
fn q4_k_m_and_q6_k_blocks_equal_the_reference_quantizers() {
    let dir = scratch("kquants");
    let model = dir.join("synthetic-gemma3");
    let tensors = synthetic_gemma3(&model, false);
    let out = dir.join("q4_k_m.gguf");
    convert_ok(&[
        "hf",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-t",
        "q4_k_m",
        "-q",
    ]);
    // 4 layers: "more bits" for attn_v / ffn_down are layers 2 and 3.
    check_kquant_file(&out, &tensors, |name| {
        let more = name.starts_with("blk.2.") || name.starts_with("blk.3.");
        if name == "token_embd.weight"
            || (more && (name.ends_with("attn_v.weight") || name.ends_with("ffn_down.weight")))
        {
            GgmlType::Q6_K
        } else {
            GgmlType::Q4_K
        }
    });
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.get_u32("general.file_type").unwrap(), 15);
    // Pattern 6 over 4 layers: all local, which no period ≥ 2 expresses: one bool per layer.
    assert_eq!(
        f.get_bool_array("gemma3.attention.sliding_window_pattern")
            .unwrap(),
        [true; L]
    );

    let out = dir.join("q6_k.gguf");
    convert_ok(&[
        "hf",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-t",
        "q6_k",
        "-q",
    ]);
    check_kquant_file(&out, &tensors, |_| GgmlType::Q6_K);

    // --pure: the embedding and the mixed layers take the one type too.
    let out = dir.join("q4_k_m-pure.gguf");
    convert_ok(&[
        "hf",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-t",
        "q4_k_m",
        "--pure",
        "-q",
    ]);
    check_kquant_file(&out, &tensors, |_| GgmlType::Q4_K);
}

#[test]
fn a_sharded_bf16_checkpoint_converts_like_the_single_file() {
    let dir = scratch("shards");
    let single = dir.join("one").join("synthetic");
    let tensors = synthetic_gemma3(&single, true);
    let sharded = dir.join("two").join("synthetic");
    std::fs::create_dir_all(&sharded).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json", "config.json"] {
        std::fs::copy(single.join(f), sharded.join(f)).unwrap();
    }
    let (a, b) = tensors.split_at(tensors.len() / 2);
    write_safetensors(&sharded.join("model-00001-of-00002.safetensors"), a, true);
    write_safetensors(&sharded.join("model-00002-of-00002.safetensors"), b, true);
    let mut map = serde_json::Map::new();
    for (part, file) in [
        (a, "model-00001-of-00002.safetensors"),
        (b, "model-00002-of-00002.safetensors"),
    ] {
        for (n, _, _) in part {
            map.insert(n.clone(), json!(file));
        }
    }
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    for ty in ["q4_k_m", "bf16"] {
        let o1 = dir.join(format!("one-{ty}.gguf"));
        let o2 = dir.join(format!("two-{ty}.gguf"));
        convert_ok(&[
            "hf",
            single.to_str().unwrap(),
            "-o",
            o1.to_str().unwrap(),
            "-t",
            ty,
            "-q",
        ]);
        convert_ok(&[
            "hf",
            sharded.to_str().unwrap(),
            "-o",
            o2.to_str().unwrap(),
            "-t",
            ty,
            "-q",
        ]);
        assert!(
            std::fs::read(&o1).unwrap() == std::fs::read(&o2).unwrap(),
            "{ty}"
        );
    }
    // bf16 → BF16 keeps the checkpoint's bits.
    let f = GgufFile::open(dir.join("one-bf16.gguf")).unwrap();
    let t = f.tensor("blk.1.ffn_up.weight").unwrap();
    assert_eq!(t.ggml_type(), GgmlType::BF16);
    let want: Vec<u8> = tensors
        .iter()
        .find(|(n, _, _)| n == "model.layers.1.mlp.up_proj.weight")
        .unwrap()
        .2
        .iter()
        .flat_map(|x| half::bf16::from_f32(*x).to_bits().to_le_bytes())
        .collect();
    assert!(t.data() == want.as_slice());
}

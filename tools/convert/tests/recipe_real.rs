//! The q4_k_m recipe against a file llama.cpp made: applied to the real Gemma 3 270M's
//! tensor shapes it must give exactly the types llama.cpp chose (Q6_K → Q8_0 and
//! Q4_K → Q5_0 fallbacks on the 640-wide rows included). The shapes and types are committed
//! (tests/data/gemma3-270m-q4_k_m.types.tsv); when the model itself is present
//! (`tools/fetch-real-model.sh`), the plan for the file is checked too.

use std::path::Path;

use edgegemma::gguf::{GgmlType, GgufFile};
use edgegemma_convert::hf::tensor_order;
use edgegemma_convert::recipe::{choose_types, FileType};
use edgegemma_convert::requantize;
use edgegemma_test_support::real_model;

fn ggml_type(name: &str) -> GgmlType {
    GgmlType::ALL
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("type {name}"))
}

fn real_types() -> Vec<(String, Vec<u64>, GgmlType)> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gemma3-270m-q4_k_m.types.tsv");
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut f = l.split('\t');
            let name = f.next().unwrap().to_string();
            let dims = f
                .next()
                .unwrap()
                .split(',')
                .map(|x| x.parse().unwrap())
                .collect();
            (name, dims, ggml_type(f.next().unwrap()))
        })
        .collect()
}

#[test]
fn q4_k_m_plan_for_the_real_shapes_equals_llama_cpp_types() {
    let real = real_types();
    assert_eq!(real.len(), 236);
    // llama.cpp wrote them in the order the recipe counts layers in.
    let mut sorted: Vec<&str> = real.iter().map(|(n, _, _)| n.as_str()).collect();
    sorted.sort_by_key(|n| tensor_order(n));
    let names: Vec<&str> = real.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, sorted);
    let shapes: Vec<(&str, &[u64])> = real
        .iter()
        .map(|(n, d, _)| (n.as_str(), d.as_slice()))
        .collect();
    let choices = choose_types(&shapes, FileType::Q4KM, false, 18);
    let mut fallbacks = 0;
    for ((name, _, want), c) in real.iter().zip(&choices) {
        assert_eq!(c.ty.unwrap_or(GgmlType::F32), *want, "{name}");
        fallbacks += usize::from(c.fell_back_from.is_some());
    }
    // attn_v (Q6_K → Q8_0 on 9 layers, Q4_K → Q5_0 on 9) and q/k/gate/up of 18 layers
    // (Q4_K → Q5_0); token_embd goes to Q8_0 directly (the output rule).
    assert_eq!(fallbacks, 18 + 4 * 18);
}

#[test]
fn gemma3_1b_shapes_hit_the_same_fallbacks() {
    // Gemma 3 1B: D = 1152 (not a multiple of 256), F = 6912, H·d = 1024, 26 layers.
    let mut t: Vec<(String, Vec<u64>)> = vec![("token_embd.weight".into(), vec![1152, 262144])];
    for i in 0..26 {
        for (n, d) in [
            ("attn_k.weight", [1152u64, 256]),
            ("attn_output.weight", [1024, 1152]),
            ("attn_q.weight", [1152, 1024]),
            ("attn_v.weight", [1152, 256]),
            ("ffn_down.weight", [6912, 1152]),
            ("ffn_gate.weight", [1152, 6912]),
        ] {
            t.push((format!("blk.{i}.{n}"), d.to_vec()));
        }
    }
    let shapes: Vec<(&str, &[u64])> = t.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    let c = choose_types(&shapes, FileType::Q4KM, false, 26);
    let ty = |name: &str| {
        c[t.iter().position(|(n, _)| n == name).unwrap()]
            .ty
            .unwrap()
    };
    assert_eq!(ty("token_embd.weight"), GgmlType::Q8_0);
    assert_eq!(ty("blk.0.attn_q.weight"), GgmlType::Q5_0);
    assert_eq!(ty("blk.0.attn_v.weight"), GgmlType::Q8_0); // Q6_K → Q8_0
    assert_eq!(ty("blk.5.attn_v.weight"), GgmlType::Q8_0); // (5 - 26/8) % 3 == 2
    assert_eq!(ty("blk.4.attn_v.weight"), GgmlType::Q5_0); // Q4_K → Q5_0
    assert_eq!(ty("blk.0.ffn_down.weight"), GgmlType::Q6_K);
    assert_eq!(ty("blk.4.ffn_down.weight"), GgmlType::Q4_K);
    assert_eq!(ty("blk.0.attn_output.weight"), GgmlType::Q4_K);
    // q4_0: the tied embedding would be Q6_K, falls back to Q8_0 on 1152-wide rows.
    let c = choose_types(&shapes, FileType::Q4_0, false, 26);
    assert_eq!(c[0].ty, Some(GgmlType::Q8_0));
    assert_eq!(c[1].ty, Some(GgmlType::Q4_0));
}

#[test]
fn requantizing_the_real_file_to_q4_k_m_changes_nothing() {
    let Some(path) = real_model() else {
        eprintln!(
            "skipped: models/real/gemma3-270m-q4_k_m.gguf is absent (tools/fetch-real-model.sh)"
        );
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    // No --allow-requantize: the plan must keep every tensor's type.
    let plan =
        requantize::plan(&file, FileType::Q4KM, false, false, &mut |w| panic!("{w}")).unwrap();
    assert_eq!(plan.jobs.len(), file.tensor_count());
    for j in &plan.jobs {
        assert_eq!(
            j.ty,
            file.tensor(&j.name).unwrap().ggml_type(),
            "{}",
            j.name
        );
    }
}

//! A SentencePiece `tokenizer.model` (no tokenizer.json) gives the same token list, types
//! and special ids as the tokenizer.json of the same vocabulary; its scores are taken as
//! stored.

mod common;

use common::*;
use edgegemma::gguf::GgufFile;
use edgegemma_convert::spm::{encode_pieces, Piece, PieceType};

#[test]
fn sentencepiece_model_and_tokenizer_json_agree() {
    let dir = scratch("spm");
    let json_out = dir.join("json.gguf");
    convert_ok(&[
        "hf",
        tiny("gemma2-f32").to_str().unwrap(),
        "-o",
        json_out.to_str().unwrap(),
        "-t",
        "f16",
        "-q",
    ]);
    let jf = GgufFile::open(&json_out).unwrap();
    let tokens = jf.get_str_array("tokenizer.ggml.tokens").unwrap();
    let types = jf.get_i32_array("tokenizer.ggml.token_type").unwrap();
    let scores = jf.get_f32_array("tokenizer.ggml.scores").unwrap();

    // The SentencePiece model a Gemma folder would ship: control and byte pieces typed,
    // user-defined pieces as such, NORMAL scores decreasing with id. Whitespace-only
    // user-defined pieces are written with ▁ there.
    let pieces: Vec<Piece> = tokens
        .iter()
        .zip(&types)
        .zip(&scores)
        .map(|((t, &ty), &s)| Piece {
            text: t.replace(' ', "\u{2581}"),
            score: if ty == 1 { s - 0.5 } else { 0.0 },
            ty: match ty {
                1 => PieceType::Normal,
                2 => PieceType::Unknown,
                3 => PieceType::Control,
                4 => PieceType::UserDefined,
                6 => PieceType::Byte,
                other => panic!("type {other}"),
            },
        })
        .collect();
    let model = dir.join("gemma2-spm");
    copy_dir(&tiny("gemma2-f32"), &model);
    std::fs::remove_file(model.join("tokenizer.json")).unwrap();
    std::fs::write(model.join("tokenizer.model"), encode_pieces(&pieces)).unwrap();
    let spm_out = dir.join("spm.gguf");
    convert_ok(&[
        "hf",
        model.to_str().unwrap(),
        "-o",
        spm_out.to_str().unwrap(),
        "-t",
        "f16",
        "-q",
    ]);
    let sf = GgufFile::open(&spm_out).unwrap();
    assert_eq!(sf.get_str_array("tokenizer.ggml.tokens").unwrap(), tokens);
    assert_eq!(
        sf.get_i32_array("tokenizer.ggml.token_type").unwrap(),
        types
    );
    let spm_scores = sf.get_f32_array("tokenizer.ggml.scores").unwrap();
    for (i, (&a, &b)) in spm_scores.iter().zip(&scores).enumerate() {
        let want = if types[i] == 1 { b - 0.5 } else { b };
        assert_eq!(a, want, "score of token {i}");
    }
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.eot_token_id",
    ] {
        assert_eq!(sf.get_u32(key).unwrap(), jf.get_u32(key).unwrap(), "{key}");
    }
    assert!(sf.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    // The weights are unaffected by where the tokenizer came from.
    for (a, b) in sf.tensors().zip(jf.tensors()) {
        assert!(a.data() == b.data(), "{}", a.name());
    }
}

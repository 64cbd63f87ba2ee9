//! Tokenizer tests: a small hand-made vocabulary (always run) and the real Gemma 3
//! vocabulary against llama.cpp's ids in `tests/data/tokenizer_ids_gemma3.json` (run when
//! the real model is present: `$EDGEGEMMA_REAL_MODEL` or
//! `models/real/gemma3-270m-q4_k_m.gguf`).

use std::path::PathBuf;

use edgegemma::tokenizer::{token_type as tt, SpecialTokens, StreamDecoder, Tokenizer};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Small hand-made vocabulary
// ---------------------------------------------------------------------------------------

/// pad 0, eos 1, bos 2, unk 3, then the given pieces, then 256 byte tokens.
fn small_vocab(pieces: &[(&str, f32, i32)], special: SpecialTokens) -> Tokenizer {
    let mut tokens: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut scores = vec![-1000.0; 4];
    let mut types = vec![tt::CONTROL, tt::CONTROL, tt::CONTROL, tt::UNKNOWN];
    for &(p, s, t) in pieces {
        tokens.push(p.to_string());
        scores.push(s);
        types.push(t);
    }
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        types.push(tt::BYTE);
    }
    Tokenizer::new(&tokens, &scores, &types, special).unwrap()
}

fn id(t: &Tokenizer, piece: &str) -> u32 {
    t.token_id(piece)
        .unwrap_or_else(|| panic!("{piece:?} not in vocab"))
}

fn byte_id(t: &Tokenizer, b: u8) -> u32 {
    id(t, &format!("<0x{b:02X}>"))
}

const N: i32 = tt::NORMAL;

#[test]
fn merges_follow_score_not_position() {
    // "abc": "bc" (-1) beats "ab" (-2), so the result is a + bc, not ab + c.
    let t = small_vocab(
        &[
            ("a", -5.0, N),
            ("b", -5.0, N),
            ("c", -5.0, N),
            ("ab", -2.0, N),
            ("bc", -1.0, N),
        ],
        SpecialTokens::gemma(),
    );
    assert_eq!(
        t.encode("abc", false, true),
        vec![id(&t, "a"), id(&t, "bc")]
    );
    // With the scores swapped, ab + c.
    let t = small_vocab(
        &[
            ("a", -5.0, N),
            ("b", -5.0, N),
            ("c", -5.0, N),
            ("ab", -1.0, N),
            ("bc", -2.0, N),
        ],
        SpecialTokens::gemma(),
    );
    assert_eq!(
        t.encode("abc", false, true),
        vec![id(&t, "ab"), id(&t, "c")]
    );
}

#[test]
fn equal_scores_merge_leftmost_first() {
    let t = small_vocab(&[("a", -5.0, N), ("aa", -1.0, N)], SpecialTokens::gemma());
    // aaa: the leftmost pair merges first -> aa + a.
    assert_eq!(
        t.encode("aaa", false, true),
        vec![id(&t, "aa"), id(&t, "a")]
    );
    let t = small_vocab(
        &[
            ("x", -5.0, N),
            ("y", -5.0, N),
            ("xy", -1.0, N),
            ("yx", -1.0, N),
        ],
        SpecialTokens::gemma(),
    );
    // xyx: xy and yx tie; xy is further left.
    assert_eq!(
        t.encode("xyx", false, true),
        vec![id(&t, "xy"), id(&t, "x")]
    );
    // yxy: yx is further left.
    assert_eq!(
        t.encode("yxy", false, true),
        vec![id(&t, "yx"), id(&t, "y")]
    );
}

#[test]
fn merges_chain_into_longer_pieces() {
    let t = small_vocab(
        &[
            ("h", -9.0, N),
            ("e", -9.0, N),
            ("l", -9.0, N),
            ("o", -9.0, N),
            ("he", -3.0, N),
            ("ll", -2.0, N),
            ("llo", -4.0, N),
            ("hello", -1.0, N),
            ("hell", -8.0, N),
        ],
        SpecialTokens::gemma(),
    );
    // ll, he, llo, then "he"+"llo" = hello.
    assert_eq!(t.encode("hello", false, true), vec![id(&t, "hello")]);
    // ll, he, then "he"+"ll" = hell: a low score only orders merges, it never blocks one.
    assert_eq!(
        t.encode("hellx", false, true),
        vec![id(&t, "hell"), byte_id(&t, b'x')]
    );
}

#[test]
fn spaces_become_the_escape_char_and_no_prefix_is_added() {
    let t = small_vocab(
        &[
            ("\u{2581}", -5.0, N),
            ("a", -5.0, N),
            ("b", -5.0, N),
            ("\u{2581}b", -1.0, N),
            ("\u{2581}a", -1.0, N),
        ],
        SpecialTokens::gemma(),
    );
    // No dummy prefix: the first word has no leading ▁.
    assert_eq!(
        t.encode("a b", false, true),
        vec![id(&t, "a"), id(&t, "\u{2581}b")]
    );
    assert_eq!(t.encode(" a", false, true), vec![id(&t, "\u{2581}a")]);
    // With add_space_prefix (SentencePiece's default) the text gets one.
    let t2 = small_vocab(
        &[
            ("\u{2581}", -5.0, N),
            ("a", -5.0, N),
            ("b", -5.0, N),
            ("\u{2581}b", -1.0, N),
            ("\u{2581}a", -1.0, N),
        ],
        SpecialTokens {
            add_space_prefix: true,
            ..SpecialTokens::gemma()
        },
    );
    assert_eq!(
        t2.encode("a b", false, true),
        vec![id(&t2, "\u{2581}a"), id(&t2, "\u{2581}b")]
    );
    assert_eq!(
        t.decode(&t.encode(" a b ", false, true), false).unwrap(),
        " a b "
    );
}

#[test]
fn unknown_characters_fall_back_to_bytes() {
    let t = small_vocab(&[("a", -5.0, N)], SpecialTokens::gemma());
    let ids = t.encode("a€a", false, true);
    // € = E2 82 AC
    assert_eq!(
        ids,
        vec![
            id(&t, "a"),
            byte_id(&t, 0xE2),
            byte_id(&t, 0x82),
            byte_id(&t, 0xAC),
            id(&t, "a")
        ]
    );
    assert_eq!(t.decode(&ids, false).unwrap(), "a€a");
}

#[test]
fn special_tokens_match_longest_first_and_per_type() {
    let t = small_vocab(
        &[
            ("<start_of_turn>", -1000.0, tt::CONTROL),
            ("<end_of_turn>", -1000.0, tt::CONTROL),
            ("\n", -1000.0, tt::USER_DEFINED),
            ("\n\n", -1000.0, tt::USER_DEFINED),
            ("<b>", -1000.0, tt::USER_DEFINED),
            ("<b>x", -1000.0, tt::USER_DEFINED),
            ("u", -5.0, N),
            ("s", -5.0, N),
            ("e", -5.0, N),
            ("r", -5.0, N),
            ("us", -2.0, N),
            ("er", -2.0, N),
            ("user", -1.0, N),
        ],
        SpecialTokens::gemma(),
    );
    let sot = id(&t, "<start_of_turn>");
    let eot = id(&t, "<end_of_turn>");
    let nl = id(&t, "\n");
    let nl2 = id(&t, "\n\n");
    let user = id(&t, "user");
    assert_eq!(
        t.encode("<start_of_turn>user\n\n\n<end_of_turn>", true, true),
        vec![2, sot, user, nl2, nl, eot]
    );
    // Without parse_special, CONTROL text is plain text but USER_DEFINED still matches.
    let plain = t.encode("<start_of_turn>\n", false, false);
    assert!(!plain.contains(&sot));
    assert_eq!(*plain.last().unwrap(), nl);
    assert_eq!(plain[0], byte_id(&t, b'<'));
    // Longest first: "<b>x" wins over "<b>".
    assert_eq!(
        t.encode("<b>x<b>", false, false),
        vec![id(&t, "<b>x"), id(&t, "<b>")]
    );
    // A shorter token never splits a longer one already matched, but does match beside it.
    assert_eq!(t.encode("\n\n\n\n\n", false, false), vec![nl2, nl2, nl]);
    // is_eog: eos and <end_of_turn> (found by text).
    assert!(t.is_eog(1));
    assert!(t.is_eog(eot));
    assert!(!t.is_eog(sot));
    assert_eq!(t.end_of_turn_id(), Some(eot));
    assert_eq!(t.start_of_turn_id(), Some(sot));
    assert_eq!(t.eot_id(), Some(eot));
}

#[test]
fn partition_takes_tokens_in_length_order_not_leftmost() {
    // llama.cpp splits the text token by token, longest first: in "abcd" the longer "bcd"
    // is cut out before "ab" is looked for, although "ab" starts further left.
    let t = small_vocab(
        &[
            ("ab", -1000.0, tt::USER_DEFINED),
            ("bcd", -1000.0, tt::USER_DEFINED),
            ("a", -5.0, N),
        ],
        SpecialTokens::gemma(),
    );
    assert_eq!(
        t.encode("abcd", false, false),
        vec![id(&t, "a"), id(&t, "bcd")]
    );
}

#[test]
fn bos_follows_both_the_flag_and_the_model() {
    let t = small_vocab(&[("a", -5.0, N)], SpecialTokens::gemma());
    assert_eq!(t.encode("a", true, true), vec![2, id(&t, "a")]);
    assert_eq!(t.encode("a", false, true), vec![id(&t, "a")]);
    assert_eq!(t.encode("", true, true), vec![2]);
    assert!(t.encode("", false, true).is_empty());
    // <bos> in the text is a token only with parse_special; a second BOS is kept.
    assert_eq!(t.encode("<bos>a", true, true), vec![2, 2, id(&t, "a")]);
    let no_bos = small_vocab(
        &[("a", -5.0, N)],
        SpecialTokens {
            add_bos: false,
            ..SpecialTokens::gemma()
        },
    );
    assert_eq!(no_bos.encode("a", true, true), vec![id(&no_bos, "a")]);
    let with_eos = small_vocab(
        &[("a", -5.0, N)],
        SpecialTokens {
            add_eos: true,
            ..SpecialTokens::gemma()
        },
    );
    assert_eq!(
        with_eos.encode("a", true, true),
        vec![2, id(&with_eos, "a"), 1]
    );
}

#[test]
fn decode_renders_pieces() {
    let t = small_vocab(
        &[
            ("<end_of_turn>", -1000.0, tt::CONTROL),
            ("\u{2581}hi", -1.0, N),
            ("  ", -1000.0, tt::USER_DEFINED),
            ("<unused0>", -1000.0, tt::UNUSED),
        ],
        SpecialTokens::gemma(),
    );
    let eot = id(&t, "<end_of_turn>");
    let hi = id(&t, "\u{2581}hi");
    let two = id(&t, "  ");
    let unused = id(&t, "<unused0>");
    assert_eq!(t.decode(&[2, hi, two, eot], false).unwrap(), " hi  ");
    assert_eq!(
        t.decode(&[2, hi, eot], true).unwrap(),
        "<bos> hi<end_of_turn>"
    );
    assert_eq!(t.token_to_piece(unused, true), Some(&[][..]));
    assert_eq!(t.token_to_piece(byte_id(&t, 0x41), false), Some(&b"A"[..]));
    let err = t.decode(&[t.len() as u32], false).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
}

#[test]
fn stream_decoder_holds_back_partial_characters() {
    let t = small_vocab(&[("a", -5.0, N)], SpecialTokens::gemma());
    let ids = t.encode("a😀a", false, true); // a, F0 9F 98 80, a
    assert_eq!(ids.len(), 6);
    let mut d = StreamDecoder::new(false);
    let got: Vec<String> = ids
        .iter()
        .map(|&i| d.push(&t, i).unwrap().to_string())
        .collect();
    assert_eq!(got, vec!["a", "", "", "", "😀", "a"]);
    assert_eq!(d.finish(), "");

    // An invalid byte becomes U+FFFD at once; an unfinished one at the end on finish().
    let mut d = StreamDecoder::new(false);
    assert_eq!(d.push(&t, byte_id(&t, 0xFF)).unwrap(), "\u{FFFD}");
    assert_eq!(d.push(&t, byte_id(&t, 0xE2)).unwrap(), "");
    assert_eq!(d.push(&t, id(&t, "a")).unwrap(), "\u{FFFD}a");
    assert_eq!(d.push(&t, byte_id(&t, 0xE2)).unwrap(), "");
    assert_eq!(d.pending_bytes(), &[0xE2]);
    assert_eq!(d.finish(), "\u{FFFD}");
    assert!(d.push(&t, u32::MAX).is_err());
}

#[test]
fn bad_vocabularies_are_refused_with_a_reason() {
    let toks = ["a", "b", "a"];
    let err = Tokenizer::new(
        &toks,
        &[],
        &[],
        SpecialTokens {
            bos: Some(0),
            eos: Some(1),
            unk: Some(1),
            pad: None,
            ..SpecialTokens::gemma()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("same text"), "{err}");

    let err = Tokenizer::new(&["a", "b"], &[0.0], &[], SpecialTokens::gemma()).unwrap_err();
    assert!(err.to_string().contains("1 scores for 2 tokens"), "{err}");

    let err = Tokenizer::new(&["a", "b"], &[], &[], SpecialTokens::gemma()).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");

    let empty: [&str; 0] = [];
    assert!(Tokenizer::new(&empty, &[], &[], SpecialTokens::gemma()).is_err());

    let err = Tokenizer::new(
        &["<pad>", "<eos>", "<bos>", "<unk>", "<0xZZ>"],
        &[],
        &[tt::CONTROL, tt::CONTROL, tt::CONTROL, tt::UNKNOWN, tt::BYTE],
        SpecialTokens::gemma(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not <0xHH>"), "{err}");

    let err = Tokenizer::new(
        &["a", "b"],
        &[f32::NAN, 0.0],
        &[],
        SpecialTokens {
            bos: None,
            eos: None,
            unk: Some(0),
            pad: None,
            add_bos: false,
            ..SpecialTokens::gemma()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");

    let missing = std::env::temp_dir().join("edgegemma-no-such-file.gguf");
    let err = Tokenizer::from_gguf(&missing).unwrap_err();
    assert!(
        err.to_string().contains("edgegemma-no-such-file.gguf"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Real Gemma 3 vocabulary vs llama.cpp
// ---------------------------------------------------------------------------------------

/// The real model's path, or `None` (after saying why) when it is absent. A path given in
/// `EDGEGEMMA_REAL_MODEL` must exist: asked for explicitly, a missing file is a failure.
fn real_model() -> Option<PathBuf> {
    let found = edgegemma_test_support::real_model();
    if found.is_none() {
        eprintln!(
            "SKIPPED: real Gemma 3 model not found at {} (set EDGEGEMMA_REAL_MODEL or run \
             tools/fetch-real-model.sh)",
            edgegemma_test_support::REAL_MODEL_DEFAULT
        );
    }
    found
}

fn reference() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizer_ids_gemma3.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn reference_data_covers_the_required_cases() {
    let data = reference();
    let strings: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizer_strings.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    // Every committed string has reference ids, in order.
    let names: Vec<&str> = strings
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    let ref_names: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(
        names, ref_names,
        "regenerate with tools/gen_tokenizer_ids.py"
    );
}

#[test]
fn real_gemma3_matches_llama_cpp() {
    let Some(path) = real_model() else { return };
    let t = Tokenizer::from_gguf(&path).unwrap();
    let data = reference();
    assert_eq!(t.len() as u64, data["n_vocab"].as_u64().unwrap());
    assert_eq!(t.start_of_turn_id(), Some(105));
    assert_eq!(t.end_of_turn_id(), Some(106));
    assert_eq!(t.bos_id(), Some(2));
    assert_eq!(t.eos_id(), Some(1));
    assert!(!t.add_space_prefix());
    assert_eq!(t.eog_ids(), ids(&data["eog_ids"]).as_slice());

    let mut failures = Vec::new();
    let cases = data["cases"].as_array().unwrap();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let text = c["text"].as_str().unwrap();
        for (key, parse_special) in [("llama_special", true), ("llama_plain", false)] {
            let want = ids(&c[key]);
            let got = t.encode(text, true, parse_special);
            if got != want {
                failures.push(format!("{name} ({key}):\n  want {want:?}\n  got  {got:?}"));
            }
        }
        // Detokenization as llama.cpp does it.
        let special_ids = ids(&c["llama_special"]);
        assert_eq!(
            t.decode(&special_ids, false).unwrap(),
            c["llama_detok"].as_str().unwrap(),
            "{name}: decode"
        );
        assert_eq!(
            t.decode(&special_ids, true).unwrap(),
            c["llama_detok_special"].as_str().unwrap(),
            "{name}: decode with special tokens rendered"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} encodings differ from llama.cpp:\n{}",
        failures.len(),
        cases.len() * 2,
        failures.join("\n")
    );
}

#[test]
fn real_gemma3_round_trips_and_streams() {
    let Some(path) = real_model() else { return };
    let t = Tokenizer::from_gguf(&path).unwrap();
    let data = reference();
    let mut saw_byte_fallback = false;
    for c in data["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let text = c["text"].as_str().unwrap();
        // Without parse_special every text is plain text, so decoding must give it back
        // (except a literal `▁`, which is SentencePiece's own spelling of a space).
        let ids = t.encode(text, true, false);
        if !text.contains('\u{2581}') {
            assert_eq!(t.decode(&ids, false).unwrap(), text, "{name}: round trip");
        }
        saw_byte_fallback |= ids
            .iter()
            .any(|&i| t.token_text(i).unwrap().starts_with("<0x"));

        // Streaming: only whole characters, concatenating to the full decode.
        for render_special in [false, true] {
            let ids = t.encode(text, true, true);
            let mut d = StreamDecoder::new(render_special);
            let mut streamed = String::new();
            for &i in &ids {
                let chunk = d.push(&t, i).unwrap();
                assert!(!chunk.contains('\u{FFFD}') || text.contains('\u{FFFD}'));
                streamed.push_str(chunk);
            }
            streamed.push_str(d.finish());
            assert_eq!(
                streamed,
                t.decode(&ids, render_special).unwrap(),
                "{name}: stream"
            );
        }
    }
    assert!(saw_byte_fallback, "no test string exercised byte fallback");
}

#[test]
fn real_gemma3_special_order_is_unambiguous() {
    // llama.cpp sorts special tokens by length with an unstable sort; our tie order (by id)
    // can only matter if one special text's suffix is another same-length one's prefix.
    let Some(path) = real_model() else { return };
    let t = Tokenizer::from_gguf(&path).unwrap();
    let mut by_len: std::collections::HashMap<usize, Vec<&str>> = Default::default();
    assert_eq!(t.special_tokens().len(), 6249 + 165);
    for &id in t.special_tokens() {
        let text = t.token_text(id).unwrap();
        by_len.entry(text.len()).or_default().push(text);
    }
    for (len, texts) in by_len {
        if texts.len() < 2 {
            continue;
        }
        let prefixes: std::collections::HashSet<&[u8]> = texts
            .iter()
            .flat_map(|s| (1..len).map(move |k| &s.as_bytes()[..k]))
            .collect();
        for s in &texts {
            for k in 1..len {
                let suffix = &s.as_bytes()[len - k..];
                // A self-overlap (runs like "\n\n") is resolved left to right either way.
                let other_has = texts
                    .iter()
                    .any(|o| o != s && o.as_bytes().starts_with(suffix));
                assert!(
                    !(prefixes.contains(suffix) && other_has),
                    "special tokens of length {len} overlap: {s:?}"
                );
            }
        }
    }
}

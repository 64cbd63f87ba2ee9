//! Replays the committed fuzz corpora and crash reproducers of the converter's targets
//! (`fuzz/corpus/convert_*/`, `fuzz/regressions/convert_*/`, see docs/fuzzing.md) through
//! the same entry functions the cargo-fuzz targets call: each input must return (no panic)
//! within a time bound.

#[path = "../../../fuzz/src/convert.rs"]
mod convert;

mod fuzz_replay {
    include!("../../../fuzz/src/replay.rs");
}

#[test]
fn convert_safetensors_corpus() {
    // The committed corpus keeps small inputs (docs/fuzzing.md); the tiny checkpoint's own
    // weights cover a whole conversion.
    fuzz_replay::replay_with(
        "convert_safetensors",
        &["../models/tiny/gemma1-mha-bf16/model.safetensors"],
        convert::safetensors,
    );
    convert::remove_scratch();
}

#[test]
fn convert_config_corpus() {
    fuzz_replay::replay("convert_config", convert::config);
    convert::remove_scratch();
}

/// A config whose layer count or vocabulary size lies about the checkpoint (2^31; they used
/// to allocate 2-48 GB before any tensor was compared) is refused with one line naming the
/// file, the key, its value and the bound it breaks (`src/validate.rs`).
#[test]
fn lying_config_counts_are_refused_in_one_line() {
    let regressions = fuzz_replay::fuzz_dir().join("regressions/convert_config");
    for (file, needles) in [
        (
            "num_hidden_layers-2pow31.json",
            ["\"num_hidden_layers\" is 2147483648", "maximum"],
        ),
        (
            "vocab_size-2pow31.json",
            ["\"vocab_size\" is 2147483648", "maximum"],
        ),
    ] {
        let config = std::fs::read(regressions.join(file)).unwrap();
        let dir = convert::model_dir(("config.json", &config));
        let err = match edgegemma_convert::hf::HfModel::open(&dir) {
            Ok(_) => panic!("{file}: opened"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("config.json"), "{file}: {err}");
        for n in needles {
            assert!(err.contains(n), "{file}: no {n:?} in {err}");
        }
        assert!(!err.contains('\n'), "{file}: {err}");
    }
    convert::remove_scratch();
}

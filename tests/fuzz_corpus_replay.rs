//! Replays the committed fuzz corpora and crash reproducers of the runtime's targets
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`, see docs/fuzzing.md) through the
//! same entry functions the cargo-fuzz targets call, so no input the fuzzer found stops
//! being handled: each must return (no panic) within a time bound.

#[path = "../fuzz/src/runtime.rs"]
mod runtime;

mod fuzz_replay {
    include!("../fuzz/src/replay.rs");
}

#[test]
fn gguf_open_corpus() {
    // The committed corpus keeps small inputs (docs/fuzzing.md); the two whole tiny models
    // cover loading and running a valid file.
    fuzz_replay::replay_with(
        "gguf_open",
        &[
            "models/gemma3-tiny-q4_0.gguf",
            "models/recurrentgemma-tiny-q4_0.gguf",
        ],
        runtime::gguf_open,
    );
    runtime::remove_scratch();
}

#[test]
fn tokenizer_corpus() {
    fuzz_replay::replay("tokenizer", runtime::tokenizer);
    runtime::remove_scratch();
}

#[test]
fn state_load_corpus() {
    fuzz_replay::replay("state_load", runtime::state_load);
    runtime::remove_scratch();
}

#[test]
fn chat_template_corpus() {
    fuzz_replay::replay("chat_template", runtime::chat_template);
    runtime::remove_scratch();
}

/// Issue #13's example: `gemma3.block_count` = 2^31 with the tensors unchanged (it used to
/// abort allocating ~900 GB) is refused with one line naming the file, the key, its value
/// and what it contradicts.
#[test]
fn lying_block_count_is_refused_in_one_line() {
    let path = fuzz_replay::fuzz_dir().join("regressions/gguf_open/gemma3-block_count-2pow31");
    let err = match edgegemma::model::load(&path, &edgegemma::model::RunConfig::default()) {
        Ok(_) => panic!("a file claiming 2^31 layers loaded"),
        Err(e) => e.to_string(),
    };
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    assert!(
        err.contains("gemma3.block_count = 2147483648") && err.contains("tensors"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
}

/// A state file's position must be one the model can hold: the context length for Gemma,
/// int32 positions for RecurrentGemma (the state_load target found 2^64 - 16 overflowing the
/// attention window arithmetic).
#[test]
fn state_positions_past_the_model_are_refused() {
    for (name, bytes) in runtime::state_model_files() {
        let path = runtime::scratch_path(&format!("positions-{name}.gguf"));
        std::fs::write(&path, bytes).unwrap();
        let (mut m, _) = edgegemma::model::load(&path, &runtime::small_run()).unwrap();
        m.eval(&[2, 3]).unwrap();
        let mut state = Vec::new();
        m.save_state(&mut state).unwrap();
        // Layout (src/model/state.rs): magic (8), version (4), fingerprint (8), position (8),
        // buffer count (4), each buffer as length (8) + bytes, checksum. A forged position
        // is written with the same writer, so only the position is wrong.
        let fp = u64::from_le_bytes(state[12..20].try_into().unwrap());
        let n_bufs = u32::from_le_bytes(state[28..32].try_into().unwrap()) as usize;
        let mut bufs: Vec<&[u8]> = Vec::new();
        let mut at = 32;
        for _ in 0..n_bufs {
            let len = u64::from_le_bytes(state[at..at + 8].try_into().unwrap()) as usize;
            bufs.push(&state[at + 8..at + 8 + len]);
            at += 8 + len;
        }
        let with_pos = |pos: u64| {
            let mut s = Vec::new();
            edgegemma::model::state::write(&mut s, fp, pos as usize, &bufs).unwrap();
            s
        };
        let limit = m.n_ctx().min(edgegemma::model::state::MAX_UNBOUNDED_POS) as u64;
        m.load_state(&mut with_pos(limit).as_slice())
            .unwrap_or_else(|e| panic!("{name}: position {limit} refused: {e}"));
        assert_eq!(m.pos() as u64, limit, "{name}");
        for pos in [limit + 1, u64::MAX - 15] {
            let err = m
                .load_state(&mut with_pos(pos).as_slice())
                .err()
                .unwrap_or_else(|| panic!("{name}: position {pos} loaded"));
            assert!(err.to_string().contains("state position"), "{name}: {err}");
            assert_eq!(m.pos(), 0, "{name}: a refused state leaves the model reset");
        }
    }
    runtime::remove_scratch();
}

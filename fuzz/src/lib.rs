//! The fuzz targets' entry functions. Each target in `fuzz_targets/` is one call into
//! these, and the ordinary replay tests (`tests/fuzz_corpus_replay.rs` for the runtime,
//! `tools/convert/tests/fuzz_corpus_replay.rs` for the converter) include the same files
//! with `#[path]`, so a corpus file runs the same code under libFuzzer and under
//! `cargo test`.

pub mod convert;
pub mod runtime;

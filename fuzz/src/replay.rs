// The replay loop shared by the runtime's and the converter's `fuzz_corpus_replay` tests
// (included with `include!`, so it is not a module of the fuzz crate itself).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The libFuzzer runs use `-timeout=5`; a replay gets twice that for a loaded test machine.
const PER_INPUT_LIMIT: Duration = Duration::from_secs(10);

pub fn fuzz_dir() -> PathBuf {
    // Both test crates sit at a fixed depth below the repository root.
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while !dir.join("fuzz").join("corpus").is_dir() {
        assert!(dir.pop(), "no fuzz/corpus above {}", env!("CARGO_MANIFEST_DIR"));
    }
    dir.join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("read a corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Feeds every corpus file and reproducer of `target` to `entry`.
pub fn replay(target: &str, entry: fn(&[u8])) {
    replay_with(target, &[], entry);
}

/// [`replay`], plus the files in `extra` (relative to `fuzz/`).
pub fn replay_with(target: &str, extra: &[&str], entry: fn(&[u8])) {
    let root = fuzz_dir();
    let corpus = files(&root.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target} is empty: the replay would test nothing"
    );
    let inputs: Vec<PathBuf> = corpus
        .into_iter()
        .chain(files(&root.join("regressions").join(target)))
        .chain(extra.iter().map(|f| root.join(f)))
        .collect();
    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, PathBuf::new());
    for path in &inputs {
        let data = std::fs::read(path).expect("read a corpus file");
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| entry(&data)));
        let took = start.elapsed();
        if took > slowest.0 {
            slowest = (took, path.clone());
        }
        if outcome.is_err() {
            failures.push(format!("{}: panicked", path.display()));
        } else if took > PER_INPUT_LIMIT {
            failures.push(format!("{}: took {took:?}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {target} inputs failed:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
    eprintln!(
        "{target}: {} inputs, slowest {:?} ({})",
        inputs.len(),
        slowest.0,
        slowest.1.display()
    );
}

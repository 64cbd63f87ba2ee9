//! Shared by the hostile-input tests: the tiny checkpoints as GGUF, running the `edgegemma`
//! binary under a memory limit and a time limit, and judging what it did.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use edgegemma_convert::hf::HfModel;
use edgegemma_convert::pipeline::{self, Options};
use edgegemma_convert::recipe::FileType;

/// One tiny checkpoint per architecture, plus Gemma 3 with linear RoPE scaling (the only one
/// with the `rope.scaling.*` keys).
pub const TINY: [&str; 5] = [
    "gemma1-mqa-f32",
    "gemma2-f32",
    "gemma3-f32",
    "gemma3-scaled-bf16",
    "recurrentgemma-f32",
];

/// Longest a rejected or one-token run may take. Every run here takes milliseconds (tiny
/// models; the real one loads in ~0.2 s); the margin is for a loaded 2-core CI machine.
pub const TIME_LIMIT: Duration = Duration::from_secs(10);

/// Address space granted above the model's size (`ulimit -v`): the binary, its threads'
/// stacks and malloc arenas fit in well under half of it (the tiny models run under 200 MB).
pub const VMEM_HEADROOM: u64 = 300 << 20;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_edgegemma")
}

/// A directory under cargo's per-target temp dir, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `models/tiny/<name>` converted to an F32 GGUF, once per test process (a fresh conversion,
/// so a changed converter never leaves a stale file behind).
pub fn tiny_gguf(name: &str) -> PathBuf {
    static DONE: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-tiny");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}.gguf"));
    let set = done.get_or_insert_with(HashSet::new);
    if !set.contains(name) {
        let model = HfModel::open(&repo().join("models/tiny").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let plan = model
            .plan(FileType::F32, false)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let opts = Options {
            force: true,
            dry_run: false,
            quiet: true,
        };
        pipeline::write(plan, &out, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        set.insert(name.to_string());
    }
    out
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Outcome {
    pub args: Vec<String>,
    pub status: Option<ExitStatus>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The signal that ended the process, if one did.
    pub fn signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.status.and_then(|s| s.signal())
    }

    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// Never a signal, a hang, a panic or a backtrace, whatever the input.
    pub fn check_clean(&self) -> Result<(), String> {
        if self.timed_out() {
            return Err(format!("{:?}: no exit within {TIME_LIMIT:?}", self.args));
        }
        if let Some(sig) = self.signal() {
            return Err(format!(
                "{:?}: killed by signal {sig}; stderr:\n{}",
                self.args, self.stderr
            ));
        }
        if self.stderr.contains("panicked") || self.stderr.contains("stack backtrace") {
            return Err(format!("{:?}: panicked:\n{}", self.args, self.stderr));
        }
        if self.stderr.contains("memory allocation of") {
            return Err(format!(
                "{:?}: allocation failure:\n{}",
                self.args, self.stderr
            ));
        }
        Ok(())
    }

    /// Clean, and a refusal: non-zero exit with exactly one line on stderr naming `path`
    /// and every one of `needles`.
    pub fn check_rejected(&self, path: &Path, needles: &[&str]) -> Result<(), String> {
        self.check_clean()?;
        if self.success() {
            return Err(format!(
                "{:?}: exited 0, expected a refusal naming {needles:?}",
                self.args
            ));
        }
        let lines = self.stderr_lines();
        let path = path.display().to_string();
        if lines.len() != 1
            || !lines[0].contains(&path)
            || needles.iter().any(|n| !names(lines[0], n))
        {
            return Err(format!(
                "{:?}: expected one stderr line naming {path} and {needles:?}, got:\n{}",
                self.args, self.stderr
            ));
        }
        Ok(())
    }
}

/// Whether `line` contains `needle` as a whole name: not followed by more of a key
/// (`gemma2.attention.head_count` is not named by `gemma2.attention.head_count_kv = 2`).
pub fn names(line: &str, needle: &str) -> bool {
    line.match_indices(needle).any(|(i, _)| {
        line[i + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
    })
}

/// Runs `edgegemma args…` with stdin closed, stdout discarded, at most `vmem` bytes of
/// address space (`ulimit -v`) and [`TIME_LIMIT`] (killed after it).
pub fn run_limited(args: &[&str], vmem: u64) -> Outcome {
    let script = format!("ulimit -v {}; exec \"$0\" \"$@\"", vmem / 1024);
    let t0 = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = pipe.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break Some(st);
        }
        if t0.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = t0.elapsed();
    let stderr = reader.join().unwrap_or_default();
    Outcome {
        args: args.iter().map(|s| s.to_string()).collect(),
        status,
        stderr,
        elapsed,
    }
}

/// A text for `perplexity`: comfortably more than two 16-token chunks.
pub fn perplexity_text(dir: &Path) -> PathBuf {
    let p = dir.join("ppl.txt");
    std::fs::write(
        &p,
        "The quick brown fox jumps over the lazy dog. ".repeat(20),
    )
    .unwrap();
    p
}

/// The four model-loading commands the issue names, short enough to finish in
/// milliseconds on a valid tiny model: `run -n 1`, `bench`, `chat` (stdin closed) and
/// `perplexity`.
pub fn model_commands(model: &str, text: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["run", "-m", model, "-p", "hi", "-n", "1", "-t", "1"]),
        v(&[
            "bench", "-m", model, "-p", "8", "-n", "2", "-r", "1", "-t", "1",
        ]),
        v(&["chat", "-m", model, "-t", "1"]),
        v(&[
            "perplexity",
            "-m",
            model,
            "-f",
            text,
            "-c",
            "16",
            "--chunks",
            "2",
            "-t",
            "1",
        ]),
    ]
}

/// Tiny deterministic generator for the mutation sweep (SplitMix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

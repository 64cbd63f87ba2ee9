//! Truncation and mutation sweep of GGUF headers (issue #13, item 5). For each tiny model
//! (converted from `models/tiny/`) and, with `EDGEGEMMA_REAL_MODEL` set, the real Gemma 3
//! 270M: the file cut at every block boundary of its header (each key/value pair and tensor
//! info, and one byte into each, the alignment padding, the data start, one byte into the
//! data, one byte short of the end), and seeded random single-byte changes of the header
//! region. Every variant goes through `inspect` and `run -n 1`, under `ulimit -v` of the
//! model size + 300 MiB: each either runs or exits non-zero with one stderr line naming the
//! file, within seconds; never a signal, a panic, an abort or a hang.
//!
//! Counts: 600 mutations per tiny model (3000 in all) and 150 on the real model's header,
//! half of those outside the vocabulary arrays (which are 97% of its 6.5 MB header and
//! where a change mostly just renames a token); 250-610 cuts per tiny model, ~540 on the
//! real one. About 95 s on 2 cores with the real model (70 s of it), 35 s without.

mod hostile_util;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use edgegemma_test_support::raw_gguf::{kv_key, Marks, RawGguf};
use hostile_util::{run_limited, scratch, tiny_gguf, Rng, TINY, VMEM_HEADROOM};

const TINY_MUTATIONS: usize = 600;
const REAL_MUTATIONS: usize = 150;

/// Runs the probes on one file and keeps what went wrong.
struct Sweep {
    path: PathBuf,
    vmem: u64,
    runs: usize,
    refused: usize,
    failures: Vec<String>,
}

impl Sweep {
    fn new(path: PathBuf, size: u64) -> Sweep {
        Sweep {
            path,
            vmem: size + VMEM_HEADROOM,
            runs: 0,
            refused: 0,
            failures: Vec::new(),
        }
    }

    /// `inspect` and `run -n 1` on the file as it is now.
    fn probe(&mut self, what: &str) {
        let p = self.path.to_str().unwrap().to_string();
        let commands: [&[&str]; 2] = [
            &["inspect", &p],
            &["run", "-m", &p, "-p", "hi", "-n", "1", "-t", "1"],
        ];
        for args in commands {
            let o = run_limited(args, self.vmem);
            self.runs += 1;
            let verdict = if o.success() {
                o.check_clean()
            } else {
                self.refused += 1;
                o.check_rejected(&self.path, &[])
            };
            if let Err(e) = verdict {
                self.failures.push(format!("{what}: {e}"));
            }
        }
    }

    fn finish(self, label: &str, t0: std::time::Instant) {
        eprintln!(
            "{label}: {} runs ({} refused) in {:.1} s",
            self.runs,
            self.refused,
            t0.elapsed().as_secs_f64()
        );
        assert!(
            self.failures.is_empty(),
            "{label}: {} failures (first 40):\n{}",
            self.failures.len(),
            self.failures
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Truncation lengths at the header's block boundaries (and `inside` bytes into each block:
/// into the length of its key or name, and past it), the data start, one byte into the data
/// and one short of the end; descending, so one file can be cut shorter and shorter.
fn cut_points(m: &Marks, file_len: usize, inside: &[usize]) -> Vec<usize> {
    let mut at = vec![0, 1, 4, m.version, m.counts, m.counts + 8];
    for &b in m.kvs.iter().chain(&m.tensor_infos) {
        at.push(b);
        at.extend(inside.iter().map(|i| b + i));
    }
    at.extend([m.infos_end, m.data, m.data + 1, file_len - 1]);
    at.retain(|&p| p < file_len);
    at.sort_unstable();
    at.dedup();
    at.reverse();
    at
}

/// Byte ranges of the header outside large arrays: each key/value pair whole unless it is
/// longer than 4 KiB (then only its first 32 bytes: key, type, element type, count), every
/// tensor info, the padding.
fn structural_ranges(raw: &RawGguf, m: &Marks) -> Vec<std::ops::Range<usize>> {
    let mut r = Vec::new();
    for (i, &start) in m.kvs.iter().enumerate() {
        let len = raw.kvs[i].len();
        r.push(start..start + if len > 4096 { 32 } else { len });
    }
    r.push(m.tensor_infos.first().copied().unwrap_or(m.infos_end)..m.data);
    r
}

/// Single-byte changes of `header` (the file's first bytes) applied in place to `sweep.path`
/// and undone after each probe; `structural` of them land in `ranges`, the rest anywhere in
/// the header.
fn mutate(
    sweep: &mut Sweep,
    header: &[u8],
    ranges: &[std::ops::Range<usize>],
    n: usize,
    structural: usize,
    seed: u64,
) {
    let mut rng = Rng(seed);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&sweep.path)
        .unwrap();
    let total: usize = ranges.iter().map(|r| r.len()).sum();
    for k in 0..n {
        let at = if k < structural {
            let mut i = rng.below(total);
            ranges
                .iter()
                .find_map(|r| {
                    if i < r.len() {
                        Some(r.start + i)
                    } else {
                        i -= r.len();
                        None
                    }
                })
                .unwrap()
        } else {
            rng.below(header.len())
        };
        let old = header[at];
        let new = old ^ (1 + rng.below(255) as u8);
        f.write_all_at(&[new], at as u64).unwrap();
        sweep.probe(&format!("byte {at}: {old:#04x} -> {new:#04x}"));
        f.write_all_at(&[old], at as u64).unwrap();
    }
}

fn sweep_tiny(model: &str, seed: u64) {
    let t0 = std::time::Instant::now();
    let src = tiny_gguf(model);
    let bytes = std::fs::read(&src).unwrap();
    let raw = RawGguf::parse(&bytes).unwrap();
    let (rebuilt, m) = raw.build_marked();
    assert_eq!(
        rebuilt, bytes,
        "{model}: the test's parser must rebuild the file exactly"
    );
    let dir = scratch(&format!("header-sweep-{model}"));
    let path = dir.join(format!("{model}.gguf"));
    std::fs::write(&path, &bytes).unwrap();
    let mut sweep = Sweep::new(path.clone(), bytes.len() as u64);
    sweep.probe("unchanged");
    assert_eq!(sweep.refused, 0, "{model}: the valid file is refused");
    let header = &bytes[..m.data];
    // Uniform over the whole header (the vocabulary is a third of a tiny model's).
    let ranges = structural_ranges(&raw, &m);
    mutate(&mut sweep, header, &ranges, TINY_MUTATIONS, 0, seed);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let cuts = cut_points(&m, bytes.len(), &[1, 8, 9]);
    for &len in &cuts {
        f.set_len(len as u64).unwrap();
        sweep.probe(&format!("cut at {len} of {}", bytes.len()));
    }
    let label = format!(
        "{model}: {TINY_MUTATIONS} mutations, {} cuts ({} keys, {} tensors)",
        cuts.len(),
        raw.kvs.len(),
        raw.tensors.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    sweep.finish(&label, t0);
}

#[test]
fn gemma1_header_sweep() {
    sweep_tiny(TINY[0], 1);
}

#[test]
fn gemma2_header_sweep() {
    sweep_tiny(TINY[1], 2);
}

#[test]
fn gemma3_header_sweep() {
    sweep_tiny(TINY[2], 3);
}

#[test]
fn gemma3_scaled_header_sweep() {
    sweep_tiny(TINY[3], 4);
}

#[test]
fn recurrentgemma_header_sweep() {
    sweep_tiny(TINY[4], 5);
}

/// The real model: one copy, changed in place and restored for each mutation, then cut
/// shorter and shorter.
#[test]
fn real_model_header_sweep() {
    let Some(real) = std::env::var_os("EDGEGEMMA_REAL_MODEL") else {
        eprintln!("EDGEGEMMA_REAL_MODEL not set; skipping");
        return;
    };
    let t0 = std::time::Instant::now();
    let real = Path::new(&real);
    let data_offset = edgegemma::gguf::GgufFile::open(real).unwrap().data_offset() as usize;
    let header = {
        let f = std::fs::File::open(real).unwrap();
        let mut b = vec![0u8; data_offset];
        f.read_exact_at(&mut b, 0).unwrap();
        b
    };
    let raw = RawGguf::parse(&header).unwrap();
    let (rebuilt, m) = raw.build_marked();
    assert_eq!(
        rebuilt, header,
        "the test's parser must rebuild the header exactly"
    );
    assert!(raw.kvs.iter().any(|k| kv_key(k) == "tokenizer.ggml.tokens"));
    let dir = scratch("header-sweep-real");
    let path = dir.join("gemma3-270m.gguf");
    std::fs::copy(real, &path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let mut sweep = Sweep::new(path.clone(), size);
    sweep.probe("unchanged");
    assert_eq!(sweep.refused, 0, "the real model is refused");
    let ranges = structural_ranges(&raw, &m);
    mutate(
        &mut sweep,
        &header,
        &ranges,
        REAL_MUTATIONS,
        REAL_MUTATIONS / 2,
        270,
    );
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // One byte into each block only: each cut of the real header costs a parse of up to
    // 6.5 MB, and the tiny models already cut at every offset kind.
    let cuts = cut_points(&m, size as usize, &[1]);
    for &len in &cuts {
        f.set_len(len as u64).unwrap();
        sweep.probe(&format!("cut at {len} of {size}"));
    }
    let label = format!(
        "real model: {REAL_MUTATIONS} mutations, {} cuts ({} keys, {} tensors)",
        cuts.len(),
        raw.kvs.len(),
        raw.tensors.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    sweep.finish(&label, t0);
}

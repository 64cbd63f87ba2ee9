//! Crash safety of the output: SIGKILL at early, middle and late points of a conversion
//! (`hf`, and `quantize` half-way), a normal error half-way through, a full disk (ENOSPC on
//! a small tmpfs) and a file-size limit (EFBIG) leave the destination absent or byte-equal
//! to the previous complete file, never partial, and leave no temporary behind (the one
//! exception, documented in `src/output.rs`: SIGKILL on the named-temporary fallback).
//!
//! The kill points are exact: `EDGEGEMMA_CONVERT_TEST_PAUSE_AT=N` makes the converter stop
//! once N bytes of the output are written and say so on stderr; the test checks the
//! temporary really holds N bytes, then kills.

#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_edgegemma-convert");

/// A Gemma 1 checkpoint whose q8_0 output is ~4.5 MiB: a 4096 × 1024 embedding (kept
/// whole by Gemma 1) written in several chunks, so kill points fall inside the tensor data.
fn model(dir: &Path) -> PathBuf {
    let model = dir.join("model");
    widened_gemma1(&model, 4096, 1024);
    model
}

fn hf_args<'a>(model: &'a Path, out: &'a Path, ty: &'a str) -> Vec<&'a str> {
    vec![
        "hf",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-t",
        ty,
        "-q",
        "-j",
        "1",
    ]
}

/// Every name in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Size of the output file process `pid` is writing in `dir` (unnamed or named).
fn temporary_size(pid: u32, dir: &Path) -> u64 {
    let dir = dir.canonicalize().unwrap();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let p = e.unwrap().path();
        let Ok(target) = std::fs::read_link(&p) else {
            continue;
        };
        let name = target.to_string_lossy();
        if target.parent() == Some(dir.as_path())
            && (name.ends_with(" (deleted)") || name.ends_with(".tmp"))
        {
            // Through /proc the size of an unnamed file is still readable.
            return std::fs::metadata(&p).unwrap().len();
        }
    }
    panic!("process {pid} has no output open in {}", dir.display());
}

/// Runs the conversion, waits until it has written exactly `at` bytes, SIGKILLs it.
fn kill_at(args: &[&str], dir: &Path, at: u64, named_temp: bool) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("EDGEGEMMA_CONVERT_TEST_PAUSE_AT", at.to_string())
        .stderr(Stdio::piped());
    if named_temp {
        cmd.env("EDGEGEMMA_CONVERT_NAMED_TEMP", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    // Skip warnings (`quantize --allow-requantize` prints one) up to the pause line.
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && line.starts_with("warning: ") {
        line.clear();
    }
    assert_eq!(
        line.trim_end(),
        format!("edgegemma-convert: test pause after {at} bytes"),
        "the converter did not pause where asked"
    );
    assert_eq!(
        temporary_size(child.id(), dir),
        at,
        "bytes on disk at the pause"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
}

#[test]
fn sigkill_leaves_the_previous_file_or_nothing() {
    let dir = scratch("crash-kill");
    let model = model(&dir);
    let outs = dir.join("outs");
    std::fs::create_dir(&outs).unwrap();
    // The complete new file and a different complete previous file (q4_0).
    let reference = dir.join("reference.gguf");
    convert_ok(&hf_args(&model, &reference, "q8_0"));
    let new_bytes = std::fs::read(&reference).unwrap();
    let previous = dir.join("previous.gguf");
    convert_ok(&hf_args(&model, &previous, "q4_0"));
    let previous_bytes = std::fs::read(&previous).unwrap();
    let size = new_bytes.len() as u64;
    assert!(size > 4 << 20, "{size}");

    let dest = outs.join("out.gguf");
    // Early (before and inside the header), middle, late (the last byte written, before the
    // fsync and the link/rename).
    let points = [0, 1, 4096, size / 3, size / 2, size - 1, size];
    for named_temp in [false, true] {
        for with_previous in [false, true] {
            for &at in &points {
                let what = format!("named temp {named_temp}, previous {with_previous}, at {at}");
                let mut args = hf_args(&model, &dest, "q8_0");
                if with_previous {
                    std::fs::write(&dest, &previous_bytes).unwrap();
                    args.push("--force");
                }
                kill_at(&args, &outs, at, named_temp);
                if with_previous {
                    assert!(
                        std::fs::read(&dest).unwrap() == previous_bytes,
                        "{what}: the previous file changed"
                    );
                } else {
                    assert!(!dest.exists(), "{what}: a destination appeared");
                }
                let mut left = listing(&outs);
                left.retain(|n| n != "out.gguf");
                if named_temp {
                    // SIGKILL cannot be caught: the named fallback leaves its temporary.
                    assert_eq!(left.len(), 1, "{what}: {left:?}");
                    assert!(left[0].starts_with(".out.gguf.") && left[0].ends_with(".tmp"));
                    std::fs::remove_file(outs.join(&left[0])).unwrap();
                } else {
                    assert!(left.is_empty(), "{what}: left behind {left:?}");
                }
                let _ = std::fs::remove_file(&dest);
            }
        }
    }

    // `quantize` (GGUF to GGUF) writes through the same output: killed half-way over the
    // previous file, which survives.
    let requantized = dir.join("requantized.gguf");
    let quantize_args = |out: &Path| -> Vec<String> {
        [
            "quantize",
            reference.to_str().unwrap(),
            "--allow-requantize",
            "-o",
            out.to_str().unwrap(),
            "-t",
            "q4_0",
            "-q",
            "--force",
        ]
        .map(String::from)
        .to_vec()
    };
    let args = quantize_args(&requantized);
    convert_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let half = std::fs::metadata(&requantized).unwrap().len() / 2;
    std::fs::write(&dest, &previous_bytes).unwrap();
    let args = quantize_args(&dest);
    kill_at(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &outs,
        half,
        false,
    );
    assert!(std::fs::read(&dest).unwrap() == previous_bytes);
    assert_eq!(listing(&outs), ["out.gguf"]);

    // Not killed: the new complete file replaces the previous one, nothing else remains.
    for named_temp in [false, true] {
        std::fs::write(&dest, &previous_bytes).unwrap();
        let mut args = hf_args(&model, &dest, "q8_0");
        args.push("--force");
        let o = Command::new(BIN)
            .args(&args)
            .env(
                "EDGEGEMMA_CONVERT_NAMED_TEMP",
                if named_temp { "1" } else { "0" },
            )
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(std::fs::read(&dest).unwrap() == new_bytes);
        assert_eq!(listing(&outs), ["out.gguf"]);
    }
}

/// A tensor that only fails once the conversion is well under way (a NaN in the last one
/// quantized): one error line, no temporary, no destination, the previous file intact.
#[test]
fn an_error_half_way_leaves_no_temporary() {
    let dir = scratch("crash-midway");
    let model = model(&dir);
    let st = model.join("model.safetensors");
    let mut t: Vec<(String, Vec<usize>, Vec<f32>)> = read_checkpoint(&st)
        .into_iter()
        .map(|(n, (s, v))| (n, s, v))
        .collect();
    let down = t
        .iter_mut()
        .find(|(n, _, _)| n == "model.layers.0.mlp.down_proj.weight")
        .unwrap();
    down.2[1000] = f32::NAN;
    write_safetensors(&st, &t, false);
    let outs = dir.join("outs");
    std::fs::create_dir(&outs).unwrap();
    let dest = outs.join("out.gguf");
    for (named_temp, with_previous) in [(false, false), (false, true), (true, false), (true, true)]
    {
        let mut args = hf_args(&model, &dest, "q8_0");
        if with_previous {
            std::fs::write(&dest, b"previous").unwrap();
            args.push("--force");
        }
        let o = Command::new(BIN)
            .args(&args)
            .env(
                "EDGEGEMMA_CONVERT_NAMED_TEMP",
                if named_temp { "1" } else { "0" },
            )
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("\"blk.0.ffn_down.weight\"") && err.contains("NaN"),
            "{err}"
        );
        if with_previous {
            assert_eq!(std::fs::read(&dest).unwrap(), b"previous");
            assert_eq!(listing(&outs), ["out.gguf"]);
            std::fs::remove_file(&dest).unwrap();
        } else {
            assert!(listing(&outs).is_empty(), "{:?}", listing(&outs));
        }
    }
}

/// `unshare -m` (root) or `unshare -Urm` (unprivileged user namespaces) for a private
/// tmpfs; `None` where neither is allowed.
fn namespace_prefix(probe: &Path) -> Option<Vec<&'static str>> {
    for prefix in [vec!["unshare", "-m"], vec!["unshare", "-Urm"]] {
        let ok = Command::new(prefix[0])
            .args(&prefix[1..])
            .args(["sh", "-c", "mount -t tmpfs -o size=64k tmpfs \"$1\"", "sh"])
            .arg(probe)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(prefix);
        }
    }
    None
}

/// ENOSPC: the output does not fit a 1 MiB tmpfs. The error is one line naming the
/// destination and the cause; afterwards the tmpfs holds only what it held before, and all
/// of its space is free again.
#[test]
fn full_disk_gives_one_line_and_leaves_nothing() {
    let dir = scratch("crash-enospc");
    let Some(prefix) = namespace_prefix(&dir) else {
        eprintln!("skipped: neither `unshare -m` nor `unshare -Urm` may mount a tmpfs here");
        return;
    };
    let model = model(&dir);
    let mnt = dir.join("small");
    std::fs::create_dir(&mnt).unwrap();
    let previous = dir.join("previous.gguf");
    convert_ok(&hf_args(&tiny("gemma1-mqa-f32"), &previous, "q4_0"));
    for (named_temp, with_previous) in [(false, false), (false, true), (true, false), (true, true)]
    {
        let dest = mnt.join("out.gguf");
        let mut args = hf_args(&model, &dest, "q8_0");
        if with_previous {
            args.push("--force");
        }
        // Inside the namespace: mount, (copy the previous file), convert, then report the
        // exit code, what is left and whether the previous file is intact.
        let script = format!(
            r#"set -u
mnt=$1 bin=$2
shift 2
mount -t tmpfs -o size=1m tmpfs "$mnt" || exit 99
{copy}
"$bin" "$@" 2>"$mnt.err"
echo "rc=$?"
echo "files=$(ls -A "$mnt" | tr '\n' ' ')"
{compare}
df -k "$mnt" | tail -1 | awk '{{print "used=" $3}}'
"#,
            copy = if with_previous {
                format!(r#"cp "{}" "$mnt/out.gguf""#, previous.display())
            } else {
                String::new()
            },
            compare = if with_previous {
                format!(
                    r#"cmp -s "{}" "$mnt/out.gguf" && echo previous=intact"#,
                    previous.display()
                )
            } else {
                String::new()
            },
        );
        let mut cmd = Command::new(prefix[0]);
        cmd.args(&prefix[1..])
            .args(["sh", "-c", &script, "sh"])
            .arg(&mnt)
            .arg(BIN)
            .args(&args);
        cmd.env(
            "EDGEGEMMA_CONVERT_NAMED_TEMP",
            if named_temp { "1" } else { "0" },
        );
        let o = cmd.output().unwrap();
        let report = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = std::fs::read_to_string(mnt.with_extension("err")).unwrap_or_default();
        let what = format!("named temp {named_temp}, previous {with_previous}");
        assert!(report.contains("rc=1\n"), "{what}: {report} {err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(
            err.contains(dest.to_str().unwrap()) && err.contains("No space left on device"),
            "{what}: {err}"
        );
        if with_previous {
            assert!(report.contains("files=out.gguf \n"), "{what}: {report}");
            assert!(report.contains("previous=intact"), "{what}: {report}");
        } else {
            assert!(report.contains("files=\n"), "{what}: {report}");
            assert!(report.contains("used=0\n"), "{what}: {report}");
        }
    }
}

/// A file-size limit (`ulimit -f`, EFBIG): one error line instead of death by SIGXFSZ,
/// nothing left behind.
#[test]
fn file_size_limit_gives_one_line_and_leaves_nothing() {
    let dir = scratch("crash-efbig");
    let model = model(&dir);
    let outs = dir.join("outs");
    std::fs::create_dir(&outs).unwrap();
    let dest = outs.join("out.gguf");
    for named_temp in [false, true] {
        let o = Command::new("prlimit")
            .arg("--fsize=1000000")
            .arg(BIN)
            .args(hf_args(&model, &dest, "q8_0"))
            .env(
                "EDGEGEMMA_CONVERT_NAMED_TEMP",
                if named_temp { "1" } else { "0" },
            )
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{:?} {err}", o.status);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("File too large"), "{err}");
        assert!(listing(&outs).is_empty(), "{:?}", listing(&outs));
    }
}

//! A generated corpus of malformed GGUF files. Each must give a clean error naming the file
//! and the problem, through the library and through `edgegemma inspect` (non-zero exit,
//! not a panic, one line on stderr). Every case changes one thing in a small valid file,
//! and the valid file itself is checked to open, so each error is the intended one.

use std::path::Path;
use std::process::Command;

use edgegemma::gguf::{GgmlType, GgufFile, Value};
use edgegemma_test_support::raw_gguf::{
    array_payload, enc_str, kv, kv_u32, str_array_elems, vt, RawGguf,
};
use edgegemma_test_support::scratch_dir;

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// The error message must contain one of these.
    expect: &'static [&'static str],
}

fn with(f: impl FnOnce(&mut RawGguf)) -> Vec<u8> {
    let mut g = RawGguf::valid();
    f(&mut g);
    g.build()
}

fn truncated(at: usize) -> Vec<u8> {
    let mut b = RawGguf::valid().build();
    assert!(at < b.len());
    b.truncate(at);
    b
}

const TRUNCATED: &[&str] = &["truncated", "header claims"];

fn corpus() -> Vec<Case> {
    let (_, m) = RawGguf::valid().build_marked();
    let arch_key = "general.architecture".len();
    let tokens_key = "tokenizer.ggml.tokens".len();
    let mut cases = vec![
        Case {
            name: "empty",
            bytes: vec![],
            expect: &["empty file"],
        },
        Case {
            name: "wrong_magic",
            bytes: with(|g| g.magic = b"GGML".to_vec()),
            expect: &["not a GGUF file"],
        },
        Case {
            name: "version_1",
            bytes: with(|g| g.version = 1),
            expect: &["version 1 is not supported"],
        },
        Case {
            name: "version_99",
            bytes: with(|g| g.version = 99),
            expect: &["unsupported GGUF version 99"],
        },
        Case {
            name: "version_0",
            bytes: with(|g| g.version = 0),
            expect: &["unsupported GGUF version 0"],
        },
        Case {
            name: "big_endian",
            bytes: with(|g| g.version = 3u32.swap_bytes()),
            expect: &["big-endian"],
        },
        Case {
            name: "huge_tensor_count",
            bytes: with(|g| g.n_tensors = Some(u64::MAX)),
            expect: &["header claims"],
        },
        Case {
            name: "huge_kv_count",
            bytes: with(|g| g.n_kv = Some(u64::MAX)),
            expect: &["header claims"],
        },
        Case {
            name: "kv_count_too_high",
            bytes: with(|g| g.n_kv = Some(4)),
            expect: &["truncated", "unknown value type", "header claims"],
        },
        Case {
            name: "huge_key_length",
            bytes: with(|g| g.kvs[1] = [u64::MAX.to_le_bytes().to_vec(), vec![b'x'; 16]].concat()),
            expect: &["truncated"],
        },
        Case {
            name: "huge_string_length",
            bytes: with(|g| {
                g.kvs[0] = kv(
                    b"general.architecture",
                    vt::STR,
                    &[(1u64 << 62).to_le_bytes().as_slice(), b"test"].concat(),
                )
            }),
            expect: &["truncated"],
        },
        Case {
            name: "huge_u32_array_length",
            bytes: with(|g| {
                g.kvs.push(kv(
                    b"test.list",
                    vt::ARRAY,
                    &array_payload(vt::U32, u64::MAX / 2, &[0; 8]),
                ))
            }),
            expect: &["array of"],
        },
        Case {
            name: "huge_string_array_length",
            bytes: with(|g| {
                g.kvs[2] = kv(
                    b"tokenizer.ggml.tokens",
                    vt::ARRAY,
                    &array_payload(vt::STR, u64::MAX, &str_array_elems(&[b"a"])),
                )
            }),
            expect: &["array of"],
        },
        Case {
            name: "string_array_element_past_end",
            bytes: with(|g| {
                g.kvs[2] = kv(
                    b"tokenizer.ggml.tokens",
                    vt::ARRAY,
                    &array_payload(
                        vt::STR,
                        3,
                        &[enc_str(b"a"), (1u64 << 40).to_le_bytes().to_vec()].concat(),
                    ),
                )
            }),
            expect: &["truncated"],
        },
        Case {
            name: "unknown_value_type",
            bytes: with(|g| g.kvs[1] = kv(b"test.block_count", 13, &7u32.to_le_bytes())),
            expect: &["unknown value type 13"],
        },
        Case {
            name: "unknown_array_element_type",
            bytes: with(|g| {
                g.kvs
                    .push(kv(b"test.list", vt::ARRAY, &array_payload(200, 1, &[0; 8])))
            }),
            expect: &["unknown value type 200"],
        },
        Case {
            name: "nested_array",
            bytes: with(|g| {
                let inner = array_payload(vt::U32, 1, &7u32.to_le_bytes());
                g.kvs.push(kv(
                    b"test.nested",
                    vt::ARRAY,
                    &array_payload(vt::ARRAY, 1, &inner),
                ))
            }),
            expect: &["array of arrays"],
        },
        Case {
            name: "key_not_utf8",
            bytes: with(|g| g.kvs[1] = kv(b"test.\xff\xfe", vt::U32, &7u32.to_le_bytes())),
            expect: &["not valid UTF-8"],
        },
        Case {
            name: "string_array_element_not_utf8",
            bytes: with(|g| {
                g.kvs[2] = kv(
                    b"tokenizer.ggml.tokens",
                    vt::ARRAY,
                    &array_payload(vt::STR, 3, &str_array_elems(&[b"a", b"\xc3\x28", b"c"])),
                )
            }),
            expect: &["not valid UTF-8"],
        },
        Case {
            name: "invalid_bool",
            bytes: with(|g| g.kvs.push(kv(b"test.flag", vt::BOOL, &[2]))),
            expect: &["invalid byte 2"],
        },
        Case {
            name: "duplicate_key",
            bytes: with(|g| g.kvs.push(kv_u32("test.block_count", 8))),
            expect: &["duplicate metadata key \"test.block_count\""],
        },
        Case {
            name: "empty_key",
            bytes: with(|g| g.kvs.push(kv(b"", vt::U32, &1u32.to_le_bytes()))),
            expect: &["is empty"],
        },
        Case {
            name: "unknown_ggml_type",
            bytes: with(|g| g.tensors[0].ty = 99),
            expect: &["unknown ggml type id 99"],
        },
        Case {
            name: "retired_ggml_type",
            bytes: with(|g| g.tensors[0].ty = 4),
            expect: &["unknown ggml type id 4"],
        },
        Case {
            name: "zero_dims",
            bytes: with(|g| g.tensors[0].dims.clear()),
            expect: &["has 0 dimensions"],
        },
        Case {
            name: "too_many_dims",
            bytes: with(|g| g.tensors[0].dims = vec![4, 2, 1, 1, 1]),
            expect: &["has 5 dimensions"],
        },
        Case {
            name: "huge_dim_count",
            bytes: with(|g| g.tensors[0].n_dims = Some(u32::MAX)),
            expect: &["dimensions (must be 1 to 4)"],
        },
        Case {
            name: "zero_dimension",
            bytes: with(|g| g.tensors[0].dims = vec![4, 0]),
            expect: &["invalid dimension 1 = 0"],
        },
        Case {
            name: "dimension_above_i64_max",
            bytes: with(|g| g.tensors[0].dims = vec![1 << 63]),
            expect: &["invalid dimension 0"],
        },
        Case {
            name: "overflowing_dims",
            bytes: with(|g| g.tensors[0].dims = vec![1 << 32, 1 << 32, 1 << 32]),
            expect: &["overflow the element count"],
        },
        Case {
            name: "overflowing_byte_size",
            bytes: with(|g| {
                // 2^62 elements fit i64, but 2^62 * 4 bytes do not fit u64.
                g.tensors[0].dims = vec![1 << 31, 1 << 31];
            }),
            expect: &["byte size overflows"],
        },
        Case {
            name: "row_not_whole_blocks",
            bytes: with(|g| g.tensors[1].dims = vec![33, 1]),
            expect: &["not a multiple of the q8_0 block size 32"],
        },
        Case {
            name: "offset_past_end",
            bytes: with(|g| g.tensors[1].offset = 1 << 20),
            expect: &["extends past the end of the file"],
        },
        Case {
            name: "offset_plus_size_overflows",
            bytes: with(|g| g.tensors[1].offset = u64::MAX - 31),
            expect: &["extends past the end of the file"],
        },
        Case {
            name: "misaligned_offset",
            bytes: with(|g| g.tensors[1].offset = 40),
            expect: &["not a multiple of the alignment 32"],
        },
        Case {
            name: "misaligned_for_custom_alignment",
            bytes: with(|g| {
                g.kvs.push(kv_u32("general.alignment", 64));
                g.align = 64;
            }),
            expect: &["not a multiple of the alignment 64"],
        },
        Case {
            name: "alignment_zero",
            bytes: with(|g| g.kvs.push(kv_u32("general.alignment", 0))),
            expect: &["must be a power of two"],
        },
        Case {
            name: "alignment_not_power_of_two",
            bytes: with(|g| g.kvs.push(kv_u32("general.alignment", 48))),
            expect: &["is 48; it must be a power of two"],
        },
        Case {
            name: "alignment_wrong_type",
            bytes: with(|g| {
                g.kvs
                    .push(kv(b"general.alignment", vt::U64, &32u64.to_le_bytes()))
            }),
            expect: &["has type u64, expected u32"],
        },
        Case {
            name: "overlapping_tensors",
            bytes: with(|g| g.tensors[1].offset = 0),
            expect: &["overlap"],
        },
        Case {
            name: "duplicate_tensor_name",
            bytes: with(|g| g.tensors[1].name = b"a.weight".to_vec()),
            expect: &["duplicate tensor name \"a.weight\""],
        },
        Case {
            name: "empty_tensor_name",
            bytes: with(|g| g.tensors[1].name.clear()),
            expect: &["empty name"],
        },
        Case {
            name: "tensor_name_too_long",
            bytes: with(|g| g.tensors[1].name = vec![b'n'; 64]),
            expect: &["longer than 63 bytes"],
        },
        Case {
            name: "tensor_name_not_utf8",
            bytes: with(|g| g.tensors[1].name = b"b.\xffweight".to_vec()),
            expect: &["not valid UTF-8"],
        },
        Case {
            name: "tensor_count_too_high",
            bytes: with(|g| g.n_tensors = Some(3)),
            expect: &["empty name", "truncated", "header claims"],
        },
        Case {
            name: "no_tensor_data",
            bytes: truncated(m.data),
            expect: &["extends past the end of the file"],
        },
        Case {
            name: "tensor_data_cut",
            bytes: truncated(m.data + 40),
            expect: &["extends past the end of the file"],
        },
    ];
    // Truncated inside every header section.
    let cuts: [(&'static str, usize); 17] = [
        ("cut_in_magic", 2),
        ("cut_in_version", m.version + 2),
        ("cut_in_tensor_count", m.counts + 4),
        ("cut_in_kv_count", m.counts + 12),
        ("cut_in_key_length", m.kvs[0] + 4),
        ("cut_in_key", m.kvs[0] + 8 + 5),
        ("cut_in_value_type", m.kvs[0] + 8 + arch_key + 2),
        ("cut_in_string_value", m.kvs[0] + 8 + arch_key + 4 + 8 + 2),
        ("cut_in_u32_value", m.kvs[2] - 2),
        ("cut_in_array_type", m.kvs[2] + 8 + tokens_key + 4 + 2),
        ("cut_in_array_count", m.kvs[2] + 8 + tokens_key + 4 + 4 + 3),
        ("cut_in_array_string", m.tensor_infos[0] - 2),
        ("cut_in_tensor_name", m.tensor_infos[0] + 8 + 3),
        ("cut_in_dim_count", m.tensor_infos[0] + 8 + 8 + 2),
        ("cut_in_dims", m.tensor_infos[0] + 8 + 8 + 4 + 12),
        ("cut_in_tensor_type", m.tensor_infos[1] - 8 - 2),
        ("cut_in_tensor_offset", m.tensor_infos[1] - 3),
    ];
    for (name, at) in cuts {
        cases.push(Case {
            name,
            bytes: truncated(at),
            expect: TRUNCATED,
        });
    }
    cases
}

fn write_case(dir: &Path, c: &Case) -> std::path::PathBuf {
    let path = dir.join(format!("{}.gguf", c.name));
    std::fs::write(&path, &c.bytes).expect("write case");
    path
}

/// Runs `edgegemma inspect` (text and --json) and checks it fails cleanly. Returns stderr.
fn inspect_fails_cleanly(path: &Path, what: &str) -> String {
    let mut last = String::new();
    for json in [false, true] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgegemma"));
        cmd.arg("inspect").arg(path);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run edgegemma");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let code = out.status.code();
        assert!(
            code.is_some() && code != Some(0) && code != Some(101),
            "{what}: exit status {:?}, stderr: {stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "{what}: panicked: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{what}: stderr not one line: {stderr}"
        );
        assert!(
            stderr.contains(&path.display().to_string()),
            "{what}: stderr does not name the file: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{what}: printed to stdout on failure"
        );
        last = stderr;
    }
    last
}

#[test]
fn the_base_file_of_the_corpus_is_valid() {
    let dir = scratch_dir!("malformed-base");
    let path = dir.join("valid.gguf");
    std::fs::write(&path, RawGguf::valid().build()).unwrap();
    let f = GgufFile::open(&path).expect("base file must open");
    assert_eq!(f.architecture().unwrap(), "test");
    assert_eq!(f.get_u32("test.block_count").unwrap(), 7);
    assert_eq!(
        f.get_str_array("tokenizer.ggml.tokens").unwrap(),
        vec!["a", "bc", "\u{2581}d"]
    );
    let a = f.require_tensor("a.weight").unwrap();
    assert_eq!((a.ggml_type(), a.dims()), (GgmlType::F32, &[4u64, 2][..]));
    assert_eq!(a.data(), &(0..32).collect::<Vec<u8>>()[..]);
    let b = f.require_tensor("b.weight").unwrap();
    assert_eq!((b.ggml_type(), b.byte_size()), (GgmlType::Q8_0, 34));
    assert_eq!(b.data()[0], 32);
    let out = Command::new(env!("CARGO_BIN_EXE_edgegemma"))
        .args(["inspect", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn malformed_corpus_fails_cleanly_in_library_and_cli() {
    let dir = scratch_dir!("malformed");
    let cases = corpus();
    assert!(cases.len() >= 25, "corpus has only {} files", cases.len());
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case name {}", c.name);
        let path = write_case(&dir, c);
        let err = match GgufFile::open(&path) {
            Ok(_) => panic!("{}: malformed file opened without error", c.name),
            Err(e) => e.to_string(),
        };
        assert!(
            err.starts_with(&format!("{}: ", path.display())),
            "{}: error does not name the file: {err}",
            c.name
        );
        assert!(!err.contains('\n'), "{}: multi-line error: {err}", c.name);
        assert!(
            c.expect.iter().any(|s| err.contains(s)),
            "{}: error {err:?} contains none of {:?}",
            c.name,
            c.expect
        );
        let stderr = inspect_fails_cleanly(&path, c.name);
        assert!(stderr.contains(GgufFile::open(&path).err().unwrap().message()));
    }
    println!("{} malformed files rejected cleanly", cases.len());
}

#[test]
fn missing_file_and_directory_fail_cleanly() {
    let dir = scratch_dir!("malformed-paths");
    let missing = dir.join("does-not-exist.gguf");
    let err = GgufFile::open(&missing).err().unwrap().to_string();
    assert!(err.contains("cannot open"), "{err}");
    inspect_fails_cleanly(&missing, "missing file");
    let err = GgufFile::open(&dir).err().unwrap().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    inspect_fails_cleanly(&dir, "directory");
}

#[test]
fn every_strict_prefix_of_a_valid_file_is_rejected() {
    let dir = scratch_dir!("malformed-prefixes");
    let full = RawGguf::valid().build();
    let path = dir.join("prefix.gguf");
    for len in 0..full.len() {
        std::fs::write(&path, &full[..len]).unwrap();
        match GgufFile::open(&path) {
            Ok(_) => panic!("prefix of {len} of {} bytes opened", full.len()),
            Err(e) => assert!(e.to_string().starts_with(&path.display().to_string())),
        }
    }
}

/// Every byte of the header set to a few values: the parser may accept or reject, but must
/// not panic, and what it accepts must be consistent (tensor rows readable).
#[test]
fn byte_mutations_of_the_header_never_panic() {
    let dir = scratch_dir!("malformed-mutations");
    let (full, m) = RawGguf::valid().build_marked();
    let path = dir.join("mutated.gguf");
    let mut accepted = 0;
    for pos in 0..m.data {
        for val in [0x00u8, 0x01, 0x7f, 0x80, 0xff, full[pos].wrapping_add(1)] {
            let mut b = full.clone();
            b[pos] = val;
            std::fs::write(&path, &b).unwrap();
            if let Ok(f) = GgufFile::open(&path) {
                accepted += 1;
                for (_, v) in f.metadata() {
                    if let Value::Array(a) = v {
                        assert_eq!(a.iter().count(), a.len());
                    }
                }
                for t in f.tensors() {
                    assert_eq!(t.rows() * t.row_bytes(), t.byte_size());
                    assert!(t.row(t.rows() - 1).is_some() && t.row(t.rows()).is_none());
                }
            }
        }
    }
    // Some mutations (e.g. inside string contents or data padding) are harmless.
    assert!(accepted > 0);
}

#[test]
fn a_tensor_may_sit_before_another_in_the_data_section() {
    // Order in the data section need not follow the order of descriptions.
    let dir = scratch_dir!("malformed-order");
    let mut g = RawGguf::valid();
    g.tensors[0].offset = 64;
    g.tensors[1].offset = 0;
    g.data = vec![7; 64 + 32];
    let path = dir.join("swapped.gguf");
    std::fs::write(&path, g.build()).unwrap();
    let f = GgufFile::open(&path).unwrap();
    let names: Vec<&str> = f.tensors().map(|t| t.name()).collect();
    assert_eq!(names, ["a.weight", "b.weight"]);
    assert!(
        f.tensor("a.weight").unwrap().info().file_offset()
            > f.tensor("b.weight").unwrap().info().file_offset()
    );
}

//! Writer -> reader round trips, typed getters, writer misuse, and gguf-rs as an
//! independent second reader of what our writer produces.

use std::fs::File;
use std::path::{Path, PathBuf};

use edgegemma::gguf::{
    GgmlType, GgufFile, GgufWriter, OwnedArray, OwnedValue, Value, ValueType, DEFAULT_ALIGNMENT,
};
use edgegemma_test_support::scratch_dir;

/// Deterministic filler bytes (xorshift), different per seed.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn all_metadata() -> Vec<(&'static str, OwnedValue)> {
    vec![
        ("general.architecture", "gemma3".into()),
        ("t.u8", 200u8.into()),
        ("t.i8", (-100i8).into()),
        ("t.u16", 60000u16.into()),
        ("t.i16", (-30000i16).into()),
        ("t.u32", 4_000_000_000u32.into()),
        ("t.i32", (-2_000_000_000i32).into()),
        ("t.f32", 1e-6f32.into()),
        ("t.bool", true.into()),
        ("t.str", "h\u{e9}llo \u{2581}world\n".into()),
        ("t.empty_str", "".into()),
        ("t.u64", u64::MAX.into()),
        ("t.i64", i64::MIN.into()),
        ("t.f64", std::f64::consts::PI.into()),
        ("t.arr.u8", vec![1u8, 2, 3].into()),
        ("t.arr.i8", vec![-1i8, 0, 1].into()),
        ("t.arr.u16", vec![1u16, 65535].into()),
        ("t.arr.i16", vec![-2i16, 2].into()),
        ("t.arr.u32", vec![7u32, 8, 9].into()),
        ("t.arr.i32", vec![1i32, 3, 3, 6, -1].into()),
        ("t.arr.f32", vec![0.5f32, -1000.0, f32::MIN_POSITIVE].into()),
        ("t.arr.bool", vec![true, false, true].into()),
        (
            "t.arr.str",
            vec!["<pad>", "<eos>", "", "\u{2581}\u{2581}"].into(),
        ),
        ("t.arr.u64", vec![u64::MAX, 0].into()),
        ("t.arr.i64", vec![i64::MIN, -1].into()),
        ("t.arr.f64", vec![1.5f64, -2.25].into()),
        ("t.arr.empty", OwnedValue::Array(OwnedArray::F32(vec![]))),
        (
            "t.arr.empty_str",
            OwnedValue::Array(OwnedArray::String(vec![])),
        ),
    ]
}

struct Spec {
    name: &'static str,
    ty: GgmlType,
    dims: &'static [u64],
}

const TENSORS: &[Spec] = &[
    Spec {
        name: "f32.2d",
        ty: GgmlType::F32,
        dims: &[3, 2],
    },
    Spec {
        name: "f16.1d",
        ty: GgmlType::F16,
        dims: &[5],
    },
    Spec {
        name: "bf16.2d",
        ty: GgmlType::BF16,
        dims: &[4, 3],
    },
    Spec {
        name: "q8_0.3d",
        ty: GgmlType::Q8_0,
        dims: &[64, 2, 3],
    },
    Spec {
        name: "q4_k.2d",
        ty: GgmlType::Q4_K,
        dims: &[512, 3],
    },
    Spec {
        name: "q6_k.4d",
        ty: GgmlType::Q6_K,
        dims: &[256, 1, 2, 2],
    },
    Spec {
        name: "i32.1d",
        ty: GgmlType::I32,
        dims: &[7],
    },
    Spec {
        name: "q5_0.2d",
        ty: GgmlType::Q5_0,
        dims: &[32, 5],
    },
];

/// Writes the test file; the Q4_K tensor goes in three chunks, the rest whole.
fn write_file(path: &Path, alignment: Option<u32>) -> Vec<Vec<u8>> {
    let mut w = GgufWriter::new(path);
    for (k, v) in all_metadata() {
        w.add_metadata(k, v).unwrap();
    }
    if let Some(a) = alignment {
        w.set_alignment(a).unwrap();
    }
    let mut datas = Vec::new();
    for (i, t) in TENSORS.iter().enumerate() {
        let size = w.add_tensor(t.name, t.ty, t.dims).unwrap();
        datas.push(bytes(i as u64 + 1, size as usize));
    }
    let mut d = w.begin(File::create(path).unwrap()).unwrap();
    for (t, data) in TENSORS.iter().zip(&datas) {
        assert_eq!(d.next_tensor(), Some(t.name));
        if t.ty == GgmlType::Q4_K {
            d.begin_tensor(t.name).unwrap();
            let (a, rest) = data.split_at(100);
            let (b, c) = rest.split_at(200);
            for chunk in [a, b, c] {
                d.write_data(chunk).unwrap();
            }
            d.end_tensor().unwrap();
        } else {
            d.write_tensor(t.name, data).unwrap();
        }
    }
    assert_eq!(d.next_tensor(), None);
    let file = d.finish().unwrap();
    // The caller gets the File back to fsync it.
    file.sync_all().unwrap();
    datas
}

fn check_read_back(path: &Path, datas: &[Vec<u8>], alignment: u64) -> GgufFile {
    let f = GgufFile::open(path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), alignment);
    assert_eq!(f.data_offset() % alignment, 0);

    let mut expected: Vec<(String, OwnedValue)> = all_metadata()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if alignment != DEFAULT_ALIGNMENT {
        expected.push((
            "general.alignment".into(),
            OwnedValue::U32(alignment as u32),
        ));
    }
    let got: Vec<(String, OwnedValue)> = f
        .metadata()
        .map(|(k, v)| (k.to_string(), v.to_owned_value()))
        .collect();
    assert_eq!(got, expected, "metadata differs (order included)");

    assert_eq!(f.tensor_count(), TENSORS.len());
    for ((t, spec), data) in f.tensors().zip(TENSORS).zip(datas) {
        assert_eq!(t.name(), spec.name);
        assert_eq!(t.ggml_type(), spec.ty);
        assert_eq!(t.dims(), spec.dims);
        assert_eq!(t.data(), &data[..], "{} data", spec.name);
        assert_eq!(
            t.info().file_offset() % alignment,
            0,
            "{} aligned",
            spec.name
        );
        assert_eq!(t.row_len() as u64, spec.dims[0]);
        assert_eq!(t.rows() * t.row_bytes(), t.byte_size());
        assert_eq!(t.row(0), Some(&data[..t.row_bytes()]));
        let last = t.rows() - 1;
        assert_eq!(t.row(last), Some(&data[last * t.row_bytes()..]));
        assert_eq!(t.row(t.rows()), None);
        assert_eq!(t.row(usize::MAX), None);
    }
    f
}

#[test]
fn round_trip_default_and_custom_alignment() {
    let dir = scratch_dir!("roundtrip");
    for alignment in [None, Some(64u32), Some(1), Some(4096)] {
        let path: PathBuf = dir.join(format!("rt-{alignment:?}.gguf"));
        let datas = write_file(&path, alignment);
        check_read_back(
            &path,
            &datas,
            alignment.map_or(DEFAULT_ALIGNMENT, u64::from),
        );
    }
}

#[test]
fn an_open_file_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GgufFile>();
    assert_send_sync::<edgegemma::gguf::TensorView<'static>>();
}

#[test]
fn empty_file_round_trip() {
    let dir = scratch_dir!("roundtrip-empty");
    let path = dir.join("empty.gguf");
    let d = GgufWriter::new(&path)
        .begin(File::create(&path).unwrap())
        .unwrap();
    d.finish().unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!((f.metadata_len(), f.tensor_count()), (0, 0));
    assert!(f.architecture().is_err());
}

#[test]
fn typed_getters_convert_losslessly_and_name_key_and_file() {
    let dir = scratch_dir!("roundtrip-getters");
    let path = dir.join("getters.gguf");
    let datas = write_file(&path, None);
    let f = check_read_back(&path, &datas, DEFAULT_ALIGNMENT);

    assert_eq!(f.architecture().unwrap(), "gemma3");
    assert_eq!(f.get_u32("t.u8").unwrap(), 200);
    assert_eq!(f.get_u32("t.u16").unwrap(), 60000);
    assert_eq!(f.get_u32("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_i32("t.i8").unwrap(), -100);
    assert_eq!(f.get_u64("t.u64").unwrap(), u64::MAX);
    assert_eq!(f.get_i64("t.i64").unwrap(), i64::MIN);
    assert_eq!(f.get_f32("t.f32").unwrap(), 1e-6);
    assert_eq!(f.get_f64("t.f32").unwrap(), f64::from(1e-6f32));
    assert_eq!(f.get_f32("t.f64").unwrap(), std::f32::consts::PI);
    assert!(f.get_bool("t.bool").unwrap());
    assert_eq!(f.get_str("t.str").unwrap(), "h\u{e9}llo \u{2581}world\n");
    assert_eq!(f.get_str("t.empty_str").unwrap(), "");
    assert_eq!(f.get_i32_array("t.arr.i32").unwrap(), vec![1, 3, 3, 6, -1]);
    assert_eq!(f.get_u32_array("t.arr.u8").unwrap(), vec![1, 2, 3]);
    assert_eq!(f.get_u32_array("t.arr.u32").unwrap(), vec![7, 8, 9]);
    assert_eq!(f.get_i64_array("t.arr.i64").unwrap(), vec![i64::MIN, -1]);
    assert_eq!(
        f.get_f32_array("t.arr.f32").unwrap(),
        vec![0.5, -1000.0, f32::MIN_POSITIVE]
    );
    assert_eq!(
        f.get_bool_array("t.arr.bool").unwrap(),
        vec![true, false, true]
    );
    assert_eq!(
        f.get_str_array("t.arr.str").unwrap(),
        vec!["<pad>", "<eos>", "", "\u{2581}\u{2581}"]
    );
    assert!(f.get_f32_array("t.arr.empty").unwrap().is_empty());
    assert!(f.get_str_array("t.arr.empty_str").unwrap().is_empty());

    // Lazy array views.
    let a = f.get_array("t.arr.str").unwrap();
    assert_eq!((a.elem_type(), a.len()), (ValueType::String, 4));
    assert_eq!(a.get(1), Some(Value::String("<eos>")));
    assert_eq!(a.get(4), None);
    let a = f.get_array("t.arr.i32").unwrap();
    assert_eq!(a.get(4), Some(Value::I32(-1)));

    // Optional variants.
    assert_eq!(f.get_u32_opt("absent.key").unwrap(), None);
    assert_eq!(f.get_str_opt("absent.key").unwrap(), None);
    assert_eq!(f.get_f32_array_opt("absent.key").unwrap(), None);
    assert_eq!(f.get_u32_opt("t.u32").unwrap(), Some(4_000_000_000));

    // Errors name the file and the key, and say what is wrong.
    let file = path.display().to_string();
    let cases: Vec<(String, &str)> = vec![
        (
            f.get_u32("absent.key").unwrap_err().to_string(),
            "metadata key \"absent.key\" is missing",
        ),
        (
            f.get_u32("t.i32").unwrap_err().to_string(),
            "\"t.i32\": value -2000000000 (i32) does not fit in u32",
        ),
        (
            f.get_i32("t.u32").unwrap_err().to_string(),
            "does not fit in i32",
        ),
        (
            f.get_u32("t.f32").unwrap_err().to_string(),
            "\"t.f32\": has type f32, expected an integer (u32)",
        ),
        (
            f.get_str("t.u8").unwrap_err().to_string(),
            "has type u8, expected str",
        ),
        (
            f.get_f32("t.str").unwrap_err().to_string(),
            "has type str, expected f32",
        ),
        (f.get_bool("t.u8").unwrap_err().to_string(), "expected bool"),
        (
            f.get_str_array("t.arr.f32").unwrap_err().to_string(),
            "has type array of f32, expected array of str",
        ),
        (
            f.get_f32_array("t.str").unwrap_err().to_string(),
            "has type str, expected array of f32",
        ),
        (
            f.get_u32_array("t.arr.i32").unwrap_err().to_string(),
            "element 4: value -1 (i32) does not fit in u32",
        ),
        (
            f.get_u32_array("t.arr.f32").unwrap_err().to_string(),
            "expected array of integers",
        ),
        (
            f.get_u32_opt("t.str").unwrap_err().to_string(),
            "expected an integer",
        ),
        (
            f.require_tensor("nope").err().unwrap().to_string(),
            "missing tensor \"nope\"",
        ),
    ];
    for (err, want) in cases {
        assert!(err.starts_with(&format!("{file}: ")), "{err}");
        assert!(err.contains(want), "{err:?} does not contain {want:?}");
    }
}

fn err<T>(r: Result<T, edgegemma::gguf::GgufError>) -> String {
    r.err().expect("must fail").to_string()
}

#[test]
fn writer_rejects_misuse() {
    let dir = scratch_dir!("roundtrip-misuse");
    let path = dir.join("misuse.gguf");
    let mut w = GgufWriter::new(&path);
    w.add_metadata("a.b", 1u32).unwrap();
    assert!(err(w.add_metadata("a.b", 2u32)).contains("duplicate metadata key \"a.b\""));
    assert!(err(w.add_metadata("", 2u32)).contains("must be 1 to"));
    assert!(err(w.add_metadata("general.alignment", 64u64)).contains("must be u32"));
    assert!(err(w.add_metadata("general.alignment", 48u32)).contains("not a power of two"));
    assert!(err(w.set_alignment(0)).contains("not a power of two"));
    w.set_alignment(64).unwrap();
    w.set_alignment(128).unwrap();
    assert_eq!(w.alignment(), 128);

    assert_eq!(w.add_tensor("x", GgmlType::Q8_0, &[64, 2]).unwrap(), 136);
    assert!(err(w.add_tensor("x", GgmlType::F32, &[1])).contains("duplicate tensor name \"x\""));
    assert!(err(w.add_tensor("", GgmlType::F32, &[1])).contains("must be 1 to 63 bytes"));
    assert!(
        err(w.add_tensor(&"n".repeat(64), GgmlType::F32, &[1])).contains("must be 1 to 63 bytes")
    );
    assert!(err(w.add_tensor("y", GgmlType::F32, &[])).contains("0 dimensions"));
    assert!(err(w.add_tensor("y", GgmlType::F32, &[1, 1, 1, 1, 1])).contains("5 dimensions"));
    assert!(err(w.add_tensor("y", GgmlType::F32, &[4, 0])).contains("zero dimension"));
    assert!(err(w.add_tensor("y", GgmlType::Q4_K, &[255, 1]))
        .contains("not a multiple of the q4_K block size 256"));
    assert!(err(w.add_tensor("y", GgmlType::F32, &[1 << 32, 1 << 32])).contains("overflow"));
    w.add_tensor("y", GgmlType::F32, &[2]).unwrap();

    let mut d = w.begin(File::create(&path).unwrap()).unwrap();
    assert_eq!(d.data_offset() % 128, 0);
    assert!(err(d.write_data(&[0])).contains("outside begin_tensor"));
    assert!(err(d.end_tensor()).contains("without begin_tensor"));
    assert!(err(d.write_tensor("y", &[0; 8])).contains("out of order: expected \"x\""));
    assert!(err(d.write_tensor("x", &[0; 137])).contains("is 136 bytes, but 137 were given"));
    // The failed write_tensor left "x" begun; finish it properly.
    d.write_data(&[0; 136]).unwrap();
    d.end_tensor().unwrap();
    d.begin_tensor("y").unwrap();
    assert!(err(d.begin_tensor("y")).contains("is not finished"));
    d.write_data(&[0; 4]).unwrap();
    assert!(err(d.end_tensor()).contains("is 8 bytes, but only 4 were given"));
    d.write_data(&[0; 4]).unwrap();
    d.end_tensor().unwrap();
    assert!(err(d.write_tensor("z", &[])).contains("not declared or is already written"));
    d.finish().unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.alignment(), 128);
    assert_eq!(f.tensor_count(), 2);

    // Unfinished files are refused at finish().
    let mut w = GgufWriter::new(&path);
    w.add_tensor("a", GgmlType::F32, &[1]).unwrap();
    w.add_tensor("b", GgmlType::F32, &[1]).unwrap();
    let mut d = w.begin(Vec::new()).unwrap();
    d.write_tensor("a", &[0; 4]).unwrap();
    let e = d.finish().err().unwrap().to_string();
    assert!(e.contains("1 of 2 tensors written; next is \"b\""), "{e}");
}

/// gguf-rs, an independent reader, agrees on what our writer wrote (for the types whose
/// sizes it computes correctly: it guesses block sizes from the type id range).
#[test]
fn gguf_rs_reads_our_files() {
    let dir = scratch_dir!("roundtrip-gguf-rs");
    let path = dir.join("for-gguf-rs.gguf");
    let specs: &[(&str, GgmlType, &[u64])] = &[
        ("f32", GgmlType::F32, &[3, 2]),
        ("f16", GgmlType::F16, &[5]),
        ("q8_0", GgmlType::Q8_0, &[64, 2, 3]),
        ("q4_k", GgmlType::Q4_K, &[512, 3]),
        ("q6_k", GgmlType::Q6_K, &[256, 1, 2, 2]),
    ];
    let mut w = GgufWriter::new(&path);
    w.add_metadata("general.architecture", "gemma3").unwrap();
    w.add_metadata("gemma3.block_count", 18u32).unwrap();
    w.add_metadata("gemma3.rope.freq_base", 1e6f32).unwrap();
    w.add_metadata("tokenizer.ggml.tokens", vec!["a", "b", "c"])
        .unwrap();
    w.set_alignment(64).unwrap();
    let mut datas = Vec::new();
    for (i, (name, ty, dims)) in specs.iter().enumerate() {
        let n = w.add_tensor(name, *ty, dims).unwrap();
        datas.push(bytes(100 + i as u64, n as usize));
    }
    let mut d = w.begin(File::create(&path).unwrap()).unwrap();
    for ((name, _, _), data) in specs.iter().zip(&datas) {
        d.write_tensor(name, data).unwrap();
    }
    d.finish().unwrap();

    let ours = GgufFile::open(&path).unwrap();
    let mut container =
        gguf_rs::get_gguf_container_array_size(path.to_str().unwrap(), u64::MAX).unwrap();
    let theirs = container.decode().unwrap();
    assert_eq!(theirs.get_version(), "v3");
    assert_eq!(theirs.model_family(), "gemma3");
    let kv = theirs.metadata();
    assert_eq!(kv.len(), ours.metadata_len());
    assert_eq!(kv["gemma3.block_count"].as_u64(), Some(18));
    assert_eq!(kv["gemma3.rope.freq_base"].as_f64(), Some(1e6));
    assert_eq!(kv["general.alignment"].as_u64(), Some(64));
    let tokens: Vec<&str> = kv["tokenizer.ggml.tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(tokens, ["a", "b", "c"]);
    assert_eq!(theirs.alignment(), 64);
    assert_eq!(theirs.data_offset(), ours.data_offset());
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(theirs.tensors().len(), specs.len());
    for ((t, (name, ty, dims)), data) in theirs.tensors().iter().zip(specs).zip(&datas) {
        assert_eq!(t.name, *name);
        assert_eq!(t.kind, ty.id());
        assert_eq!(t.shape, *dims);
        assert_eq!(t.size, data.len() as u64);
        let start = (theirs.data_offset() + t.offset) as usize;
        assert_eq!(&raw[start..start + data.len()], &data[..]);
    }
}

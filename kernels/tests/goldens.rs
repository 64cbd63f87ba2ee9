//! Checks every format against golden bytes from the reference implementations
//! (gguf-py 0.19 and llama.cpp's C reference quantizers), written by
//! `tools/gen_quant_goldens.py` into `tests/data/quants/` (see its `manifest.txt`).

use edgegemma_kernels::formats::{dequantize_row, quantize_row, vec_dot_scalar, vec_dot_type};
use edgegemma_kernels::GgmlType;
use std::collections::HashMap;
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/quants")
}

fn read(name: &str) -> Vec<u8> {
    let path = data_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

struct Golden {
    ty: GgmlType,
    case: String,
    quant_file: String,
    quant_source: String,
    quant: Vec<u8>,
    dequant: Vec<f32>,
}

/// A `bulk` record: hashes of the reference output for the regenerated bulk input.
struct Bulk {
    ty: GgmlType,
    n: usize,
    chunk: usize,
    quant_source: String,
    quant_hashes: Vec<String>,
    dequant_hashes: Vec<String>,
}

struct Goldens {
    inputs: HashMap<String, Vec<f32>>,
    goldens: Vec<Golden>,
    bulk: Vec<Bulk>,
}

fn parse_type(name: &str, line: &str) -> GgmlType {
    GgmlType::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("unknown type in manifest: {line}"))
}

fn load() -> Goldens {
    let manifest = String::from_utf8(read("manifest.txt")).expect("manifest.txt is not UTF-8");
    let mut inputs = HashMap::new();
    let mut goldens = Vec::new();
    let mut bulk = Vec::new();
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[0] {
            "input" => {
                let values = f32s(&read(f[3]));
                assert_eq!(values.len(), f[2].parse::<usize>().unwrap(), "{line}");
                inputs.insert(f[1].to_string(), values);
            }
            "golden" => {
                assert_eq!(f.len(), 8, "bad manifest line: {line}");
                let ty = parse_type(f[1], line);
                let dequant = f32s(&read(f[6]));
                assert_eq!(dequant.len(), f[3].parse::<usize>().unwrap(), "{line}");
                goldens.push(Golden {
                    ty,
                    case: f[2].to_string(),
                    quant_file: f[4].to_string(),
                    quant_source: f[5].to_string(),
                    quant: read(f[4]),
                    dequant,
                });
            }
            "bulk" => {
                assert_eq!(f.len(), 8, "bad manifest line: {line}");
                let hashes = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
                bulk.push(Bulk {
                    ty: parse_type(f[1], line),
                    n: f[2].parse().unwrap(),
                    chunk: f[3].parse().unwrap(),
                    quant_source: f[4].to_string(),
                    quant_hashes: hashes(f[6]),
                    dequant_hashes: hashes(f[7]),
                });
            }
            other => panic!("unknown manifest record {other:?}"),
        }
    }
    Goldens {
        inputs,
        goldens,
        bulk,
    }
}

/// Index of the first differing block and both versions of it, for failure messages.
fn first_block_diff(ty: GgmlType, got: &[u8], want: &[u8]) -> String {
    let ts = ty.type_size();
    for (i, (g, w)) in got.chunks(ts).zip(want.chunks(ts)).enumerate() {
        if g != w {
            return format!("block {i}: got {g:02x?}\n  want {w:02x?}");
        }
    }
    format!("lengths {} vs {}", got.len(), want.len())
}

fn first_f32_diff(ty: GgmlType, got: &[f32], want: &[f32]) -> String {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if !same_value(ty, *g, *w) {
            return format!(
                "element {i}: got {g:e} ({:08x}), want {w:e} ({:08x})",
                g.to_bits(),
                w.to_bits()
            );
        }
    }
    format!("lengths {} vs {}", got.len(), want.len())
}

/// Whether a dequantized value matches the golden one: same bits, except that for F16 any two
/// NaNs of the same sign match. gguf-py converts with numpy, which keeps a signalling NaN
/// signalling (f32 0x7f800001 -> f16 0x7c01 -> f32 0x7f802000); ggml (F16C and its scalar
/// code) and the `half` crate quiet it (0x7e00, 0x7fc02000). Both are NaN; we follow ggml.
fn same_value(ty: GgmlType, got: f32, want: f32) -> bool {
    got.to_bits() == want.to_bits()
        || (ty == GgmlType::F16
            && got.is_nan()
            && want.is_nan()
            && got.is_sign_negative() == want.is_sign_negative())
}

/// Quantized bytes match the golden ones (F16 NaNs compared as in [`same_value`]).
fn same_bytes(ty: GgmlType, got: &[u8], want: &[u8]) -> bool {
    if ty != GgmlType::F16 || got.len() != want.len() {
        return got == want;
    }
    let as_f16 = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    got.chunks_exact(2)
        .zip(want.chunks_exact(2))
        .all(|(g, w)| g == w || same_value(ty, as_f16(g), as_f16(w)))
}

fn same_values(ty: GgmlType, got: &[f32], want: &[f32]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| same_value(ty, *g, *w))
}

#[test]
fn manifest_covers_every_supported_format() {
    let g = load();
    for ty in GgmlType::ALL.into_iter().filter(|t| t.is_supported()) {
        let cases: Vec<&str> = g
            .goldens
            .iter()
            .filter(|x| x.ty == ty)
            .map(|x| x.case.as_str())
            .collect();
        let want: &[&str] = match ty {
            GgmlType::F32 => &["floats"],
            GgmlType::F16 | GgmlType::BF16 => &["gauss", "weights", "edge", "floats"],
            _ => &["gauss", "weights", "edge"],
        };
        for c in want {
            assert!(cases.contains(c), "no golden for {ty} case {c}");
        }
    }
    // The k-quant and activation quantizers must be checked against llama.cpp's C reference,
    // the 32-block ones against gguf-py.
    for x in &g.goldens {
        let want = match x.ty {
            GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::Q8_K | GgmlType::Q8_1 => {
                "ggml-c-ref"
            }
            _ => "gguf-py",
        };
        assert!(
            x.quant_source.split('=').any(|s| s == want),
            "{} was quantized by {}, expected {want}",
            x.quant_file,
            x.quant_source
        );
    }
}

#[test]
fn quantize_is_byte_identical_to_reference() {
    let g = load();
    let mut failures = Vec::new();
    for x in &g.goldens {
        let input = &g.inputs[&x.case];
        let mut out = vec![0u8; x.quant.len()];
        quantize_row(x.ty, input, &mut out).unwrap();
        if !same_bytes(x.ty, &out, &x.quant) {
            failures.push(format!(
                "{} ({}): {}",
                x.quant_file,
                x.quant_source,
                first_block_diff(x.ty, &out, &x.quant)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "quantize mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn dequantize_is_bit_identical_to_reference() {
    let g = load();
    let mut failures = Vec::new();
    for x in &g.goldens {
        let mut out = vec![0f32; x.dequant.len()];
        dequantize_row(x.ty, &x.quant, &mut out).unwrap();
        if !same_values(x.ty, &out, &x.dequant) {
            failures.push(format!(
                "{}: {}",
                x.quant_file,
                first_f32_diff(x.ty, &out, &x.dequant)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "dequantize mismatches:\n{}",
        failures.join("\n")
    );
}

/// The byte-level API must give the same answers for buffers at odd addresses (tensors inside
/// an mmap'd file need not be aligned for the block type).
#[test]
fn misaligned_buffers_give_identical_results() {
    let g = load();
    for x in &g.goldens {
        let n = x.dequant.len();
        let mut shifted = vec![0u8; x.quant.len() + 1];
        shifted[1..].copy_from_slice(&x.quant);
        let mut out = vec![0f32; n];
        dequantize_row(x.ty, &shifted[1..], &mut out).unwrap();
        assert!(
            same_values(x.ty, &out, &x.dequant),
            "misaligned dequantize of {}",
            x.quant_file
        );

        let mut qout = vec![0u8; x.quant.len() + 1];
        quantize_row(x.ty, &g.inputs[&x.case], &mut qout[1..]).unwrap();
        assert!(
            same_bytes(x.ty, &qout[1..], &x.quant),
            "misaligned quantize of {}",
            x.quant_file
        );

        // Dot of the golden weights with a quantized copy of the input, aligned vs misaligned
        // (the special-float case holds infinities and NaNs, which make any dot meaningless).
        let Some(act_ty) = vec_dot_type(x.ty) else {
            continue;
        };
        if x.case == "floats" {
            continue;
        }
        let act_len = act_ty.row_bytes(n as u64).unwrap() as usize;
        let mut act = vec![0u8; act_len + 1];
        quantize_row(act_ty, &g.inputs[&x.case], &mut act[1..]).unwrap();
        let misaligned = vec_dot_scalar(x.ty, n, &shifted[1..], &act[1..]).unwrap();
        // A Vec<u8> need not be aligned either: copy into u32-aligned storage.
        let (w_words, a_words) = (aligned_words(&x.quant), aligned_words(&act[1..]));
        let w_aligned = &bytemuck::cast_slice::<u32, u8>(&w_words)[..x.quant.len()];
        let a_aligned = &bytemuck::cast_slice::<u32, u8>(&a_words)[..act_len];
        let aligned = vec_dot_scalar(x.ty, n, w_aligned, a_aligned).unwrap();
        // Misaligned rows are dotted a few blocks at a time, so the f32 sum may round differently.
        let tol = 1e-5 * aligned.abs().max(1e-3);
        assert!(
            (aligned - misaligned).abs() <= tol,
            "misaligned dot of {}: {misaligned} vs {aligned}",
            x.quant_file
        );
    }
}

fn aligned_words(bytes: &[u8]) -> Vec<u32> {
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    words
}

/// The generator's `bulk_input()`: xorshift64* draws turned into f32 values by exact integer
/// arithmetic and power-of-two scaling, so Python and Rust produce identical bits.
fn bulk_input(n: usize) -> Vec<f32> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut draw = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let (mut exp, mut offset) = (0i32, 0i64);
    (0..n)
        .map(|i| {
            if i % 256 == 0 {
                exp = (draw() >> 60) as i32 - 8 - 22;
            }
            if i % 32 == 0 {
                offset = ((draw() >> 61) as i64 - 3) << 21;
            }
            let mut v: i64 =
                (0..4).map(|_| (draw() >> 42) as i64).sum::<i64>() - 2 * ((1 << 22) - 1) + offset;
            if draw() >> 56 == 0 {
                v *= 64;
            }
            (v as f64 * 2f64.powi(exp)) as f32
        })
        .collect()
}

fn fnv1a64(data: &[u8]) -> String {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in data {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    format!("{h:016x}")
}

fn chunk_hashes(data: &[u8], n_chunks: usize) -> Vec<String> {
    data.chunks(data.len() / n_chunks).map(fnv1a64).collect()
}

/// 1024 super-blocks per format, compared through per-chunk hashes: catches rarely taken
/// branches of the reference quantizers that the small explicit cases may miss.
#[test]
fn bulk_quantize_and_dequantize_match_reference_hashes() {
    let g = load();
    let mut failures = Vec::new();
    for ty in GgmlType::ALL
        .into_iter()
        .filter(|t| t.is_supported() && *t != GgmlType::F32)
    {
        assert!(g.bulk.iter().any(|b| b.ty == ty), "no bulk hashes for {ty}");
    }
    for b in &g.bulk {
        let x = bulk_input(b.n);
        let n_chunks = b.n / b.chunk;
        assert_eq!(b.quant_hashes.len(), n_chunks, "{}", b.ty);
        let mut q = vec![0u8; b.ty.row_bytes(b.n as u64).unwrap() as usize];
        quantize_row(b.ty, &x, &mut q).unwrap();
        let got = chunk_hashes(&q, n_chunks);
        if let Some(i) = (0..n_chunks).find(|&i| got[i] != b.quant_hashes[i]) {
            failures.push(format!(
                "{} bulk quantize ({}): chunk {i} (values {}..{}) differs",
                b.ty,
                b.quant_source,
                i * b.chunk,
                (i + 1) * b.chunk
            ));
            continue;
        }
        let mut y = vec![0f32; b.n];
        dequantize_row(b.ty, &q, &mut y).unwrap();
        let got = chunk_hashes(bytemuck::cast_slice(&y), n_chunks);
        if let Some(i) = (0..n_chunks).find(|&i| got[i] != b.dequant_hashes[i]) {
            failures.push(format!("{} bulk dequantize: chunk {i} differs", b.ty));
        }
    }
    assert!(
        failures.is_empty(),
        "bulk mismatches:\n{}",
        failures.join("\n")
    );
}

//! Properties of the scalar reference formats: block layouts, the byte-level API's error
//! handling, scalar dot == dot of the dequantized rows, and round-trip error bounds.

use edgegemma_kernels::formats::{
    self, dequantize_row, quantize_row, vec_dot_scalar, vec_dot_type, BlockQ4_0, BlockQ4_1,
    BlockQ4_K, BlockQ5_0, BlockQ5_1, BlockQ5_K, BlockQ6_K, BlockQ8_0, BlockQ8_1, BlockQ8_K,
    FormatError,
};
use edgegemma_kernels::GgmlType;
use edgegemma_test_support::rng::Rng;
use std::mem::{align_of, offset_of, size_of};

const WEIGHT_TYPES: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Byte buffer with 8-byte alignment, so typed casts in tests always succeed.
fn aligned_bytes(len: usize) -> Vec<u64> {
    vec![0u64; len.div_ceil(8)]
}

fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len() as u64).unwrap() as usize];
    quantize_row(ty, x, &mut out).unwrap();
    out
}

fn dequantize(ty: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_row(ty, q, &mut out).unwrap();
    out
}

#[test]
fn block_layouts_match_ggml() {
    // Sizes (also asserted at compile time), alignments and field offsets of ggml's structs.
    assert_eq!((size_of::<BlockQ4_0>(), align_of::<BlockQ4_0>()), (18, 2));
    assert_eq!(offset_of!(BlockQ4_0, qs), 2);
    assert_eq!((size_of::<BlockQ4_1>(), offset_of!(BlockQ4_1, m)), (20, 2));
    assert_eq!(offset_of!(BlockQ4_1, qs), 4);
    assert_eq!((size_of::<BlockQ5_0>(), offset_of!(BlockQ5_0, qh)), (22, 2));
    assert_eq!(offset_of!(BlockQ5_0, qs), 6);
    assert_eq!((size_of::<BlockQ5_1>(), offset_of!(BlockQ5_1, qh)), (24, 4));
    assert_eq!(offset_of!(BlockQ5_1, qs), 8);
    assert_eq!((size_of::<BlockQ8_0>(), offset_of!(BlockQ8_0, qs)), (34, 2));
    assert_eq!((size_of::<BlockQ8_1>(), offset_of!(BlockQ8_1, s)), (36, 2));
    assert_eq!(offset_of!(BlockQ8_1, qs), 4);
    assert_eq!(
        (size_of::<BlockQ4_K>(), offset_of!(BlockQ4_K, dmin)),
        (144, 2)
    );
    assert_eq!(
        (offset_of!(BlockQ4_K, scales), offset_of!(BlockQ4_K, qs)),
        (4, 16)
    );
    assert_eq!(
        (size_of::<BlockQ5_K>(), offset_of!(BlockQ5_K, qh)),
        (176, 16)
    );
    assert_eq!(offset_of!(BlockQ5_K, qs), 48);
    assert_eq!(
        (size_of::<BlockQ6_K>(), offset_of!(BlockQ6_K, qh)),
        (210, 128)
    );
    assert_eq!(
        (offset_of!(BlockQ6_K, scales), offset_of!(BlockQ6_K, d)),
        (192, 208)
    );
    assert_eq!((size_of::<BlockQ8_K>(), align_of::<BlockQ8_K>()), (292, 4));
    assert_eq!(
        (offset_of!(BlockQ8_K, qs), offset_of!(BlockQ8_K, bsums)),
        (4, 260)
    );
    for (ty, size) in [
        (GgmlType::Q4_0, size_of::<BlockQ4_0>()),
        (GgmlType::Q4_1, size_of::<BlockQ4_1>()),
        (GgmlType::Q5_0, size_of::<BlockQ5_0>()),
        (GgmlType::Q5_1, size_of::<BlockQ5_1>()),
        (GgmlType::Q8_0, size_of::<BlockQ8_0>()),
        (GgmlType::Q8_1, size_of::<BlockQ8_1>()),
        (GgmlType::Q4_K, size_of::<BlockQ4_K>()),
        (GgmlType::Q5_K, size_of::<BlockQ5_K>()),
        (GgmlType::Q6_K, size_of::<BlockQ6_K>()),
        (GgmlType::Q8_K, size_of::<BlockQ8_K>()),
    ] {
        assert_eq!(ty.type_size(), size, "{ty}");
    }
}

#[test]
fn vec_dot_types_follow_ggml() {
    use GgmlType::*;
    for (w, a) in [
        (F32, F32),
        (F16, F32),
        (BF16, F32),
        (Q4_0, Q8_0),
        (Q5_0, Q8_0),
        (Q8_0, Q8_0),
        (Q4_1, Q8_1),
        (Q5_1, Q8_1),
        (Q4_K, Q8_K),
        (Q5_K, Q8_K),
        (Q6_K, Q8_K),
    ] {
        assert_eq!(vec_dot_type(w), Some(a), "{w}");
    }
    for w in [Q8_1, Q8_K, Q2_K, Q3_K, IQ4_NL, I8, MXFP4] {
        assert_eq!(vec_dot_type(w), None, "{w}");
    }
}

#[test]
fn byte_api_rejects_bad_input_with_errors() {
    let x = vec![0.5f32; 64];
    let mut dst = vec![0u8; 36];
    assert_eq!(quantize_row(GgmlType::Q4_0, &x, &mut dst), Ok(()));
    // Wrong destination size.
    let err = quantize_row(GgmlType::Q4_0, &x, &mut dst[..35]).unwrap_err();
    assert_eq!(
        err,
        FormatError::SizeMismatch {
            ty: GgmlType::Q4_0,
            buffer: "destination",
            expected: 36,
            got: 35
        }
    );
    assert!(err.to_string().contains("q4_0"), "{err}");
    // Not a whole number of blocks.
    let err = quantize_row(GgmlType::Q4_K, &x, &mut dst).unwrap_err();
    assert_eq!(
        err,
        FormatError::PartialBlock {
            ty: GgmlType::Q4_K,
            n: 64
        }
    );
    assert!(err.to_string().contains("256"), "{err}");
    let mut out = vec![0f32; 33];
    assert!(matches!(
        dequantize_row(GgmlType::Q8_0, &[0u8; 34], &mut out),
        Err(FormatError::PartialBlock { .. })
    ));
    let mut out = vec![0f32; 64];
    assert!(matches!(
        dequantize_row(GgmlType::Q8_0, &[0u8; 34], &mut out),
        Err(FormatError::SizeMismatch {
            buffer: "source",
            expected: 68,
            got: 34,
            ..
        })
    ));
    // Types this crate does not implement.
    let err = dequantize_row(GgmlType::Q2_K, &[0u8; 84], &mut vec![0f32; 256]).unwrap_err();
    assert_eq!(
        err,
        FormatError::Unsupported {
            ty: GgmlType::Q2_K,
            op: "dequantize"
        }
    );
    assert!(err.to_string().contains("q2_K"), "{err}");
    assert!(matches!(
        quantize_row(GgmlType::IQ4_NL, &x[..32], &mut [0u8; 18]),
        Err(FormatError::Unsupported { .. })
    ));
    assert!(matches!(
        vec_dot_scalar(GgmlType::Q8_K, 256, &[0u8; 292], &[0u8; 292]),
        Err(FormatError::Unsupported { .. })
    ));
    // Dot: weight and activation sizes are both checked.
    assert!(matches!(
        vec_dot_scalar(GgmlType::Q4_0, 32, &[0u8; 18], &[0u8; 18]),
        Err(FormatError::SizeMismatch {
            buffer: "activation",
            expected: 34,
            ..
        })
    ));
    assert!(matches!(
        vec_dot_scalar(GgmlType::Q4_0, 32, &[0u8; 20], &[0u8; 34]),
        Err(FormatError::SizeMismatch {
            buffer: "weight",
            ..
        })
    ));
    assert!(matches!(
        vec_dot_scalar(GgmlType::Q6_K, 100, &[], &[]),
        Err(FormatError::PartialBlock { .. })
    ));
    // Empty rows are fine.
    assert_eq!(vec_dot_scalar(GgmlType::Q4_K, 0, &[], &[]), Ok(0.0));
    assert_eq!(dequantize_row(GgmlType::Q4_K, &[], &mut []), Ok(()));
}

/// Tolerance for comparing the scalar dot with the f64 dot of the dequantized rows: f32
/// rounding of the per-block scaling and accumulation, plus, for Q4_1/Q5_1, the f16 rounding
/// of Q8_1's cached `s = d * sum(q)` that the dot uses instead of the exact sum.
fn dot_tolerance(ty: GgmlType, w: &[u8], act: &[u8], wd: &[f32], ad: &[f32]) -> f64 {
    let sum_abs: f64 = wd
        .iter()
        .zip(ad)
        .map(|(a, b)| (*a as f64 * *b as f64).abs())
        .sum();
    let mut tol = 2e-6 * sum_abs + 1e-30;
    if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
        let a_blocks: &[BlockQ8_1] = bytemuck::cast_slice(act);
        let ts = ty.type_size();
        for (i, ab) in a_blocks.iter().enumerate() {
            // Both Q4_1 and Q5_1 keep the block minimum in bytes 2..4.
            let m = formats::f16_bits_to_f32(u16::from_le_bytes([w[i * ts + 2], w[i * ts + 3]]));
            tol += (m as f64 * formats::f16_bits_to_f32(ab.s) as f64).abs() * 2f64.powi(-10);
        }
    }
    tol
}

#[test]
fn scalar_dot_equals_dot_of_dequantized_rows() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for ty in WEIGHT_TYPES {
        let act_ty = vec_dot_type(ty).unwrap();
        for blocks_of_256 in [1usize, 2, 3, 8] {
            let n = 256 * blocks_of_256;
            let mut w = rng.gauss_vec(n, 0.05);
            // Shift some blocks so the minimum-offset paths (Q4_1, Q5_1, K mins) are exercised.
            for v in &mut w[..n / 2] {
                *v += 0.03;
            }
            let a = rng.gauss_vec(n, 1.0);
            let wq_words = {
                let mut words = aligned_bytes(ty.row_bytes(n as u64).unwrap() as usize);
                let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)
                    [..ty.row_bytes(n as u64).unwrap() as usize];
                quantize_row(ty, &w, bytes).unwrap();
                words
            };
            let wq = &bytemuck::cast_slice::<u64, u8>(&wq_words)
                [..ty.row_bytes(n as u64).unwrap() as usize];
            let aq_len = act_ty.row_bytes(n as u64).unwrap() as usize;
            let mut aq_words = aligned_bytes(aq_len);
            let aq = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut aq_words)[..aq_len];
            quantize_row(act_ty, &a, aq).unwrap();
            let aq = &*aq;

            let wd = dequantize(ty, wq, n);
            let ad = dequantize(act_ty, aq, n);
            let want: f64 = wd.iter().zip(&ad).map(|(x, y)| *x as f64 * *y as f64).sum();
            let got = vec_dot_scalar(ty, n, wq, aq).unwrap() as f64;
            let tol = dot_tolerance(ty, wq, aq, &wd, &ad);
            assert!(
                (got - want).abs() <= tol,
                "{ty} n={n}: scalar dot {got} vs dequantized dot {want} (tol {tol})"
            );
        }
    }
}

/// Relative RMS error of quantize -> dequantize on gaussian data, and per-block max errors
/// against the bounds each format's rounding guarantees.
#[test]
fn round_trip_errors_are_within_format_bounds() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let n = 256 * 32;
    let x = rng.gauss_vec(n, 1.0);
    let rms = (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n as f64).sqrt();
    let mut rel_rmse = Vec::new();
    // Upper bounds on relative RMSE for N(0, 1) data, ~1.2x what ggml's quantizers achieve
    // (measured: f16 2.1e-4, bf16 1.7e-3, q8_0/q8_1 5.5e-3, q8_K 7.1e-3, q6_K 0.018,
    // q5_1 0.038, q5_0 0.044, q5_K 0.036, q4_1 0.078, q4_0 0.087, q4_K 0.072).
    for (ty, bound) in [
        (GgmlType::F32, 0.0),
        (GgmlType::F16, 2.6e-4),
        (GgmlType::BF16, 2.1e-3),
        (GgmlType::Q8_0, 6.6e-3),
        (GgmlType::Q8_1, 6.6e-3),
        (GgmlType::Q8_K, 8.5e-3),
        (GgmlType::Q6_K, 0.022),
        (GgmlType::Q5_1, 0.046),
        (GgmlType::Q5_0, 0.052),
        (GgmlType::Q5_K, 0.044),
        (GgmlType::Q4_1, 0.094),
        (GgmlType::Q4_0, 0.105),
        (GgmlType::Q4_K, 0.087),
    ] {
        let q = quantize(ty, &x);
        let y = dequantize(ty, &q, n);
        let mse = x
            .iter()
            .zip(&y)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / n as f64;
        let rel = mse.sqrt() / rms;
        rel_rmse.push(format!("{ty}: {rel:.5}"));
        assert!(rel <= bound, "{ty}: relative RMSE {rel} > {bound}");
        if ty == GgmlType::F32 {
            assert_eq!(x, y);
        }

        // Per-block worst case from the rounding rule (f16 scale rounding is 2^-11 relative).
        let bs = ty.block_size().max(32);
        for (xb, yb) in x.chunks(bs).zip(y.chunks(bs)) {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let (min, max) = xb
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let range = max - min;
            let f16_eps = 2f32.powi(-11);
            let per_elem = |v: f32| match ty {
                GgmlType::F32 => 0.0,
                GgmlType::F16 => v.abs() * f16_eps,
                GgmlType::BF16 => v.abs() * 2f32.powi(-8),
                GgmlType::Q8_0 | GgmlType::Q8_1 => amax / 254.0 + amax * f16_eps,
                GgmlType::Q8_K => amax / 254.0 * 1.0001,
                // Signed-max formats: the far end of the range may clamp by one whole step.
                GgmlType::Q4_0 => amax / 8.0 + amax * f16_eps,
                GgmlType::Q5_0 => amax / 16.0 + amax * f16_eps,
                GgmlType::Q4_1 => range / 30.0 + (range + min.abs()) * f16_eps,
                GgmlType::Q5_1 => range / 62.0 + (range + min.abs()) * f16_eps,
                // k-quants: no simple per-element bound; the RMSE bound above applies.
                _ => f32::INFINITY,
            };
            for (a, b) in xb.iter().zip(yb) {
                let bound = per_elem(*a) * 1.001 + 1e-7;
                assert!((a - b).abs() <= bound, "{ty}: |{a} - {b}| > {bound}");
            }
        }
    }
    eprintln!("relative RMSE on N(0,1): {}", rel_rmse.join(", "));
}

#[test]
fn zero_and_constant_blocks_round_trip() {
    for ty in GgmlType::ALL.into_iter().filter(|t| t.is_supported()) {
        let zeros = vec![0f32; 512];
        let y = dequantize(ty, &quantize(ty, &zeros), 512);
        assert!(
            y.iter().all(|v| *v == 0.0),
            "{ty}: zero block does not round-trip to 0"
        );
        // A constant block is reproduced to within the scale's f16 precision.
        let c = vec![-0.8125f32; 512];
        let y = dequantize(ty, &quantize(ty, &c), 512);
        for v in &y {
            assert!(
                (v - -0.8125).abs() <= 0.8125 * 2e-3,
                "{ty}: constant block gave {v}"
            );
        }
    }
}

#[test]
fn q8_activations_carry_consistent_sums() {
    let mut rng = Rng(42);
    let x = rng.gauss_vec(1024, 3.0);
    let mut q8k = vec![
        BlockQ8_K {
            d: 0.0,
            qs: [0; 256],
            bsums: [0; 16]
        };
        4
    ];
    formats::quantize_row_q8_k(&x, &mut q8k);
    for b in &q8k {
        for (g, s) in b.bsums.iter().enumerate() {
            let sum: i32 = b.qs[16 * g..16 * g + 16].iter().map(|&q| q as i32).sum();
            assert_eq!(*s as i32, sum);
        }
        assert!(b.qs.iter().any(|&q| q == -127 || q == 127));
    }
    let mut q81 = vec![
        BlockQ8_1 {
            d: 0,
            s: 0,
            qs: [0; 32]
        };
        32
    ];
    formats::quantize_row_q8_1(&x, &mut q81);
    for b in &q81 {
        let d = formats::f16_bits_to_f32(b.d);
        let sum: i32 = b.qs.iter().map(|&q| q as i32).sum();
        let s = formats::f16_bits_to_f32(b.s);
        assert!((s - d * sum as f32).abs() <= (d * sum as f32).abs() * 2e-3 + 1e-6);
    }
}

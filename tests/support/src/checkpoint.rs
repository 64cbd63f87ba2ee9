//! Model files as numbers: safetensors checkpoints read as f32 and written from f32 (as f32
//! or bf16), GGUF tensors dequantized to f32, and the short content hashes the goldens store.

use std::collections::HashMap;
use std::path::Path;

use edgegemma::gguf::TensorView;
use edgegemma_kernels::formats::dequantize_row;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

/// First 16 hex digits of the sha256 (what the goldens store).
pub fn sha16(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Every tensor of a safetensors file as (shape, f32 values).
pub fn read_checkpoint(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let data = v.data();
            let vals: Vec<f32> = match v.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                    .collect(),
                other => panic!("{name}: {other:?}"),
            };
            (name, (v.shape().to_vec(), vals))
        })
        .collect()
}

/// A GGUF tensor dequantized to f32.
pub fn dequantize(t: &TensorView) -> Vec<f32> {
    let mut out = vec![0.0f32; t.n_elements() as usize];
    for (r, row) in out.chunks_mut(t.row_len()).enumerate() {
        dequantize_row(t.ggml_type(), t.row(r).unwrap(), row).unwrap();
    }
    out
}

/// Writes `model.safetensors` with f32 or bf16 tensors.
pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], bf16: bool) {
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            let bytes: Vec<u8> = if bf16 {
                v.iter()
                    .flat_map(|x| half::bf16::from_f32(*x).to_bits().to_le_bytes())
                    .collect()
            } else {
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            };
            (n.clone(), s.clone(), bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = encoded
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(
                    if bf16 { Dtype::BF16 } else { Dtype::F32 },
                    s.clone(),
                    b,
                )
                .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

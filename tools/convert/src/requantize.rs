//! `edgegemma-convert quantize`: an existing GGUF to another file type, with the same
//! recipe as `hf`. Metadata is copied (file type updated); tensors that keep their type are
//! copied byte for byte.

use std::path::Path;

use edgegemma::gguf::{names, GgmlType, GgufFile, OwnedValue};

use crate::error::{Error, Result};
use crate::hf::{file_type_keys, tensor_order};
use crate::pipeline::{Job, Plan};
use crate::recipe::{self, FileType};
use crate::source::GgufTensor;

fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

pub fn open(path: &Path) -> Result<GgufFile> {
    Ok(GgufFile::open(path)?)
}

/// The plan for `file`; `warn` receives the requantization warning if there is one.
pub fn plan<'a>(
    file: &'a GgufFile,
    ftype: FileType,
    pure: bool,
    allow_requantize: bool,
    warn: &mut dyn FnMut(String),
) -> Result<Plan<'a>> {
    let arch = file.architecture()?.to_string();
    let n_layer = file.get_u32(&names::key(&arch, names::key::BLOCK_COUNT))? as usize;
    let mut views: Vec<_> = file.tensors().collect();
    views.sort_by(|a, b| tensor_order(a.name()).cmp(&tensor_order(b.name())));
    let shapes: Vec<(&str, &[u64])> = views.iter().map(|v| (v.name(), v.dims())).collect();
    let choices = recipe::choose_types(&shapes, ftype, pure, n_layer);
    let mut requantized = 0usize;
    let mut jobs = Vec::with_capacity(views.len());
    for (view, choice) in views.into_iter().zip(choices) {
        let from = view.ggml_type();
        let ty = choice.ty.unwrap_or(from);
        if ty != from {
            if !from.is_supported() {
                return Err(file
                    .error(format!(
                        "tensor {:?} is {from}, which edgegemma-convert cannot read",
                        view.name()
                    ))
                    .into());
            }
            if !is_float(from) {
                if !allow_requantize {
                    return Err(file
                        .error(format!(
                            "tensor {:?} is already quantized ({from}); converting it to {ty} loses more precision than quantizing the original weights. Pass --allow-requantize to do it anyway",
                            view.name()
                        ))
                        .into());
                }
                requantized += 1;
            }
        }
        let note = choice
            .fell_back_from
            .map(|f| format!("{f} needs rows of {}", f.block_size()));
        jobs.push(Job {
            name: view.name().to_string(),
            dims: view.dims().to_vec(),
            ty,
            note,
            source: Box::new(GgufTensor { file, view }),
        });
    }
    if requantized > 0 {
        warn(format!(
            "warning: requantizing {requantized} already-quantized tensors of {}; the result is worse than quantizing the original weights",
            file.path().display()
        ));
    }

    // Copied in order, except the two keys llama.cpp's quantizer re-adds at the end.
    let mut metadata: Vec<(String, OwnedValue)> = file
        .metadata()
        .filter(|(k, _)| {
            *k != names::general::FILE_TYPE && *k != names::general::QUANTIZATION_VERSION
        })
        .map(|(k, v)| (k.to_string(), v.to_owned_value()))
        .collect();
    metadata.extend(file_type_keys(ftype));
    if jobs.is_empty() {
        return Err(Error::at(file.path(), "has no tensors"));
    }
    Ok(Plan {
        input: format!("{} ({arch}, {} tensors)", file.path().display(), jobs.len()),
        metadata,
        jobs,
        notes: Vec::new(),
    })
}

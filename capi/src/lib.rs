//! The C API of edgegemma: load a GGUF model, tokenize, render the chat prompt, generate with
//! a per-token callback, read next-token logits, save and restore the conversation.
//!
//! Every exported function catches panics (none crosses into C), checks each pointer argument
//! for NULL and reports failures as an [`eg_status`] with a one-line message in
//! [`eg_last_error`]. The contract (ownership, threads) is documented in the header
//! `include/edgegemma.h`, generated from this file by cbindgen (`tests/header.rs` fails when
//! the checked-in header differs; `EDGEGEMMA_BLESS=1` rewrites it).

#![allow(non_camel_case_types)]

mod chat;
mod error;
mod model;

pub use chat::{eg_chat_apply_template, eg_chat_message};
pub use error::{eg_last_error, eg_status};
pub use model::*;

use std::ffi::c_char;
use std::sync::OnceLock;

/// The library's version, e.g. "0.1.0". Static storage: never free it.
#[no_mangle]
pub extern "C" fn eg_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The kernel path chosen for this CPU ("avx512", "avx2", "i8mm", "dotprod", "neon" or
/// "scalar"; `EDGEGEMMA_KERNELS` forces one). Static storage: never free it. NULL when
/// `EDGEGEMMA_KERNELS` names a path this CPU cannot run (the reason is in `eg_last_error`).
#[no_mangle]
pub extern "C" fn eg_kernel_path() -> *const c_char {
    static NAME: OnceLock<Option<std::ffi::CString>> = OnceLock::new();
    let got = std::panic::catch_unwind(|| {
        NAME.get_or_init(|| {
            edgegemma_kernels::dispatch::select()
                .ok()
                .map(|k| std::ffi::CString::new(k.name).expect("path names have no NUL"))
        })
        .as_ref()
        .map(|s| s.as_ptr())
    });
    match got {
        Ok(Some(p)) => p,
        _ => {
            let msg = match edgegemma_kernels::dispatch::select() {
                Err(e) => e.to_string(),
                Ok(_) => "internal error while choosing the kernel path".to_string(),
            };
            error::set_last_error(&msg);
            std::ptr::null()
        }
    }
}

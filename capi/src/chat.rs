//! Rendering a conversation into the prompt text the model was trained on.

use crate::eg_status;
use crate::error::{out_arg, slice_arg, str_arg, write_c_string, Error};
use crate::model::{eg_model, with_model};
use edgegemma::chat_template::Message;
use std::ffi::c_char;

/// One message of a conversation: `role` is "system", "user", "model" or "assistant" (the same
/// as "model"), `content` its UTF-8 text. Both NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct eg_chat_message {
    pub role: *const c_char,
    pub content: *const c_char,
}

/// Renders `n_messages` messages into the model's chat prompt with the GGUF's own
/// `tokenizer.chat_template` (Jinja, rendered as transformers' `apply_chat_template` does), or
/// Gemma's turn format when the file has none (`<bos><start_of_turn>user\n...<end_of_turn>\n`
/// `<start_of_turn>model\n...`, a system message folded into the first user turn), ending with
/// the opening of a model turn when `add_generation_prompt`. What the template refuses (e.g.
/// roles not alternating user/model) is `EG_ERR_INVALID_ARGUMENT` with its message. The text goes into `buf` (`capacity` bytes, NUL-terminated), its
/// length without the NUL into `*len`; `EG_ERR_BUFFER_TOO_SMALL` when it does not fit. Pass
/// the result to `eg_generate` on an empty conversation (it starts with `<bos>`, so no second
/// BOS is added).
///
/// # Safety
/// `model` a live handle; `messages` valid for `n_messages` reads, each with valid strings;
/// `buf` NULL with `capacity == 0` or valid for `capacity` writes; `len` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn eg_chat_apply_template(
    model: *const eg_model,
    messages: *const eg_chat_message,
    n_messages: usize,
    add_generation_prompt: bool,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> eg_status {
    with_model(model, |_, inner| {
        let len = out_arg(len, "len")?;
        let msgs = slice_arg(messages, n_messages, "messages")?;
        let mut turns = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            let role = str_arg(m.role, &format!("messages[{i}].role"))?;
            let content = str_arg(m.content, &format!("messages[{i}].content"))?;
            turns.push(Message::new(role, content));
        }
        let template = inner.chat_template.as_ref().map_err(|e| {
            Error::new(
                eg_status::EG_ERR_MODEL,
                format!("the model's chat template: {e}"),
            )
        })?;
        let text = template
            .render(&turns, add_generation_prompt)
            .map_err(|e| Error::invalid(e.to_string()))?;
        write_c_string(text.as_bytes(), buf, capacity, len)
    })
}

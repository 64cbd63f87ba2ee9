//! Rendering a conversation into the prompt text the model was trained on.

use crate::eg_status;
use crate::error::{out_arg, slice_arg, str_arg, write_c_string, Error, Result};
use crate::model::{eg_model, with_model};
use std::ffi::c_char;

/// One message of a conversation: `role` is "system", "user", "model" or "assistant" (the same
/// as "model"), `content` its UTF-8 text. Both NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct eg_chat_message {
    pub role: *const c_char,
    pub content: *const c_char,
}

/// Renders `n_messages` messages into the model's chat prompt (Gemma's turn format:
/// `<bos><start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n...`, a system message
/// folded into the first user turn), ending with the opening of a model turn when
/// `add_generation_prompt`. The text goes into `buf` (`capacity` bytes, NUL-terminated), its
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
    with_model(model, |_, _inner| {
        let len = out_arg(len, "len")?;
        let msgs = slice_arg(messages, n_messages, "messages")?;
        let mut turns = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            let role = str_arg(m.role, &format!("messages[{i}].role"))?;
            let content = str_arg(m.content, &format!("messages[{i}].content"))?;
            turns.push((role, content));
        }
        let text = gemma_turns(&turns, add_generation_prompt)?;
        write_c_string(text.as_bytes(), buf, capacity, len)
    })
}

/// Gemma's turn format, as `edgegemma chat` writes it (and as Gemma 3's template renders it:
/// contents trimmed, the system prompt and a blank line before the first user message).
fn gemma_turns(msgs: &[(&str, &str)], add_generation_prompt: bool) -> Result<String> {
    let mut out = String::from("<bos>");
    let mut system: Option<&str> = None;
    for (i, &(role, content)) in msgs.iter().enumerate() {
        let role = match role {
            "system" if i == 0 => {
                system = Some(content.trim());
                continue;
            }
            "user" => "user",
            "model" | "assistant" => "model",
            other => return Err(Error::invalid(format!(
                "messages[{i}].role {other:?} is not system (first only), user, model or assistant"
            ))),
        };
        out.push_str("<start_of_turn>");
        out.push_str(role);
        out.push('\n');
        if let Some(sys) = system.take().filter(|s| !s.is_empty()) {
            out.push_str(sys);
            out.push_str("\n\n");
        }
        out.push_str(content.trim());
        out.push_str("<end_of_turn>\n");
    }
    if add_generation_prompt {
        out.push_str("<start_of_turn>model\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::gemma_turns;

    #[test]
    fn renders_gemma_turns_with_the_system_prompt_folded_in() {
        let got = gemma_turns(
            &[
                ("system", "Be brief."),
                ("user", " Hi "),
                ("assistant", "Hello."),
                ("user", "Why?"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(
            got,
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n\
             <start_of_turn>model\nHello.<end_of_turn>\n\
             <start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n"
        );
        assert!(gemma_turns(&[("tool", "x")], false).is_err());
    }
}

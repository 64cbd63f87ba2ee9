//! Status codes, the per-thread last error message, and the guard every exported function
//! runs its body in (panics caught, the message kept for `eg_last_error`).

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a function returns. `EG_OK` is 0; on anything else `eg_last_error()` says why.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum eg_status {
    EG_OK = 0,
    /// A required pointer argument was NULL.
    EG_ERR_NULL_ARGUMENT = 1,
    /// An argument is out of range or not valid UTF-8 (the message names it).
    EG_ERR_INVALID_ARGUMENT = 2,
    /// Reading or writing a file failed.
    EG_ERR_IO = 3,
    /// The model file could not be loaded, or the model failed while running.
    EG_ERR_MODEL = 4,
    /// The caller's buffer is too small; the size it needs was stored in the size output.
    EG_ERR_BUFFER_TOO_SMALL = 5,
    /// The tokens do not fit in the context that is left.
    EG_ERR_CONTEXT_FULL = 6,
    /// The call is not possible now (no logits yet; called from inside this model's callback).
    EG_ERR_STATE = 7,
    /// A saved state does not belong to this model and settings, or is damaged.
    EG_ERR_BAD_STATE = 8,
    /// A bug in edgegemma (a caught panic). The model it happened in can only be freed.
    EG_ERR_INTERNAL = 9,
}

/// A failure inside the library: the code to return and the message to keep.
#[derive(Debug)]
pub(crate) struct Error {
    pub status: eg_status,
    pub message: String,
}

impl Error {
    pub fn new(status: eg_status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }
    pub fn null(name: &str) -> Error {
        Error::new(
            eg_status::EG_ERR_NULL_ARGUMENT,
            format!("argument `{name}` is NULL"),
        )
    }
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(eg_status::EG_ERR_INVALID_ARGUMENT, message)
    }
    pub fn model(e: impl std::fmt::Display) -> Error {
        Error::new(eg_status::EG_ERR_MODEL, e.to_string())
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(message: &str) {
    // A message cannot hold a NUL for C; cut it there (messages are ours, so it never happens).
    let cut = message.split('\0').next().unwrap_or_default();
    let c = CString::new(cut).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// The message of the last failed call on this thread ("" when there was none yet). Valid
/// until the next failing call on the same thread; never free it. Successful calls leave it
/// unchanged.
#[no_mangle]
pub extern "C" fn eg_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Runs an exported function's body: a caught panic becomes `EG_ERR_INTERNAL`, an error is
/// kept for `eg_last_error`.
pub(crate) fn guard(body: impl FnOnce() -> Result<()>) -> eg_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => eg_status::EG_OK,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (please report): {what}"));
            eg_status::EG_ERR_INTERNAL
        }
    }
}

/// Borrows a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string that stays valid for the call.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::null(name));
    }
    std::ffi::CStr::from_ptr(p)
        .to_str()
        .map_err(|_| Error::invalid(format!("argument `{name}` is not valid UTF-8")))
}

/// Borrows `len` elements at `p` (NULL allowed when `len` is 0).
///
/// # Safety
/// `p` must be NULL with `len == 0`, or valid for reads of `len` elements for the call.
pub(crate) unsafe fn slice_arg<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::null(name));
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// Stores `v` through an output pointer that was checked for NULL.
///
/// # Safety
/// `p` must be NULL or valid for one write of `T`.
pub(crate) unsafe fn out_arg<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T> {
    p.as_mut().ok_or_else(|| Error::null(name))
}

/// Copies `bytes` plus a NUL into the caller's buffer of `capacity` bytes, storing the length
/// without the NUL in `*len`; `EG_ERR_BUFFER_TOO_SMALL` (with `*len` set) when it does not fit.
///
/// # Safety
/// `buf` must be NULL with `capacity == 0`, or valid for writes of `capacity` bytes.
pub(crate) unsafe fn write_c_string(
    bytes: &[u8],
    buf: *mut c_char,
    capacity: usize,
    len: &mut usize,
) -> Result<()> {
    *len = bytes.len();
    if capacity < bytes.len() + 1 {
        return Err(Error::new(
            eg_status::EG_ERR_BUFFER_TOO_SMALL,
            format!(
                "the text needs {} bytes with its NUL, the buffer has {capacity}",
                bytes.len() + 1
            ),
        ));
    }
    if buf.is_null() {
        return Err(Error::null("buf"));
    }
    let out = std::slice::from_raw_parts_mut(buf.cast::<u8>(), capacity);
    out[..bytes.len()].copy_from_slice(bytes);
    out[bytes.len()] = 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        unsafe { CStr::from_ptr(eg_last_error()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_panic_becomes_an_internal_error_with_its_message() {
        let st = guard(|| panic!("boom at {}", 42));
        assert_eq!(st, eg_status::EG_ERR_INTERNAL);
        assert!(last().contains("boom at 42"), "{}", last());
        let st = guard(|| Err(Error::invalid("bad n")));
        assert_eq!(st, eg_status::EG_ERR_INVALID_ARGUMENT);
        assert_eq!(last(), "bad n");
        assert_eq!(guard(|| Ok(())), eg_status::EG_OK);
        assert_eq!(last(), "bad n", "success leaves the message");
    }

    #[test]
    fn text_goes_into_the_buffer_with_its_nul_or_reports_the_size() {
        let mut buf = [0x55 as c_char; 6];
        let mut len = 0;
        let e = unsafe { write_c_string(b"hello!", buf.as_mut_ptr(), 6, &mut len) };
        assert_eq!(e.unwrap_err().status, eg_status::EG_ERR_BUFFER_TOO_SMALL);
        assert_eq!(len, 6);
        unsafe { write_c_string(b"hello", buf.as_mut_ptr(), 6, &mut len) }.unwrap();
        assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_bytes(), b"hello");
        let e = unsafe { write_c_string(b"", std::ptr::null_mut(), 1, &mut len) };
        assert_eq!(e.unwrap_err().status, eg_status::EG_ERR_NULL_ARGUMENT);
    }
}

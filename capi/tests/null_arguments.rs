//! Every entry point refuses NULL pointers with EG_ERR_NULL_ARGUMENT and a message, without a
//! model file (the calls with a loaded model are checked by examples/c/api_check.c, run by
//! tools/aarch64-e2e.sh on x86_64 and aarch64).

use edgegemma_c::*;
use std::ffi::CStr;
use std::ptr::{null, null_mut};

fn last() -> String {
    unsafe { CStr::from_ptr(eg_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn null_pointers_are_refused_with_a_message() {
    use eg_status::EG_ERR_NULL_ARGUMENT as NULL;
    let mut n = 0usize;
    let mut out = null_mut();
    unsafe {
        assert_eq!(eg_model_load(null(), null(), &mut out), NULL);
        assert!(out.is_null());
        assert!(last().contains("`path`"), "{}", last());
        assert_eq!(eg_model_load(c"x.gguf".as_ptr(), null(), null_mut()), NULL);
        assert_eq!(eg_model_get_info(null(), null_mut()), NULL);
        assert!(last().contains("`model`"), "{}", last());
        assert_eq!(
            eg_tokenize(null(), c"a".as_ptr(), true, true, null_mut(), 0, &mut n),
            NULL
        );
        assert_eq!(
            eg_detokenize(null(), null(), 0, false, null_mut(), 0, &mut n),
            NULL
        );
        assert_eq!(
            eg_chat_apply_template(null(), null(), 0, true, null_mut(), 0, &mut n),
            NULL
        );
        assert_eq!(eg_eval(null(), null(), 0), NULL);
        let mut lp = null();
        assert_eq!(eg_get_logits(null(), &mut lp, &mut n), NULL);
        assert_eq!(eg_reset(null()), NULL);
        assert_eq!(eg_cancel(null()), NULL);
        let p = eg_sampling_default_params();
        assert_eq!(
            eg_generate(null(), c"a".as_ptr(), &p, 1, None, null_mut(), null_mut()),
            NULL
        );
        assert_eq!(
            eg_generate_tokens(null(), null(), 0, &p, 1, None, null_mut(), null_mut()),
            NULL
        );
        assert_eq!(eg_state_save(null(), null_mut(), 0, &mut n), NULL);
        assert_eq!(eg_state_load(null(), null(), 0), NULL);
        assert_eq!(eg_state_save_file(null(), c"s".as_ptr()), NULL);
        assert_eq!(eg_state_load_file(null(), c"s".as_ptr()), NULL);
        eg_model_free(null_mut());
    }
}

#[test]
fn a_missing_file_is_a_one_line_error_naming_it() {
    let mut out = null_mut();
    let st = unsafe { eg_model_load(c"/nonexistent/m.gguf".as_ptr(), null(), &mut out) };
    assert_eq!(st, eg_status::EG_ERR_MODEL);
    assert!(out.is_null());
    let msg = last();
    assert!(
        msg.contains("/nonexistent/m.gguf") && !msg.contains('\n'),
        "{msg}"
    );
}

#[test]
fn defaults_match_the_cli() {
    let m = eg_model_default_params();
    assert_eq!((m.n_threads, m.n_ctx, m.n_batch), (0, 4096, 256));
    assert_eq!(m.cache_type, EG_CACHE_F16);
    let s = eg_sampling_default_params();
    assert_eq!((s.temp, s.top_k, s.top_p, s.min_p), (0.8, 40, 0.95, 0.05));
    assert_eq!(
        (s.repeat_penalty, s.repeat_last_n, s.seed),
        (1.0, 64, 0x5eed)
    );
    let v = unsafe { CStr::from_ptr(eg_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    assert!(!eg_kernel_path().is_null());
}

//! include/edgegemma.h is generated from the crate by cbindgen and checked in; this test
//! regenerates it and fails on any difference, so the header cannot drift from the code.
//! `EDGEGEMMA_BLESS=1 cargo test -p edgegemma-capi --test header` rewrites it.

use std::path::Path;

#[test]
fn checked_in_header_matches_the_code() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.join("../include/edgegemma.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen could not read capi/src");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    if std::env::var_os("EDGEGEMMA_BLESS").is_some() {
        std::fs::write(&header, &fresh).unwrap();
        return;
    }
    let current = std::fs::read(&header).unwrap_or_default();
    assert!(
        current == fresh,
        "include/edgegemma.h differs from what cbindgen makes of capi/src; regenerate it with \
         EDGEGEMMA_BLESS=1 cargo test -p edgegemma-capi --test header"
    );
}

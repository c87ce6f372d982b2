//! Generates the raw FFI types from `c-headers/crun-handler.h`.
use std::{env, path::PathBuf};

fn main() {
    let header = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../c-headers/crun-handler.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .allowlist_type("custom_handler_s|libcrun_error_s|libcrun_context_s|libcrun_container_s")
        .allowlist_type("handler_get_fn")
        .allowlist_var("CRUN_HANDLER_PHASE_.*|CRUN_HANDLER_GET_SYMBOL")
        .derive_default(false)
        .layout_tests(true)
        .generate()
        .expect("bindgen failed to parse c-headers/crun-handler.h (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(out).expect("writing bindings");
}

//! Builds `tests/c/load-handler.c`, a C program that loads the handler
//! library the way crun does, for the tests (its path: env CRUN_QEMU_LOADER).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "tests/c/load-handler.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=c-headers/crun-handler.h");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("load-handler");
    let compiler = cc::Build::new().cargo_metadata(false).get_compiler();
    let status = Command::new(compiler.path())
        .args(["-Wall", "-Werror", "-Ic-headers", "-o"])
        .arg(&out)
        .arg(src)
        .arg("-ldl")
        .status()
        .expect("cannot run the C compiler");
    assert!(status.success(), "compiling {src} failed");
    println!("cargo:rustc-env=CRUN_QEMU_LOADER={}", out.display());
}

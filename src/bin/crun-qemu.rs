//! The `crun-qemu` OCI runtime: see `crun_qemu::launcher`.

fn main() {
    std::process::exit(crun_qemu::launcher::main());
}

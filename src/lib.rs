//! crun-qemu: boot the VM disk image packaged in a container image, as the
//! container's workload, from crun's custom handler interface.
//!
//! The library is built twice: as `libcrun_qemu.so`, the handler crun loads
//! (its C entry points are in [`handler`]), and as the rlib the `crun-qemu`
//! launcher links (see [`launcher`]). Everything but the FFI edge is plain
//! safe Rust, testable without crun.

pub mod accel;
pub mod annotations;
pub mod crun_install;
pub mod disk_head;
pub mod firmware;
pub mod fsutil;
pub mod handler;
pub mod image;
pub mod image_format;
pub mod launcher;
pub mod overlay;
pub mod qemu_cmdline;
pub mod qmp;
pub mod resources;
pub mod rootfs_setup;
pub mod runner;
pub mod spec;
pub mod supervisor;
pub mod vm;

/// Prefix of every line the runtime itself prints, so a user can tell them
/// from the guest's console output.
pub const LOG_PREFIX: &str = "crun-qemu:";

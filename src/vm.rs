//! The VM, described as plain data. Built once per container start in the
//! container's init (see `runner`), rendered by `qemu_cmdline`.

use std::path::PathBuf;

use crate::image_format::ImageFormat;

/// vCPUs a VM gets when the container sets no CPU limit.
pub const DEFAULT_VCPUS: u32 = 2;
/// Guest memory when the container sets no memory limit.
pub const DEFAULT_MEMORY_MIB: u64 = 1024;

/// The accelerator QEMU runs the guest with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// The boot disk: the read-only image and the overlay that takes the writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDisk {
    pub image: PathBuf,
    pub format: ImageFormat,
    pub overlay: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub accel: Accel,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub boot_disk: BootDisk,
    /// Descriptor number, in QEMU, of the listening QMP socket.
    pub qmp_fd: i32,
}

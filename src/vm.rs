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

/// What the VM boots with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU's default SeaBIOS.
    Bios,
    /// OVMF: read-only code and the container's own variable store.
    Uefi { code: PathBuf, vars: PathBuf },
}

/// The boot disk: the image, and the overlay that takes the writes unless
/// the writes go to the image itself (persistence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDisk {
    pub image: PathBuf,
    pub format: ImageFormat,
    pub overlay: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub accel: Accel,
    /// Bound on TCG's translation cache, which QEMU would let grow to 1 GiB.
    pub tb_cache_mib: u64,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub firmware: Firmware,
    pub boot_disk: BootDisk,
    /// Descriptor number, in QEMU, of the listening QMP socket.
    pub qmp_fd: i32,
}

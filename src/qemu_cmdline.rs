//! Renders a [`VmConfig`] as a QEMU command line. Pure.

use serde_json::json;

use crate::vm::{Accel, VmConfig};

/// Path of the QEMU binary inside the container (the host's `/usr`, bound
/// read-only by `rootfs_setup`).
pub const QEMU_BINARY: &str = "/usr/bin/qemu-system-x86_64";

pub fn render(vm: &VmConfig) -> Vec<String> {
    let (accel, cpu) = match vm.accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg", "max"),
    };
    // -blockdev takes JSON so that no file name (which comes from the
    // untrusted image) can inject options through commas.
    let image = json!({
        "driver": vm.boot_disk.format.qemu_driver(),
        "node-name": "image",
        "read-only": true,
        "file": {"driver": "file", "filename": vm.boot_disk.image, "read-only": true},
    });
    let disk = json!({
        "driver": "qcow2",
        "node-name": "disk0",
        "file": {"driver": "file", "filename": vm.boot_disk.overlay},
        "backing": "image",
    });
    let args = [
        QEMU_BINARY.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-machine".into(),
        format!("q35,accel={accel}"),
        "-cpu".into(),
        cpu.into(),
        "-smp".into(),
        vm.vcpus.to_string(),
        "-m".into(),
        format!("{}M", vm.memory_mib),
        "-display".into(),
        "none".into(),
        // The serial console and the human monitor share the container's
        // stdio; ctrl-a x quits, ctrl-a c toggles the monitor, and ctrl-c
        // reaches the guest instead of killing QEMU.
        "-chardev".into(),
        "stdio,id=console,mux=on,signal=off".into(),
        "-serial".into(),
        "chardev:console".into(),
        "-mon".into(),
        "chardev=console,mode=readline".into(),
        "-chardev".into(),
        format!("socket,id=qmp,fd={},server=on,wait=off", vm.qmp_fd),
        "-mon".into(),
        "chardev=qmp,mode=control".into(),
        "-blockdev".into(),
        image.to_string(),
        "-blockdev".into(),
        disk.to_string(),
        "-device".into(),
        "virtio-blk-pci,drive=disk0,bootindex=0".into(),
        "-device".into(),
        "virtio-rng-pci".into(),
    ];
    args.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_format::ImageFormat;
    use crate::vm::BootDisk;

    fn vm() -> VmConfig {
        VmConfig {
            accel: Accel::Tcg,
            vcpus: 2,
            memory_mib: 1024,
            boot_disk: BootDisk {
                image: "/disk/fedora,x=1.qcow2".into(),
                format: ImageFormat::Qcow2,
                overlay: "/.crun-qemu/overlay.qcow2".into(),
            },
            qmp_fd: 3,
        }
    }

    #[test]
    fn golden_tcg_command_line() {
        let got = render(&vm()).join(" ");
        let want = concat!(
            "/usr/bin/qemu-system-x86_64 -nodefaults -no-user-config -machine q35,accel=tcg -cpu max ",
            "-smp 2 -m 1024M -display none ",
            "-chardev stdio,id=console,mux=on,signal=off -serial chardev:console ",
            "-mon chardev=console,mode=readline ",
            "-chardev socket,id=qmp,fd=3,server=on,wait=off -mon chardev=qmp,mode=control ",
            r#"-blockdev {"driver":"qcow2","file":{"driver":"file","filename":"/disk/fedora,x=1.qcow2","read-only":true},"node-name":"image","read-only":true} "#,
            r#"-blockdev {"backing":"image","driver":"qcow2","file":{"driver":"file","filename":"/.crun-qemu/overlay.qcow2"},"node-name":"disk0"} "#,
            "-device virtio-blk-pci,drive=disk0,bootindex=0 -device virtio-rng-pci"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let mut v = vm();
        v.accel = Accel::Kvm;
        let args = render(&v);
        assert!(args.contains(&"q35,accel=kvm".to_string()));
        assert!(args.windows(2).any(|w| w[0] == "-cpu" && w[1] == "host"));
    }

    #[test]
    fn image_is_opened_read_only_with_its_format() {
        let mut v = vm();
        v.boot_disk.format = ImageFormat::Raw;
        let args = render(&v);
        let image: serde_json::Value = serde_json::from_str(&args[args.len() - 7]).unwrap();
        assert_eq!(image["driver"], "raw");
        assert_eq!(image["read-only"], true);
        assert_eq!(image["file"]["read-only"], true);
    }
}
